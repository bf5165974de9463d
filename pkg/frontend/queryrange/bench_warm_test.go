package queryrange

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/neocortex-metrics/neocortex/pkg/cache"
	"github.com/neocortex-metrics/neocortex/pkg/tenant"
)

// rawSeriesMatrix is n series of 10 labels each, as tools/loadgen makes
// them, with a counter's sample at each evaluation timestamp of
// [start, end], sorted by labels as Prometheus sorts a range query's
// result.
func rawSeriesMatrix(n int, start, end, step int64) model.Matrix {
	names := []string{"http_requests_total", "http_request_duration_seconds_sum", "http_request_duration_seconds_count", "http_response_size_bytes_sum",
		"http_requests_in_flight", "grpc_server_started_total", "grpc_server_handled_total", "grpc_server_msg_received_total", "process_cpu_seconds_total"}
	apps := []string{"checkout", "cart", "payments", "catalog", "search", "frontend", "auth", "shipping", "recommendations", "inventory", "notifications", "gateway"}
	regions := []string{"eu-west-1", "eu-central-1", "us-east-1", "us-west-2"}
	m := make(model.Matrix, n)
	for i := range m {
		t := uint64(i / len(names))
		h := t*0x9e3779b97f4a7c15 + 12345
		app := apps[h%uint64(len(apps))]
		region := regions[(h>>8)%uint64(len(regions))]
		s := &model.SampleStream{Metric: model.Metric{
			"__name__":  model.LabelValue(names[i%len(names)]),
			"cluster":   model.LabelValue([]string{"prod-eu-1", "prod-eu-2", "prod-us-1", "staging-eu-1"}[(h>>4)%4]),
			"container": model.LabelValue(app),
			"instance":  model.LabelValue(fmt.Sprintf("10.%d.%d.%d:%d", (t>>16)&0xff, (t>>8)&0xff, t&0xff, 8080+t%3)),
			"job":       model.LabelValue(app),
			"namespace": model.LabelValue([]string{"shop", "platform", "payments", "data", "edge", "identity"}[(h>>12)%6]),
			"node":      model.LabelValue(fmt.Sprintf("ip-10-0-%d-%d.%s.compute.internal", (h>>16)%8, 10+(h>>20)%8*17, region)),
			"pod":       model.LabelValue(fmt.Sprintf("%s-%010x-%05x", app, (h>>24)%(1<<40), (h>>3)%(1<<20))),
			"region":    model.LabelValue(region),
			"zone":      model.LabelValue(region + string(rune('a'+(h>>28)%3))),
		}}
		base, inc := float64(h%(1<<20)), float64(1+(h>>20)%400)/4
		for ts := start; ts <= end; ts += step {
			s.Values = append(s.Values, model.SamplePair{Timestamp: model.Time(ts), Value: model.SampleValue(base + inc*float64((ts-start)/step))})
		}
		m[i] = s
	}
	ls := make([][]labelPair, len(m))
	for i, s := range m {
		ls[i] = sortedPairs(nil, s.Metric)
	}
	idx := make([]int, len(m))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return compareLabels(ls[a], ls[b]) })
	sorted := make(model.Matrix, len(m))
	for i, j := range idx {
		sorted[i] = m[j]
	}
	return sorted
}

// bodyHandler answers each request with the body of bodies for its
// start, decoded as the frontend decodes a querier's answer (held in
// memory, as transport.HTTPRoundTripper's).
func bodyHandler(bodies map[int64][]byte) Handler {
	return HandlerFunc(func(_ context.Context, r *Request) (*Response, error) {
		body, ok := bodies[r.Start]
		if !ok {
			return nil, fmt.Errorf("no body for start %d", r.Start)
		}
		return DecodeResponse(&http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}},
			Body: inMemoryBody{Reader: bytes.NewReader(body), b: body}, ContentLength: int64(len(body))})
	})
}

// BenchmarkResultsCacheRawQuery is scripts/bench-e2e.sh's raw query in the
// frontend alone: 10 minutes at a 15s step over 111k series of 10 labels.
// Warm: the cache holds what is older than the freshness window (the
// minute before now, the last 4 steps), which comes from the querier as
// JSON; the answer is encoded as WriteResponse does. Cold+store: nothing
// is cached, the querier's answer is passed on, then stored in the cache
// (the work after the answer). Series have a sample at every step, or
// (recent) only at the last one, as in bench-e2e.sh, which queries series
// written seconds before: the cached part then has none.
func BenchmarkResultsCacheRawQuery(b *testing.B) {
	const series = 111_000
	step := 15 * time.Second.Milliseconds()
	r := &Request{Query: `{__name__=~"http_requests_total|process_cpu_seconds_total"}`, Start: 1_780_000_200_000, Step: step}
	r.End = r.Start + 10*minute
	now := time.UnixMilli(r.End + 5000) // the last 4 steps are in the freshness window
	freshStart := r.Start + 37*step
	ctx := tenant.WithTenant(context.Background(), "bench")
	for _, shape := range []struct {
		name       string
		firstShown int64 // the first step with samples
	}{{"every step", r.Start}, {"recent", r.End}} {
		full := rawSeriesMatrix(series, shape.firstShown, r.End, step)
		fullBody := must[[]byte](b)(EncodeResponse(&Response{Status: statusSuccess, Data: Data{ResultType: model.ValMatrix, Result: full}}))
		fresh := must[*Response](b)(clipResponse(&Response{Status: statusSuccess, Data: Data{ResultType: model.ValMatrix, Result: full}}, freshStart, r.End))
		freshBody := must[[]byte](b)(EncodeResponse(fresh))
		bodies := map[int64][]byte{r.Start: fullBody, freshStart: freshBody}
		newHandler := func() Handler {
			return ResultsCache(testConfig().ResultsCache, ResultsCacheDeps{
				Cache: cache.NewInMemory(1<<32, "bench", prometheus.NewRegistry()), Now: func() time.Time { return now },
				Metrics: NewMetrics(prometheus.NewRegistry()),
			})(bodyHandler(bodies))
		}
		answer := func(h Handler) []byte {
			resp, err := h.Do(ctx, r)
			require.NoError(b, err)
			if resp.raw != nil {
				return resp.raw
			}
			return must[[]byte](b)(EncodeResponse(resp))
		}

		b.Run(shape.name+"/warm", func(b *testing.B) {
			h := newHandler()
			require.True(b, bytes.Equal(fullBody, answer(h)), "cold answer as the querier's")
			require.True(b, bytes.Equal(fullBody, answer(h)), "warm answer as the querier's")
			b.ReportAllocs()
			b.SetBytes(int64(len(fullBody)))
			for b.Loop() {
				answer(h)
			}
		})
		b.Run(shape.name+"/cold+store", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(fullBody)))
			for b.Loop() {
				b.StopTimer()
				h := newHandler()
				b.StartTimer()
				answer(h)
			}
		})
	}
}

// BenchmarkRawQueryPassThrough is the frontend's whole path for the
// answer to BenchmarkResultsCacheRawQuery's raw query, held in memory as
// transport.HTTPRoundTripper's (111k series, 41 samples each: 141 MB of
// JSON), with the default middlewares, served over HTTP: its one part is
// passed on as it came, after the skim that checks it
// (skimJSONResponse). Uncached: Cache-Control: no-store, as the results
// cache would store it only after the answer. skim/blocks is the skim
// alone, skim/bytes its byte loop alone (skipNestedBytes) on the series,
// which was the whole skim before skimNested.
func BenchmarkRawQueryPassThrough(b *testing.B) {
	const series = 111_000
	step := 15 * time.Second.Milliseconds()
	start := int64(1_780_000_200_000)
	end := start + 10*minute
	body := must[[]byte](b)(EncodeResponse(&Response{Status: statusSuccess, Data: Data{ResultType: model.ValMatrix,
		Result: rawSeriesMatrix(series, start, end, step)}}))

	b.Run("uncached", func(b *testing.B) {
		tw := must[Middleware](b)(NewTripperware(testConfig(), Deps{
			Cache: cache.NewInMemory(1<<20, "bench", prometheus.NewRegistry()), Registerer: prometheus.NewRegistry(),
		}))
		h := tenant.Middleware(true, NewHTTPHandler(tw(bodyHandler(map[int64][]byte{start: body})), nil))
		req := httptest.NewRequest(http.MethodGet, fmt.Sprintf("/api/v1/query_range?query=up&start=%d&end=%d&step=15", start/1000, end/1000), nil)
		req.Header.Set(tenant.Header, "bench")
		req.Header.Set("Cache-Control", "no-store")
		w := &countingWriter{header: http.Header{}}
		h.ServeHTTP(w, req)
		require.Equal(b, http.StatusOK, w.code)
		require.Equal(b, len(body), w.n, "the answer is the querier's")
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			w.n = 0
			h.ServeHTTP(w, req)
		}
	})
	b.Run("skim/blocks", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			_, _, err := skimJSONResponse(body)
			require.NoError(b, err)
		}
	})
	b.Run("skim/bytes", func(b *testing.B) {
		at := bytes.IndexByte(body, '[')
		b.SetBytes(int64(len(body) - at))
		for b.Loop() {
			d := &jsonDecoder{b: body, i: at}
			d.skipNestedBytes()
			require.NoError(b, d.err)
		}
	})
}

// countingWriter is an http.ResponseWriter that counts the bytes of the
// answer and drops them.
type countingWriter struct {
	header http.Header
	code   int
	n      int
}

func (w *countingWriter) Header() http.Header  { return w.header }
func (w *countingWriter) WriteHeader(code int) { w.code = code }
func (w *countingWriter) Flush()               {}

func (w *countingWriter) Write(b []byte) (int, error) {
	w.n += len(b)
	return len(b), nil
}
