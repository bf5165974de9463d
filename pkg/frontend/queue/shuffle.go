package queue

import (
	"math/rand/v2"

	"github.com/cespare/xxhash/v2"
)

// shuffleShard returns the n queriers of sorted that serve tenant, chosen by
// a pseudo-random permutation seeded with a hash of the tenant, so every
// frontend and scheduler that sees the same queriers picks the same ones.
// It returns nil (all queriers) when n is 0 or not smaller than the number
// of queriers.
func shuffleShard(tenant string, n int, sorted []string) map[string]struct{} {
	if n <= 0 || n >= len(sorted) {
		return nil
	}
	seed := xxhash.Sum64String(tenant)
	rnd := rand.New(rand.NewPCG(seed, seed))
	ids := append([]string(nil), sorted...)
	shard := make(map[string]struct{}, n)
	// A partial Fisher-Yates shuffle: the first n slots are the shard.
	for i := range n {
		j := i + rnd.IntN(len(ids)-i)
		ids[i], ids[j] = ids[j], ids[i]
		shard[ids[i]] = struct{}{}
	}
	return shard
}
