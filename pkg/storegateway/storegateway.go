// Package storegateway serves the blocks in the bucket to queriers. Blocks
// are sharded over store-gateways by their own ring, each block served by
// RF of them; a store-gateway keeps a small index-header of each block it
// serves on local disk and reads everything else from the bucket by range
// reads (see pkg/storage/bucketblock).
package storegateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/grafana/dskit/concurrency"
	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/thanos-io/objstore"

	"github.com/neocortex-metrics/neocortex/pkg/ringconfig"
	"github.com/neocortex-metrics/neocortex/pkg/storage/bucketblock"
	"github.com/neocortex-metrics/neocortex/pkg/storage/bucketindex"
	"github.com/neocortex-metrics/neocortex/pkg/storegateway/client"
	"github.com/neocortex-metrics/neocortex/pkg/storegateway/storegatewaypb"
)

// Deps are what a store-gateway needs from the rest of the process.
type Deps struct {
	Bucket objstore.InstrumentedBucket
	// KV is the store-gateway ring's KV store client.
	KV kv.Client
	// Ring is a client of the store-gateway ring, run by the caller.
	Ring *ring.Ring
	// Addr is the host:port queriers reach this store-gateway's gRPC API at.
	Addr       string
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// StoreGateway is the store-gateway service.
type StoreGateway struct {
	services.Service
	storegatewaypb.UnimplementedStoreGatewayServer

	cfg          Config
	deps         Deps
	logger       *slog.Logger
	lifecycler   *ring.BasicLifecycler
	ring         *ring.Ring
	subservices  *services.Manager
	watcher      *services.FailureWatcher
	cache        bucketblock.IndexCache
	blockMetrics *bucketblock.Metrics
	metrics      *metrics

	mu     sync.RWMutex
	blocks map[string]map[ulid.ULID]*servedBlock // by tenant
	// closing are blocks dropped from the map, closed once their last
	// query ends.
	closing sync.WaitGroup
}

// servedBlock is a block and the queries reading it.
type servedBlock struct {
	*bucketblock.Block
	readers sync.WaitGroup
}

type metrics struct {
	syncs        prometheus.Counter
	syncFailures prometheus.Counter
	loaded       prometheus.Gauge
	loadFailures prometheus.Counter
	tenants      prometheus.Gauge
}

var _ storegatewaypb.StoreGatewayServer = (*StoreGateway)(nil)

// New returns a store-gateway. It joins its ring when started, loads the
// blocks it owns, and only then turns ACTIVE and takes queries.
func New(cfg Config, deps Deps) (*StoreGateway, error) {
	g := &StoreGateway{cfg: cfg, deps: deps, logger: deps.Logger, blocks: map[string]map[ulid.ULID]*servedBlock{}}
	reg := deps.Registerer
	g.metrics = &metrics{
		syncs: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "neocortex_storegateway_block_syncs_total",
			Help: "Reads of the bucket indexes to find the blocks to serve.",
		}),
		syncFailures: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "neocortex_storegateway_block_sync_failures_total",
			Help: "Block syncs that failed for at least one tenant.",
		}),
		loaded: promauto.With(reg).NewGauge(prometheus.GaugeOpts{
			Name: "neocortex_storegateway_blocks_loaded",
			Help: "Blocks this store-gateway serves.",
		}),
		loadFailures: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "neocortex_storegateway_block_load_failures_total",
			Help: "Blocks that could not be opened; retried on the next sync.",
		}),
		tenants: promauto.With(reg).NewGauge(prometheus.GaugeOpts{
			Name: "neocortex_storegateway_tenants",
			Help: "Tenants with blocks this store-gateway serves.",
		}),
	}
	cache, err := bucketblock.NewIndexCache(cfg.IndexCache, deps.Logger, reg)
	if err != nil {
		return nil, fmt.Errorf("create index cache: %w", err)
	}
	g.cache = cache
	g.blockMetrics = bucketblock.NewMetrics(reg)

	lc, err := cfg.Ring.NewLifecycler(ringconfig.Member{
		Name:         RingName,
		Key:          RingKey,
		Addr:         deps.Addr,
		KV:           deps.KV,
		InitialState: ring.JOINING,
		TokensFile:   filepath.Join(cfg.DataDir, "tokens.json"),
		Logger:       deps.Logger,
		Registerer:   reg,
	})
	if err != nil {
		return nil, err
	}
	g.lifecycler = lc
	g.ring = deps.Ring
	g.Service = services.NewBasicService(g.starting, g.running, g.stopping)
	return g, nil
}

func (g *StoreGateway) starting(ctx context.Context) error {
	if err := os.MkdirAll(g.cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	var err error
	g.subservices, err = services.NewManager(g.lifecycler)
	if err != nil {
		return err
	}
	g.watcher = services.NewFailureWatcher()
	g.watcher.WatchManager(g.subservices)
	if err := services.StartManagerAndAwaitHealthy(ctx, g.subservices); err != nil {
		return fmt.Errorf("start ring: %w", err)
	}
	// Load the owned blocks before taking queries. The ring client sees
	// this instance once its registration went through the KV store.
	if err := g.waitInRing(ctx); err != nil {
		return err
	}
	if err := g.sync(ctx); err != nil {
		g.logger.Warn("initial block sync incomplete; retrying in the background", "err", err)
	}
	if err := g.lifecycler.ChangeState(ctx, ring.ACTIVE); err != nil {
		return fmt.Errorf("switch to ACTIVE in the ring: %w", err)
	}
	return nil
}

func (g *StoreGateway) waitInRing(ctx context.Context) error {
	for {
		if _, err := g.ring.GetInstanceState(g.cfg.Ring.InstanceID); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (g *StoreGateway) running(ctx context.Context) error {
	t := time.NewTicker(g.cfg.SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-g.watcher.Chan():
			return fmt.Errorf("store-gateway ring: %w", err)
		case <-t.C:
			if err := g.sync(ctx); err != nil {
				g.logger.Error("sync blocks", "err", err)
			}
		}
	}
}

func (g *StoreGateway) stopping(error) error {
	err := services.StopManagerAndAwaitStopped(context.Background(), g.subservices)
	g.mu.Lock()
	for tenant, blocks := range g.blocks {
		g.closeBlocksLocked(tenant, blocks, nil)
	}
	g.mu.Unlock()
	g.closing.Wait()
	if cerr := g.cache.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("close index cache: %w", cerr))
	}
	return err
}

// SyncNow reads the bucket indexes and loads and drops blocks at once,
// instead of waiting for the next sync.
func (g *StoreGateway) SyncNow(ctx context.Context) error { return g.sync(ctx) }

// sync loads the blocks this instance owns and drops the others.
func (g *StoreGateway) sync(ctx context.Context) error {
	g.metrics.syncs.Inc()
	tenants, err := bucketindex.ListTenants(ctx, g.deps.Bucket)
	if err != nil {
		g.metrics.syncFailures.Inc()
		return err
	}
	var errs []error
	seen := map[string]bool{}
	for _, tenant := range tenants {
		idx, err := bucketindex.ReadIndex(ctx, g.deps.Bucket, tenant)
		if errors.Is(err, bucketindex.ErrIndexNotFound) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			// Keep what is loaded rather than drop blocks on a read error.
			seen[tenant] = true
			continue
		}
		seen[tenant] = true
		if err := g.syncTenant(ctx, tenant, idx); err != nil {
			errs = append(errs, err)
		}
	}
	g.mu.Lock()
	for tenant, blocks := range g.blocks {
		if !seen[tenant] {
			g.closeBlocksLocked(tenant, blocks, nil)
		}
	}
	g.updateGaugesLocked()
	g.mu.Unlock()
	if len(errs) > 0 {
		g.metrics.syncFailures.Inc()
	}
	return errors.Join(errs...)
}

// syncTenant opens the tenant's owned blocks that are not open yet and
// closes the ones no longer in the index or no longer owned. Blocks marked
// for deletion are still served: queriers with an older index may ask.
func (g *StoreGateway) syncTenant(ctx context.Context, tenant string, idx *bucketindex.Index) error {
	owned := map[ulid.ULID]bool{}
	var bufDescs [5]ring.InstanceDesc
	var bufHosts, bufZones [5]string
	for _, b := range idx.Blocks {
		rs, err := g.ring.Get(client.BlockKey(tenant, b.ID), client.SyncOp, bufDescs[:0], bufHosts[:0], bufZones[:0])
		if err != nil {
			return fmt.Errorf("find owners of block %s: %w", b.ID, err)
		}
		if rs.Includes(g.lifecycler.GetInstanceAddr()) {
			owned[b.ID] = true
		}
	}
	g.mu.RLock()
	var toOpen []ulid.ULID
	for id := range owned {
		if _, ok := g.blocks[tenant][id]; !ok {
			toOpen = append(toOpen, id)
		}
	}
	g.mu.RUnlock()

	var mu sync.Mutex
	opened := map[ulid.ULID]*servedBlock{}
	var errs []error
	_ = concurrency.ForEachJob(ctx, len(toOpen), g.cfg.BlockSyncConcurrency, func(ctx context.Context, i int) error {
		id := toOpen[i]
		b, err := bucketblock.Open(ctx, g.deps.Bucket, tenant, id, g.cfg.DataDir, g.cache, g.logger.With("tenant", tenant, "block", id), g.blockMetrics)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			g.metrics.loadFailures.Inc()
			errs = append(errs, fmt.Errorf("open block %s of tenant %s: %w", id, tenant, err))
			return nil
		}
		opened[id] = &servedBlock{Block: b}
		return nil
	})

	g.mu.Lock()
	defer g.mu.Unlock()
	if g.blocks[tenant] == nil {
		g.blocks[tenant] = map[ulid.ULID]*servedBlock{}
	}
	for id, b := range opened {
		g.blocks[tenant][id] = b
		g.logger.Debug("loaded block", "tenant", tenant, "block", id)
	}
	g.closeBlocksLocked(tenant, g.blocks[tenant], owned)
	g.updateGaugesLocked()
	return errors.Join(errs...)
}

// closeBlocksLocked closes the tenant's blocks not in keep.
func (g *StoreGateway) closeBlocksLocked(tenant string, blocks map[ulid.ULID]*servedBlock, keep map[ulid.ULID]bool) {
	for id, b := range blocks {
		if keep[id] {
			continue
		}
		delete(blocks, id)
		g.closing.Add(1)
		go func() {
			defer g.closing.Done()
			b.readers.Wait()
			if err := b.Close(); err != nil {
				g.logger.Warn("close block", "tenant", tenant, "block", id, "err", err)
			}
			// The index-header is rebuilt if the block comes back.
			_ = os.RemoveAll(filepath.Join(g.cfg.DataDir, tenant, id.String()))
			g.logger.Debug("dropped block", "tenant", tenant, "block", id)
		}()
	}
	if len(blocks) == 0 {
		delete(g.blocks, tenant)
	}
}

func (g *StoreGateway) updateGaugesLocked() {
	n := 0
	for _, blocks := range g.blocks {
		n += len(blocks)
	}
	g.metrics.loaded.Set(float64(n))
	g.metrics.tenants.Set(float64(len(g.blocks)))
}
