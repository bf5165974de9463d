package ingester

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/prometheus/model/labels"
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

// TestExemplarSymbolsRenewed: exemplars' labels, mostly unique trace IDs,
// do not pile up in a symbol table: with -tags dedupelabels the table they
// are built in is renewed once it holds more strings than the exemplar
// storage has room for, and exemplars from before and after read back
// right.
func TestExemplarSymbolsRenewed(t *testing.T) {
	ing := startTestIngester(t, t.TempDir())
	const storage = 100_000 // the default max_exemplars
	push := func(first, n int) {
		s := prompb.TimeSeries{
			Labels:  []prompb.Label{{Name: "__name__", Value: "requests_total"}},
			Samples: []prompb.Sample{{Timestamp: int64(first + n), Value: 1}},
		}
		for i := first; i < first+n; i++ {
			s.Exemplars = append(s.Exemplars, prompb.Exemplar{Labels: []prompb.Label{{Name: "trace_id", Value: fmt.Sprintf("t%06d", i)}}, Value: float64(i), Timestamp: int64(i + 1)})
		}
		require.NoError(t, ing.PushWriteRequest(context.Background(), "t", &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{s}}))
	}
	push(0, storage)
	db, err := ing.lookupDB("t")
	require.NoError(t, err)
	first := db.exemplarSymbols.Load()
	dedupe := labels.ImplementationName == "dedupelabels"
	if dedupe {
		require.Equal(t, storage+1, first.Len(), "trace_id and the values")
	}
	// A push takes the table once: this one still adds to it.
	push(storage, 2000)
	if dedupe {
		require.True(t, first == db.exemplarSymbols.Load(), "not renewed within a push")
		require.Equal(t, storage+2001, first.Len())
	}
	// Past the storage's size plus 1024: the next push has a new table.
	push(storage+2000, 10)
	if dedupe {
		require.False(t, first == db.exemplarSymbols.Load(), "renewed")
		require.Equal(t, 11, db.exemplarSymbols.Load().Len())
	}
	resp, err := ing.QueryExemplars(tenant.WithTenant(context.Background(), "t"), &ingesterpb.ExemplarQueryRequest{
		StartMs: 0, EndMs: storage + 3000,
		MatcherSets: []*ingesterpb.Matchers{{Matchers: []*ingesterpb.LabelMatcher{{Type: ingesterpb.LabelMatcher_EQ, Name: "__name__", Value: "requests_total"}}}},
	})
	require.NoError(t, err)
	require.Len(t, resp.Series, 1)
	exs := resp.Series[0].Exemplars
	require.Len(t, exs, storage, "the storage keeps the newest")
	for i, e := range exs {
		n := 2010 + i // the oldest 2010 were evicted
		require.Equal(t, int64(n+1), e.TimestampMs)
		require.Equal(t, float64(n), e.Value)
		require.Len(t, e.Labels, 1)
		require.Equal(t, fmt.Sprintf("t%06d", n), e.Labels[0].Value)
	}
}
