package querier

import (
	"context"
	"math"
	"slices"
	"strconv"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/stretchr/testify/require"

	"github.com/neocortex-metrics/neocortex/pkg/ingester/ingesterpb"
)

// floatChunk is an XOR chunk of samples at ts, each worth ts/10, with its
// meta; maxT overrides the meta's MaxTime (an open head chunk's is
// math.MaxInt64) when not 0.
func floatChunk(t *testing.T, maxT int64, ts ...int64) chunks.Meta {
	chk := chunkenc.NewXORChunk()
	app, err := chk.Appender()
	require.NoError(t, err)
	for _, x := range ts {
		app.Append(0, x, float64(x)/10)
	}
	return chunkMeta(chk, maxT, ts)
}

// histogramChunk is a histogram chunk of samples at ts, each with a count
// of ts/10.
func histogramChunk(t *testing.T, ts ...int64) chunks.Meta {
	chk := chunkenc.NewHistogramChunk()
	app, err := chk.Appender()
	require.NoError(t, err)
	for _, x := range ts {
		h := &histogram.Histogram{Count: uint64(x / 10), Sum: float64(x), Schema: 0, ZeroThreshold: 0.001}
		_, _, app, err = app.AppendHistogram(nil, 0, x, h, false)
		require.NoError(t, err)
	}
	return chunkMeta(chk, 0, ts)
}

func chunkMeta(chk chunkenc.Chunk, maxT int64, ts []int64) chunks.Meta {
	m := chunks.Meta{MinTime: ts[0], MaxTime: ts[len(ts)-1], Chunk: chk}
	if maxT != 0 {
		m.MaxTime = maxT
	}
	return m
}

// step is one call on an iterator and the timestamps it then reads with
// Next until the end (read) or just the sample it stops at.
type step struct {
	seek int64 // 0: Next
	want []int64
	read bool // then read the rest with Next
}

// TestFetchedSeriesIterator reads series of several chunks through
// fetchedSeries's iterator, by Next and by Seek, with and without a range
// to trim to, reusing one iterator throughout, and requires exactly the
// samples in range, each with its value.
func TestFetchedSeriesIterator(t *testing.T) {
	inOrder := func(t *testing.T) []chunks.Meta {
		return []chunks.Meta{
			floatChunk(t, 0, 10, 20, 30),
			floatChunk(t, 0, 40, 50, 60),
			floatChunk(t, math.MaxInt64, 70, 80, 90, 100), // open head chunk
		}
	}
	const lo, hi = math.MinInt64, math.MaxInt64
	for _, tc := range []struct {
		name       string
		metas      func(t *testing.T) []chunks.Meta
		mint, maxt int64
		steps      []step
	}{
		{"all", inOrder, lo, hi, []step{{0, []int64{10, 20, 30, 40, 50, 60, 70, 80, 90, 100}, true}}},
		{"trimmed inside chunks", inOrder, 25, 65, []step{{0, []int64{30, 40, 50, 60}, true}}},
		{"trimmed at chunk edges", inOrder, 40, 60, []step{{0, []int64{40, 50, 60}, true}}},
		{"trimmed to the open chunk", inOrder, 85, 1000, []step{{0, []int64{90, 100}, true}}},
		{"before every sample", inOrder, 0, 5, []step{{0, nil, true}}},
		{"after every sample", inOrder, 101, 200, []step{{0, nil, true}}},
		{"seek into a later chunk", inOrder, lo, hi, []step{{75, []int64{80, 90, 100}, true}}},
		{"seek to a chunk's first sample", inOrder, lo, hi, []step{{40, []int64{40, 50, 60, 70, 80, 90, 100}, true}}},
		{"seek before mint", inOrder, 30, 60, []step{{5, []int64{30, 40, 50, 60}, true}}},
		{"seek past maxt", inOrder, 30, 60, []step{{61, nil, true}}},
		{"seek past the end", inOrder, lo, hi, []step{{101, nil, true}}},
		{"seeks back have no effect", inOrder, lo, hi, []step{
			{0, []int64{10}, false}, {5, []int64{10}, false}, {55, []int64{60}, false},
			{60, []int64{60}, false}, {20, []int64{60}, false}, {0, []int64{70, 80, 90, 100}, true},
		}},
		{"seek then next across chunks", inOrder, 20, 80, []step{{25, []int64{30}, false}, {0, []int64{40, 50, 60, 70, 80}, true}}},
		{"overlapping chunks are merged", func(t *testing.T) []chunks.Meta {
			return []chunks.Meta{floatChunk(t, 0, 10, 30, 50), floatChunk(t, 0, 20, 30, 40)}
		}, lo, hi, []step{{0, []int64{10, 20, 30, 40, 50}, true}}},
		{"overlapping chunks are merged and trimmed", func(t *testing.T) []chunks.Meta {
			return []chunks.Meta{floatChunk(t, 0, 10, 30, 50), floatChunk(t, 0, 20, 30, 40)}
		}, 15, 45, []step{{0, []int64{20, 30, 40}, true}}},
		{"overlapping chunks, seek", func(t *testing.T) []chunks.Meta {
			return []chunks.Meta{floatChunk(t, 0, 10, 30, 50), floatChunk(t, 0, 20, 30, 40)}
		}, 15, 45, []step{{35, []int64{40}, true}}},
		{"histograms then floats", func(t *testing.T) []chunks.Meta {
			return []chunks.Meta{histogramChunk(t, 10, 20), floatChunk(t, 0, 30, 40), histogramChunk(t, 50, 60)}
		}, 15, 55, []step{{0, []int64{20, 30, 40, 50}, true}}},
		{"no chunks", func(*testing.T) []chunks.Meta { return nil }, lo, hi, []step{{0, nil, true}, {10, nil, true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var it chunkenc.Iterator
			for range 2 { // the second time through a reused iterator
				s := newFetchedSeries(labels.FromStrings("__name__", "m"), tc.metas(t))
				s.mint, s.maxt = tc.mint, tc.maxt
				it = s.Iterator(it)
				for _, st := range tc.steps {
					var vt chunkenc.ValueType
					if st.seek != 0 {
						vt = it.Seek(st.seek)
					} else {
						vt = it.Next()
					}
					var got []int64
					for ; vt != chunkenc.ValNone; vt = it.Next() {
						got = append(got, sampleAt(t, it, vt))
						if !st.read {
							break
						}
					}
					require.Equal(t, st.want, got, "step %+v", st)
				}
				require.NoError(t, it.Err())
				require.Equal(t, chunkenc.ValNone, it.Next(), "done stays done")
				require.Equal(t, chunkenc.ValNone, it.Seek(0), "done stays done")
			}
		})
	}
}

// sampleAt checks the value at it's sample against its timestamp, and
// returns the timestamp.
func sampleAt(t *testing.T, it chunkenc.Iterator, vt chunkenc.ValueType) int64 {
	switch vt {
	case chunkenc.ValFloat:
		ts, v := it.At()
		require.Equal(t, float64(ts)/10, v)
		require.Equal(t, ts, it.AtT())
		return ts
	case chunkenc.ValHistogram:
		ts, h := it.AtHistogram(nil)
		require.Equal(t, uint64(ts/10), h.Count)
		_, fh := it.AtFloatHistogram(nil)
		require.Equal(t, float64(ts), fh.Sum)
		return ts
	default:
		t.Fatalf("unexpected value type %v", vt)
		return 0
	}
}

// TestFetchedSeriesIteratorError: a chunk that fails to decode ends the
// iteration with its error.
func TestFetchedSeriesIteratorError(t *testing.T) {
	good := floatChunk(t, 0, 10, 20)
	bad, err := chunkenc.FromData(chunkenc.EncXOR, []byte{0, 3, 0xff}) // 3 samples, truncated
	require.NoError(t, err)
	s := newFetchedSeries(labels.FromStrings("__name__", "m"), []chunks.Meta{good, {MinTime: 30, MaxTime: 50, Chunk: bad}})
	it := s.Iterator(nil)
	var got []int64
	for it.Next() != chunkenc.ValNone {
		got = append(got, it.AtT())
	}
	require.Equal(t, []int64{10, 20}, got[:2])
	require.Error(t, it.Err())
}

// TestSeriesList: a list of several pages keeps its series in order
// through a filter that empties pages and thins others, and its set yields
// them as storage.Series without copying them.
func TestSeriesList(t *testing.T) {
	const n = 3*seriesPageSize + 10
	for _, tc := range []struct {
		name string
		keep func(i int) bool
	}{
		{"all", func(int) bool { return true }},
		{"none", func(int) bool { return false }},
		{"odd", func(i int) bool { return i%2 == 1 }},
		{"second page and last series only", func(i int) bool { return i/seriesPageSize == 1 || i == n-1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var l seriesList
			for i := range n {
				s := newFetchedSeries(labels.FromStrings("__name__", "m", "i", strconv.Itoa(i)), nil)
				s.bytes = i
				l.add(s)
			}
			require.Equal(t, n, l.len())
			l.filter(func(s *fetchedSeries) bool { return tc.keep(s.bytes) })
			var want []int
			for i := range n {
				if tc.keep(i) {
					want = append(want, i)
				}
			}
			require.Equal(t, len(want), l.len())
			var got []int
			set := newFetchedSeriesSet(l)
			for set.Next() {
				s := set.At().(*fetchedSeries)
				require.Same(t, &set.pages[set.page][set.idx], s)
				require.Equal(t, strconv.Itoa(s.bytes), s.Labels().Get("i"))
				got = append(got, s.bytes)
			}
			require.False(t, set.Next(), "done stays done")
			require.NoError(t, set.Err())
			require.Equal(t, want, got)
			var _ storage.SeriesSet = set

			// Released, every page taken is cleared (a page in a pool
			// must not keep a query's series alive) and the list is empty.
			taken := slices.Clone(l.slabs.pages)
			require.Len(t, taken, 4)
			l.release()
			require.Zero(t, l.len())
			for _, p := range taken {
				for _, s := range p[:cap(p)] {
					require.Zero(t, s)
				}
			}
		})
	}
}

// TestQueryLocalSlabs: the in-process ingester's chunks are copied into
// slabs, one for many series, and a chunk larger than a slab gets one of
// its own; released, the slabs are cleared.
func TestQueryLocalSlabs(t *testing.T) {
	big := make([]byte, slabBytes+100)
	big[0], big[1] = 0, 1 // an XOR chunk of one sample, with padding
	small := chunkenc.NewXORChunk()
	app, err := small.Appender()
	require.NoError(t, err)
	app.Append(0, 1000, 1.5)
	local := fakeLocal(func(fn func(labels.Labels, []chunks.Meta) error) error {
		for i := range 3000 {
			if err := fn(labels.FromStrings("i", strconv.Itoa(i)), []chunks.Meta{{MinTime: 1000, MaxTime: 1000, Chunk: small}}); err != nil {
				return err
			}
		}
		return fn(labels.FromStrings("i", "big"), []chunks.Meta{{MinTime: 0, MaxTime: 0, Chunk: chunkenc.NewXORChunk()}, {Chunk: mustXOR(t, big)}})
	})
	l, err := queryLocal(context.Background(), local, "team", &ingesterpb.QueryRequest{StartMs: 0, EndMs: 2000})
	require.NoError(t, err)
	require.Equal(t, 3001, l.len())
	set := newFetchedSeriesSet(l)
	n := 0
	for set.Next() {
		s := set.At()
		if s.Labels().Get("i") == "big" {
			continue
		}
		it := s.Iterator(nil)
		require.Equal(t, chunkenc.ValFloat, it.Next())
		ts, v := it.At()
		require.Equal(t, int64(1000), ts)
		require.Equal(t, 1.5, v)
		n++
	}
	require.Equal(t, 3000, n)
	// 3000 copies of a small chunk share slabs; the big one has its own.
	require.Len(t, l.slabs.bytes, 2)
	require.Equal(t, slabBytes, cap(l.slabs.bytes[0]))
	require.Equal(t, len(big), cap(l.slabs.bytes[1]))
	metas, xors := slices.Clone(l.slabs.metas), slices.Clone(l.slabs.xors)
	l.release()
	for _, m := range metas {
		for _, x := range m[:cap(m)] {
			require.Nil(t, x.Chunk)
		}
	}
	for _, x := range xors {
		for i := range x[:cap(x)] {
			require.Empty(t, x[:cap(x)][i].Bytes())
		}
	}
}

type fakeLocal func(fn func(labels.Labels, []chunks.Meta) error) error

func (f fakeLocal) Addr() string { return "local" }
func (f fakeLocal) QueryChunks(_ context.Context, _ string, _ *ingesterpb.QueryRequest, fn func(labels.Labels, []chunks.Meta) error) error {
	return f(fn)
}

func mustXOR(t *testing.T, b []byte) chunkenc.Chunk {
	c, err := chunkenc.FromData(chunkenc.EncXOR, b)
	require.NoError(t, err)
	return c
}

// len is how many series l holds.
func (l *seriesList) len() int {
	n := 0
	for _, p := range l.pages {
		n += len(p)
	}
	return n
}
