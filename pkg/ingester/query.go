package ingester

import (
	"context"
	"fmt"
	"net/http"

	"github.com/grafana/dskit/httpgrpc"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunks"

	"github.com/neocortex-metrics/neocortex/pkg/ingester/ingesterpb"
	"github.com/neocortex-metrics/neocortex/pkg/tenant"
)

// queryStreamBatchSize is the number of series sent per stream message.
const queryStreamBatchSize = 128

// QueryStream streams the tenant's series that match the request as the
// TSDB's own chunks (the open head chunk is copied by the TSDB), sorted by
// labels. Chunks may reach outside the requested range; readers trim. A
// request with a shard gets the series of that hash shard only.
func (i *Ingester) QueryStream(req *ingesterpb.QueryRequest, stream ingesterpb.Ingester_QueryStreamServer) error {
	ctx := stream.Context()
	if err := checkShard(req); err != nil {
		return err
	}
	db, matchers, err := i.readRequest(ctx, req.Matchers)
	if err != nil || db == nil {
		return err // no TSDB: the tenant has no data here
	}
	defer db.done()
	batch := make([]*ingesterpb.Series, 0, queryStreamBatchSize)
	send := func() error {
		if len(batch) == 0 {
			return nil
		}
		// Send serializes the batch: the chunk bytes need only live until then.
		err := stream.Send(&ingesterpb.QueryStreamResponse{Series: batch})
		batch = batch[:0]
		return err
	}
	return forEachChunkSeries(ctx, db, req, matchers, func(ls labels.Labels, metas []chunks.Meta) error {
		out := &ingesterpb.Series{Labels: ingesterpb.ToLabels(ls), Chunks: make([]*ingesterpb.Chunk, 0, len(metas))}
		for _, m := range metas {
			out.Chunks = append(out.Chunks, &ingesterpb.Chunk{
				MinTimeMs: m.MinTime,
				MaxTimeMs: m.MaxTime,
				Encoding:  uint32(m.Chunk.Encoding()),
				Data:      m.Chunk.Bytes(),
			})
		}
		batch = append(batch, out)
		if len(batch) < queryStreamBatchSize {
			return nil
		}
		return send()
	}, send, chunkReadOptions{})
}

// QueryChunks calls f with each of the tenant's series that match, sorted by
// labels, and its chunks: the work of QueryStream without gRPC, for a
// querier in the same process. The labels may be kept; the chunks' bytes
// are valid only during the call. The chunks come whole: they may hold
// samples outside the request's range, which the caller must drop.
func (i *Ingester) QueryChunks(ctx context.Context, tenantID string, req *ingesterpb.QueryRequest, f func(labels.Labels, []chunks.Meta) error) error {
	if err := checkShard(req); err != nil {
		return err
	}
	matchers, err := ingesterpb.FromMatchers(req.Matchers)
	if err != nil {
		return httpgrpc.Errorf(http.StatusBadRequest, "%s", err)
	}
	db, err := i.useDB(tenantID)
	if err != nil || db == nil {
		return err
	}
	defer db.done()
	// f is done with the chunks when it returns, and the querier drops
	// the samples outside the range itself.
	return forEachChunkSeries(ctx, db, req, matchers, f, nil, chunkReadOptions{reuse: true, untrimmed: true})
}

// chunkReadOptions say how the reader of forEachChunkSeries takes chunks.
type chunkReadOptions struct {
	// reuse: f is done with each series' chunks when it returns, so one
	// chunk iterator serves all series.
	reuse bool
	// untrimmed: chunks come whole, with any samples outside the request's
	// range, which the reader drops. Trimming them here would re-encode
	// every open head chunk (its end is not final), on every query.
	untrimmed bool
}

// forEachChunkSeries calls f for each matching series that has chunks in
// the request's range (a range inside a gap leaves a series none), in label
// order unless the request says otherwise, then end (if not nil) while the
// chunks are still valid: they are not once it returns.
func forEachChunkSeries(ctx context.Context, db *userDB, req *ingesterpb.QueryRequest, matchers []*labels.Matcher, f func(labels.Labels, []chunks.Meta) error, end func() error, o chunkReadOptions) error {
	q, err := db.ChunkQuerier(req.StartMs, req.EndMs)
	if err != nil {
		return fmt.Errorf("open chunk querier: %w", err)
	}
	defer q.Close()
	hints := shardHints(req, "")
	if o.untrimmed {
		hints = &storage.SelectHints{Start: req.StartMs, End: req.EndMs, ShardIndex: req.ShardIndex, ShardCount: req.ShardCount, DisableTrimming: true}
	}
	ss := q.Select(ctx, !req.Unsorted, hints, matchers...)
	var (
		metas []chunks.Meta
		it    chunks.Iterator
	)
	for ss.Next() {
		s := ss.At()
		// Without reuse, a fresh iterator: a reused one may recycle the
		// buffers of chunks still waiting to be sent.
		if !o.reuse {
			it = nil
		}
		it = s.Iterator(it)
		metas = metas[:0]
		for it.Next() {
			metas = append(metas, it.At())
		}
		if err := it.Err(); err != nil {
			return fmt.Errorf("iterate chunks: %w", err)
		}
		if len(metas) == 0 {
			continue
		}
		if err := f(s.Labels(), metas); err != nil {
			return err
		}
	}
	if err := ss.Err(); err != nil {
		return fmt.Errorf("select series: %w", err)
	}
	if end != nil {
		return end()
	}
	return nil
}

// Series streams the labels of the tenant's matching series, from the index.
func (i *Ingester) Series(req *ingesterpb.QueryRequest, stream ingesterpb.Ingester_SeriesServer) error {
	ctx := stream.Context()
	if err := checkShard(req); err != nil {
		return err
	}
	db, matchers, err := i.readRequest(ctx, req.Matchers)
	if err != nil || db == nil {
		return err
	}
	defer db.done()
	q, err := db.Querier(req.StartMs, req.EndMs)
	if err != nil {
		return fmt.Errorf("open querier: %w", err)
	}
	defer q.Close()
	// Func "series" tells the TSDB that only labels are wanted.
	ss := q.Select(ctx, true, shardHints(req, "series"), matchers...)
	batch := make([]*ingesterpb.Series, 0, queryStreamBatchSize)
	for ss.Next() {
		batch = append(batch, &ingesterpb.Series{Labels: ingesterpb.ToLabels(ss.At().Labels())})
		if len(batch) == queryStreamBatchSize {
			if err := stream.Send(&ingesterpb.SeriesResponse{Series: batch}); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	if err := ss.Err(); err != nil {
		return fmt.Errorf("select series: %w", err)
	}
	if len(batch) > 0 {
		return stream.Send(&ingesterpb.SeriesResponse{Series: batch})
	}
	return nil
}

// LabelNames returns the label names of the tenant's matching series.
func (i *Ingester) LabelNames(ctx context.Context, req *ingesterpb.LabelNamesRequest) (*ingesterpb.LabelNamesResponse, error) {
	db, matchers, err := i.readRequest(ctx, req.Matchers)
	if err != nil || db == nil {
		return &ingesterpb.LabelNamesResponse{}, err
	}
	defer db.done()
	q, err := db.Querier(req.StartMs, req.EndMs)
	if err != nil {
		return nil, fmt.Errorf("open querier: %w", err)
	}
	defer q.Close()
	names, _, err := q.LabelNames(ctx, &storage.LabelHints{Limit: int(req.Limit)}, matchers...)
	if err != nil {
		return nil, fmt.Errorf("label names: %w", err)
	}
	return &ingesterpb.LabelNamesResponse{Names: names}, nil
}

// LabelValues returns the values of one label among the tenant's matching series.
func (i *Ingester) LabelValues(ctx context.Context, req *ingesterpb.LabelValuesRequest) (*ingesterpb.LabelValuesResponse, error) {
	db, matchers, err := i.readRequest(ctx, req.Matchers)
	if err != nil || db == nil {
		return &ingesterpb.LabelValuesResponse{}, err
	}
	defer db.done()
	q, err := db.Querier(req.StartMs, req.EndMs)
	if err != nil {
		return nil, fmt.Errorf("open querier: %w", err)
	}
	defer q.Close()
	values, _, err := q.LabelValues(ctx, req.Name, &storage.LabelHints{Limit: int(req.Limit)}, matchers...)
	if err != nil {
		return nil, fmt.Errorf("label values: %w", err)
	}
	return &ingesterpb.LabelValuesResponse{Values: values}, nil
}

// checkShard refuses a shard outside the shard count.
func checkShard(req *ingesterpb.QueryRequest) error {
	if req.ShardCount > 0 && req.ShardIndex >= req.ShardCount {
		return httpgrpc.Errorf(http.StatusBadRequest, "shard index %d is not below the shard count %d", req.ShardIndex, req.ShardCount)
	}
	return nil
}

// shardHints are the select hints of a request: nil (the querier's range)
// for a plain chunk query, the shard for the TSDB's sharded postings
// (tsdb.Options.EnableSharding) otherwise.
func shardHints(req *ingesterpb.QueryRequest, fn string) *storage.SelectHints {
	if req.ShardCount == 0 && fn == "" {
		return nil
	}
	return &storage.SelectHints{Start: req.StartMs, End: req.EndMs, Func: fn, ShardIndex: req.ShardIndex, ShardCount: req.ShardCount}
}

// readRequest resolves the tenant's TSDB, in use until done (nil when the tenant has no data
// here) and the request's matchers.
func (i *Ingester) readRequest(ctx context.Context, ms []*ingesterpb.LabelMatcher) (*userDB, []*labels.Matcher, error) {
	tenantID, err := tenant.FromContext(ctx)
	if err != nil {
		return nil, nil, httpgrpc.Errorf(http.StatusUnauthorized, "%s", err)
	}
	matchers, err := ingesterpb.FromMatchers(ms)
	if err != nil {
		return nil, nil, httpgrpc.Errorf(http.StatusBadRequest, "%s", err)
	}
	db, err := i.useDB(tenantID)
	return db, matchers, err
}

// QueryExemplars returns the exemplars of the tenant's series that match any
// of the matcher sets.
func (i *Ingester) QueryExemplars(ctx context.Context, req *ingesterpb.ExemplarQueryRequest) (*ingesterpb.ExemplarQueryResponse, error) {
	tenantID, err := tenant.FromContext(ctx)
	if err != nil {
		return nil, httpgrpc.Errorf(http.StatusUnauthorized, "%s", err)
	}
	sets := make([][]*labels.Matcher, 0, len(req.MatcherSets))
	for _, ms := range req.MatcherSets {
		m, err := ingesterpb.FromMatchers(ms.Matchers)
		if err != nil {
			return nil, httpgrpc.Errorf(http.StatusBadRequest, "%s", err)
		}
		sets = append(sets, m)
	}
	db, err := i.useDB(tenantID)
	if err != nil || db == nil {
		return &ingesterpb.ExemplarQueryResponse{}, err
	}
	defer db.done()
	q, err := db.ExemplarQuerier(ctx)
	if err != nil {
		return nil, fmt.Errorf("open exemplar querier: %w", err)
	}
	results, err := q.Select(req.StartMs, req.EndMs, sets...)
	if err != nil {
		return nil, fmt.Errorf("select exemplars: %w", err)
	}
	resp := &ingesterpb.ExemplarQueryResponse{Series: make([]*ingesterpb.SeriesExemplars, 0, len(results))}
	for _, r := range results {
		se := &ingesterpb.SeriesExemplars{SeriesLabels: ingesterpb.ToLabels(r.SeriesLabels)}
		for _, e := range r.Exemplars {
			se.Exemplars = append(se.Exemplars, &ingesterpb.Exemplar{Labels: ingesterpb.ToLabels(e.Labels), Value: e.Value, TimestampMs: e.Ts})
		}
		resp.Series = append(resp.Series, se)
	}
	return resp, nil
}
