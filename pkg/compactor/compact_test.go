package compactor

import (
	"context"
	"testing"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/require"

	"github.com/neocortex-metrics/neocortex/pkg/storage/bucketindex"
)

// tb is a block of a compaction test: a range in milliseconds and its
// series.
type tb struct {
	min, max int64
	series   []testSeries
	ooo      bool
}

func TestVerticalCompaction(t *testing.T) {
	a := genSeries("a", 0, 2*hour, 15*1000)
	b := genSeries("b", 0, 2*hour, 15*1000)
	c := genSeries("c", 0, 2*hour, 15*1000)
	d := genSeries("d", 30*minute, 2*hour, 15*1000)
	late := genSeries("a", 40*minute, 2*hour, 15*1000) // an ingester that joined late
	tests := []struct {
		name   string
		blocks []tb
		// wantMin and wantMax are the merged block's range in hours.
		wantMin, wantMax int64
	}{
		{
			name: "three RF copies and one with an extra series",
			blocks: []tb{
				{0, 2 * hour, []testSeries{a, b, c}, false},
				{0, 2 * hour, []testSeries{a, b, c}, false},
				{0, 2 * hour, []testSeries{a, b, c}, false},
				{0, 2 * hour, []testSeries{a, d}, false},
			},
			wantMin: 0, wantMax: 2,
		},
		{
			// The first block of an ingester that started late begins
			// with its first sample.
			name: "copy from an ingester that joined late",
			blocks: []tb{
				{0, 2 * hour, []testSeries{a, b}, false},
				{0, 2 * hour, []testSeries{a, b}, false},
				{40 * minute, 2 * hour, []testSeries{late}, false},
			},
			wantMin: 0, wantMax: 2,
		},
		{
			name: "out-of-order block across two in-order blocks",
			blocks: []tb{
				{0, 2 * hour, []testSeries{a}, false},
				{2 * hour, 4 * hour, []testSeries{genSeries("a", 2*hour, 4*hour, 15*1000)}, false},
				{1 * hour, 3 * hour, []testSeries{genSeries("ooo", 1*hour, 3*hour, 60*1000)}, true},
			},
			wantMin: 0, wantMax: 4,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			bkt := &recordingBucket{Bucket: newBucket(t)}
			var sources []ulid.ULID
			var sets [][]testSeries
			for _, blk := range tc.blocks {
				dir := writeBlock(t, blk.min, blk.max, blk.series...)
				if blk.ooo {
					editMeta(t, dir, func(m *tsdb.BlockMeta) { m.Compaction.SetOutOfOrder() })
				}
				sources = append(sources, uploadLocalBlock(t, bkt, "tenant-1", dir))
				sets = append(sets, blk.series)
			}
			comp, _ := newTestCompactor(t, testConfig(t), bkt, nil)
			require.NoError(t, comp.CompactOnce(ctx))

			live := liveBlocks(t, bkt, "tenant-1")
			require.Len(t, live, 1)
			merged := live[0]
			require.NotContains(t, sources, merged.ID)
			require.Equal(t, tc.wantMin*hour, merged.MinTime)
			require.Equal(t, tc.wantMax*hour, merged.MaxTime)

			meta, got := readBucketBlock(t, bkt, "tenant-1", merged.ID)
			require.Equal(t, union(sets...), got, "each sample exactly once, the union of the series")
			require.Equal(t, 2, meta.Compaction.Level)
			require.ElementsMatch(t, sources, meta.Compaction.Sources)
			require.False(t, meta.Compaction.FromOutOfOrder())

			// meta.json is the last object of the new block uploaded.
			uploads := bkt.opsUnder("upload", bucketindex.BlockPath("tenant-1", merged.ID)+"/")
			require.GreaterOrEqual(t, len(uploads), 3)
			require.Equal(t, bucketindex.MetaFilename, uploads[len(uploads)-1])

			// The bucket index lists the sources (still there until the
			// deletion delay passes) with their deletion marks.
			idx, err := bucketindex.ReadIndex(ctx, bkt, "tenant-1")
			require.NoError(t, err)
			var indexed, marked []ulid.ULID
			for _, b := range idx.Blocks {
				indexed = append(indexed, b.ID)
			}
			for _, m := range idx.DeletionMarks {
				marked = append(marked, m.ID)
			}
			require.ElementsMatch(t, append([]ulid.ULID{merged.ID}, sources...), indexed)
			require.ElementsMatch(t, sources, marked)

			require.Equal(t, 1.0, testutil.ToFloat64(comp.metrics.compactions.WithLabelValues(kindVertical)))
			require.Equal(t, float64(len(sources)), testutil.ToFloat64(comp.metrics.blocksCompacted))
			require.Equal(t, float64(len(sources)), testutil.ToFloat64(comp.metrics.markedDeletion.WithLabelValues(reasonCompaction)))
			require.Equal(t, 1.0, testutil.ToFloat64(comp.metrics.runsCompleted))

			// A second cycle has nothing to do.
			require.NoError(t, comp.CompactOnce(ctx))
			require.Equal(t, 1.0, testutil.ToFloat64(comp.metrics.compactions.WithLabelValues(kindVertical)))
		})
	}
}

func TestHorizontalCompaction(t *testing.T) {
	type want struct{ min, max, level int64 }
	span := func(from, to, step int64) []tb {
		var out []tb
		for h := from; h < to; h += step {
			out = append(out, tb{h * hour, (h + step) * hour, []testSeries{
				genSeries("up", h*hour, (h+step)*hour, 15*minute),
				genSeries("rate", h*hour+minute, (h+step)*hour, 10*minute),
			}, false})
		}
		return out
	}
	tests := []struct {
		name   string
		blocks []tb
		want   []want
	}{
		{
			name:   "six 2h blocks fill a 12h range",
			blocks: span(0, 14, 2),
			want:   []want{{0, 12, 2}, {12, 14, 1}},
		},
		{
			name:   "incomplete range waits",
			blocks: span(0, 12, 2),
			want:   []want{{0, 2, 1}, {2, 4, 1}, {4, 6, 1}, {6, 8, 1}, {8, 10, 1}, {10, 12, 1}},
		},
		{
			name:   "gaps",
			blocks: append(span(0, 2, 2), append(span(6, 8, 2), span(14, 16, 2)...)...),
			want:   []want{{0, 8, 2}, {14, 16, 1}},
		},
		{
			name:   "two levels in one cycle",
			blocks: span(0, 26, 2),
			want:   []want{{0, 24, 3}, {24, 26, 1}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			bkt := newBucket(t)
			var sets [][]testSeries
			for _, blk := range tc.blocks {
				putBlock(t, bkt, "tenant-1", blk.min, blk.max, blk.series...)
				sets = append(sets, blk.series)
			}
			comp, _ := newTestCompactor(t, testConfig(t), bkt, nil)
			require.NoError(t, comp.CompactOnce(ctx))

			var got []want
			all := map[string][]sample{}
			for _, b := range liveBlocks(t, bkt, "tenant-1") {
				meta, samples := readBucketBlock(t, bkt, "tenant-1", b.ID)
				got = append(got, want{b.MinTime / hour, b.MaxTime / hour, int64(meta.Compaction.Level)})
				for k, v := range samples {
					all[k] = append(all[k], v...)
				}
			}
			require.Equal(t, tc.want, got)
			require.Equal(t, union(sets...), all, "same samples")
			require.Zero(t, testutil.ToFloat64(comp.metrics.compactions.WithLabelValues(kindVertical)))
		})
	}
}

func TestCorruptBlocks(t *testing.T) {
	first := []testSeries{genSeries("a", 0, 2*hour, 30*1000), genSeries("b", 0, 2*hour, 60*1000)}
	second := []testSeries{genSeries("a", 2*hour, 4*hour, 30*1000), genSeries("b", 2*hour, 4*hour, 60*1000)}
	tests := []struct {
		name       string
		corrupt    func(t *testing.T, bkt *recordingBucket, id ulid.ULID)
		wantReason string
	}{
		{
			name: "truncated index",
			corrupt: func(t *testing.T, bkt *recordingBucket, id ulid.ULID) {
				truncateObject(t, bkt, objectPath("a", id, "index"))
			},
			wantReason: noCompactCorrupted,
		},
		{
			name: "truncated chunks",
			corrupt: func(t *testing.T, bkt *recordingBucket, id ulid.ULID) {
				truncateObject(t, bkt, objectPath("a", id, "chunks/000001"))
			},
			wantReason: noCompactCorrupted,
		},
		{
			name: "missing index",
			corrupt: func(t *testing.T, bkt *recordingBucket, id ulid.ULID) {
				require.NoError(t, bkt.Delete(context.Background(), objectPath("a", id, "index")))
			},
			wantReason: noCompactCorrupted,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			bkt := &recordingBucket{Bucket: newBucket(t)}
			// Tenant a: three copies of [0, 2h), one corrupt, and two of [2h, 4h).
			bad := putBlock(t, bkt, "a", 0, 2*hour, first...)
			putBlock(t, bkt, "a", 0, 2*hour, first...)
			putBlock(t, bkt, "a", 0, 2*hour, first...)
			putBlock(t, bkt, "a", 2*hour, 4*hour, second...)
			putBlock(t, bkt, "a", 2*hour, 4*hour, second...)
			// Tenant b: two copies of [0, 2h).
			putBlock(t, bkt, "b", 0, 2*hour, first...)
			putBlock(t, bkt, "b", 0, 2*hour, first...)
			tc.corrupt(t, bkt, bad)

			comp, _ := newTestCompactor(t, testConfig(t), bkt, nil)
			require.NoError(t, comp.CompactOnce(ctx), "a corrupt block fails no cycle")
			require.Equal(t, 1.0, testutil.ToFloat64(comp.metrics.markedNoCompact))

			var m bucketindex.NoCompactMark
			ok, err := readJSONObject(ctx, bkt, objectPath("a", bad, bucketindex.NoCompactMarkFilename), &m)
			require.NoError(t, err)
			require.True(t, ok, "the corrupt block is marked no-compact")
			require.Equal(t, tc.wantReason, m.Reason)
			require.NotEmpty(t, m.Details)

			// Tenant a: the corrupt block stays (still queried), the two
			// good copies are merged, and so is the other range.
			live := liveBlocks(t, bkt, "a")
			require.Len(t, live, 3)
			var others []*bucketindex.Block
			for _, b := range live {
				if b.ID == bad {
					require.True(t, b.NoCompact)
					continue
				}
				others = append(others, b)
				_, got := readBucketBlock(t, bkt, "a", b.ID)
				if b.MinTime == 0 {
					require.Equal(t, union(first), got)
				} else {
					require.Equal(t, union(second), got)
				}
			}
			require.Len(t, others, 2)
			// Tenant b is compacted too.
			require.Len(t, liveBlocks(t, bkt, "b"), 1)
			require.Equal(t, 3.0, testutil.ToFloat64(comp.metrics.compactions.WithLabelValues(kindVertical)))

			// The corrupt block is never planned again.
			require.NoError(t, comp.CompactOnce(ctx))
			require.Equal(t, 1.0, testutil.ToFloat64(comp.metrics.markedNoCompact))
			require.Equal(t, 3.0, testutil.ToFloat64(comp.metrics.compactions.WithLabelValues(kindVertical)))
			require.Len(t, liveBlocks(t, bkt, "a"), 3)
		})
	}
}

func TestCompactorService(t *testing.T) {
	bkt := newBucket(t)
	cfg := testConfig(t)
	cfg.CompactionInterval = 20 * time.Millisecond
	comp, _ := newTestCompactor(t, cfg, bkt, nil)
	require.NoError(t, comp.StartAsync(context.Background()))
	require.NoError(t, comp.AwaitRunning(context.Background()))

	s := genSeries("a", 0, 2*hour, 60*1000)
	putBlock(t, bkt, "t", 0, 2*hour, s)
	putBlock(t, bkt, "t", 0, 2*hour, s)
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(comp.metrics.compactions.WithLabelValues(kindVertical)) == 1
	}, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), comp))
	require.Len(t, liveBlocks(t, bkt, "t"), 1)
	require.Positive(t, testutil.ToFloat64(comp.metrics.lastSuccess))
}

func TestCorruptMetaDoesNotStopTheTenant(t *testing.T) {
	ctx := context.Background()
	bkt := newBucket(t)
	s := genSeries("a", 0, 2*hour, minute)
	bad := putBlock(t, bkt, "t", 0, 2*hour, s)
	putBlock(t, bkt, "t", 0, 2*hour, s)
	putBlock(t, bkt, "t", 0, 2*hour, s)
	truncateObject(t, bkt, objectPath("t", bad, bucketindex.MetaFilename))

	comp, _ := newTestCompactor(t, testConfig(t), bkt, nil)
	require.NoError(t, comp.CompactOnce(ctx))
	// The block with an unreadable meta.json is left out of the index, like
	// a block still being uploaded; the others are compacted.
	live := liveBlocks(t, bkt, "t")
	require.Len(t, live, 1)
	require.NotEqual(t, bad, live[0].ID)
	require.Equal(t, 1.0, testutil.ToFloat64(comp.metrics.compactions.WithLabelValues(kindVertical)))
}
