package querier

import (
	"context"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
)

// MergedQueryable is the querier's storage: recent data from the
// ingesters, older data from the blocks in the bucket, merged so that a
// sample both hold appears once.
type MergedQueryable struct {
	Ingesters *IngesterQueryable
	// Blocks is nil when there is no long-term storage to read.
	Blocks *BlocksQueryable
	// QueryIngestersWithin: queries ending before now minus this skip the
	// ingesters (0 = never skip).
	QueryIngestersWithin time.Duration
	// QueryStoreAfter: the blocks are read only up to now minus this (0 =
	// up to the end of the query).
	QueryStoreAfter time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

var _ Queryable = (*MergedQueryable)(nil)

// Querier implements storage.Queryable.
func (q *MergedQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	now := time.Now
	if q.Now != nil {
		now = q.Now
	}
	t := now()
	var qs []storage.Querier
	if q.QueryIngestersWithin == 0 || maxt >= t.Add(-q.QueryIngestersWithin).UnixMilli() {
		iq, err := q.Ingesters.Querier(mint, maxt)
		if err != nil {
			return nil, err
		}
		qs = append(qs, iq)
	}
	if q.Blocks != nil {
		storeMaxt := maxt
		if q.QueryStoreAfter > 0 {
			storeMaxt = min(maxt, t.Add(-q.QueryStoreAfter).UnixMilli())
		}
		if mint <= storeMaxt {
			bq, err := q.Blocks.Querier(mint, storeMaxt)
			if err != nil {
				return nil, err
			}
			qs = append(qs, bq)
		}
	}
	switch len(qs) {
	case 0:
		return storage.NoopQuerier(), nil
	case 1:
		return qs[0], nil
	}
	return storage.NewMergeQuerier(qs, nil, storage.ChainedSeriesMerge), nil
}

// ChunkQuerier implements storage.ChunkQueryable (remote read streams
// chunks). The merged samples are re-encoded into chunks.
func (q *MergedQueryable) ChunkQuerier(mint, maxt int64) (storage.ChunkQuerier, error) {
	sq, err := q.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	return seriesToChunkQuerier{sq}, nil
}

// ExemplarQuerier implements storage.ExemplarQueryable; only ingesters
// keep exemplars.
func (q *MergedQueryable) ExemplarQuerier(ctx context.Context) (storage.ExemplarQuerier, error) {
	return q.Ingesters.ExemplarQuerier(ctx)
}

type seriesToChunkQuerier struct{ storage.Querier }

func (q seriesToChunkQuerier) Select(ctx context.Context, sorted bool, hints *storage.SelectHints, matchers ...*labels.Matcher) storage.ChunkSeriesSet {
	return storage.NewSeriesSetToChunkSet(q.Querier.Select(ctx, sorted, hints, matchers...))
}
