package cache

import (
	"context"
	"flag"
	"net"
	"strings"
	"testing"
	"time"

	dskitcache "github.com/grafana/dskit/cache"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

func TestInMemoryEvictsByBytes(t *testing.T) {
	reg := prometheus.NewRegistry()
	// Room for three entries of a 1-byte key and 100-byte value.
	const entry = 1 + 100 + inMemoryOverhead
	c := NewInMemory(3*entry, "test", reg)
	v := func(b byte) []byte { return []byte(strings.Repeat(string(b), 100)) }
	c.Store(map[string][]byte{"a": v('a')}, 0)
	c.Store(map[string][]byte{"b": v('b')}, 0)
	c.Store(map[string][]byte{"c": v('c')}, 0)
	require.Len(t, c.Fetch(context.Background(), []string{"a"}), 1) // a is now the most recent
	c.Store(map[string][]byte{"d": v('d')}, 0)                      // evicts b, the least recent

	got := c.Fetch(context.Background(), []string{"a", "b", "c", "d"})
	require.Equal(t, map[string][]byte{"a": v('a'), "c": v('c'), "d": v('d')}, got)
	require.Equal(t, 1.0, testutil.ToFloat64(c.evictions))
	require.Equal(t, float64(3*entry), testutil.ToFloat64(c.bytesG))
	require.Equal(t, 3.0, testutil.ToFloat64(c.itemsG))

	// A large value makes room for itself by evicting several.
	big := []byte(strings.Repeat("x", 2*entry-1-inMemoryOverhead))
	c.Store(map[string][]byte{"e": big}, 0)
	got = c.Fetch(context.Background(), []string{"a", "c", "d", "e"})
	require.Equal(t, map[string][]byte{"d": v('d'), "e": big}, got)

	// A value larger than the cache is not stored, and replaces nothing.
	c.Store(map[string][]byte{"d": []byte(strings.Repeat("x", 3*entry))}, 0)
	require.Empty(t, c.Fetch(context.Background(), []string{"d"}))
	require.LessOrEqual(t, c.bytes, uint64(3*entry))

	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP neocortex_test_cache_requests_total Keys looked up in the cache.
# TYPE neocortex_test_cache_requests_total counter
neocortex_test_cache_requests_total{backend="inmemory"} 10
# HELP neocortex_test_cache_hits_total Keys found in the cache.
# TYPE neocortex_test_cache_hits_total counter
neocortex_test_cache_hits_total{backend="inmemory"} 6
`), "neocortex_test_cache_requests_total", "neocortex_test_cache_hits_total"))
}

func TestInMemoryCopiesAndExpires(t *testing.T) {
	c := NewInMemory(1<<20, "test", prometheus.NewRegistry())
	now := time.Unix(1000, 0)
	c.now = func() time.Time { return now }

	buf := []byte("value")
	c.Store(map[string][]byte{"k": buf, "forever": buf}, time.Minute)
	c.Store(map[string][]byte{"forever": buf}, 0)
	buf[0] = 'X' // the caller reuses its buffer
	require.Equal(t, map[string][]byte{"k": []byte("value"), "forever": []byte("value")}, c.Fetch(context.Background(), []string{"k", "forever"}))

	now = now.Add(time.Minute)
	require.Equal(t, map[string][]byte{"forever": []byte("value")}, c.Fetch(context.Background(), []string{"k", "forever"}))
	require.Len(t, c.items, 1, "the expired item is gone")
}

func TestRemote(t *testing.T) {
	mock := dskitcache.NewMockCache()
	reg := prometheus.NewRegistry()
	c := NewRemote(mock, "test", BackendMemcached, reg)
	buf := []byte("value")
	c.Store(map[string][]byte{"k": buf}, time.Hour)
	buf[0] = 'X'
	require.Equal(t, map[string][]byte{"k": []byte("value")}, c.Fetch(context.Background(), []string{"k", "missing"}))
	require.Equal(t, time.Hour, mock.GetItems()["k"].ExpiresAt.Sub(time.Now()).Round(time.Hour))
	require.Equal(t, 2.0, testutil.ToFloat64(c.metrics.Requests))
	require.Equal(t, 1.0, testutil.ToFloat64(c.metrics.Hits))
	require.Equal(t, 5.0, testutil.ToFloat64(c.metrics.FetchedBytes))
	require.NoError(t, c.Close())
}

func TestConfig(t *testing.T) {
	var cfg Config
	fs := flag.NewFlagSet("test", flag.PanicOnError)
	cfg.RegisterFlagsWithPrefix("x.", fs)
	require.Equal(t, BackendInMemory, cfg.Backend)
	require.Equal(t, uint64(DefaultInMemoryMaxSizeBytes), cfg.InMemory.MaxSizeBytes)
	require.Equal(t, 500*time.Millisecond, cfg.Redis.Timeout)
	require.NoError(t, cfg.Validate())

	rows := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"memcached", []string{"-x.backend=memcached", "-x.memcached.addresses=localhost:11211"}, ""},
		{"memcached without addresses", []string{"-x.backend=memcached"}, "memcached cache: no memcached addresses provided"},
		{"redis", []string{"-x.backend=redis", "-x.redis.endpoint=localhost:6379", "-x.redis.db=2"}, ""},
		{"redis cluster with a db", []string{"-x.backend=redis", "-x.redis.endpoint=a:6379,b:6379", "-x.redis.db=2"}, "redis cache: a cluster (several endpoints) has only db 0"},
		{"redis without timeout", []string{"-x.backend=redis", "-x.redis.endpoint=a:6379", "-x.redis.timeout=0"}, "redis cache: timeout must be positive"},
		{"unknown", []string{"-x.backend=disk"}, `unknown cache backend "disk", want inmemory, memcached or redis`},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			var cfg Config
			fs := flag.NewFlagSet("test", flag.PanicOnError)
			cfg.RegisterFlagsWithPrefix("x.", fs)
			require.NoError(t, fs.Parse(row.args))
			err := cfg.Validate()
			if row.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.EqualError(t, err, row.wantErr)
		})
	}
}

func TestNew(t *testing.T) {
	var cfg Config
	cfg.RegisterFlagsWithPrefix("", flag.NewFlagSet("test", flag.PanicOnError))
	c, err := New(cfg, "test", nil, prometheus.NewRegistry())
	require.NoError(t, err)
	require.IsType(t, &InMemory{}, c)
	require.NoError(t, c.Close())

	cfg.Backend = BackendRedis
	cfg.Redis.Endpoint = []string{"127.0.0.1:1"}
	c, err = New(cfg, "test", nil, prometheus.NewRegistry())
	require.NoError(t, err)
	require.IsType(t, &Redis{}, c)
	require.NoError(t, c.Close())

	cfg.Backend = "disk"
	_, err = New(cfg, "test", nil, prometheus.NewRegistry())
	require.Error(t, err)
}

// TestNewMemcached requires the dskit client's metrics and ours to live in
// one registry, and an unreachable server to be misses.
func TestNewMemcached(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())

	var cfg Config
	fs := flag.NewFlagSet("test", flag.PanicOnError)
	cfg.RegisterFlagsWithPrefix("", fs)
	require.NoError(t, fs.Parse([]string{"-backend=memcached", "-memcached.addresses=" + addr}))
	reg := prometheus.NewRegistry()
	c, err := New(cfg, "frontend_results", nil, reg)
	require.NoError(t, err)
	c.Store(map[string][]byte{"k": []byte("v")}, time.Minute)
	require.Empty(t, c.Fetch(context.Background(), []string{"k"}))
	require.NoError(t, c.Close())

	names := map[string]bool{}
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	require.True(t, names["neocortex_frontend_results_cache_requests_total"])
	require.True(t, names["neocortex_frontend_results_memcached_cache_requests_total"])
}
