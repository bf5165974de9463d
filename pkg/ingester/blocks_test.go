package ingester

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/kv/consul"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/neocortex-metrics/neocortex/pkg/ingester/ingesterpb"
	"github.com/neocortex-metrics/neocortex/pkg/limits"
	"github.com/neocortex-metrics/neocortex/pkg/tenant"
	"github.com/neocortex-metrics/neocortex/pkg/validation"
)

type shippingIngester struct {
	*Ingester
	bkt objstore.Bucket
	reg *prometheus.Registry
	dir string
}

func newShippingIngester(t *testing.T, dataDir string, bkt objstore.Bucket, change func(*Config)) *shippingIngester {
	t.Helper()
	var cfg Config
	var lim limits.Limits
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	lim.RegisterFlags(fs)
	require.NoError(t, fs.Parse(nil))
	cfg.DataDir = dataDir
	cfg.Ring.InstanceID = "test"
	cfg.BlockRange = time.Hour
	if change != nil {
		change(&cfg)
	}
	require.NoError(t, cfg.Validate())
	kv, closer := consul.NewInMemoryClient(ring.GetCodec(), log.NewNopLogger(), nil)
	t.Cleanup(func() { _ = closer.Close() })
	reg := prometheus.NewRegistry()
	ing, err := New(cfg, Deps{
		Limits:     limits.NewOverrides(lim, nil),
		KV:         kv,
		Addr:       "127.0.0.1:1",
		Bucket:     bkt,
		Discarded:  validation.NewDiscardedSamples(reg),
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		Registerer: reg,
	})
	require.NoError(t, err)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), ing))
	return &shippingIngester{Ingester: ing, bkt: bkt, reg: reg, dir: dataDir}
}

func (s *shippingIngester) stop(t *testing.T) {
	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), s.Ingester))
}

// pushSeries pushes n series with one sample at each of the timestamps.
func pushSeries(t *testing.T, ing *Ingester, tenantID string, n int, timestamps ...int64) {
	t.Helper()
	req := &prompb.WriteRequest{}
	for i := 0; i < n; i++ {
		ts := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "m"}, {Name: "i", Value: string(rune('a' + i))}}}
		for _, t := range timestamps {
			ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: t, Value: float64(t)})
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	buf, err := req.Marshal()
	require.NoError(t, err)
	_, err = ing.Push(tenant.WithTenant(context.Background(), tenantID), &ingesterpb.PushRequest{WriteRequest: buf})
	require.NoError(t, err)
}

// bucketBlocks lists the block directories of a tenant in the bucket.
func bucketBlocks(t *testing.T, bkt objstore.Bucket, tenantID string) []string {
	t.Helper()
	var out []string
	require.NoError(t, bkt.Iter(context.Background(), tenantID+"/", func(name string) error {
		if strings.HasSuffix(name, "/") {
			out = append(out, strings.TrimSuffix(name, "/"))
		}
		return nil
	}))
	return out
}

// samplesInBucket downloads the tenant's blocks and counts their samples,
// opening each with the Prometheus TSDB.
func samplesInBucket(t *testing.T, bkt objstore.Bucket, tenantID string) (blocks, samples int, ranges [][2]int64) {
	t.Helper()
	ctx := context.Background()
	for _, dir := range bucketBlocks(t, bkt, tenantID) {
		local := filepath.Join(t.TempDir(), path.Base(dir))
		require.NoError(t, objstore.DownloadDir(ctx, log.NewNopLogger(), bkt, dir, dir, local))
		b, err := tsdb.OpenBlock(nil, local, nil, nil)
		require.NoError(t, err)
		q, err := tsdb.NewBlockQuerier(b, b.MinTime(), b.MaxTime())
		require.NoError(t, err)
		ss := q.Select(ctx, true, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
		for ss.Next() {
			it := ss.At().Iterator(nil)
			for it.Next() == chunkenc.ValFloat {
				samples++
			}
			require.NoError(t, it.Err())
		}
		require.NoError(t, ss.Err())
		require.NoError(t, q.Close())
		ranges = append(ranges, [2]int64{b.MinTime(), b.MaxTime()})
		require.NoError(t, b.Close())
		blocks++
	}
	return blocks, samples, ranges
}

func TestFlushShipsAlignedBlocks(t *testing.T) {
	fsBkt, err := filesystem.NewBucket(t.TempDir())
	require.NoError(t, err)
	bkt := &failingBucket{Bucket: fsBkt}
	ing := newShippingIngester(t, t.TempDir(), bkt, nil)
	defer ing.stop(t)
	h := time.Hour.Milliseconds()
	// 3 series × 4 samples over [0.5h, 2.5h]: three 1h block ranges.
	pushSeries(t, ing.Ingester, "t", 3, h/2, h+1, 2*h-1, 2*h+h/2)

	srv := httptest.NewServer(http.HandlerFunc(ing.FlushHandler))
	defer srv.Close()
	resp, err := http.Post(srv.URL+"?wait=true", "", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)

	blocks, samples, ranges := samplesInBucket(t, bkt, "t")
	require.Equal(t, 3, blocks)
	require.Equal(t, 12, samples)
	for _, r := range ranges {
		// No block spans two ranges.
		require.Equal(t, r[0]/h, (r[1]-1)/h, "block [%d, %d)", r[0], r[1])
	}
	require.Equal(t, 3.0, testutil.ToFloat64(ing.shipperMetrics.uploads))
	// Each block's meta.json went up after all its other files.
	last := map[string]string{}
	for _, name := range bkt.uploaded {
		parts := strings.SplitN(name, "/", 3) // tenant, block, file
		last[parts[1]] = parts[2]
	}
	require.Len(t, last, 3)
	for dir, name := range last {
		require.Equal(t, "meta.json", name, dir)
	}

	// What is shipped is recorded, and a second flush ships nothing new.
	var rec shippedFile
	b, err := os.ReadFile(filepath.Join(ing.dir, "t", shippedFilename))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &rec))
	require.Len(t, rec.Shipped, 3)
	require.NoError(t, ing.Flush(context.Background()))
	require.Equal(t, 3.0, testutil.ToFloat64(ing.shipperMetrics.uploads))
	require.Len(t, bucketBlocks(t, bkt, "t"), 3)
}

func TestShippedBlocksLeaveAfterRetentionOnly(t *testing.T) {
	bkt, err := filesystem.NewBucket(t.TempDir())
	require.NoError(t, err)
	failing := &failingBucket{Bucket: bkt}
	ing := newShippingIngester(t, t.TempDir(), failing, func(c *Config) {
		c.HeadCompactionInterval = 50 * time.Millisecond
		c.Retention = time.Hour
	})
	defer ing.stop(t)
	h := time.Hour.Milliseconds()
	old := time.Now().Add(-10*time.Hour).UnixMilli() / h * h // past retention
	pushSeries(t, ing.Ingester, "t", 2, old+1, old+2)

	// Uploads fail: the block stays local however old it is.
	failing.fail.Store(true)
	require.Error(t, ing.Flush(context.Background()))
	db, err := ing.lookupDB("t")
	require.NoError(t, err)
	require.Len(t, db.Blocks(), 1)
	time.Sleep(1500 * time.Millisecond) // past one TSDB block reload (min 1s)
	require.Len(t, db.Blocks(), 1, "an unshipped block must never be deleted")
	require.Empty(t, bucketBlocks(t, bkt, "t"))

	// Uploads work again: the periodic cycle ships it, then retention
	// deletes the local copy.
	failing.fail.Store(false)
	require.Eventually(t, func() bool { return len(bucketBlocks(t, bkt, "t")) == 1 }, 10*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool { return len(db.Blocks()) == 0 }, 10*time.Second, 50*time.Millisecond)
	_, samples, _ := samplesInBucket(t, bkt, "t")
	require.Equal(t, 4, samples)
}

func TestShutdownWithFlushShipsEverything(t *testing.T) {
	bkt, err := filesystem.NewBucket(t.TempDir())
	require.NoError(t, err)
	dir := t.TempDir()
	ing := newShippingIngester(t, dir, bkt, nil)
	now := time.Now().UnixMilli()
	pushSeries(t, ing.Ingester, "a", 2, now-2000, now-1000)
	pushSeries(t, ing.Ingester, "b", 1, now-1000)
	ing.FlushOnShutdown()
	ing.stop(t)
	_, a, _ := samplesInBucket(t, bkt, "a")
	_, b, _ := samplesInBucket(t, bkt, "b")
	require.Equal(t, 4, a)
	require.Equal(t, 1, b)

	// A restart finds the blocks shipped and does not ship them again.
	ing = newShippingIngester(t, dir, bkt, nil)
	defer ing.stop(t)
	require.NoError(t, ing.Flush(context.Background()))
	require.Equal(t, 0.0, testutil.ToFloat64(ing.shipperMetrics.uploads))
	require.Len(t, bucketBlocks(t, bkt, "a"), 1)
}

// failingBucket fails uploads while fail is set, and records the names
// uploaded.
type failingBucket struct {
	objstore.Bucket
	fail     atomic.Bool
	mu       sync.Mutex
	uploaded []string
}

func (b *failingBucket) Upload(ctx context.Context, name string, r io.Reader, opts ...objstore.ObjectUploadOption) error {
	if b.fail.Load() {
		return errInjected
	}
	b.mu.Lock()
	b.uploaded = append(b.uploaded, name)
	b.mu.Unlock()
	return b.Bucket.Upload(ctx, name, r, opts...)
}

var errInjected = errors.New("injected upload failure")

// TestSymbolTableRenewedWhenHeadTruncates checks that the push path's symbol
// table starts afresh when a cut drops data from the head, and only then,
// and that series pushed after that are still the same series.
func TestSymbolTableRenewedWhenHeadTruncates(t *testing.T) {
	bkt, err := filesystem.NewBucket(t.TempDir())
	require.NoError(t, err)
	ing := newShippingIngester(t, t.TempDir(), bkt, func(c *Config) { c.HeadCompactionInterval = time.Hour })
	defer ing.stop(t)
	h := time.Hour.Milliseconds()
	base := time.Now().UnixMilli() / h * h
	dedupe := labels.ImplementationName == "dedupelabels"
	// m plus the i values a, b, c: name and value strings "__name__",
	// "m", "i", "a", "b", "c".
	const stringsOf3Series = 6

	pushSeries(t, ing.Ingester, "t", 3, base+1)
	db, err := ing.lookupDB("t")
	require.NoError(t, err)
	if dedupe {
		require.Equal(t, stringsOf3Series, db.symbolTable().Len())
	}

	// The head spans less than 1.5 block ranges: nothing is cut, the
	// table stays.
	require.NoError(t, ing.cutAndShip(context.Background(), false))
	require.Empty(t, db.Blocks())
	if dedupe {
		require.Equal(t, stringsOf3Series, db.symbolTable().Len())
	}

	// Two hours on, the first hour is cut and leaves the head: a new table.
	pushSeries(t, ing.Ingester, "t", 3, base+2*h)
	require.NoError(t, ing.cutAndShip(context.Background(), false))
	require.Len(t, db.Blocks(), 1)
	if dedupe {
		require.Zero(t, db.symbolTable().Len())
	}

	// The same series again, their labels now built in the new table:
	// the head finds them, and makes no new ones.
	pushSeries(t, ing.Ingester, "t", 3, base+2*h+1000)
	require.Equal(t, uint64(3), db.Head().NumSeries())
	if dedupe {
		require.Equal(t, stringsOf3Series, db.symbolTable().Len())
	}
	var got []string
	require.NoError(t, ing.QueryChunks(tenant.WithTenant(context.Background(), "t"), "t", &ingesterpb.QueryRequest{
		StartMs:  base + 2*h,
		EndMs:    base + 3*h,
		Matchers: []*ingesterpb.LabelMatcher{{Type: ingesterpb.LabelMatcher_EQ, Name: "__name__", Value: "m"}},
	}, func(lset labels.Labels, metas []chunks.Meta) error {
		n := 0
		for _, m := range metas {
			n += m.Chunk.NumSamples()
		}
		got = append(got, fmt.Sprintf("%s %d", lset, n))
		return nil
	}))
	require.Equal(t, []string{`{__name__="m", i="a"} 2`, `{__name__="m", i="b"} 2`, `{__name__="m", i="c"} 2`}, got)
}

// TestIdleTenantHeadIsCutAndShipped: the head of a tenant that has sent
// nothing for head_compaction_idle_timeout is cut whole and shipped, as
// the head of a busy tenant is not until it spans 1.5 block ranges: else
// the last hours of a tenant that stopped writing would stay in its head,
// out of the bucket, and out of the answers once queries for their time
// stop asking the ingesters (querier.query_ingesters_within). The tenant
// may write again, after what was cut.
func TestIdleTenantHeadIsCutAndShipped(t *testing.T) {
	h := time.Hour.Milliseconds()
	for _, tc := range []struct {
		idleTimeout time.Duration
		wantBlocks  int
	}{
		{idleTimeout: 300 * time.Millisecond, wantBlocks: 2},
		{idleTimeout: 0, wantBlocks: 0}, // off
	} {
		t.Run(fmt.Sprintf("timeout=%s", tc.idleTimeout), func(t *testing.T) {
			bkt, err := filesystem.NewBucket(t.TempDir())
			require.NoError(t, err)
			ing := newShippingIngester(t, t.TempDir(), bkt, func(c *Config) {
				c.HeadCompactionInterval = 50 * time.Millisecond
				c.HeadCompactionIdleTimeout = tc.idleTimeout
			})
			defer ing.stop(t)
			// 3 series × 2 samples over two 1h block ranges.
			pushSeries(t, ing.Ingester, "idle", 3, h/2, h+h/4)
			wait := 10 * time.Second
			if tc.wantBlocks == 0 {
				wait = time.Second // 20 cycles
			}
			keepBusy(t, ing.Ingester, wait, func() bool {
				return tc.wantBlocks > 0 && len(bucketBlocks(t, bkt, "idle")) == tc.wantBlocks
			})
			blocks, samples, _ := samplesInBucket(t, bkt, "idle")
			require.Equal(t, tc.wantBlocks, blocks)
			require.Equal(t, 3*2*tc.wantBlocks/2, samples)
			require.Empty(t, bucketBlocks(t, bkt, "busy"))
			db, err := ing.lookupDB("idle")
			require.NoError(t, err)
			wantSeries := uint64(3)
			if tc.wantBlocks > 0 {
				wantSeries = 0
			}
			require.Equal(t, wantSeries, db.Head().NumSeries(), "series left in the idle tenant's head")
			require.Equal(t, float64(tc.wantBlocks/2), testutil.ToFloat64(ing.blockMetrics.idleCuts))

			// Writing again, after what was cut, is accepted.
			pushSeries(t, ing.Ingester, "idle", 3, 2*h)
			require.Equal(t, uint64(3), db.Head().NumSeries())
		})
	}
}

// TestIdleTenantTSDBIsClosed: a tenant that has sent nothing for
// close_idle_tsdb_timeout, and whose data has all been shipped and has
// left the local disk, has its TSDB closed and its directory removed; its
// data stays in the bucket, a busy tenant keeps its TSDB, and a new push
// opens a new TSDB.
func TestIdleTenantTSDBIsClosed(t *testing.T) {
	h := time.Hour.Milliseconds()
	bkt, err := filesystem.NewBucket(t.TempDir())
	require.NoError(t, err)
	ing := newShippingIngester(t, t.TempDir(), bkt, func(c *Config) {
		c.HeadCompactionInterval = 50 * time.Millisecond
		c.HeadCompactionIdleTimeout = 100 * time.Millisecond
		c.CloseIdleTSDBTimeout = 300 * time.Millisecond
		c.Retention = time.Millisecond // the samples are from 1970: old enough
	})
	defer ing.stop(t)
	pushSeries(t, ing.Ingester, "gone", 3, h/2)
	keepBusy(t, ing.Ingester, 10*time.Second, func() bool {
		db, err := ing.lookupDB("gone")
		return err == nil && db == nil
	})
	db, err := ing.lookupDB("gone")
	require.NoError(t, err)
	require.Nil(t, db, "the idle tenant's TSDB is closed")
	_, err = os.Stat(filepath.Join(ing.dir, "gone"))
	require.True(t, os.IsNotExist(err), "its directory is removed: %v", err)
	blocks, samples, _ := samplesInBucket(t, bkt, "gone")
	require.Equal(t, 1, blocks)
	require.Equal(t, 3, samples)
	busyDB, err := ing.lookupDB("busy")
	require.NoError(t, err)
	require.NotNil(t, busyDB)
	require.Equal(t, 1.0, testutil.ToFloat64(ing.blockMetrics.idleClosed))
	require.Equal(t, 1.0, testutil.ToFloat64(ing.metrics.tenants))
	require.Equal(t, 1, testutil.CollectAndCount(ing.metrics.ingestedSamples), "only the busy tenant's series is left")

	// It may come back.
	pushSeries(t, ing.Ingester, "gone", 3, h)
	db, err = ing.lookupDB("gone")
	require.NoError(t, err)
	require.NotNil(t, db)
	require.Equal(t, uint64(3), db.Head().NumSeries())
	require.Equal(t, 2.0, testutil.ToFloat64(ing.metrics.tenants))
}

// TestUsersOfAClosingTSDB: a push that waits while the tenant's TSDB is
// being closed opens a new one once it is; a read then finds no data, and
// closing does not start while anything uses the TSDB.
func TestUsersOfAClosingTSDB(t *testing.T) {
	ing := newShippingIngester(t, t.TempDir(), nil, func(c *Config) { c.CloseIdleTSDBTimeout = time.Nanosecond })
	defer ing.stop(t)
	pushSeries(t, ing.Ingester, "t", 2, 1000)
	old, err := ing.lookupDB("t")
	require.NoError(t, err)

	// Not closable: the head has series. Nor while in use.
	ing.closeIfIdle("t", old)
	require.False(t, old.closed)

	old.alive.Lock() // as closeIfIdle does
	pushed := make(chan error, 1)
	go func() {
		req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
			Labels:  []prompb.Label{{Name: "__name__", Value: "m"}, {Name: "i", Value: "z"}},
			Samples: []prompb.Sample{{Timestamp: 2000, Value: 1}},
		}}}
		pushed <- ing.PushWriteRequest(context.Background(), "t", req)
	}()
	time.Sleep(50 * time.Millisecond) // the push waits for the lock
	ing.closeLocked("t", old)
	old.alive.Unlock()
	require.NoError(t, <-pushed)

	db, err := ing.lookupDB("t")
	require.NoError(t, err)
	require.NotSame(t, old, db, "a new TSDB")
	require.Equal(t, uint64(1), db.Head().NumSeries(), "the new TSDB has the new push only")
	used, err := ing.useDB("t")
	require.NoError(t, err)
	require.Same(t, db, used)
	require.False(t, used.alive.TryLock(), "in use: closing would wait")
	used.done()
	require.True(t, old.closed)
	require.False(t, old.use(), "the old one is closed to its users")
}

// TestClosingIdleTSDBsUnderLoad closes a tenant's TSDB again and again
// while pushes (empty: they open the TSDB but append nothing, so that it
// stays closable) and queries keep using it: none of them fails, and no
// TSDB is opened in a directory being removed (-race checks the rest).
func TestClosingIdleTSDBsUnderLoad(t *testing.T) {
	ing := newShippingIngester(t, t.TempDir(), nil, func(c *Config) {
		c.CloseIdleTSDBTimeout = time.Nanosecond
		c.HeadCompactionInterval = time.Hour // the test closes, not the loop
	})
	defer ing.stop(t)
	ctx := tenant.WithTenant(context.Background(), "t")
	stop := make(chan struct{})
	errs := make(chan error, 3)
	var wg sync.WaitGroup
	for g := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					errs <- nil
					return
				default:
				}
				var err error
				if g < 2 {
					err = ing.PushWriteRequest(ctx, "t", &prompb.WriteRequest{})
				} else {
					err = ing.QueryChunks(ctx, "t", &ingesterpb.QueryRequest{StartMs: 0, EndMs: 1000}, func(labels.Labels, []chunks.Meta) error { return nil })
				}
				if err != nil {
					errs <- fmt.Errorf("goroutine %d, call %d: %w", g, n, err)
					return
				}
				// A moment unused now and then: closing never waits.
				time.Sleep(200 * time.Microsecond)
			}
		}()
	}
	for range 300 {
		if db, err := ing.lookupDB("t"); err == nil && db != nil {
			ing.closeIfIdle("t", db)
		}
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	for range 3 {
		require.NoError(t, <-errs)
	}
	t.Logf("closed %v times", testutil.ToFloat64(ing.blockMetrics.idleClosed))
	require.Greater(t, testutil.ToFloat64(ing.blockMetrics.idleClosed), 5.0, "closed again and again")
	// The tenant works after all that.
	pushSeries(t, ing.Ingester, "t", 2, 1000)
	db, err := ing.lookupDB("t")
	require.NoError(t, err)
	require.Equal(t, uint64(2), db.Head().NumSeries())
}

// keepBusy has the tenant "busy" push 3 series every 20ms, its head within
// one 1h range, until done or for wait.
func keepBusy(t *testing.T, ing *Ingester, wait time.Duration, done func() bool) {
	t.Helper()
	busy := time.Hour.Milliseconds() / 2
	for deadline := time.Now().Add(wait); time.Now().Before(deadline); {
		busy++
		pushSeries(t, ing, "busy", 3, busy)
		if done() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}
