package ingester

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/neocortex-metrics/neocortex/pkg/ingester/ingesterpb"
	"github.com/neocortex-metrics/neocortex/pkg/limits"
	"github.com/neocortex-metrics/neocortex/pkg/tenant"
)

// TestTenantHeapWhenChunksAreMapped: once a tenant's first head chunk is
// full and written to its chunks_head file, the tenant keeps a write
// buffer of ingester.tsdb_head_chunks_write_buffer_size_bytes, not
// Prometheus's 4 MiB: with many tenants, that was 4 MB of heap each.
func TestTenantHeapWhenChunksAreMapped(t *testing.T) {
	const (
		tenants = 20
		samples = 130 // the head cuts a chunk at 120
	)
	for _, tc := range []struct {
		writeBuffer int
		maxGrowth   int64 // per tenant, when its chunks are mapped
	}{
		{writeBuffer: 128 << 10, maxGrowth: 256 << 10},
		{writeBuffer: 1 << 20, maxGrowth: 1<<20 + 128<<10},
	} {
		t.Run(fmt.Sprintf("buffer=%d", tc.writeBuffer), func(t *testing.T) {
			dir := t.TempDir()
			ing := newShippingIngester(t, dir, nil, func(c *Config) {
				c.HeadChunksWriteBufferSize = tc.writeBuffer
				// The head maps full chunks to disk at each reload (1s at least).
				c.HeadCompactionInterval = 100 * time.Millisecond
			})
			defer ing.stop(t)
			ts := make([]int64, samples)
			for i := range ts {
				ts[i] = int64(i) * 15000
			}
			for i := range tenants {
				pushSeries(t, ing.Ingester, fmt.Sprintf("t%d", i), 2, ts...)
			}
			before := liveHeap()
			mapped := func() bool {
				for i := range tenants {
					files, err := os.ReadDir(filepath.Join(dir, fmt.Sprintf("t%d", i), "chunks_head"))
					if err != nil || len(files) == 0 {
						return false
					}
				}
				return true
			}
			require.Eventually(t, mapped, 20*time.Second, 50*time.Millisecond, "every tenant's full chunks written to chunks_head")
			growth := (int64(liveHeap()) - int64(before)) / tenants
			t.Logf("heap per tenant when its chunks are mapped: %d bytes", growth)
			require.Greater(t, growth, int64(tc.writeBuffer), "the buffer is allocated")
			require.Less(t, growth, tc.maxGrowth)
		})
	}
}

// TestTenantHeapAfterABurstOfNewSeries: a push of many new series is
// committed in parts, so that the WAL of its tenant, which keeps a
// compression buffer as big as its largest record, does not keep one of
// a whole push's new series (470 KB for 2000 of them). All the series are
// in the WAL: a restart finds them.
func TestTenantHeapAfterABurstOfNewSeries(t *testing.T) {
	const (
		tenants = 20
		series  = 2000
	)
	perTenant := map[int]int64{}
	for _, perPush := range []int{series, 250} {
		dir := t.TempDir()
		ing := newShippingIngester(t, dir, nil, nil)
		before := liveHeap()
		for i := range tenants {
			for from := 0; from < series; from += perPush {
				pushBurst(t, ing.Ingester, fmt.Sprintf("t%d", i), from, perPush)
			}
		}
		perTenant[perPush] = (int64(liveHeap()) - int64(before)) / tenants
		ing.stop(t)

		ing = newShippingIngester(t, dir, nil, nil)
		for i := range tenants {
			db, err := ing.lookupDB(fmt.Sprintf("t%d", i))
			require.NoError(t, err)
			require.NotNil(t, db, "tenant t%d reopened", i)
			require.Equal(t, uint64(series), db.Head().NumSeries(), "series of tenant t%d after the WAL replay", i)
		}
		ing.stop(t)
	}
	t.Logf("heap per tenant: %d bytes with one push of %d series, %d with pushes of 250", perTenant[series], series, perTenant[250])
	require.Less(t, perTenant[series]-perTenant[250], int64(64<<10), "what one big push costs a tenant more")
}

// pushBurst pushes n new series of 10 labels, numbered from, with a sample each.
func pushBurst(t *testing.T, ing *Ingester, tenantID string, from, n int) {
	t.Helper()
	require.NoError(t, pushBurstErr(t, ing, tenantID, from, n))
}

// pushBurstErr is pushBurst that returns the push's error.
func pushBurstErr(t *testing.T, ing *Ingester, tenantID string, from, n int) error {
	t.Helper()
	req := &prompb.WriteRequest{}
	for i := from; i < from+n; i++ {
		ls := []prompb.Label{{Name: "__name__", Value: "http_requests_total"}}
		for j := range 8 {
			ls = append(ls, prompb.Label{Name: fmt.Sprintf("label_%d", j), Value: fmt.Sprintf("value-%d-%d", j, i%(10*(j+1)))})
		}
		ls = append(ls, prompb.Label{Name: "series", Value: fmt.Sprintf("series-%08d", i)})
		req.Timeseries = append(req.Timeseries, prompb.TimeSeries{Labels: ls, Samples: []prompb.Sample{{Timestamp: 1000, Value: float64(i)}}})
	}
	buf, err := req.Marshal()
	require.NoError(t, err)
	_, err = ing.Push(tenant.WithTenant(context.Background(), tenantID), &ingesterpb.PushRequest{WriteRequest: buf})
	return err
}

// TestPushOfManyNewSeriesOverTheLimit: a push committed in parts still
// creates series up to the tenant's limit and no further, and reports the
// rest as one error.
func TestPushOfManyNewSeriesOverTheLimit(t *testing.T) {
	for _, tc := range []struct {
		limit, push, created int
		err                  string
	}{
		{limit: 1000, push: 600, created: 600},
		{limit: 200, push: 600, created: 200, err: "ingester rejected 400 of 600 samples; first: per-tenant series limit of 200 reached (max_series_per_user)"},
		{limit: 257, push: 600, created: 257, err: "ingester rejected 343 of 600 samples; first: per-tenant series limit of 257 reached (max_series_per_user)"},
		{limit: 256, push: 257, created: 256, err: "ingester rejected 1 of 257 samples; first: per-tenant series limit of 256 reached (max_series_per_user)"},
		{limit: 600, push: 600, created: 600},
	} {
		t.Run(fmt.Sprintf("limit=%d,push=%d", tc.limit, tc.push), func(t *testing.T) {
			ing := startLimitedIngester(t, t.TempDir(), func(l *limits.Limits) { l.MaxSeriesPerUser = tc.limit })
			err := pushBurstErr(t, ing, "t", 0, tc.push)
			if tc.err == "" {
				require.NoError(t, err)
			} else {
				require.ErrorContains(t, err, tc.err)
			}
			db, err := ing.lookupDB("t")
			require.NoError(t, err)
			require.Equal(t, uint64(tc.created), db.Head().NumSeries())
		})
	}
}
