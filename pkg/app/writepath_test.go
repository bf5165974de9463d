package app_test

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

func TestPushAndQueryBack(t *testing.T) {
	a := startApp(t, testConfig(t))
	ctx := context.Background()

	const nSeries, nSamples = 50, 20
	base := time.Now().Add(-10 * time.Minute).Truncate(time.Minute)
	step := 15 * time.Second
	want := map[string][][2]float64{}
	for s := 0; s < nSeries; s++ {
		pod := fmt.Sprintf("pod-%02d", s)
		key := fmt.Sprintf(`{__name__="requests_total",job="api",pod=%q}`, pod)
		for m := 0; m < nSamples; m++ {
			ts := base.Add(time.Duration(m) * step).UnixMilli()
			want[key] = append(want[key], [2]float64{float64(ts), float64(s*1000 + m)})
		}
	}
	// Push in several requests, one sample of every series per request, as
	// Prometheus does.
	for m := 0; m < nSamples; m++ {
		req := &prompb.WriteRequest{}
		for s := 0; s < nSeries; s++ {
			ts := base.Add(time.Duration(m) * step).UnixMilli()
			req.Timeseries = append(req.Timeseries, series("requests_total",
				map[string]string{"job": "api", "pod": fmt.Sprintf("pod-%02d", s)},
				prompb.Sample{Timestamp: ts, Value: float64(s*1000 + m)}))
		}
		require.NoError(t, pushClient(a, "tenant-a").Push(ctx, req))
	}

	got, status := queryRange(t, a, "tenant-a", "requests_total", base, base.Add(time.Duration(nSamples-1)*step), step)
	require.Equal(t, 200, status)
	require.Equal(t, want, got)

	vec, status := queryInstant(t, a, "tenant-a", `sum(requests_total)`, base.Add(time.Duration(nSamples-1)*step))
	require.Equal(t, 200, status)
	wantSum := 0.0
	for s := 0; s < nSeries; s++ {
		wantSum += float64(s*1000 + nSamples - 1)
	}
	require.Equal(t, map[string]float64{"{}": wantSum}, vec)

	require.Equal(t, float64(nSeries*nSamples), counterValue(t, a, "neocortex_distributor_received_samples_total", map[string]string{"tenant": "tenant-a"}))
	require.Equal(t, float64(nSeries*nSamples), counterValue(t, a, "neocortex_ingester_ingested_samples_total", map[string]string{"tenant": "tenant-a"}))

	// The legacy push path works the same.
	legacy := pushClient(a, "tenant-a")
	legacy.URL = "http://" + a.Server.HTTPAddr() + "/api/prom/push"
	ts := base.Add(time.Duration(nSamples) * step)
	require.NoError(t, legacy.Push(ctx, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		series("legacy_metric", nil, prompb.Sample{Timestamp: ts.UnixMilli(), Value: 42}),
	}}))
	vec, _ = queryInstant(t, a, "tenant-a", "legacy_metric", ts)
	require.Equal(t, map[string]float64{`{__name__="legacy_metric"}`: 42}, vec)
}

func TestTenantsAreIsolated(t *testing.T) {
	a := startApp(t, testConfig(t))
	ctx := context.Background()
	now := time.Now().Truncate(time.Second)
	for tenant, v := range map[string]float64{"tenant-a": 1, "tenant-b": 2} {
		require.NoError(t, pushClient(a, tenant).Push(ctx, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
			series("shared_name", map[string]string{"owner": tenant}, prompb.Sample{Timestamp: now.UnixMilli(), Value: v}),
		}}))
	}
	for tenant, want := range map[string]map[string]float64{
		"tenant-a": {`{__name__="shared_name",owner="tenant-a"}`: 1},
		"tenant-b": {`{__name__="shared_name",owner="tenant-b"}`: 2},
		"tenant-c": {},
	} {
		got, status := queryInstant(t, a, tenant, `{__name__=~".+"}`, now)
		require.Equal(t, 200, status)
		require.Equal(t, want, got, tenant)
	}
	// No tenant, no answer.
	resp := getQuery(t, a, "", "/prometheus/api/v1/query?query=shared_name")
	require.Equal(t, 401, resp.status)
	require.Contains(t, resp.body.Error, "X-Scope-OrgID")
}

func TestAuthDisabledUsesAnonymousTenant(t *testing.T) {
	cfg := testConfig(t)
	cfg.AuthEnabled = false
	a := startApp(t, cfg)
	now := time.Now().Truncate(time.Second)
	// A header, if sent, is ignored: everything belongs to "anonymous".
	require.NoError(t, pushClient(a, "").Push(context.Background(), &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		series("up", nil, prompb.Sample{Timestamp: now.UnixMilli(), Value: 1}),
	}}))
	for _, tenant := range []string{"", "someone"} {
		got, status := queryInstant(t, a, tenant, "up", now)
		require.Equal(t, 200, status)
		require.Equal(t, map[string]float64{`{__name__="up"}`: 1}, got)
	}
	require.Equal(t, 1.0, counterValue(t, a, "neocortex_ingester_ingested_samples_total", map[string]string{"tenant": "anonymous"}))
}

func TestStaleMarkersAndSpecialValues(t *testing.T) {
	a := startApp(t, testConfig(t))
	base := time.Now().Add(-time.Minute).Truncate(time.Second)
	staleNaN := math.Float64frombits(0x7ff0000000000002)
	require.NoError(t, pushClient(a, "t").Push(context.Background(), &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		series("g", nil,
			prompb.Sample{Timestamp: base.UnixMilli(), Value: math.Inf(1)},
			prompb.Sample{Timestamp: base.Add(time.Second).UnixMilli(), Value: -0.5},
			prompb.Sample{Timestamp: base.Add(2 * time.Second).UnixMilli(), Value: staleNaN},
		),
	}}))
	got, _ := queryInstant(t, a, "t", "g", base)
	require.Equal(t, map[string]float64{`{__name__="g"}`: math.Inf(1)}, got)
	got, _ = queryInstant(t, a, "t", "g", base.Add(time.Second))
	require.Equal(t, map[string]float64{`{__name__="g"}`: -0.5}, got)
	// After the stale marker the series is gone, though within the lookback.
	got, _ = queryInstant(t, a, "t", "g", base.Add(3*time.Second))
	require.Equal(t, map[string]float64{}, got)
}

// TestUnlimitedRateTakesAnyRequestSize: with ingestion_rate 0 (unlimited)
// the burst size does not cap a request either.
func TestUnlimitedRateTakesAnyRequestSize(t *testing.T) {
	cfg := testConfig(t)
	cfg.Limits.IngestionRate = 0
	cfg.Limits.IngestionBurstSize = 1000
	a := startApp(t, cfg)
	req := &prompb.WriteRequest{}
	base := time.Now().Add(-time.Hour).UnixMilli()
	for s := 0; s < 100; s++ {
		var samples []prompb.Sample
		for i := 0; i < 30; i++ {
			samples = append(samples, prompb.Sample{Timestamp: base + int64(i)*1000, Value: float64(i)})
		}
		req.Timeseries = append(req.Timeseries, series("big", map[string]string{"s": fmt.Sprint(s)}, samples...))
	}
	require.NoError(t, pushClient(a, "t").Push(context.Background(), req), "3000 samples, over the burst of 1000")
}
