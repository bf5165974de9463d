package querier

import (
	"math"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/util/stats"
	v1 "github.com/prometheus/prometheus/web/api/v1"
	"github.com/stretchr/testify/require"
)

func TestMatrixCodec(t *testing.T) {
	matrix := func(m promql.Matrix) *v1.QueryData {
		return &v1.QueryData{ResultType: parser.ValueTypeMatrix, Result: m}
	}
	floats := func(ts ...int64) []promql.FPoint {
		out := make([]promql.FPoint, len(ts))
		for i, t := range ts {
			out[i] = promql.FPoint{T: t, F: float64(t) / 7}
		}
		return out
	}
	for _, tc := range []struct {
		name string
		resp *v1.Response
		// fast is whether matrixCodec writes it itself.
		fast bool
	}{
		{"empty matrix", &v1.Response{Status: "success", Data: matrix(promql.Matrix{})}, true},
		{"series", &v1.Response{Status: "success", Data: matrix(promql.Matrix{
			{Metric: labels.FromStrings("__name__", "up", "job", "a"), Floats: floats(1700000000000, 1700000015000, 1700000030500)},
			{Metric: labels.FromStrings("job", "b"), Floats: floats(-1500, -5, 0, 7, 90, 1001)},
			{Metric: labels.FromStrings("job", "c"), Floats: floats(-5, 7, 1001, 1700000015000, 1700000045000)},
			{Metric: labels.FromStrings("job", "d"), Floats: floats(1700000000000, 1700000030500, 1700000045000, 1700000060000)},
		})}, true},
		{"no labels, no points", &v1.Response{Status: "success", Data: matrix(promql.Matrix{{Metric: labels.EmptyLabels()}})}, true},
		{"special floats", &v1.Response{Status: "success", Data: matrix(promql.Matrix{
			{Metric: labels.FromStrings("a", "b"), Floats: []promql.FPoint{
				{T: 1, F: math.NaN()}, {T: 2, F: math.Inf(1)}, {T: 3, F: math.Inf(-1)}, {T: 4, F: math.Copysign(0, -1)},
				{T: 5, F: 1e-7}, {T: 6, F: 1e-6}, {T: 7, F: 1e21}, {T: 8, F: 1e20}, {T: 9, F: -123.456}, {T: 10, F: math.MaxFloat64},
				{T: 11, F: math.SmallestNonzeroFloat64}, {T: 12, F: 0.1 + 0.2}, {T: 13, F: 999999999999999}, {T: 14, F: -1e15},
				{T: 15, F: 1e15}, {T: 16, F: -42}, {T: 17, F: 0}, {T: 18, F: 1<<53 + 2}, {T: 19, F: 123456789.5},
			}},
		})}, true},
		{"escapes in labels", &v1.Response{Status: "success", Data: matrix(promql.Matrix{
			{Metric: labels.FromStrings("a", "q\"b\\s/<>&\n\r\t\b\f\x00\x1f\x7f", "b", "ünï\u2028\u2029", "c", "bad \xff\xfe utf8"), Floats: floats(1)},
		})}, true},
		{"warnings and infos", &v1.Response{Status: "success", Data: matrix(promql.Matrix{{Metric: labels.FromStrings("a", "b"), Floats: floats(1)}}),
			Warnings: []string{"PromQL warning: <a> & \"b\"", "bad \xff \u2028"}, Infos: []string{"PromQL info: x\ty"}}, true},
		{"histograms", &v1.Response{Status: "success", Data: matrix(promql.Matrix{
			{Metric: labels.FromStrings("a", "b"), Histograms: []promql.HPoint{{T: 1, H: &histogram.FloatHistogram{Count: 3, Sum: 4, ZeroCount: 1, ZeroThreshold: 0.001, PositiveSpans: []histogram.Span{{Offset: 0, Length: 1}}, PositiveBuckets: []float64{2}}}}},
		})}, false},
		{"stats", &v1.Response{Status: "success", Data: &v1.QueryData{ResultType: parser.ValueTypeMatrix, Result: promql.Matrix{}, Stats: stats.NewQueryStats(&stats.Statistics{Timers: stats.NewQueryTimers(), Samples: stats.NewQuerySamples(false)})}}, false},
		{"vector", &v1.Response{Status: "success", Data: &v1.QueryData{ResultType: parser.ValueTypeVector, Result: promql.Vector{{Metric: labels.FromStrings("a", "b"), T: 1, F: 2}}}}, false},
		{"scalar", &v1.Response{Status: "success", Data: &v1.QueryData{ResultType: parser.ValueTypeScalar, Result: promql.Scalar{T: 1, V: 2}}}, false},
		{"labels", &v1.Response{Status: "success", Data: []string{"a", "b"}}, false},
		{"error", &v1.Response{Status: "error", ErrorType: "bad_data", Error: "boom"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, err := v1.JSONCodec{}.Encode(tc.resp)
			require.NoError(t, err)
			got, err := matrixCodec{}.Encode(tc.resp)
			require.NoError(t, err)
			require.Equal(t, string(want), string(got))
			m, fast := floatMatrix(tc.resp)
			require.Equal(t, tc.fast, fast)
			if !fast {
				return
			}
			// Written in parts at once, joined: the same bytes.
			for workers := 2; workers <= 5; workers++ {
				require.Equal(t, string(want), string(appendMatrixResponse(nil, tc.resp, m, workers)), "%d workers", workers)
			}
		})
	}
}

func TestSplitByPoints(t *testing.T) {
	points := func(ns ...int) promql.Matrix {
		m := make(promql.Matrix, len(ns))
		for i, n := range ns {
			m[i].Floats = make([]promql.FPoint, n)
		}
		return m
	}
	for _, tc := range []struct {
		name string
		m    promql.Matrix
		n    int
		want []int // series per part
	}{
		{"one part", points(3, 3, 3), 1, []int{3}},
		{"even", points(2, 2, 2, 2), 2, []int{2, 2}},
		{"by points, not series", points(6, 1, 1, 1, 1, 1, 1), 2, []int{1, 6}},
		{"three parts", points(1, 1, 1, 1, 1, 1, 1, 1, 1), 3, []int{3, 3, 3}},
		{"fewer series than parts", points(5, 5), 3, []int{2}},
		{"empty", points(), 4, []int{0}},
		{"series without points", points(0, 0, 0, 0), 2, []int{4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parts := splitByPoints(tc.m, tc.n)
			var got []int
			var joined promql.Matrix
			for _, p := range parts {
				got = append(got, len(p))
				joined = append(joined, p...)
			}
			require.Equal(t, tc.want, got)
			require.Equal(t, len(tc.m), len(joined))
		})
	}
}

// BenchmarkMatrixCodec encodes a range query's answer of 10,000 series
// of 41 points, as the querier answers the frontend.
func BenchmarkMatrixCodec(b *testing.B) {
	m := make(promql.Matrix, 10000)
	for i := range m {
		m[i] = promql.Series{
			Metric: labels.FromStrings("__name__", "http_requests_total", "cluster", "prod-eu-1", "instance", "10.0.0.1:8080", "job", "api", "pod", "api-7d9f-"+string(rune('a'+i%26)), "code", "200"),
			Floats: make([]promql.FPoint, 41),
		}
		for j := range m[i].Floats {
			m[i].Floats[j] = promql.FPoint{T: 1700000000000 + int64(j)*15000, F: float64(i*j) * 1.5}
		}
	}
	resp := &v1.Response{Status: "success", Data: &v1.QueryData{ResultType: parser.ValueTypeMatrix, Result: m}}
	for _, c := range []struct {
		name  string
		codec v1.Codec
	}{{"jsoniter", v1.JSONCodec{}}, {"matrixCodec", matrixCodec{}}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, err := c.codec.Encode(resp)
				require.NoError(b, err)
			}
		})
	}
}
