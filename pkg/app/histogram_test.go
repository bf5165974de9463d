package app_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// TestNativeHistograms pushes integer and float native histograms and reads
// their count, sum and a quantile back through PromQL.
func TestNativeHistograms(t *testing.T) {
	a := startApp(t, testConfig(t))
	ts := time.Now().Add(-time.Minute).Truncate(time.Second)
	h := &histogram.Histogram{
		Count: 12, ZeroCount: 2, ZeroThreshold: 0.001, Sum: 18.4, Schema: 1,
		PositiveSpans:   []histogram.Span{{Offset: 0, Length: 2}, {Offset: 1, Length: 2}},
		PositiveBuckets: []int64{1, 1, -1, 0}, // absolute: 1 2 1 1
		NegativeSpans:   []histogram.Span{{Offset: 0, Length: 2}},
		NegativeBuckets: []int64{2, 1}, // absolute: 2 3
	}
	fh := h.ToFloat(nil)
	fh.Sum = 100.5
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: []prompb.Label{{Name: "__name__", Value: "latency_int"}}, Histograms: []prompb.Histogram{prompb.FromIntHistogram(ts.UnixMilli(), h)}},
		{Labels: []prompb.Label{{Name: "__name__", Value: "latency_float"}}, Histograms: []prompb.Histogram{prompb.FromFloatHistogram(ts.UnixMilli(), fh)}},
	}}
	require.NoError(t, pushClient(a, "h").Push(context.Background(), req))

	for q, want := range map[string]map[string]float64{
		"histogram_count(latency_int)":   {"{}": 12},
		"histogram_sum(latency_int)":     {"{}": 18.4},
		"histogram_count(latency_float)": {"{}": 12},
		"histogram_sum(latency_float)":   {"{}": 100.5},
	} {
		got, status := queryInstant(t, a, "h", q, ts)
		require.Equal(t, 200, status, q)
		require.Equal(t, want, got, q)
	}
	require.Equal(t, 2.0, counterValue(t, a, "neocortex_ingester_ingested_samples_total", map[string]string{"tenant": "h"}))
}
