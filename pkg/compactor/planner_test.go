package compactor

import (
	"testing"

	"github.com/oklog/ulid/v2"
	"github.com/stretchr/testify/require"

	"github.com/neocortex-metrics/neocortex/pkg/storage/bucketindex"
)

// pb is a block in a planner test: a range in hours and flags.
type pb struct {
	min, max  int64
	noCompact bool
	deleted   bool
}

func TestPlan(t *testing.T) {
	ranges := []int64{2 * hour, 12 * hour, 24 * hour}
	tests := []struct {
		name   string
		blocks []pb
		// want lists each job's blocks by their index in blocks.
		want     [][]int
		wantKind string
	}{
		{name: "nothing", want: nil},
		{name: "one block", blocks: []pb{{0, 2, false, false}}, want: nil},
		{
			name:   "RF copies merge",
			blocks: []pb{{0, 2, false, false}, {0, 2, false, false}, {0, 2, false, false}, {2, 4, false, false}},
			want:   [][]int{{0, 1, 2}}, wantKind: kindVertical,
		},
		{
			name:   "unaligned first blocks of ingesters overlap the others",
			blocks: []pb{{0, 2, false, false}, {1, 2, false, false}},
			want:   [][]int{{0, 1}}, wantKind: kindVertical,
		},
		{
			name:   "touching blocks do not overlap",
			blocks: []pb{{0, 2, false, false}, {2, 4, false, false}},
			want:   nil,
		},
		{
			name:   "chain of overlaps is one job, separate overlaps are separate jobs",
			blocks: []pb{{0, 2, false, false}, {1, 3, false, false}, {2, 4, false, false}, {6, 8, false, false}, {6, 8, false, false}},
			want:   [][]int{{0, 1, 2}, {3, 4}}, wantKind: kindVertical,
		},
		{
			name:   "out-of-order block overlapping a compacted one",
			blocks: []pb{{0, 24, false, false}, {5, 7, false, false}},
			want:   [][]int{{0, 1}}, wantKind: kindVertical,
		},
		{
			name:   "no-compact and deleted blocks are never planned",
			blocks: []pb{{0, 2, true, false}, {0, 2, false, true}, {0, 2, false, false}, {30, 32, false, false}},
			want:   nil,
		},
		{
			name: "vertical before horizontal",
			blocks: []pb{
				{0, 2, false, false}, {2, 4, false, false}, {4, 6, false, false}, {6, 8, false, false}, {8, 10, false, false}, {10, 12, false, false},
				{12, 14, false, false}, {12, 14, false, false},
			},
			want: [][]int{{6, 7}}, wantKind: kindVertical,
		},
		{
			name: "complete 12h range merges",
			blocks: []pb{
				{0, 2, false, false}, {2, 4, false, false}, {4, 6, false, false}, {6, 8, false, false}, {8, 10, false, false}, {10, 12, false, false},
				{12, 14, false, false},
			},
			want: [][]int{{0, 1, 2, 3, 4, 5}}, wantKind: kindHorizontal,
		},
		{
			name: "range ending with the newest block waits",
			blocks: []pb{
				{0, 2, false, false}, {2, 4, false, false}, {4, 6, false, false}, {6, 8, false, false}, {8, 10, false, false}, {10, 12, false, false},
			},
			want: nil,
		},
		{
			name:   "range with gaps merges once complete",
			blocks: []pb{{0, 2, false, false}, {6, 8, false, false}, {14, 16, false, false}},
			want:   [][]int{{0, 1}}, wantKind: kindHorizontal,
		},
		{
			name:   "a no-compact block still says a range is complete",
			blocks: []pb{{0, 2, false, false}, {6, 8, false, false}, {14, 16, true, false}},
			want:   [][]int{{0, 1}}, wantKind: kindHorizontal,
		},
		{
			name:   "a single block in a complete range is left alone",
			blocks: []pb{{0, 2, false, false}, {14, 16, false, false}},
			want:   nil,
		},
		{
			name:   "two complete 12h ranges are two jobs",
			blocks: []pb{{0, 2, false, false}, {2, 4, false, false}, {12, 14, false, false}, {14, 16, false, false}, {24, 26, false, false}},
			want:   [][]int{{0, 1}, {2, 3}}, wantKind: kindHorizontal,
		},
		{
			name:   "12h blocks merge into 24h",
			blocks: []pb{{0, 12, false, false}, {12, 24, false, false}, {24, 26, false, false}},
			want:   [][]int{{0, 1}}, wantKind: kindHorizontal,
		},
		{
			name:   "lower level first",
			blocks: []pb{{0, 12, false, false}, {12, 14, false, false}, {14, 16, false, false}, {24, 26, false, false}},
			want:   [][]int{{1, 2}}, wantKind: kindHorizontal,
		},
		{
			name:   "block across a 12h boundary waits for the 24h level",
			blocks: []pb{{10, 14, false, false}, {14, 16, false, false}, {24, 26, false, false}},
			want:   [][]int{{0, 1}}, wantKind: kindHorizontal,
		},
		{
			name:   "blocks of the largest range stay",
			blocks: []pb{{0, 24, false, false}, {24, 48, false, false}, {48, 50, false, false}},
			want:   nil,
		},
		{
			name:   "negative times align downwards",
			blocks: []pb{{-4, -2, false, false}, {-2, 0, false, false}, {0, 2, false, false}},
			want:   [][]int{{0, 1}}, wantKind: kindHorizontal,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			idx := &bucketindex.Index{}
			ids := make([]ulid.ULID, len(tc.blocks))
			for i, b := range tc.blocks {
				ids[i] = ulid.MustNew(uint64(i+1), nil)
				idx.Blocks = append(idx.Blocks, &bucketindex.Block{ID: ids[i], MinTime: b.min * hour, MaxTime: b.max * hour, NoCompact: b.noCompact})
				if b.deleted {
					idx.DeletionMarks = append(idx.DeletionMarks, &bucketindex.DeletionMark{ID: ids[i]})
				}
			}
			jobs := plan(idx, ranges)
			var got [][]int
			for _, j := range jobs {
				require.Equal(t, tc.wantKind, j.kind)
				var members []int
				for _, b := range j.blocks {
					for i, id := range ids {
						if id == b.ID {
							members = append(members, i)
						}
					}
				}
				got = append(got, members)
			}
			require.Equal(t, tc.want, got)
		})
	}
}
