package queryrange

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/neocortex-metrics/neocortex/pkg/cache"
)

// Config configures the range-query middlewares.
type Config struct {
	// SplitQueriesByInterval splits queries at multiples of it; 0 does
	// not split.
	SplitQueriesByInterval time.Duration `yaml:"split_queries_by_interval"`
	AlignQueriesWithStep   bool          `yaml:"align_queries_with_step"`
	// MaxQueryParallelism bounds the parts of one query in flight.
	MaxQueryParallelism int `yaml:"max_query_parallelism"`
	// MaxRetries is the most attempts at each downstream request, the
	// first included.
	MaxRetries   int                `yaml:"max_retries"`
	CacheResults bool               `yaml:"cache_results"`
	ResultsCache ResultsCacheConfig `yaml:"results_cache"`
}

// ResultsCacheConfig configures the results cache.
type ResultsCacheConfig struct {
	// MaxFreshness is how far back from now answers are not cached, for
	// samples may still arrive.
	MaxFreshness time.Duration `yaml:"max_freshness"`
	// TTL is how long the backend keeps an entry.
	TTL time.Duration `yaml:"ttl"`
	// Cache selects and configures the backend: backend, inmemory,
	// memcached, redis.
	Cache cache.Config `yaml:",inline"`
}

// RegisterFlags registers the flags (frontend.…) and their defaults.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.DurationVar(&c.SplitQueriesByInterval, "frontend.split-queries-by-interval", 24*time.Hour, "Split range queries at multiples of this interval and run the parts in parallel; 0 disables splitting.")
	f.BoolVar(&c.AlignQueriesWithStep, "frontend.align-queries-with-step", false, "Snap start and end of range queries down to multiples of their step, so that dashboards refreshed at any moment share cached results; answers then differ from Prometheus's by the snapping. Off by default: answers are exactly Prometheus's.")
	f.IntVar(&c.MaxQueryParallelism, "frontend.max-query-parallelism", 14, "Most parts of one split range query in flight at once.")
	f.IntVar(&c.MaxRetries, "frontend.max-retries", 5, "Most attempts at each downstream request, the first included; retried after 5xx answers and transport errors only.")
	f.BoolVar(&c.CacheResults, "frontend.cache-results", true, "Cache range query results.")
	c.ResultsCache.RegisterFlags(f)
}

// RegisterFlags registers the results cache flags (frontend.results-cache.…)
// and their defaults.
func (c *ResultsCacheConfig) RegisterFlags(f *flag.FlagSet) {
	f.DurationVar(&c.MaxFreshness, "frontend.results-cache.max-freshness", time.Minute, "Results for evaluation times less than this before now are not cached, as samples may still arrive for them.")
	f.DurationVar(&c.TTL, "frontend.results-cache.ttl", 24*time.Hour, "How long the cache keeps a result; bounds how long results stay stale after late writes or deletions older than max-freshness.")
	c.Cache.RegisterFlagsWithPrefix("frontend.results-cache.", f)
}

// Validate checks the configuration; the results cache only when
// CacheResults is on.
func (c *Config) Validate() error {
	switch {
	case c.SplitQueriesByInterval < 0:
		return errors.New("frontend: split_queries_by_interval must not be negative")
	case c.SplitQueriesByInterval%time.Millisecond != 0:
		return errors.New("frontend: split_queries_by_interval must be whole milliseconds")
	case c.MaxQueryParallelism < 1:
		return errors.New("frontend: max_query_parallelism must be at least 1")
	case c.MaxRetries < 1:
		return errors.New("frontend: max_retries must be at least 1")
	}
	if c.CacheResults {
		if err := c.ResultsCache.Validate(); err != nil {
			return fmt.Errorf("frontend: results cache: %w", err)
		}
	}
	return nil
}

// Validate checks the results cache configuration.
func (c *ResultsCacheConfig) Validate() error {
	if c.MaxFreshness < 0 {
		return errors.New("max_freshness must not be negative")
	}
	if c.TTL <= 0 {
		return errors.New("ttl must be positive")
	}
	return c.Cache.Validate()
}
