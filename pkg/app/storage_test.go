package app_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/ring"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/neocortex-metrics/neocortex/pkg/app"
	"github.com/neocortex-metrics/neocortex/pkg/storage/bucketindex"
)

// storageConfig reads blocks for all of a query's range and ingesters for
// all of it too, so that the answers must be deduplicated, and reads the
// bucket index afresh on every query.
func storageConfig(t *testing.T) *app.Config {
	cfg := testConfig(t)
	cfg.Querier.QueryIngestersWithin = 0
	cfg.Querier.QueryStoreAfter = 0
	cfg.Querier.BucketIndexCacheTTL = 0
	cfg.StoreGateway.SyncInterval = time.Hour    // the tests sync explicitly
	cfg.Compactor.CompactionInterval = time.Hour // the tests compact explicitly
	cfg.Frontend.QueryRange.CacheResults = false // every answer from the storage
	return cfg
}

// flushToBucket ships every head to the bucket, compacts it (which writes
// the bucket index) and makes the store-gateway load the blocks.
func flushToBucket(t *testing.T, a *app.App) {
	t.Helper()
	resp, err := testHTTP.Post("http://"+a.Server.HTTPAddr()+"/ingester/flush?wait=true", "", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	syncBlocks(t, a)
}

func syncBlocks(t *testing.T, a *app.App) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, a.Compactor.CompactOnce(ctx))
	require.NoError(t, a.StoreGateway.SyncNow(ctx))
}

// storageQueries are answered the same from ingesters, blocks, and both.
var storageQueries = []string{
	`up`,
	`sum(up)`,
	`count_over_time(up[10m])`,
	`sum by (job) (rate(requests_total[5m]))`,
	`max_over_time(requests_total{job="api"}[15m])`,
	`requests_total{instance=~"i-[12]"}`,
	`count(count by (instance) (requests_total))`,
}

func pushStorageData(t *testing.T, a *app.App, tenant string, start time.Time) {
	t.Helper()
	req := &prompb.WriteRequest{}
	for i := 0; i < 4; i++ {
		var up, reqs []prompb.Sample
		for s := 0; s < 120; s++ { // 30 minutes at 15s
			ts := start.Add(time.Duration(s) * 15 * time.Second).UnixMilli()
			up = append(up, prompb.Sample{Timestamp: ts, Value: float64((s + i) % 2)})
			reqs = append(reqs, prompb.Sample{Timestamp: ts, Value: float64(s * (i + 1))})
		}
		job := []string{"api", "db"}[i%2]
		inst := fmt.Sprintf("i-%d", i)
		req.Timeseries = append(req.Timeseries,
			series("up", map[string]string{"job": job, "instance": inst}, up...),
			series("requests_total", map[string]string{"job": job, "instance": inst}, reqs...))
	}
	require.NoError(t, pushClient(a, tenant).Push(context.Background(), req))
}

func answers(t *testing.T, a *app.App, tenant string, start, end time.Time) map[string]map[string][][2]float64 {
	t.Helper()
	out := map[string]map[string][][2]float64{}
	for _, q := range storageQueries {
		m, status := queryRange(t, a, tenant, q, start, end, 30*time.Second)
		require.Equal(t, http.StatusOK, status, q)
		require.NotEmpty(t, m, q)
		out[q] = m
	}
	return out
}

// TestBlocksAnswerLikeTheIngesters writes, answers a set of queries from
// the ingesters, ships everything to the bucket, and answers them again
// from ingesters and blocks together (each sample once) and then from the
// blocks alone, after the ingester's data is gone.
func TestBlocksAnswerLikeTheIngesters(t *testing.T) {
	cfg := storageConfig(t)
	a := startApp(t, cfg)
	start := time.Now().Add(-40 * time.Minute).Truncate(time.Minute)
	end := start.Add(30 * time.Minute)
	pushStorageData(t, a, "team", start)
	pushStorageData(t, a, "other", start.Add(time.Minute))
	fromIngesters := answers(t, a, "team", start, end)
	require.Zero(t, counterValue(t, a, "neocortex_querier_fetched_series_total", map[string]string{"tenant": "team", "source": "store-gateways"}))

	flushToBucket(t, a)
	require.Equal(t, fromIngesters, answers(t, a, "team", start, end), "ingesters and blocks together")
	require.NotZero(t, counterValue(t, a, "neocortex_querier_fetched_series_total", map[string]string{"tenant": "team", "source": "store-gateways"}))

	// A new process on the same bucket, without the ingester's data.
	a.Stop()
	require.NoError(t, os.RemoveAll(cfg.Ingester.DataDir))
	cfg2 := storageConfig(t)
	cfg2.Storage = cfg.Storage
	b := startApp(t, cfg2)
	fromBlocks := answers(t, b, "team", start, end)
	require.Equal(t, fromIngesters, fromBlocks, "blocks alone")
	require.Zero(t, counterValue(t, b, "neocortex_querier_fetched_series_total", map[string]string{"tenant": "team", "source": "ingesters"}))

	// Labels and series come from the blocks too, per tenant.
	for _, tc := range []struct{ tenant, path, want string }{
		{"team", "/prometheus/api/v1/label/instance/values", `["i-0","i-1","i-2","i-3"]`},
		{"team", "/prometheus/api/v1/labels?match[]=up", `["__name__","instance","job"]`},
		{"team", fmt.Sprintf("/prometheus/api/v1/series?match[]=up{job=%%22api%%22}&start=%d&end=%d", start.Unix(), end.Unix()),
			`[{"__name__":"up","instance":"i-0","job":"api"},{"__name__":"up","instance":"i-2","job":"api"}]`},
		{"nobody", "/prometheus/api/v1/labels", `[]`},
	} {
		status, body := getRaw(t, b, tc.tenant, tc.path)
		require.Equal(t, http.StatusOK, status, body)
		require.JSONEq(t, `{"status":"success","data":`+tc.want+`}`, body, tc.path)
	}

	// Tenants never see each other's blocks.
	other, status := queryRange(t, b, "other", `count(up)`, start, end, 30*time.Second)
	require.Equal(t, http.StatusOK, status)
	require.Len(t, other, 1)
	none, status := queryRange(t, b, "nobody", `up`, start, end, 30*time.Second)
	require.Equal(t, http.StatusOK, status)
	require.Empty(t, none)
}

// TestMissingBlockFailsTheQuery deletes a block's chunks from the bucket
// behind the store-gateway's back: queries over it fail with a 5xx that
// says which block, instead of answering with less data.
func TestMissingBlockFailsTheQuery(t *testing.T) {
	cfg := storageConfig(t)
	cfg.Querier.QueryIngestersWithin = time.Minute // the blocks alone answer
	a := startApp(t, cfg)
	// Within one 2h block range: one block.
	start := time.Now().Truncate(2 * time.Hour).Add(-2*time.Hour + 10*time.Minute)
	end := start.Add(30 * time.Minute)
	pushStorageData(t, a, "team", start)
	flushToBucket(t, a)
	before, status := queryRange(t, a, "team", `sum(up)`, start, end, time.Minute)
	require.Equal(t, http.StatusOK, status)
	require.Len(t, before, 1)

	bkt, err := filesystem.NewBucket(cfg.Storage.Filesystem.Dir)
	require.NoError(t, err)
	idx, err := bucketindex.ReadIndex(context.Background(), bkt, "team")
	require.NoError(t, err)
	require.Len(t, idx.Blocks, 1)
	id := idx.Blocks[0].ID
	require.NoError(t, bkt.Delete(context.Background(), path.Join("team", id.String(), "chunks", "000001")))

	resp := getQuery(t, a, "team", fmt.Sprintf("/prometheus/api/v1/query_range?query=sum(up)&start=%d&end=%d&step=60", start.Unix(), end.Unix()))
	require.Equal(t, http.StatusInternalServerError, resp.status, resp.body.Error)
	require.Contains(t, resp.body.Error, "1 blocks were not answered by any store-gateway ("+id.String()+")")
}

// TestReplicasCompactToOneCopy writes through three ingesters with RF=3
// sharing one bucket: each ships its own copy of every block, and the
// compactor merges them into one block holding each sample once.
func TestReplicasCompactToOneCopy(t *testing.T) {
	bucketDir := t.TempDir()
	cluster := func(target, id string, join []string) *app.Config {
		cfg := clusterConfig(t, target, id, join)
		cfg.Storage.Filesystem.Dir = bucketDir
		cfg.Compactor.CompactionInterval = time.Hour
		cfg.StoreGateway.SyncInterval = time.Hour
		return cfg
	}
	first := cluster(app.Ingester, "ingester-1", nil)
	seed := []string{fmt.Sprintf("127.0.0.1:%d", first.Memberlist.TCPTransport.BindPort)}
	ingesters := []*app.App{startApp(t, first)}
	for i := 2; i <= 3; i++ {
		ingesters = append(ingesters, startApp(t, cluster(app.Ingester, fmt.Sprintf("ingester-%d", i), seed)))
	}
	front := startApp(t, cluster(app.Distributor+","+app.Compactor, "front", seed))
	eventually(t, 30*time.Second, func() bool { return front.Ring.InstancesCount() == 3 }, "the distributor sees 3 ingesters")

	// Within one 2h block range, so that each replica ships one block.
	start := time.Now().Truncate(2 * time.Hour).Add(-2*time.Hour + 10*time.Minute)
	pushStorageData(t, front, "team", start)
	const wantSamples = 8 * 120
	for _, ing := range ingesters {
		eventually(t, 10*time.Second, func() bool {
			return counterValue(t, ing, "neocortex_ingester_ingested_samples_total", map[string]string{"tenant": "team"}) == wantSamples
		}, "every replica has every sample")
		resp, err := testHTTP.Post("http://"+ing.Server.HTTPAddr()+"/ingester/flush?wait=true", "", nil)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusNoContent, resp.StatusCode)
	}
	bkt, err := filesystem.NewBucket(bucketDir)
	require.NoError(t, err)
	ctx := context.Background()
	require.Len(t, blockDirs(t, bkt, "team"), 3, "one block per replica")

	require.NoError(t, front.Compactor.CompactOnce(ctx))
	idx, err := bucketindex.ReadIndex(ctx, bkt, "team")
	require.NoError(t, err)
	live := idx.Queryable(0, time.Now().UnixMilli())
	require.Len(t, live, 1, "one block once the replicas are merged")
	require.Len(t, idx.DeletionMarks, 3, "the three copies are marked for deletion")
	series, samples := openBlock(t, bkt, "team", live[0].ID.String())
	require.Equal(t, 8, series)
	require.Equal(t, wantSamples, samples, "each sample once")
}

func blockDirs(t *testing.T, bkt objstore.Bucket, tenant string) []string {
	t.Helper()
	var out []string
	require.NoError(t, bkt.Iter(context.Background(), tenant+"/", func(name string) error {
		if strings.HasSuffix(name, "/") {
			out = append(out, name)
		}
		return nil
	}))
	return out
}

// openBlock downloads a block and opens it with the Prometheus TSDB,
// returning its number of series and samples.
func openBlock(t *testing.T, bkt objstore.Bucket, tenant, id string) (series, samples int) {
	t.Helper()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), id)
	require.NoError(t, objstore.DownloadDir(ctx, log.NewNopLogger(), bkt, path.Join(tenant, id), path.Join(tenant, id), dir))
	b, err := tsdb.OpenBlock(nil, dir, nil, nil)
	require.NoError(t, err)
	defer b.Close()
	q, err := tsdb.NewBlockQuerier(b, b.MinTime(), b.MaxTime())
	require.NoError(t, err)
	defer q.Close()
	ss := q.Select(ctx, true, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	for ss.Next() {
		series++
		it := ss.At().Iterator(nil)
		for it.Next() == chunkenc.ValFloat {
			samples++
		}
	}
	require.NoError(t, ss.Err())
	return series, samples
}

// TestStoreGatewayReplicas runs two store-gateways with replication factor
// 2 on a gossiped ring: both serve every block. With one unreachable the
// querier gets each block from the other; with both unreachable the query
// fails loudly instead of answering without the blocks.
func TestStoreGatewayReplicas(t *testing.T) {
	bucketDir := t.TempDir()
	gossip := func(target, id string, join []string) *app.Config {
		cfg := clusterConfig(t, target, id, join)
		cfg.Ingester.Ring.KVStore.Store = "inmemory"
		cfg.Ingester.Ring.ReplicationFactor = 1
		cfg.StoreGateway.Ring.KVStore.Store = "memberlist"
		cfg.StoreGateway.Ring.ReplicationFactor = 2
		cfg.StoreGateway.Ring.InstanceID = id
		cfg.StoreGateway.SyncInterval = time.Hour
		cfg.Storage.Filesystem.Dir = bucketDir
		cfg.Compactor.CompactionInterval = time.Hour
		cfg.Querier.QueryIngestersWithin = time.Minute // blocks only
		cfg.Querier.QueryStoreAfter = 0
		cfg.Querier.BucketIndexCacheTTL = 0
		return cfg
	}
	firstCfg := gossip(app.Distributor+","+app.Ingester+","+app.Querier+","+app.Compactor, "front", nil)
	seed := []string{fmt.Sprintf("127.0.0.1:%d", firstCfg.Memberlist.TCPTransport.BindPort)}
	front := startApp(t, firstCfg)
	gateways := []*app.App{
		startApp(t, gossip(app.StoreGateway, "store-gateway-1", seed)),
		startApp(t, gossip(app.StoreGateway, "store-gateway-2", seed)),
	}
	eventually(t, 30*time.Second, func() bool {
		for _, id := range []string{"store-gateway-1", "store-gateway-2"} {
			if st, err := front.StoreGatewayRing.GetInstanceState(id); err != nil || st != ring.ACTIVE {
				return false
			}
		}
		return true
	}, "the querier sees both store-gateways ACTIVE")

	start := time.Now().Truncate(2 * time.Hour).Add(-2*time.Hour + 10*time.Minute)
	end := start.Add(30 * time.Minute)
	pushStorageData(t, front, "team", start)
	resp, err := testHTTP.Post("http://"+front.Server.HTTPAddr()+"/ingester/flush?wait=true", "", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.NoError(t, front.Compactor.CompactOnce(context.Background()))
	for _, g := range gateways {
		require.NoError(t, g.StoreGateway.SyncNow(context.Background()))
		require.Equal(t, 1.0, gaugeValue(t, g, "neocortex_storegateway_blocks_loaded"), "each replica serves the block")
	}
	r0 := getQuery(t, front, "team", fmt.Sprintf("/prometheus/api/v1/query?query=count(up)&time=%d", end.Unix()))
	require.Equal(t, http.StatusOK, r0.status, r0.body.Error)
	want, status := queryRange(t, front, "team", `sum by (job) (up)`, start, end, time.Minute)
	require.Equal(t, http.StatusOK, status)
	require.Len(t, want, 2)

	// One replica unreachable (its gRPC server gone, still ACTIVE in the
	// ring): the other answers.
	gateways[0].Server.GRPC.Stop()
	for i := 0; i < 4; i++ { // whichever replica the querier tries first
		got, status := queryRange(t, front, "team", `sum by (job) (up)`, start, end, time.Minute)
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, want, got)
	}

	// Both unreachable: a 5xx naming the block, never a partial answer.
	gateways[1].Server.GRPC.Stop()
	r := getQuery(t, front, "team", fmt.Sprintf("/prometheus/api/v1/query_range?query=up&start=%d&end=%d&step=60", start.Unix(), end.Unix()))
	require.Equal(t, http.StatusInternalServerError, r.status)
	require.Contains(t, r.body.Error, "1 blocks were not answered by any store-gateway")
}

// gaugeValue returns the value of an unlabelled gauge.
func gaugeValue(t *testing.T, a *app.App, name string) float64 {
	t.Helper()
	mfs, err := a.Registry.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no gauge %s", name)
	return 0
}

// TestRetentionAndTenantDeletion: the compactor marks for deletion exactly
// the blocks past a tenant's retention, which queries stop reading at once,
// and deletes every block of a tenant deleted through the purger API.
func TestRetentionAndTenantDeletion(t *testing.T) {
	cfg := storageConfig(t)
	cfg.Querier.QueryIngestersWithin = time.Minute // blocks only
	cfg.Limits.CompactorBlocksRetentionPeriod = 6 * time.Hour
	a := startApp(t, cfg)
	h2 := 2 * time.Hour
	old := time.Now().Truncate(h2).Add(-4 * h2) // its block ends 6h–8h ago
	recent := time.Now().Truncate(h2).Add(-h2)  // ends within the last 2h
	pushStorageData(t, a, "team", old)
	pushStorageData(t, a, "team", recent)
	pushStorageData(t, a, "doomed", recent)
	flushToBucket(t, a)

	bkt, err := filesystem.NewBucket(cfg.Storage.Filesystem.Dir)
	require.NoError(t, err)
	ctx := context.Background()
	idx, err := bucketindex.ReadIndex(ctx, bkt, "team")
	require.NoError(t, err)
	require.Len(t, idx.Blocks, 2)
	require.Len(t, idx.DeletionMarks, 1, "only the block past retention")
	require.Equal(t, old.UnixMilli(), idx.Blocks[0].MinTime)
	require.Equal(t, idx.Blocks[0].ID, idx.DeletionMarks[0].ID)

	count := func(tenant string, from time.Time) int {
		m, status := queryRange(t, a, tenant, `up`, from, from.Add(30*time.Minute), time.Minute)
		require.Equal(t, http.StatusOK, status)
		return len(m)
	}
	require.Equal(t, 0, count("team", old), "past retention")
	require.Equal(t, 4, count("team", recent))
	require.Equal(t, 4, count("doomed", recent))

	status := func() string {
		_, body := deleteTenantRequest(t, a, http.MethodGet, "/purger/delete_tenant_status", "doomed")
		return body
	}
	require.JSONEq(t, `{"tenant_id":"doomed","blocks_deleted":false}`, status())
	code, _ := deleteTenantRequest(t, a, http.MethodPost, "/purger/delete_tenant", "doomed")
	require.Equal(t, http.StatusOK, code)
	syncBlocks(t, a)
	require.JSONEq(t, `{"tenant_id":"doomed","blocks_deleted":true}`, status())
	require.Empty(t, blockDirs(t, bkt, "doomed"))
	require.Equal(t, 0, count("doomed", recent))
	require.Equal(t, 4, count("team", recent), "other tenants keep their blocks")
}

func deleteTenantRequest(t *testing.T, a *app.App, method, path, tenant string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+a.Server.HTTPAddr()+path, nil)
	require.NoError(t, err)
	req.Header.Set("X-Scope-OrgID", tenant)
	resp, err := testHTTP.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// TestIdleTenantReachesTheBucket: the last samples of a tenant that stops
// writing are cut and shipped once it has been idle for
// head_compaction_idle_timeout, so that queries that no longer ask the
// ingesters (query_ingesters_within) still find them. Here the process
// restarts on the ingester's WAL and answers from the blocks alone, as
// before from the ingesters.
func TestIdleTenantReachesTheBucket(t *testing.T) {
	cfg := storageConfig(t)
	cfg.Ingester.HeadCompactionIdleTimeout = 0 // not before the restart
	a := startApp(t, cfg)
	start := time.Now().Add(-40 * time.Minute).Truncate(time.Minute)
	end := start.Add(30 * time.Minute)
	pushStorageData(t, a, "team", start)
	fromIngesters := answers(t, a, "team", start, end)
	a.Stop()

	cfg2 := storageConfig(t)
	cfg2.Storage, cfg2.Ingester.DataDir = cfg.Storage, cfg.Ingester.DataDir
	cfg2.Querier.QueryIngestersWithin = time.Minute // the blocks alone answer
	cfg2.Ingester.HeadCompactionInterval = 100 * time.Millisecond
	cfg2.Ingester.HeadCompactionIdleTimeout = 300 * time.Millisecond
	b := startApp(t, cfg2)
	// Cut, then a later cycle begun: the cut's blocks are shipped.
	var afterCut float64
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		require.True(t, time.Now().Before(deadline), "the idle tenant's head cut and shipped")
		checks := counterValue(t, b, "neocortex_ingester_head_compactions_total", nil)
		if afterCut == 0 && counterValue(t, b, "neocortex_ingester_idle_head_cuts_total", nil) > 0 {
			afterCut = checks + 2 // checks may be read before the cut's cycle began
		}
		if afterCut > 0 && checks >= afterCut {
			break
		}
	}
	require.Positive(t, counterValue(t, b, "neocortex_ingester_shipper_uploads_total", nil))
	syncBlocks(t, b)
	require.Equal(t, fromIngesters, answers(t, b, "team", start, end))
	require.Zero(t, counterValue(t, b, "neocortex_querier_fetched_series_total", map[string]string{"tenant": "team", "source": "ingesters"}))
}
