package app_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/neocortex-metrics/neocortex/pkg/remotewrite"
)

// TestRuntimeOverridesReload changes a tenant's limits in the runtime-config
// file while the process runs and checks that they take effect: the
// ingestion rate, the series limit and the out-of-order window.
func TestRuntimeOverridesReload(t *testing.T) {
	cfg := testConfig(t)
	file := filepath.Join(t.TempDir(), "runtime.yaml")
	write := func(s string) { require.NoError(t, os.WriteFile(file, []byte(s), 0o644)) }
	write(`
overrides:
  t:
    ingestion_rate: 1
    ingestion_burst_size: 1
    max_series_per_user: 1
`)
	cfg.RuntimeConfig.LoadPath = []string{file}
	cfg.RuntimeConfig.ReloadPeriod = 20 * time.Millisecond
	cfg.Ingester.LimitsReloadPeriod = 20 * time.Millisecond
	a := startApp(t, cfg)
	rw := pushClient(a, "t")
	ctx := context.Background()
	now := time.Now().Truncate(time.Second)
	two := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		series("m", map[string]string{"i": "1"}, prompb.Sample{Timestamp: now.UnixMilli(), Value: 1}),
		series("m", map[string]string{"i": "2"}, prompb.Sample{Timestamp: now.UnixMilli(), Value: 2}),
	}}
	status := func(err error) int {
		var e *remotewrite.Error
		if errors.As(err, &e) {
			return e.StatusCode
		}
		require.NoError(t, err)
		return 204
	}
	require.Equal(t, 429, status(rw.Push(ctx, two)))

	write(`
overrides:
  t:
    ingestion_rate: 1000
    ingestion_burst_size: 1000
    max_series_per_user: 1
`)
	// The rate limiter re-reads the limit within its recheck period (10s).
	eventually(t, 20*time.Second, func() bool { return status(rw.Push(ctx, two)) == 400 }, "the new rate applies; the series limit refuses the second series")

	write(`
overrides:
  t:
    ingestion_rate: 1000
    ingestion_burst_size: 1000
    out_of_order_time_window: 10m
`)
	eventually(t, 10*time.Second, func() bool { return status(rw.Push(ctx, two)) == 204 }, "the series limit is lifted")

	// An older sample than the newest of a series: accepted only within the
	// out-of-order window, which was applied to the running TSDB.
	older := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		series("m", map[string]string{"i": "1"}, prompb.Sample{Timestamp: now.Add(-time.Minute).UnixMilli(), Value: 0.5}),
	}}
	eventually(t, 10*time.Second, func() bool { return status(rw.Push(ctx, older)) == 204 }, "the out-of-order window applies")
	got, _ := queryInstant(t, a, "t", `m{i="1"}`, now.Add(-time.Minute))
	require.Equal(t, map[string]float64{`{__name__="m",i="1"}`: 0.5}, got)

	// Without the window the same kind of sample is refused, and says why.
	write("overrides: {}\n")
	tooOld := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		series("m", map[string]string{"i": "2"}, prompb.Sample{Timestamp: now.Add(-2 * time.Minute).UnixMilli(), Value: 0.25}),
	}}
	var last error
	eventually(t, 10*time.Second, func() bool { last = rw.Push(ctx, tooOld); return status(last) == 400 }, "the window is closed again")
	require.ErrorContains(t, last, "out of order sample")
	require.ErrorContains(t, last, `m{i="2"}`)
}
