package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// queryAPI serves query_range for the verifier from a generator, as a
// store that kept every sample would, after edit has had its way with each
// point (return false to drop it).
type queryAPI struct {
	t          *testing.T
	gen        *Generator
	plan       *Plan
	startMs    int64
	intervalMs int64
	edit       func(slot int, step int64, v float64) (float64, bool)
	status     int
}

var queryRE = regexp.MustCompile(`^last_over_time\(\{__name__="([a-zA-Z_:0-9]+)"\}\[(\d+)ms\]\)$`)

func (q *queryAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if q.status != 0 {
		http.Error(w, "boom", q.status)
		return
	}
	// assert, not require: this runs on the server's goroutine.
	m := queryRE.FindStringSubmatch(r.FormValue("query"))
	start, err1 := parseAPITime(r.FormValue("start"))
	end, err2 := parseAPITime(r.FormValue("end"))
	if !assert.Equal(q.t, "/prometheus/api/v1/query_range", r.URL.Path) ||
		!assert.NotNil(q.t, m, r.FormValue("query")) ||
		!assert.Equal(q.t, strconv.FormatInt(q.intervalMs-1, 10), m[2], "the window holds one step") ||
		!assert.Equal(q.t, strconv.FormatFloat(float64(q.intervalMs)/1000, 'f', -1, 64), r.FormValue("step")) ||
		!assert.NoError(q.t, err1) || !assert.NoError(q.t, err2) {
		http.Error(w, "bad query", http.StatusBadRequest)
		return
	}

	tenant := r.Header.Get("X-Scope-OrgID")
	var result []map[string]any
	for t, name := range q.plan.Tenants {
		if name != tenant {
			continue
		}
		for slot := q.plan.TenantSlots[t][0]; slot < q.plan.TenantSlots[t][1]; slot++ {
			if q.gen.MetricName(slot) != m[1] {
				continue
			}
			byGen := map[int64][][2]any{}
			for ms := start; ms <= end; ms += q.intervalMs {
				step := (ms - q.startMs) / q.intervalMs
				gen := q.gen.Generation(slot, step)
				v, ok := q.edit(slot, step, q.gen.Value(slot, gen, step))
				if ok {
					byGen[gen] = append(byGen[gen], [2]any{json.Number(formatAPITime(ms)), strconv.FormatFloat(v, 'f', -1, 64)})
				}
			}
			for gen, values := range byGen {
				metric := map[string]string{}
				for _, l := range q.gen.Labels(slot, gen) {
					metric[l.Name] = l.Value
				}
				result = append(result, map[string]any{"metric": metric, "values": values})
			}
		}
	}
	w.Header().Set("Content-Type", "application/json")
	assert.NoError(q.t, json.NewEncoder(w).Encode(map[string]any{
		"status": "success",
		"data":   map[string]any{"resultType": "matrix", "result": result},
	}))
}

func TestVerifier(t *testing.T) {
	const (
		startMs    = int64(1_700_000_000_000)
		intervalMs = int64(5000)
		steps      = 3
	)
	keep := func(_ int, _ int64, v float64) (float64, bool) { return v, true }
	for _, tc := range []struct {
		name       string
		tenants    []string
		active     int
		churn      int
		ackSteps   int64 // steps acknowledged; the rest failed
		edit       func(slot int, step int64, v float64) (float64, bool)
		status     int
		want       VerifyResult
		wantErr    bool
		pointLimit int
	}{
		{
			name: "everything read back", tenants: []string{"a"}, active: 4, ackSteps: steps, edit: keep,
			want: VerifyResult{Expected: 12, Found: 12, Queries: 4},
		},
		{
			name: "one missing and one wrong", tenants: []string{"a"}, active: 4, ackSteps: steps,
			edit: func(slot int, step int64, v float64) (float64, bool) {
				switch {
				case slot == 1 && step == 1:
					return v, false
				case slot == 3 && step == 2:
					return v + 0.25, true
				}
				return v, true
			},
			want: VerifyResult{Expected: 12, Found: 10, Missing: 1, Wrong: 1, Queries: 4},
		},
		{
			name: "samples of failed requests are not expected", tenants: []string{"a"}, active: 4, ackSteps: 2, edit: keep,
			want: VerifyResult{Expected: 8, Found: 8, Unexpected: 4, Queries: 4},
		},
		{
			name: "tenants and churned series", tenants: []string{"a", "b"}, active: 70, churn: 12 * 70, ackSteps: steps, edit: keep,
			want: VerifyResult{Expected: 210, Found: 210, Queries: 64},
		},
		{
			name: "step ranges split to bound points", tenants: []string{"a"}, active: 4, ackSteps: steps, edit: keep, pointLimit: 2,
			want: VerifyResult{Expected: 12, Found: 12, Queries: 8},
		},
		{
			name: "query API failing", tenants: []string{"a"}, active: 4, ackSteps: steps, edit: keep, status: http.StatusUnprocessableEntity,
			wantErr: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gen := NewGenerator(9, tc.active, 5, tc.churn, intervalMs)
			plan := NewPlan(tc.tenants, tc.active, 3)
			acks := &AckLog{}
			for k := range int64(steps) {
				acks.AddStep(len(plan.Requests))
				for r, spec := range plan.Requests {
					if k < tc.ackSteps {
						acks.Ack(k, r, spec.Hi-spec.Lo)
					}
				}
			}
			if tc.churn > 0 {
				require.NotZero(t, gen.Generation(0, steps-1), "the test churns")
			}
			srv := httptest.NewServer(&queryAPI{t: t, gen: gen, plan: plan, startMs: startMs, intervalMs: intervalMs, edit: tc.edit, status: tc.status})
			defer srv.Close()

			limit := tc.pointLimit
			if limit == 0 {
				limit = 1000
			}
			v := &Verifier{
				QueryURL: srv.URL + "/prometheus/", HTTP: &http.Client{Timeout: 10 * time.Second},
				Gen: gen, Plan: plan, Acks: acks, StartMs: startMs, IntervalMs: intervalMs,
				Steps: steps, Concurrency: 2, MaxPointsPerQuery: limit,
			}
			got, err := v.Run(context.Background())
			srv.Client().CloseIdleConnections()
			v.HTTP.CloseIdleConnections()
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestAPITime(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"1700000000.123", 1700000000123, false},
		{"1700000000.5", 1700000000500, false},
		{"1700000000", 1700000000000, false},
		{"1700000000.1234", 0, true},
		{"x", 0, true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseAPITime(tc.in)
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			back, err := parseAPITime(formatAPITime(got))
			require.NoError(t, err)
			require.Equal(t, got, back)
		})
	}
}
