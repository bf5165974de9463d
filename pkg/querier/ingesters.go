package querier

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/grafana/dskit/ring"
	ringclient "github.com/grafana/dskit/ring/client"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/neocortex-metrics/neocortex/pkg/ingester/client"
	"github.com/neocortex-metrics/neocortex/pkg/ingester/ingesterpb"
	"github.com/neocortex-metrics/neocortex/pkg/tenant"
)

// IngesterRing is the part of the ring the querier reads through.
type IngesterRing interface {
	GetReplicationSetForOperation(op ring.Operation) (ring.ReplicationSet, error)
}

// ClientPool hands out a client per ingester.
type ClientPool interface {
	GetClientForInstance(inst ring.InstanceDesc) (ringclient.PoolClient, error)
}

// IngesterQueryable queries every ingester of the ring for a tenant's series
// and merges the replicas' answers, so each sample appears once. It tolerates
// as many failed ingesters as the replication set allows and fails beyond.
type IngesterQueryable struct {
	Ring    IngesterRing
	Clients ClientPool
}

var _ storage.Queryable = (*IngesterQueryable)(nil)

// Querier implements storage.Queryable.
func (q *IngesterQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	return &ingesterQuerier{q: q, mint: mint, maxt: maxt}, nil
}

type ingesterQuerier struct {
	q          *IngesterQueryable
	mint, maxt int64
}

// Select asks all ingesters and merges their series, removing the samples
// the replicas have in common.
func (q *ingesterQuerier) Select(ctx context.Context, _ bool, hints *storage.SelectHints, matchers ...*labels.Matcher) storage.SeriesSet {
	tenantID, err := tenant.FromContext(ctx)
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	mint, maxt := q.mint, q.maxt
	if hints != nil {
		mint, maxt = max(mint, hints.Start), min(maxt, hints.End)
	}
	rs, err := q.q.Ring.GetReplicationSetForOperation(ring.Read)
	if err != nil {
		return storage.ErrSeriesSet(fmt.Errorf("find ingesters to query: %w", err))
	}
	req := &ingesterpb.QueryRequest{StartMs: mint, EndMs: maxt, Matchers: ingesterpb.ToMatchers(matchers)}
	ctx = tenant.WithTenant(ctx, tenantID)
	results, err := rs.Do(ctx, 0, func(ctx context.Context, ing *ring.InstanceDesc) (any, error) {
		c, err := q.q.Clients.GetClientForInstance(*ing)
		if err != nil {
			return nil, fmt.Errorf("connect to ingester %s: %w", ing.Id, err)
		}
		return queryIngester(ctx, c.(*client.Client), req)
	})
	if err != nil {
		return storage.ErrSeriesSet(fmt.Errorf("query ingesters: %w", err))
	}
	sets := make([]storage.SeriesSet, 0, len(results))
	for _, r := range results {
		sets = append(sets, storage.NewSeriesSetFromChunkSeriesSet(&listChunkSeriesSet{series: r.([]storage.ChunkSeries), idx: -1}))
	}
	return storage.NewMergeSeriesSet(sets, 0, storage.ChainedSeriesMerge)
}

// queryIngester reads the whole stream of one ingester into chunk series,
// sorted by labels as the ingester sends them.
func queryIngester(ctx context.Context, c *client.Client, req *ingesterpb.QueryRequest) ([]storage.ChunkSeries, error) {
	stream, err := c.QueryStream(ctx, req)
	if err != nil {
		return nil, err
	}
	var (
		out []storage.ChunkSeries
		b   labels.ScratchBuilder
	)
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		for _, s := range resp.Series {
			metas := make([]chunks.Meta, 0, len(s.Chunks))
			for _, c := range s.Chunks {
				chk, err := chunkenc.FromData(chunkenc.Encoding(c.Encoding), c.Data)
				if err != nil {
					return nil, fmt.Errorf("decode chunk: %w", err)
				}
				metas = append(metas, chunks.Meta{MinTime: c.MinTimeMs, MaxTime: c.MaxTimeMs, Chunk: chk})
			}
			out = append(out, &storage.ChunkSeriesEntry{
				Lset: ingesterpb.FromLabels(&b, s.Labels),
				ChunkIteratorFn: func(chunks.Iterator) chunks.Iterator {
					return storage.NewListChunkSeriesIterator(metas...)
				},
			})
		}
	}
}

// LabelValues returns the sorted values of label name among the series that
// match. It reads the series themselves; a dedicated ingester RPC that reads
// the index only comes with the full query API.
func (q *ingesterQuerier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, matchers ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	if len(matchers) == 0 {
		matchers = []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, name, ".+")}
	}
	values := map[string]struct{}{}
	err := q.eachSeries(ctx, matchers, func(ls labels.Labels) {
		if v := ls.Get(name); v != "" {
			values[v] = struct{}{}
		}
	})
	return sortedLimited(values, hints), nil, err
}

// LabelNames returns the sorted label names of the series that match.
func (q *ingesterQuerier) LabelNames(ctx context.Context, hints *storage.LabelHints, matchers ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	if len(matchers) == 0 {
		matchers = []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, labels.MetricName, ".+")}
	}
	names := map[string]struct{}{}
	err := q.eachSeries(ctx, matchers, func(ls labels.Labels) {
		ls.Range(func(l labels.Label) { names[l.Name] = struct{}{} })
	})
	return sortedLimited(names, hints), nil, err
}

func (q *ingesterQuerier) eachSeries(ctx context.Context, matchers []*labels.Matcher, f func(labels.Labels)) error {
	ss := q.Select(ctx, false, nil, matchers...)
	for ss.Next() {
		f(ss.At().Labels())
	}
	return ss.Err()
}

func sortedLimited(set map[string]struct{}, hints *storage.LabelHints) []string {
	out := slices.Sorted(maps.Keys(set))
	if hints != nil && hints.Limit > 0 && len(out) > hints.Limit {
		out = out[:hints.Limit]
	}
	return out
}

func (q *ingesterQuerier) Close() error { return nil }

type listChunkSeriesSet struct {
	series []storage.ChunkSeries
	idx    int
}

func (s *listChunkSeriesSet) Next() bool                        { s.idx++; return s.idx < len(s.series) }
func (s *listChunkSeriesSet) At() storage.ChunkSeries           { return s.series[s.idx] }
func (s *listChunkSeriesSet) Err() error                        { return nil }
func (s *listChunkSeriesSet) Warnings() annotations.Annotations { return nil }
