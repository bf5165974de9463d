package queryrange

import "context"

// StepAlign snaps start and end of each request down to multiples of its
// step (Cortex's align_queries_with_step). The answer then differs from
// Prometheus's for the original request only by that snapping: it holds
// the points at start-start%step, …, end-end%step instead of start, …,
// end; the value at each point is what Prometheus answers for it. Aligned
// requests share evaluation timestamps, so their results can be cached and
// reused across requests.
func StepAlign() Middleware {
	return func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, r *Request) (*Response, error) {
			start, end := floorTo(r.Start, r.Step), floorTo(r.End, r.Step)
			if start == r.Start && end == r.End {
				return next.Do(ctx, r)
			}
			return next.Do(ctx, r.WithRange(start, end))
		})
	}
}

// floorTo returns the largest multiple of m not above t, for m > 0.
func floorTo(t, m int64) int64 {
	if m <= 0 {
		return t
	}
	return t - floorMod(t, m)
}

// floorMod is t mod m in [0, m), for m > 0.
func floorMod(t, m int64) int64 {
	r := t % m
	if r < 0 {
		r += m
	}
	return r
}
