package ingester

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/grafana/dskit/concurrency"
	"github.com/grafana/dskit/services"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/neocortex-metrics/neocortex/pkg/tenantmetrics"
)

type blockMetrics struct {
	compactions        prometheus.Counter
	compactionFailures prometheus.Counter
	flushes            prometheus.Counter
	idleCuts           prometheus.Counter
	idleClosed         prometheus.Counter
}

func newBlockMetrics(reg prometheus.Registerer) *blockMetrics {
	return &blockMetrics{
		compactions: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "neocortex_ingester_head_compactions_total",
			Help: "Checks of a tenant's head for blocks to cut.",
		}),
		compactionFailures: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "neocortex_ingester_head_compaction_failures_total",
			Help: "Cutting blocks from a tenant's head that failed; retried on the next cycle.",
		}),
		flushes: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "neocortex_ingester_flushes_total",
			Help: "Flushes: the whole head of every tenant cut into blocks and shipped.",
		}),
		idleCuts: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "neocortex_ingester_idle_head_cuts_total",
			Help: "Whole heads of tenants that had sent nothing for head_compaction_idle_timeout, cut into blocks.",
		}),
		idleClosed: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "neocortex_ingester_idle_tsdbs_closed_total",
			Help: "TSDBs of tenants that had sent nothing for close_idle_tsdb_timeout and had nothing left locally, closed and removed.",
		}),
	}
}

// blocksToDelete is the local retention: a block goes once it is shipped
// and its newest sample is older than the retention period. Without a
// bucket, blocks go on age alone.
func blocksToDelete(s *shipper, retention time.Duration) tsdb.BlocksToDeleteFunc {
	return func(blocks []*tsdb.Block) map[ulid.ULID]struct{} {
		cutoff := time.Now().Add(-retention).UnixMilli()
		del := map[ulid.ULID]struct{}{}
		for _, b := range blocks {
			m := b.Meta()
			if m.MaxTime < cutoff && (s == nil || s.IsShipped(m.ULID)) {
				del[m.ULID] = struct{}{}
			}
		}
		return del
	}
}

// cutAndShip cuts the blocks due in every tenant's head and ships the new
// ones. With all, it cuts the whole head (a flush). Tenants are handled in
// parallel and independently: one tenant's failure does not stop the others.
func (i *Ingester) cutAndShip(ctx context.Context, all bool) error {
	i.compactMu.Lock()
	defer i.compactMu.Unlock()
	i.mu.RLock()
	tenants := make([]string, 0, len(i.dbs))
	dbs := make([]*userDB, 0, len(i.dbs))
	for t, db := range i.dbs {
		tenants = append(tenants, t)
		dbs = append(dbs, db)
	}
	i.mu.RUnlock()
	errs := make([]error, len(dbs))
	_ = concurrency.ForEachJob(ctx, len(dbs), i.cfg.ShipConcurrency, func(ctx context.Context, idx int) error {
		if !dbs[idx].use() {
			return nil
		}
		defer dbs[idx].done()
		if err := i.cutAndShipTenant(ctx, dbs[idx], all); err != nil {
			i.logger.Error("cut and ship blocks", "tenant", tenants[idx], "err", err)
			errs[idx] = fmt.Errorf("tenant %s: %w", tenants[idx], err)
		}
		return nil
	})
	if !all {
		for idx, db := range dbs {
			i.closeIfIdle(tenants[idx], db)
		}
	}
	return errors.Join(errs...)
}

// closeIfIdle closes the tenant's TSDB and removes its directory if the
// tenant has sent nothing for close_idle_tsdb_timeout and nothing is left
// in it: its head is empty (idle heads are cut) and every block has been
// shipped and deleted locally after the retention. Nothing may use the
// TSDB meanwhile; if anything does, the next cycle tries again. A later
// push opens a new TSDB.
func (i *Ingester) closeIfIdle(tenant string, db *userDB) {
	if !i.closable(db) || !db.alive.TryLock() {
		return
	}
	defer db.alive.Unlock()
	if !i.closable(db) { // a push may have come before the lock
		return
	}
	i.closeLocked(tenant, db)
}

func (i *Ingester) closable(db *userDB) bool {
	timeout := i.cfg.CloseIdleTSDBTimeout
	return timeout > 0 && db.idleFor(time.Now()) >= timeout && db.Head().NumSeries() == 0 && len(db.Blocks()) == 0
}

// closeLocked closes and removes the TSDB, with db.alive held exclusively.
// It stays in i.dbs until its directory is gone, so that a push meanwhile
// waits for it (use) rather than open a new TSDB in that directory; then
// users look the tenant up again, and a push opens a new one.
func (i *Ingester) closeLocked(tenant string, db *userDB) {
	db.closed = true
	dir := db.Dir()
	if err := db.Close(); err != nil {
		i.logger.Error("close idle TSDB", "tenant", tenant, "err", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		i.logger.Error("remove idle TSDB", "tenant", tenant, "dir", dir, "err", err)
	}
	i.mu.Lock()
	if i.dbs[tenant] == db {
		delete(i.dbs, tenant)
		i.metrics.tenants.Set(float64(len(i.dbs)))
	}
	i.mu.Unlock()
	i.metrics.ingestedSamples.DeleteLabelValues(tenant)
	i.metrics.ingestedExemplars.DeleteLabelValues(tenant)
	i.metrics.discardedExemplars.DeleteLabelValues(tenant)
	if i.deps.Discarded != nil {
		i.deps.Discarded.DeletePartialMatch(prometheus.Labels{tenantmetrics.Label: tenant})
	}
	i.blockMetrics.idleClosed.Inc()
	i.logger.Info("closed the TSDB of an idle tenant", "tenant", tenant)
}

func (i *Ingester) cutAndShipTenant(ctx context.Context, db *userDB, all bool) error {
	i.blockMetrics.compactions.Inc()
	if !all && i.idle(db) {
		// Its head would not grow to 1.5 block ranges any more.
		all = true
		i.blockMetrics.idleCuts.Inc()
	}
	var err error
	mint := db.Head().MinTime()
	if all {
		err = db.cutAll(i.cfg.BlockRange.Milliseconds())
	} else {
		err = db.Compact(ctx)
	}
	db.renewSymbols(mint)
	if err != nil {
		i.blockMetrics.compactionFailures.Inc()
		err = fmt.Errorf("cut blocks: %w", err)
	}
	if db.shipper == nil {
		return err
	}
	_, serr := db.shipper.Sync(ctx, db.Blocks())
	return errors.Join(err, serr)
}

// idle reports whether the tenant has series in its head and has sent no
// sample for head_compaction_idle_timeout.
func (i *Ingester) idle(db *userDB) bool {
	timeout := i.cfg.HeadCompactionIdleTimeout
	return timeout > 0 && db.Head().NumSeries() > 0 && db.idleFor(time.Now()) >= timeout
}

// cutAll cuts the whole head into blocks aligned to the block range (a
// block never spans two ranges, which the compactor relies on), then the
// out-of-order head. Samples older than the newest one cut are refused
// afterwards, as after any head compaction.
func (db *userDB) cutAll(blockRange int64) error {
	h := db.Head()
	mint, maxt := h.MinTime(), h.MaxTime()
	if h.NumSeries() > 0 && mint <= maxt {
		start := mint - mod(mint, blockRange)
		for ; start <= maxt; start += blockRange {
			end := min(start+blockRange-1, maxt)
			if err := db.CompactHead(tsdb.NewRangeHead(h, max(start, mint), end)); err != nil {
				return err
			}
		}
	}
	return db.CompactOOOHead(context.Background())
}

func mod(a, b int64) int64 { return ((a % b) + b) % b }

// Flush cuts every tenant's whole head into blocks and ships them.
func (i *Ingester) Flush(ctx context.Context) error {
	if i.State() != services.Running {
		return errNotRunning
	}
	i.blockMetrics.flushes.Inc()
	return i.cutAndShip(ctx, true)
}

// FlushOnShutdown makes the ingester flush when it stops, after leaving the
// ring: for scaling down, so its data reaches the bucket.
func (i *Ingester) FlushOnShutdown() { i.flushOnShutdown.Store(true) }

// FlushHandler serves POST /ingester/flush: cut and ship every tenant's
// head now, in the background, or before answering with ?wait=true.
func (i *Ingester) FlushHandler(w http.ResponseWriter, r *http.Request) {
	if i.State() != services.Running {
		http.Error(w, errNotRunning.Error(), http.StatusServiceUnavailable)
		return
	}
	if r.URL.Query().Get("wait") != "true" {
		i.flushes.Add(1)
		go func() {
			defer i.flushes.Done()
			if err := i.Flush(context.Background()); err != nil {
				i.logger.Error("flush", "err", err)
			}
		}()
		w.WriteHeader(http.StatusAccepted)
		return
	}
	if err := i.Flush(r.Context()); err != nil {
		http.Error(w, "flush: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
