package cache

import (
	"context"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

func newTestRedis(t *testing.T, addr string) *Redis {
	t.Helper()
	cfg := RedisConfig{Endpoint: []string{addr}, Timeout: time.Second, PoolSize: 4}
	require.NoError(t, cfg.Validate())
	c := NewRedis(cfg, "test", nil, prometheus.NewRegistry())
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestRedis(t *testing.T) {
	srv := miniredis.RunT(t)
	c := newTestRedis(t, srv.Addr())
	ctx := context.Background()

	require.Empty(t, c.Fetch(ctx, nil))
	buf := []byte("one")
	c.Store(map[string][]byte{"k1": buf, "k2": []byte("two"), "forever": []byte("!")}, time.Minute)
	c.Store(map[string][]byte{"forever": []byte("!")}, 0)
	buf[0] = 'X'
	require.Equal(t, map[string][]byte{"k1": []byte("one"), "k2": []byte("two")}, c.Fetch(ctx, []string{"k1", "k2", "missing"}))
	require.Equal(t, time.Minute, srv.TTL("k1"))
	require.Zero(t, srv.TTL("forever"))

	srv.FastForward(time.Minute)
	require.Equal(t, map[string][]byte{"forever": []byte("!")}, c.Fetch(ctx, []string{"k1", "k2", "forever"}))

	require.Equal(t, 6.0, testutil.ToFloat64(c.metrics.Requests))
	require.Equal(t, 3.0, testutil.ToFloat64(c.metrics.Hits))
	require.Equal(t, 7.0, testutil.ToFloat64(c.metrics.FetchedBytes))
	require.Zero(t, testutil.ToFloat64(c.failures.WithLabelValues("fetch")))
}

func TestRedisUnreachable(t *testing.T) {
	srv := miniredis.RunT(t)
	c := newTestRedis(t, srv.Addr())
	srv.Close()

	c.Store(map[string][]byte{"k": []byte("v")}, time.Minute)
	require.Empty(t, c.Fetch(context.Background(), []string{"k"}))
	require.Equal(t, 1.0, testutil.ToFloat64(c.failures.WithLabelValues("store")))
	require.Equal(t, 1.0, testutil.ToFloat64(c.failures.WithLabelValues("fetch")))
}

func TestRedisPassword(t *testing.T) {
	srv := miniredis.RunT(t)
	srv.RequireAuth("secret")
	cfg := RedisConfig{Endpoint: []string{srv.Addr()}, Timeout: time.Second, PoolSize: 4}
	require.NoError(t, cfg.Password.Set("secret"))
	c := NewRedis(cfg, "test", nil, prometheus.NewRegistry())
	defer c.Close()
	c.Store(map[string][]byte{"k": []byte("v")}, time.Minute)
	require.Equal(t, map[string][]byte{"k": []byte("v")}, c.Fetch(context.Background(), []string{"k"}))
}
