package queryrange

import (
	"fmt"
	"time"

	"github.com/prometheus/prometheus/promql/parser"
)

// pinRange replaces in expr what depends on the request's range rather
// than on the evaluation time by its value for r: @ start() and @ end()
// become @ <timestamp>, the functions start(), end(), range() and step()
// numbers, range() in a duration a duration. Each part of a split request
// then evaluates as the whole request would; everything else in PromQL
// (offsets, @ <timestamp>, subqueries) depends on the evaluation time only.
// It reports whether it changed expr, which it changes in place.
func pinRange(expr parser.Expr, r *Request) (parser.Expr, bool, error) {
	p := pinner{start: r.Start, end: r.End, step: r.Step}
	e, err := p.expr(expr)
	return e, p.changed, err
}

type pinner struct {
	start, end, step int64
	changed          bool
}

func (p *pinner) expr(e parser.Expr) (parser.Expr, error) {
	var err error
	switch n := e.(type) {
	case *parser.Call:
		// The engine folds these into numbers (foldQueryContextFunctions);
		// the values are computed as it computes them.
		var v float64
		switch n.Func.Name {
		case "start":
			v = float64(p.start) / 1000
		case "end":
			v = float64(p.end) / 1000
		case "range":
			v = (time.Duration(p.end-p.start) * time.Millisecond).Seconds()
		case "step":
			if p.start != p.end {
				v = (time.Duration(p.step) * time.Millisecond).Seconds()
			}
		default:
			for i := range n.Args {
				if n.Args[i], err = p.expr(n.Args[i]); err != nil {
					return nil, err
				}
			}
			return n, nil
		}
		p.changed = true
		var lit parser.Expr = &parser.NumberLiteral{Val: v, PosRange: n.PosRange}
		if v < 0 {
			// -5 ^ 2 is -(5 ^ 2).
			lit = &parser.ParenExpr{Expr: lit, PosRange: n.PosRange}
		}
		return lit, nil
	case *parser.BinaryExpr:
		if n.LHS, err = p.expr(n.LHS); err != nil {
			return nil, err
		}
		n.RHS, err = p.expr(n.RHS)
	case *parser.AggregateExpr:
		if n.Expr, err = p.expr(n.Expr); err != nil {
			return nil, err
		}
		if n.Param != nil {
			n.Param, err = p.expr(n.Param)
		}
	case *parser.UnaryExpr:
		n.Expr, err = p.expr(n.Expr)
	case *parser.ParenExpr:
		n.Expr, err = p.expr(n.Expr)
	case *parser.SubqueryExpr:
		if n.Expr, err = p.expr(n.Expr); err != nil {
			return nil, err
		}
		n.Timestamp, n.StartOrEnd = p.at(n.Timestamp, n.StartOrEnd)
		err = p.durations(n.RangeExpr, n.StepExpr, n.OriginalOffsetExpr)
	case *parser.MatrixSelector:
		if n.VectorSelector, err = p.expr(n.VectorSelector); err != nil {
			return nil, err
		}
		err = p.durations(n.RangeExpr)
	case *parser.VectorSelector:
		n.Timestamp, n.StartOrEnd = p.at(n.Timestamp, n.StartOrEnd)
		err = p.durations(n.OriginalOffsetExpr)
	case *parser.NumberLiteral, *parser.StringLiteral:
	default:
		return nil, fmt.Errorf("%w %T", errUnsupportedNode, e)
	}
	if err != nil {
		return nil, err
	}
	return e, nil
}

func (p *pinner) at(ts *int64, startOrEnd parser.ItemType) (*int64, parser.ItemType) {
	var t int64
	switch startOrEnd {
	case parser.START:
		t = p.start
	case parser.END:
		t = p.end
	default:
		return ts, startOrEnd
	}
	p.changed = true
	return &t, 0
}

func (p *pinner) durations(ds ...*parser.DurationExpr) error {
	for _, d := range ds {
		if d == nil {
			continue
		}
		if err := p.duration(d); err != nil {
			return err
		}
	}
	return nil
}

// duration replaces range() in d by the request's range, as a unary +
// of a duration literal (a *DurationExpr cannot become a literal).
func (p *pinner) duration(d *parser.DurationExpr) error {
	if d.Op == parser.RANGE {
		rng := time.Duration(p.end-p.start) * time.Millisecond
		lit := &parser.NumberLiteral{Val: rng.Seconds(), Duration: true}
		// The literal is printed at millisecond precision from Val; give
		// up rather than send a range that reads back differently.
		if time.Duration(lit.Val*1e9) != rng {
			return fmt.Errorf("%w: range() of %s", errUnsupportedNode, rng)
		}
		d.Op, d.LHS, d.RHS = parser.ADD, nil, lit
		p.changed = true
		return nil
	}
	for _, e := range []parser.Expr{d.LHS, d.RHS} {
		switch n := e.(type) {
		case nil, *parser.NumberLiteral:
		case *parser.DurationExpr:
			if err := p.duration(n); err != nil {
				return err
			}
		default:
			// Functions such as step() are duration operators, not calls.
			return fmt.Errorf("%w %T in a duration", errUnsupportedNode, e)
		}
	}
	return nil
}

// cacheableQuery reports whether the answers to expr at evaluation
// timestamps up to maxT are final once maxT is past the freshness window:
// not when it reads data after its evaluation time (a negative offset, an
// offset expression, @ after maxT) or depends on the request's range
// (@ start(), @ end(), start(), end(), range(), step(); the split
// middleware pins those before requests reach the cache).
func cacheableQuery(expr parser.Expr, maxT int64) bool {
	ok := true
	atOK := func(ts *int64, startOrEnd parser.ItemType) bool {
		return startOrEnd == 0 && (ts == nil || *ts <= maxT)
	}
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		switch n := node.(type) {
		case *parser.VectorSelector:
			ok = ok && atOK(n.Timestamp, n.StartOrEnd) && n.OriginalOffset >= 0 && n.OriginalOffsetExpr == nil
		case *parser.SubqueryExpr:
			ok = ok && atOK(n.Timestamp, n.StartOrEnd) && n.OriginalOffset >= 0 && n.OriginalOffsetExpr == nil &&
				!usesRange(n.RangeExpr) && !usesRange(n.StepExpr)
		case *parser.MatrixSelector:
			ok = ok && !usesRange(n.RangeExpr)
		case *parser.Call:
			switch n.Func.Name {
			case "start", "end", "range", "step":
				ok = false
			}
		}
		if !ok {
			return errStopInspect
		}
		return nil
	})
	return ok
}

func usesRange(d *parser.DurationExpr) bool {
	if d == nil {
		return false
	}
	if d.Op == parser.RANGE {
		return true
	}
	l, _ := d.LHS.(*parser.DurationExpr)
	r, _ := d.RHS.(*parser.DurationExpr)
	return usesRange(l) || usesRange(r)
}
