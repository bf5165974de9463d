package bucketindex

import (
	"bytes"
	"context"
	"encoding/json"
	"path"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"
)

func putMeta(t *testing.T, bkt objstore.Bucket, tenant string, id ulid.ULID, mint, maxt int64) {
	t.Helper()
	b, err := json.Marshal(tsdb.BlockMeta{ULID: id, MinTime: mint, MaxTime: maxt, Version: 1,
		Stats: tsdb.BlockStats{NumSeries: 3, NumSamples: 30}, Compaction: tsdb.BlockMetaCompaction{Level: 1}})
	require.NoError(t, err)
	require.NoError(t, bkt.Upload(context.Background(), path.Join(tenant, id.String(), MetaFilename), bytes.NewReader(b)))
	require.NoError(t, bkt.Upload(context.Background(), path.Join(tenant, id.String(), "index"), bytes.NewReader([]byte("x"))))
}

func TestBuildReadWrite(t *testing.T) {
	ctx := context.Background()
	bkt, err := filesystem.NewBucket(t.TempDir())
	require.NoError(t, err)
	ids := make([]ulid.ULID, 5)
	for i := range ids {
		ids[i] = ulid.MustNew(uint64(i+1), nil)
	}
	now := time.Unix(1700000000, 0)
	putMeta(t, bkt, "t", ids[0], 2000, 3000) // live
	putMeta(t, bkt, "t", ids[1], 0, 1000)    // live, earliest
	putMeta(t, bkt, "t", ids[2], 1000, 2000) // marked for deletion
	require.NoError(t, WriteDeletionMark(ctx, bkt, "t", ids[2], now))
	putMeta(t, bkt, "t", ids[3], 1000, 2000) // not to be compacted
	require.NoError(t, WriteNoCompactMark(ctx, bkt, "t", ids[3], "block-corrupted", "bad chunk", now))
	// ids[4]: still uploading (no meta.json).
	require.NoError(t, bkt.Upload(ctx, path.Join("t", ids[4].String(), "index"), bytes.NewReader([]byte("x"))))
	putMeta(t, bkt, "other", ids[0], 0, 1000)

	idx, err := Build(ctx, bkt, "t", nil)
	require.NoError(t, err)
	var got []ulid.ULID
	for _, b := range idx.Blocks {
		got = append(got, b.ID)
	}
	require.Equal(t, []ulid.ULID{ids[1], ids[2], ids[3], ids[0]}, got, "complete blocks, by MinTime then ID")
	require.Equal(t, []*DeletionMark{{ID: ids[2], DeletionTime: now.Unix(), Version: 1}}, idx.DeletionMarks)
	require.True(t, idx.Blocks[2].NoCompact)
	require.Equal(t, uint64(3), idx.Blocks[0].NumSeries)

	tests := []struct {
		mint, maxt int64
		want       []ulid.ULID
	}{
		{0, 5000, []ulid.ULID{ids[1], ids[3], ids[0]}}, // never the marked block
		{1000, 1999, []ulid.ULID{ids[3]}},              // MaxTime is exclusive
		{999, 1000, []ulid.ULID{ids[1], ids[3]}},
		{3000, 4000, nil},
	}
	for _, tc := range tests {
		var q []ulid.ULID
		for _, b := range idx.Queryable(tc.mint, tc.maxt) {
			q = append(q, b.ID)
		}
		require.Equal(t, tc.want, q, "[%d, %d]", tc.mint, tc.maxt)
	}

	require.NoError(t, WriteIndex(ctx, bkt, "t", idx))
	read, err := ReadIndex(ctx, bkt, "t")
	require.NoError(t, err)
	require.Equal(t, idx, read)
	_, err = ReadIndex(ctx, bkt, "nobody")
	require.ErrorIs(t, err, ErrIndexNotFound)

	tenants, err := ListTenants(ctx, bkt)
	require.NoError(t, err)
	require.Equal(t, []string{"other", "t"}, tenants)

	// The upload finishes: the next build adds it, reusing the others.
	putMeta(t, bkt, "t", ids[4], 3000, 4000)
	idx2, err := Build(ctx, bkt, "t", idx)
	require.NoError(t, err)
	require.Len(t, idx2.Blocks, 5)
	require.Equal(t, ids[4], idx2.Blocks[4].ID)

	require.NoError(t, DeleteIndex(ctx, bkt, "t"))
	require.NoError(t, DeleteIndex(ctx, bkt, "t"), "deleting twice is fine")
}

func TestTenantDeletionMark(t *testing.T) {
	ctx := context.Background()
	bkt, err := filesystem.NewBucket(t.TempDir())
	require.NoError(t, err)
	m, err := ReadTenantDeletionMark(ctx, bkt, "t")
	require.NoError(t, err)
	require.Nil(t, m)
	require.NoError(t, WriteTenantDeletionMark(ctx, bkt, "t", TenantDeletionMark{CreationTime: 10}))
	m, err = ReadTenantDeletionMark(ctx, bkt, "t")
	require.NoError(t, err)
	require.Equal(t, &TenantDeletionMark{CreationTime: 10}, m)
}
