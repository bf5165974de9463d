package queryrange

import (
	"slices"
	"strings"
	"unsafe"

	"github.com/prometheus/common/model"
)

// series is one series of a range query's result as the frontend holds
// it between decoding and encoding: its labels sorted by name rather than
// in a model.Metric. A big answer has 100k series and more: a Go map for
// each, built, iterated and sorted again to compare and to write, was most
// of the cost of merging and encoding one.
type series struct {
	// labels are sorted by name, no name twice.
	labels []labelPair
	floats []model.SamplePair
	hists  []model.SampleHistogramPair
	// metric, if not nil, is the labels as a model.Metric, when the series
	// came with one (Data.Result): Result gives it back as it came.
	metric model.Metric
}

type labelPair struct{ name, value string }

// compareLabels orders label sets as Prometheus's labels.Compare: label by
// label, name then value, a prefix first.
func compareLabels(a, b []labelPair) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if c := strings.Compare(a[i].name, b[i].name); c != 0 {
			return c
		}
		if c := strings.Compare(a[i].value, b[i].value); c != 0 {
			return c
		}
	}
	return len(a) - len(b)
}

func sortedPairs(dst []labelPair, m model.Metric) []labelPair {
	for n, v := range m {
		dst = append(dst, labelPair{string(n), string(v)})
	}
	slices.SortFunc(dst, func(a, b labelPair) int { return strings.Compare(a.name, b.name) })
	return dst
}

// normalizeLabels sorts ls by name, keeping the last of labels with the
// same name (as decoding into a map does), and returns it.
func normalizeLabels(ls []labelPair) []labelPair {
	sorted := true
	for i := 1; i < len(ls); i++ {
		if ls[i-1].name >= ls[i].name {
			sorted = false
			break
		}
	}
	if sorted {
		return ls
	}
	slices.SortStableFunc(ls, func(a, b labelPair) int { return strings.Compare(a.name, b.name) })
	out := ls[:0]
	for i, l := range ls {
		if i+1 < len(ls) && ls[i+1].name == l.name {
			continue
		}
		out = append(out, l)
	}
	return out
}

// matrixSeries returns m as series, sharing its samples and metrics.
func matrixSeries(m model.Matrix) []series {
	ss := make([]series, len(m))
	var a arena
	var buf []labelPair
	for i, s := range m {
		buf = sortedPairs(buf[:0], s.Metric)
		ss[i] = series{labels: a.labels(buf), floats: s.Values, hists: s.Histograms, metric: s.Metric}
	}
	return ss
}

// seriesMatrix returns ss as a model.Matrix, sharing their samples; a
// series' metric is built from its labels unless it has one.
func seriesMatrix(ss []series) model.Matrix {
	m := make(model.Matrix, len(ss))
	streams := make([]model.SampleStream, len(ss))
	for i, s := range ss {
		metric := s.metric
		if metric == nil {
			metric = make(model.Metric, len(s.labels))
			for _, l := range s.labels {
				metric[model.LabelName(l.name)] = model.LabelValue(l.value)
			}
		}
		streams[i] = model.SampleStream{Metric: metric, Values: s.floats, Histograms: s.hists}
		m[i] = &streams[i]
	}
	return m
}

// arena hands out the label and float slices of many series from a few
// big allocations instead of one or two for each series. Each slice it
// returns has its length as capacity, so that appending to one copies it
// rather than overwriting the next.
type arena struct {
	ls []labelPair
	fs []model.SamplePair
}

// arenaChunk is how many labels or floats one allocation holds, at least.
const arenaChunk = 4096

// labels returns a copy of ls.
func (a *arena) labels(ls []labelPair) []labelPair {
	if len(ls) == 0 {
		return nil
	}
	if cap(a.ls)-len(a.ls) < len(ls) {
		a.ls = make([]labelPair, 0, max(len(ls), arenaChunk))
	}
	start := len(a.ls)
	a.ls = append(a.ls, ls...)
	return a.ls[start:len(a.ls):len(a.ls)]
}

// floats returns a slice of n floats, to fill.
func (a *arena) floats(n int) []model.SamplePair {
	if n == 0 {
		return nil
	}
	if cap(a.fs)-len(a.fs) < n {
		a.fs = make([]model.SamplePair, 0, max(n, arenaChunk))
	}
	start := len(a.fs)
	a.fs = a.fs[:start+n]
	return a.fs[start : start+n : start+n]
}

// bytesString returns b as a string without copying it: b must never
// change afterwards. Label names and values decoded from a body or a
// cached value point into it, which saves allocating a string for each
// (the buffer then lives as long as any of them).
func bytesString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
