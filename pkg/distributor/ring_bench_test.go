package distributor

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/kv/consul"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
)

// BenchmarkRingGet measures the lookup of the RF=3 write replicas of a key
// in a real dskit ring of 3, 30 and 300 healthy ingesters of 128 tokens each.
func BenchmarkRingGet(b *testing.B) {
	for _, n := range []int{3, 30, 300} {
		b.Run(fmt.Sprintf("instances=%d", n), func(b *testing.B) {
			r := startBenchRing(b, n, 128)
			keys := make([]uint32, 4096)
			rng := rand.New(rand.NewPCG(7, 7))
			for i := range keys {
				keys[i] = rng.Uint32()
			}
			var (
				bufDescs [ring.GetBufferSize]ring.InstanceDesc
				bufHosts [ring.GetBufferSize]string
				bufZones [ring.GetBufferSize]string
			)
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				rs, err := r.Get(keys[i&4095], ring.Write, bufDescs[:0], bufHosts[:0], bufZones[:0])
				if err != nil {
					b.Fatal(err)
				}
				if len(rs.Instances) != 3 {
					b.Fatalf("got %d instances, want 3", len(rs.Instances))
				}
				i++
			}
		})
	}
}

// startBenchRing starts a ring client over an in-memory KV store holding n
// ACTIVE instances with fresh heartbeats and tokensPerInstance random tokens
// each, and stops it when the benchmark ends.
func startBenchRing(b *testing.B, n, tokensPerInstance int) *ring.Ring {
	b.Helper()
	instances := make([]testInstance, n)
	for i := range instances {
		instances[i] = testInstance{tokens: tokensPerInstance, state: ring.ACTIVE}
	}
	return startTestRing(b, ring.Config{HeartbeatTimeout: time.Minute, ReplicationFactor: 3}, instances)
}

// testInstance is an instance of a test ring.
type testInstance struct {
	zone   string
	tokens int
	state  ring.InstanceState
}

// startTestRing starts a ring client of cfg over an in-memory KV store
// holding the instances, with fresh heartbeats and random tokens, and stops
// it when the test ends.
func startTestRing(tb testing.TB, cfg ring.Config, instances []testInstance) *ring.Ring {
	tb.Helper()
	kvClient, closer := consul.NewInMemoryClient(ring.GetCodec(), log.NewNopLogger(), nil)
	tb.Cleanup(func() { _ = closer.Close() })

	rng := rand.New(rand.NewPCG(1, uint64(len(instances))))
	taken := map[uint32]bool{}
	desc := ring.NewDesc()
	for i, in := range instances {
		tokens := make([]uint32, 0, in.tokens)
		for len(tokens) < in.tokens {
			t := rng.Uint32()
			if !taken[t] {
				taken[t] = true
				tokens = append(tokens, t)
			}
		}
		slices.Sort(tokens)
		// AddIngester stamps the heartbeat with the current time.
		desc.AddIngester(fmt.Sprintf("ingester-%03d", i), fmt.Sprintf("10.0.%d.%d:9095", i/256, i%256), in.zone,
			tokens, in.state, time.Now(), false, time.Time{}, nil)
	}
	ctx := context.Background()
	if err := kvClient.CAS(ctx, "ring", func(any) (any, bool, error) { return desc, true, nil }); err != nil {
		tb.Fatal(err)
	}

	r, err := ring.NewWithStoreClientAndStrategy(cfg, "ingester", "ring", kvClient, ring.NewDefaultReplicationStrategy(), nil, log.NewNopLogger())
	if err != nil {
		tb.Fatal(err)
	}
	if err := services.StartAndAwaitRunning(ctx, r); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), r) })
	deadline := time.Now().Add(10 * time.Second)
	for r.InstancesCount() != len(instances) {
		if time.Now().After(deadline) {
			tb.Fatalf("ring has %d instances after 10s, want %d", r.InstancesCount(), len(instances))
		}
		time.Sleep(10 * time.Millisecond)
	}
	return r
}
