package queryrange

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/neocortex-metrics/neocortex/pkg/cache"
	"github.com/neocortex-metrics/neocortex/pkg/tenant"
)

// TestEquivalence requires the middlewares to answer every query of a
// table with the very bytes Prometheus's API writes for the step-aligned
// request unsplit: split (cache off), split with a cold cache, warm
// (nothing reaches downstream when cacheable), and partially warm (only the
// missing sub-ranges reach downstream, exactly those).
func TestEquivalence(t *testing.T) {
	st := tenDays(t)
	eng := testEngine()
	downstream := engineHandler(t, eng, st)
	now := func() time.Time { return time.UnixMilli(100 * day) }
	ctx := tenant.WithTenant(context.Background(), "t1")

	rows := []struct {
		name             string
		query            string
		start, end, step int64
		// uncacheable queries read data after their evaluation time.
		uncacheable bool
	}{
		{"sum of rates, step 5m", `sum by (code) (rate(http_requests_total[10m]))`, day/2 + 7*minute, 4*day + 7*hour, 5 * minute, false},
		{"rates, step 7m does not divide a day", `rate(http_requests_total{instance=~"i1|i7"}[15m])`, day - 3*hour, 5*day + 2*hour, 7 * minute, false},
		{"increase across a counter reset", `increase(http_requests_total{instance="i7"}[1h])`, 2 * day, 6 * day, 10 * minute, false},
		{"offset, step 17m", `memory_bytes offset 1h`, day + 5*minute, 3*day + 11*minute, 17 * minute, false},
		{"negative offset", `memory_bytes{zone="z1"} offset -2h`, day, 4 * day, 30 * minute, true},
		{"@ timestamp", `memory_bytes{zone="z0"} @ 200000`, day / 2, 3 * day, hour, false},
		{"@ start()", `sum(memory_bytes @ start())`, day + 3*hour, 5 * day, 20 * minute, false},
		{"@ end() on a range selector", `sum by (code) (rate(http_requests_total[1h] @ end()))`, 2 * day, 5*day + 5*hour, 45 * minute, false},
		{"@ start() and offset", `memory_bytes{instance="i4"} @ start() offset 30m - memory_bytes{instance="i4"}`, day, 3 * day, 30 * minute, false},
		{"subquery", `max_over_time(memory_bytes{zone="z2"}[1h:5m])`, 3*day - 2*hour, 6 * day, 13 * minute, false},
		{"subquery @ end()", `max_over_time(rate(http_requests_total{code="500"}[10m])[2h:7m] @ end())`, day, 3 * day, hour, false},
		{"classic histogram_quantile", `histogram_quantile(0.9, sum by (le) (rate(request_duration_seconds_bucket[10m])))`, day, 4 * day, 10 * minute, false},
		{"native histogram_quantile", `histogram_quantile(0.5, rate(rpc_latency_seconds[10m]))`, 0, 3 * day, 15 * minute, false},
		{"native histograms", `rate(rpc_latency_seconds[10m])`, day, 2*day + 12*hour, 30 * minute, false},
		{"native histograms raw", `rpc_latency_seconds`, day - 1, 3 * day, hour, false},
		{"topk", `topk(3, memory_bytes)`, 2 * day, 7 * day, hour, false},
		{"step 5h does not divide a day", `sum(memory_bytes)`, 0, 10 * day, 5 * hour, false},
		{"step 25h is above the interval", `sum by (zone) (memory_bytes)`, 0, 10 * day, 25 * hour, false},
		{"step a day", `count(http_requests_total)`, 0, 10 * day, day, false},
		{"empty result", `nonexistent_metric`, day, 3 * day, hour, false},
		{"NaN and +Inf", `memory_bytes{instance=~"i0|i1"} / 0`, 0, 2 * day, 2 * hour, false},
		{"tiny and huge values", `memory_bytes{instance="i1"} * 1e-12 or label_replace(memory_bytes{instance="i2"} * 1e25, "x", "huge", "", "")`, 0, 2 * day, 2 * hour, false},
		{"label values with <, > and &", `label_replace(memory_bytes{instance="i5"}, "x", "<a&b>", "", "")`, day, 2 * day, hour, false},
		{"gaps, stale and negative values", `sparse_gauge`, 0, 10 * day, 10 * minute, false},
		{"time() and timestamp()", `time() - timestamp(memory_bytes{instance="i3"})`, day, 2 * day, 7 * minute, false},
		{"unaligned start and end", `sum(rate(http_requests_total[10m]))`, day + 123456, 3*day + 98765, 5 * minute, false},
		{"range() in a range", `sum by (code) (increase(http_requests_total{instance="i3"}[range()]))`, day, 3 * day, hour, false},
		{"range() in a duration function", `max_over_time(memory_bytes{instance="i9"}[min_of(range(), 6h)])`, day + 30*minute, 2*day + 12*hour, 30 * minute, false},
		{"step() in an offset", `memory_bytes{instance="i9"} offset step()`, day, 3 * day, 50 * minute, true},
		{"one point", `sum(memory_bytes)`, 2*day + 7*minute, 2*day + 7*minute, minute, false},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			req := &Request{Path: "/api/v1/query_range", Query: row.query, Start: row.start, End: row.end, Step: row.step}
			aligned := req.WithRange(floorTo(req.Start, req.Step), floorTo(req.End, req.Step))
			want, err := evalBody(t, eng, st, aligned)
			require.NoError(t, err)
			wantResp, err := decodeResponseBody(want)
			require.NoError(t, err)
			// Prometheus writes annotations in random order.
			require.Empty(t, wantResp.Warnings)
			require.Empty(t, wantResp.Infos)
			parts := splitRequest(pinned(t, aligned), day)

			t.Run("split", func(t *testing.T) {
				cfg := alignedConfig()
				cfg.CacheResults = false
				rec := &recorder{next: downstream}
				got, err := mustTripperware(t, cfg, Deps{})(rec).Do(ctx, req)
				require.NoError(t, err)
				require.Equal(t, string(want), encode(t, got))
				require.Equal(t, ranges(parts), ranges(rec.take()))
			})

			t.Run("cold then warm cache", func(t *testing.T) {
				rec := &recorder{next: downstream}
				h := mustTripperware(t, alignedConfig(), Deps{Cache: newTestCache(), Now: now})(rec)
				got, err := h.Do(ctx, req)
				require.NoError(t, err)
				require.Equal(t, string(want), encode(t, got))
				cold := rec.take()
				require.Equal(t, ranges(parts), ranges(cold))
				for _, r := range cold {
					require.Equal(t, parts[0].Query, r.Query)
				}

				got, err = h.Do(ctx, req)
				require.NoError(t, err)
				require.Equal(t, string(want), encode(t, got))
				if row.uncacheable {
					require.Equal(t, ranges(parts), ranges(rec.take()))
				} else {
					require.Empty(t, rec.take())
				}
			})

			t.Run("partially warm cache", func(t *testing.T) {
				rec := &recorder{next: downstream}
				h := mustTripperware(t, alignedConfig(), Deps{Cache: newTestCache(), Now: now})(rec)
				mid := req.Start + (req.End-req.Start)/2
				_, err := h.Do(ctx, req.WithRange(req.Start, mid))
				require.NoError(t, err)
				rec.take()

				got, err := h.Do(ctx, req)
				require.NoError(t, err)
				require.Equal(t, string(want), encode(t, got))

				alignedMid := aligned.WithRange(aligned.Start, floorTo(mid, req.Step))
				expected := parts
				if !row.uncacheable && pinned(t, alignedMid).Query == parts[0].Query {
					rest := pinned(t, aligned).WithRange(alignedMid.End+req.Step, aligned.End)
					expected = nil
					if rest.Start <= rest.End {
						expected = splitRequest(rest, day)
					}
				}
				require.Equal(t, ranges(expected), ranges(rec.take()))
			})
		})
	}
}

// pinned returns r with its query pinned as SplitByInterval pins it.
func pinned(t testing.TB, r *Request) *Request {
	t.Helper()
	expr, err := defaultParser().ParseExpr(r.Query)
	require.NoError(t, err)
	expr, changed, err := pinRange(expr, r)
	require.NoError(t, err)
	if !changed {
		return r
	}
	return r.WithQuery(expr.String())
}

func newTestCache() cache.Cache {
	return cache.NewInMemory(1<<30, "test", prometheus.NewRegistry())
}

func mustTripperware(t testing.TB, cfg Config, deps Deps) Middleware {
	t.Helper()
	if deps.Registerer == nil {
		deps.Registerer = prometheus.NewRegistry()
	}
	mw, err := NewTripperware(cfg, deps)
	require.NoError(t, err)
	return mw
}
