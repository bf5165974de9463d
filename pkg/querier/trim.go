package querier

import (
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// trimmedSeriesSet yields the series of a set with only their samples in
// [mint, maxt]. The in-process ingester sends whole chunks rather than
// re-encode every open head chunk to its range on every query; this drops
// the rest as the samples are read, which costs a comparison per sample.
type trimmedSeriesSet struct {
	storage.SeriesSet
	mint, maxt int64
}

func (s trimmedSeriesSet) At() storage.Series {
	return trimmedSeries{Series: s.SeriesSet.At(), mint: s.mint, maxt: s.maxt}
}

type trimmedSeries struct {
	storage.Series
	mint, maxt int64
}

func (s trimmedSeries) Iterator(it chunkenc.Iterator) chunkenc.Iterator {
	t, ok := it.(*trimmedIterator)
	if !ok {
		t = &trimmedIterator{}
	}
	t.Iterator = s.Series.Iterator(t.Iterator)
	t.mint, t.maxt, t.started, t.done = s.mint, s.maxt, false, false
	return t
}

// trimmedIterator is a sample iterator that skips the samples before mint
// and ends at the first one after maxt.
type trimmedIterator struct {
	chunkenc.Iterator
	mint, maxt    int64
	started, done bool
}

func (t *trimmedIterator) Next() chunkenc.ValueType {
	if t.done {
		return chunkenc.ValNone
	}
	if !t.started {
		t.started = true
		return t.within(t.Iterator.Seek(t.mint))
	}
	return t.within(t.Iterator.Next())
}

func (t *trimmedIterator) Seek(ts int64) chunkenc.ValueType {
	if t.done {
		return chunkenc.ValNone
	}
	t.started = true
	return t.within(t.Iterator.Seek(max(ts, t.mint)))
}

// within ends the iteration at the first sample after maxt.
func (t *trimmedIterator) within(vt chunkenc.ValueType) chunkenc.ValueType {
	if vt == chunkenc.ValNone || t.Iterator.AtT() > t.maxt {
		t.done = true
		return chunkenc.ValNone
	}
	return vt
}

var _ chunkenc.Iterator = (*trimmedIterator)(nil)
