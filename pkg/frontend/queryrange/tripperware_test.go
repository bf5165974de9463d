package queryrange

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/neocortex-metrics/neocortex/pkg/tenant"
)

// TestTripperwareOrder requires step alignment outermost, then split, then
// the results cache per part, then sharding, then retry per request.
func TestTripperwareOrder(t *testing.T) {
	sharded := &recorder{}
	sharding := func(next Handler) Handler { sharded.next = next; return sharded }
	var mu sync.Mutex
	failed := map[int64]bool{}
	downstream := &recorder{next: HandlerFunc(func(ctx context.Context, r *Request) (*Response, error) {
		mu.Lock()
		first := !failed[r.Start]
		failed[r.Start] = true
		mu.Unlock()
		if first {
			return nil, &HTTPError{Code: 502, Body: []byte("bad gateway")}
		}
		return synth(nil).Do(ctx, r)
	})}
	reg := prometheus.NewRegistry()
	h := mustTripperware(t, alignedConfig(), Deps{
		Cache: newTestCache(), Registerer: reg, Sharding: sharding,
		Now: func() time.Time { return time.UnixMilli(100 * day) },
	})(downstream)
	ctx := tenant.WithTenant(context.Background(), "a")

	r := &Request{Query: "up", Start: day + 5*minute + 1, End: 3*day + 7, Step: hour}
	resp, err := h.Do(ctx, r)
	require.NoError(t, err)
	want := [][2]int64{{day, 2*day - hour}, {2 * day, 3*day - hour}, {3 * day, 3 * day}}
	require.Equal(t, want, ranges(sharded.take()), "sharding sees the aligned parts")
	require.Equal(t, [][2]int64{want[0], want[0], want[1], want[1], want[2], want[2]}, ranges(downstream.take()), "each part retried alone")
	wantResp, err := synth(nil).Do(ctx, &Request{Start: day, End: 3 * day, Step: hour})
	require.NoError(t, err)
	require.Equal(t, encode(t, wantResp), encode(t, resp))

	_, err = h.Do(ctx, r)
	require.NoError(t, err)
	require.Empty(t, sharded.take(), "the cache answers before sharding")
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP neocortex_frontend_retries_total Range query attempts after a first one that failed with a 5xx or a transport error.
# TYPE neocortex_frontend_retries_total counter
neocortex_frontend_retries_total 3
# HELP neocortex_frontend_split_queries_total Range queries sent on after splitting by interval, one per part.
# TYPE neocortex_frontend_split_queries_total counter
neocortex_frontend_split_queries_total 6
`), "neocortex_frontend_retries_total", "neocortex_frontend_split_queries_total"))
}
