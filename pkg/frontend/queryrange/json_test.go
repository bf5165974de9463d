package queryrange

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	v1 "github.com/prometheus/prometheus/web/api/v1"
	"github.com/stretchr/testify/require"
)

// TestEncodeResponseMatchesPrometheus decodes what Prometheus's API writes
// and requires EncodeResponse to write it back byte for byte.
func TestEncodeResponseMatchesPrometheus(t *testing.T) {
	exponential := &histogram.FloatHistogram{
		Schema: 1, ZeroThreshold: 0.001, ZeroCount: 2, Count: 19, Sum: -3.25,
		PositiveSpans:   []histogram.Span{{Offset: -2, Length: 2}, {Offset: 3, Length: 1}},
		PositiveBuckets: []float64{1, 0, 7.5},
		NegativeSpans:   []histogram.Span{{Offset: 1, Length: 2}},
		NegativeBuckets: []float64{3, 5.5},
	}
	custom := &histogram.FloatHistogram{
		Schema: histogram.CustomBucketsSchema, Count: 6, Sum: math.NaN(),
		PositiveSpans:   []histogram.Span{{Offset: 0, Length: 3}},
		PositiveBuckets: []float64{1, 2, 3},
		CustomValues:    []float64{0.1, 1},
	}
	tiny := &histogram.FloatHistogram{Count: 1e-9, Sum: 1e22, ZeroCount: 1e-9}

	rows := []struct {
		name     string
		matrix   promql.Matrix
		warnings []string
		infos    []string
	}{
		{name: "empty", matrix: promql.Matrix{}},
		{name: "floats", matrix: promql.Matrix{
			{Metric: labels.FromStrings("__name__", "up", "job", "a"), Floats: []promql.FPoint{{T: 0, F: 1}, {T: 1, F: 0.5}, {T: 10, F: 2}, {T: 100, F: 3}, {T: 1435781451781, F: 1.234}}},
			{Metric: labels.FromStrings("job", "b"), Floats: []promql.FPoint{{T: -1500, F: -2}, {T: -1, F: 0}}},
		}},
		{name: "special floats", matrix: promql.Matrix{
			{Metric: labels.FromStrings("v", "special"), Floats: []promql.FPoint{
				{T: 1000, F: math.NaN()}, {T: 2000, F: math.Inf(1)}, {T: 3000, F: math.Inf(-1)},
				{T: 4000, F: math.Copysign(0, -1)}, {T: 5000, F: 1e-6}, {T: 6000, F: 9.99e-7}, {T: 7000, F: 1e21},
				{T: 8000, F: 999999999999999999999}, {T: 9000, F: -1e-300}, {T: 10000, F: 5e-324}, {T: 11000, F: math.MaxFloat64},
				{T: 12000, F: 0.1 + 0.2}, {T: 13000, F: 123456789.125},
			}},
		}},
		{name: "label escaping", matrix: promql.Matrix{
			{Metric: labels.FromStrings("a", `<script>&"quoted"\back`, "b", "tab\there\nnew\rret\x01\x1f\b\f", "c", "ünïcødé ✓ \u2028\u2029"), Floats: []promql.FPoint{{T: 1, F: 1}}},
		}},
		{name: "native histograms", matrix: promql.Matrix{
			{Metric: labels.FromStrings("h", "exp"), Histograms: []promql.HPoint{{T: 1000, H: exponential}, {T: 2000, H: tiny}}},
			{Metric: labels.FromStrings("h", "custom"), Histograms: []promql.HPoint{{T: 1000, H: custom}}},
			{Metric: labels.FromStrings("h", "mixed"), Floats: []promql.FPoint{{T: 1000, F: 1}}, Histograms: []promql.HPoint{{T: 2000, H: exponential}}},
			{Metric: labels.FromStrings("h", "empty"), Histograms: []promql.HPoint{{T: 1000, H: &histogram.FloatHistogram{}}}},
		}},
		{name: "warnings and infos", matrix: promql.Matrix{}, warnings: []string{"<warn> & more", "\u2028 \b"}, infos: []string{"info \x00"}},
		{name: "many timestamps and decimals", matrix: func() promql.Matrix {
			// Series with the timestamps of the one before, all or some,
			// or others (EncodeResponse copies the JSON of those it
			// wrote for the series before), and values of a few decimals.
			var m promql.Matrix
			for i := range 4 {
				s := promql.Series{Metric: labels.FromStrings("i", string(rune('a'+i)))}
				for j := range 700 {
					if i == 1 && j%3 == 0 {
						continue
					}
					s.Floats = append(s.Floats, promql.FPoint{T: int64(j*j*37-5000*(i/3)) - 1e6, F: float64(j-350) / []float64{1, 4, 1000, 3}[j%4]})
				}
				m = append(m, s)
			}
			return m
		}()},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			prom, err := v1.JSONCodec{}.Encode(&v1.Response{
				Status:   "success",
				Data:     &v1.QueryData{ResultType: parser.ValueTypeMatrix, Result: row.matrix},
				Warnings: row.warnings,
				Infos:    row.infos,
			})
			require.NoError(t, err)
			resp, err := decodeResponseBody(prom)
			require.NoError(t, err)
			require.Equal(t, string(prom), encode(t, resp))
			// Also from the series the frontend holds (not passed on as it
			// came, which the Content-Type does not allow).
			lazy, err := DecodeResponse(&http.Response{StatusCode: http.StatusOK, Body: io.NopCloser(bytes.NewReader(prom))})
			require.NoError(t, err)
			require.Nil(t, lazy.raw)
			require.Equal(t, string(prom), encode(t, lazy))

			// The decoder reads what encoding/json reads.
			var std Response
			require.NoError(t, json.Unmarshal(prom, &std))
			require.Equal(t, encode(t, &std), encode(t, resp))
		})
	}

	t.Run("error", func(t *testing.T) {
		prom, err := v1.JSONCodec{}.Encode(&v1.Response{Status: "error", ErrorType: "bad_data", Error: `invalid parameter "query": 1:4: <bad> & worse`})
		require.NoError(t, err)
		var resp Response
		require.NoError(t, json.Unmarshal(prom, &resp))
		require.Equal(t, string(prom), encode(t, &resp))
	})
}

// TestEncodingJSONDiffers documents why EncodeResponse exists: encoding/json
// writes model.Matrix otherwise than Prometheus.
func TestEncodingJSONDiffers(t *testing.T) {
	prom, err := v1.JSONCodec{}.Encode(&v1.Response{
		Status: "success",
		Data: &v1.QueryData{ResultType: parser.ValueTypeMatrix, Result: promql.Matrix{
			{Metric: labels.FromStrings("a", "<b>"), Floats: []promql.FPoint{{T: 1000, F: 1e-7}}},
		}},
	})
	require.NoError(t, err)
	resp, err := decodeResponseBody(prom)
	require.NoError(t, err)
	std, err := json.Marshal(resp)
	require.NoError(t, err)
	require.Equal(t, `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"<b>"},"values":[[1,"1e-07"]]}]}}`, string(prom))
	require.Equal(t, `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"\u003cb\u003e"},"values":[[1,"0.0000001"]]}]}}`, string(std))
	require.Equal(t, string(prom), encode(t, resp))
}
