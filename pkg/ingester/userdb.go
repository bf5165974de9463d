package ingester

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunks"

	"github.com/neocortex-metrics/neocortex/pkg/limits"
	"github.com/neocortex-metrics/neocortex/pkg/validation"
)

// userDB is one tenant's TSDB.
type userDB struct {
	*tsdb.DB
	limiter      *seriesLimiter
	oooWindow    atomic.Int64 // the out-of-order window in effect, in ms
	maxExemplars atomic.Int64 // the exemplar storage size in effect
	// exemplarsUsed: the tenant has sent exemplars, so its exemplar
	// storage has the size of its limit; until then it has none, rather
	// than a buffer of max_exemplars entries (6.6 MB at the default) for
	// every tenant. A file in the TSDB directory keeps it across restarts
	// (useExemplars), so that the WAL's exemplars are replayed.
	exemplarsUsed atomic.Bool
	exemplarsMu   sync.Mutex // serializes the switch
	metadata      *metadataStore
	shipper       *shipper // nil when blocks stay local
	// symbols is the table the labels of new series are built in. With
	// -tags dedupelabels (the project's builds) a series' labels are
	// numbers into such a table, which the head shares among all its
	// series; otherwise it is empty and unused. It only grows, so it is
	// replaced when the head drops old series (renewSymbols),
	// as the head rebuilds its own.
	symbols atomic.Pointer[labels.SymbolTable]
	// exemplarSymbols is the table exemplars' labels are built in. Their
	// values (trace IDs) are mostly unique, and in the series' table they
	// would pile up until the next cut; this one is renewed once it holds
	// more strings than the exemplar storage has exemplars
	// (exemplarSymbolTable), and an old one lives only while exemplars
	// still in the storage point into it.
	exemplarSymbols atomic.Pointer[labels.SymbolTable]
	// configMu keeps ApplyConfig away from appends: enabling out-of-order
	// ingestion at run time sets the head's WBL, which Commit reads
	// unguarded. Appends hold it shared, ApplyConfig exclusively.
	configMu sync.RWMutex
	// lastAppend is when samples were last appended, in Unix nanoseconds;
	// the opening, before any.
	lastAppend atomic.Int64
	// alive guards the TSDB's life: its users hold it shared (use), and
	// closing an idle tenant (closeIfIdle) takes it exclusively, only if
	// nobody holds it.
	alive  sync.RWMutex
	closed bool // under alive: closed and removed
}

// use marks the TSDB in use until done. It reports false if the TSDB has
// been closed: the tenant's TSDB must be looked up again.
func (d *userDB) use() bool {
	d.alive.RLock()
	if d.closed {
		d.alive.RUnlock()
		return false
	}
	return true
}

// tryUse is use without waiting: false also while the TSDB is being
// closed.
func (d *userDB) tryUse() bool {
	if !d.alive.TryRLock() {
		return false
	}
	if d.closed {
		d.alive.RUnlock()
		return false
	}
	return true
}

// done ends a use.
func (d *userDB) done() { d.alive.RUnlock() }

// idleFor is how long before now samples were last appended (or the TSDB
// opened).
func (d *userDB) idleFor(now time.Time) time.Duration {
	return now.Sub(time.Unix(0, d.lastAppend.Load()))
}

// applyConfig brings the runtime-changeable TSDB settings into effect and
// records them.
func (d *userDB) applyConfig(oooWindowMs, maxExemplars int64) error {
	d.configMu.Lock()
	err := d.ApplyConfig(tsdbConfig(oooWindowMs, maxExemplars))
	d.configMu.Unlock()
	if err != nil {
		return err
	}
	d.oooWindow.Store(oooWindowMs)
	d.maxExemplars.Store(maxExemplars)
	return nil
}

// symbolTable is the table to build the labels of pushed series in.
func (d *userDB) symbolTable() *labels.SymbolTable { return d.symbols.Load() }

// exemplarSymbolTable is the table to build exemplar labels in: renewed
// when it holds more than the exemplar storage's size in strings (plus
// 1024, for the names and the first exemplars).
func (d *userDB) exemplarSymbolTable() *labels.SymbolTable {
	t := d.exemplarSymbols.Load()
	if t != nil && t.Len() <= int(d.maxExemplars.Load())+1024 {
		return t
	}
	t = labels.NewSymbolTable() // nil without -tags dedupelabels
	d.exemplarSymbols.Store(t)
	return t
}

// renewSymbols gives the push path a new symbol table if the head no longer
// starts at mint, that is if it dropped old data (truncation after a block
// was cut). The head then rebuilt its own table from the series it kept,
// while the old one holds the strings of every series pushed since it was
// made; renewing it keeps it from growing with churn.
func (d *userDB) renewSymbols(mint int64) {
	if d.Head().MinTime() != mint {
		d.symbols.Store(labels.NewSymbolTable())
	}
}

// limitError is the refusal of a new series by a series limit.
type limitError struct {
	reason string
	msg    string
}

func (e *limitError) Error() string { return e.msg }

// seriesLimiter enforces max_series_per_user and max_series_per_metric as
// the TSDB head's series lifecycle callback: the head asks it before it
// creates a series and tells it after creating and deleting series.
type seriesLimiter struct {
	tenant  string
	limits  *limits.Overrides
	enforce atomic.Bool

	mu        sync.Mutex
	total     int
	perMetric map[string]int
}

var _ tsdb.SeriesLifecycleCallback = (*seriesLimiter)(nil)

func newSeriesLimiter(tenant string, l *limits.Overrides) *seriesLimiter {
	return &seriesLimiter{tenant: tenant, limits: l, perMetric: map[string]int{}}
}

// PreCreation refuses a new series over a limit.
func (s *seriesLimiter) PreCreation(ls labels.Labels) error {
	if !s.enforce.Load() {
		return nil
	}
	l := s.limits.For(s.tenant)
	name := ls.Get(model.MetricNameLabel)
	s.mu.Lock()
	total, perMetric := s.total, s.perMetric[name]
	s.mu.Unlock()
	if l.MaxSeriesPerUser > 0 && total >= l.MaxSeriesPerUser {
		return &limitError{
			reason: validation.ReasonPerUserSeriesLimit,
			msg:    fmt.Sprintf("per-tenant series limit of %d reached (max_series_per_user)", l.MaxSeriesPerUser),
		}
	}
	if l.MaxSeriesPerMetric > 0 && perMetric >= l.MaxSeriesPerMetric {
		return &limitError{
			reason: validation.ReasonPerMetricLimit,
			msg:    fmt.Sprintf("per-metric series limit of %d reached for metric %q (max_series_per_metric)", l.MaxSeriesPerMetric, name),
		}
	}
	return nil
}

// PostCreation counts a new series.
func (s *seriesLimiter) PostCreation(ls labels.Labels) {
	name := ls.Get(model.MetricNameLabel)
	s.mu.Lock()
	s.total++
	s.perMetric[name]++
	s.mu.Unlock()
}

// PostDeletion uncounts series removed from the head.
func (s *seriesLimiter) PostDeletion(deleted map[chunks.HeadSeriesRef]labels.Labels) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ls := range deleted {
		name := ls.Get(model.MetricNameLabel)
		s.total--
		if s.perMetric[name]--; s.perMetric[name] <= 0 {
			delete(s.perMetric, name)
		}
	}
}
