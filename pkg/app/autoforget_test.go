package app_test

import (
	"context"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/kv/consul"
	"github.com/grafana/dskit/ring"
	"github.com/stretchr/testify/require"

	"github.com/neocortex-metrics/neocortex/pkg/ingester"
)

// TestAutoForgetUnhealthy: an ingester that died without leaving the ring
// (its heartbeat stopped long ago) is removed by the live ones once its
// heartbeat is older than the auto-forget period, and the removal counted.
func TestAutoForgetUnhealthy(t *testing.T) {
	store, closer := consul.NewInMemoryClient(ring.GetCodec(), log.NewNopLogger(), nil)
	t.Cleanup(func() { _ = closer.Close() })
	// The dead one: registered, ACTIVE, last heard of a minute ago.
	require.NoError(t, store.CAS(context.Background(), ingester.RingKey, func(in any) (any, bool, error) {
		desc := ring.NewDesc()
		desc.AddIngester("dead", "127.0.0.1:1", "", []uint32{1, 2, 3}, ring.ACTIVE, time.Now().Add(-time.Hour), false, time.Time{}, nil)
		desc.Ingesters["dead"] = func(d ring.InstanceDesc) ring.InstanceDesc {
			d.Timestamp = time.Now().Add(-time.Minute).Unix()
			return d
		}(desc.Ingesters["dead"])
		return desc, true, nil
	}))

	cfg := testConfig(t)
	cfg.Ingester.Ring.KVStore.Mock = store
	cfg.Ingester.Ring.HeartbeatPeriod = 100 * time.Millisecond
	cfg.Ingester.Ring.AutoForgetUnhealthy = 30 * time.Second
	a := startApp(t, cfg)
	eventually(t, 10*time.Second, func() bool { return a.Ring.InstancesCount() == 1 }, "the dead ingester is forgotten")
	_, err := a.Ring.GetInstance("dead")
	require.Error(t, err)
	require.Equal(t, 1.0, counterValue(t, a, "neocortex_ring_auto_forgotten_instances_total", map[string]string{"ring": "ingester"}))
}
