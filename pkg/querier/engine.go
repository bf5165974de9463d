package querier

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"

	"github.com/neocortex-metrics/neocortex/pkg/limits"
	"github.com/neocortex-metrics/neocortex/pkg/tenant"
)

// tenantEngines runs each query on an engine with the tenant's
// max_samples_per_query. Engines differ in nothing else; there is one per
// distinct limit in use, and the default one for tenants without one.
type tenantEngines struct {
	opts   promql.EngineOpts
	def    *promql.Engine
	limits *limits.Overrides // nil: the default for everyone

	mu    sync.Mutex
	byMax map[int]*promql.Engine
}

var _ promql.QueryEngine = (*tenantEngines)(nil)

func newTenantEngines(opts promql.EngineOpts, l *limits.Overrides) *tenantEngines {
	def := promql.NewEngine(opts)
	opts.Reg = nil // only the default engine's metrics are registered
	return &tenantEngines{opts: opts, def: def, limits: l, byMax: map[int]*promql.Engine{}}
}

func (e *tenantEngines) engine(ctx context.Context) *promql.Engine {
	if e.limits == nil {
		return e.def
	}
	id, err := tenant.FromContext(ctx)
	if err != nil {
		return e.def
	}
	n := e.limits.For(id).MaxSamplesPerQuery
	if n <= 0 || n == e.opts.MaxSamples {
		return e.def
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	eng, ok := e.byMax[n]
	if !ok {
		opts := e.opts
		opts.MaxSamples = n
		eng = promql.NewEngine(opts)
		e.byMax[n] = eng
	}
	return eng
}

// NewInstantQuery implements promql.QueryEngine.
func (e *tenantEngines) NewInstantQuery(ctx context.Context, q storage.Queryable, opts promql.QueryOpts, qs string, ts time.Time) (promql.Query, error) {
	return e.engine(ctx).NewInstantQuery(ctx, q, opts, qs, ts)
}

// NewRangeQuery implements promql.QueryEngine.
func (e *tenantEngines) NewRangeQuery(ctx context.Context, q storage.Queryable, opts promql.QueryOpts, qs string, start, end time.Time, interval time.Duration) (promql.Query, error) {
	return e.engine(ctx).NewRangeQuery(ctx, q, opts, qs, start, end, interval)
}
