package querier

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
)

// ShardLabel is the name of the reserved matcher that narrows a selector to
// one hash shard of its series: {__query_shard__="<index>_of_<count>"}
// selects the series whose labels.StableHash modulo count is index-1. The
// index in the text is 1-based, as Mimir writes it ("1_of_16" to
// "16_of_16"); Shard.Index and storage.SelectHints.ShardIndex are 0-based.
//
// The query-frontend adds it to every selector of a shardable query, once
// per shard. No series has the label: every Select strips the matcher before
// matching, and label name and value lookups ignore it.
const ShardLabel = "__query_shard__"

// ErrInvalidShard is a malformed shard matcher. The PromQL API answers it
// with 422 (an execution error), like any other bad selector it only finds
// out about when it selects.
var ErrInvalidShard = errors.New("invalid " + ShardLabel + " matcher")

// Shard is one of Count hash shards of a tenant's series: those whose
// labels.StableHash modulo Count is Index. The zero Shard is all series.
type Shard struct {
	Index, Count uint64
}

// String is the shard as a matcher value, with a 1-based index: "1_of_16".
func (s Shard) String() string {
	return strconv.FormatUint(s.Index+1, 10) + "_of_" + strconv.FormatUint(s.Count, 10)
}

// Matcher is the matcher that selects the shard.
func (s Shard) Matcher() *labels.Matcher {
	return labels.MustNewMatcher(labels.MatchEqual, ShardLabel, s.String())
}

// Contains tells whether a series belongs to the shard.
func (s Shard) Contains(ls labels.Labels) bool {
	return s.Count == 0 || labels.StableHash(ls)%s.Count == s.Index
}

// ParseShard parses a shard matcher's value, "<index>_of_<count>" with
// 1 <= index <= count.
func ParseShard(v string) (Shard, error) {
	i, n, ok := strings.Cut(v, "_of_")
	if ok {
		index, err1 := strconv.ParseUint(i, 10, 64)
		count, err2 := strconv.ParseUint(n, 10, 64)
		if err1 == nil && err2 == nil && index >= 1 && index <= count {
			return Shard{Index: index - 1, Count: count}, nil
		}
	}
	return Shard{}, fmt.Errorf("%w %s=%q: want <index>_of_<count> with 1 <= index <= count", ErrInvalidShard, ShardLabel, v)
}

// StripShard returns the shard the matchers select (the zero Shard if none
// does) and the other matchers. More than one shard matcher is allowed only
// if they agree.
func StripShard(ms []*labels.Matcher) (Shard, []*labels.Matcher, error) {
	var (
		shard Shard
		found bool
	)
	for _, m := range ms {
		if m.Name != ShardLabel {
			continue
		}
		if m.Type != labels.MatchEqual {
			return Shard{}, nil, fmt.Errorf("%w %s: only = is allowed", ErrInvalidShard, m)
		}
		s, err := ParseShard(m.Value)
		if err != nil {
			return Shard{}, nil, err
		}
		if found && s != shard {
			return Shard{}, nil, fmt.Errorf("%w: %s and %s conflict", ErrInvalidShard, shard, s)
		}
		shard, found = s, true
	}
	if !found {
		return Shard{}, ms, nil
	}
	return shard, withoutShard(ms), nil
}

// withoutShard returns ms without shard matchers, ms itself if it has none.
func withoutShard(ms []*labels.Matcher) []*labels.Matcher {
	n := 0
	for _, m := range ms {
		if m.Name == ShardLabel {
			n++
		}
	}
	if n == 0 {
		return ms
	}
	out := make([]*labels.Matcher, 0, len(ms)-n)
	for _, m := range ms {
		if m.Name != ShardLabel {
			out = append(out, m)
		}
	}
	return out
}

// selectShard prepares a Select: it strips the shard matcher, checks it,
// and returns hints (a copy; [mint, maxt] when there were none) with
// ShardIndex and ShardCount set. A shard already in the hints is kept; a
// matcher that disagrees with it is an error. Without a shard, hints and
// matchers are returned as they came.
func selectShard(hints *storage.SelectHints, mint, maxt int64, ms []*labels.Matcher) (*storage.SelectHints, []*labels.Matcher, Shard, error) {
	shard, rest, err := StripShard(ms)
	if err != nil {
		return nil, nil, Shard{}, err
	}
	if hints != nil && hints.ShardCount > 0 {
		fromHints := Shard{Index: hints.ShardIndex, Count: hints.ShardCount}
		if fromHints.Index >= fromHints.Count {
			return nil, nil, Shard{}, fmt.Errorf("%w: shard index %d of %d in the select hints", ErrInvalidShard, fromHints.Index, fromHints.Count)
		}
		if shard.Count > 0 && shard != fromHints {
			return nil, nil, Shard{}, fmt.Errorf("%w: %s conflicts with shard %s of the select hints", ErrInvalidShard, shard, fromHints)
		}
		shard = fromHints
	}
	if shard.Count == 0 {
		return hints, ms, Shard{}, nil
	}
	// The parser accepted the selector because the shard matcher does not
	// match the empty string; without it, the selector must still pass
	// the same rule, or it would select every series.
	selective := false
	for _, m := range rest {
		if !m.Matches("") {
			selective = true
			break
		}
	}
	if !selective {
		return nil, nil, Shard{}, fmt.Errorf("%w: a selector needs a matcher other than %s that does not match the empty string", ErrInvalidShard, ShardLabel)
	}
	h := storage.SelectHints{Start: mint, End: maxt}
	if hints != nil {
		h = *hints
	}
	h.ShardIndex, h.ShardCount = shard.Index, shard.Count
	return &h, rest, shard, nil
}

// ShardingQueryable answers shard selectors over a storage that knows
// nothing of them (a TSDB opened without EnableSharding, a remote
// storage…): its Selects strip the shard matcher and drop the series of
// other shards from what the storage returns; label lookups ignore the
// matcher. The shard is not passed down in the hints.
type ShardingQueryable struct {
	storage.Queryable
}

var _ storage.Queryable = ShardingQueryable{}

// Querier implements storage.Queryable.
func (q ShardingQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	sq, err := q.Queryable.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	return &shardingQuerier{Querier: sq, mint: mint, maxt: maxt}, nil
}

type shardingQuerier struct {
	storage.Querier
	mint, maxt int64
}

// Select implements storage.Querier.
func (q *shardingQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, matchers ...*labels.Matcher) storage.SeriesSet {
	withShard, rest, shard, err := selectShard(hints, q.mint, q.maxt, matchers)
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	if shard.Count == 0 {
		return q.Querier.Select(ctx, sortSeries, hints, matchers...)
	}
	h := *withShard
	h.ShardIndex, h.ShardCount = 0, 0
	return &shardSeriesSet{SeriesSet: q.Querier.Select(ctx, sortSeries, &h, rest...), shard: shard}
}

// LabelValues implements storage.Querier; the shard matcher is ignored.
func (q *shardingQuerier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, matchers ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return q.Querier.LabelValues(ctx, name, hints, withoutShard(matchers)...)
}

// LabelNames implements storage.Querier; the shard matcher is ignored.
func (q *shardingQuerier) LabelNames(ctx context.Context, hints *storage.LabelHints, matchers ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return q.Querier.LabelNames(ctx, hints, withoutShard(matchers)...)
}

// shardSeriesSet passes on the series of one shard only.
type shardSeriesSet struct {
	storage.SeriesSet
	shard Shard
}

func (s *shardSeriesSet) Next() bool {
	for s.SeriesSet.Next() {
		if s.shard.Contains(s.SeriesSet.At().Labels()) {
			return true
		}
	}
	return false
}
