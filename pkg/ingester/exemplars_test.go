package ingester

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/neocortex-metrics/neocortex/pkg/ingester/ingesterpb"
	"github.com/neocortex-metrics/neocortex/pkg/tenant"
)

// TestExemplarStorageOnFirstExemplar: a tenant's TSDB has no exemplar
// storage until the tenant sends an exemplar, then one of its limit's size
// (100000 by default), which it keeps across a restart with the WAL's
// exemplars; a tenant without exemplars keeps none, even when the limits
// are applied again.
func TestExemplarStorageOnFirstExemplar(t *testing.T) {
	dir := t.TempDir()
	ing := startTestIngester(t, dir)
	push := func(ing *Ingester, tenantID string, ts int64, exemplar bool) {
		s := prompb.TimeSeries{
			Labels:  []prompb.Label{{Name: "__name__", Value: "requests_total"}},
			Samples: []prompb.Sample{{Timestamp: ts, Value: float64(ts)}},
		}
		if exemplar {
			s.Exemplars = []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: "abc"}}, Value: 1, Timestamp: ts}}
		}
		require.NoError(t, ing.PushWriteRequest(context.Background(), tenantID, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{s}}))
	}
	type state struct {
		size int64
		used bool
		file bool
	}
	stateOf := func(ing *Ingester, tenantID string) state {
		db, err := ing.lookupDB(tenantID)
		require.NoError(t, err)
		require.NotNil(t, db)
		_, err = os.Stat(filepath.Join(dir, tenantID, exemplarsUsedFile))
		return state{db.maxExemplars.Load(), db.exemplarsUsed.Load(), err == nil}
	}
	exemplars := func(ing *Ingester, tenantID string) int {
		resp, err := ing.QueryExemplars(tenant.WithTenant(context.Background(), tenantID), &ingesterpb.ExemplarQueryRequest{
			StartMs: 0, EndMs: 10_000,
			MatcherSets: []*ingesterpb.Matchers{{Matchers: []*ingesterpb.LabelMatcher{{Type: ingesterpb.LabelMatcher_EQ, Name: "__name__", Value: "requests_total"}}}},
		})
		require.NoError(t, err)
		n := 0
		for _, s := range resp.Series {
			n += len(s.Exemplars)
		}
		return n
	}

	push(ing, "with", 1000, false)
	push(ing, "without", 1000, false)
	require.Equal(t, state{}, stateOf(ing, "with"), "no exemplar yet")
	push(ing, "with", 2000, true)
	require.Equal(t, state{100000, true, true}, stateOf(ing, "with"))
	require.Equal(t, 1, exemplars(ing, "with"))
	ing.applyLimits()
	require.Equal(t, state{100000, true, true}, stateOf(ing, "with"))
	require.Equal(t, state{}, stateOf(ing, "without"), "applying the limits gives no storage")

	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), ing))
	ing = startTestIngester(t, dir)
	push(ing, "with", 3000, false)
	push(ing, "without", 3000, false)
	require.Equal(t, state{100000, true, true}, stateOf(ing, "with"), "after a restart")
	require.Equal(t, 1, exemplars(ing, "with"), "the WAL's exemplar is replayed")
	require.Equal(t, state{}, stateOf(ing, "without"), "after a restart")
}
