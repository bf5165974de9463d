package querier

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/grafana/dskit/ring"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
	"github.com/thanos-io/objstore"

	"github.com/neocortex-metrics/neocortex/pkg/ingester/ingesterpb"
	"github.com/neocortex-metrics/neocortex/pkg/limits"
	"github.com/neocortex-metrics/neocortex/pkg/storage/bucketindex"
	sgclient "github.com/neocortex-metrics/neocortex/pkg/storegateway/client"
	"github.com/neocortex-metrics/neocortex/pkg/storegateway/storegatewaypb"
	"github.com/neocortex-metrics/neocortex/pkg/tenant"
)

// StoreGatewayRing is the part of the store-gateway ring the querier reads.
type StoreGatewayRing interface {
	Get(key uint32, op ring.Operation, bufInstances []ring.InstanceDesc, bufStrings1, bufStrings2 []string) (ring.ReplicationSet, error)
}

// BlocksQueryable reads a tenant's blocks in the bucket through the
// store-gateways. The bucket index says which blocks a query must read; a
// block that no store-gateway answers for fails the query, so a result is
// never silently partial.
type BlocksQueryable struct {
	Bucket  objstore.BucketReader
	Ring    StoreGatewayRing
	Clients ClientPool
	// Limits are the per-tenant query limits; nil means none.
	Limits *limits.Overrides
	// Metrics count what queries fetch; nil counts nothing.
	Metrics *FetchMetrics
	// IndexTTL is how long a tenant's bucket index is reused.
	IndexTTL time.Duration
	// Attempts is how many store-gateways are tried per block.
	Attempts int
	Logger   *slog.Logger

	// now is the clock; nil is time.Now.
	now func() time.Time

	mu        sync.Mutex
	indexes   map[string]cachedIndex
	lastSweep time.Time // when expired indexes were last dropped
}

type cachedIndex struct {
	idx     *bucketindex.Index
	fetched time.Time
}

// index returns the tenant's bucket index (empty if it has none yet).
func (q *BlocksQueryable) index(ctx context.Context, tenantID string) (*bucketindex.Index, error) {
	now := time.Now
	if q.now != nil {
		now = q.now
	}
	q.mu.Lock()
	c, ok := q.indexes[tenantID]
	q.mu.Unlock()
	if ok && now().Sub(c.fetched) < q.IndexTTL {
		return c.idx, nil
	}
	idx, err := bucketindex.ReadIndex(ctx, q.Bucket, tenantID)
	if errors.Is(err, bucketindex.ErrIndexNotFound) {
		idx, err = &bucketindex.Index{Version: bucketindex.IndexVersion}, nil
	}
	if err != nil {
		return nil, err
	}
	fetched := now()
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.indexes == nil {
		q.indexes = map[string]cachedIndex{}
	}
	// Expired indexes would be read again anyway: drop them, at most once
	// per TTL, so that every tenant ever queried does not keep its index.
	if fetched.Sub(q.lastSweep) >= q.IndexTTL {
		q.lastSweep = fetched
		for t, c := range q.indexes {
			if fetched.Sub(c.fetched) >= q.IndexTTL {
				delete(q.indexes, t)
			}
		}
	}
	q.indexes[tenantID] = cachedIndex{idx: idx, fetched: fetched}
	return idx, nil
}

// Querier implements storage.Queryable.
func (q *BlocksQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	return &blocksQuerier{q: q, mint: mint, maxt: maxt, fetched: &fetched{}}, nil
}

type blocksQuerier struct {
	q          *BlocksQueryable
	mint, maxt int64
	fetched    *fetched
}

// blockRequest is what one store-gateway is asked, for the blocks it owns.
type blockRequest struct {
	inst   ring.InstanceDesc
	blocks []string
}

// forEachStoreGateway asks store-gateways for every block of the tenant
// overlapping [mint, maxt]: each block's owners in turn, until one answers
// for it. ask returns the blocks it answered for.
func forEachStoreGateway(ctx context.Context, q *BlocksQueryable, mint, maxt int64, ask func(ctx context.Context, c *sgclient.Client, blockIDs []string) ([]string, error)) error {
	tenantID, err := tenant.FromContext(ctx)
	if err != nil {
		return err
	}
	idx, err := q.index(ctx, tenantID)
	if err != nil {
		return fmt.Errorf("read bucket index: %w", err)
	}
	pending := map[ulid.ULID]bool{}
	for _, b := range idx.Queryable(mint, maxt) {
		pending[b.ID] = true
	}
	tried := map[ulid.ULID]map[string]bool{}
	lastErr := map[ulid.ULID]error{}
	ctx = tenant.WithTenant(ctx, tenantID)
	for attempt := 0; attempt < max(q.Attempts, 1) && len(pending) > 0; attempt++ {
		byInst := map[string]*blockRequest{}
		for id := range pending {
			rs, err := q.Ring.Get(sgclient.BlockKey(tenantID, id), sgclient.ReadOp, nil, nil, nil)
			if err != nil {
				lastErr[id] = err
				continue
			}
			for _, inst := range rs.Instances {
				if tried[id][inst.Addr] {
					continue
				}
				if tried[id] == nil {
					tried[id] = map[string]bool{}
				}
				tried[id][inst.Addr] = true
				r := byInst[inst.Addr]
				if r == nil {
					r = &blockRequest{inst: inst}
					byInst[inst.Addr] = r
				}
				r.blocks = append(r.blocks, id.String())
				break
			}
		}
		if len(byInst) == 0 {
			break
		}
		var (
			wg sync.WaitGroup
			mu sync.Mutex
		)
		for _, r := range byInst {
			wg.Add(1)
			go func() {
				defer wg.Done()
				answered, err := askStoreGateway(ctx, q, r, ask)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					for _, s := range r.blocks {
						lastErr[ulid.MustParse(s)] = fmt.Errorf("store-gateway %s: %w", r.inst.Id, err)
					}
					return
				}
				for _, s := range answered {
					if id, err := ulid.Parse(s); err == nil {
						delete(pending, id)
					}
				}
				for _, s := range r.blocks {
					if id := ulid.MustParse(s); pending[id] && lastErr[id] == nil {
						lastErr[id] = fmt.Errorf("store-gateway %s does not hold it", r.inst.Id)
					}
				}
			}()
		}
		wg.Wait()
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	if len(pending) == 0 {
		return nil
	}
	var missing []string
	var cause error
	for id := range pending {
		missing = append(missing, id.String())
		if cause == nil {
			cause = lastErr[id]
		}
	}
	slices.Sort(missing)
	if cause == nil {
		cause = errors.New("no store-gateway owns them")
	}
	return fmt.Errorf("%d blocks were not answered by any store-gateway (%s): %w", len(missing), strings.Join(missing, ", "), cause)
}

func askStoreGateway(ctx context.Context, q *BlocksQueryable, r *blockRequest, ask func(context.Context, *sgclient.Client, []string) ([]string, error)) ([]string, error) {
	c, err := q.Clients.GetClientForInstance(r.inst)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	return ask(ctx, c.(*sgclient.Client), r.blocks)
}

// Select reads the matching series of the blocks through store-gateways.
// One series read from several blocks (consecutive ranges, or replicas not
// yet compacted) becomes one series with overlapping samples merged. A
// shard matcher (see ShardLabel) is passed to the store-gateways as the
// request's shard, and the series of other shards a store-gateway still
// sends (an older version) are dropped.
func (q *blocksQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, matchers ...*labels.Matcher) storage.SeriesSet {
	p, ok, err := planSelect(ctx, q.q.Limits, q.mint, q.maxt, hints, matchers, nil)
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	if !ok {
		return storage.EmptySeriesSet()
	}
	tenantID, lim, hints, matchers, shard, mint, maxt := p.tenantID, p.lim, p.hints, p.matchers, p.shard, p.mint, p.maxt
	labelsOnly := hints != nil && hints.Func == "series"
	pbMatchers := ingesterpb.ToMatchers(matchers)
	var (
		mu  sync.Mutex
		all []blockSeries
	)
	chunksFetched, bytesFetched := 0, 0
	err = forEachStoreGateway(ctx, q.q, mint, maxt, func(ctx context.Context, c *sgclient.Client, ids []string) ([]string, error) {
		stream, err := c.Series(ctx, &storegatewaypb.SeriesRequest{StartMs: mint, EndMs: maxt, Matchers: pbMatchers, SkipChunks: labelsOnly, BlockIds: ids,
			ShardIndex: shard.Index, ShardCount: shard.Count})
		if err != nil {
			return nil, err
		}
		var (
			got     []blockSeries
			queried []string
			b       = labels.NewScratchBuilder(0)
			nc, nb  int
		)
		err = recvAll(stream.Recv, func(resp *storegatewaypb.SeriesResponse) error {
			queried = append(queried, resp.QueriedBlocks...)
			for _, s := range resp.Series {
				lset := ingesterpb.FromLabels(&b, s.Labels)
				if !shard.Contains(lset) {
					continue
				}
				metas := make([]chunks.Meta, 0, len(s.Chunks))
				for _, c := range s.Chunks {
					chk, err := chunkenc.FromData(chunkenc.Encoding(c.Encoding), c.Data)
					if err != nil {
						return fmt.Errorf("decode chunk: %w", err)
					}
					metas = append(metas, chunks.Meta{MinTime: c.MinTimeMs, MaxTime: c.MaxTimeMs, Chunk: chk})
					nc++
					nb += len(c.Data)
				}
				if !labelsOnly && len(metas) == 0 {
					continue
				}
				got = append(got, blockSeries{lset: lset, chunks: metas})
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		// Series of blocks the store-gateway did not answer for are not
		// sent; the ones sent belong to the blocks it did.
		mu.Lock()
		all = append(all, got...)
		chunksFetched += nc
		bytesFetched += nb
		mu.Unlock()
		return queried, nil
	})
	if err != nil {
		return storage.ErrSeriesSet(promql.ErrStorage{Err: fmt.Errorf("query blocks: %w", err)})
	}
	set := mergeBlockSeries(all, labelsOnly)
	if err := account(ctx, q.q.Metrics, q.fetched, sourceStoreGateways, tenantID, lim, len(set), chunksFetched, bytesFetched); err != nil {
		return storage.ErrSeriesSet(err)
	}
	if labelsOnly {
		out := make([]storage.Series, len(set))
		for i, s := range set {
			out[i] = storage.NewListSeries(s.Labels(), nil)
		}
		return &listSeriesSet{series: out, idx: -1}
	}
	return storage.NewSeriesSetFromChunkSeriesSet(&listChunkSeriesSet{series: set, idx: -1})
}

// blockSeries is one block's part of a series.
type blockSeries struct {
	lset   labels.Labels
	chunks []chunks.Meta
}

// chunkSeries is p as a storage.ChunkSeries.
func (p blockSeries) chunkSeries() storage.ChunkSeries {
	return &storage.ChunkSeriesEntry{
		Lset: p.lset,
		ChunkIteratorFn: func(chunks.Iterator) chunks.Iterator {
			return storage.NewListChunkSeriesIterator(p.chunks...)
		},
	}
}

// mergeBlockSeries sorts the parts by labels and joins the parts of each
// series; overlapping chunks (replicas not yet compacted) are merged with
// duplicate samples removed.
func mergeBlockSeries(parts []blockSeries, labelsOnly bool) []storage.ChunkSeries {
	slices.SortStableFunc(parts, func(a, b blockSeries) int { return labels.Compare(a.lset, b.lset) })
	merge := storage.NewCompactingChunkSeriesMerger(storage.ChainedSeriesMerge)
	var out []storage.ChunkSeries
	for i := 0; i < len(parts); {
		j := i + 1
		for j < len(parts) && labels.Equal(parts[i].lset, parts[j].lset) {
			j++
		}
		series := make([]storage.ChunkSeries, 0, j-i)
		for _, p := range parts[i:j] {
			series = append(series, p.chunkSeries())
		}
		if len(series) == 1 || labelsOnly {
			out = append(out, series[0])
		} else {
			out = append(out, merge(series...))
		}
		i = j
	}
	return out
}

// LabelValues returns the values of a label in the blocks. A shard matcher
// is ignored.
func (q *blocksQuerier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, matchers ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	matchers = withoutShard(matchers)
	var (
		mu    sync.Mutex
		lists [][]string
	)
	err := forEachStoreGateway(ctx, q.q, q.mint, q.maxt, func(ctx context.Context, c *sgclient.Client, ids []string) ([]string, error) {
		resp, err := c.LabelValues(ctx, &storegatewaypb.LabelValuesRequest{Name: name, StartMs: q.mint, EndMs: q.maxt, Matchers: ingesterpb.ToMatchers(matchers), BlockIds: ids})
		if err != nil {
			return nil, err
		}
		mu.Lock()
		lists = append(lists, resp.Values)
		mu.Unlock()
		return resp.QueriedBlocks, nil
	})
	if err != nil {
		return nil, nil, promql.ErrStorage{Err: fmt.Errorf("query blocks: %w", err)}
	}
	return mergeSorted(lists, hints), nil, nil
}

// LabelNames returns the label names in the blocks. A shard matcher is
// ignored.
func (q *blocksQuerier) LabelNames(ctx context.Context, hints *storage.LabelHints, matchers ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	matchers = withoutShard(matchers)
	var (
		mu    sync.Mutex
		lists [][]string
	)
	err := forEachStoreGateway(ctx, q.q, q.mint, q.maxt, func(ctx context.Context, c *sgclient.Client, ids []string) ([]string, error) {
		resp, err := c.LabelNames(ctx, &storegatewaypb.LabelNamesRequest{StartMs: q.mint, EndMs: q.maxt, Matchers: ingesterpb.ToMatchers(matchers), BlockIds: ids})
		if err != nil {
			return nil, err
		}
		mu.Lock()
		lists = append(lists, resp.Names)
		mu.Unlock()
		return resp.QueriedBlocks, nil
	})
	if err != nil {
		return nil, nil, promql.ErrStorage{Err: fmt.Errorf("query blocks: %w", err)}
	}
	return mergeSorted(lists, hints), nil, nil
}

func (q *blocksQuerier) Close() error { return nil }
