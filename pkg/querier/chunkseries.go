package querier

import (
	"math"
	"sync"
	"unsafe"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
)

// fetchedSeries is a series read from an ingester: its labels and chunks,
// with what they cost. It is a storage.Series whose samples are those of
// its chunks in [mint, maxt].
type fetchedSeries struct {
	lset  labels.Labels
	metas []chunks.Meta
	bytes int
	// untrimmed: the chunks may hold samples outside the requested range
	// (the in-process ingester's, see LocalIngester.QueryChunks); the
	// iterator drops them as it reads, a comparison per sample.
	untrimmed  bool
	mint, maxt int64
}

// newFetchedSeries is the series ls with chunks metas (which it keeps).
func newFetchedSeries(ls labels.Labels, metas []chunks.Meta) fetchedSeries {
	size := 0
	for _, m := range metas {
		size += len(m.Chunk.Bytes())
	}
	return fetchedSeries{lset: ls, metas: metas, bytes: size, mint: math.MinInt64, maxt: math.MaxInt64}
}

// Labels implements storage.Series.
func (s *fetchedSeries) Labels() labels.Labels { return s.lset }

// Iterator implements storage.Series. Chunks that follow each other in
// time, as an ingester sends them, are read one after the other through
// it (reused when it is one of ours); overlapping chunks, which an
// ingester does not send, are merged.
func (s *fetchedSeries) Iterator(it chunkenc.Iterator) chunkenc.Iterator {
	for i := 1; i < len(s.metas); i++ {
		if s.metas[i].MinTime <= s.metas[i-1].MaxTime {
			return s.mergedIterator()
		}
	}
	c, ok := it.(*chunksIterator)
	if !ok {
		c = &chunksIterator{}
	}
	c.reset(s.metas, s.mint, s.maxt)
	return c
}

func (s *fetchedSeries) mergedIterator() chunkenc.Iterator {
	its := make([]chunkenc.Iterator, len(s.metas))
	for i, m := range s.metas {
		its[i] = m.Chunk.Iterator(nil)
	}
	c := &chunksIterator{}
	c.resetIterator(storage.ChainSampleIteratorFromIterators(nil, its), s.mint, s.maxt)
	return c
}

// seriesPageSize is how many series a page of a seriesList holds: 64 KiB
// or so of fetchedSeries.
const seriesPageSize = 1024

// seriesList is one ingester's answer: its series in order, in pages, so
// that it grows without copying (a head's hundreds of thousands of series
// appended to one slice would be copied over and over as it grows).
//
// Its pages, and the slabs queryLocal copies chunks into, come from pools
// and go back to them on release, when the query's querier closes: a
// query's hundreds of megabytes are not left to the garbage collector.
type seriesList struct {
	pages [][]fetchedSeries
	slabs slabs
	// inShard: every series is of the request's shard, as the in-process
	// ingester answers, so the querier need not hash each again. Answers
	// over gRPC are checked: an ingester of another version may not shard.
	inShard bool
}

// slabs are the memory a seriesList was given, whole, to be put back.
type slabs struct {
	pages [][]fetchedSeries
	bytes [][]byte
	metas [][]chunks.Meta
	xors  [][]chunkenc.XORChunk
}

// slabBytes is the size of a slab of chunk bytes, metas or XOR chunks.
const slabBytes = 64 << 10

var (
	pagePool     = sync.Pool{New: func() any { return make([]fetchedSeries, 0, seriesPageSize) }}
	bytesPool    = sync.Pool{New: func() any { return make([]byte, 0, slabBytes) }}
	metasPool    = sync.Pool{New: func() any { return make([]chunks.Meta, 0, slabBytes/int(unsafe.Sizeof(chunks.Meta{}))) }}
	xorChunkPool = sync.Pool{New: func() any { return make([]chunkenc.XORChunk, 0, slabBytes/int(unsafe.Sizeof(chunkenc.XORChunk{}))) }}
)

// take returns an empty slab of pool's, or a new one of n if n is more.
func take[T any](pool *sync.Pool, kept *[][]T, n int) []T {
	s := pool.Get().([]T)
	if cap(s) < n {
		pool.Put(s)
		s = make([]T, 0, n)
	}
	*kept = append(*kept, s)
	return s
}

// giveBack clears the slabs (they hold pointers) and puts them back; the
// ones larger than a standard slab are left to the garbage collector.
func giveBack[T any](pool *sync.Pool, kept [][]T, standard int) {
	for _, s := range kept {
		if cap(s) != standard {
			continue
		}
		clear(s[:cap(s)])
		pool.Put(s[:0])
	}
}

func (l *seriesList) add(s fetchedSeries) {
	if n := len(l.pages); n == 0 || len(l.pages[n-1]) == cap(l.pages[n-1]) {
		l.pages = append(l.pages, take(&pagePool, &l.slabs.pages, 0))
	}
	p := &l.pages[len(l.pages)-1]
	*p = append(*p, s)
}

// release puts the list's memory back into the pools. Neither the list,
// its series, nor anything read from their chunks may be used after.
func (l *seriesList) release() {
	giveBack(&pagePool, l.slabs.pages, seriesPageSize)
	giveBack(&bytesPool, l.slabs.bytes, slabBytes)
	giveBack(&metasPool, l.slabs.metas, slabBytes/int(unsafe.Sizeof(chunks.Meta{})))
	giveBack(&xorChunkPool, l.slabs.xors, slabBytes/int(unsafe.Sizeof(chunkenc.XORChunk{})))
	*l = seriesList{}
}

// filter keeps the series keep says yes to, in order.
func (l *seriesList) filter(keep func(*fetchedSeries) bool) {
	pages := l.pages[:0]
	for _, p := range l.pages {
		kept := p[:0]
		for i := range p {
			if keep(&p[i]) {
				kept = append(kept, p[i])
			}
		}
		if len(kept) > 0 {
			pages = append(pages, kept)
		}
	}
	clear(l.pages[len(pages):])
	l.pages = pages
}

// fetchedSeriesSet is a seriesList as a storage.SeriesSet, without an
// allocation per series.
type fetchedSeriesSet struct {
	pages [][]fetchedSeries
	page  int
	idx   int
}

func newFetchedSeriesSet(l seriesList) *fetchedSeriesSet {
	return &fetchedSeriesSet{pages: l.pages, idx: -1}
}

func (s *fetchedSeriesSet) Next() bool {
	for s.page < len(s.pages) {
		if s.idx++; s.idx < len(s.pages[s.page]) {
			return true
		}
		s.page, s.idx = s.page+1, -1
	}
	return false
}

func (s *fetchedSeriesSet) At() storage.Series                { return &s.pages[s.page][s.idx] }
func (s *fetchedSeriesSet) Err() error                        { return nil }
func (s *fetchedSeriesSet) Warnings() annotations.Annotations { return nil }

// chunksIterator reads the samples in [mint, maxt] of chunks in time order,
// one chunk after the other, reusing a decoder per encoding. It reads a
// single merged iterator instead when given one (resetIterator).
type chunksIterator struct {
	metas      []chunks.Meta
	i          int // the chunk cur reads
	cur        chunkenc.Iterator
	decoders   [8]chunkenc.Iterator // by chunkenc.Encoding
	mint, maxt int64
	vt         chunkenc.ValueType // at the current sample; ValNone before the first
	merged     bool               // cur is the one iterator, metas unused
	done       bool
	err        error
}

func (c *chunksIterator) reset(metas []chunks.Meta, mint, maxt int64) {
	c.metas, c.i, c.cur, c.merged = metas, -1, nil, false
	c.mint, c.maxt, c.vt, c.done, c.err = mint, maxt, chunkenc.ValNone, false, nil
}

// resetIterator makes c read the samples of it in [mint, maxt].
func (c *chunksIterator) resetIterator(it chunkenc.Iterator, mint, maxt int64) {
	c.reset(nil, mint, maxt)
	c.i, c.cur, c.merged = 0, it, true
}

// open makes chunk i the current one; false past the last.
func (c *chunksIterator) open(i int) bool {
	if i >= len(c.metas) {
		return false
	}
	chk := c.metas[i].Chunk
	c.i = i
	if e := chk.Encoding(); int(e) < len(c.decoders) {
		c.cur = chk.Iterator(c.decoders[e])
		c.decoders[e] = c.cur
	} else {
		c.cur = chk.Iterator(nil)
	}
	return true
}

func (c *chunksIterator) Next() chunkenc.ValueType {
	if c.done {
		return chunkenc.ValNone
	}
	if c.vt == chunkenc.ValNone {
		return c.Seek(c.mint)
	}
	vt := c.cur.Next()
	for vt == chunkenc.ValNone {
		if !c.nextChunk() {
			return c.stop()
		}
		vt = c.cur.Next()
	}
	return c.within(vt)
}

func (c *chunksIterator) Seek(t int64) chunkenc.ValueType {
	if c.done {
		return chunkenc.ValNone
	}
	t = max(t, c.mint)
	if c.vt != chunkenc.ValNone && c.cur.AtT() >= t {
		return c.vt
	}
	if !c.merged {
		// Skip the chunks that end before t: those followed by one that
		// starts at or before it. (Only start times are trusted: an open
		// head chunk copied after its meta was read may hold more.)
		i := max(c.i, 0)
		for i+1 < len(c.metas) && c.metas[i+1].MinTime <= t {
			i++
		}
		if (i != c.i || c.cur == nil) && !c.open(i) {
			return c.stop()
		}
	}
	vt := c.cur.Seek(t)
	for vt == chunkenc.ValNone {
		if !c.nextChunk() {
			return c.stop()
		}
		vt = c.cur.Seek(t)
	}
	return c.within(vt)
}

// nextChunk moves to the next chunk; false at the end or on an error.
func (c *chunksIterator) nextChunk() bool {
	if err := c.cur.Err(); err != nil {
		c.err = err
		return false
	}
	return !c.merged && c.open(c.i+1)
}

// within ends the iteration at the first sample after maxt.
func (c *chunksIterator) within(vt chunkenc.ValueType) chunkenc.ValueType {
	if c.cur.AtT() > c.maxt {
		return c.stop()
	}
	c.vt = vt
	return vt
}

func (c *chunksIterator) stop() chunkenc.ValueType {
	c.done, c.vt = true, chunkenc.ValNone
	return chunkenc.ValNone
}

func (c *chunksIterator) At() (int64, float64) { return c.cur.At() }

func (c *chunksIterator) AtHistogram(h *histogram.Histogram) (int64, *histogram.Histogram) {
	return c.cur.AtHistogram(h)
}

func (c *chunksIterator) AtFloatHistogram(fh *histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	return c.cur.AtFloatHistogram(fh)
}

func (c *chunksIterator) AtT() int64  { return c.cur.AtT() }
func (c *chunksIterator) AtST() int64 { return c.cur.AtST() }
func (c *chunksIterator) Err() error  { return c.err }

var (
	_ chunkenc.Iterator = (*chunksIterator)(nil)
	_ storage.Series    = (*fetchedSeries)(nil)
)
