package compactor

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/grafana/dskit/kv/consul"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/neocortex-metrics/neocortex/pkg/logging"
)

func TestRingSharding(t *testing.T) {
	ctx := context.Background()
	bkt := newBucket(t)
	kvClient, closer := consul.NewInMemoryClient(ring.GetCodec(), logging.GoKit(testLogger()), nil)
	t.Cleanup(func() { _ = closer.Close() })

	var comps []*Compactor
	for i := range 2 {
		cfg := testConfig(t)
		cfg.ShardingEnabled = true
		cfg.Ring.InstanceID = fmt.Sprintf("compactor-%d", i)
		cfg.Ring.HeartbeatPeriod = 100 * time.Millisecond
		c, err := New(cfg, Deps{
			Bucket:     bkt,
			KV:         kvClient,
			Addr:       fmt.Sprintf("127.0.0.1:%d", 10000+i),
			Logger:     testLogger(),
			Registerer: prometheus.NewPedanticRegistry(),
		})
		require.NoError(t, err)
		require.NoError(t, services.StartAndAwaitRunning(ctx, c))
		t.Cleanup(func() { require.NoError(t, services.StopAndAwaitTerminated(ctx, c)) })
		comps = append(comps, c)
	}
	// Both see both ACTIVE, and both ran their first cycle (on an empty
	// bucket).
	for _, c := range comps {
		require.Eventually(t, func() bool {
			rs, err := c.Ring().GetAllHealthy(ringOp)
			return err == nil && len(rs.Instances) == 2 && testutil.ToFloat64(c.metrics.runsCompleted) >= 1
		}, 10*time.Second, 10*time.Millisecond)
	}

	// Every tenant has exactly one owner.
	owned := make([]map[string]bool, len(comps))
	const tenants = 200
	for i, c := range comps {
		owned[i] = map[string]bool{}
		for n := range tenants {
			id := fmt.Sprintf("tenant-%d", n)
			ok, err := c.ownsTenant(id)
			require.NoError(t, err)
			if ok {
				owned[i][id] = true
			}
		}
	}
	for n := range tenants {
		id := fmt.Sprintf("tenant-%d", n)
		require.NotEqual(t, owned[0][id], owned[1][id], "tenant %s must have exactly one owner", id)
	}
	require.NotEmpty(t, owned[0])
	require.NotEmpty(t, owned[1])

	// Each compactor compacts its own tenants only.
	s := genSeries("a", 0, 2*hour, 5*minute)
	for n := range 8 {
		id := fmt.Sprintf("tenant-%d", n)
		putBlock(t, bkt, id, 0, 2*hour, s)
		putBlock(t, bkt, id, 0, 2*hour, s)
	}
	require.NoError(t, comps[0].CompactOnce(ctx))
	for n := range 8 {
		id := fmt.Sprintf("tenant-%d", n)
		want := 2
		if owned[0][id] {
			want = 1
		}
		require.Len(t, liveBlocks(t, bkt, id), want, id)
	}
	require.NoError(t, comps[1].CompactOnce(ctx))
	for n := range 8 {
		require.Len(t, liveBlocks(t, bkt, fmt.Sprintf("tenant-%d", n)), 1)
	}

	// The ring serves its status page.
	w := httptest.NewRecorder()
	comps[0].RingHandler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/compactor/ring", nil))
	require.Equal(t, http.StatusOK, w.Code)
	require.Contains(t, w.Body.String(), "compactor-1")
}

func TestRingHandlerWithoutSharding(t *testing.T) {
	comp, _ := newTestCompactor(t, testConfig(t), newBucket(t), nil)
	require.Nil(t, comp.Ring())
	w := httptest.NewRecorder()
	comp.RingHandler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/compactor/ring", nil))
	require.Equal(t, http.StatusOK, w.Code)
	require.Contains(t, w.Body.String(), "sharding is disabled")
}
