package distributor

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/grafana/dskit/ring"
	"github.com/stretchr/testify/require"
)

// TestBatchRing checks when a request's replicas are looked up once, and
// that the one lookup gives every key the replicas a lookup of its own
// gives, on a real dskit ring.
func TestBatchRing(t *testing.T) {
	active := func(zone string) testInstance { return testInstance{zone: zone, tokens: 128, state: ring.ACTIVE} }
	for _, tc := range []struct {
		name      string
		rf        int
		zoneAware bool
		instances []testInstance
		once      bool
	}{
		{"one instance, RF=1", 1, false, []testInstance{active("")}, true},
		{"three instances, RF=3", 3, false, []testInstance{active(""), active(""), active("")}, true},
		{"two instances, RF=3", 3, false, []testInstance{active(""), active("")}, true},
		{"one leaving of three, RF=3", 3, false, []testInstance{active(""), active(""), {tokens: 128, state: ring.LEAVING}}, true},
		{"four instances, RF=3", 3, false, []testInstance{active(""), active(""), active(""), active("")}, false},
		{"two instances, RF=1", 1, false, []testInstance{active(""), active("")}, false},
		{"one instance without tokens", 3, false, []testInstance{active(""), active(""), {state: ring.JOINING}}, false},
		{"three zones, zone-aware", 3, true, []testInstance{active("a"), active("b"), active("c")}, true},
		{"two in one zone, zone-aware", 3, true, []testInstance{active("a"), active("a"), active("b")}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := startTestRing(t, ring.Config{HeartbeatTimeout: time.Minute, ReplicationFactor: tc.rf, ZoneAwarenessEnabled: tc.zoneAware}, tc.instances)
			d := newBenchDistributor(t, r, nil)
			d.deps.RingZoneAwareness = tc.zoneAware
			br := d.batchRing()
			_, once := br.(sameReplicas)
			require.Equal(t, tc.once, once)

			rng := rand.New(rand.NewPCG(3, 3))
			for range 2000 {
				key := rng.Uint32()
				want, wantErr := r.Get(key, ring.Write, nil, nil, nil)
				got, gotErr := br.Get(key, ring.Write, nil, nil, nil)
				require.Equal(t, wantErr, gotErr)
				require.Equal(t, want.MaxErrors, got.MaxErrors)
				require.Equal(t, ids(want), ids(got), "key %d", key)
			}
		})
	}
}

// ids returns the sorted instance IDs of a replication set.
func ids(rs ring.ReplicationSet) []string {
	var out []string
	for _, in := range rs.Instances {
		out = append(out, in.Id)
	}
	slices.Sort(out)
	return out
}
