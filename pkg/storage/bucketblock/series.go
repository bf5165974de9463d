package bucketblock

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"strconv"

	"github.com/grafana/dskit/concurrency"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/encoding"
	"github.com/prometheus/prometheus/tsdb/index"
)

// seriesAlign: in index format v2 a series reference is the offset of its
// entry divided by 16.
const seriesAlign = 16

// Series calls f for every series that matches all matchers and has a chunk
// overlapping [mint, maxt], in label order, with those of its chunks that
// overlap [mint, maxt] (MinTime, MaxTime, Ref and Chunk set; chunks are not
// trimmed to the range). With skipChunks, no chunk is read and f gets nil.
//
// f owns the label set. The chunks slice and the chunks' bytes are valid
// only until f returns: f must copy what it keeps. An error from f stops
// Series and is returned. f must not close the block, which waits for
// Series to return. Any read error (a file gone from the bucket
// included) fails the whole call: Series never reports fewer series
// instead.
func (b *Block) Series(ctx context.Context, mint, maxt int64, skipChunks bool, matchers []*labels.Matcher, f func(labels.Labels, []chunks.Meta) error) error {
	if err := b.acquire(); err != nil {
		return err
	}
	defer b.mtx.RUnlock()
	if err := b.series(ctx, mint, maxt, skipChunks, matchers, f); err != nil {
		return fmt.Errorf("select series of block %s: %w", b.meta.ULID, err)
	}
	return nil
}

func (b *Block) series(ctx context.Context, mint, maxt int64, skipChunks bool, matchers []*labels.Matcher, f func(labels.Labels, []chunks.Meta) error) error {
	if mint > b.meta.MaxTime || maxt < b.meta.MinTime {
		return nil
	}
	refs, err := b.expandedPostings(ctx, matchers)
	if err != nil {
		return err
	}
	var (
		dec     = index.Decoder{LookupSymbol: newSymbolCache(b.header).lookup}
		builder = labels.NewScratchBuilder(0)
		chks    []chunks.Meta
		batch   seriesBatch
		cr      = chunkReader{b: b}
	)
	for len(refs) > 0 {
		n := min(len(refs), seriesBatchSize)
		entries, err := b.fetchSeries(ctx, refs[:n])
		if err != nil {
			return err
		}
		batch.reset()
		for i, e := range entries {
			if err := dec.Series(e, &builder, &chks); err != nil {
				return fmt.Errorf("decode series %d: %w", refs[i], err)
			}
			if batch.addChunks(chks, mint, maxt) {
				batch.lsets = append(batch.lsets, builder.Labels())
			}
		}
		refs = refs[n:]
		if !skipChunks {
			if err := cr.load(ctx, batch.chks, batch.sizes); err != nil {
				return err
			}
		}
		for i, lset := range batch.lsets {
			c := batch.chks[batch.offs[i]:batch.offs[i+1]]
			if skipChunks {
				c = nil
			}
			if err := f(lset, c); err != nil {
				return err
			}
			b.metrics.chunksReturned.Add(float64(len(c)))
		}
		b.metrics.seriesReturned.Add(float64(len(batch.lsets)))
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// seriesBatch holds the series of a batch that have chunks in the queried
// range, and those chunks in one slice.
type seriesBatch struct {
	lsets []labels.Labels
	offs  []int // Series i has chks[offs[i]:offs[i+1]].
	chks  []chunks.Meta
	// sizes holds the size of each chunk when the series' next chunk,
	// written right after it, tells it; 0 otherwise.
	sizes []int64
}

func (s *seriesBatch) reset() {
	clear(s.lsets)
	s.lsets = s.lsets[:0]
	s.offs = append(s.offs[:0], 0)
	clear(s.chks)
	s.chks = s.chks[:0]
	s.sizes = s.sizes[:0]
}

// addChunks adds the chunks of a series that overlap [mint, maxt] and
// reports whether there was any; the caller then adds the series' labels.
func (s *seriesBatch) addChunks(chks []chunks.Meta, mint, maxt int64) bool {
	n := len(s.chks)
	for k, c := range chks {
		if c.MaxTime < mint || c.MinTime > maxt {
			continue
		}
		s.chks = append(s.chks, c)
		var size int64
		if k+1 < len(chks) {
			seg, off := chunks.BlockChunkRef(c.Ref).Unpack()
			nseg, noff := chunks.BlockChunkRef(chks[k+1].Ref).Unpack()
			if nseg == seg && noff > off {
				size = int64(noff - off)
			}
		}
		s.sizes = append(s.sizes, size)
	}
	if len(s.chks) == n {
		return false
	}
	s.offs = append(s.offs, len(s.chks))
	return true
}

// seriesKey is the cache key of a series entry.
func seriesKey(ref storage.SeriesRef) string { return strconv.FormatUint(uint64(ref), 10) }

// fetchSeries returns the content of the series entry of each of refs
// (sorted), from the cache or from the bucket.
func (b *Block) fetchSeries(ctx context.Context, refs []storage.SeriesRef) ([][]byte, error) {
	out := make([][]byte, len(refs))
	var keys []string
	if b.cache != nil {
		keys = make([]string, len(refs))
		for i, r := range refs {
			keys[i] = seriesKey(r)
		}
		hits := b.cache.Fetch(ctx, b.tenant, b.meta.ULID, ItemSeries, keys)
		for i := range refs {
			out[i] = hits[keys[i]]
		}
	}
	var misses []int
	for i := range refs {
		if out[i] == nil {
			misses = append(misses, i)
		}
	}
	if len(misses) == 0 {
		return out, nil
	}
	end := b.header.seriesEnd
	parts := partition(len(misses), func(i int) byteRange {
		start := int64(refs[misses[i]]) * seriesAlign
		return byteRange{start, min(start+b.seriesSizeEstimate, end)}
	}, maxGapBytes, maxRangeBytes)
	// Entries larger than what was read for them are read again alone.
	overflows := make([][]overflow, len(parts))
	err := concurrency.ForEachJob(ctx, len(parts), maxConcurrentReads, func(ctx context.Context, pi int) error {
		p := parts[pi]
		buf, err := readAll(ctx, b.bkt, b.indexName, p.start, p.end-p.start, b.metrics, kindSeries)
		if err != nil {
			return fmt.Errorf("read series: %w", err)
		}
		for _, i := range misses[p.first:p.last] {
			content, need, err := parseSeriesEntry(buf[int64(refs[i])*seriesAlign-p.start:])
			if err != nil {
				return fmt.Errorf("series %d: %w", refs[i], err)
			}
			if need > 0 {
				overflows[pi] = append(overflows[pi], overflow{i, need})
				continue
			}
			out[i] = content
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	todo := slices.Concat(overflows...)
	for attempt := 0; len(todo) > 0; attempt++ {
		if attempt == maxRefetches {
			return nil, fmt.Errorf("series %d: entry still incomplete after %d reads", refs[todo[0].i], attempt+1)
		}
		b.metrics.refetches.WithLabelValues(kindSeries).Add(float64(len(todo)))
		next := make([]overflow, len(todo))
		err := concurrency.ForEachJob(ctx, len(todo), maxConcurrentReads, func(ctx context.Context, j int) error {
			i := todo[j].i
			start := int64(refs[i]) * seriesAlign
			length := min(todo[j].need, end-start)
			buf, err := readAll(ctx, b.bkt, b.indexName, start, length, b.metrics, kindSeries)
			if err != nil {
				return fmt.Errorf("read series: %w", err)
			}
			content, need, err := parseSeriesEntry(buf)
			if err == nil && need > 0 && length == end-start {
				err = errors.New("entry overflows the series section")
			}
			if err != nil {
				return fmt.Errorf("series %d: %w", refs[i], err)
			}
			next[j] = overflow{i, need}
			out[i] = content
			return nil
		})
		if err != nil {
			return nil, err
		}
		todo = slices.DeleteFunc(next, func(o overflow) bool { return o.need == 0 })
	}
	if b.cache != nil {
		items := make(map[string][]byte, len(misses))
		for _, i := range misses {
			items[keys[i]] = out[i]
		}
		b.cache.Store(b.tenant, b.meta.ULID, ItemSeries, items)
	}
	return out, nil
}

// overflow is an item read only in part, and the bytes it needs.
type overflow struct {
	i    int
	need int64
}

// maxRefetches bounds the reads of one item after the first: the first
// refetch knows the item's size but when not even its length was read.
const maxRefetches = 2

// parseSeriesEntry checks the series entry at the start of b (uvarint
// length, content, CRC32) and returns its content, or how many bytes it
// needs when b holds only part of it.
func parseSeriesEntry(b []byte) (content []byte, need int64, err error) {
	l, n := binary.Uvarint(b)
	switch {
	case n == 0:
		// Too short even for the length: read the most a length takes
		// and the estimate again.
		return nil, int64(len(b)) + binary.MaxVarintLen32 + defaultChunkSizeEstimate, nil
	case n < 0 || n > binary.MaxVarintLen32:
		return nil, 0, errors.New("invalid entry length")
	}
	total := int64(n) + int64(l) + crc32.Size
	if total > int64(len(b)) {
		return nil, total, nil
	}
	content = b[n : n+int(l)]
	if crc32.Checksum(content, castagnoli) != binary.BigEndian.Uint32(b[n+int(l):]) {
		return nil, 0, encoding.ErrInvalidChecksum
	}
	return content, 0, nil
}
