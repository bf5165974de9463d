package querysharding

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/parser/posrange"

	"github.com/neocortex-metrics/neocortex/pkg/querier"
)

// Reasons a query is answered whole, the values of the unsharded counter's
// reason label.
const (
	reasonDisabled       = "disabled"        // by config or by the request's options
	reasonParallelParts  = "parallel_parts"  // the split's parts use every CPU already
	reasonUnparsable     = "unparsable"      // the querier will say why
	reasonNotShardable   = "not_shardable"   // see shardable
	reasonAlreadySharded = "already_sharded" // it selects a shard itself
	reasonHistograms     = "native_histograms"
	reasonTies           = "ties"
	reasonUnexpected     = "unexpected_result"
)

// seriesFuncs are the functions whose output series each depend on one
// input series only (and keep its identity), so that they may run on each
// shard's series alone. Their scalar and string arguments must not select
// anything. Left out: functions that look at several series (absent,
// histogram_quantile over classic buckets, scalar, sort…), change labels
// (label_replace and label_join: two series could end up with the same
// labels, which is an error only when both are in the same shard), or
// make series out of nothing (vector, time, and the date functions without
// an argument).
var seriesFuncs = map[string]bool{
	// Over instant vectors.
	"abs": true, "ceil": true, "floor": true, "round": true, "exp": true, "ln": true, "log2": true, "log10": true,
	"sqrt": true, "sgn": true, "clamp": true, "clamp_min": true, "clamp_max": true,
	"acos": true, "acosh": true, "asin": true, "asinh": true, "atan": true, "atanh": true,
	"cos": true, "cosh": true, "sin": true, "sinh": true, "tan": true, "tanh": true, "deg": true, "rad": true,
	"timestamp": true, "histogram_avg": true, "histogram_count": true, "histogram_sum": true, "histogram_fraction": true,
	"histogram_stddev": true, "histogram_stdvar": true,
	"day_of_month": true, "day_of_week": true, "day_of_year": true, "days_in_month": true,
	"hour": true, "minute": true, "month": true, "year": true,
	// Over range vectors.
	"rate": true, "irate": true, "increase": true, "delta": true, "idelta": true, "deriv": true,
	"predict_linear": true, "resets": true, "changes": true,
	"avg_over_time": true, "min_over_time": true, "max_over_time": true, "sum_over_time": true,
	"count_over_time": true, "quantile_over_time": true, "stddev_over_time": true, "stdvar_over_time": true,
	"last_over_time": true, "first_over_time": true, "present_over_time": true,
}

// plan is how a query is answered in shards: the shard queries of each part
// (avg has two: sum and count), and how their answers merge.
type plan struct {
	op       parser.ItemType // of the root aggregation
	k        int64           // of topk and bottomk
	grouping []string        // sorted
	without  bool
	// withoutNames are the labels left out of a group's key with without:
	// the grouping and the metric name, sorted.
	withoutNames []string
	parts        []part
}

// part is one rewrite of the query, run once per shard.
type part struct {
	shards []shardQuery
}

// shardQuery is the query of one shard.
type shardQuery struct {
	text  string
	edits []edit // that made text out of the original, by position
}

// edit replaces del bytes at pos of the original query with ins.
type edit struct {
	pos, del int
	ins      string
}

// newPlan returns the plan of a range query over n shards, or why it is
// answered whole.
func newPlan(p parser.Parser, query string, n int) (*plan, string) {
	expr, err := p.ParseExpr(query)
	if err != nil {
		return nil, reasonUnparsable
	}
	if hasShardMatcher(expr) {
		return nil, reasonAlreadySharded
	}
	agg, ok := unparen(expr).(*parser.AggregateExpr)
	if !ok || !shardable(agg) {
		return nil, reasonNotShardable
	}
	pl := &plan{op: agg.Op, grouping: slices.Clone(agg.Grouping), without: agg.Without}
	slices.Sort(pl.grouping)
	pl.withoutNames = append([]string{labels.MetricName}, pl.grouping...)
	slices.Sort(pl.withoutNames)
	pl.withoutNames = slices.Compact(pl.withoutNames)

	// Every selector is under the aggregation, in a series-wise position
	// (shardable checks that): each gets the shard matcher.
	var inserts []edit
	var lexErr error
	parser.Inspect(agg.Expr, func(node parser.Node, _ []parser.Node) error {
		if vs, ok := node.(*parser.VectorSelector); ok {
			e, err := shardMatcherInsert(query, int(vs.PosRange.Start))
			if err != nil {
				lexErr = err
			}
			inserts = append(inserts, e)
		}
		return nil
	})
	if lexErr != nil || len(inserts) == 0 {
		return nil, reasonNotShardable
	}
	// The edits of each part, besides the inserts.
	start := int(agg.PosRange.Start)
	var extra [][]edit
	switch agg.Op {
	case parser.AVG:
		// avg is sum / count, each summed over the shards.
		if start+3 > len(query) || !strings.EqualFold(query[start:start+3], "avg") {
			return nil, reasonNotShardable
		}
		extra = [][]edit{{{pos: start, del: 3, ins: "sum"}}, {{pos: start, del: 3, ins: "count"}}}
	case parser.TOPK, parser.BOTTOMK:
		// Each shard answers with one more than k: a tie for the k-th
		// place shows up, even when a shard holds all of them.
		lit := unparen(agg.Param).(*parser.NumberLiteral)
		pl.k = int64(lit.Val)
		pr := lit.PosRange
		extra = [][]edit{{{pos: int(pr.Start), del: int(pr.End - pr.Start), ins: strconv.FormatInt(pl.k+1, 10)}}}
	default:
		extra = [][]edit{nil}
	}
	for _, ex := range extra {
		var pt part
		for i := range n {
			shard := querier.Shard{Index: uint64(i), Count: uint64(n)}.String()
			edits := slices.Clone(ex)
			for _, e := range inserts {
				e.ins = strings.ReplaceAll(e.ins, shardPlaceholder, shard)
				edits = append(edits, e)
			}
			slices.SortFunc(edits, func(a, b edit) int { return a.pos - b.pos })
			pt.shards = append(pt.shards, shardQuery{text: applyEdits(query, edits), edits: edits})
		}
		// The rewrite is by hand, on the text, to keep the positions
		// that annotations point at; check it says what it should.
		if !rewriteOK(p, pt.shards[0].text, len(inserts)) {
			return nil, reasonNotShardable
		}
		pl.parts = append(pl.parts, pt)
	}
	return pl, ""
}

// shardable tells whether the aggregation's answer is a merge of the
// same aggregation over each shard's series.
func shardable(agg *parser.AggregateExpr) bool {
	switch agg.Op {
	case parser.SUM, parser.MIN, parser.MAX, parser.COUNT, parser.GROUP, parser.AVG:
	case parser.TOPK, parser.BOTTOMK:
		// k must be the same at every step and known here.
		lit, ok := unparen(agg.Param).(*parser.NumberLiteral)
		if !ok || math.IsNaN(lit.Val) || lit.Val < 1 || lit.Val >= math.MaxInt64/2 {
			return false
		}
	default:
		// quantile, stddev, stdvar and count_values do not merge exactly;
		// limitk and limit_ratio pick by order and hash.
		return false
	}
	if !seriesWise(agg.Expr) {
		return false
	}
	// Two input series of the aggregation with the same labels are an
	// error, but only when they are in the same shard. A selector's
	// series are all different; dropping the metric name (most functions
	// and operators do) keeps them so only if they all have the same one.
	if _, ok := unparen(agg.Expr).(*parser.VectorSelector); ok {
		return true
	}
	named := true
	parser.Inspect(agg.Expr, func(node parser.Node, _ []parser.Node) error {
		if vs, ok := node.(*parser.VectorSelector); ok && !hasNameEquality(vs.LabelMatchers) {
			named = false
		}
		return nil
	})
	return named
}

// seriesWise tells whether e, an instant or range vector expression, gives
// each series from one input series alone, and has selectors only where
// they feed its series.
func seriesWise(e parser.Expr) bool {
	switch n := e.(type) {
	case *parser.ParenExpr:
		return seriesWise(n.Expr)
	case *parser.VectorSelector:
		return true
	case *parser.MatrixSelector:
		return true
	case *parser.SubqueryExpr:
		return seriesWise(n.Expr)
	case *parser.UnaryExpr:
		return seriesWise(n.Expr)
	case *parser.Call:
		if !seriesFuncs[n.Func.Name] {
			return false
		}
		vectors := 0
		for i, arg := range n.Args {
			t := n.Func.ArgTypes[min(i, len(n.Func.ArgTypes)-1)]
			switch t {
			case parser.ValueTypeVector, parser.ValueTypeMatrix:
				if !seriesWise(arg) {
					return false
				}
				vectors++
			default:
				if !selectorFree(arg) {
					return false
				}
			}
		}
		return vectors == 1
	case *parser.BinaryExpr:
		lt, rt := n.LHS.Type(), n.RHS.Type()
		switch {
		case lt == parser.ValueTypeVector && rt == parser.ValueTypeScalar:
			return seriesWise(n.LHS) && selectorFree(n.RHS)
		case lt == parser.ValueTypeScalar && rt == parser.ValueTypeVector:
			return selectorFree(n.LHS) && seriesWise(n.RHS)
		}
		// Between two vectors: series meet series of other shards.
		return false
	}
	return false
}

// selectorFree tells whether e selects nothing: it is the same in every shard.
func selectorFree(e parser.Expr) bool {
	free := true
	parser.Inspect(e, func(node parser.Node, _ []parser.Node) error {
		switch node.(type) {
		case *parser.VectorSelector, *parser.MatrixSelector:
			free = false
		}
		return nil
	})
	return free
}

func hasNameEquality(ms []*labels.Matcher) bool {
	for _, m := range ms {
		if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
			return true
		}
	}
	return false
}

func hasShardMatcher(e parser.Expr) bool {
	found := false
	parser.Inspect(e, func(node parser.Node, _ []parser.Node) error {
		if vs, ok := node.(*parser.VectorSelector); ok {
			for _, m := range vs.LabelMatchers {
				if m.Name == querier.ShardLabel {
					found = true
				}
			}
		}
		return nil
	})
	return found
}

func unparen(e parser.Expr) parser.Expr {
	for {
		p, ok := e.(*parser.ParenExpr)
		if !ok {
			return e
		}
		e = p.Expr
	}
}

// shardPlaceholder stands for the shard in an insert until it is known.
const shardPlaceholder = "\x00shard\x00"

// shardMatcherInsert is the edit that adds the shard matcher to the
// selector at pos: `a` becomes `a{__query_shard__="1_of_2"}`, `a{b="c"}`
// and `{b="c"}` get it first inside the braces.
func shardMatcherInsert(query string, pos int) (edit, error) {
	matcher := querier.ShardLabel + `="` + shardPlaceholder + `"`
	l := parser.Lex(query[pos:])
	var items []parser.Item
	for len(items) < 3 {
		var it parser.Item
		l.NextItem(&it)
		if it.Typ == parser.COMMENT {
			continue
		}
		items = append(items, it)
		if it.Typ == parser.EOF || it.Typ == parser.ERROR {
			break
		}
	}
	brace := -1
	switch {
	case len(items) > 0 && items[0].Typ == parser.LEFT_BRACE:
		brace = 0
	case len(items) > 1 && items[1].Typ == parser.LEFT_BRACE:
		brace = 1
	case len(items) > 0 && (items[0].Typ == parser.IDENTIFIER || items[0].Typ == parser.METRIC_IDENTIFIER || items[0].Typ.IsKeyword() || items[0].Typ.IsAggregator()):
		end := pos + int(items[0].Pos) + len(items[0].Val)
		return edit{pos: end, ins: "{" + matcher + "}"}, nil
	default:
		return edit{}, fmt.Errorf("no selector at %d", pos)
	}
	at := pos + int(items[brace].Pos) + 1
	if len(items) > brace+1 && items[brace+1].Typ == parser.RIGHT_BRACE {
		return edit{pos: at, ins: matcher}, nil
	}
	return edit{pos: at, ins: matcher + ","}, nil
}

func applyEdits(query string, edits []edit) string {
	var b strings.Builder
	last := 0
	for _, e := range edits {
		b.WriteString(query[last:e.pos])
		b.WriteString(e.ins)
		last = e.pos + e.del
	}
	b.WriteString(query[last:])
	return b.String()
}

// rewriteOK tells whether a shard query parses with the shard matcher on
// each of its n selectors.
func rewriteOK(p parser.Parser, text string, n int) bool {
	expr, err := p.ParseExpr(text)
	if err != nil {
		return false
	}
	found := 0
	ok := true
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		if vs, isVS := node.(*parser.VectorSelector); isVS {
			has := false
			for _, m := range vs.LabelMatchers {
				if m.Name == querier.ShardLabel {
					has = true
				}
			}
			if has {
				found++
			} else {
				ok = false
			}
		}
		return nil
	})
	return ok && found == n
}

// originalPos maps a position in the shard query to the original query. A
// position inside inserted text maps to where it was inserted.
func (q *shardQuery) originalPos(pos int) int {
	delta := 0
	for _, e := range q.edits {
		at := e.pos + delta
		if pos < at {
			break
		}
		if pos < at+len(e.ins) {
			return e.pos
		}
		delta += len(e.ins) - e.del
	}
	return pos - delta
}

// mapAnnotation rewrites the position an annotation ends with, "(line:col)"
// in the shard query, to the same place in the original query.
func (q *shardQuery) mapAnnotation(original, s string) string {
	if !strings.HasSuffix(s, ")") {
		return s
	}
	open := strings.LastIndex(s, " (")
	if open < 0 {
		return s
	}
	ln, col, ok := strings.Cut(s[open+2:len(s)-1], ":")
	if !ok {
		return s
	}
	line, err1 := strconv.Atoi(ln)
	c, err2 := strconv.Atoi(col)
	if err1 != nil || err2 != nil || line < 1 || c < 1 {
		return s
	}
	// As posrange.PositionRange.StartPosInput counts: col is the byte
	// offset from the line's preceding newline.
	lastBreak := -1
	for l := 1; l < line; l++ {
		i := strings.IndexByte(q.text[lastBreak+1:], '\n')
		if i < 0 {
			return s
		}
		lastBreak += i + 1
	}
	pos := lastBreak + c
	if pos > len(q.text) {
		return s
	}
	orig := posrange.PositionRange{Start: posrange.Pos(q.originalPos(pos))}
	return s[:open] + " (" + orig.StartPosInput(original, 0) + ")"
}
