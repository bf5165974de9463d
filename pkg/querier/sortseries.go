package querier

import (
	"runtime"
	"slices"
	"sync"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
)

// presortMinSeries is how many series an unsorted answer to a plain
// selector needs before the querier sorts it, in parallel. PromQL sorts a
// range query's result by labels on one goroutine; a plain selector's
// result is in the order of its series, and sorting input already sorted
// takes it a single pass. Below this, the sort is cheap either way.
const presortMinSeries = 16384

// wantsPresort tells whether the series of a select are worth sorting in
// the querier though PromQL did not ask for them sorted: a plain selector
// (no function or aggregation around it, whose result PromQL sorts as it
// is) with many series.
func wantsPresort(hints *storage.SelectHints, numSeries int) bool {
	return hints != nil && hints.Func == "" && numSeries >= presortMinSeries
}

// sortedSeriesSet is the series of l in label order, sorted by
// sortParallel.
func sortedSeriesSet(l seriesList, n int) storage.SeriesSet {
	all := make([]storage.Series, 0, n)
	for _, p := range l.pages {
		for i := range p {
			all = append(all, &p[i])
		}
	}
	all = sortParallel(all, runtime.GOMAXPROCS(0), func(a, b storage.Series) int { return labels.Compare(a.Labels(), b.Labels()) })
	return &listSeriesSet{series: all, idx: -1}
}

// sortParallel sorts s by cmp, not stably, with up to workers goroutines:
// each sorts a part of s, then the parts are merged pairwise, pairs in
// parallel. The result is s or a slice of the same length.
func sortParallel[T any](s []T, workers int, cmp func(a, b T) int) []T {
	parts := 1
	for parts*2 <= workers && len(s)/(parts*2) >= 1024 {
		parts *= 2
	}
	bounds := make([]int, parts+1)
	for i := range bounds {
		bounds[i] = len(s) * i / parts
	}
	var wg sync.WaitGroup
	for i := range parts {
		wg.Go(func() { slices.SortFunc(s[bounds[i]:bounds[i+1]], cmp) })
	}
	wg.Wait()
	buf := make([]T, len(s))
	for width := 1; width < parts; width *= 2 {
		for i := 0; i < parts; i += 2 * width {
			lo, mid, hi := bounds[i], bounds[min(i+width, parts)], bounds[min(i+2*width, parts)]
			wg.Go(func() { mergeInto(buf[lo:hi], s[lo:mid], s[mid:hi], cmp) })
		}
		wg.Wait()
		s, buf = buf, s
	}
	return s
}

// mergeInto merges the sorted a and b into dst, a's first on ties.
func mergeInto[T any](dst, a, b []T, cmp func(a, b T) int) {
	i, j, k := 0, 0, 0
	for i < len(a) && j < len(b) {
		if cmp(b[j], a[i]) < 0 {
			dst[k] = b[j]
			j++
		} else {
			dst[k] = a[i]
			i++
		}
		k++
	}
	k += copy(dst[k:], a[i:])
	copy(dst[k:], b[j:])
}
