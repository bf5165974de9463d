package bucketblock

import (
	"container/list"
	"context"
	"slices"
	"sync"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// entryOverhead approximates the memory of an in-memory cache entry beyond
// its key and value bytes: list element, map slot, key and slice headers.
const entryOverhead = 160

type inMemoryKey struct {
	tenant string
	block  ulid.ULID
	kind   ItemKind
	key    string
}

type inMemoryEntry struct {
	key   inMemoryKey
	value []byte
}

// InMemoryIndexCache is an IndexCache in process memory: least recently
// used items go first when it holds more than its maximum size.
type InMemoryIndexCache struct {
	maxBytes uint64

	mtx   sync.Mutex
	bytes uint64
	lru   *list.List // Of *inMemoryEntry, most recently used first.
	items map[inMemoryKey]*list.Element

	metrics   cacheMetrics
	bytesG    prometheus.Gauge
	itemsG    prometheus.Gauge
	evictions prometheus.Counter
}

var _ IndexCache = (*InMemoryIndexCache)(nil)

// NewInMemoryIndexCache returns an in-memory index cache of at most maxBytes.
func NewInMemoryIndexCache(maxBytes uint64, reg prometheus.Registerer) *InMemoryIndexCache {
	return &InMemoryIndexCache{
		maxBytes: maxBytes,
		lru:      list.New(),
		items:    map[inMemoryKey]*list.Element{},
		metrics:  newCacheMetrics(reg),
		bytesG: promauto.With(reg).NewGauge(prometheus.GaugeOpts{
			Name: "neocortex_storegateway_index_cache_bytes",
			Help: "Bytes of the items in the in-memory index cache, overhead included.",
		}),
		itemsG: promauto.With(reg).NewGauge(prometheus.GaugeOpts{
			Name: "neocortex_storegateway_index_cache_items",
			Help: "Items in the in-memory index cache.",
		}),
		evictions: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "neocortex_storegateway_index_cache_evictions_total",
			Help: "Items evicted from the in-memory index cache to make room.",
		}),
	}
}

func entrySize(k inMemoryKey, v []byte) uint64 {
	return uint64(len(k.tenant) + len(k.key) + len(v) + entryOverhead)
}

// Fetch implements IndexCache.
func (c *InMemoryIndexCache) Fetch(_ context.Context, tenant string, block ulid.ULID, kind ItemKind, keys []string) map[string][]byte {
	hits := make(map[string][]byte, len(keys))
	c.mtx.Lock()
	for _, key := range keys {
		if e, ok := c.items[inMemoryKey{tenant, block, kind, key}]; ok {
			c.lru.MoveToFront(e)
			hits[key] = e.Value.(*inMemoryEntry).value
		}
	}
	c.mtx.Unlock()
	c.metrics.observe(kind, len(keys), len(hits))
	return hits
}

// Store implements IndexCache. An item larger than the whole cache is not
// stored.
func (c *InMemoryIndexCache) Store(tenant string, block ulid.ULID, kind ItemKind, items map[string][]byte) {
	c.mtx.Lock()
	defer c.mtx.Unlock()
	for key, value := range items {
		k := inMemoryKey{tenant, block, kind, key}
		size := entrySize(k, value)
		if size > c.maxBytes {
			continue
		}
		if e, ok := c.items[k]; ok {
			c.remove(e)
		}
		for c.bytes+size > c.maxBytes {
			c.remove(c.lru.Back())
			c.evictions.Inc()
		}
		c.items[k] = c.lru.PushFront(&inMemoryEntry{key: k, value: slices.Clone(value)})
		c.bytes += size
	}
	c.bytesG.Set(float64(c.bytes))
	c.itemsG.Set(float64(len(c.items)))
}

func (c *InMemoryIndexCache) remove(e *list.Element) {
	ent := c.lru.Remove(e).(*inMemoryEntry)
	delete(c.items, ent.key)
	c.bytes -= entrySize(ent.key, ent.value)
}

// Close implements IndexCache.
func (c *InMemoryIndexCache) Close() error { return nil }
