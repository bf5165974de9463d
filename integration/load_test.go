//go:build integration

package integration

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// balancer spreads pushes over the distributors round-robin and, like a
// load balancer with health checks, sends a request that cannot reach one
// distributor to the next.
func balancer(t *testing.T, targets ...string) string {
	t.Helper()
	var next atomic.Uint64
	client := &http.Client{Timeout: 30 * time.Second}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		first := int(next.Add(1))
		var lastErr error
		for i := range targets {
			target := targets[(first+i)%len(targets)]
			req, _ := http.NewRequestWithContext(r.Context(), r.Method, "http://"+target+r.URL.RequestURI(), bytes.NewReader(body))
			req.Header = r.Header.Clone()
			resp, err := client.Do(req)
			var opErr *net.OpError
			if errors.As(err, &opErr) || (err != nil && errors.Is(err, io.EOF)) {
				lastErr = err // unreachable or dropped: try the next one
				continue
			}
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			for k, v := range resp.Header {
				w.Header()[k] = v
			}
			w.WriteHeader(resp.StatusCode)
			_, _ = io.Copy(w, resp.Body)
			resp.Body.Close()
			return
		}
		http.Error(w, "no distributor reachable: "+lastErr.Error(), http.StatusBadGateway)
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

var reportLine = regexp.MustCompile(`(?m)^(\w+): (\S+)$`)

// TestKillUnderLoad pushes steadily through two distributors to three
// ingesters (RF=3) while an ingester is SIGKILLed and restarted, a
// distributor is SIGKILLed and a fourth ingester joins; every acknowledged
// sample must then read back exactly, and no push may fail after retries.
func TestKillUnderLoad(t *testing.T) {
	etcd := startEtcd(t)
	ring := []string{
		"-ingester.ring.store=etcd", "-ingester.ring.etcd.endpoints=" + etcd[len("http://"):],
		"-ingester.ring.replication-factor=3", "-ingester.ring.heartbeat-period=1s",
	}
	ingester := func(i int) *neocortex {
		args := append([]string{"-target=ingester", "-ingester.data-dir=" + t.TempDir(),
			"-ingester.ring.instance-id=ingester-" + strconv.Itoa(i)}, ring...)
		return startNeocortex(t, "ingester-"+strconv.Itoa(i), args...)
	}
	ingesters := []*neocortex{ingester(1), ingester(2), ingester(3)}
	var dists []*neocortex
	for i := 1; i <= 2; i++ {
		dists = append(dists, startNeocortex(t, "distributor-"+strconv.Itoa(i),
			append([]string{"-target=distributor", "-distributor.ingestion-rate-limit=0"}, ring...)...))
	}
	quer := startNeocortex(t, "querier", append([]string{"-target=querier"}, ring...)...)
	for _, p := range append(dists, quer) {
		eventually(t, 30*time.Second, func() bool { return activeIngesters(t, p) == 3 }, p.name+" sees 3 ingesters")
	}
	lb := balancer(t, dists[0].httpAddr, dists[1].httpAddr)

	load := start(t, "loadgen", loadgenBin,
		"-url=http://"+lb+"/api/v1/push", "-query-url=http://"+quer.httpAddr+"/prometheus",
		"-tenants=load-a,load-b", "-active-series=4000", "-interval=1s", "-duration=36s",
		"-series-per-request=500", "-concurrency=4", "-max-retries=30", "-max-backoff=2s",
		"-report-interval=0", "-verify")

	loadStart := time.Now()
	step := func(at time.Duration, what string, f func()) {
		time.Sleep(time.Until(loadStart.Add(at)))
		t.Logf("%5.1fs: %s", time.Since(loadStart).Seconds(), what)
		f()
	}
	step(6*time.Second, "SIGKILL ingester-2", func() { ingesters[1].kill(syscall.SIGKILL) })
	step(12*time.Second, "restart ingester-2", func() { ingesters[1].restart(t) })
	step(18*time.Second, "SIGKILL distributor-1", func() { dists[0].kill(syscall.SIGKILL) })
	step(24*time.Second, "add ingester-4", func() { ingesters = append(ingesters, ingester(4)) })

	select {
	case <-load.done:
	case <-time.After(3 * time.Minute):
		t.Fatalf("loadgen did not finish:\n%s", load.logs.String())
	}
	out := load.logs.String()
	report := map[string]string{}
	for _, m := range reportLine.FindAllStringSubmatch(out, -1) {
		report[m[1]] = m[2]
	}
	t.Logf("loadgen: samples_acknowledged=%s samples_failed=%s retries=%s p99=%ss verify_missing=%s verify_wrong=%s",
		report["samples_acknowledged"], report["samples_failed"], report["retries"], report["latency_p99_seconds"],
		report["verify_missing_samples"], report["verify_wrong_samples"])
	require.Equal(t, 0, load.cmd.ProcessState.ExitCode(), out)
	require.Equal(t, "0", report["samples_failed"], out)
	require.Equal(t, "0", report["verify_missing_samples"], out)
	require.Equal(t, "0", report["verify_wrong_samples"], out)
	require.Equal(t, report["samples_sent"], report["samples_acknowledged"], out)
	require.NotEqual(t, "0", report["samples_acknowledged"], out)
}
