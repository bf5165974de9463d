package queryrange

import (
	"flag"
	"testing"
	"time"

	"github.com/grafana/dskit/flagext"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/neocortex-metrics/neocortex/pkg/cache"
)

func TestConfigDefaults(t *testing.T) {
	cfg := testConfig()
	require.Equal(t, 24*time.Hour, cfg.SplitQueriesByInterval)
	require.False(t, cfg.AlignQueriesWithStep)
	require.Equal(t, 14, cfg.MaxQueryParallelism)
	require.Equal(t, 5, cfg.MaxRetries)
	require.True(t, cfg.CacheResults)
	require.Equal(t, time.Minute, cfg.ResultsCache.MaxFreshness)
	require.Equal(t, 24*time.Hour, cfg.ResultsCache.TTL)
	require.Equal(t, cache.BackendInMemory, cfg.ResultsCache.Cache.Backend)
	require.Equal(t, uint64(256<<20), cfg.ResultsCache.Cache.InMemory.MaxSizeBytes)
	require.NoError(t, cfg.Validate())

	// The flags names.
	fs := flag.NewFlagSet("test", flag.PanicOnError)
	(&Config{}).RegisterFlags(fs)
	for _, name := range []string{
		"frontend.split-queries-by-interval", "frontend.align-queries-with-step", "frontend.max-query-parallelism",
		"frontend.max-retries", "frontend.cache-results", "frontend.results-cache.max-freshness", "frontend.results-cache.ttl",
		"frontend.results-cache.backend", "frontend.results-cache.inmemory.max-size-bytes", "frontend.results-cache.memcached.addresses",
		"frontend.results-cache.redis.endpoint", "frontend.results-cache.redis.password", "frontend.results-cache.redis.db", "frontend.results-cache.redis.timeout",
	} {
		require.NotNil(t, fs.Lookup(name), name)
	}
}

func TestConfigYAML(t *testing.T) {
	cfg := testConfig()
	require.NoError(t, yaml.Unmarshal([]byte(`
split_queries_by_interval: 12h
align_queries_with_step: true
max_query_parallelism: 32
max_retries: 3
cache_results: true
results_cache:
  max_freshness: 10m
  ttl: 168h
  backend: redis
  redis:
    endpoint: redis-1:6379,redis-2:6379
    password: secret
    timeout: 1s
`), &cfg))
	require.Equal(t, 12*time.Hour, cfg.SplitQueriesByInterval)
	require.True(t, cfg.AlignQueriesWithStep)
	require.Equal(t, 32, cfg.MaxQueryParallelism)
	require.Equal(t, 3, cfg.MaxRetries)
	require.Equal(t, 10*time.Minute, cfg.ResultsCache.MaxFreshness)
	require.Equal(t, 168*time.Hour, cfg.ResultsCache.TTL)
	require.Equal(t, cache.BackendRedis, cfg.ResultsCache.Cache.Backend)
	require.Equal(t, flagext.StringSliceCSV{"redis-1:6379", "redis-2:6379"}, cfg.ResultsCache.Cache.Redis.Endpoint)
	require.Equal(t, "secret", cfg.ResultsCache.Cache.Redis.Password.String())
	require.Equal(t, time.Second, cfg.ResultsCache.Cache.Redis.Timeout)
	require.Equal(t, 100, cfg.ResultsCache.Cache.Redis.PoolSize, "defaults stay")
	require.NoError(t, cfg.Validate())
}

func TestConfigValidate(t *testing.T) {
	rows := []struct {
		name    string
		change  func(*Config)
		wantErr string
	}{
		{"defaults", func(*Config) {}, ""},
		{"no splitting", func(c *Config) { c.SplitQueriesByInterval = 0 }, ""},
		{"negative interval", func(c *Config) { c.SplitQueriesByInterval = -time.Hour }, "frontend: split_queries_by_interval must not be negative"},
		{"sub-millisecond interval", func(c *Config) { c.SplitQueriesByInterval = time.Hour + time.Microsecond }, "frontend: split_queries_by_interval must be whole milliseconds"},
		{"no parallelism", func(c *Config) { c.MaxQueryParallelism = 0 }, "frontend: max_query_parallelism must be at least 1"},
		{"no attempts", func(c *Config) { c.MaxRetries = 0 }, "frontend: max_retries must be at least 1"},
		{"negative freshness", func(c *Config) { c.ResultsCache.MaxFreshness = -1 }, "frontend: results cache: max_freshness must not be negative"},
		{"no ttl", func(c *Config) { c.ResultsCache.TTL = 0 }, "frontend: results cache: ttl must be positive"},
		{"unknown backend", func(c *Config) { c.ResultsCache.Cache.Backend = "disk" }, `frontend: results cache: unknown cache backend "disk", want inmemory, memcached or redis`},
		{"unknown backend, cache off", func(c *Config) { c.ResultsCache.Cache.Backend = "disk"; c.CacheResults = false }, ""},
		{"memcached without addresses", func(c *Config) { c.ResultsCache.Cache.Backend = cache.BackendMemcached }, "frontend: results cache: memcached cache: no memcached addresses provided"},
		{"redis without endpoint", func(c *Config) { c.ResultsCache.Cache.Backend = cache.BackendRedis }, "frontend: results cache: redis cache: no endpoint"},
		{"in-memory of 0 bytes", func(c *Config) { c.ResultsCache.Cache.InMemory.MaxSizeBytes = 0 }, "frontend: results cache: in-memory cache: max size must be positive"},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			cfg := testConfig()
			row.change(&cfg)
			err := cfg.Validate()
			if row.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.EqualError(t, err, row.wantErr)
		})
	}
}

func TestNewTripperwareNeedsACache(t *testing.T) {
	_, err := NewTripperware(testConfig(), Deps{})
	require.EqualError(t, err, "frontend: results cache enabled without a cache backend")
}
