//go:build integration

package integration

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
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

// ringPrefixes are the flag prefixes of the rings a cluster runs; every
// one of them is put on the same KV store.
var ringPrefixes = []string{"ingester.ring.", "store-gateway.sharding-ring.", "compactor.ring."}

// kvFlags puts the ring of the flag prefix (e.g. "ingester.ring.") on the
// KV store kv: etcd at etcdAddr (host:port), memberlist, or etcd mirrored to
// memberlist as when migrating.
func kvFlags(prefix, kv, etcdAddr string) []string {
	switch kv {
	case "etcd":
		return []string{"-" + prefix + "store=etcd", "-" + prefix + "etcd.endpoints=" + etcdAddr}
	case "memberlist":
		return []string{"-" + prefix + "store=memberlist"}
	case "multi":
		return []string{"-" + prefix + "store=multi", "-" + prefix + "multi.primary=etcd",
			"-" + prefix + "multi.secondary=memberlist", "-" + prefix + "multi.mirror-enabled=true",
			"-" + prefix + "etcd.endpoints=" + etcdAddr}
	}
	panic("unknown KV store " + kv)
}

// TestMicroservices runs distributor, querier, three ingesters (RF=3), a
// store-gateway and a compactor as separate processes sharing their rings
// in each KV store (a real etcd, gossip, and etcd mirrored to gossip as when
// migrating), then kills ingesters: one down keeps writes and reads whole,
// two down refuses writes with a 5xx, and SIGKILLed ingesters come back
// with every acknowledged sample. Finally the ingesters ship their blocks,
// the compactor merges the replicas and the ingesters stop: every
// acknowledged sample is read back once from the blocks alone.
func TestMicroservices(t *testing.T) {
	names := []string{"ingester-1", "ingester-2", "ingester-3", "distributor", "querier", "store-gateway", "compactor", "querier-blocks"}
	for _, kv := range []string{"etcd", "memberlist", "multi"} {
		t.Run(kv, func(t *testing.T) {
			etcd := ""
			if kv != "memberlist" {
				etcd = startEtcd(t)[len("http://"):]
			}
			common := []string{"-ingester.ring.replication-factor=3", "-compactor.sharding-enabled=true"}
			for _, prefix := range ringPrefixes {
				common = append(common, kvFlags(prefix, kv, etcd)...)
				common = append(common, "-"+prefix+"heartbeat-period=1s")
			}
			perProcess := map[string][]string{}
			if kv != "etcd" {
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
	storeGateway := startNeocortex(t, "store-gateway", append([]string{"-target=store-gateway",
		"-store-gateway.sharding-ring.instance-id=store-gateway", "-store-gateway.sync-interval=1s"}, ringArgs("store-gateway")...)...)
	startNeocortex(t, "compactor", append([]string{"-target=compactor",
		"-compactor.ring.instance-id=compactor", "-compactor.compaction-interval=2s"}, ringArgs("compactor")...)...)
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

	// The ingesters ship their blocks (the three replicas of each range),
	// the compactor merges them into one and indexes it, the store-gateway
	// loads it; then the ingesters stop, and a querier that reads the
	// blocks for every query, and the ingesters for none of these, must
	// answer the same.
	flushStart := time.Now()
	for _, ing := range ingesters {
		ing.flushIngester(t)
	}
	tenantDir := filepath.Join(bucketDir(t), "etcd-team")
	idx := waitForCompactedBlocks(t, tenantDir, storeGateway, 60*time.Second)
	compacted := time.Since(flushStart)
	live := idx.live()
	shipped := 0 // by the ingesters: compactions raise the level
	for _, b := range idx.Blocks {
		if b.CompactionLevel == 1 {
			shipped++
		}
	}
	var samples uint64
	for _, b := range live {
		samples += b.NumSamples
	}
	require.Equal(t, uint64(nSeries*acked), samples, "the merged blocks hold each acknowledged sample once: %+v", live)
	for _, ing := range ingesters {
		ing.kill(syscall.SIGTERM)
	}
	quer = startNeocortex(t, "querier-blocks", append([]string{"-target=querier",
		"-querier.query-store-after=0s", "-querier.query-ingesters-within=1m", "-querier.bucket-index-cache-ttl=0s"},
		ringArgs("querier-blocks")...)...)
	check("from the blocks alone")
	require.Zero(t, quer.metric("neocortex_querier_fetched_series_total", `source="ingesters"`))
	require.Positive(t, quer.metric("neocortex_querier_fetched_series_total", `source="store-gateways"`))
	t.Logf("acknowledged %d rounds of %d series; every sample read back once, also from the blocks alone", acked, nSeries)
	t.Logf("blocks: %d shipped by 3 ingesters, %d live after compaction (%d in the index), compacted, indexed and loaded %s after the flushes",
		shipped, len(live), len(idx.Blocks), compacted.Round(time.Millisecond))
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
