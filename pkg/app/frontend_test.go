package app_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/neocortex-metrics/neocortex/pkg/app"
)

// rangeRequest runs a range query through the process's API and returns the
// status, the body and the Server-Timing header.
func rangeRequest(t *testing.T, a *app.App, tenant, q string, start, end time.Time, step time.Duration, header http.Header) (int, string, string) {
	t.Helper()
	v := url.Values{"query": {q}, "start": {strconv.FormatInt(start.Unix(), 10)}, "end": {strconv.FormatInt(end.Unix(), 10)},
		"step": {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)}}
	req, err := http.NewRequest(http.MethodGet, "http://"+a.Server.HTTPAddr()+"/prometheus/api/v1/query_range?"+v.Encode(), nil)
	require.NoError(t, err)
	req.Header.Set("X-Scope-OrgID", tenant)
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := testHTTP.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b), resp.Header.Get("Server-Timing")
}

// queriedRanges is how many range queries the querier answered for tenant.
func queriedRanges(t *testing.T, a *app.App, tenant string) float64 {
	return counterValue(t, a, "neocortex_querier_requests_total", map[string]string{"tenant": tenant, "endpoint": "query_range", "status_code": "200"})
}

// TestFrontendSplitsAndCaches: a three-day dashboard query goes to the
// queriers as one query per day; asked again, it is answered from the
// results cache without a querier; the answers equal the querier's own.
func TestFrontendSplitsAndCaches(t *testing.T) {
	// The ingesters hold all of it (nothing is shipped): ask them for all.
	acfg := testConfig(t)
	acfg.Querier.QueryIngestersWithin = 0
	a := startApp(t, acfg)
	now := time.Now()
	start := now.Add(-72 * time.Hour).Truncate(time.Hour)
	end := now.Add(-2 * time.Hour).Truncate(time.Hour) // outside the 1m freshness window
	req := &prompb.WriteRequest{}
	for s := 0; s < 5; s++ {
		var samples []prompb.Sample
		for ts := start; !ts.After(end); ts = ts.Add(10 * time.Minute) {
			samples = append(samples, prompb.Sample{Timestamp: ts.UnixMilli(), Value: float64(ts.Unix()%1000 + int64(s))})
		}
		req.Timeseries = append(req.Timeseries, series("dash_total", map[string]string{"s": fmt.Sprint(s), "job": fmt.Sprint(s % 2)}, samples...))
	}
	require.NoError(t, pushClient(a, "team").Push(context.Background(), req))

	const q = `sum by (job) (rate(dash_total[30m]))`
	code, first, timing := rangeRequest(t, a, "team", q, start, end, 15*time.Minute, nil)
	require.Equal(t, http.StatusOK, code, first)
	split := queriedRanges(t, a, "team")
	require.GreaterOrEqual(t, split, 3.0, "one query per day at least")
	require.Contains(t, timing, "querier_wall_time;dur=")
	require.Regexp(t, `fetched_series;desc="[1-9]`, timing)

	code, second, _ := rangeRequest(t, a, "team", q, start, end, 15*time.Minute, nil)
	require.Equal(t, http.StatusOK, code)
	require.True(t, first == second, "cached answer differs")
	require.Equal(t, split, queriedRanges(t, a, "team"), "a warm cache asks no querier")

	// The same query for another tenant is never answered from team's cache.
	code, other, _ := rangeRequest(t, a, "other", q, start, end, 15*time.Minute, nil)
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, other, `"result":[]`)
	require.Equal(t, split, queriedRanges(t, a, "other"))

	// Cache-Control: no-store goes to the queriers again.
	code, third, _ := rangeRequest(t, a, "team", q, start, end, 15*time.Minute, http.Header{"Cache-Control": {"no-store"}})
	require.Equal(t, http.StatusOK, code)
	require.True(t, first == third, "no-store answer differs")
	require.Equal(t, 2*split, queriedRanges(t, a, "team"))

	// Extending the range asks only for what the cache lacks.
	code, _, _ = rangeRequest(t, a, "team", q, start, end.Add(time.Hour), 15*time.Minute, nil)
	require.Equal(t, http.StatusOK, code)
	require.Less(t, queriedRanges(t, a, "team"), 3*split, "cached days are not asked again")

	// The answer equals the querier's own, unsplit, uncached.
	cfg := testConfig(t)
	cfg.Querier.QueryIngestersWithin = 0
	cfg.Target = []string{app.Distributor, app.Ingester, app.Querier}
	b := startApp(t, cfg)
	require.NoError(t, pushClient(b, "team").Push(context.Background(), req))
	code, direct, _ := rangeRequest(t, b, "team", q, start, end, 15*time.Minute, nil)
	require.Equal(t, http.StatusOK, code)
	require.True(t, direct == first, "frontend answer differs from the querier's:\n%.300s\n%.300s", direct, first)

	// Bad requests are refused by the frontend with Prometheus's error.
	code, body, _ := rangeRequest(t, a, "team", q, end, start, 15*time.Minute, nil)
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body, `"errorType":"bad_data"`)
}

// TestSingleBinaryShardsByCPU: by default the single binary splits a
// shardable aggregation into one query per CPU, and the merged answer is
// the whole query's; a query that is not shardable runs whole.
func TestSingleBinaryShardsByCPU(t *testing.T) {
	const cpus = 3
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(cpus))
	cfg := testConfig(t)
	cfg.Frontend.Sharding.TotalShards = 0 // automatic
	a := startApp(t, cfg)

	end := time.Now().Truncate(time.Minute).Add(-2 * time.Minute)
	start := end.Add(-10 * time.Minute)
	req := &prompb.WriteRequest{}
	for s := 0; s < 30; s++ {
		var samples []prompb.Sample
		for ts := start; !ts.After(end); ts = ts.Add(time.Minute) {
			samples = append(samples, prompb.Sample{Timestamp: ts.UnixMilli(), Value: float64(s % 4)})
		}
		req.Timeseries = append(req.Timeseries, series("cpu_test", map[string]string{"s": fmt.Sprint(s), "job": fmt.Sprint(s % 3)}, samples...))
	}
	require.NoError(t, pushClient(a, "team").Push(context.Background(), req))

	tests := []struct {
		query  string
		shards float64
		want   map[string]float64 // the value at every step, by series
	}{
		{`count(cpu_test)`, cpus, map[string]float64{"{}": 30}},
		{`sum by (job) (cpu_test)`, cpus, map[string]float64{`{job="0"}`: 15, `{job="1"}`: 13, `{job="2"}`: 15}},
		{`max(cpu_test)`, cpus, map[string]float64{"{}": 3}},
		{`count(cpu_test) / count(cpu_test)`, 0, map[string]float64{"{}": 1}},
	}
	sharded := 0.0
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			before := counterValue(t, a, "neocortex_frontend_query_shards_total", nil)
			got, code := queryRange(t, a, "team", tc.query, start, end, time.Minute)
			require.Equal(t, http.StatusOK, code)
			require.Len(t, got, len(tc.want))
			for key, v := range tc.want {
				require.Len(t, got[key], 11, key)
				for _, p := range got[key] {
					require.Equal(t, v, p[1], key)
				}
			}
			require.Equal(t, tc.shards, counterValue(t, a, "neocortex_frontend_query_shards_total", nil)-before)
			if tc.shards > 0 {
				sharded++
			}
			require.Equal(t, sharded, counterValue(t, a, "neocortex_frontend_sharded_queries_total", nil))
		})
	}

	// Split by day, the parts of a query share the CPUs: two days on
	// three CPUs is two parts of one shard each, not six shard queries.
	twoDays := end.Truncate(24 * time.Hour).Add(-time.Hour)
	before := counterValue(t, a, "neocortex_frontend_query_shards_total", nil)
	got, code := queryRange(t, a, "team", `count(cpu_test)`, twoDays.Add(-2*time.Hour), twoDays.Add(2*time.Hour), time.Hour)
	require.Equal(t, http.StatusOK, code)
	require.Len(t, got, 0) // written in the last minutes: nothing two days ago
	require.Equal(t, before, counterValue(t, a, "neocortex_frontend_query_shards_total", nil))
	require.Equal(t, 2.0, counterValue(t, a, "neocortex_frontend_unsharded_queries_total", map[string]string{"reason": "parallel_parts"}))
}
