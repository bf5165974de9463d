package ingester

import (
	"fmt"
	"net/http"

	"github.com/grafana/dskit/httpgrpc"

	"github.com/neocortex-metrics/neocortex/pkg/ingester/ingesterpb"
	"github.com/neocortex-metrics/neocortex/pkg/tenant"
)

// queryStreamBatchSize is the number of series sent per stream message.
const queryStreamBatchSize = 128

// QueryStream streams the tenant's series that match the request as the
// TSDB's own chunks (the open head chunk is copied by the TSDB), sorted by
// labels. Chunks may reach outside the requested range; readers trim.
func (i *Ingester) QueryStream(req *ingesterpb.QueryRequest, stream ingesterpb.Ingester_QueryStreamServer) error {
	ctx := stream.Context()
	tenantID, err := tenant.FromContext(ctx)
	if err != nil {
		return httpgrpc.Errorf(http.StatusUnauthorized, "%s", err)
	}
	matchers, err := ingesterpb.FromMatchers(req.Matchers)
	if err != nil {
		return httpgrpc.Errorf(http.StatusBadRequest, "%s", err)
	}
	db, err := i.lookupDB(tenantID)
	if err != nil || db == nil {
		return err // no TSDB: the tenant has no data here
	}
	q, err := db.ChunkQuerier(req.StartMs, req.EndMs)
	if err != nil {
		return fmt.Errorf("open chunk querier: %w", err)
	}
	defer q.Close()

	ss := q.Select(ctx, true, nil, matchers...)
	batch := make([]*ingesterpb.Series, 0, queryStreamBatchSize)
	for ss.Next() {
		s := ss.At()
		out := &ingesterpb.Series{Labels: ingesterpb.ToLabels(s.Labels())}
		it := s.Iterator(nil)
		for it.Next() {
			m := it.At()
			out.Chunks = append(out.Chunks, &ingesterpb.Chunk{
				MinTimeMs: m.MinTime,
				MaxTimeMs: m.MaxTime,
				Encoding:  uint32(m.Chunk.Encoding()),
				Data:      m.Chunk.Bytes(),
			})
		}
		if err := it.Err(); err != nil {
			return fmt.Errorf("iterate chunks: %w", err)
		}
		batch = append(batch, out)
		if len(batch) == queryStreamBatchSize {
			if err := stream.Send(&ingesterpb.QueryStreamResponse{Series: batch}); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	if err := ss.Err(); err != nil {
		return fmt.Errorf("select series: %w", err)
	}
	if len(batch) > 0 {
		return stream.Send(&ingesterpb.QueryStreamResponse{Series: batch})
	}
	return nil
}
