package queryrange

import (
	"slices"
	"sort"

	"github.com/prometheus/common/model"
)

// mergeResponses merges successful answers for consecutive ranges of one
// query, given in time order: series with the same labels become one, with
// their samples in time order; a sample at or before the last one already
// taken for its series is dropped, so overlapping ranges merge without
// duplicates. Series come out sorted by labels, as Prometheus sorts a range
// query's result. Warnings and infos are merged without duplicates.
//
// The answer may share series with resps, which must not change
// afterwards. A single answer, or the only one with series (the others
// known to have none, such as a cached extent from before the series
// began), is not decoded: the merged one shares its undecoded series, and
// may be written as it came. The error is that of decoding an answer's
// series.
//
// The merged answer holds a model.Matrix if every part does, else series
// (Response.series), which it builds no Go map for.
func mergeResponses(resps []*Response) (*Response, error) {
	out := &Response{Status: statusSuccess, Data: Data{ResultType: model.ValMatrix}}
	for _, r := range resps {
		out.Warnings = appendUnique(out.Warnings, r.Warnings)
		out.Infos = appendUnique(out.Infos, r.Infos)
	}
	if len(resps) > 1 {
		var nonEmpty []*Response
		for _, r := range resps {
			if !r.knownEmpty() {
				nonEmpty = append(nonEmpty, r)
			}
		}
		if len(nonEmpty) <= 1 {
			resps = nonEmpty
		}
	}
	switch len(resps) {
	case 0:
		out.Data.Result = model.Matrix{}
		return out, nil
	case 1:
		r := resps[0]
		if r.lazy != nil {
			out.lazy = r.lazy
		} else {
			out.Data.Result = r.Data.Result
			if out.Data.Result == nil {
				out.Data.Result = model.Matrix{}
			}
		}
		// Unchanged (no duplicate warnings or infos dropped), it may still
		// be written as it came.
		if r.Status == out.Status && r.ErrorType == "" && r.Error == "" && r.Data.ResultType == out.Data.ResultType &&
			len(out.Warnings) == len(r.Warnings) && len(out.Infos) == len(r.Infos) {
			out.raw = r.raw
		}
		return out, nil
	}

	parts := make([][]series, len(resps))
	plain := true // every part a model.Matrix: so is the answer
	for i, r := range resps {
		ss, err := r.series()
		if err != nil {
			return nil, err
		}
		parts[i] = ss
		plain = plain && r.lazy == nil
	}
	merged := mergeSeries(parts)
	if plain {
		out.Data.Result = seriesMatrix(merged)
	} else {
		out.lazy = givenSeries(merged)
	}
	return out, nil
}

// mergeSeries merges parts as mergeResponses does. Parts are usually
// sorted by labels already (a querier's answers as Prometheus sorts them,
// cached extents as they were merged): those it merges in order, as a
// merge join; others it groups by labels and sorts.
func mergeSeries(parts [][]series) []series {
	for _, p := range parts {
		if !sortedByLabels(p) {
			return mergeUnsorted(parts)
		}
	}
	return mergeSorted(parts)
}

// sortedByLabels is whether ss is sorted by labels, no labels twice.
func sortedByLabels(ss []series) bool {
	for i := 1; i < len(ss); i++ {
		if compareLabels(ss[i-1].labels, ss[i].labels) >= 0 {
			return false
		}
	}
	return true
}

// mergeSorted merges parts sorted by labels: at each step, the series
// with the least labels among the parts' next ones, merged if several
// parts have them.
func mergeSorted(parts [][]series) []series {
	n := 0
	for _, p := range parts {
		n = max(n, len(p))
	}
	var (
		out   = make([]series, 0, n)
		next  = make([]int, len(parts)) // each part's next series
		least []int                     // the parts whose next series have the least labels
		group []series
		a     arena
	)
	for {
		least = least[:0]
		for i, p := range parts {
			if next[i] == len(p) {
				continue
			}
			if len(least) > 0 {
				c := compareLabels(p[next[i]].labels, parts[least[0]][next[least[0]]].labels)
				if c > 0 {
					continue
				}
				if c < 0 {
					least = least[:0]
				}
			}
			least = append(least, i)
		}
		switch len(least) {
		case 0:
			return out
		case 1:
			out = append(out, parts[least[0]][next[least[0]]])
		default:
			group = group[:0]
			for _, i := range least {
				group = append(group, parts[i][next[i]])
			}
			out = append(out, mergeSamples(group, &a))
		}
		for _, i := range least {
			next[i]++
		}
	}
}

// mergeUnsorted merges parts in any order: grouped by labels, then sorted.
func mergeUnsorted(parts [][]series) []series {
	var (
		groups [][]series
		byKey  = map[string]int{}
		key    []byte
	)
	for _, p := range parts {
		for _, s := range p {
			key = appendPairsKey(key[:0], s.labels)
			g, ok := byKey[string(key)]
			if !ok {
				g = len(groups)
				byKey[string(key)] = g
				groups = append(groups, nil)
			}
			groups[g] = append(groups[g], s)
		}
	}
	out := make([]series, 0, len(groups))
	var a arena
	for _, g := range groups {
		if len(g) == 1 {
			out = append(out, g[0])
			continue
		}
		out = append(out, mergeSamples(g, &a))
	}
	slices.SortFunc(out, func(a, b series) int { return compareLabels(a.labels, b.labels) })
	return out
}

// mergeSamples merges the samples of series with the same labels, given in
// time order, into one with the labels (and metric) of the first; floats
// come from a.
func mergeSamples(ss []series, a *arena) series {
	floats, hists := 0, 0
	for _, s := range ss {
		floats += len(s.floats)
		hists += len(s.hists)
	}
	m := series{labels: ss[0].labels, metric: ss[0].metric}
	if floats > 0 {
		m.floats = a.floats(floats)[:0]
	}
	if hists > 0 {
		m.hists = make([]model.SampleHistogramPair, 0, hists)
	}
	for _, s := range ss {
		m.floats = appendFloatsAfter(m.floats, s.floats)
		m.hists = appendHistogramsAfter(m.hists, s.hists)
	}
	return m
}

func appendFloatsAfter(dst, src []model.SamplePair) []model.SamplePair {
	if len(dst) > 0 && len(src) > 0 {
		last := dst[len(dst)-1].Timestamp
		src = src[sort.Search(len(src), func(i int) bool { return src[i].Timestamp > last }):]
	}
	return append(dst, src...)
}

func appendHistogramsAfter(dst, src []model.SampleHistogramPair) []model.SampleHistogramPair {
	if len(dst) > 0 && len(src) > 0 {
		last := dst[len(dst)-1].Timestamp
		src = src[sort.Search(len(src), func(i int) bool { return src[i].Timestamp > last }):]
	}
	return append(dst, src...)
}

func appendUnique(dst, src []string) []string {
	for _, s := range src {
		if !slices.Contains(dst, s) {
			dst = append(dst, s)
		}
	}
	return dst
}

func appendPairsKey(b []byte, pairs []labelPair) []byte {
	for _, p := range pairs {
		b = append(b, p.name...)
		b = append(b, 0xff)
		b = append(b, p.value...)
		b = append(b, 0xff)
	}
	return b
}

// clipResponse returns the part of r in [start, end]: the samples in that
// range, the series left with none dropped. It shares sample slices with
// r. The error is that of decoding r's series.
func clipResponse(r *Response, start, end int64) (*Response, error) {
	out := &Response{Status: r.Status, Data: Data{ResultType: r.Data.ResultType}, Warnings: r.Warnings, Infos: r.Infos}
	if r.lazy == nil {
		m := r.Data.Result
		out.Data.Result = make(model.Matrix, 0, len(m))
		for _, s := range m {
			floats, hists, whole := clipSamples(s.Values, s.Histograms, start, end)
			switch {
			case whole:
				out.Data.Result = append(out.Data.Result, s)
			case floats != nil || hists != nil:
				out.Data.Result = append(out.Data.Result, &model.SampleStream{Metric: s.Metric, Values: floats, Histograms: hists})
			}
		}
		return out, nil
	}
	ss, err := r.lazy.series()
	if err != nil {
		return nil, err
	}
	clipped := make([]series, 0, len(ss))
	for _, s := range ss {
		floats, hists, whole := clipSamples(s.floats, s.hists, start, end)
		switch {
		case whole:
			clipped = append(clipped, s)
		case floats != nil || hists != nil:
			clipped = append(clipped, series{labels: s.labels, metric: s.metric, floats: floats, hists: hists})
		}
	}
	out.lazy = givenSeries(clipped)
	return out, nil
}

// clipSamples returns the samples in [start, end], nil if none, or whether
// that is all of them.
func clipSamples(floats []model.SamplePair, hists []model.SampleHistogramPair, start, end int64) (
	clippedFloats []model.SamplePair, clippedHists []model.SampleHistogramPair, whole bool,
) {
	fi := sort.Search(len(floats), func(i int) bool { return int64(floats[i].Timestamp) >= start })
	fj := sort.Search(len(floats), func(i int) bool { return int64(floats[i].Timestamp) > end })
	hi := sort.Search(len(hists), func(i int) bool { return int64(hists[i].Timestamp) >= start })
	hj := sort.Search(len(hists), func(i int) bool { return int64(hists[i].Timestamp) > end })
	if fi == fj && hi == hj {
		return nil, nil, false
	}
	if fi == 0 && fj == len(floats) && hi == 0 && hj == len(hists) {
		return floats, hists, true
	}
	if fi < fj {
		clippedFloats = floats[fi:fj:fj]
	}
	if hi < hj {
		clippedHists = hists[hi:hj:hj]
	}
	return clippedFloats, clippedHists, false
}
