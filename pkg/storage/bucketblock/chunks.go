package bucketblock

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"path"
	"slices"

	"github.com/grafana/dskit/concurrency"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/encoding"
)

// chunkReader reads the chunks of a query from the block's segment files.
type chunkReader struct {
	b     *Block
	order []int // Reused between batches.
}

// segmentName returns the object of segment seq of a chunk reference: the
// files are numbered from 1 (chunks/000001), the references from 0.
func (r *chunkReader) segmentName(seq int) string {
	return path.Join(r.b.prefix, chunksDirname, fmt.Sprintf("%06d", seq+1))
}

// chunkPart is one range read of a segment.
type chunkPart struct {
	part
	seq int
}

// load reads the chunk of each of metas from the bucket and sets its Chunk.
// sizes[i] is the size of chunk i when known, else 0.
func (r *chunkReader) load(ctx context.Context, metas []chunks.Meta, sizes []int64) error {
	if len(metas) == 0 {
		return nil
	}
	b := r.b
	r.order = r.order[:0]
	for i := range metas {
		r.order = append(r.order, i)
	}
	// By segment, then offset: the references sort that way.
	slices.SortFunc(r.order, func(i, j int) int { return cmp.Compare(metas[i].Ref, metas[j].Ref) })
	loc := func(k int) (seq int, off int64) {
		s, o := chunks.BlockChunkRef(metas[r.order[k]].Ref).Unpack()
		return s, int64(o)
	}
	var parts []chunkPart
	for first := 0; first < len(r.order); {
		seq, _ := loc(first)
		last := first + 1
		for last < len(r.order) {
			if s, _ := loc(last); s != seq {
				break
			}
			last++
		}
		ps := partition(last-first, func(k int) byteRange {
			_, start := loc(first + k)
			if size := sizes[r.order[first+k]]; size > 0 {
				return byteRange{start, start + size}
			}
			end := start + b.chunkSizeEstimate
			if first+k+1 < last {
				// Chunks do not overlap: this one ends before the next.
				if _, next := loc(first + k + 1); next > start {
					end = min(end, next)
				}
			}
			return byteRange{start, end}
		}, maxGapBytes, maxRangeBytes)
		for _, p := range ps {
			p.first += first
			p.last += first
			parts = append(parts, chunkPart{part: p, seq: seq})
		}
		first = last
	}

	overflows := make([][]overflow, len(parts))
	err := concurrency.ForEachJob(ctx, len(parts), maxConcurrentReads, func(ctx context.Context, pi int) error {
		p := parts[pi]
		name := r.segmentName(p.seq)
		// The estimate for the last chunk may run past the end of the file.
		buf, err := readRange(ctx, b.bkt, name, p.start, p.end-p.start, true, b.metrics, kindChunks)
		if err != nil {
			return fmt.Errorf("read chunks: %w", err)
		}
		for k := p.first; k < p.last; k++ {
			m := &metas[r.order[k]]
			_, off := loc(k)
			if off-p.start >= int64(len(buf)) {
				return fmt.Errorf("chunk %d: past the end of %s", m.Ref, name)
			}
			need, err := parseChunk(buf[off-p.start:], m)
			if err != nil {
				return fmt.Errorf("chunk %d in %s: %w", m.Ref, name, err)
			}
			if need > 0 {
				overflows[pi] = append(overflows[pi], overflow{r.order[k], need})
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	todo := slices.Concat(overflows...)
	for attempt := 0; len(todo) > 0; attempt++ {
		if attempt == maxRefetches {
			return fmt.Errorf("chunk %d: still incomplete after %d reads", metas[todo[0].i].Ref, attempt+1)
		}
		b.metrics.refetches.WithLabelValues(kindChunks).Add(float64(len(todo)))
		next := make([]overflow, len(todo))
		err := concurrency.ForEachJob(ctx, len(todo), maxConcurrentReads, func(ctx context.Context, j int) error {
			m := &metas[todo[j].i]
			seq, off := chunks.BlockChunkRef(m.Ref).Unpack()
			name := r.segmentName(seq)
			buf, err := readRange(ctx, b.bkt, name, int64(off), todo[j].need, true, b.metrics, kindChunks)
			if err != nil {
				return fmt.Errorf("read chunks: %w", err)
			}
			need, err := parseChunk(buf, m)
			if err == nil && need > 0 && int64(len(buf)) < todo[j].need {
				err = fmt.Errorf("chunk of %d bytes past the end of the file", need)
			}
			if err != nil {
				return fmt.Errorf("chunk %d in %s: %w", m.Ref, name, err)
			}
			next[j] = overflow{todo[j].i, need}
			return nil
		})
		if err != nil {
			return err
		}
		todo = slices.DeleteFunc(next, func(o overflow) bool { return o.need == 0 })
	}
	return nil
}

// parseChunk decodes the chunk at the start of b (uvarint data length,
// encoding byte, data, CRC32 of encoding and data) into m.Chunk, or returns
// how many bytes it needs when b holds only part of it. The chunk refers to
// b's memory.
func parseChunk(b []byte, m *chunks.Meta) (need int64, err error) {
	l, n := binary.Uvarint(b)
	switch {
	case n == 0:
		return int64(len(b)) + binary.MaxVarintLen32 + defaultChunkSizeEstimate, nil
	case n < 0 || n > binary.MaxVarintLen32:
		return 0, errors.New("invalid chunk length")
	}
	total := int64(n) + chunks.ChunkEncodingSize + int64(l) + crc32.Size
	if total > int64(len(b)) {
		return total, nil
	}
	encAndData := b[n : n+chunks.ChunkEncodingSize+int(l)]
	if crc32.Checksum(encAndData, castagnoli) != binary.BigEndian.Uint32(b[n+len(encAndData):]) {
		return 0, encoding.ErrInvalidChecksum
	}
	c, err := chunkenc.FromData(chunkenc.Encoding(encAndData[0]), encAndData[chunks.ChunkEncodingSize:])
	if err != nil {
		return 0, err
	}
	m.Chunk = c
	return 0, nil
}
