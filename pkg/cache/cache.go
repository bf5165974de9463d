// Package cache is a byte cache behind one small interface, with three
// backends: an in-process LRU bounded in bytes, memcached (dskit's client)
// and redis (go-redis). Components put their own keys and encodings on top.
package cache

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Cache maps keys to byte values. Implementations are safe for concurrent
// use.
//
// Keys must be valid for every backend: at most 250 bytes, printable ASCII
// without spaces (memcached's rule). Callers hash what they do not control.
type Cache interface {
	// Fetch returns the values of those of keys it holds; a missing key is
	// a miss, whatever the reason (absent, expired, backend unreachable —
	// the backend logs and counts those). The caller must not modify the
	// values.
	Fetch(ctx context.Context, keys []string) map[string][]byte
	// Store caches items for ttl (no expiry when ttl <= 0, where the
	// backend allows it). It keeps neither the map nor the values, so the
	// caller may reuse them at once. Writes may complete after Store
	// returns (memcached writes asynchronously) and may be dropped when the
	// backend is overloaded or an item is too large.
	Store(items map[string][]byte, ttl time.Duration)
	// Close releases the cache's connections and goroutines; no call may
	// follow it.
	Close() error
}

// Backends.
const (
	BackendInMemory  = "inmemory"
	BackendMemcached = "memcached"
	BackendRedis     = "redis"
)

// Config selects and configures a backend.
type Config struct {
	Backend   string          `yaml:"backend"`
	InMemory  InMemoryConfig  `yaml:"inmemory"`
	Memcached MemcachedConfig `yaml:"memcached"`
	Redis     RedisConfig     `yaml:"redis"`
}

// DefaultInMemoryMaxSizeBytes is the default bound of the in-memory
// backend: 256MiB, small next to a query component's working memory and
// enough for hundreds of cached day-long results of a few hundred series.
const DefaultInMemoryMaxSizeBytes = 256 << 20

// RegisterFlagsWithPrefix registers the flags of the cache, each name
// starting with prefix (such as "frontend.results-cache."), and their
// defaults.
func (c *Config) RegisterFlagsWithPrefix(prefix string, f *flag.FlagSet) {
	f.StringVar(&c.Backend, prefix+"backend", BackendInMemory, "Cache backend: "+BackendInMemory+", "+BackendMemcached+" or "+BackendRedis+".")
	c.InMemory.RegisterFlagsWithPrefix(prefix+"inmemory.", f)
	c.Memcached.RegisterFlagsWithPrefix(prefix+"memcached.", f)
	c.Redis.RegisterFlagsWithPrefix(prefix+"redis.", f)
}

// Validate checks the configuration of the selected backend only.
func (c *Config) Validate() error {
	switch c.Backend {
	case BackendInMemory:
		return c.InMemory.Validate()
	case BackendMemcached:
		return c.Memcached.Validate()
	case BackendRedis:
		return c.Redis.Validate()
	default:
		return fmt.Errorf("unknown cache backend %q, want %s, %s or %s", c.Backend, BackendInMemory, BackendMemcached, BackendRedis)
	}
}

// New returns the cache cfg describes; the caller closes it. Its metrics
// are named neocortex_<name>_cache_…, such as
// neocortex_frontend_results_cache_hits_total for name
// "frontend_results", and labelled with the backend.
func New(cfg Config, name string, logger *slog.Logger, reg prometheus.Registerer) (Cache, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", name+"_cache")
	switch cfg.Backend {
	case BackendMemcached:
		return NewMemcached(cfg.Memcached, name, logger, reg)
	case BackendRedis:
		return NewRedis(cfg.Redis, name, logger, reg), nil
	default:
		return NewInMemory(cfg.InMemory.MaxSizeBytes, name, reg), nil
	}
}

// Metrics are the metrics every backend has.
type Metrics struct {
	// Requests counts keys looked up, Hits those found.
	Requests prometheus.Counter
	Hits     prometheus.Counter
	// FetchedBytes counts bytes of the values found; StoredBytes those
	// handed to Store.
	FetchedBytes prometheus.Counter
	StoredBytes  prometheus.Counter
}

// NewMetrics registers the metrics of a cache called name on backend.
func NewMetrics(reg prometheus.Registerer, name, backend string) *Metrics {
	labels := prometheus.Labels{"backend": backend}
	prefix := "neocortex_" + name + "_cache_"
	return &Metrics{
		Requests: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: prefix + "requests_total", ConstLabels: labels,
			Help: "Keys looked up in the cache.",
		}),
		Hits: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: prefix + "hits_total", ConstLabels: labels,
			Help: "Keys found in the cache.",
		}),
		FetchedBytes: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: prefix + "fetched_bytes_total", ConstLabels: labels,
			Help: "Bytes of the values found in the cache.",
		}),
		StoredBytes: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: prefix + "stored_bytes_total", ConstLabels: labels,
			Help: "Bytes of the values handed to the cache to store.",
		}),
	}
}

func (m *Metrics) fetched(keys int, hits map[string][]byte) {
	m.Requests.Add(float64(keys))
	m.Hits.Add(float64(len(hits)))
	n := 0
	for _, v := range hits {
		n += len(v)
	}
	m.FetchedBytes.Add(float64(n))
}

func (m *Metrics) stored(items map[string][]byte) {
	n := 0
	for _, v := range items {
		n += len(v)
	}
	m.StoredBytes.Add(float64(n))
}

// withTimeout bounds ctx by d when d is positive.
func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}
