package bucketblock

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/grafana/dskit/cache"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

func TestInMemoryIndexCache(t *testing.T) {
	ctx := context.Background()
	b1, b2 := ulid.MustNew(1, nil), ulid.MustNew(2, nil)
	value := func(n int, c byte) []byte { return []byte(strings.Repeat(string(c), n)) }
	// Room for exactly three entries of 100-byte values under 1-byte keys
	// of tenant "t".
	size := entrySize(inMemoryKey{tenant: "t", key: "k"}, value(100, 'x'))

	cases := []struct {
		name       string
		run        func(c *InMemoryIndexCache)
		fetch      []string
		want       map[string][]byte
		items      float64
		evicted    float64
		hitsBefore float64 // Hits of run.
	}{
		{
			name:  "miss",
			run:   func(*InMemoryIndexCache) {},
			fetch: []string{"a"},
			want:  map[string][]byte{},
		},
		{
			name: "hit",
			run: func(c *InMemoryIndexCache) {
				c.Store("t", b1, ItemPostings, map[string][]byte{"a": value(100, 'a'), "b": value(100, 'b')})
			},
			fetch: []string{"a", "b", "c"},
			want:  map[string][]byte{"a": value(100, 'a'), "b": value(100, 'b')},
			items: 2,
		},
		{
			name: "kinds, blocks and tenants are apart",
			run: func(c *InMemoryIndexCache) {
				c.Store("t", b1, ItemSeries, map[string][]byte{"a": value(100, 's')})
				c.Store("t", b2, ItemPostings, map[string][]byte{"a": value(100, '2')})
				c.Store("u", b1, ItemPostings, map[string][]byte{"a": value(100, 'u')})
			},
			fetch: []string{"a"},
			want:  map[string][]byte{},
			items: 3,
		},
		{
			name: "least recently used goes first",
			run: func(c *InMemoryIndexCache) {
				c.Store("t", b1, ItemPostings, map[string][]byte{"a": value(100, 'a')})
				c.Store("t", b1, ItemPostings, map[string][]byte{"b": value(100, 'b')})
				c.Store("t", b1, ItemPostings, map[string][]byte{"c": value(100, 'c')})
				c.Fetch(ctx, "t", b1, ItemPostings, []string{"a"}) // b is now the oldest.
				c.Store("t", b1, ItemPostings, map[string][]byte{"d": value(100, 'd')})
			},
			fetch:      []string{"a", "b", "c", "d"},
			want:       map[string][]byte{"a": value(100, 'a'), "c": value(100, 'c'), "d": value(100, 'd')},
			items:      3,
			evicted:    1,
			hitsBefore: 1,
		},
		{
			name: "replacing a key",
			run: func(c *InMemoryIndexCache) {
				c.Store("t", b1, ItemPostings, map[string][]byte{"a": value(100, 'a')})
				c.Store("t", b1, ItemPostings, map[string][]byte{"a": value(100, 'z')})
			},
			fetch: []string{"a"},
			want:  map[string][]byte{"a": value(100, 'z')},
			items: 1,
		},
		{
			name: "too large for the cache",
			run: func(c *InMemoryIndexCache) {
				c.Store("t", b1, ItemPostings, map[string][]byte{"a": value(int(3*size), 'a')})
			},
			fetch: []string{"a"},
			want:  map[string][]byte{},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			cache := NewInMemoryIndexCache(3*size, reg)
			c.run(cache)
			got := cache.Fetch(ctx, "t", b1, ItemPostings, c.fetch)
			require.Equal(t, c.want, got)
			require.Equal(t, c.items, testutil.ToFloat64(cache.itemsG))
			require.Equal(t, c.evicted, testutil.ToFloat64(cache.evictions))
			require.LessOrEqual(t, testutil.ToFloat64(cache.bytesG), float64(3*size))
			// Every entry has a 1-byte tenant and key and a 100-byte value.
			require.Equal(t, c.items*float64(size), testutil.ToFloat64(cache.bytesG))
			require.Equal(t, float64(len(got))+c.hitsBefore, testutil.ToFloat64(cache.metrics.hits[ItemPostings]))
		})
	}
}

func TestInMemoryIndexCacheDoesNotKeepCallerBuffers(t *testing.T) {
	c := NewInMemoryIndexCache(1<<20, nil)
	buf := []byte("postings")
	c.Store("t", ulid.MustNew(1, nil), ItemPostings, map[string][]byte{"a": buf[:4]})
	copy(buf, "XXXXXXXX")
	require.Equal(t, map[string][]byte{"a": []byte("post")}, c.Fetch(context.Background(), "t", ulid.MustNew(1, nil), ItemPostings, []string{"a"}))
}

func TestRemoteIndexCache(t *testing.T) {
	ctx := context.Background()
	mock := cache.NewMockCache()
	reg := prometheus.NewRegistry()
	c := NewRemoteIndexCache(mock, time.Hour, reg)
	defer func() { require.NoError(t, c.Close()) }()
	b1, b2 := ulid.MustNew(1, nil), ulid.MustNew(2, nil)

	long := postingsKey("label", strings.Repeat("v", 1000)+" with spaces\n")
	c.Store("t", b1, ItemPostings, map[string][]byte{long: []byte("p1"), "k": []byte("p2")})
	c.Store("t", b1, ItemSeries, map[string][]byte{"k": []byte("s1")})
	c.Store("t", b2, ItemPostings, map[string][]byte{"k": []byte("b2")})
	c.Store("u", b1, ItemPostings, map[string][]byte{"k": []byte("u1")})

	require.Equal(t, map[string][]byte{long: []byte("p1"), "k": []byte("p2")}, c.Fetch(ctx, "t", b1, ItemPostings, []string{long, "k", "missing"}))
	require.Equal(t, map[string][]byte{"k": []byte("s1")}, c.Fetch(ctx, "t", b1, ItemSeries, []string{"k"}))
	require.Equal(t, map[string][]byte{"k": []byte("b2")}, c.Fetch(ctx, "t", b2, ItemPostings, []string{"k"}))
	require.Equal(t, map[string][]byte{"k": []byte("u1")}, c.Fetch(ctx, "u", b1, ItemPostings, []string{"k"}))

	items := mock.GetItems()
	require.Len(t, items, 5)
	for k := range items {
		require.LessOrEqual(t, len(k), 250, "memcached's key limit")
		require.NotContains(t, k, " ")
		require.NotContains(t, k, "\n")
	}
	require.Equal(t, float64(5), testutil.ToFloat64(c.metrics.requests[ItemPostings]))
	require.Equal(t, float64(4), testutil.ToFloat64(c.metrics.hits[ItemPostings]))
	require.Equal(t, float64(1), testutil.ToFloat64(c.metrics.hits[ItemSeries]))

	// Items expire after the TTL.
	mock.Advance(time.Hour + time.Second)
	require.Empty(t, c.Fetch(ctx, "t", b1, ItemSeries, []string{"k"}))
}

func TestCacheConfig(t *testing.T) {
	defaults := func() CacheConfig {
		var c CacheConfig
		c.RegisterFlagsWithPrefix("store-gateway.index-cache.", flag.NewFlagSet("", flag.PanicOnError))
		return c
	}
	c := defaults()
	require.Equal(t, CacheBackendInMemory, c.Backend)
	require.Equal(t, uint64(256<<20), c.InMemory.MaxSizeBytes)
	require.Equal(t, 24*time.Hour, c.Memcached.TTL)
	require.NoError(t, c.Validate())

	cases := []struct {
		name    string
		change  func(c *CacheConfig)
		wantErr string
	}{
		{"defaults", func(*CacheConfig) {}, ""},
		{"unknown backend", func(c *CacheConfig) { c.Backend = "redis" }, `unknown backend "redis"`},
		{"zero in-memory size", func(c *CacheConfig) { c.InMemory.MaxSizeBytes = 0 }, "max size"},
		{"memcached without addresses", func(c *CacheConfig) { c.Backend = CacheBackendMemcached }, "memcached"},
		{"memcached", func(c *CacheConfig) {
			c.Backend = CacheBackendMemcached
			c.Memcached.Client.Addresses = []string{"localhost:11211"}
		}, ""},
		{"memcached without TTL", func(c *CacheConfig) {
			c.Backend = CacheBackendMemcached
			c.Memcached.Client.Addresses = []string{"localhost:11211"}
			c.Memcached.TTL = 0
		}, "TTL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := defaults()
			tc.change(&c)
			err := c.Validate()
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
			_, err = NewIndexCache(c, nil, nil)
			require.ErrorContains(t, err, tc.wantErr)
		})
	}

	// The YAML form, memcached's client settings inline beside the TTL.
	c = defaults()
	require.NoError(t, yaml.Unmarshal([]byte(`
backend: memcached
inmemory:
  max_size_bytes: 1000
memcached:
  addresses: a:11211,b:11211
  timeout: 1s
  ttl: 2h
`), &c))
	require.Equal(t, CacheBackendMemcached, c.Backend)
	require.Equal(t, uint64(1000), c.InMemory.MaxSizeBytes)
	require.Equal(t, []string{"a:11211", "b:11211"}, []string(c.Memcached.Client.Addresses))
	require.Equal(t, time.Second, c.Memcached.Client.Timeout)
	require.Equal(t, 2*time.Hour, c.Memcached.TTL)
	require.NoError(t, c.Validate())
}

func TestNewIndexCacheInMemory(t *testing.T) {
	var cfg CacheConfig
	cfg.RegisterFlagsWithPrefix("", flag.NewFlagSet("", flag.PanicOnError))
	cfg.InMemory.MaxSizeBytes = 12345
	reg := prometheus.NewRegistry()
	c, err := NewIndexCache(cfg, nil, reg)
	require.NoError(t, err)
	defer func() { require.NoError(t, c.Close()) }()
	require.IsType(t, &InMemoryIndexCache{}, c)
	require.Equal(t, uint64(12345), c.(*InMemoryIndexCache).maxBytes)
	c.Fetch(context.Background(), "t", ulid.MustNew(1, nil), ItemSeries, []string{"1", "2"})
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(fmt.Sprintf(`
# HELP neocortex_storegateway_index_cache_requests_total Items looked up in the index cache, by item kind.
# TYPE neocortex_storegateway_index_cache_requests_total counter
neocortex_storegateway_index_cache_requests_total{item_type="postings"} 0
neocortex_storegateway_index_cache_requests_total{item_type="series"} %d
`, 2)), "neocortex_storegateway_index_cache_requests_total"))
}

// TestNewIndexCacheMemcached creates a memcached index cache that reaches
// no server: lookups miss rather than fail.
func TestNewIndexCacheMemcached(t *testing.T) {
	var cfg CacheConfig
	cfg.RegisterFlagsWithPrefix("", flag.NewFlagSet("", flag.PanicOnError))
	cfg.Backend = CacheBackendMemcached
	cfg.Memcached.Client.Addresses = []string{"127.0.0.1:1"}
	reg := prometheus.NewRegistry()
	c, err := NewIndexCache(cfg, nil, reg)
	require.NoError(t, err)
	require.IsType(t, &RemoteIndexCache{}, c)
	c.Store("t", ulid.MustNew(1, nil), ItemSeries, map[string][]byte{"1": []byte("s")})
	require.Empty(t, c.Fetch(context.Background(), "t", ulid.MustNew(1, nil), ItemSeries, []string{"1"}))
	require.NoError(t, c.Close())
	n, err := testutil.GatherAndCount(reg, "neocortex_storegateway_index_cache_requests_total", "neocortex_storegateway_cache_operations_total")
	require.NoError(t, err)
	require.Positive(t, n)
}
