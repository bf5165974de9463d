package querier

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grafana/dskit/ring"
	ringclient "github.com/grafana/dskit/ring/client"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/neocortex-metrics/neocortex/pkg/ingester/client"
	"github.com/neocortex-metrics/neocortex/pkg/ingester/ingesterpb"
	"github.com/neocortex-metrics/neocortex/pkg/limits"
	"github.com/neocortex-metrics/neocortex/pkg/tenant"
	"github.com/neocortex-metrics/neocortex/pkg/tenantmetrics"
)

// IngesterRing is the part of the ring the querier reads through.
type IngesterRing interface {
	GetReplicationSetForOperation(op ring.Operation) (ring.ReplicationSet, error)
	GetAllHealthy(op ring.Operation) (ring.ReplicationSet, error)
	ReplicationFactor() int
	InstancesCount() int
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
	// Limits are the per-tenant query limits; nil means none.
	Limits *limits.Overrides
	// Metrics count what queries fetch; nil counts nothing.
	Metrics *FetchMetrics
	// Now is the clock max_query_lookback is measured against.
	Now func() time.Time
	// Local, if set, is the ingester of this process: it is read directly,
	// not over gRPC.
	Local LocalIngester
}

// LocalIngester is an ingester in the querier's own process.
type LocalIngester interface {
	// Addr is the address the ingester advertises in the ring.
	Addr() string
	// QueryChunks calls f with each matching series of the request's
	// shard and its chunks, in label order; the labels may be kept, the
	// chunk bytes only during f. The chunks may hold samples outside the
	// request's range.
	QueryChunks(ctx context.Context, tenantID string, req *ingesterpb.QueryRequest, f func(labels.Labels, []chunks.Meta) error) error
}

// FetchMetrics count what queries fetch, per tenant and source
// (ingesters or store-gateways).
type FetchMetrics struct {
	series, chunks, bytes *prometheus.CounterVec
	// forget drops the series of tenants that stopped querying.
	forget *tenantmetrics.Forgetter
}

// NewFetchMetrics registers the fetch counters.
func NewFetchMetrics(reg prometheus.Registerer) *FetchMetrics {
	f := promauto.With(reg)
	m := &FetchMetrics{
		series: f.NewCounterVec(prometheus.CounterOpts{Name: "neocortex_querier_fetched_series_total", Help: "Series fetched (after merging replicas), by source: ingesters or store-gateways."}, []string{"tenant", "source"}),
		chunks: f.NewCounterVec(prometheus.CounterOpts{Name: "neocortex_querier_fetched_chunks_total", Help: "Chunks fetched (every replica's), by source."}, []string{"tenant", "source"}),
		bytes:  f.NewCounterVec(prometheus.CounterOpts{Name: "neocortex_querier_fetched_chunk_bytes_total", Help: "Chunk bytes fetched (every replica's), by source."}, []string{"tenant", "source"}),
	}
	m.forget = tenantmetrics.New(tenantmetrics.DefaultForgetAfter, m.series.MetricVec, m.chunks.MetricVec, m.bytes.MetricVec)
	return m
}

// Fetch sources, the values of the metrics' source label.
const (
	sourceIngesters     = "ingesters"
	sourceStoreGateways = "store-gateways"
)

// Stats is what one request fetched; the API puts it in the request context.
type Stats struct {
	Series, Chunks, Bytes atomic.Int64
}

type statsKey struct{}

// WithStats returns a context that collects what its queries fetch.
func WithStats(ctx context.Context, s *Stats) context.Context {
	return context.WithValue(ctx, statsKey{}, s)
}

// StatsFromContext returns the stats collector of ctx, or nil.
func StatsFromContext(ctx context.Context) *Stats {
	s, _ := ctx.Value(statsKey{}).(*Stats)
	return s
}

// LimitError is a query refused by a per-tenant query limit.
type LimitError struct{ msg string }

func (e *LimitError) Error() string { return e.msg }

func limitErrorf(format string, args ...any) *LimitError {
	return &LimitError{msg: fmt.Sprintf(format, args...)}
}

var _ storage.SampleAndChunkQueryable = (*IngesterQueryable)(nil)

// Querier implements storage.Queryable.
func (q *IngesterQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	return &ingesterQuerier{q: q, mint: mint, maxt: maxt, fetched: &fetched{}}, nil
}

// ChunkQuerier implements storage.ChunkQueryable (remote read streams
// chunks). The merged samples are re-encoded into chunks.
func (q *IngesterQueryable) ChunkQuerier(mint, maxt int64) (storage.ChunkQuerier, error) {
	return seriesToChunkQuerier{&ingesterQuerier{q: q, mint: mint, maxt: maxt, fetched: &fetched{}}}, nil
}

type ingesterQuerier struct {
	q          *IngesterQueryable
	mint, maxt int64
	fetched    *fetched // by all Selects of one query

	mu   sync.Mutex
	held []seriesList // the Selects' answers, released at Close
}

// fetched is what one query has fetched so far.
type fetched struct {
	series, bytes atomic.Int64
}

func limitsFor(o *limits.Overrides, tenantID string) *limits.Limits {
	if o == nil {
		return &limits.Limits{}
	}
	return o.For(tenantID)
}

// checkRange applies max_query_length to the whole query [qmint, qmaxt] and
// max_query_lookback to [mint, maxt]; ok false means nothing is left to read.
func checkRange(lim *limits.Limits, qmint, qmaxt, mint, maxt int64, now func() time.Time) (int64, int64, bool, error) {
	if l := lim.MaxQueryLength; l > 0 && qmaxt-qmint > l.Milliseconds() {
		return 0, 0, false, limitErrorf("the query time range of %s is longer than the limit of %s (max_query_length)",
			time.Duration(qmaxt-qmint)*time.Millisecond, l)
	}
	if l := lim.MaxQueryLookback; l > 0 {
		if now == nil {
			now = time.Now
		}
		mint = max(mint, now().Add(-l).UnixMilli())
	}
	return mint, maxt, mint <= maxt, nil
}

// account adds one Select's fetches from source to the query's and checks
// the limits, which apply to each source on its own.
func account(ctx context.Context, m *FetchMetrics, f *fetched, source, tenantID string, lim *limits.Limits, series, chunks, bytes int) error {
	if st := StatsFromContext(ctx); st != nil {
		st.Series.Add(int64(series))
		st.Chunks.Add(int64(chunks))
		st.Bytes.Add(int64(bytes))
	}
	if m != nil {
		m.forget.Seen(tenantID)
		m.series.WithLabelValues(tenantID, source).Add(float64(series))
		m.chunks.WithLabelValues(tenantID, source).Add(float64(chunks))
		m.bytes.WithLabelValues(tenantID, source).Add(float64(bytes))
	}
	totalSeries := f.series.Add(int64(series))
	totalBytes := f.bytes.Add(int64(bytes))
	if l := lim.MaxFetchedSeriesPerQuery; l > 0 && totalSeries > int64(l) {
		return limitErrorf("the query fetched %d series, more than the limit of %d (max_fetched_series_per_query)", totalSeries, l)
	}
	if l := lim.MaxFetchedChunkBytesPerQuery; l > 0 && totalBytes > int64(l) {
		return limitErrorf("the query fetched %d bytes of chunks, more than the limit of %d (max_fetched_chunk_bytes_per_query)", totalBytes, l)
	}
	return nil
}

// forEachIngester calls f on every ingester of the read replication set in
// parallel and returns their results, failing when more ingesters fail than
// the replication set tolerates.
//
// local, if not nil, reads the in-process ingester instead of f.
// rs is the replication set to ask; nil means the ring's current one.
//
// Beyond the failures the replication set allows, an answer is still
// given, with a warning, while every series keeps at least one replica
// among the ingesters that answered (fewer than RF failed): samples that
// reached only the failed ones may be missing. Beyond that it is an error.
func forEachIngester[T any](ctx context.Context, q *IngesterQueryable, rs *readSet, f func(context.Context, *client.Client) (T, error), local func(context.Context, string) (T, error)) ([]T, string, error) {
	tenantID, err := tenant.FromContext(ctx)
	if err != nil {
		return nil, "", err
	}
	if rs == nil {
		if rs, err = q.readSet(); err != nil {
			return nil, "", err
		}
	}
	ctx = tenant.WithTenant(ctx, tenantID)
	ask := func(ing *ring.InstanceDesc) (T, error) {
		if local != nil && q.Local != nil && ing.Addr == q.Local.Addr() {
			return local(ctx, tenantID)
		}
		var zero T
		c, err := q.Clients.GetClientForInstance(*ing)
		if err != nil {
			return zero, fmt.Errorf("connect to ingester %s: %w", ing.Id, err)
		}
		r, err := f(ctx, c.(*client.Client))
		if err != nil {
			return zero, fmt.Errorf("ingester %s: %w", ing.Id, err)
		}
		return r, nil
	}
	// Every ingester is waited for, not just a quorum: a sample whose write
	// reached only part of its replicas (a quorum, while another was slow or
	// down; or before the ring changed) is still found on the others.
	type answer struct {
		v    T
		err  error
		zone string
	}
	ch := make(chan answer, len(rs.Instances))
	for i := range rs.Instances {
		go func(ing *ring.InstanceDesc) {
			v, err := ask(ing)
			ch <- answer{v: v, err: err, zone: ing.Zone}
		}(&rs.Instances[i])
	}
	var (
		out         = make([]T, 0, len(rs.Instances))
		failures    int
		failedZones = map[string]struct{}{}
		lastErr     error
	)
	for range rs.Instances {
		a := <-ch
		if a.err != nil {
			failures++
			failedZones[a.zone] = struct{}{}
			lastErr = a.err
			continue
		}
		out = append(out, a.v)
	}
	lost, allowed := failures, rs.MaxErrors
	if rs.MaxUnavailableZones > 0 {
		lost, allowed = len(failedZones), rs.MaxUnavailableZones
	}
	switch {
	case lost <= allowed:
		return out, rs.warning, nil
	case lost < q.Ring.ReplicationFactor() && len(out) > 0:
		return out, fmt.Sprintf("%d of %d ingesters failed (%v): samples written only to them may be missing", failures, len(rs.Instances), lastErr), nil
	}
	return nil, "", fmt.Errorf("query ingesters: %d of %d failed, more than the %d the replication allows: %w",
		failures, len(rs.Instances), allowed, lastErr)
}

// readSet is the ingesters a read asks, with a warning when the ring has
// fewer healthy ingesters than a quorum.
type readSet struct {
	ring.ReplicationSet
	warning string
}

// readSet is the ring's read replication set. When too many ingesters are
// unhealthy for a quorum, it is every healthy one (none may fail), with a
// warning: every series keeps a replica there as long as fewer than RF are
// gone, but samples acknowledged by the others only may be missing.
func (q *IngesterQueryable) readSet() (*readSet, error) {
	rs, err := q.Ring.GetReplicationSetForOperation(ring.Read)
	if err == nil {
		return &readSet{ReplicationSet: rs}, nil
	}
	all, allErr := q.Ring.GetAllHealthy(ring.Read)
	if allErr != nil || len(all.Instances) == 0 || q.Ring.InstancesCount()-len(all.Instances) >= q.Ring.ReplicationFactor() {
		return nil, fmt.Errorf("find ingesters to query: %w", err)
	}
	all.MaxErrors, all.MaxUnavailableZones = 0, 0
	return &readSet{ReplicationSet: all, warning: fmt.Sprintf("reading from the %d healthy ingesters only (%v): samples written only to the others may be missing", len(all.Instances), err)}, nil
}

// selectPlan is what a Select reads: the tenant, its limits, the shard
// and the time range left after the limits.
type selectPlan struct {
	tenantID   string
	lim        *limits.Limits
	hints      *storage.SelectHints
	matchers   []*labels.Matcher
	shard      Shard
	mint, maxt int64
}

// planSelect resolves a Select over a querier of [qmint, qmaxt]: the
// tenant, the shard matcher, the hints' range and the query-range limits.
// ok false means nothing is left to read.
func planSelect(ctx context.Context, o *limits.Overrides, qmint, qmaxt int64, hints *storage.SelectHints, matchers []*labels.Matcher, now func() time.Time) (selectPlan, bool, error) {
	tenantID, err := tenant.FromContext(ctx)
	if err != nil {
		return selectPlan{}, false, err
	}
	hints, matchers, shard, err := selectShard(hints, qmint, qmaxt, matchers)
	if err != nil {
		return selectPlan{}, false, err
	}
	lim := limitsFor(o, tenantID)
	mint, maxt := qmint, qmaxt
	if hints != nil {
		mint, maxt = max(qmint, hints.Start), min(qmaxt, hints.End)
	}
	mint, maxt, ok, err := checkRange(lim, qmint, qmaxt, mint, maxt, now)
	if err != nil || !ok {
		return selectPlan{}, false, err
	}
	return selectPlan{tenantID: tenantID, lim: lim, hints: hints, matchers: matchers, shard: shard, mint: mint, maxt: maxt}, true, nil
}

// Select asks all ingesters and merges their series, removing the samples
// the replicas have in common. With hints.Func "series" only labels are
// fetched. A shard matcher (see ShardLabel) is passed to the ingesters as
// the request's shard, and the series of other shards an ingester still
// sends (an older version) are dropped.
func (q *ingesterQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, matchers ...*labels.Matcher) storage.SeriesSet {
	p, ok, err := planSelect(ctx, q.q.Limits, q.mint, q.maxt, hints, matchers, q.q.Now)
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	if !ok {
		return storage.EmptySeriesSet()
	}
	tenantID, lim, hints, matchers, shard, mint, maxt := p.tenantID, p.lim, p.hints, p.matchers, p.shard, p.mint, p.maxt
	rs, err := q.q.readSet()
	if err != nil {
		return storage.ErrSeriesSet(promql.ErrStorage{Err: err})
	}
	// Merging replicas needs sorted series; one ingester's answer does not
	// unless the caller wants it (sorting all of a head's series is costly).
	req := &ingesterpb.QueryRequest{StartMs: mint, EndMs: maxt, Matchers: ingesterpb.ToMatchers(matchers),
		Unsorted: !sortSeries && len(rs.Instances) == 1, ShardIndex: shard.Index, ShardCount: shard.Count}
	var sets []storage.SeriesSet
	unique := map[uint64]struct{}{}
	chunksFetched, bytesFetched, uniqueSeries := 0, 0, 0
	var warning string
	if hints != nil && hints.Func == "series" {
		results, w, err := forEachIngester(ctx, q.q, rs, func(ctx context.Context, c *client.Client) ([]storage.Series, error) {
			return seriesIngester(ctx, c, req)
		}, nil)
		if err != nil {
			return storage.ErrSeriesSet(promql.ErrStorage{Err: err})
		}
		warning = w
		for _, r := range results {
			if shard.Count > 0 {
				r = slices.DeleteFunc(r, func(s storage.Series) bool { return !shard.Contains(s.Labels()) })
			}
			uniqueSeries += len(r)
			if len(results) > 1 {
				for _, s := range r {
					unique[s.Labels().Hash()] = struct{}{}
				}
			}
			sets = append(sets, &listSeriesSet{series: r, idx: -1})
		}
	} else {
		results, w, err := forEachIngester(ctx, q.q, rs, func(ctx context.Context, c *client.Client) (seriesList, error) {
			return queryIngester(ctx, c, req)
		}, func(ctx context.Context, tenantID string) (seriesList, error) {
			return queryLocal(ctx, q.q.Local, tenantID, req)
		})
		if err != nil {
			return storage.ErrSeriesSet(promql.ErrStorage{Err: err})
		}
		q.mu.Lock()
		q.held = append(q.held, results...)
		q.mu.Unlock()
		warning = w
		for _, r := range results {
			n := 0
			r.filter(func(s *fetchedSeries) bool {
				if !r.inShard && !shard.Contains(s.lset) {
					return false
				}
				if len(results) > 1 {
					unique[s.lset.Hash()] = struct{}{}
				}
				chunksFetched += len(s.metas)
				bytesFetched += s.bytes
				n++
				return true
			})
			uniqueSeries += n
			if req.Unsorted && wantsPresort(hints, n) {
				sets = append(sets, sortedSeriesSet(r, n))
				continue
			}
			sets = append(sets, newFetchedSeriesSet(r))
		}
	}
	// One ingester's answer holds each series once; replicas' answers
	// are counted by their distinct labels.
	if len(sets) > 1 {
		uniqueSeries = len(unique)
	}
	if err := account(ctx, q.q.Metrics, q.fetched, sourceIngesters, tenantID, lim, uniqueSeries, chunksFetched, bytesFetched); err != nil {
		return storage.ErrSeriesSet(err)
	}
	var merged storage.SeriesSet
	if len(sets) == 1 {
		merged = sets[0]
	} else {
		merged = storage.NewMergeSeriesSet(sets, 0, storage.ChainedSeriesMerge)
	}
	if warning != "" {
		return &warnedSeriesSet{SeriesSet: merged, warning: errors.New(warning)}
	}
	return merged
}

// queryIngester reads the whole chunk stream of one ingester into chunk
// series, sorted by labels as the ingester sends them.
func queryIngester(ctx context.Context, c *client.Client, req *ingesterpb.QueryRequest) (seriesList, error) {
	stream, err := c.QueryStream(ctx, req)
	if err != nil {
		return seriesList{}, err
	}
	var (
		out seriesList
		b   = labels.NewScratchBuilder(0)
	)
	err = recvAll(stream.Recv, func(resp *ingesterpb.QueryStreamResponse) error {
		for _, s := range resp.Series {
			if len(s.Chunks) == 0 {
				continue // a series without samples in the range is none
			}
			metas := make([]chunks.Meta, 0, len(s.Chunks))
			for _, c := range s.Chunks {
				chk, err := chunkenc.FromData(chunkenc.Encoding(c.Encoding), c.Data)
				if err != nil {
					return fmt.Errorf("decode chunk: %w", err)
				}
				metas = append(metas, chunks.Meta{MinTime: c.MinTimeMs, MaxTime: c.MaxTimeMs, Chunk: chk})
			}
			out.add(newFetchedSeries(ingesterpb.FromLabels(&b, s.Labels), metas))
		}
		return nil
	})
	return out, err
}

// queryLocal reads the in-process ingester, copying each chunk's bytes
// (they are the TSDB's only while its querier is open) into pooled slabs,
// as the chunk metas and XOR chunks: one allocation for many series. The
// labels are the ingester's to give (LocalIngester.QueryChunks).
func queryLocal(ctx context.Context, l LocalIngester, tenantID string, req *ingesterpb.QueryRequest) (seriesList, error) {
	var (
		out   seriesList
		bytes []byte
		metas []chunks.Meta
		xors  []chunkenc.XORChunk
	)
	err := l.QueryChunks(ctx, tenantID, req, func(ls labels.Labels, ms []chunks.Meta) error {
		if cap(metas)-len(metas) < len(ms) {
			metas = take(&metasPool, &out.slabs.metas, len(ms))
		}
		own := metas[len(metas) : len(metas)+len(ms) : len(metas)+len(ms)]
		metas = metas[:len(metas)+len(ms)]
		for i, m := range ms {
			src := m.Chunk.Bytes()
			if cap(bytes)-len(bytes) < len(src) {
				bytes = take(&bytesPool, &out.slabs.bytes, len(src))
			}
			data := append(bytes[len(bytes):len(bytes):len(bytes)+len(src)], src...)
			bytes = bytes[:len(bytes)+len(src)]
			var chk chunkenc.Chunk
			if m.Chunk.Encoding() == chunkenc.EncXOR {
				if len(xors) == cap(xors) {
					xors = take(&xorChunkPool, &out.slabs.xors, 1)
				}
				xors = xors[:len(xors)+1]
				x := &xors[len(xors)-1]
				x.Reset(data)
				chk = x
			} else {
				var err error
				if chk, err = chunkenc.FromData(m.Chunk.Encoding(), data); err != nil {
					return fmt.Errorf("copy chunk: %w", err)
				}
			}
			own[i] = chunks.Meta{MinTime: m.MinTime, MaxTime: m.MaxTime, Chunk: chk}
		}
		fs := newFetchedSeries(ls, own)
		fs.mint, fs.maxt = req.StartMs, req.EndMs // the chunks are whole
		out.add(fs)
		return nil
	})
	if err != nil {
		out.release()
	}
	out.inShard = true
	return out, err
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
		b   = labels.NewScratchBuilder(0)
	)
	err = recvAll(stream.Recv, func(resp *ingesterpb.SeriesResponse) error {
		for _, s := range resp.Series {
			out = append(out, storage.NewListSeries(ingesterpb.FromLabels(&b, s.Labels), nil))
		}
		return nil
	})
	return out, err
}

// recvAll hands every message of a gRPC stream to f, until the stream ends.
func recvAll[R any](recv func() (R, error), f func(R) error) error {
	for {
		resp, err := recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := f(resp); err != nil {
			return err
		}
	}
}

// LabelValues returns the sorted values of label name among the matching
// series, merged over the ingesters. A shard matcher is ignored.
func (q *ingesterQuerier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, matchers ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	matchers = withoutShard(matchers)
	mint, maxt, ok, err := q.labelRange(ctx)
	if err != nil || !ok {
		return nil, nil, err
	}
	req := &ingesterpb.LabelValuesRequest{Name: name, StartMs: mint, EndMs: maxt, Matchers: ingesterpb.ToMatchers(matchers), Limit: limitOf(hints)}
	results, warning, err := forEachIngester(ctx, q.q, nil, func(ctx context.Context, c *client.Client) ([]string, error) {
		resp, err := c.LabelValues(ctx, req)
		if err != nil {
			return nil, err
		}
		return resp.Values, nil
	}, nil)
	if err != nil {
		return nil, nil, promql.ErrStorage{Err: err}
	}
	return mergeSorted(results, hints), warnings(warning), nil
}

// LabelNames returns the sorted label names of the matching series, merged
// over the ingesters. A shard matcher is ignored.
func (q *ingesterQuerier) LabelNames(ctx context.Context, hints *storage.LabelHints, matchers ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	matchers = withoutShard(matchers)
	mint, maxt, ok, err := q.labelRange(ctx)
	if err != nil || !ok {
		return nil, nil, err
	}
	req := &ingesterpb.LabelNamesRequest{StartMs: mint, EndMs: maxt, Matchers: ingesterpb.ToMatchers(matchers), Limit: limitOf(hints)}
	results, warning, err := forEachIngester(ctx, q.q, nil, func(ctx context.Context, c *client.Client) ([]string, error) {
		resp, err := c.LabelNames(ctx, req)
		if err != nil {
			return nil, err
		}
		return resp.Names, nil
	}, nil)
	if err != nil {
		return nil, nil, promql.ErrStorage{Err: err}
	}
	return mergeSorted(results, hints), warnings(warning), nil
}

// labelRange is the querier's range under the tenant's query limits.
func (q *ingesterQuerier) labelRange(ctx context.Context) (int64, int64, bool, error) {
	tenantID, err := tenant.FromContext(ctx)
	if err != nil {
		return 0, 0, false, err
	}
	return checkRange(limitsFor(q.q.Limits, tenantID), q.mint, q.maxt, q.mint, q.maxt, q.q.Now)
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

// Close releases the memory of the series Select returned, which must no
// longer be used.
func (q *ingesterQuerier) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i := range q.held {
		q.held[i].release()
	}
	q.held = nil
	return nil
}

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

// warnedSeriesSet adds a warning to a series set.
type warnedSeriesSet struct {
	storage.SeriesSet
	warning error
}

func (s *warnedSeriesSet) Warnings() annotations.Annotations {
	ws := s.SeriesSet.Warnings()
	if ws == nil {
		ws = annotations.New().Add(s.warning)
		return ws
	}
	return ws.Add(s.warning)
}

func warnings(w string) annotations.Annotations {
	if w == "" {
		return nil
	}
	return annotations.New().Add(errors.New(w))
}
