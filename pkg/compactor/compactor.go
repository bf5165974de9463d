// Package compactor keeps the bucket in shape: for each tenant it owns it
// merges the overlapping blocks that the RF ingesters shipped into one
// block without duplicate samples (vertical compaction), merges adjacent
// blocks into ever larger ranges (horizontal compaction), applies
// retention, deletes blocks marked for deletion once no reader can still
// use them, deletes tenants on request, and keeps each tenant's bucket index
// up to date. Tenants are spread over compactors by the compactor ring.
package compactor

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/grafana/dskit/concurrency"
	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore"

	"github.com/neocortex-metrics/neocortex/pkg/limits"
	"github.com/neocortex-metrics/neocortex/pkg/logging"
	"github.com/neocortex-metrics/neocortex/pkg/ringconfig"
	"github.com/neocortex-metrics/neocortex/pkg/storage/bucketindex"
)

// Limits are the per-tenant limits the compactor applies. Implementations
// must be safe for concurrent use.
type Limits interface {
	// BlocksRetentionPeriod is how long a tenant's blocks are kept, counted
	// from their newest sample; 0 keeps them forever.
	BlocksRetentionPeriod(tenant string) time.Duration
}

// RetentionFunc is a Limits that answers with a function.
type RetentionFunc func(tenant string) time.Duration

var _ Limits = RetentionFunc(nil)

// BlocksRetentionPeriod returns f(tenant).
func (f RetentionFunc) BlocksRetentionPeriod(tenant string) time.Duration { return f(tenant) }

// OverridesLimits returns the Limits of the runtime overrides:
// compactor_blocks_retention_period.
func OverridesLimits(o *limits.Overrides) Limits {
	return RetentionFunc(func(tenant string) time.Duration { return o.For(tenant).CompactorBlocksRetentionPeriod })
}

// Deps are what a compactor needs from the rest of the process.
type Deps struct {
	Bucket objstore.Bucket
	// Limits gives each tenant's retention; nil keeps every block.
	Limits Limits
	// KV is the compactor ring's KV store client; needed only when sharding
	// is enabled.
	KV kv.Client
	// Addr is the host:port advertised in the ring; compactors take no
	// requests from each other, so it only labels the instance.
	Addr       string
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// ringOp selects a tenant's owner: the first ACTIVE compactor clockwise
// from the tenant's hash. Instances that are not ACTIVE (joining, leaving)
// are passed over rather than owning tenants that nobody then compacts.
var ringOp = ring.NewOp([]ring.InstanceState{ring.ACTIVE}, func(s ring.InstanceState) bool { return s != ring.ACTIVE })

// Compactor is the compactor service.
type Compactor struct {
	services.Service

	cfg     Config
	deps    Deps
	bkt     objstore.Bucket
	logger  *slog.Logger
	metrics *Metrics
	ranges  []int64
	// now is the clock; tests replace it.
	now func() time.Time

	// Set when sharding is enabled.
	lifecycler  *ring.BasicLifecycler
	ring        *ring.Ring
	subservices *services.Manager
	watcher     *services.FailureWatcher

	// runMu keeps cycles from overlapping.
	runMu sync.Mutex
}

// New returns a compactor. When started it joins the ring (if sharding is
// enabled), runs a cycle at once and then every compaction_interval.
func New(cfg Config, deps Deps) (*Compactor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Bucket == nil {
		return nil, errors.New("compactor needs a bucket")
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Compactor{
		cfg:     cfg,
		deps:    deps,
		bkt:     deps.Bucket,
		logger:  deps.Logger,
		metrics: NewMetrics(deps.Registerer),
		ranges:  cfg.BlockRanges.milliseconds(),
		now:     time.Now,
	}
	if cfg.ShardingEnabled {
		if err := c.initRing(); err != nil {
			return nil, err
		}
	}
	c.Service = services.NewBasicService(c.starting, c.running, c.stopping)
	return c, nil
}

func (c *Compactor) initRing() error {
	if c.deps.KV == nil {
		return errors.New("compactor sharding needs a ring KV client")
	}
	reg := c.deps.Registerer
	lc, err := c.cfg.Ring.NewLifecycler(ringconfig.Member{
		Name:         RingName,
		Key:          RingKey,
		Addr:         c.deps.Addr,
		KV:           c.deps.KV,
		InitialState: ring.ACTIVE,
		Logger:       c.logger,
		Registerer:   reg,
	})
	if err != nil {
		return err
	}
	cc := c.cfg.Ring.ClientConfig()
	cc.ReplicationFactor, cc.ZoneAwarenessEnabled = 1, false
	r, err := ring.NewWithStoreClientAndStrategy(cc, RingName, RingKey, c.deps.KV,
		ring.NewIgnoreUnhealthyInstancesReplicationStrategy(),
		prometheus.WrapRegistererWithPrefix("neocortex_", prometheus.WrapRegistererWith(prometheus.Labels{"component": "compactor"}, reg)),
		logging.GoKit(c.logger))
	if err != nil {
		return fmt.Errorf("create compactor ring client: %w", err)
	}
	mgr, err := services.NewManager(lc, r)
	if err != nil {
		return fmt.Errorf("create compactor ring services: %w", err)
	}
	c.lifecycler, c.ring, c.subservices = lc, r, mgr
	c.watcher = services.NewFailureWatcher()
	c.watcher.WatchManager(mgr)
	return nil
}

// Ring is the compactor ring, which serves its status page; nil when
// sharding is disabled.
func (c *Compactor) Ring() *ring.Ring { return c.ring }

func (c *Compactor) starting(ctx context.Context) error {
	if err := os.MkdirAll(c.cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	if c.subservices == nil {
		return nil
	}
	if err := services.StartManagerAndAwaitHealthy(ctx, c.subservices); err != nil {
		return fmt.Errorf("start compactor ring: %w", err)
	}
	// Own no tenant before this instance is seen ACTIVE in the ring.
	if err := ring.WaitInstanceState(ctx, c.ring, c.cfg.Ring.InstanceID, ring.ACTIVE); err != nil {
		return errors.Join(fmt.Errorf("wait to be active in the compactor ring: %w", err),
			services.StopManagerAndAwaitStopped(context.Background(), c.subservices))
	}
	return nil
}

func (c *Compactor) running(ctx context.Context) error {
	var failures <-chan error
	if c.watcher != nil {
		failures = c.watcher.Chan()
	}
	t := time.NewTicker(c.cfg.CompactionInterval)
	defer t.Stop()
	for {
		if err := c.CompactOnce(ctx); err != nil && ctx.Err() == nil {
			c.logger.Error("compaction cycle", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case err := <-failures:
			return fmt.Errorf("compactor ring: %w", err)
		case <-t.C:
		}
	}
}

func (c *Compactor) stopping(error) error {
	if c.subservices == nil {
		return nil
	}
	// Leave the ring, so the other compactors take over this one's tenants.
	return services.StopManagerAndAwaitStopped(context.Background(), c.subservices)
}

// CompactOnce runs one cycle over every tenant this compactor owns. A
// tenant that fails does not stop the others; the error joins all the
// tenants' errors. It may be called whether or not the service runs (with
// sharding, the ring must be running); cycles never overlap.
func (c *Compactor) CompactOnce(ctx context.Context) error {
	c.runMu.Lock()
	defer c.runMu.Unlock()
	start := time.Now()
	c.metrics.runsStarted.Inc()
	err := c.compactTenants(ctx)
	c.metrics.runDuration.Observe(time.Since(start).Seconds())
	if err != nil {
		c.metrics.runsFailed.Inc()
		return err
	}
	c.metrics.runsCompleted.Inc()
	c.metrics.lastSuccess.SetToCurrentTime()
	return nil
}

func (c *Compactor) compactTenants(ctx context.Context) error {
	tenants, err := bucketindex.ListTenants(ctx, c.bkt)
	if err != nil {
		return err
	}
	var errs []error
	for _, tenant := range tenants {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		owned, err := c.ownsTenant(tenant)
		if err != nil {
			c.logger.Warn("find owner of tenant", "tenant", tenant, "err", err)
			errs = append(errs, fmt.Errorf("find owner of tenant %s: %w", tenant, err))
			continue
		}
		if !owned {
			continue
		}
		if err := c.compactTenant(ctx, tenant); err != nil {
			c.logger.Error("compact tenant", "tenant", tenant, "err", err)
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ownsTenant reports whether this compactor is the tenant's owner in the
// ring: the first ACTIVE instance clockwise from the FNV-1a hash of the
// tenant id. Without sharding it owns every tenant.
func (c *Compactor) ownsTenant(tenant string) (bool, error) {
	if c.ring == nil {
		return true, nil
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(tenant))
	rs, err := c.ring.Get(h.Sum32(), ringOp, nil, nil, nil)
	if err != nil {
		return false, err
	}
	if len(rs.Instances) != 1 {
		return false, fmt.Errorf("tenant %s has %d owners in the compactor ring, want 1", tenant, len(rs.Instances))
	}
	return rs.Instances[0].Id == c.lifecycler.GetInstanceID(), nil
}

// compactTenant runs one cycle for a tenant: deletion if the tenant is
// marked for it; otherwise retention, compaction until nothing is left to
// plan, deletion of blocks whose deletion mark is old enough, and a fresh
// bucket index.
func (c *Compactor) compactTenant(ctx context.Context, tenant string) error {
	workDir := filepath.Join(c.cfg.DataDir, tenant)
	// Whatever a crash left behind goes too.
	if err := os.RemoveAll(workDir); err != nil {
		return fmt.Errorf("clean work directory of tenant %s: %w", tenant, err)
	}
	defer os.RemoveAll(workDir)

	mark, err := bucketindex.ReadTenantDeletionMark(ctx, c.bkt, tenant)
	if err != nil {
		return fmt.Errorf("read deletion mark of tenant %s: %w", tenant, err)
	}
	if mark != nil {
		return c.deleteTenant(ctx, tenant, mark)
	}

	old, err := bucketindex.ReadIndex(ctx, c.bkt, tenant)
	if err != nil && !errors.Is(err, bucketindex.ErrIndexNotFound) {
		c.logger.Warn("read bucket index; rebuilding it from scratch", "tenant", tenant, "err", err)
	}
	idx, err := bucketindex.Build(ctx, c.bkt, tenant, old)
	if err != nil {
		return fmt.Errorf("sync blocks of tenant %s: %w", tenant, err)
	}

	if n, err := c.applyRetention(ctx, tenant, idx); err != nil {
		return err
	} else if n > 0 {
		if idx, err = bucketindex.Build(ctx, c.bkt, tenant, idx); err != nil {
			return fmt.Errorf("sync blocks of tenant %s: %w", tenant, err)
		}
	}

	for {
		jobs := plan(idx, c.ranges)
		if len(jobs) == 0 {
			break
		}
		err := concurrency.ForEachJob(ctx, len(jobs), c.cfg.CompactionConcurrency, func(ctx context.Context, i int) error {
			return c.runJob(ctx, tenant, jobs[i])
		})
		if err != nil {
			return fmt.Errorf("compact blocks of tenant %s: %w", tenant, err)
		}
		if idx, err = bucketindex.Build(ctx, c.bkt, tenant, idx); err != nil {
			return fmt.Errorf("sync blocks of tenant %s: %w", tenant, err)
		}
	}

	if err := c.deleteMarkedBlocks(ctx, tenant, idx); err != nil {
		return err
	}
	if idx, err = bucketindex.Build(ctx, c.bkt, tenant, idx); err != nil {
		return fmt.Errorf("sync blocks of tenant %s: %w", tenant, err)
	}
	if len(idx.Blocks) == 0 {
		return bucketindex.DeleteIndex(ctx, c.bkt, tenant)
	}
	return bucketindex.WriteIndex(ctx, c.bkt, tenant, idx)
}
