package querier

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"

	"github.com/neocortex-metrics/neocortex/pkg/storage/bucketindex"
)

// TestBucketIndexCache: a tenant's bucket index is read once per TTL, and
// the indexes of tenants not queried for a TTL are dropped, so that every
// tenant ever queried does not keep its index in memory.
func TestBucketIndexCache(t *testing.T) {
	bkt := &countingBucket{Bucket: objstore.NewInMemBucket()}
	for _, tenant := range []string{"a", "b", "c"} {
		require.NoError(t, bucketindex.WriteIndex(context.Background(), bkt, tenant, &bucketindex.Index{
			Version: bucketindex.IndexVersion,
			Blocks:  []*bucketindex.Block{{ID: ulid.MustNew(1, nil), MinTime: 0, MaxTime: 1000}},
		}))
	}
	bkt.gets = 0
	t0 := time.Unix(1000, 0)
	now := t0
	q := &BlocksQueryable{Bucket: bkt, IndexTTL: time.Minute, Logger: slog.New(slog.DiscardHandler), now: func() time.Time { return now }}
	for _, step := range []struct {
		at     time.Duration
		tenant string
		gets   int      // bucket reads so far
		cached []string // tenants with an index in memory after the step
	}{
		{0, "a", 1, []string{"a"}},
		{30 * time.Second, "a", 1, []string{"a"}}, // within the TTL
		{45 * time.Second, "b", 2, []string{"a", "b"}},
		{61 * time.Second, "a", 3, []string{"a", "b"}},      // expired: read again; b's is fresh
		{90 * time.Second, "c", 4, []string{"a", "b", "c"}}, // swept 29s ago: not again
		{130 * time.Second, "c", 4, []string{"a", "b", "c"}},
		{145 * time.Second, "b", 5, []string{"b", "c"}}, // a's (61s) expired: dropped; b's (45s) too: read again; c's (90s) fresh
	} {
		now = t0.Add(step.at)
		idx, err := q.index(context.Background(), step.tenant)
		require.NoError(t, err)
		require.Len(t, idx.Blocks, 1)
		require.Equal(t, step.gets, bkt.gets, "reads at %s", step.at)
		var cached []string
		for tenant := range q.indexes {
			cached = append(cached, tenant)
		}
		slices.Sort(cached)
		require.Equal(t, step.cached, cached, "cached at %s", step.at)
	}
}

// countingBucket counts Get calls.
type countingBucket struct {
	objstore.Bucket
	gets int
}

func (b *countingBucket) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	b.gets++
	return b.Bucket.Get(ctx, name)
}
