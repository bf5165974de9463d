package queryrange

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

// benchResponse is an answer for r with n series, one sample per
// evaluation timestamp.
func benchResponse(r *Request, n int) *Response {
	m := make(model.Matrix, n)
	for i := range m {
		s := &model.SampleStream{Metric: model.Metric{
			"__name__": "http_requests_total", "job": "api", "instance": model.LabelValue(fmt.Sprintf("10.0.%d.%d:9090", i/256, i%256)), "code": "200",
		}}
		s.Values = make([]model.SamplePair, 0, (r.End-r.Start)/r.Step+1)
		for ts := r.Start; ts <= r.End; ts += r.Step {
			s.Values = append(s.Values, model.SamplePair{Timestamp: model.Time(ts), Value: model.SampleValue(float64(ts/1000) * float64(i+1) / 7)})
		}
		m[i] = s
	}
	return &Response{Status: "success", Data: Data{ResultType: model.ValMatrix, Result: m}}
}

// BenchmarkSplitMerge splits a 7-day query at 1m step over 1000 series
// into its 8 daily parts, answered from memory, and merges them: the
// middleware's own cost, without downstream or JSON.
func BenchmarkSplitMerge(b *testing.B) {
	const series = 1000
	r := &Request{Query: `sum by (instance, code) (rate(http_requests_total{job="api"}[5m]))`, Start: 100*day + 13*hour, Step: minute}
	r.End = r.Start + 7*day
	answers := map[int64]*Response{}
	for _, p := range splitRequest(r, day) {
		answers[p.Start] = benchResponse(p, series)
	}
	h := SplitByInterval(24*time.Hour, 14, defaultParser(), NewMetrics(prometheus.NewRegistry()))(HandlerFunc(func(_ context.Context, p *Request) (*Response, error) {
		return answers[p.Start], nil
	}))
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		resp, err := h.Do(ctx, r)
		require.NoError(b, err)
		require.Len(b, resp.Data.Result, series)
		require.Len(b, resp.Data.Result[0].Values, int(7*day/minute)+1)
	}
}

// BenchmarkCodec encodes and decodes one daily part of the query above:
// 1000 series of 1440 samples.
func BenchmarkCodec(b *testing.B) {
	r := &Request{Start: 100 * day, End: 101*day - minute, Step: minute}
	resp := benchResponse(r, 1000)
	body := must[[]byte](b)(EncodeResponse(resp))
	ext := must[[]byte](b)(encodeExtents([]extent{{start: r.Start, end: r.End, resp: resp}}))
	b.Run("EncodeResponse", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			_, _ = EncodeResponse(resp)
		}
	})
	b.Run("DecodeResponse", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			_, err := decodeResponseBody(body)
			require.NoError(b, err)
		}
	})
	b.Run("DecodeResponse/skim", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			_, _, err := skimJSONResponse(body)
			require.NoError(b, err)
		}
	})
	b.Run("encodeExtents", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = encodeExtents([]extent{{start: r.Start, end: r.End, resp: resp}})
		}
		b.ReportMetric(float64(len(ext)), "cached_bytes")
	})
	b.Run("decodeExtents", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, err := decodeExtents(ext)
			require.NoError(b, err)
		}
	})
}
