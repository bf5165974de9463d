package storegateway

import (
	"context"
	"fmt"
	"net/http"
	"slices"

	"github.com/grafana/dskit/httpgrpc"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunks"

	"github.com/neocortex-metrics/neocortex/pkg/ingester/ingesterpb"
	"github.com/neocortex-metrics/neocortex/pkg/storegateway/storegatewaypb"
	"github.com/neocortex-metrics/neocortex/pkg/tenant"
)

// seriesBatchBytes is about how much chunk data goes in one Series message.
const seriesBatchBytes = 1 << 20

// Series streams the matching series of the requested blocks this
// store-gateway holds, block by block, and names those blocks last. A
// request with a shard gets the series of that hash shard only.
func (g *StoreGateway) Series(req *storegatewaypb.SeriesRequest, stream storegatewaypb.StoreGateway_SeriesServer) error {
	ctx := stream.Context()
	if req.ShardCount > 0 && req.ShardIndex >= req.ShardCount {
		return httpgrpc.Errorf(http.StatusBadRequest, "shard index %d is not below the shard count %d", req.ShardIndex, req.ShardCount)
	}
	blocks, ids, matchers, err := g.request(ctx, req.BlockIds, req.Matchers)
	if err != nil {
		return err
	}
	defer release(blocks)
	var (
		batch []*ingesterpb.Series
		size  int
	)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := stream.Send(&storegatewaypb.SeriesResponse{Series: batch})
		batch, size = nil, 0
		return err
	}
	for i, b := range blocks {
		err := b.Series(ctx, req.StartMs, req.EndMs, req.SkipChunks, matchers, func(ls labels.Labels, chks []chunks.Meta) error {
			// The block reader selects by matchers only; the series of
			// other shards are dropped here.
			if req.ShardCount > 0 && labels.StableHash(ls)%req.ShardCount != req.ShardIndex {
				return nil
			}
			s := &ingesterpb.Series{Labels: ingesterpb.ToLabels(ls), Chunks: make([]*ingesterpb.Chunk, 0, len(chks))}
			for _, c := range chks {
				data := slices.Clone(c.Chunk.Bytes())
				size += len(data)
				s.Chunks = append(s.Chunks, &ingesterpb.Chunk{
					MinTimeMs: c.MinTime,
					MaxTimeMs: c.MaxTime,
					Encoding:  uint32(c.Chunk.Encoding()),
					Data:      data,
				})
			}
			batch = append(batch, s)
			if size >= seriesBatchBytes || len(batch) >= 1000 {
				return flush()
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("read block %s: %w", ids[i], err)
		}
	}
	if err := flush(); err != nil {
		return err
	}
	return stream.Send(&storegatewaypb.SeriesResponse{QueriedBlocks: ids})
}

// LabelNames returns the label names in the requested blocks it holds.
func (g *StoreGateway) LabelNames(ctx context.Context, req *storegatewaypb.LabelNamesRequest) (*storegatewaypb.LabelNamesResponse, error) {
	blocks, ids, matchers, err := g.request(ctx, req.BlockIds, req.Matchers)
	if err != nil {
		return nil, err
	}
	defer release(blocks)
	var all [][]string
	for i, b := range blocks {
		names, err := b.LabelNames(ctx, matchers)
		if err != nil {
			return nil, fmt.Errorf("read block %s: %w", ids[i], err)
		}
		all = append(all, names)
	}
	return &storegatewaypb.LabelNamesResponse{Names: mergeSorted(all), QueriedBlocks: ids}, nil
}

// LabelValues returns the values of a label in the requested blocks it holds.
func (g *StoreGateway) LabelValues(ctx context.Context, req *storegatewaypb.LabelValuesRequest) (*storegatewaypb.LabelValuesResponse, error) {
	blocks, ids, matchers, err := g.request(ctx, req.BlockIds, req.Matchers)
	if err != nil {
		return nil, err
	}
	defer release(blocks)
	var all [][]string
	for i, b := range blocks {
		values, err := b.LabelValues(ctx, req.Name, matchers)
		if err != nil {
			return nil, fmt.Errorf("read block %s: %w", ids[i], err)
		}
		all = append(all, values)
	}
	return &storegatewaypb.LabelValuesResponse{Values: mergeSorted(all), QueriedBlocks: ids}, nil
}

// request resolves a request's tenant, blocks and matchers. Blocks this
// store-gateway does not hold are left out of the answer. The caller
// releases the blocks when done with them.
func (g *StoreGateway) request(ctx context.Context, blockIDs []string, ms []*ingesterpb.LabelMatcher) ([]*servedBlock, []string, []*labels.Matcher, error) {
	tenantID, err := tenant.FromContext(ctx)
	if err != nil {
		return nil, nil, nil, httpgrpc.Errorf(http.StatusUnauthorized, "%s", err)
	}
	matchers, err := ingesterpb.FromMatchers(ms)
	if err != nil {
		return nil, nil, nil, httpgrpc.Errorf(http.StatusBadRequest, "%s", err)
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	var (
		blocks []*servedBlock
		ids    []string
	)
	for _, s := range blockIDs {
		id, err := ulid.Parse(s)
		if err != nil {
			release(blocks)
			return nil, nil, nil, httpgrpc.Errorf(http.StatusBadRequest, "invalid block ID %q", s)
		}
		if b, ok := g.blocks[tenantID][id]; ok {
			b.readers.Add(1)
			blocks = append(blocks, b)
			ids = append(ids, s)
		}
	}
	return blocks, ids, matchers, nil
}

func release(blocks []*servedBlock) {
	for _, b := range blocks {
		b.readers.Done()
	}
}

// mergeSorted merges sorted lists into one sorted list without duplicates.
func mergeSorted(lists [][]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}
