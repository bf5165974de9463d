package queryrange

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/prometheus/promql/parser"
)

// SplitByInterval splits each request at multiples of interval (since the
// Unix epoch, UTC) into parts that it sends on, at most maxParallelism at a
// time, and merges their answers. The parts hold exactly the evaluation
// timestamps of the request, each once: the first part starts at the
// request's start, each next one at its first evaluation timestamp at or
// after a multiple of interval, whether or not the step divides the
// interval.
//
// PromQL evaluates each timestamp on its own, so the merged answer is the
// whole request's, except for what depends on the request's range, which
// is pinned to the whole request's values first (see pinRange): @ start(),
// @ end(), and the start(), end(), range() and step() functions. A query
// that does not parse, or that holds a node the rewrite does not know, is
// sent on whole, for downstream to answer or refuse.
//
// One part's error fails the request: the first error is returned and the
// other parts are canceled.
func SplitByInterval(interval time.Duration, maxParallelism int, p parser.Parser, m *Metrics) Middleware {
	if p == nil {
		p = parser.NewParser(parser.Options{})
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	return func(next Handler) Handler {
		return &splitByInterval{next: next, interval: interval.Milliseconds(), parallelism: max(maxParallelism, 1), parser: p, metrics: m}
	}
}

type splitByInterval struct {
	next        Handler
	interval    int64
	parallelism int
	parser      parser.Parser
	metrics     *Metrics
}

func (s *splitByInterval) Do(ctx context.Context, r *Request) (*Response, error) {
	if s.interval <= 0 || r.Step <= 0 || r.End < r.Start {
		return s.next.Do(ctx, r)
	}
	expr, err := s.parser.ParseExpr(r.Query)
	if err != nil {
		return s.next.Do(ctx, r)
	}
	expr, changed, err := pinRange(expr, r)
	if err != nil {
		return s.next.Do(ctx, r)
	}
	if changed {
		r = r.WithQuery(expr.String())
	}
	parts := splitRequest(r, s.interval)
	s.metrics.SplitQueries.Add(float64(len(parts)))
	if len(parts) == 1 {
		return s.next.Do(ctx, parts[0])
	}
	for _, p := range parts {
		p.Options.Parallel = min(len(parts), s.parallelism)
	}
	resps, err := doParallel(ctx, s.next, parts, s.parallelism)
	if err != nil {
		return nil, err
	}
	return mergeResponses(resps)
}

// splitRequest returns the parts of r, one per multiple of interval its
// evaluation timestamps cross, each ending at its last evaluation
// timestamp.
func splitRequest(r *Request, interval int64) []*Request {
	last := r.Start + (r.End-r.Start)/r.Step*r.Step
	parts := make([]*Request, 0, (last-r.Start)/interval+2)
	for start := r.Start; start <= last; {
		next := floorTo(start, interval) + interval
		end := min(start+(next-1-start)/r.Step*r.Step, last)
		parts = append(parts, r.WithRange(start, end))
		start = end + r.Step
	}
	return parts
}

// doParallel answers reqs with h, at most parallelism at a time, and
// returns the answers in the order of reqs, or the first error, once every
// call has returned; the first error cancels the calls under way.
func doParallel(ctx context.Context, h Handler, reqs []*Request, parallelism int) ([]*Response, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	resps := make([]*Response, len(reqs))
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		next     = make(chan int)
	)
	for range min(parallelism, len(reqs)) {
		wg.Go(func() {
			for i := range next {
				if ctx.Err() != nil {
					continue // canceled: send no more
				}
				resp, err := h.Do(ctx, reqs[i])
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
						cancel()
					}
					mu.Unlock()
					continue
				}
				resps[i] = resp
			}
		})
	}
feed:
	for i := range reqs {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return resps, nil
}
