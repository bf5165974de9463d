package cache

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"time"

	"github.com/grafana/dskit/flagext"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/redis/go-redis/v9"
)

// RedisConfig configures the redis backend.
type RedisConfig struct {
	// Endpoint is one host:port, or several of a redis cluster.
	Endpoint flagext.StringSliceCSV `yaml:"endpoint"`
	Username string                 `yaml:"username"`
	Password flagext.Secret         `yaml:"password"`
	DB       int                    `yaml:"db"`
	// Timeout bounds each Fetch and each Store, connecting included.
	Timeout time.Duration `yaml:"timeout"`
	// PoolSize is the most connections per redis server.
	PoolSize int `yaml:"pool_size"`
}

// RegisterFlagsWithPrefix registers the redis backend's flags and their
// defaults.
func (c *RedisConfig) RegisterFlagsWithPrefix(prefix string, f *flag.FlagSet) {
	c.Endpoint = nil
	f.Var(&c.Endpoint, prefix+"endpoint", "Redis server as host:port, or a comma-separated list of the servers of a redis cluster.")
	f.StringVar(&c.Username, prefix+"username", "", "Redis username (ACL), if any.")
	f.Var(&c.Password, prefix+"password", "Redis password, if any.")
	f.IntVar(&c.DB, prefix+"db", 0, "Redis database number; must be 0 for a cluster.")
	f.DurationVar(&c.Timeout, prefix+"timeout", 500*time.Millisecond, "Time limit of each fetch and store, connecting included.")
	f.IntVar(&c.PoolSize, prefix+"pool-size", 100, "Most connections open to each redis server.")
}

// Validate checks the redis backend's configuration.
func (c *RedisConfig) Validate() error {
	switch {
	case len(c.Endpoint) == 0:
		return errors.New("redis cache: no endpoint")
	case c.Timeout <= 0:
		return errors.New("redis cache: timeout must be positive")
	case c.PoolSize <= 0:
		return errors.New("redis cache: pool size must be positive")
	case c.DB < 0:
		return errors.New("redis cache: db must not be negative")
	case len(c.Endpoint) > 1 && c.DB != 0:
		return errors.New("redis cache: a cluster (several endpoints) has only db 0")
	}
	return nil
}

// Redis is a Cache on redis. Store writes synchronously, in one pipeline
// bounded by the timeout.
type Redis struct {
	client  redis.UniversalClient
	timeout time.Duration
	logger  *slog.Logger

	metrics  *Metrics
	failures *prometheus.CounterVec
}

var _ Cache = (*Redis)(nil)

// NewRedis returns a redis cache, its metrics named after name (see New).
// It connects lazily: an unreachable server shows as misses and failures,
// not as an error here.
func NewRedis(cfg RedisConfig, name string, logger *slog.Logger, reg prometheus.Registerer) *Redis {
	client := redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs:        cfg.Endpoint,
		Username:     cfg.Username,
		Password:     cfg.Password.String(),
		DB:           cfg.DB,
		DialTimeout:  cfg.Timeout,
		ReadTimeout:  cfg.Timeout,
		WriteTimeout: cfg.Timeout,
		PoolSize:     cfg.PoolSize,
		// A cache fails fast: a miss costs less than waiting for retries.
		MaxRetries:    -1,
		DialerRetries: 1,
		// Contexts carry the deadlines: a timed out call gives up at once.
		ContextTimeoutEnabled: true,
		// CLIENT SETINFO at connect: not every server has it.
		DisableIdentity: true,
	})
	return newRedis(client, cfg.Timeout, name, logger, reg)
}

func newRedis(client redis.UniversalClient, timeout time.Duration, name string, logger *slog.Logger, reg prometheus.Registerer) *Redis {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Redis{
		client:  client,
		timeout: timeout,
		logger:  logger,
		metrics: NewMetrics(reg, name, BackendRedis),
		failures: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "neocortex_" + name + "_cache_redis_failures_total",
			Help: "Redis fetches and stores that failed, by operation.",
		}, []string{"operation"}),
	}
}

// Fetch implements Cache. It pipelines one GET per key, which a cluster
// routes key by key (MGET needs all keys in one slot).
func (c *Redis) Fetch(ctx context.Context, keys []string) map[string][]byte {
	hits := make(map[string][]byte, len(keys))
	if len(keys) == 0 {
		return hits
	}
	ctx, cancel := withTimeout(ctx, c.timeout)
	defer cancel()
	cmds := make([]*redis.StringCmd, len(keys))
	_, err := c.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.Get(ctx, k)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		c.failures.WithLabelValues("fetch").Inc()
		c.logger.Warn("redis fetch", "keys", len(keys), "err", err)
	}
	for i, cmd := range cmds {
		if v, err := cmd.Bytes(); err == nil {
			hits[keys[i]] = v
		}
	}
	c.metrics.fetched(len(keys), hits)
	return hits
}

// Store implements Cache.
func (c *Redis) Store(items map[string][]byte, ttl time.Duration) {
	if len(items) == 0 {
		return
	}
	c.metrics.stored(items)
	if ttl < 0 {
		ttl = 0
	}
	ctx, cancel := withTimeout(context.Background(), c.timeout)
	defer cancel()
	_, err := c.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for k, v := range items {
			p.Set(ctx, k, v, ttl)
		}
		return nil
	})
	if err != nil {
		c.failures.WithLabelValues("store").Inc()
		c.logger.Warn("redis store", "items", len(items), "err", err)
	}
}

// Close implements Cache.
func (c *Redis) Close() error {
	return c.client.Close()
}
