package queryrange

import (
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/neocortex-metrics/neocortex/pkg/cache"
)

// ResultsCacheName names the results cache's backend metrics:
// neocortex_frontend_results_cache_….
const ResultsCacheName = "frontend_results"

// NewResultsCacheBackend returns the backend cfg selects, for Deps.Cache.
// The caller closes it.
func NewResultsCacheBackend(cfg ResultsCacheConfig, logger *slog.Logger, reg prometheus.Registerer) (cache.Cache, error) {
	return cache.New(cfg.Cache, ResultsCacheName, logger, reg)
}

// Deps are what NewTripperware needs besides its configuration.
type Deps struct {
	// Cache backs the results cache; required when cfg.CacheResults.
	Cache      cache.Cache
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Now is the clock of the results cache's freshness window; nil is
	// time.Now.
	Now func() time.Time
	// Parser parses queries as the queriers do; nil is Prometheus's
	// default (no experimental functions), as the querier's engine.
	Parser parser.Parser
	// Sharding, if not nil, goes between the results cache and Retry
	// (such as querysharding.Middleware): it shards each part that the
	// cache lacks, and each shard is retried on its own.
	Sharding Middleware
}

// NewTripperware returns the range-query middlewares cfg configures, in
// this order from the outside in:
//
//  1. StepAlign (align_queries_with_step), so that what follows sees
//     aligned requests, which are the ones worth caching;
//  2. SplitByInterval (split_queries_by_interval, max_query_parallelism);
//  3. ResultsCache (cache_results), per part: a part is one interval, the
//     cache's unit;
//  4. deps.Sharding, if any;
//  5. Retry (max_retries), around each downstream request alone, so that
//     a failed part, cache gap or shard is retried without redoing the
//     others.
func NewTripperware(cfg Config, deps Deps) (Middleware, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.CacheResults && deps.Cache == nil {
		return nil, errors.New("frontend: results cache enabled without a cache backend")
	}
	if deps.Parser == nil {
		deps.Parser = parser.NewParser(parser.Options{})
	}
	metrics := NewMetrics(deps.Registerer)
	var ms []Middleware
	if cfg.AlignQueriesWithStep {
		ms = append(ms, StepAlign())
	}
	if cfg.SplitQueriesByInterval > 0 {
		ms = append(ms, SplitByInterval(cfg.SplitQueriesByInterval, cfg.MaxQueryParallelism, deps.Parser, metrics))
	}
	if cfg.CacheResults {
		ms = append(ms, ResultsCache(cfg.ResultsCache, ResultsCacheDeps{
			Cache: deps.Cache, Interval: cfg.SplitQueriesByInterval, Now: deps.Now,
			Parser: deps.Parser, Logger: deps.Logger, Metrics: metrics,
		}))
	}
	if deps.Sharding != nil {
		ms = append(ms, deps.Sharding)
	}
	ms = append(ms, Retry(cfg.MaxRetries, deps.Logger, metrics))
	return func(next Handler) Handler { return Chain(next, ms...) }, nil
}
