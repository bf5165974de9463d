package queryrange

import (
	"slices"
	"sort"
	"strings"

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
// afterwards. A single answer is not decoded: the merged one shares its
// undecoded series. The error is that of decoding an answer's series.
func mergeResponses(resps []*Response) (*Response, error) {
	out := &Response{Status: statusSuccess, Data: Data{ResultType: model.ValMatrix}}
	for _, r := range resps {
		out.Warnings = appendUnique(out.Warnings, r.Warnings)
		out.Infos = appendUnique(out.Infos, r.Infos)
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

	type group struct {
		labels []labelPair // sorted by name
		parts  []*model.SampleStream
		floats int
		hists  int
	}
	var (
		groups []*group
		byKey  = map[string]*group{}
		key    []byte
		pairs  []labelPair
	)
	for _, r := range resps {
		m, err := r.Result()
		if err != nil {
			return nil, err
		}
		for _, s := range m {
			pairs = sortedPairs(pairs[:0], s.Metric)
			key = appendPairsKey(key[:0], pairs)
			g, ok := byKey[string(key)]
			if !ok {
				g = &group{labels: slices.Clone(pairs)}
				byKey[string(key)] = g
				groups = append(groups, g)
			}
			g.parts = append(g.parts, s)
			g.floats += len(s.Values)
			g.hists += len(s.Histograms)
		}
	}

	result := make(model.Matrix, 0, len(groups))
	labels := make([][]labelPair, 0, len(groups))
	for _, g := range groups {
		labels = append(labels, g.labels)
		if len(g.parts) == 1 {
			result = append(result, g.parts[0])
			continue
		}
		s := &model.SampleStream{Metric: g.parts[0].Metric}
		if g.floats > 0 {
			s.Values = make([]model.SamplePair, 0, g.floats)
		}
		if g.hists > 0 {
			s.Histograms = make([]model.SampleHistogramPair, 0, g.hists)
		}
		for _, p := range g.parts {
			s.Values = appendFloatsAfter(s.Values, p.Values)
			s.Histograms = appendHistogramsAfter(s.Histograms, p.Histograms)
		}
		result = append(result, s)
	}
	sort.Sort(byLabels{result, labels})
	out.Data.Result = result
	return out, nil
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

type labelPair struct{ name, value string }

func sortedPairs(dst []labelPair, m model.Metric) []labelPair {
	for n, v := range m {
		dst = append(dst, labelPair{string(n), string(v)})
	}
	slices.SortFunc(dst, func(a, b labelPair) int { return strings.Compare(a.name, b.name) })
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

type byLabels struct {
	m      model.Matrix
	labels [][]labelPair
}

func (s byLabels) Len() int           { return len(s.m) }
func (s byLabels) Less(i, j int) bool { return compareLabels(s.labels[i], s.labels[j]) < 0 }
func (s byLabels) Swap(i, j int) {
	s.m[i], s.m[j] = s.m[j], s.m[i]
	s.labels[i], s.labels[j] = s.labels[j], s.labels[i]
}

// clipResponse returns the part of r in [start, end]: the samples in that
// range, the series left with none dropped. It shares sample slices with
// r. The error is that of decoding r's series.
func clipResponse(r *Response, start, end int64) (*Response, error) {
	m, err := r.Result()
	if err != nil {
		return nil, err
	}
	out := &Response{Status: r.Status, Data: Data{ResultType: r.Data.ResultType}, Warnings: r.Warnings, Infos: r.Infos}
	out.Data.Result = make(model.Matrix, 0, len(m))
	for _, s := range m {
		fi := sort.Search(len(s.Values), func(i int) bool { return int64(s.Values[i].Timestamp) >= start })
		fj := sort.Search(len(s.Values), func(i int) bool { return int64(s.Values[i].Timestamp) > end })
		hi := sort.Search(len(s.Histograms), func(i int) bool { return int64(s.Histograms[i].Timestamp) >= start })
		hj := sort.Search(len(s.Histograms), func(i int) bool { return int64(s.Histograms[i].Timestamp) > end })
		if fi == fj && hi == hj {
			continue
		}
		if fi == 0 && fj == len(s.Values) && hi == 0 && hj == len(s.Histograms) {
			out.Data.Result = append(out.Data.Result, s)
			continue
		}
		c := &model.SampleStream{Metric: s.Metric}
		if fi < fj {
			c.Values = s.Values[fi:fj:fj]
		}
		if hi < hj {
			c.Histograms = s.Histograms[hi:hj:hj]
		}
		out.Data.Result = append(out.Data.Result, c)
	}
	return out, nil
}
