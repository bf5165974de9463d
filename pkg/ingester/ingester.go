// Package ingester keeps one Prometheus TSDB (head, WAL, blocks) per tenant,
// appends the series pushed by distributors, streams chunks to queriers and
// announces itself in the ingester ring.
package ingester

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grafana/dskit/concurrency"
	"github.com/grafana/dskit/httpgrpc"
	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/util/compression"
	"github.com/thanos-io/objstore"

	"github.com/neocortex-metrics/neocortex/pkg/ingester/ingesterpb"
	"github.com/neocortex-metrics/neocortex/pkg/limits"
	"github.com/neocortex-metrics/neocortex/pkg/ringconfig"
)

// RingKey is the key of the ingester ring in the KV store.
const RingKey = "ring"

// RingName names the ingester ring in metrics and logs.
const RingName = "ingester"

// Deps are what an ingester needs from the rest of the process.
type Deps struct {
	Limits *limits.Overrides
	// KV is the ring's KV store client.
	KV kv.Client
	// Addr is the host:port other components reach this ingester's gRPC API at.
	Addr string
	// Bucket receives the blocks cut from the tenants' heads; nil keeps
	// blocks local only (for tests), deleted after the retention period.
	Bucket objstore.Bucket
	// Discarded is neocortex_discarded_samples_total.
	Discarded  *prometheus.CounterVec
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Ingester is the ingester service.
type Ingester struct {
	services.Service
	ingesterpb.UnimplementedIngesterServer

	cfg        Config
	deps       Deps
	logger     *slog.Logger
	lifecycler *ring.BasicLifecycler
	watcher    *services.FailureWatcher
	metrics    *metrics

	mu     sync.RWMutex
	dbs    map[string]*userDB
	closed bool

	shipperMetrics *shipperMetrics
	blockMetrics   *blockMetrics
	// compactMu serialises cutting and shipping blocks (periodic and flush).
	compactMu       sync.Mutex
	flushOnShutdown atomic.Bool
	// flushes are background flushes that stopping waits for.
	flushes sync.WaitGroup
}

type metrics struct {
	ingestedSamples    *prometheus.CounterVec
	ingestedExemplars  *prometheus.CounterVec
	discardedExemplars *prometheus.CounterVec
	tenants            prometheus.Gauge
}

var _ ingesterpb.IngesterServer = (*Ingester)(nil)

// New returns an ingester; it opens the TSDBs found in the data directory
// (replaying their WALs) and joins the ring when started.
func New(cfg Config, deps Deps) (*Ingester, error) {
	i := &Ingester{
		cfg:    cfg,
		deps:   deps,
		logger: deps.Logger,
		dbs:    map[string]*userDB{},
	}
	i.metrics = &metrics{
		ingestedSamples: promauto.With(deps.Registerer).NewCounterVec(prometheus.CounterOpts{
			Name: "neocortex_ingester_ingested_samples_total",
			Help: "Samples and histogram samples appended to the tenants' TSDBs.",
		}, []string{"tenant"}),
		ingestedExemplars: promauto.With(deps.Registerer).NewCounterVec(prometheus.CounterOpts{
			Name: "neocortex_ingester_ingested_exemplars_total",
			Help: "Exemplars appended to the tenants' TSDBs.",
		}, []string{"tenant"}),
		discardedExemplars: promauto.With(deps.Registerer).NewCounterVec(prometheus.CounterOpts{
			Name: "neocortex_ingester_discarded_exemplars_total",
			Help: "Exemplars the TSDB refused (out of order, labels too long, storage disabled), by tenant.",
		}, []string{"tenant"}),
		tenants: promauto.With(deps.Registerer).NewGauge(prometheus.GaugeOpts{
			Name: "neocortex_ingester_tenants",
			Help: "Tenants with an open TSDB in this ingester.",
		}),
	}
	i.shipperMetrics = newShipperMetrics(deps.Registerer)
	i.blockMetrics = newBlockMetrics(deps.Registerer)
	promauto.With(deps.Registerer).NewGaugeFunc(prometheus.GaugeOpts{
		Name: "neocortex_ingester_memory_series",
		Help: "Series in the heads of all tenants' TSDBs.",
	}, i.headSeries)

	lc, err := cfg.Ring.NewLifecycler(ringconfig.Member{
		Name:         RingName,
		Key:          RingKey,
		Addr:         deps.Addr,
		KV:           deps.KV,
		InitialState: ring.ACTIVE,
		TokensFile:   filepath.Join(cfg.DataDir, "tokens.json"),
		Logger:       deps.Logger,
		Registerer:   deps.Registerer,
	})
	if err != nil {
		return nil, err
	}
	i.lifecycler = lc
	i.watcher = services.NewFailureWatcher()
	i.watcher.WatchService(lc)
	i.Service = services.NewBasicService(i.starting, i.running, i.stopping)
	return i, nil
}

func (i *Ingester) starting(ctx context.Context) error {
	if err := os.MkdirAll(i.cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	entries, err := os.ReadDir(i.cfg.DataDir)
	if err != nil {
		return fmt.Errorf("list data directory: %w", err)
	}
	var tenants []string
	for _, e := range entries {
		if e.IsDir() {
			tenants = append(tenants, e.Name())
		}
	}
	start := time.Now()
	var mu sync.Mutex
	err = concurrency.ForEachJob(ctx, len(tenants), 4, func(_ context.Context, idx int) error {
		db, err := i.openDB(tenants[idx])
		if err != nil {
			return err
		}
		mu.Lock()
		i.dbs[tenants[idx]] = db
		mu.Unlock()
		return nil
	})
	i.metrics.tenants.Set(float64(len(i.dbs)))
	if err != nil {
		i.closeDBs()
		return err
	}
	i.logger.Info("opened tenant TSDBs", "tenants", len(tenants), "duration", time.Since(start))
	// Join the ring only once every WAL is replayed, so no write or query
	// reaches an ingester that would not see all its data.
	if err := services.StartAndAwaitRunning(ctx, i.lifecycler); err != nil {
		i.closeDBs()
		return fmt.Errorf("join the ring: %w", err)
	}
	return nil
}

func (i *Ingester) running(ctx context.Context) error {
	t := time.NewTicker(i.cfg.LimitsReloadPeriod)
	defer t.Stop()
	compact := time.NewTicker(i.cfg.HeadCompactionInterval)
	defer compact.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-i.watcher.Chan():
			return fmt.Errorf("ring lifecycler: %w", err)
		case <-t.C:
			i.applyLimits()
		case <-compact.C:
			// Errors are logged and counted per tenant; the next tick retries.
			_ = i.cutAndShip(ctx, false)
			i.purgeMetadata(time.Now().Add(-i.cfg.MetadataRetainPeriod))
		}
	}
}

func (i *Ingester) stopping(error) error {
	// Leave the ring first so distributors stop sending, then close the TSDBs.
	err := services.StopAndAwaitTerminated(context.Background(), i.lifecycler)
	i.flushes.Wait()
	if i.flushOnShutdown.Load() {
		if ferr := i.cutAndShip(context.Background(), true); ferr != nil {
			err = errors.Join(err, fmt.Errorf("flush before shutdown: %w", ferr))
		}
	}
	i.closeDBs()
	return err
}

func (i *Ingester) closeDBs() {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.closed = true
	for tenant, db := range i.dbs {
		if err := db.Close(); err != nil {
			i.logger.Error("close TSDB", "tenant", tenant, "err", err)
		}
	}
	i.dbs = map[string]*userDB{}
	i.metrics.tenants.Set(0)
}

// purgeMetadata drops the metric metadata last pushed before cutoff.
func (i *Ingester) purgeMetadata(cutoff time.Time) {
	i.mu.RLock()
	defer i.mu.RUnlock()
	for _, db := range i.dbs {
		db.metadata.purge(cutoff)
	}
}

// applyLimits brings runtime changes of per-tenant TSDB settings into effect.
func (i *Ingester) applyLimits() {
	i.mu.RLock()
	defer i.mu.RUnlock()
	for tenant, db := range i.dbs {
		lim := i.deps.Limits.For(tenant)
		window, exemplars := lim.OutOfOrderTimeWindow.Milliseconds(), exemplarStorageSize(lim, db.exemplarsUsed.Load())
		if window == db.oooWindow.Load() && exemplars == db.maxExemplars.Load() {
			continue
		}
		// Not one being closed (closeLocked waits for i.mu holding
		// alive, so waiting here could deadlock): it will not need it.
		if !db.tryUse() {
			continue
		}
		db.exemplarsMu.Lock() // not while useExemplars switches
		err := db.applyConfig(window, exemplars)
		db.exemplarsMu.Unlock()
		db.done()
		if err != nil {
			i.logger.Error("apply per-tenant TSDB settings", "tenant", tenant, "err", err)
			continue
		}
		i.logger.Info("applied per-tenant TSDB settings", "tenant", tenant, "out_of_order_window_ms", window, "max_exemplars", exemplars)
	}
}

// tsdbConfig is the runtime-changeable part of a tenant's TSDB settings.
func tsdbConfig(oooWindowMs, maxExemplars int64) *config.Config {
	return &config.Config{StorageConfig: config.StorageConfig{
		TSDBConfig:      &config.TSDBConfig{OutOfOrderTimeWindow: oooWindowMs},
		ExemplarsConfig: &config.ExemplarsConfig{MaxExemplars: maxExemplars},
	}}
}

func (i *Ingester) headSeries() float64 {
	i.mu.RLock()
	defer i.mu.RUnlock()
	n := uint64(0)
	for _, db := range i.dbs {
		n += db.Head().NumSeries()
	}
	return float64(n)
}

var errNotRunning = httpgrpc.Errorf(http.StatusServiceUnavailable, "ingester is not running")

// db returns the tenant's TSDB, opening (creating) it on first use.
func (i *Ingester) db(tenant string) (*userDB, error) {
	i.mu.RLock()
	db, closed := i.dbs[tenant], i.closed
	i.mu.RUnlock()
	if db != nil {
		return db, nil
	}
	if closed || i.State() != services.Running {
		return nil, errNotRunning
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.closed {
		return nil, errNotRunning
	}
	if db := i.dbs[tenant]; db != nil {
		return db, nil
	}
	db, err := i.openDB(tenant)
	if err != nil {
		return nil, err
	}
	i.dbs[tenant] = db
	i.metrics.tenants.Set(float64(len(i.dbs)))
	return db, nil
}

// dbInUse is db, with the TSDB in use until done.
func (i *Ingester) dbInUse(tenant string) (*userDB, error) {
	for {
		db, err := i.db(tenant)
		if err != nil || db.use() {
			return db, err
		}
		// Closed as idle meanwhile, and gone from i.dbs: the next
		// lookup opens it anew.
	}
}

// useDB is lookupDB, with the TSDB in use until done; nil if it has just
// been closed as idle.
func (i *Ingester) useDB(tenant string) (*userDB, error) {
	db, err := i.lookupDB(tenant)
	if err != nil || db == nil || !db.use() {
		return nil, err
	}
	return db, nil
}

// lookupDB returns the tenant's TSDB if it exists, without creating it.
func (i *Ingester) lookupDB(tenant string) (*userDB, error) {
	i.mu.RLock()
	defer i.mu.RUnlock()
	if i.closed {
		return nil, errNotRunning
	}
	return i.dbs[tenant], nil
}

// exemplarsUsedFile, in a tenant's TSDB directory, says that the tenant has
// sent exemplars (userDB.exemplarsUsed).
const exemplarsUsedFile = "exemplars-used"

// exemplarStorageSize is the size of a tenant's exemplar storage: its limit
// once it has sent exemplars, none before.
func exemplarStorageSize(lim *limits.Limits, used bool) int64 {
	if !used {
		return 0
	}
	return int64(lim.MaxExemplars)
}

// useExemplars gives the tenant's TSDB an exemplar storage of the size of
// its limit, on its first exemplar, and records that it has one.
func (i *Ingester) useExemplars(tenant string, db *userDB) {
	db.exemplarsMu.Lock()
	defer db.exemplarsMu.Unlock()
	if db.exemplarsUsed.Load() {
		return
	}
	lim := i.deps.Limits.For(tenant)
	if lim.MaxExemplars <= 0 {
		return // not stored: nothing to switch on
	}
	if err := os.WriteFile(filepath.Join(db.Dir(), exemplarsUsedFile), nil, 0o644); err != nil {
		// The exemplars are kept until a restart, which drops those of the WAL.
		i.logger.Warn("record that the tenant sends exemplars", "tenant", tenant, "err", err)
	}
	if err := db.applyConfig(db.oooWindow.Load(), int64(lim.MaxExemplars)); err != nil {
		i.logger.Error("size the exemplar storage", "tenant", tenant, "err", err)
		return
	}
	db.exemplarsUsed.Store(true)
}

func (i *Ingester) openDB(tenant string) (*userDB, error) {
	limiter := newSeriesLimiter(tenant, i.deps.Limits)
	lim := i.deps.Limits.For(tenant)
	dir := filepath.Join(i.cfg.DataDir, tenant)
	_, err := os.Stat(filepath.Join(dir, exemplarsUsedFile))
	exemplarsUsed := err == nil
	window, exemplars := lim.OutOfOrderTimeWindow.Milliseconds(), exemplarStorageSize(lim, exemplarsUsed)
	opts := tsdb.DefaultOptions()
	opts.EnableExemplarStorage = true
	opts.MaxExemplars = exemplars
	opts.MinBlockDuration = i.cfg.BlockRange.Milliseconds()
	opts.MaxBlockDuration = i.cfg.BlockRange.Milliseconds()
	// Blocks are never merged locally: overlapping out-of-order blocks are
	// shipped as they are and merged by the compactor.
	opts.EnableOverlappingCompaction = false
	// Reloading applies the local retention to blocks shipped since.
	opts.BlockReloadInterval = i.cfg.HeadCompactionInterval
	opts.OutOfOrderTimeWindow = window
	opts.WALCompression = compression.Snappy
	opts.SeriesLifecycleCallback = limiter
	// Each head series keeps its labels' stable hash, so that queries for
	// one hash shard (querier.ShardLabel) select it from the postings.
	opts.EnableSharding = true
	// Isolation would keep a ring of append IDs in every series (about 40
	// bytes each) and track each append, so that a query never sees part of
	// one: a remote-write request is not a transaction to its sender, and
	// queries read recent data from several replicas anyway.
	opts.IsolationDisabled = true
	opts.StripeSize = i.cfg.StripeSize
	opts.HeadChunksWriteBufferSize = i.cfg.HeadChunksWriteBufferSize
	logger := i.logger.With("tenant", tenant)
	var ship *shipper
	if i.deps.Bucket != nil {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("create TSDB directory of tenant %s: %w", tenant, err)
		}
		var err error
		if ship, err = newShipper(i.deps.Bucket, tenant, dir, logger, i.shipperMetrics); err != nil {
			return nil, fmt.Errorf("open shipper of tenant %s: %w", tenant, err)
		}
	}
	opts.BlocksToDelete = blocksToDelete(ship, i.cfg.Retention)
	start := time.Now()
	db, err := tsdb.Open(dir, logger, nil, opts, nil)
	if err != nil {
		return nil, fmt.Errorf("open TSDB of tenant %s: %w", tenant, err)
	}
	// Blocks are cut by the ingester's own loop, so that shipping follows
	// at once and a flush can cut the whole head.
	db.DisableCompactions()
	// Series replayed from the WAL were acknowledged before: they count
	// towards the limits but are never refused.
	limiter.enforce.Store(true)
	i.logger.Debug("opened TSDB", "tenant", tenant, "series", db.Head().NumSeries(), "duration", time.Since(start))
	u := &userDB{DB: db, limiter: limiter, metadata: newMetadataStore(), shipper: ship}
	u.symbols.Store(labels.NewSymbolTable())
	u.oooWindow.Store(window)
	u.maxExemplars.Store(exemplars)
	u.exemplarsUsed.Store(exemplarsUsed)
	u.lastAppend.Store(time.Now().UnixNano())
	return u, nil
}
