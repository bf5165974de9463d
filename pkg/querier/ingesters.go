package querier

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

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

var _ storage.SampleAndChunkQueryable = (*IngesterQueryable)(nil)

// Querier implements storage.Queryable.
func (q *IngesterQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	return &ingesterQuerier{q: q, mint: mint, maxt: maxt}, nil
}

// ChunkQuerier implements storage.ChunkQueryable (remote read streams
// chunks). The merged samples are re-encoded into chunks.
func (q *IngesterQueryable) ChunkQuerier(mint, maxt int64) (storage.ChunkQuerier, error) {
	return chunkQuerier{&ingesterQuerier{q: q, mint: mint, maxt: maxt}}, nil
}

type chunkQuerier struct{ *ingesterQuerier }

func (q chunkQuerier) Select(ctx context.Context, sorted bool, hints *storage.SelectHints, matchers ...*labels.Matcher) storage.ChunkSeriesSet {
	return storage.NewSeriesSetToChunkSet(q.ingesterQuerier.Select(ctx, sorted, hints, matchers...))
}

type ingesterQuerier struct {
	q          *IngesterQueryable
	mint, maxt int64
}

// forEachIngester calls f on every ingester of the read replication set in
// parallel and returns their results, failing when more ingesters fail than
// the replication set tolerates.
func forEachIngester[T any](ctx context.Context, q *IngesterQueryable, f func(context.Context, *client.Client) (T, error)) ([]T, error) {
	tenantID, err := tenant.FromContext(ctx)
	if err != nil {
		return nil, err
	}
	rs, err := q.Ring.GetReplicationSetForOperation(ring.Read)
	if err != nil {
		return nil, fmt.Errorf("find ingesters to query: %w", err)
	}
	ctx = tenant.WithTenant(ctx, tenantID)
	results, err := rs.Do(ctx, 0, func(ctx context.Context, ing *ring.InstanceDesc) (any, error) {
		c, err := q.Clients.GetClientForInstance(*ing)
		if err != nil {
			return nil, fmt.Errorf("connect to ingester %s: %w", ing.Id, err)
		}
		r, err := f(ctx, c.(*client.Client))
		if err != nil {
			return nil, fmt.Errorf("ingester %s: %w", ing.Id, err)
		}
		return r, nil
	})
	if err != nil {
		return nil, fmt.Errorf("query ingesters: %w", err)
	}
	out := make([]T, 0, len(results))
	for _, r := range results {
		out = append(out, r.(T))
	}
	return out, nil
}

// timeRange narrows the querier's range to the hints'.
func (q *ingesterQuerier) timeRange(start, end int64) (int64, int64) {
	return max(q.mint, start), min(q.maxt, end)
}

// Select asks all ingesters and merges their series, removing the samples
// the replicas have in common. With hints.Func "series" only labels are
// fetched.
func (q *ingesterQuerier) Select(ctx context.Context, _ bool, hints *storage.SelectHints, matchers ...*labels.Matcher) storage.SeriesSet {
	mint, maxt := q.mint, q.maxt
	if hints != nil {
		mint, maxt = q.timeRange(hints.Start, hints.End)
	}
	req := &ingesterpb.QueryRequest{StartMs: mint, EndMs: maxt, Matchers: ingesterpb.ToMatchers(matchers)}
	var (
		sets []storage.SeriesSet
		err  error
	)
	if hints != nil && hints.Func == "series" {
		var results [][]storage.Series
		results, err = forEachIngester(ctx, q.q, func(ctx context.Context, c *client.Client) ([]storage.Series, error) {
			return seriesIngester(ctx, c, req)
		})
		for _, r := range results {
			sets = append(sets, &listSeriesSet{series: r, idx: -1})
		}
	} else {
		var results [][]storage.ChunkSeries
		results, err = forEachIngester(ctx, q.q, func(ctx context.Context, c *client.Client) ([]storage.ChunkSeries, error) {
			return queryIngester(ctx, c, req)
		})
		for _, r := range results {
			sets = append(sets, storage.NewSeriesSetFromChunkSeriesSet(&listChunkSeriesSet{series: r, idx: -1}))
		}
	}
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	return storage.NewMergeSeriesSet(sets, 0, storage.ChainedSeriesMerge)
}

// queryIngester reads the whole chunk stream of one ingester into chunk
// series, sorted by labels as the ingester sends them.
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

// seriesIngester reads the labels of one ingester's matching series, as
// series without samples.
func seriesIngester(ctx context.Context, c *client.Client, req *ingesterpb.QueryRequest) ([]storage.Series, error) {
	stream, err := c.Series(ctx, req)
	if err != nil {
		return nil, err
	}
	var (
		out []storage.Series
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
			out = append(out, storage.NewListSeries(ingesterpb.FromLabels(&b, s.Labels), nil))
		}
	}
}

// LabelValues returns the sorted values of label name among the matching
// series, merged over the ingesters.
func (q *ingesterQuerier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, matchers ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	req := &ingesterpb.LabelValuesRequest{Name: name, StartMs: q.mint, EndMs: q.maxt, Matchers: ingesterpb.ToMatchers(matchers), Limit: limitOf(hints)}
	results, err := forEachIngester(ctx, q.q, func(ctx context.Context, c *client.Client) ([]string, error) {
		resp, err := c.LabelValues(ctx, req)
		if err != nil {
			return nil, err
		}
		return resp.Values, nil
	})
	if err != nil {
		return nil, nil, err
	}
	return mergeSorted(results, hints), nil, nil
}

// LabelNames returns the sorted label names of the matching series, merged
// over the ingesters.
func (q *ingesterQuerier) LabelNames(ctx context.Context, hints *storage.LabelHints, matchers ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	req := &ingesterpb.LabelNamesRequest{StartMs: q.mint, EndMs: q.maxt, Matchers: ingesterpb.ToMatchers(matchers), Limit: limitOf(hints)}
	results, err := forEachIngester(ctx, q.q, func(ctx context.Context, c *client.Client) ([]string, error) {
		resp, err := c.LabelNames(ctx, req)
		if err != nil {
			return nil, err
		}
		return resp.Names, nil
	})
	if err != nil {
		return nil, nil, err
	}
	return mergeSorted(results, hints), nil, nil
}

func limitOf(hints *storage.LabelHints) int64 {
	if hints == nil {
		return 0
	}
	return int64(hints.Limit)
}

// mergeSorted merges sorted string lists into one sorted list without
// duplicates, cut to the hints' limit.
func mergeSorted(lists [][]string, hints *storage.LabelHints) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	slices.SortFunc(out, strings.Compare)
	out = slices.Compact(out)
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

type listSeriesSet struct {
	series []storage.Series
	idx    int
}

func (s *listSeriesSet) Next() bool                        { s.idx++; return s.idx < len(s.series) }
func (s *listSeriesSet) At() storage.Series                { return s.series[s.idx] }
func (s *listSeriesSet) Err() error                        { return nil }
func (s *listSeriesSet) Warnings() annotations.Annotations { return nil }
