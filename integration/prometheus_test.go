//go:build integration

package integration

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// headerProxy forwards to target, setting X-Scope-OrgID: Debian's Prometheus
// 2.42 ignores remote_write/remote_read "headers:", so the tenant is added
// on the way, as an authenticating gateway would.
func headerProxy(t *testing.T, target, tenant string) string {
	t.Helper()
	u, err := url.Parse("http://" + target)
	require.NoError(t, err)
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Set("X-Scope-OrgID", tenant)
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// startPrometheus runs a real Prometheus with config (%s is replaced by its
// own listen address) and waits until it is ready.
func startPrometheus(t *testing.T, name, config string) string {
	t.Helper()
	bin := requireBinary(t, "prometheus")
	port := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	dir := t.TempDir()
	cfg := writeFile(t, dir, "prometheus.yml", fmt.Sprintf(config, addr))
	p := start(t, name, bin, "--config.file="+cfg, "--storage.tsdb.path="+dir+"/data",
		"--web.listen-address="+addr, "--log.level=warn")
	p.waitHTTP("http://"+addr+"/-/ready", 60*time.Second)
	return addr
}

// TestPrometheusEndToEnd has a real Prometheus scrape itself and Neocortex
// and remote-write to Neocortex; Neocortex must then answer exactly what
// that Prometheus answers from its own TSDB. A second Prometheus with only
// remote_read to Neocortex must answer the same.
func TestPrometheusEndToEnd(t *testing.T) {
	nc := startNeocortex(t, "neocortex", "-ingester.data-dir="+t.TempDir(), "-ingester.ring.instance-id=single")
	const tenant = "prom-e2e"
	proxy := headerProxy(t, nc.httpAddr, tenant)

	writer := startPrometheus(t, "prometheus-writer", `
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: prometheus
    static_configs: [{targets: ["%s"]}]
  - job_name: neocortex
    static_configs: [{targets: ["`+nc.httpAddr+`"]}]
remote_write:
  - url: http://`+proxy+`/api/v1/push
    queue_config: {batch_send_deadline: 500ms, max_shards: 2, min_backoff: 100ms}
    metadata_config: {send_interval: 1s}
`)
	ncAPI := "http://" + nc.httpAddr + "/prometheus"
	promAPI := "http://" + writer

	// Let some samples accumulate, then compare a closed window that remote
	// write has certainly delivered.
	start := time.Now().Truncate(time.Second)
	eventually(t, 60*time.Second, func() bool {
		return len(instant(t, ncAPI, tenant, `up{job="neocortex"}`, time.Now())) == 1
	}, "Neocortex receives Prometheus's samples")
	time.Sleep(12 * time.Second) // the test's subject is a stream over time
	end := time.Now().Add(-4 * time.Second).Truncate(time.Second)

	// Raw selectors and aggregations, whose meaning Prometheus 3 (our
	// engine) did not change from Debian's 2.42; rate() did at the edges of
	// its window (left-open ranges), which the PromQL equivalence test
	// covers against Prometheus 3 itself.
	queries := []string{
		`up`,
		`prometheus_tsdb_head_samples_appended_total{job="prometheus"}`,
		`prometheus_http_requests_total{job="prometheus"}`,
		`sum by (job) (scrape_samples_scraped)`,
		`neocortex_distributor_received_samples_total`,
	}
	for _, q := range queries {
		t.Run(q, func(t *testing.T) {
			var want, got map[string][][2]string
			// Remote write is asynchronous: wait until the window is complete.
			for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(time.Second) {
				want = queryRange(t, promAPI, "", q, start, end, time.Second)
				got = queryRange(t, ncAPI, tenant, q, start, end, time.Second)
				if len(want) > 0 && fmt.Sprint(want) == fmt.Sprint(got) {
					break
				}
			}
			require.NotEmpty(t, want)
			require.Equal(t, want, got)
		})
	}

	// Metadata came along with the samples.
	eventually(t, 30*time.Second, func() bool {
		return len(apiGetMetadata(t, ncAPI, tenant, "prometheus_build_info")) > 0
	}, "metadata of prometheus_build_info")

	// A Prometheus that only reads remotely answers the same.
	reader := startPrometheus(t, "prometheus-reader", `
global:
  scrape_interval: 1h
scrape_configs: []
remote_read:
  - url: http://`+proxy+`/prometheus/api/v1/read
    read_recent: true
# listen address: %s
`)
	for _, q := range queries[:2] {
		want := queryRange(t, promAPI, "", q, start, end, time.Second)
		got := queryRange(t, "http://"+reader, "", q, start, end, time.Second)
		require.Equal(t, want, got, "remote read of %s", q)
	}
	t.Logf("compared %d queries over %s at 1s", len(queries), end.Sub(start))
}

func apiGetMetadata(t *testing.T, base, tenant, metric string) map[string]any {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/api/v1/metadata?metric="+url.QueryEscape(metric), nil)
	require.NoError(t, err)
	req.Header.Set("X-Scope-OrgID", tenant)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var body struct {
		Data map[string]any `json:"data"`
	}
	require.NoError(t, jsonDecode(resp, &body))
	return body.Data
}
