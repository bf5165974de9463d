package cache

import (
	"container/list"
	"context"
	"errors"
	"flag"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// InMemoryConfig configures the in-memory backend.
type InMemoryConfig struct {
	MaxSizeBytes uint64 `yaml:"max_size_bytes"`
}

// RegisterFlagsWithPrefix registers the in-memory backend's flags and
// their defaults.
func (c *InMemoryConfig) RegisterFlagsWithPrefix(prefix string, f *flag.FlagSet) {
	f.Uint64Var(&c.MaxSizeBytes, prefix+"max-size-bytes", DefaultInMemoryMaxSizeBytes, "Most bytes the in-memory cache holds, keys and per-item overhead included; the least recently used items go first.")
}

// Validate checks the in-memory backend's configuration.
func (c *InMemoryConfig) Validate() error {
	if c.MaxSizeBytes == 0 {
		return errors.New("in-memory cache: max size must be positive")
	}
	return nil
}

// inMemoryOverhead approximates the memory of an entry beyond its key and
// value bytes: list element, map slot, entry struct, string and slice
// headers.
const inMemoryOverhead = 160

type inMemoryEntry struct {
	key     string
	value   []byte
	expires time.Time // zero: never
}

func (e *inMemoryEntry) size() uint64 {
	return uint64(len(e.key) + len(e.value) + inMemoryOverhead)
}

// InMemory is a Cache in process memory, bounded in bytes: the least
// recently used items are evicted first.
type InMemory struct {
	maxBytes uint64
	now      func() time.Time

	mtx   sync.Mutex
	bytes uint64
	lru   *list.List // of *inMemoryEntry, most recently used first
	items map[string]*list.Element

	metrics   *Metrics
	bytesG    prometheus.Gauge
	itemsG    prometheus.Gauge
	evictions prometheus.Counter
}

var _ Cache = (*InMemory)(nil)

// NewInMemory returns an in-memory cache of at most maxBytes, its metrics
// named after name (see New).
func NewInMemory(maxBytes uint64, name string, reg prometheus.Registerer) *InMemory {
	prefix := "neocortex_" + name + "_cache_inmemory_"
	return &InMemory{
		maxBytes: maxBytes,
		now:      time.Now,
		lru:      list.New(),
		items:    map[string]*list.Element{},
		metrics:  NewMetrics(reg, name, BackendInMemory),
		bytesG: promauto.With(reg).NewGauge(prometheus.GaugeOpts{
			Name: prefix + "bytes",
			Help: "Bytes of the items in the in-memory cache, overhead included.",
		}),
		itemsG: promauto.With(reg).NewGauge(prometheus.GaugeOpts{
			Name: prefix + "items",
			Help: "Items in the in-memory cache.",
		}),
		evictions: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: prefix + "evictions_total",
			Help: "Items evicted from the in-memory cache to make room.",
		}),
	}
}

// Fetch implements Cache.
func (c *InMemory) Fetch(_ context.Context, keys []string) map[string][]byte {
	hits := make(map[string][]byte, len(keys))
	now := c.now()
	c.mtx.Lock()
	for _, k := range keys {
		el, ok := c.items[k]
		if !ok {
			continue
		}
		e := el.Value.(*inMemoryEntry)
		if !e.expires.IsZero() && !now.Before(e.expires) {
			c.remove(el)
			continue
		}
		c.lru.MoveToFront(el)
		hits[k] = e.value
	}
	c.updateGauges()
	c.mtx.Unlock()
	c.metrics.fetched(len(keys), hits)
	return hits
}

// Store implements Cache. An item larger than the whole cache is not
// stored.
func (c *InMemory) Store(items map[string][]byte, ttl time.Duration) {
	c.metrics.stored(items)
	var expires time.Time
	if ttl > 0 {
		expires = c.now().Add(ttl)
	}
	c.mtx.Lock()
	defer c.mtx.Unlock()
	for k, v := range items {
		e := &inMemoryEntry{key: k, value: slices.Clone(v), expires: expires}
		size := e.size()
		if old, ok := c.items[k]; ok {
			c.remove(old)
		}
		if size > c.maxBytes {
			continue
		}
		for c.bytes+size > c.maxBytes {
			c.remove(c.lru.Back())
			c.evictions.Inc()
		}
		c.items[k] = c.lru.PushFront(e)
		c.bytes += size
	}
	c.updateGauges()
}

func (c *InMemory) remove(el *list.Element) {
	e := c.lru.Remove(el).(*inMemoryEntry)
	delete(c.items, e.key)
	c.bytes -= e.size()
}

func (c *InMemory) updateGauges() {
	c.bytesG.Set(float64(c.bytes))
	c.itemsG.Set(float64(len(c.items)))
}

// Close implements Cache.
func (c *InMemory) Close() error { return nil }
