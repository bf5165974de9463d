package bucketblock

import (
	"context"
	"fmt"
	"slices"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/index"
)

// LabelNames returns the sorted label names of the series that match all
// matchers, or of all series without matchers. Like the TSDB's, it ignores
// time: every series of the block counts.
func (b *Block) LabelNames(ctx context.Context, matchers []*labels.Matcher) ([]string, error) {
	if err := b.acquire(); err != nil {
		return nil, err
	}
	defer b.mtx.RUnlock()
	if len(matchers) == 0 {
		return slices.Clone(b.header.labelNames), nil
	}
	names, err := b.labelNames(ctx, matchers)
	if err != nil {
		return nil, fmt.Errorf("read label names of block %s: %w", b.meta.ULID, err)
	}
	return names, nil
}

func (b *Block) labelNames(ctx context.Context, matchers []*labels.Matcher) ([]string, error) {
	refs, err := b.expandedPostings(ctx, matchers)
	if err != nil {
		return nil, err
	}
	var dec index.Decoder
	seen := map[uint32]struct{}{}
	for len(refs) > 0 {
		n := min(len(refs), seriesBatchSize)
		entries, err := b.fetchSeries(ctx, refs[:n])
		if err != nil {
			return nil, err
		}
		for i, e := range entries {
			offs, err := dec.LabelNamesOffsetsFor(e)
			if err != nil {
				return nil, fmt.Errorf("decode series %d: %w", refs[i], err)
			}
			for _, o := range offs {
				seen[o] = struct{}{}
			}
		}
		refs = refs[n:]
	}
	names := make([]string, 0, len(seen))
	for o := range seen {
		name, err := b.header.lookupSymbol(ctx, o)
		if err != nil {
			return nil, fmt.Errorf("look up label name: %w", err)
		}
		names = append(names, name)
	}
	slices.Sort(names)
	return names, nil
}

// LabelValues returns the sorted values of label name in the series that
// match all matchers, or in all series without matchers. Like the TSDB's,
// it ignores time.
func (b *Block) LabelValues(ctx context.Context, name string, matchers []*labels.Matcher) ([]string, error) {
	if err := b.acquire(); err != nil {
		return nil, err
	}
	defer b.mtx.RUnlock()
	values, err := b.labelValues(ctx, name, matchers)
	if err != nil {
		return nil, fmt.Errorf("read values of label %s in block %s: %w", name, b.meta.ULID, err)
	}
	return values, nil
}

func (b *Block) labelValues(ctx context.Context, name string, matchers []*labels.Matcher) ([]string, error) {
	// Matchers on name itself only filter the values: when there is no
	// other, no series needs to be read.
	others := false
	match := func(v string) bool {
		for _, m := range matchers {
			if m.Name == name && !m.Matches(v) {
				return false
			}
		}
		return true
	}
	for _, m := range matchers {
		if m.Name != name {
			others = true
		}
	}
	if !others {
		values, err := b.header.labelValues(ctx, name)
		if err != nil {
			return nil, err
		}
		return slices.DeleteFunc(values, func(v string) bool { return !match(v) }), nil
	}
	candidates, err := b.header.postingsRanges(ctx, name, match)
	if err != nil || len(candidates) == 0 {
		return nil, err
	}
	refs, err := b.expandedPostings(ctx, matchers)
	if err != nil || len(refs) == 0 {
		return nil, err
	}
	// Read whichever is smaller: the series entries of the matching
	// series, or the postings lists of the candidate values.
	var postingsBytes int64
	for _, c := range candidates {
		postingsBytes += c.end - c.start
	}
	if int64(len(refs))*b.meanSeriesSize() < postingsBytes {
		return b.labelValuesFromSeries(ctx, name, refs, match)
	}
	return b.labelValuesFromPostings(ctx, candidates, refs)
}

// meanSeriesSize is the mean size of a series entry of the block.
func (b *Block) meanSeriesSize() int64 {
	if n := int64(b.meta.Stats.NumSeries); n > 0 {
		return max((b.header.seriesEnd-int64(b.header.toc.Series))/n, 1)
	}
	return b.seriesSizeEstimate
}

func (b *Block) labelValuesFromSeries(ctx context.Context, name string, refs []storage.SeriesRef, match func(string) bool) ([]string, error) {
	var (
		dec     = index.Decoder{LookupSymbol: newSymbolCache(b.header).lookup}
		builder = labels.NewScratchBuilder(0)
		seen    = map[string]struct{}{}
	)
	for len(refs) > 0 {
		n := min(len(refs), seriesBatchSize)
		entries, err := b.fetchSeries(ctx, refs[:n])
		if err != nil {
			return nil, err
		}
		for i, e := range entries {
			if err := dec.Series(e, &builder, nil); err != nil {
				return nil, fmt.Errorf("decode series %d: %w", refs[i], err)
			}
			if v := builder.Labels().Get(name); v != "" && match(v) {
				seen[v] = struct{}{}
			}
		}
		refs = refs[n:]
	}
	values := make([]string, 0, len(seen))
	for v := range seen {
		values = append(values, v)
	}
	slices.Sort(values)
	return values, nil
}

func (b *Block) labelValuesFromPostings(ctx context.Context, candidates []postingsRange, refs []storage.SeriesRef) ([]string, error) {
	lists, err := b.fetchPostings(ctx, candidates)
	if err != nil {
		return nil, err
	}
	its := make([]index.Postings, len(lists))
	for i, l := range lists {
		if its[i], err = decodePostings(l); err != nil {
			return nil, fmt.Errorf("decode postings of %s=%q: %w", candidates[i].name, candidates[i].value, err)
		}
	}
	idx, err := index.FindIntersectingPostings(index.NewListPostings(refs), its)
	if err != nil {
		return nil, fmt.Errorf("intersect postings: %w", err)
	}
	values := make([]string, 0, len(idx))
	for _, i := range idx {
		values = append(values, candidates[i].value)
	}
	slices.Sort(values)
	return values, nil
}
