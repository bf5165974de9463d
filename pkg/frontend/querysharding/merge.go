package querysharding

import (
	"cmp"
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/util/kahansum"

	"github.com/neocortex-metrics/neocortex/pkg/frontend/queryrange"
)

var errNoResponse = errors.New("shard query answered nothing")

// errFallback is a merge that cannot be exact: the query is answered whole.
type errFallback struct{ reason string }

func (e *errFallback) Error() string { return "answer unsharded: " + e.reason }

func fallback(reason string) error { return &errFallback{reason: reason} }

// grid is the steps of a range query.
type grid struct {
	start, step int64
	n           int
}

func newGrid(r *queryrange.Request) grid {
	return grid{start: r.Start, step: r.Step, n: int((r.End-r.Start)/r.Step) + 1}
}

// index is the step of t, or an error if t is none.
func (g grid) index(t model.Time) (int, error) {
	d := int64(t) - g.start
	if d < 0 || d%g.step != 0 || d/g.step >= int64(g.n) {
		return 0, fallback(reasonUnexpected)
	}
	return int(d / g.step), nil
}

// merge merges the shards' answers, resps[part][shard], into the answer
// of the original query. Series are ordered by labels, as Prometheus
// orders a range query's. The error is a fallback, or that of decoding an
// answer's series.
func (p *plan) merge(g grid, resps [][]*queryrange.Response) (model.Matrix, error) {
	ms := make([][]model.Matrix, len(resps))
	for pi, part := range resps {
		ms[pi] = make([]model.Matrix, len(part))
		for si, r := range part {
			if r.Data.ResultType != model.ValMatrix {
				return nil, fallback(reasonUnexpected)
			}
			m, err := r.Result()
			if err != nil {
				return nil, err
			}
			ms[pi][si] = m
			for _, s := range m {
				// Sums of native histograms come as buckets by
				// boundaries, without their schema: they cannot be
				// added up as the engine adds them.
				if len(s.Histograms) > 0 {
					return nil, fallback(reasonHistograms)
				}
			}
			if p.op != parser.SUM && p.op != parser.AVG {
				continue
			}
			// A shard may have dropped a group for mixing floats and
			// histograms (or incompatible histograms) that other shards
			// answer for with floats: the whole query drops it.
			for _, w := range r.Warnings {
				if strings.Contains(strings.ToLower(w), "histogram") {
					return nil, fallback(reasonHistograms)
				}
			}
		}
	}
	switch p.op {
	case parser.TOPK, parser.BOTTOMK:
		return p.mergeK(g, ms[0])
	}
	return p.mergeAggregate(g, ms)
}

// aggSeries is one output series of an aggregation, step by step.
type aggSeries struct {
	metric model.Metric
	lset   labels.Labels
	steps  []acc
}

// acc is an aggregation's value at one step.
type acc struct {
	seen  bool
	v, c  float64 // value and Kahan compensation (sums)
	n     float64 // count (avg)
	zeros uint8   // signs of the zero values seen (min, max)
}

const (
	posZero uint8 = 1 << iota
	negZero
)

func (p *plan) mergeAggregate(g grid, parts [][]model.Matrix) (model.Matrix, error) {
	bySeries := map[string]*aggSeries{}
	var order []*aggSeries
	var buf []byte
	b := labels.NewScratchBuilder(8)
	for part, shards := range parts {
		for _, m := range shards {
			for _, s := range m {
				lset := metricLabels(&b, s.Metric)
				buf = lset.Bytes(buf)
				as := bySeries[string(buf)]
				if as == nil {
					as = &aggSeries{metric: s.Metric, lset: lset, steps: make([]acc, g.n)}
					bySeries[string(buf)] = as
					order = append(order, as)
				}
				for _, sp := range s.Values {
					i, err := g.index(sp.Timestamp)
					if err != nil {
						return nil, err
					}
					p.add(&as.steps[i], part, float64(sp.Value))
				}
			}
		}
	}
	out := make(model.Matrix, 0, len(order))
	lsets := make([]labels.Labels, 0, len(order))
	for _, as := range order {
		ss := &model.SampleStream{Metric: as.metric}
		for i := range as.steps {
			v, ok, err := p.result(&as.steps[i])
			if err != nil {
				return nil, err
			}
			if ok {
				ss.Values = append(ss.Values, model.SamplePair{Timestamp: model.Time(g.start + int64(i)*g.step), Value: model.SampleValue(v)})
			}
		}
		if len(ss.Values) > 0 {
			out = append(out, ss)
			lsets = append(lsets, as.lset)
		}
	}
	sortMatrix(out, lsets)
	return out, nil
}

// add adds one shard's value v, from the given part, as the engine adds a
// series' value to its group (promql/engine.go, aggregation).
func (p *plan) add(a *acc, part int, v float64) {
	if p.op == parser.AVG && part == 1 { // the counts
		a.n += v
		return
	}
	first := !a.seen
	a.seen = true
	switch p.op {
	case parser.SUM, parser.AVG:
		if first {
			a.v = v
			return
		}
		a.v, a.c = kahansum.Inc(v, a.v, a.c)
	case parser.COUNT:
		a.v += v
	case parser.GROUP:
		a.v = 1
	case parser.MIN, parser.MAX:
		if v == 0 {
			if math.Signbit(v) {
				a.zeros |= negZero
			} else {
				a.zeros |= posZero
			}
		}
		switch {
		case first, math.IsNaN(a.v):
			a.v = v
		case p.op == parser.MIN && a.v > v:
			a.v = v
		case p.op == parser.MAX && a.v < v:
			a.v = v
		}
	}
}

// result is the aggregation's value at a step, if it has one.
func (p *plan) result(a *acc) (float64, bool, error) {
	switch p.op {
	case parser.AVG:
		if !a.seen && a.n == 0 {
			return 0, false, nil
		}
		if !a.seen || a.n == 0 {
			// A group that has a sum but no count (or the reverse) was
			// dropped by some shard: mixed floats and histograms.
			return 0, false, fallback(reasonUnexpected)
		}
		// The shards' sums are the engine's sum and compensation added;
		// the engine divides both by the count and adds them. They are
		// the same when the sum is exact. The engine never answers -0.
		v := (a.v + a.c) / a.n
		if v == 0 {
			v = 0
		}
		return v, true, nil
	case parser.SUM:
		if !a.seen {
			return 0, false, nil
		}
		return a.v + a.c, true, nil
	case parser.MIN, parser.MAX:
		if !a.seen {
			return 0, false, nil
		}
		// The engine keeps the first of equal values; +0 and -0 are
		// equal, and which came first is not known here.
		if a.v == 0 && a.zeros == posZero|negZero {
			return 0, false, fallback(reasonTies)
		}
		return a.v, true, nil
	}
	return a.v, a.seen, nil
}

// kSeries is a series a shard's topk or bottomk answered with.
type kSeries struct {
	metric model.Metric
	lset   labels.Labels
	group  string
	out    *model.SampleStream
}

// candidate is a series' value at one step, competing in its group.
type candidate struct {
	series int // index in the kSeries
	v      float64
}

// mergeK merges topk or bottomk: at each step, each group keeps the k best
// of the values the shards answered with. Each shard answered with its
// k+1 best, so a tie for the k-th place (which the engine settles by the
// order it met the series in, unknown here) always shows among them.
func (p *plan) mergeK(g grid, shards []model.Matrix) (model.Matrix, error) {
	var (
		series []kSeries
		groups = map[string]int{}
		cands  [][][]candidate // [group][step]
		buf    []byte
		b      = labels.NewScratchBuilder(8)
	)
	for _, m := range shards {
		for _, s := range m {
			lset := metricLabels(&b, s.Metric)
			buf = p.groupKey(buf[:0], lset)
			gi, ok := groups[string(buf)]
			if !ok {
				gi = len(cands)
				groups[string(buf)] = gi
				cands = append(cands, make([][]candidate, g.n))
			}
			si := len(series)
			series = append(series, kSeries{metric: s.Metric, lset: lset})
			for _, sp := range s.Values {
				i, err := g.index(sp.Timestamp)
				if err != nil {
					return nil, err
				}
				cands[gi][i] = p.keepBest(cands[gi][i], candidate{series: si, v: float64(sp.Value)})
			}
		}
	}
	for _, steps := range cands {
		for i, cs := range steps {
			if int64(len(cs)) > p.k {
				if !p.better(cs[p.k-1].v, cs[p.k].v) {
					return nil, fallback(reasonTies)
				}
				cs = cs[:p.k]
			}
			t := model.Time(g.start + int64(i)*g.step)
			for _, c := range cs {
				s := &series[c.series]
				if s.out == nil {
					s.out = &model.SampleStream{Metric: s.metric}
				}
				s.out.Values = append(s.out.Values, model.SamplePair{Timestamp: t, Value: model.SampleValue(c.v)})
			}
		}
	}
	out := make(model.Matrix, 0, len(series))
	var lsets []labels.Labels
	for i := range series {
		if series[i].out != nil {
			out = append(out, series[i].out)
			lsets = append(lsets, series[i].lset)
		}
	}
	sortMatrix(out, lsets)
	return out, nil
}

// better tells whether a comes before b in topk or bottomk, as the engine
// compares: NaN comes last.
func (p *plan) better(a, b float64) bool {
	if p.op == parser.TOPK {
		return a > b || (math.IsNaN(b) && !math.IsNaN(a))
	}
	return a < b || (math.IsNaN(b) && !math.IsNaN(a))
}

// keepBest adds c to the k+1 best candidates cs, kept best first: enough
// to tell the k best and whether the k-th ties with the next.
func (p *plan) keepBest(cs []candidate, c candidate) []candidate {
	keep := int(min(p.k+1, math.MaxInt32))
	if len(cs) == keep && !p.better(c.v, cs[len(cs)-1].v) {
		return cs
	}
	// The first place c is better than; among equals, after them.
	at, _ := slices.BinarySearchFunc(cs, c, func(e, c candidate) int {
		if p.better(c.v, e.v) {
			return 1
		}
		return -1
	})
	if len(cs) < keep {
		cs = append(cs, candidate{})
	}
	copy(cs[at+1:], cs[at:len(cs)-1])
	cs[at] = c
	return cs
}

// groupKey is the key of the aggregation group of a series, as the
// engine's generateGroupingKey picks the labels: by the grouping labels,
// or without them and without the metric name.
func (p *plan) groupKey(b []byte, lset labels.Labels) []byte {
	if p.without {
		return lset.BytesWithoutLabels(b, p.withoutNames...)
	}
	return lset.BytesWithLabels(b, p.grouping...)
}

// metricLabels converts a series' labels, building them in b: one
// builder for a whole answer, as with -tags dedupelabels a new one makes a
// symbol table of its own.
func metricLabels(b *labels.ScratchBuilder, m model.Metric) labels.Labels {
	b.Reset()
	for k, v := range m {
		b.Add(string(k), string(v))
	}
	b.Sort()
	return b.Labels()
}

// sortMatrix sorts m by labels, lsets[i] being m[i]'s.
func sortMatrix(m model.Matrix, lsets []labels.Labels) {
	idx := make([]int, len(m))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return labels.Compare(lsets[a], lsets[b]) })
	sorted := make(model.Matrix, len(m))
	for i, j := range idx {
		sorted[i] = m[j]
	}
	copy(m, sorted)
}

// maxAnnotations is how many warnings, and how many infos, Prometheus's API
// answers with at most; it says how many more there were in a last line.
const maxAnnotations = 10

// annotationSet gathers the shards' warnings or infos.
type annotationSet struct {
	seen    map[string]struct{}
	omitted int // the most any one shard left out
	kept    int // with the above, the most any one shard had
}

func (a *annotationSet) add(q *shardQuery, original string, lines []string, omittedSuffix string) {
	if a.seen == nil {
		a.seen = map[string]struct{}{}
	}
	n, omitted := 0, 0
	for _, l := range lines {
		if strings.HasSuffix(l, omittedSuffix) {
			if k, err := strconv.Atoi(strings.TrimSuffix(l, omittedSuffix)); err == nil {
				omitted = k
				continue
			}
		}
		a.seen[q.mapAnnotation(original, l)] = struct{}{}
		n++
	}
	a.omitted = max(a.omitted, omitted)
	a.kept = max(a.kept, n+omitted)
}

// lines are the annotations, sorted (Prometheus's order is a map's) and cut
// as Prometheus cuts them. How many were left out is a lower bound when a
// shard left some out.
func (a *annotationSet) lines(omittedSuffix string) []string {
	if len(a.seen) == 0 {
		return nil
	}
	out := make([]string, 0, len(a.seen))
	for s := range a.seen {
		out = append(out, s)
	}
	slices.SortFunc(out, cmp.Compare[string])
	total := max(len(out), a.kept)
	if total > maxAnnotations {
		out = append(out[:maxAnnotations], strconv.Itoa(total-maxAnnotations)+omittedSuffix)
	}
	return out
}

const (
	warningsOmitted = " more warning annotations omitted"
	infosOmitted    = " more info annotations omitted"
)

// isFallback tells whether err asks for the query to be answered whole,
// and why.
func isFallback(err error) (string, bool) {
	var f *errFallback
	if errors.As(err, &f) {
		return f.reason, true
	}
	return "", false
}
