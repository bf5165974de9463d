//go:build integration

package integration

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/neocortex-metrics/neocortex/pkg/remotewrite"
)

// startEtcd runs a single-node etcd on loopback and returns its client URL.
func startEtcd(t *testing.T) string {
	t.Helper()
	bin := requireBinary(t, "etcd")
	client := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	peer := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	p := start(t, "etcd", bin, "--name=neocortex-test", "--data-dir="+t.TempDir(),
		"--listen-client-urls="+client, "--advertise-client-urls="+client,
		"--listen-peer-urls="+peer, "--initial-advertise-peer-urls="+peer,
		"--initial-cluster=neocortex-test="+peer, "--log-level=warn")
	p.waitHTTP(client+"/health", 60*time.Second)
	return client
}

// memberlistArgs gives each of the named processes a gossip port and the
// others' as join addresses, so that any of them can restart and rejoin.
func memberlistArgs(t *testing.T, names ...string) map[string][]string {
	t.Helper()
	ports := map[string]int{}
	for _, n := range names {
		ports[n] = freePort(t)
	}
	out := map[string][]string{}
	for _, n := range names {
		args := []string{"-memberlist.bind-addr=127.0.0.1", "-memberlist.bind-port=" + strconv.Itoa(ports[n]),
			"-memberlist.nodename=" + n, "-memberlist.randomize-node-name=false", "-memberlist.gossip-interval=100ms"}
		for _, other := range names {
			if other != n {
				args = append(args, "-memberlist.join=127.0.0.1:"+strconv.Itoa(ports[other]))
			}
		}
		out[n] = args
	}
	return out
}

// TestMicroservices runs distributor, querier and three ingesters (RF=3) as
// separate processes sharing a ring in each KV store (a real etcd, gossip,
// and etcd mirrored to gossip as when migrating), then kills ingesters: one
// down keeps writes and reads whole, two down refuses writes with a 5xx,
// and SIGKILLed ingesters come back with every acknowledged sample.
func TestMicroservices(t *testing.T) {
	names := []string{"ingester-1", "ingester-2", "ingester-3", "distributor", "querier"}
	for _, kv := range []string{"etcd", "memberlist", "multi"} {
		t.Run(kv, func(t *testing.T) {
			common := []string{"-ingester.ring.replication-factor=3", "-ingester.ring.heartbeat-period=1s"}
			perProcess := map[string][]string{}
			switch kv {
			case "etcd":
				etcd := startEtcd(t)
				common = append(common, "-ingester.ring.store=etcd", "-ingester.ring.etcd.endpoints="+etcd[len("http://"):])
			case "memberlist":
				common = append(common, "-ingester.ring.store=memberlist")
				perProcess = memberlistArgs(t, names...)
			case "multi":
				etcd := startEtcd(t)
				common = append(common, "-ingester.ring.store=multi", "-ingester.ring.multi.primary=etcd",
					"-ingester.ring.multi.secondary=memberlist", "-ingester.ring.multi.mirror-enabled=true",
					"-ingester.ring.etcd.endpoints="+etcd[len("http://"):])
				perProcess = memberlistArgs(t, names...)
			}
			runMicroservices(t, func(name string) []string { return append(append([]string{}, common...), perProcess[name]...) })
		})
	}
}

func runMicroservices(t *testing.T, ringArgs func(name string) []string) {
	var ingesters []*neocortex
	for i := 1; i <= 3; i++ {
		name := "ingester-" + strconv.Itoa(i)
		args := append([]string{"-target=ingester", "-ingester.data-dir=" + t.TempDir(),
			"-ingester.ring.instance-id=" + name}, ringArgs(name)...)
		ingesters = append(ingesters, startNeocortex(t, name, args...))
	}
	dist := startNeocortex(t, "distributor", append([]string{"-target=distributor", "-distributor.ingestion-rate-limit=0"}, ringArgs("distributor")...)...)
	quer := startNeocortex(t, "querier", append([]string{"-target=querier"}, ringArgs("querier")...)...)
	for _, p := range []*neocortex{dist, quer} {
		eventually(t, 30*time.Second, func() bool { return activeIngesters(t, p) == 3 }, p.name+" sees 3 ACTIVE ingesters")
	}

	rw := &remotewrite.Client{URL: "http://" + dist.httpAddr + "/api/v1/push", Tenant: "etcd-team"}
	base := time.Now().Add(-5 * time.Minute).Truncate(time.Second)
	const nSeries = 50
	acked := 0 // rounds acknowledged; round r has sample value r at base+r*5s
	push := func() error {
		req := &prompb.WriteRequest{}
		ts := base.Add(time.Duration(acked) * 5 * time.Second).UnixMilli()
		for s := 0; s < nSeries; s++ {
			req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
				Labels:  []prompb.Label{{Name: "__name__", Value: "etcd_test"}, {Name: "s", Value: strconv.Itoa(s)}},
				Samples: []prompb.Sample{{Timestamp: ts, Value: float64(acked)}},
			})
		}
		err := rw.Push(context.Background(), req)
		if err == nil {
			acked++
		}
		return err
	}
	// Every acknowledged sample, exactly once.
	check := func(what string) {
		t.Helper()
		api := "http://" + quer.httpAddr + "/prometheus"
		end := base.Add(time.Duration(acked-1) * 5 * time.Second)
		got := instant(t, api, "etcd-team", fmt.Sprintf("count_over_time(etcd_test[%ds])", int(end.Sub(base).Seconds())+1), end)
		require.Len(t, got, nSeries, what)
		for k, v := range got {
			require.Equal(t, strconv.Itoa(acked), v, "%s: %s", what, k)
		}
		sum := instant(t, api, "etcd-team", fmt.Sprintf("sum(sum_over_time(etcd_test[%ds]))", int(end.Sub(base).Seconds())+1), end)
		require.Equal(t, map[string]string{"{}": strconv.Itoa(nSeries * acked * (acked - 1) / 2)}, sum, what)
	}

	for range 5 {
		require.NoError(t, push())
	}
	check("all ingesters up")

	ingesters[2].kill(syscall.SIGKILL)
	for range 5 {
		require.NoError(t, push(), "one ingester down: a quorum of 2 remains")
	}
	check("one ingester down")

	ingesters[1].kill(syscall.SIGKILL)
	err := push()
	var rwErr *remotewrite.Error
	require.True(t, errors.As(err, &rwErr), "two ingesters down: %v", err)
	require.Equal(t, 5, rwErr.StatusCode/100, rwErr.Body)
	// Reads go on from the one replica left, with a warning that they may
	// be incomplete: the rounds written while ingester 3 was down needed
	// ingesters 1 and 2 both, so ingester 1 has every one of them.
	{
		api := "http://" + quer.httpAddr + "/prometheus"
		end := base.Add(time.Duration(acked-1) * 5 * time.Second)
		got := instant(t, api, "etcd-team", "count_over_time(etcd_test[25s])", end)
		require.Len(t, got, nSeries)
		for k, v := range got {
			require.Equal(t, "5", v, k)
		}
	}

	for _, i := range []int{1, 2} {
		ingesters[i].restart(t)
	}
	eventually(t, 30*time.Second, func() bool {
		return activeIngesters(t, dist) == 3 && push() == nil
	}, "writes succeed once the ingesters are back")
	check("ingesters restarted")

	// Every ingester killed at once, then back: the WALs hold everything.
	for _, ing := range ingesters {
		ing.kill(syscall.SIGKILL)
	}
	for _, ing := range ingesters {
		ing.restart(t)
	}
	eventually(t, 30*time.Second, func() bool { return activeIngesters(t, quer) == 3 }, "the ingesters rejoin")
	check("all ingesters SIGKILLed and restarted")
	t.Logf("acknowledged %d rounds of %d series; every sample read back once", acked, nSeries)
}

// activeIngesters counts the healthy ACTIVE ingesters p's ring shows.
func activeIngesters(t *testing.T, p *neocortex) int {
	t.Helper()
	var ring struct {
		Shards []struct {
			State     string `json:"state"`
			Timestamp string `json:"timestamp"`
		} `json:"shards"`
	}
	if err := getJSON("http://"+p.httpAddr+"/ingester/ring", &ring); err != nil {
		return 0
	}
	n := 0
	for _, s := range ring.Shards {
		ts, err := time.Parse(time.RFC3339, s.Timestamp)
		if s.State == "ACTIVE" && err == nil && time.Since(ts) < 10*time.Second {
			n++
		}
	}
	return n
}
