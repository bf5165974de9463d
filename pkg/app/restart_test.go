package app_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/neocortex-metrics/neocortex/pkg/app"
)

// TestRestartKeepsAcknowledgedSamples stops the process cleanly and starts a
// new one on the same data directory: every acknowledged sample is back
// (WAL replay), and new samples append after them.
func TestRestartKeepsAcknowledgedSamples(t *testing.T) {
	cfg := testConfig(t)
	a, err := app.New(*cfg, testLogger(t))
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, a.Start(ctx))

	base := time.Now().Add(-5 * time.Minute).Truncate(time.Second)
	want := map[string][][2]float64{}
	for m := 0; m < 10; m++ {
		req := &prompb.WriteRequest{}
		for s := 0; s < 20; s++ {
			ts := base.Add(time.Duration(m) * 10 * time.Second)
			req.Timeseries = append(req.Timeseries, series("restart_total", map[string]string{"s": fmt.Sprint(s)},
				prompb.Sample{Timestamp: ts.UnixMilli(), Value: float64(m + s)}))
			key := fmt.Sprintf(`{__name__="restart_total",s="%d"}`, s)
			want[key] = append(want[key], [2]float64{float64(ts.UnixMilli()), float64(m + s)})
		}
		require.NoError(t, pushClient(a, "durable").Push(ctx, req))
	}
	a.Stop()

	// The ring entry is gone after a clean shutdown.
	b := startApp(t, cfg)
	got, status := queryRange(t, b, "durable", "restart_total", base, base.Add(90*time.Second), 10*time.Second)
	require.Equal(t, 200, status)
	require.Equal(t, want, got)
	require.Equal(t, 200.0, headSeriesGauge(t, b)*10) // 20 series replayed

	// The replayed head accepts the next samples.
	next := base.Add(100 * time.Second)
	require.NoError(t, pushClient(b, "durable").Push(ctx, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		series("restart_total", map[string]string{"s": "0"}, prompb.Sample{Timestamp: next.UnixMilli(), Value: 100}),
	}}))
	vec, _ := queryInstant(t, b, "durable", `restart_total{s="0"}`, next)
	require.Equal(t, map[string]float64{`{__name__="restart_total",s="0"}`: 100}, vec)
}

func headSeriesGauge(t *testing.T, a *app.App) float64 {
	t.Helper()
	mfs, err := a.Registry.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == "neocortex_ingester_memory_series" {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatal("no neocortex_ingester_memory_series")
	return 0
}
