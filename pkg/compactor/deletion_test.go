package compactor

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/neocortex-metrics/neocortex/pkg/storage/bucketindex"
	"github.com/neocortex-metrics/neocortex/pkg/tenant"
)

func TestRetention(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) int64 { return now.Add(d).UnixMilli() }
	// Blocks by their range relative to now.
	blocks := [][2]time.Duration{
		{-50 * time.Hour, -48 * time.Hour},
		{-26 * time.Hour, -24 * time.Hour},
		{-24 * time.Hour, -23 * time.Hour},
		{-4 * time.Hour, -2 * time.Hour},
	}
	tests := []struct {
		name      string
		retention time.Duration
		// wantMarked are indexes into blocks.
		wantMarked []int
	}{
		{name: "keep forever", retention: 0, wantMarked: nil},
		{name: "24h: blocks whose newest sample is older", retention: 24 * time.Hour, wantMarked: []int{0, 1}},
		{name: "23h30m", retention: 23*time.Hour + 30*time.Minute, wantMarked: []int{0, 1}},
		{name: "23h: a block ending exactly at the cutoff goes", retention: 23 * time.Hour, wantMarked: []int{0, 1, 2}},
		{name: "1h: everything", retention: time.Hour, wantMarked: []int{0, 1, 2, 3}},
		{name: "100h: nothing", retention: 100 * time.Hour, wantMarked: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			bkt := newBucket(t)
			ids := make([]ulid.ULID, len(blocks))
			for i, b := range blocks {
				ids[i] = putBlock(t, bkt, "t", at(b[0]), at(b[1]), genSeries("a", at(b[0]), at(b[1]), 30*minute))
				// Another tenant with a different retention keeps its blocks.
				putBlock(t, bkt, "other", at(b[0]), at(b[1]), genSeries("a", at(b[0]), at(b[1]), 30*minute))
			}
			cfg := testConfig(t)
			cfg.BlockRanges = DurationList{2 * time.Hour} // no horizontal compaction here
			comp, _ := newTestCompactor(t, cfg, bkt, RetentionFunc(func(tenant string) time.Duration {
				if tenant == "t" {
					return tc.retention
				}
				return 0
			}))
			comp.now = func() time.Time { return now }
			require.NoError(t, comp.CompactOnce(ctx))

			idx, err := bucketindex.ReadIndex(ctx, bkt, "t")
			require.NoError(t, err)
			var marked []ulid.ULID
			for _, m := range idx.DeletionMarks {
				marked = append(marked, m.ID)
				require.Equal(t, now.Unix(), m.DeletionTime)
			}
			var want []ulid.ULID
			for _, i := range tc.wantMarked {
				want = append(want, ids[i])
			}
			require.ElementsMatch(t, want, marked)
			require.Equal(t, float64(len(want)), testutil.ToFloat64(comp.metrics.markedDeletion.WithLabelValues(reasonRetention)))
			require.Len(t, liveBlocks(t, bkt, "other"), len(blocks))
		})
	}
}

func TestHardDeletion(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	bkt := &recordingBucket{Bucket: newBucket(t)}
	s := genSeries("a", 0, 2*hour, minute)
	old := putBlock(t, bkt, "t", 0, 2*hour, s)
	young := putBlock(t, bkt, "t", 2*hour, 4*hour, genSeries("a", 2*hour, 4*hour, minute))
	kept := putBlock(t, bkt, "t", 4*hour, 6*hour, genSeries("a", 4*hour, 6*hour, minute))
	partial := putBlock(t, bkt, "t", 6*hour, 8*hour, genSeries("a", 6*hour, 8*hour, minute))
	require.NoError(t, bucketindex.WriteDeletionMark(ctx, bkt, "t", old, now.Add(-13*time.Hour)))
	require.NoError(t, bucketindex.WriteDeletionMark(ctx, bkt, "t", young, now.Add(-11*time.Hour)))
	// A deletion cut short: meta.json is already gone.
	require.NoError(t, bucketindex.WriteDeletionMark(ctx, bkt, "t", partial, now.Add(-13*time.Hour)))
	require.NoError(t, bkt.Delete(ctx, objectPath("t", partial, bucketindex.MetaFilename)))
	// The previous index still lists the partly deleted block.
	idx, err := bucketindex.Build(ctx, bkt, "t", nil)
	require.NoError(t, err)
	idx.Blocks = append(idx.Blocks, &bucketindex.Block{ID: partial, MinTime: 6 * hour, MaxTime: 8 * hour})
	require.NoError(t, bucketindex.WriteIndex(ctx, bkt, "t", idx))
	bkt.ops = nil

	comp, _ := newTestCompactor(t, testConfig(t), bkt, nil)
	require.NoError(t, comp.CompactOnce(ctx))

	for _, id := range []ulid.ULID{old, partial} {
		prefix := bucketindex.BlockPath("t", id) + "/"
		require.Empty(t, listObjects(t, bkt, prefix), "block %s deleted", id)
		deletes := bkt.opsUnder("delete", prefix)
		require.GreaterOrEqual(t, len(deletes), 2)
		require.Equal(t, bucketindex.MetaFilename, deletes[0], "meta.json first")
		require.Equal(t, bucketindex.DeletionMarkFilename, deletes[len(deletes)-1], "the deletion mark last")
	}
	require.Contains(t, bkt.opsUnder("delete", bucketindex.BlockPath("t", old)+"/"), "chunks/000001")
	require.Empty(t, bkt.opsUnder("delete", bucketindex.BlockPath("t", young)+"/"))
	require.Empty(t, bkt.opsUnder("delete", bucketindex.BlockPath("t", kept)+"/"))
	require.Equal(t, 2.0, testutil.ToFloat64(comp.metrics.blocksDeleted))

	idx, err = bucketindex.ReadIndex(ctx, bkt, "t")
	require.NoError(t, err)
	var ids []ulid.ULID
	for _, b := range idx.Blocks {
		ids = append(ids, b.ID)
	}
	require.ElementsMatch(t, []ulid.ULID{young, kept}, ids)
	require.Len(t, idx.DeletionMarks, 1)
	require.Equal(t, young, idx.DeletionMarks[0].ID)

	// Once the young mark is old enough too, the block goes; with no block
	// left, so does the index.
	comp.now = func() time.Time { return now.Add(2 * time.Hour) }
	require.NoError(t, bucketindex.WriteDeletionMark(ctx, bkt, "t", kept, now.Add(-13*time.Hour)))
	require.NoError(t, comp.CompactOnce(ctx))
	require.Empty(t, listObjects(t, bkt, "t/"))
	_, err = bucketindex.ReadIndex(ctx, bkt, "t")
	require.ErrorIs(t, err, bucketindex.ErrIndexNotFound)
}

func TestTenantDeletion(t *testing.T) {
	ctx := context.Background()
	bkt := newBucket(t)
	var ids []ulid.ULID
	for h := int64(0); h < 6; h += 2 {
		ids = append(ids, putBlock(t, bkt, "doomed", h*hour, (h+2)*hour, genSeries("a", h*hour, (h+2)*hour, minute)))
		putBlock(t, bkt, "kept", h*hour, (h+2)*hour, genSeries("a", h*hour, (h+2)*hour, minute))
	}
	// A block whose upload never finished, and a deletion mark.
	require.NoError(t, bkt.Delete(ctx, objectPath("doomed", ids[2], bucketindex.MetaFilename)))
	require.NoError(t, bucketindex.WriteDeletionMark(ctx, bkt, "doomed", ids[1], time.Now()))
	comp, _ := newTestCompactor(t, testConfig(t), bkt, nil)
	require.NoError(t, comp.CompactOnce(ctx)) // writes both indexes
	_, err := bucketindex.ReadIndex(ctx, bkt, "doomed")
	require.NoError(t, err)

	do := func(h http.HandlerFunc, method, orgID string, ctxTenant string) (int, string) {
		r := httptest.NewRequest(method, "/purger/delete_tenant", nil)
		if orgID != "" {
			r.Header.Set(tenant.Header, orgID)
		}
		if ctxTenant != "" {
			r = r.WithContext(tenant.WithTenant(r.Context(), ctxTenant))
		}
		w := httptest.NewRecorder()
		h(w, r)
		return w.Code, w.Body.String()
	}
	status := func(id string) DeleteTenantStatus {
		code, body := do(comp.DeleteTenantStatusHandler, http.MethodGet, id, "")
		require.Equal(t, http.StatusOK, code)
		var s DeleteTenantStatus
		require.NoError(t, json.Unmarshal([]byte(body), &s))
		return s
	}

	handlerTests := []struct {
		name      string
		handler   http.HandlerFunc
		method    string
		orgID     string
		ctxTenant string
		wantCode  int
		wantBody  string
	}{
		{name: "delete without tenant", handler: comp.DeleteTenantHandler, method: http.MethodPost, wantCode: http.StatusUnauthorized},
		{name: "delete invalid tenant", handler: comp.DeleteTenantHandler, method: http.MethodPost, orgID: "..", wantCode: http.StatusBadRequest},
		{name: "status without tenant", handler: comp.DeleteTenantStatusHandler, method: http.MethodGet, wantCode: http.StatusUnauthorized},
		{name: "status before deletion", handler: comp.DeleteTenantStatusHandler, method: http.MethodGet, orgID: "doomed", wantCode: http.StatusOK,
			wantBody: `{"tenant_id":"doomed","blocks_deleted":false}`},
		{name: "status of an unknown tenant", handler: comp.DeleteTenantStatusHandler, method: http.MethodGet, orgID: "nobody", wantCode: http.StatusOK,
			wantBody: `{"tenant_id":"nobody","blocks_deleted":true}`},
		{name: "status, tenant from the context wins", handler: comp.DeleteTenantStatusHandler, method: http.MethodGet, orgID: "doomed", ctxTenant: "nobody", wantCode: http.StatusOK,
			wantBody: `{"tenant_id":"nobody","blocks_deleted":true}`},
		{name: "delete", handler: comp.DeleteTenantHandler, method: http.MethodPost, orgID: "doomed", wantCode: http.StatusOK},
	}
	for _, tc := range handlerTests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := do(tc.handler, tc.method, tc.orgID, tc.ctxTenant)
			require.Equal(t, tc.wantCode, code, body)
			if tc.wantBody != "" {
				require.JSONEq(t, tc.wantBody, body)
			}
		})
	}

	mark, err := bucketindex.ReadTenantDeletionMark(ctx, bkt, "doomed")
	require.NoError(t, err)
	require.NotNil(t, mark)
	require.NotZero(t, mark.CreationTime)
	require.Zero(t, mark.FinishedTime)
	// Asking again keeps the first mark.
	code, _ := do(comp.DeleteTenantHandler, http.MethodPost, "doomed", "")
	require.Equal(t, http.StatusOK, code)
	require.False(t, status("doomed").BlocksDeleted)

	require.NoError(t, comp.CompactOnce(ctx))
	require.Equal(t, []string{path.Join("doomed", bucketindex.TenantDeletionFilename)}, listObjects(t, bkt, "doomed/"),
		"everything but the tenant's deletion mark is gone")
	mark2, err := bucketindex.ReadTenantDeletionMark(ctx, bkt, "doomed")
	require.NoError(t, err)
	require.Equal(t, mark.CreationTime, mark2.CreationTime)
	require.NotZero(t, mark2.FinishedTime)
	require.Equal(t, DeleteTenantStatus{TenantID: "doomed", BlocksDeleted: true}, status("doomed"))
	require.Equal(t, 2.0, testutil.ToFloat64(comp.metrics.markedDeletion.WithLabelValues(reasonTenantDeletion)))
	require.Equal(t, 3.0, testutil.ToFloat64(comp.metrics.blocksDeleted))

	// The other tenant is untouched.
	require.Len(t, liveBlocks(t, bkt, "kept"), 3)
	_, err = bucketindex.ReadIndex(ctx, bkt, "kept")
	require.NoError(t, err)

	// A block shipped after the deletion is deleted by the next cycle.
	late := putBlock(t, bkt, "doomed", 6*hour, 8*hour, genSeries("a", 6*hour, 8*hour, minute))
	require.False(t, status("doomed").BlocksDeleted)
	require.NoError(t, comp.CompactOnce(ctx))
	require.True(t, status("doomed").BlocksDeleted)
	require.Empty(t, listObjects(t, bkt, bucketindex.BlockPath("doomed", late)+"/"))
	for _, name := range listObjects(t, bkt, "") {
		require.False(t, strings.HasPrefix(name, "doomed/") && name != "doomed/"+bucketindex.TenantDeletionFilename, name)
	}
}
