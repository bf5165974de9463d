package cache

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"slices"
	"time"

	dskitcache "github.com/grafana/dskit/cache"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/neocortex-metrics/neocortex/pkg/logging"
)

// MemcachedConfig configures the memcached backend: dskit's client, whose
// max_item_size (1MiB by default) drops larger items silently.
type MemcachedConfig struct {
	dskitcache.MemcachedClientConfig `yaml:",inline"`
}

// RegisterFlagsWithPrefix registers the memcached client's flags and their
// defaults.
func (c *MemcachedConfig) RegisterFlagsWithPrefix(prefix string, f *flag.FlagSet) {
	c.MemcachedClientConfig.RegisterFlagsWithPrefix(prefix, f)
}

// Validate checks the memcached client's configuration.
func (c *MemcachedConfig) Validate() error {
	if err := c.MemcachedClientConfig.Validate(); err != nil {
		return fmt.Errorf("memcached cache: %w", err)
	}
	return nil
}

// Remote is a Cache on a dskit cache client, such as memcached's.
type Remote struct {
	client  dskitcache.Cache
	metrics *Metrics
}

var _ Cache = (*Remote)(nil)

// NewMemcached returns a memcached cache, its metrics named after name (see
// New). The dskit client's own metrics are named
// neocortex_<name>_memcached_cache_….
func NewMemcached(cfg MemcachedConfig, name string, logger *slog.Logger, reg prometheus.Registerer) (*Remote, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	client, err := dskitcache.CreateClient(name, dskitcache.BackendConfig{
		Backend:   dskitcache.BackendMemcached,
		Memcached: cfg.MemcachedClientConfig,
	}, logging.GoKit(logger), prometheus.WrapRegistererWithPrefix("neocortex_"+name+"_memcached_", reg))
	if err != nil {
		return nil, fmt.Errorf("create memcached client: %w", err)
	}
	return NewRemote(client, name, BackendMemcached, reg), nil
}

// NewRemote returns a cache on client, its metrics named after name (see
// New) and labelled with backend. Closing it stops client.
func NewRemote(client dskitcache.Cache, name, backend string, reg prometheus.Registerer) *Remote {
	return &Remote{client: client, metrics: NewMetrics(reg, name, backend)}
}

// Fetch implements Cache.
func (c *Remote) Fetch(ctx context.Context, keys []string) map[string][]byte {
	hits := c.client.GetMulti(ctx, keys)
	if hits == nil {
		hits = map[string][]byte{}
	}
	c.metrics.fetched(len(keys), hits)
	return hits
}

// Store implements Cache; the items are written asynchronously. dskit's
// client keeps the values until written, hence the copies.
func (c *Remote) Store(items map[string][]byte, ttl time.Duration) {
	c.metrics.stored(items)
	if ttl < 0 {
		ttl = 0
	}
	data := make(map[string][]byte, len(items))
	for k, v := range items {
		data[k] = slices.Clone(v)
	}
	c.client.SetMultiAsync(data, ttl)
}

// Close implements Cache.
func (c *Remote) Close() error {
	c.client.Stop()
	return nil
}
