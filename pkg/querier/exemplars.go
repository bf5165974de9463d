package querier

import (
	"cmp"
	"context"
	"slices"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"

	"github.com/neocortex-metrics/neocortex/pkg/ingester/client"
	"github.com/neocortex-metrics/neocortex/pkg/ingester/ingesterpb"
)

var _ storage.ExemplarQueryable = (*IngesterQueryable)(nil)

// ExemplarQuerier implements storage.ExemplarQueryable over the ingesters.
func (q *IngesterQueryable) ExemplarQuerier(ctx context.Context) (storage.ExemplarQuerier, error) {
	return &exemplarQuerier{ctx: ctx, q: q}, nil
}

type exemplarQuerier struct {
	ctx context.Context
	q   *IngesterQueryable
}

// Select returns the exemplars of the series matching any matcher set,
// merged over the ingesters: each series once, each exemplar once, in
// time order.
func (e *exemplarQuerier) Select(start, end int64, matchers ...[]*labels.Matcher) ([]exemplar.QueryResult, error) {
	req := &ingesterpb.ExemplarQueryRequest{StartMs: start, EndMs: end}
	for _, ms := range matchers {
		req.MatcherSets = append(req.MatcherSets, &ingesterpb.Matchers{Matchers: ingesterpb.ToMatchers(ms)})
	}
	results, _, err := forEachIngester(e.ctx, e.q, nil, func(ctx context.Context, c *client.Client) ([]*ingesterpb.SeriesExemplars, error) {
		resp, err := c.QueryExemplars(ctx, req)
		if err != nil {
			return nil, err
		}
		return resp.Series, nil
	}, nil)
	if err != nil {
		return nil, promql.ErrStorage{Err: err}
	}
	var (
		b      = labels.NewScratchBuilder(0)
		bySer  = map[string]int{}
		out    = []exemplar.QueryResult{}
		seenEx = map[string]map[int64]bool{}
	)
	for _, r := range results {
		for _, s := range r {
			ls := ingesterpb.FromLabels(&b, s.SeriesLabels)
			key := ls.String()
			idx, ok := bySer[key]
			if !ok {
				idx = len(out)
				bySer[key] = idx
				out = append(out, exemplar.QueryResult{SeriesLabels: ls})
				seenEx[key] = map[int64]bool{}
			}
			for _, ex := range s.Exemplars {
				// Replicas hold the same exemplars: one per series and timestamp.
				if seenEx[key][ex.TimestampMs] {
					continue
				}
				seenEx[key][ex.TimestampMs] = true
				out[idx].Exemplars = append(out[idx].Exemplars, exemplar.Exemplar{
					Labels: ingesterpb.FromLabels(&b, ex.Labels), Value: ex.Value, Ts: ex.TimestampMs, HasTs: true,
				})
			}
		}
	}
	for i := range out {
		slices.SortFunc(out[i].Exemplars, func(a, b exemplar.Exemplar) int { return cmp.Compare(a.Ts, b.Ts) })
	}
	slices.SortFunc(out, func(a, b exemplar.QueryResult) int { return labels.Compare(a.SeriesLabels, b.SeriesLabels) })
	return out, nil
}
