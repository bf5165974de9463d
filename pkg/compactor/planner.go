package compactor

import (
	"cmp"
	"slices"

	"github.com/neocortex-metrics/neocortex/pkg/storage/bucketindex"
)

// job is one compaction: its blocks are merged into one.
type job struct {
	kind   string
	blocks []*bucketindex.Block
}

// plan returns the compactions to run next on a tenant's blocks; the jobs
// share no block, so they may run at once. ranges are the compaction levels
// in milliseconds, smallest first.
//
// Blocks marked for deletion or no-compaction are never planned. The rules:
//
//  1. Vertical first. Blocks whose time ranges overlap — the copies of one
//     range that the RF ingesters shipped, out-of-order blocks — are
//     merged, every maximal chain of overlapping blocks into one block.
//     Nothing else is planned while any overlap is left.
//  2. Horizontal, for each level after the first, smallest first, stopping
//     at the first level that has work: the blocks shorter than the level's
//     range are grouped by the aligned range [t - t mod r, +r) that holds
//     them whole (a block across an aligned boundary is left out at that
//     level). A group is merged when it has at least two blocks and its
//     range is complete: some block of the tenant ends after the range
//     ends, so ingesters have moved past it and no more blocks will land in
//     it in order.
//
// Each job turns two or more blocks into at most one, and a failed job
// marks blocks no-compact, so planning again after every round ends.
func plan(idx *bucketindex.Index, ranges []int64) []job {
	marks := idx.DeletionMarkMap()
	var live, eligible []*bucketindex.Block
	for _, b := range idx.Blocks {
		if _, deleted := marks[b.ID]; deleted {
			continue
		}
		live = append(live, b)
		if !b.NoCompact {
			eligible = append(eligible, b)
		}
	}
	slices.SortFunc(eligible, func(a, b *bucketindex.Block) int {
		return cmp.Or(cmp.Compare(a.MinTime, b.MinTime), cmp.Compare(a.MaxTime, b.MaxTime), a.ID.Compare(b.ID))
	})
	if jobs := planVertical(eligible); len(jobs) > 0 {
		return jobs
	}
	var newest int64
	for i, b := range live {
		if i == 0 || b.MaxTime > newest {
			newest = b.MaxTime
		}
	}
	for _, r := range ranges[1:] {
		if jobs := planHorizontal(eligible, r, newest); len(jobs) > 0 {
			return jobs
		}
	}
	return nil
}

// planVertical returns a job for each maximal chain of overlapping blocks;
// blocks must be sorted by MinTime.
func planVertical(blocks []*bucketindex.Block) []job {
	var jobs []job
	var cur []*bucketindex.Block
	var curMax int64
	flush := func() {
		if len(cur) > 1 {
			jobs = append(jobs, job{kind: kindVertical, blocks: cur})
		}
		cur = nil
	}
	for _, b := range blocks {
		// Ranges are half-open: [MinTime, MaxTime).
		if len(cur) > 0 && b.MinTime < curMax {
			cur = append(cur, b)
			curMax = max(curMax, b.MaxTime)
			continue
		}
		flush()
		cur, curMax = []*bucketindex.Block{b}, b.MaxTime
	}
	flush()
	return jobs
}

// planHorizontal returns a job for each complete aligned range of length r
// that holds two or more blocks shorter than r; blocks must not overlap and
// be sorted by MinTime. newest is the latest MaxTime of the tenant's blocks.
func planHorizontal(blocks []*bucketindex.Block, r, newest int64) []job {
	var jobs []job
	var cur []*bucketindex.Block
	var curStart int64
	flush := func() {
		if len(cur) > 1 && curStart+r < newest {
			jobs = append(jobs, job{kind: kindHorizontal, blocks: cur})
		}
		cur = nil
	}
	for _, b := range blocks {
		if b.MaxTime-b.MinTime >= r {
			continue
		}
		start := alignedStart(b.MinTime, r)
		if b.MaxTime > start+r {
			continue // across an aligned boundary
		}
		if len(cur) > 0 && start != curStart {
			flush()
		}
		cur, curStart = append(cur, b), start
	}
	flush()
	return jobs
}

// alignedStart is the start of the aligned range of length r holding t,
// rounding down for negative t too.
func alignedStart(t, r int64) int64 {
	m := t % r
	if m < 0 {
		m += r
	}
	return t - m
}
