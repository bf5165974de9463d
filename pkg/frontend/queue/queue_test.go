package queue

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type req struct {
	tenant string
	n      int
}

func newQueue(t *testing.T, cfg Config) (*Queue, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	q := New(cfg, NewMetrics(reg))
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), q))
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), q) })
	return q, reg
}

func defaultConfig() Config {
	return Config{MaxOutstandingPerTenant: 100}
}

func TestFairness(t *testing.T) {
	for _, tc := range []struct {
		name     string
		backlogA int
		// within is how many dequeues may pass before B's request comes.
		within int
	}{
		{name: "500 queued for A", backlogA: 500, within: 2},
		{name: "one queued for A", backlogA: 1, within: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, _ := newQueue(t, Config{MaxOutstandingPerTenant: 1000})
			q.RegisterQuerierConnection("q1")
			for i := range tc.backlogA {
				require.NoError(t, q.Enqueue("a", &req{tenant: "a", n: i}, 0))
			}
			require.NoError(t, q.Enqueue("b", &req{tenant: "b"}, 0))

			last := FirstPosition
			var got []*req
			for range tc.within {
				r, pos, err := q.Dequeue(context.Background(), "q1", last)
				require.NoError(t, err)
				last = pos
				got = append(got, r.(*req))
			}
			require.Contains(t, got, &req{tenant: "b"})
			// A's requests keep their order.
			require.Equal(t, &req{tenant: "a", n: 0}, got[0])
		})
	}
}

func TestRoundRobinAcrossTenants(t *testing.T) {
	q, _ := newQueue(t, defaultConfig())
	for _, tenant := range []string{"a", "b", "c"} {
		for i := range 3 {
			require.NoError(t, q.Enqueue(tenant, &req{tenant: tenant, n: i}, 0))
		}
	}
	var got []string
	last := FirstPosition
	for range 9 {
		r, pos, err := q.Dequeue(context.Background(), "q1", last)
		require.NoError(t, err)
		last = pos
		got = append(got, fmt.Sprintf("%s%d", r.(*req).tenant, r.(*req).n))
	}
	require.Equal(t, "a0 b0 c0 a1 b1 c1 a2 b2 c2", strings.Join(got, " "))
	require.Zero(t, q.Len())
}

func TestTooManyRequests(t *testing.T) {
	for _, tc := range []struct {
		name      string
		max       int
		enqueue   int
		removed   int // removed before the last enqueue
		wantErrs  int
		wantQueue int
	}{
		{name: "under the limit", max: 3, enqueue: 3, wantQueue: 3},
		{name: "past the limit", max: 3, enqueue: 5, wantErrs: 2, wantQueue: 3},
		{name: "limit of one", max: 1, enqueue: 2, wantErrs: 1, wantQueue: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, reg := newQueue(t, Config{MaxOutstandingPerTenant: tc.max})
			errs := 0
			for i := range tc.enqueue {
				err := q.Enqueue("a", &req{n: i}, 0)
				if err != nil {
					require.ErrorIs(t, err, ErrTooManyRequests)
					errs++
				}
			}
			require.NoError(t, q.Enqueue("b", &req{}, 0), "other tenants are not limited")
			require.Equal(t, tc.wantErrs, errs)
			require.Equal(t, tc.wantQueue+1, q.Len())
			require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(fmt.Sprintf(`
# HELP neocortex_query_queue_length Requests waiting in the query queue, by tenant.
# TYPE neocortex_query_queue_length gauge
neocortex_query_queue_length{tenant="a"} %d
neocortex_query_queue_length{tenant="b"} 1
`, tc.wantQueue)), "neocortex_query_queue_length"))
			require.InDelta(t, float64(tc.wantErrs), testutil.ToFloat64(q.metrics.discarded.WithLabelValues("a")), 0)
		})
	}
}

func TestRemove(t *testing.T) {
	q, _ := newQueue(t, Config{MaxOutstandingPerTenant: 2})
	r1, r2, r3 := &req{n: 1}, &req{n: 2}, &req{n: 3}
	require.NoError(t, q.Enqueue("a", r1, 0))
	require.NoError(t, q.Enqueue("a", r2, 0))
	require.ErrorIs(t, q.Enqueue("a", r3, 0), ErrTooManyRequests)
	require.True(t, q.Remove("a", r1))
	require.False(t, q.Remove("a", r1), "removed already")
	require.False(t, q.Remove("b", r2), "another tenant")
	require.NoError(t, q.Enqueue("a", r3, 0), "removing makes room")

	r, _, err := q.Dequeue(context.Background(), "q1", FirstPosition)
	require.NoError(t, err)
	require.Same(t, r2, r)
	require.Equal(t, 1, q.Len())
}

func TestDequeueBlocksUntilEnqueue(t *testing.T) {
	q, reg := newQueue(t, defaultConfig())
	got := make(chan Request, 1)
	go func() {
		r, _, err := q.Dequeue(context.Background(), "q1", FirstPosition)
		if err == nil {
			got <- r
		}
		close(got)
	}()
	r := &req{tenant: "a"}
	require.NoError(t, q.Enqueue("a", r, 0))
	require.Same(t, r, (<-got).(*req))
	require.Equal(t, uint64(1), histogramCount(t, reg, "neocortex_query_queue_wait_duration_seconds"))
}

func histogramCount(t *testing.T, reg *prometheus.Registry, name string) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func TestDequeueCancel(t *testing.T) {
	q, _ := newQueue(t, defaultConfig())
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, _, err := q.Dequeue(ctx, "q1", FirstPosition)
		errc <- err
	}()
	cancel()
	require.ErrorIs(t, <-errc, context.Canceled)
}

func TestStopWakesWaiters(t *testing.T) {
	reg := prometheus.NewRegistry()
	q := New(defaultConfig(), NewMetrics(reg))
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), q))
	const waiters = 5
	errc := make(chan error, waiters)
	for i := range waiters {
		go func() {
			_, _, err := q.Dequeue(context.Background(), fmt.Sprint("q", i), FirstPosition)
			errc <- err
		}()
	}
	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), q))
	for range waiters {
		require.ErrorIs(t, <-errc, ErrStopped)
	}
	require.ErrorIs(t, q.Enqueue("a", &req{}, 0), ErrStopped)
}

func TestDrain(t *testing.T) {
	q, _ := newQueue(t, defaultConfig())
	for i := range 3 {
		require.NoError(t, q.Enqueue(fmt.Sprint("t", i), &req{n: i}, 0))
	}
	require.Len(t, q.Drain(), 3)
	require.Zero(t, q.Len())
	require.Empty(t, q.Drain())
}

// tryDequeue is a Dequeue that does not wait.
func tryDequeue(q *Queue, querierID string) (Request, bool) {
	q.mtx.Lock()
	defer q.mtx.Unlock()
	r, _, ok := q.next(querierID, FirstPosition)
	return r, ok
}

// shardOf returns the queriers that may run tenant's requests, by asking
// each querier to dequeue a request of tenant only.
func shardOf(t *testing.T, q *Queue, tenant string, queriers []string) []string {
	t.Helper()
	var shard []string
	for _, id := range queriers {
		r := &req{tenant: tenant}
		require.NoError(t, q.Enqueue(tenant, r, 2))
		if got, ok := tryDequeue(q, id); ok {
			require.Same(t, r, got)
			shard = append(shard, id)
		} else {
			require.True(t, q.Remove(tenant, r))
		}
	}
	return shard
}

func TestShuffleSharding(t *testing.T) {
	queriers := []string{"q0", "q1", "q2", "q3", "q4"}
	q, _ := newQueue(t, defaultConfig())
	for _, id := range queriers {
		q.RegisterQuerierConnection(id)
	}
	used := map[string]bool{}
	shards := map[string][]string{}
	for i := range 50 {
		tenant := fmt.Sprint("tenant-", i)
		shard := shardOf(t, q, tenant, queriers)
		require.Len(t, shard, 2, "tenant %s reaches exactly its 2 queriers", tenant)
		shards[tenant] = shard
		for _, id := range shard {
			used[id] = true
		}
	}
	require.Len(t, used, len(queriers), "every querier serves some tenant")

	t.Run("deterministic whatever the registration order", func(t *testing.T) {
		other, _ := newQueue(t, defaultConfig())
		for i := len(queriers) - 1; i >= 0; i-- {
			other.RegisterQuerierConnection(queriers[i])
		}
		for tenant, shard := range shards {
			require.Equal(t, shard, shardOf(t, other, tenant, queriers), tenant)
		}
	})

	t.Run("recomputed when a querier disconnects", func(t *testing.T) {
		tenant := "tenant-0"
		gone := shards[tenant][0]
		q.RegisterQuerierConnection(gone) // a second connection
		q.UnregisterQuerierConnection(gone)
		require.Equal(t, shards[tenant], shardOf(t, q, tenant, queriers), "a querier with a connection left stays")
		q.UnregisterQuerierConnection(gone)
		shard := shardOf(t, q, tenant, queriers)
		require.Len(t, shard, 2)
		require.NotContains(t, shard, gone)
		q.RegisterQuerierConnection(gone)
		require.Equal(t, shards[tenant], shardOf(t, q, tenant, queriers), "reconnecting restores the shard")
	})

	t.Run("all queriers when the shard is not smaller", func(t *testing.T) {
		for _, n := range []int{0, 5, 6} {
			r := &req{}
			require.NoError(t, q.Enqueue("everyone", r, n))
			for _, id := range queriers {
				_, ok := tryDequeue(q, id)
				require.True(t, ok, "querier %s, shard size %d", id, n)
				require.NoError(t, q.Enqueue("everyone", r, n))
			}
			require.True(t, q.Remove("everyone", r))
		}
	})
}

func TestQuerierForgetDelay(t *testing.T) {
	q, _ := newQueue(t, Config{MaxOutstandingPerTenant: 100, QuerierForgetDelay: time.Minute})
	queriers := []string{"q0", "q1", "q2"}
	for _, id := range queriers {
		q.RegisterQuerierConnection(id)
	}
	tenant := "t"
	var shard []string
	for _, id := range queriers {
		r := &req{}
		require.NoError(t, q.Enqueue(tenant, r, 1))
		if _, ok := tryDequeue(q, id); ok {
			shard = append(shard, id)
		} else {
			require.True(t, q.Remove(tenant, r))
		}
	}
	require.Len(t, shard, 1)
	q.UnregisterQuerierConnection(shard[0])
	require.InDelta(t, 2, testutil.ToFloat64(q.metrics.queriers), 0)

	others := slices.DeleteFunc(slices.Clone(queriers), func(id string) bool { return id == shard[0] })

	// Within the delay the tenant still waits for its querier.
	require.NoError(t, q.Enqueue(tenant, &req{}, 1))
	for _, id := range others {
		_, ok := tryDequeue(q, id)
		require.False(t, ok, id)
	}
	q.cleanup(time.Now().Add(30 * time.Second))
	for _, id := range others {
		_, ok := tryDequeue(q, id)
		require.False(t, ok, id)
	}
	// Then it is forgotten and another querier takes over.
	q.cleanup(time.Now().Add(2 * time.Minute))
	taken := 0
	for _, id := range others {
		if _, ok := tryDequeue(q, id); ok {
			taken++
		}
	}
	require.Equal(t, 1, taken)
}

func TestIdleTenantMetricsDeleted(t *testing.T) {
	q, reg := newQueue(t, defaultConfig())
	require.NoError(t, q.Enqueue("a", &req{}, 0))
	_, _, err := q.Dequeue(context.Background(), "q1", FirstPosition)
	require.NoError(t, err)
	count := func() int {
		n, err := testutil.GatherAndCount(reg, "neocortex_query_queue_length")
		require.NoError(t, err)
		return n
	}
	require.Equal(t, 1, count(), "an empty queue shows 0 while the tenant is not idle yet")
	q.cleanup(time.Now().Add(tenantIdleTimeout / 2))
	require.Equal(t, 1, count())
	q.cleanup(time.Now().Add(2 * tenantIdleTimeout))
	require.Equal(t, 0, count())

	// The tenant comes back in the freed slot.
	require.NoError(t, q.Enqueue("a", &req{}, 0))
	require.Equal(t, 1, count())
	require.Len(t, q.order, 1)
}
