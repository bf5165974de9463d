package bucketblock

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/grafana/dskit/cache"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/neocortex-metrics/neocortex/pkg/logging"
)

// ItemKind is the kind of an item of the index cache.
type ItemKind string

// The kinds of items cached.
const (
	// ItemPostings is the postings list of a label pair: its count and
	// references, as stored in the index.
	ItemPostings ItemKind = "postings"
	// ItemSeries is the series entry of a series reference, as stored in
	// the index, without length and CRC32.
	ItemSeries ItemKind = "series"
)

var itemKinds = []ItemKind{ItemPostings, ItemSeries}

// IndexCache caches parts of the indexes of blocks, by tenant, block, kind
// and key. Implementations are safe for concurrent use.
type IndexCache interface {
	// Fetch returns the cached values of those of keys it has. The caller
	// must not modify the values.
	Fetch(ctx context.Context, tenant string, block ulid.ULID, kind ItemKind, keys []string) map[string][]byte
	// Store caches items. It keeps neither the map nor the values, which
	// may be parts of larger buffers that the caller goes on using.
	Store(tenant string, block ulid.ULID, kind ItemKind, items map[string][]byte)
	// Close releases the cache's connections and goroutines; no call may
	// follow it.
	Close() error
}

// Index cache backends.
const (
	CacheBackendInMemory  = "inmemory"
	CacheBackendMemcached = "memcached"
)

// CacheConfig configures the index cache.
type CacheConfig struct {
	Backend   string               `yaml:"backend"`
	InMemory  InMemoryCacheConfig  `yaml:"inmemory"`
	Memcached MemcachedCacheConfig `yaml:"memcached"`
}

// InMemoryCacheConfig configures the in-memory index cache.
type InMemoryCacheConfig struct {
	MaxSizeBytes uint64 `yaml:"max_size_bytes"`
}

// MemcachedCacheConfig configures the memcached index cache.
type MemcachedCacheConfig struct {
	Client cache.MemcachedClientConfig `yaml:",inline"`
	TTL    time.Duration               `yaml:"ttl"`
}

// RegisterFlagsWithPrefix registers the index cache flags, each name
// starting with prefix (such as "store-gateway.index-cache."), and their
// defaults.
func (c *CacheConfig) RegisterFlagsWithPrefix(prefix string, f *flag.FlagSet) {
	f.StringVar(&c.Backend, prefix+"backend", CacheBackendInMemory, "Index cache backend: "+CacheBackendInMemory+" or "+CacheBackendMemcached+".")
	f.Uint64Var(&c.InMemory.MaxSizeBytes, prefix+"inmemory.max-size-bytes", 256<<20, "Most bytes the in-memory index cache holds.")
	c.Memcached.Client.RegisterFlagsWithPrefix(prefix+"memcached.", f)
	f.DurationVar(&c.Memcached.TTL, prefix+"memcached.ttl", 24*time.Hour, "How long memcached keeps an index cache item.")
}

// Validate checks the index cache configuration.
func (c *CacheConfig) Validate() error {
	switch c.Backend {
	case CacheBackendInMemory:
		if c.InMemory.MaxSizeBytes == 0 {
			return errors.New("index cache: in-memory max size must be positive")
		}
	case CacheBackendMemcached:
		if err := c.Memcached.Client.Validate(); err != nil {
			return fmt.Errorf("index cache: memcached: %w", err)
		}
		if c.Memcached.TTL <= 0 {
			return errors.New("index cache: memcached TTL must be positive")
		}
	default:
		return fmt.Errorf("index cache: unknown backend %q, want %s or %s", c.Backend, CacheBackendInMemory, CacheBackendMemcached)
	}
	return nil
}

// NewIndexCache returns the index cache cfg describes. The caller closes it.
func NewIndexCache(cfg CacheConfig, logger *slog.Logger, reg prometheus.Registerer) (IndexCache, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	switch cfg.Backend {
	case CacheBackendMemcached:
		if logger == nil {
			logger = slog.New(slog.DiscardHandler)
		}
		// The client's metrics are neocortex_storegateway_cache_* with
		// labels backend="memcached" and name="index-cache".
		client, err := cache.CreateClient("index-cache", cache.BackendConfig{
			Backend:   cache.BackendMemcached,
			Memcached: cfg.Memcached.Client,
		}, logging.GoKit(logger.With("component", "index-cache")), prometheus.WrapRegistererWithPrefix("neocortex_storegateway_", reg))
		if err != nil {
			return nil, fmt.Errorf("create memcached index cache: %w", err)
		}
		return NewRemoteIndexCache(client, cfg.Memcached.TTL, reg), nil
	default:
		return NewInMemoryIndexCache(cfg.InMemory.MaxSizeBytes, reg), nil
	}
}

// cacheMetrics are the metrics every index cache has.
type cacheMetrics struct {
	requests map[ItemKind]prometheus.Counter
	hits     map[ItemKind]prometheus.Counter
}

func newCacheMetrics(reg prometheus.Registerer) cacheMetrics {
	requests := promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
		Name: "neocortex_storegateway_index_cache_requests_total",
		Help: "Items looked up in the index cache, by item kind.",
	}, []string{"item_type"})
	hits := promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
		Name: "neocortex_storegateway_index_cache_hits_total",
		Help: "Items found in the index cache, by item kind.",
	}, []string{"item_type"})
	m := cacheMetrics{requests: map[ItemKind]prometheus.Counter{}, hits: map[ItemKind]prometheus.Counter{}}
	for _, k := range itemKinds {
		m.requests[k] = requests.WithLabelValues(string(k))
		m.hits[k] = hits.WithLabelValues(string(k))
	}
	return m
}

func (m cacheMetrics) observe(kind ItemKind, requests, hits int) {
	if c, ok := m.requests[kind]; ok {
		c.Add(float64(requests))
		m.hits[kind].Add(float64(hits))
	}
}
