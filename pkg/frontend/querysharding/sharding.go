// Package querysharding is the query-frontend's query sharding: a range
// query whose root is a shardable aggregation is answered by running it
// once per hash shard of the series, in parallel, and merging the answers
// into what the whole query would have answered.
//
// A query is shardable when its root (inside parentheses) is sum, min, max,
// count, group, avg, or topk/bottomk with a number literal for k, with or
// without by/without, over an expression that computes each series from
// one input series alone: selectors, the functions in seriesFuncs,
// arithmetic and comparisons with scalars that select nothing, unary minus
// and subqueries of these. When the expression changes its series at all,
// every selector must name its metric (__name__="…"): two series that
// differ only by the name would collide once it is dropped, an error the
// shards might not see. Anything else (inner aggregations, binary
// operations between vectors, label_replace, absent, histogram_quantile,
// quantile, stddev…) runs whole.
//
// Shard i of n adds the matcher {__query_shard__="<i+1>_of_<n>"} to every
// selector, by editing the query's text so that the positions annotations
// point at stay put (they are mapped back to the original query). The
// querier selects only the series whose labels.StableHash modulo n is i
// (see querier.ShardLabel). Merging follows the engine's aggregation code:
// sums add up the shards' sums with the same Kahan summation, counts add
// up, min/max take the min/max with NaN lost to any number, group is 1,
// avg is the sum of the shards' sums over the sum of their counts (two
// queries per shard), and topk/bottomk keep the k best of each shard's k+1
// best. Series missing from a shard at a step are missing from its part.
//
// The answer is the engine's, bit for bit, except where the engine's own
// answer depends on the order it meets the series in:
//
//   - A sum (or avg) of values that are not exact in float64 is rounded
//     differently when added up by shard; the difference is a few units in
//     the last place. (The engine's own order is the storage's label order
//     for selectors and range functions, but a Go map's for instant-vector
//     functions and operators, so its last digits vary from run to run too.)
//   - avg switches to an incremental mean when the running sum overflows
//     float64 (beyond ±1.8e308); by shard, it overflows at other points.
//
// Where a merge cannot be exact, the query is answered whole instead: when
// a shard answers with native histograms (their sums come back as buckets
// without a schema, which cannot be added as the engine adds them), and
// when topk/bottomk has a tie for the k-th place or min/max a tie between
// +0 and -0 (the engine keeps whichever it met first).
//
// Per-query limits (max fetched series, max samples) apply to each shard
// query on its own.
package querysharding

import (
	"context"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/neocortex-metrics/neocortex/pkg/frontend/queryrange"
)

// Metrics count what query sharding does.
type Metrics struct {
	sharded   prometheus.Counter
	unsharded *prometheus.CounterVec
	shards    prometheus.Counter
}

// NewMetrics registers the query-sharding metrics.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		sharded: f.NewCounter(prometheus.CounterOpts{
			Name: "neocortex_frontend_sharded_queries_total",
			Help: "Range queries answered by merging their shards' answers.",
		}),
		unsharded: f.NewCounterVec(prometheus.CounterOpts{
			Name: "neocortex_frontend_unsharded_queries_total",
			Help: "Range queries answered whole, by reason: disabled, parallel_parts, unparsable, not_shardable, already_sharded, or, after running the shards, native_histograms, ties or unexpected_result.",
		}, []string{"reason"}),
		shards: f.NewCounter(prometheus.CounterOpts{
			Name: "neocortex_frontend_query_shards_total",
			Help: "Shard queries sent downstream.",
		}),
	}
	for _, r := range []string{reasonDisabled, reasonParallelParts, reasonUnparsable, reasonNotShardable, reasonAlreadySharded, reasonHistograms, reasonTies, reasonUnexpected} {
		m.unsharded.WithLabelValues(r)
	}
	return m
}

// Middleware returns the query-sharding middleware. Shard queries go to
// the next handler with sharding disabled in their options.
func Middleware(cfg Config, m *Metrics, logger *slog.Logger) queryrange.Middleware {
	p := parser.NewParser(parser.Options{})
	return func(next queryrange.Handler) queryrange.Handler {
		return &handler{next: next, cfg: cfg, metrics: m, logger: logger, parser: p}
	}
}

type handler struct {
	next    queryrange.Handler
	cfg     Config
	metrics *Metrics
	logger  *slog.Logger
	parser  parser.Parser
}

// Do implements queryrange.Handler.
func (h *handler) Do(ctx context.Context, r *queryrange.Request) (*queryrange.Response, error) {
	if !h.cfg.Enabled || r.Options.ShardingDisabled {
		h.metrics.unsharded.WithLabelValues(reasonDisabled).Inc()
		return h.next.Do(ctx, r)
	}
	if r.Step <= 0 || r.End < r.Start { // the querier says what is wrong
		h.metrics.unsharded.WithLabelValues(reasonNotShardable).Inc()
		return h.next.Do(ctx, r)
	}
	shards := h.cfg.ShardsFor(r.Options.Parallel)
	if shards == 1 && h.cfg.TotalShards > 1 {
		h.metrics.unsharded.WithLabelValues(reasonParallelParts).Inc()
		return h.next.Do(ctx, r)
	}
	pl, reason := newPlan(h.parser, r.Query, shards)
	if pl == nil {
		h.metrics.unsharded.WithLabelValues(reason).Inc()
		return h.next.Do(ctx, r)
	}
	resp, err := h.sharded(ctx, r, pl)
	if reason, ok := isFallback(err); ok {
		h.logger.Debug("answering a query whole", "reason", reason, "query", r.Query)
		h.metrics.unsharded.WithLabelValues(reason).Inc()
		return h.next.Do(ctx, r)
	}
	if err != nil {
		return nil, err
	}
	h.metrics.sharded.Inc()
	return resp, nil
}

// sharded runs the shard queries and merges their answers. The first
// shard query to fail fails the query; the others are canceled.
func (h *handler) sharded(ctx context.Context, r *queryrange.Request, pl *plan) (*queryrange.Response, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	resps := make([][]*queryrange.Response, len(pl.parts))
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		sem      = make(chan struct{}, h.cfg.MaxShardedQueries)
	)
outer:
	for pi, pt := range pl.parts {
		resps[pi] = make([]*queryrange.Response, len(pt.shards))
		for si, sq := range pt.shards {
			if ctx.Err() != nil {
				break outer
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				break outer
			}
			wg.Add(1)
			h.metrics.shards.Inc()
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				sub := r.WithQuery(sq.text)
				sub.Options.ShardingDisabled = true
				resp, err := h.next.Do(ctx, sub)
				if err == nil && resp == nil {
					err = errNoResponse
				}
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					if firstErr == nil {
						firstErr = err
						cancel()
					}
					return
				}
				resps[pi][si] = resp
			}()
		}
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	matrix, err := pl.merge(newGrid(r), resps)
	if err != nil {
		return nil, err
	}
	var warnings, infos annotationSet
	for pi, pt := range pl.parts {
		for si := range pt.shards {
			warnings.add(&pt.shards[si], r.Query, resps[pi][si].Warnings, warningsOmitted)
			infos.add(&pt.shards[si], r.Query, resps[pi][si].Infos, infosOmitted)
		}
	}
	return &queryrange.Response{
		Status:   "success",
		Data:     queryrange.Data{ResultType: model.ValMatrix, Result: matrix},
		Warnings: warnings.lines(warningsOmitted),
		Infos:    infos.lines(infosOmitted),
	}, nil
}
