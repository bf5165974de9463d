package app_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// TestQueryLimits checks each per-tenant query limit: over it the query
// gets 422 and a message naming the limit and its value; other tenants are
// unaffected.
func TestQueryLimits(t *testing.T) {
	cfg := testConfig(t)
	file := filepath.Join(t.TempDir(), "runtime.yaml")
	require.NoError(t, os.WriteFile(file, []byte(`
overrides:
  short:
    max_query_length: 1h
  few:
    max_fetched_series_per_query: 3
  small:
    max_fetched_chunk_bytes_per_query: 100
  recent:
    max_query_lookback: 10m
  frugal:
    max_samples_per_query: 20
`), 0o644))
	cfg.RuntimeConfig.LoadPath = []string{file}
	a := startApp(t, cfg)
	now := time.Now().Truncate(time.Second)
	for _, tenant := range []string{"short", "few", "small", "recent", "free", "frugal"} {
		req := &prompb.WriteRequest{}
		for i := 0; i < 5; i++ {
			var samples []prompb.Sample
			for m := 0; m < 30; m++ {
				samples = append(samples, prompb.Sample{Timestamp: now.Add(time.Duration(m-30) * time.Minute).UnixMilli(), Value: float64(m)})
			}
			req.Timeseries = append(req.Timeseries, series("x", map[string]string{"i": fmt.Sprint(i)}, samples...))
		}
		require.NoError(t, pushClient(a, tenant).Push(context.Background(), req))
	}
	query := func(tenant, q string) (int, string) {
		return getRaw(t, a, tenant, "/prometheus/api/v1/query?time="+fmt.Sprint(now.Unix())+"&query="+url.QueryEscape(q))
	}
	for _, tc := range []struct {
		tenant, query string
		status        int
		want          string
	}{
		{"short", "count_over_time(x[2h])", 422, "the query time range of 1h59m59.999s is longer than the limit of 1h0m0s (max_query_length)"},
		// (t-30m, t] holds the 29 newest samples.
		{"short", "count_over_time(x[30m])", 200, `"value":[` + fmt.Sprint(now.Unix()) + `,"29"]`},
		{"few", "x", 422, "the query fetched 5 series, more than the limit of 3 (max_fetched_series_per_query)"},
		{"few", `x{i=~"0|1|2"}`, 200, `"i":"2"`},
		{"small", "x", 422, "more than the limit of 100 (max_fetched_chunk_bytes_per_query)"},
		// Lookback: nothing older than 10m before the query runs (a moment
		// after now) is read: the samples at now-9m … now-1m remain.
		{"recent", `count_over_time(x{i="0"}[1h])`, 200, `"value":[` + fmt.Sprint(now.Unix()) + `,"9"]`},
		{"free", `count_over_time(x{i="0"}[1h])`, 200, `"value":[` + fmt.Sprint(now.Unix()) + `,"30"]`},
		{"free", "count_over_time(x[2h])", 200, `"value":[` + fmt.Sprint(now.Unix()) + `,"30"]`},
		// 5 series × 29 samples in (t-30m, t] do not fit in 20.
		{"frugal", "count_over_time(x[30m])", 422, "query processing would load too many samples into memory"},
		{"frugal", `count_over_time(x{i="0"}[10m])`, 200, `"value":[` + fmt.Sprint(now.Unix()) + `,"9"]`},
	} {
		t.Run(tc.tenant+" "+tc.query, func(t *testing.T) {
			status, body := query(tc.tenant, tc.query)
			require.Equal(t, tc.status, status, body)
			require.Contains(t, body, tc.want)
			if tc.status == 422 {
				require.True(t, strings.HasPrefix(body, `{"status":"error","errorType":"execution"`), body)
			}
		})
	}
	// 5 series for the refused query, 3 for the allowed one.
	require.Equal(t, 8.0, counterValue(t, a, "neocortex_querier_fetched_series_total", map[string]string{"tenant": "few", "source": "ingesters"}))
	require.Equal(t, 1.0, counterValue(t, a, "neocortex_querier_requests_total", map[string]string{"tenant": "short", "endpoint": "query", "status_code": "422"}))
}
