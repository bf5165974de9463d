package bucketblock

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"slices"

	"github.com/grafana/dskit/concurrency"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/encoding"
	"github.com/prometheus/prometheus/tsdb/index"
)

// postingGroup is what one matcher contributes to the result: the union of
// the postings lists of some values of its label, which the result is
// intersected with (a matcher that does not match the empty string: the
// series must have one of the values it matches) or from which it is
// subtracted (a matcher that matches the empty string: the series must not
// have any of the values it does not match).
type postingGroup struct {
	subtract bool
	ranges   []postingsRange
}

// postingGroups resolves matchers to posting groups with the index-header.
// empty reports that no series can match, with nothing to fetch. This is
// the semantics of tsdb.PostingsForMatchers, whose special cases all reduce
// to these two rules; an all-subtracting set is subtracted from the
// all-postings list.
func (b *Block) postingGroups(ctx context.Context, ms []*labels.Matcher) (groups []postingGroup, empty bool, err error) {
	if len(ms) == 0 {
		return nil, true, nil // As tsdb.PostingsForMatchers: no matcher selects nothing.
	}
	h := b.header
	intersecting := false
	for _, m := range ms {
		var rs []postingsRange
		if !m.Matches("") {
			switch {
			case m.Type == labels.MatchEqual:
				rs, err = h.postingsRangesFor(ctx, m.Name, []string{m.Value})
			case m.Type == labels.MatchRegexp && len(m.SetMatches()) > 0:
				rs, err = h.postingsRangesFor(ctx, m.Name, sortedSet(m.SetMatches()))
			default:
				rs, err = h.postingsRanges(ctx, m.Name, m.Matches)
			}
			if err != nil {
				return nil, false, err
			}
			if len(rs) == 0 {
				return nil, true, nil
			}
			groups = append(groups, postingGroup{ranges: rs})
			intersecting = true
			continue
		}
		switch {
		case m.Type == labels.MatchRegexp && m.Value == ".*":
			continue // Matches every value.
		case m.Type == labels.MatchNotEqual:
			rs, err = h.postingsRangesFor(ctx, m.Name, []string{m.Value})
		case m.Type == labels.MatchNotRegexp && len(m.SetMatches()) > 0:
			rs, err = h.postingsRangesFor(ctx, m.Name, sortedSet(m.SetMatches()))
		default:
			// The index holds no empty values, but for the all-postings
			// key's: an empty value is never subtracted.
			rs, err = h.postingsRanges(ctx, m.Name, func(v string) bool { return v != "" && !m.Matches(v) })
		}
		if err != nil {
			return nil, false, err
		}
		if len(rs) > 0 {
			groups = append(groups, postingGroup{subtract: true, ranges: rs})
		}
	}
	if !intersecting {
		name, value := index.AllPostingsKey()
		rs, err := h.postingsRangesFor(ctx, name, []string{value})
		if err != nil {
			return nil, false, err
		}
		if len(rs) == 0 {
			return nil, true, nil
		}
		groups = append(groups, postingGroup{ranges: rs})
	}
	return groups, false, nil
}

func sortedSet(vs []string) []string {
	vs = slices.Clone(vs)
	slices.Sort(vs)
	return slices.Compact(vs)
}

// expandedPostings returns the sorted references of the series that match
// all matchers.
func (b *Block) expandedPostings(ctx context.Context, ms []*labels.Matcher) ([]storage.SeriesRef, error) {
	groups, empty, err := b.postingGroups(ctx, ms)
	if err != nil || empty {
		return nil, err
	}
	var all []postingsRange
	for _, g := range groups {
		all = append(all, g.ranges...)
	}
	lists, err := b.fetchPostings(ctx, all)
	if err != nil {
		return nil, err
	}
	var adds, subs []index.Postings
	i := 0
	for _, g := range groups {
		its := make([]index.Postings, 0, len(g.ranges))
		for range g.ranges {
			p, err := decodePostings(lists[i])
			if err != nil {
				return nil, fmt.Errorf("decode postings of %s=%q: %w", all[i].name, all[i].value, err)
			}
			its = append(its, p)
			i++
		}
		if g.subtract {
			subs = append(subs, its...)
		} else {
			adds = append(adds, index.Merge(ctx, its...))
		}
	}
	p := index.Intersect(adds...)
	if len(subs) > 0 {
		p = index.Without(p, index.Merge(ctx, subs...))
	}
	refs, err := index.ExpandPostings(p)
	if err != nil {
		return nil, fmt.Errorf("expand postings: %w", err)
	}
	return refs, nil
}

func decodePostings(b []byte) (index.Postings, error) {
	_, p, err := index.DecodePostingsRaw(encoding.Decbuf{B: b})
	return p, err
}

// postingsKey is the cache key of the postings list of a label pair.
func postingsKey(name, value string) string {
	b := make([]byte, 0, binary.MaxVarintLen32+len(name)+len(value))
	b = binary.AppendUvarint(b, uint64(len(name)))
	b = append(b, name...)
	b = append(b, value...)
	return string(b)
}

// fetchPostings returns the content (count and references) of the postings
// list of each range, from the cache or from the bucket. The same range may
// appear more than once.
func (b *Block) fetchPostings(ctx context.Context, rs []postingsRange) ([][]byte, error) {
	out := make([][]byte, len(rs))
	keys := make([]string, len(rs))
	for i, r := range rs {
		keys[i] = postingsKey(r.name, r.value)
	}
	var hits map[string][]byte
	if b.cache != nil {
		hits = b.cache.Fetch(ctx, b.tenant, b.meta.ULID, ItemPostings, slices.Compact(slices.Sorted(slices.Values(keys))))
	}
	// Misses, by position in the index, each once.
	var misses []int
	seen := make(map[int64]bool)
	for i, r := range rs {
		if v, ok := hits[keys[i]]; ok {
			out[i] = v
			continue
		}
		if !seen[r.start] {
			seen[r.start] = true
			misses = append(misses, i)
		}
	}
	if len(misses) > 0 {
		slices.SortFunc(misses, func(a, c int) int { return cmp.Compare(rs[a].start, rs[c].start) })
		fetched := make(map[int64][]byte, len(misses))
		parts := partition(len(misses), func(i int) byteRange {
			r := rs[misses[i]]
			return byteRange{r.start, r.end}
		}, maxGapBytes, maxRangeBytes)
		results := make([][][]byte, len(parts))
		err := concurrency.ForEachJob(ctx, len(parts), maxConcurrentReads, func(ctx context.Context, pi int) error {
			p := parts[pi]
			buf, err := readAll(ctx, b.bkt, b.indexName, p.start, p.end-p.start, b.metrics, kindPostings)
			if err != nil {
				return fmt.Errorf("read postings: %w", err)
			}
			results[pi] = make([][]byte, 0, p.last-p.first)
			for _, i := range misses[p.first:p.last] {
				r := rs[i]
				l, err := parsePostings(buf[r.start-p.start : r.end-p.start])
				if err != nil {
					return fmt.Errorf("postings of %s=%q at %d: %w", r.name, r.value, r.start, err)
				}
				results[pi] = append(results[pi], l)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		items := make(map[string][]byte, len(misses))
		for pi, p := range parts {
			for j, i := range misses[p.first:p.last] {
				fetched[rs[i].start] = results[pi][j]
				items[keys[i]] = results[pi][j]
			}
		}
		for i, r := range rs {
			if out[i] == nil {
				out[i] = fetched[r.start]
			}
		}
		if b.cache != nil {
			b.cache.Store(b.tenant, b.meta.ULID, ItemPostings, items)
		}
	}
	return out, nil
}

// parsePostings checks the postings list at the start of b (4-byte length,
// content, CRC32) and returns its content.
func parsePostings(b []byte) ([]byte, error) {
	if len(b) < 4 {
		return nil, encoding.ErrInvalidSize
	}
	l := int(binary.BigEndian.Uint32(b))
	if 4+l+crc32.Size > len(b) {
		return nil, fmt.Errorf("list of %d bytes overflows its %d bytes range", l, len(b))
	}
	content := b[4 : 4+l]
	if crc32.Checksum(content, castagnoli) != binary.BigEndian.Uint32(b[4+l:]) {
		return nil, encoding.ErrInvalidChecksum
	}
	return content, nil
}
