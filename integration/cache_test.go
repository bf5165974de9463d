//go:build integration

package integration

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/neocortex-metrics/neocortex/pkg/remotewrite"
)

// startMemcached runs a memcached on loopback (TCP only) and returns its
// address once it answers.
func startMemcached(t *testing.T) string {
	t.Helper()
	bin := requireBinary(t, "memcached")
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	_, port, _ := net.SplitHostPort(addr)
	args := []string{"-l", "127.0.0.1", "-p", port, "-U", "0"}
	if os.Getuid() == 0 {
		args = append(args, "-u", "root") // memcached refuses root without it
	}
	p := start(t, "memcached", bin, args...)
	waitCacheServer(t, p, func() error { _, err := memcachedItems(addr); return err })
	return addr
}

// startRedis runs a redis-server on loopback without persistence and
// returns its address once it answers.
func startRedis(t *testing.T) string {
	t.Helper()
	bin := requireBinary(t, "redis-server")
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	_, port, _ := net.SplitHostPort(addr)
	p := start(t, "redis", bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", t.TempDir())
	waitCacheServer(t, p, func() error { _, err := redisKeys(addr); return err })
	return addr
}

func waitCacheServer(t *testing.T, p *process, ping func() error) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		err := ping()
		if err == nil {
			return
		}
		if !p.running() || time.Now().After(deadline) {
			t.Fatalf("%s not answering: %v\n%s", p.name, err, p.logs.String())
		}
	}
}

// roundTrip sends cmd (a line) to addr and returns the answer's lines up to
// and including the first for which last returns true.
func roundTrip(addr, cmd string, last func(line string) bool) ([]string, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(cmd + "\r\n")); err != nil {
		return nil, err
	}
	var lines []string
	r := bufio.NewReader(c)
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			return lines, err
		}
		l = strings.TrimRight(l, "\r\n")
		lines = append(lines, l)
		if last(l) {
			return lines, nil
		}
	}
}

// memcachedItems returns curr_items from memcached's stats command.
func memcachedItems(addr string) (int, error) {
	lines, err := roundTrip(addr, "stats", func(l string) bool { return l == "END" || strings.Contains(l, "ERROR") })
	if err != nil {
		return 0, err
	}
	for _, l := range lines {
		if v, ok := strings.CutPrefix(l, "STAT curr_items "); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, fmt.Errorf("no curr_items in memcached stats: %q", lines)
}

// redisKeys returns the number of keys of redis's database 0 (DBSIZE).
func redisKeys(addr string) (int, error) {
	lines, err := roundTrip(addr, "DBSIZE", func(string) bool { return true })
	if err != nil {
		return 0, err
	}
	v, ok := strings.CutPrefix(lines[0], ":")
	if !ok {
		return 0, fmt.Errorf("redis DBSIZE: %q", lines[0])
	}
	return strconv.Atoi(v)
}

// TestResultsCacheMemcachedAndRedis has the query-frontend cache range
// query results in a real memcached, then a real redis: a repeated query is
// answered from the cache alone, identically, and so is the first query of
// a restarted process, as the cache lives outside it.
func TestResultsCacheMemcachedAndRedis(t *testing.T) {
	for _, tc := range []struct {
		backend string
		start   func(*testing.T) string
		flag    string
		items   func(addr string) (int, error)
	}{
		{"memcached", startMemcached, "-frontend.results-cache.memcached.addresses=", memcachedItems},
		{"redis", startRedis, "-frontend.results-cache.redis.endpoint=", redisKeys},
	} {
		t.Run(tc.backend, func(t *testing.T) {
			const (
				tenant  = "cache-team"
				nSeries = 20
				every   = time.Minute
				step    = 5 * time.Minute
			)
			addr := tc.start(t)
			nc := startNeocortex(t, "neocortex-"+tc.backend,
				"-target=all", "-ingester.ring.instance-id=single", "-distributor.ingestion-rate-limit=0",
				"-frontend.cache-results=true", "-frontend.results-cache.backend="+tc.backend, tc.flag+addr,
				// The ingester answers every query, from a head that holds
				// all 30h: no block is cut during the test.
				"-querier.query-ingesters-within=0s", "-ingester.head-compaction-interval=1h",
				"-ingester.retention-period=48h")

			// 30h of samples, pushed oldest first in half-hour requests so
			// that each is within the head's appendable window.
			now := time.Now().Truncate(every)
			first := now.Add(-30 * time.Hour)
			rw := &remotewrite.Client{URL: "http://" + nc.httpAddr + "/api/v1/push", Tenant: tenant}
			for from := first; !from.After(now); from = from.Add(30 * time.Minute) {
				req := &prompb.WriteRequest{}
				for s := range nSeries {
					ts := prompb.TimeSeries{Labels: []prompb.Label{
						{Name: "__name__", Value: "cache_test_total"}, {Name: "job", Value: "job-" + strconv.Itoa(s%4)},
						{Name: "series", Value: strconv.Itoa(s)},
					}}
					for at := from; at.Before(from.Add(30*time.Minute)) && !at.After(now); at = at.Add(every) {
						ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: at.UnixMilli(), Value: float64(s) + float64(at.Sub(first)/every)})
					}
					req.Timeseries = append(req.Timeseries, ts)
				}
				require.NoError(t, rw.Push(context.Background(), req))
			}

			// A day ending 3h ago, aligned to the step: old enough to be
			// cached whole.
			end := now.Add(-3 * time.Hour).Truncate(step)
			begin := end.Add(-24 * time.Hour)
			api := "http://" + nc.httpAddr + "/prometheus"
			const q = "sum by (job) (rate(cache_test_total[10m]))"
			queryRangeWork := func() float64 {
				return nc.metric("neocortex_querier_requests_total", `endpoint="query_range"`)
			}
			hits := func() float64 {
				return nc.metric("neocortex_frontend_results_cache_hits_total", `backend="`+tc.backend+`"`)
			}
			timed := func() (map[string][][2]string, time.Duration) {
				began := time.Now()
				res := queryRange(t, api, tenant, q, begin, end, step)
				return res, time.Since(began)
			}

			cold, coldTook := timed()
			require.Len(t, cold, 4, "one series per job")
			for k, pts := range cold {
				require.Len(t, pts, int(24*time.Hour/step)+1, k)
			}
			work := queryRangeWork()
			require.Positive(t, work, "the cold query reached the querier")
			eventually(t, 10*time.Second, func() bool { n, err := tc.items(addr); return err == nil && n > 0 },
				tc.backend+" holds the result")
			items, _ := tc.items(addr)

			hitsBefore := hits()
			warm, warmTook := timed()
			require.Equal(t, cold, warm, "the cached answer")
			require.Equal(t, work, queryRangeWork(), "the warm query did no query_range work in the querier")
			require.Greater(t, hits(), hitsBefore, "cache hits")

			nc.kill(syscall.SIGTERM)
			nc.restart(t)
			restarted, restartedTook := timed()
			require.Equal(t, cold, restarted, "the answer after a restart")
			require.Zero(t, queryRangeWork(), "the restarted process answered from %s alone", tc.backend)
			require.Positive(t, hits(), "cache hits after the restart")
			t.Logf("%s results cache: %d items after the cold query; 24h range query of %d series: cold %s, warm %s, first after restart %s",
				tc.backend, items, nSeries, coldTook.Round(time.Microsecond), warmTook.Round(time.Microsecond),
				restartedTook.Round(time.Microsecond))
		})
	}
}
