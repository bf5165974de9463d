package querysharding

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/require"

	"github.com/neocortex-metrics/neocortex/pkg/frontend/queryrange"
	"github.com/neocortex-metrics/neocortex/pkg/querier"
)

const (
	// Samples every 16s from t0, for two hours: a rate over [32s] at a
	// step on the grid is delta/16, exact in float64, and so are sums of
	// such rates (see equivalenceData).
	testScrape = 16 * time.Second
	testT0     = int64(1_700_000_000_000) // a multiple of 16s
	testSpan   = 2 * time.Hour
)

// testRequest is a range query over most of the data, on the sample grid.
func testRequest(q string) *queryrange.Request {
	start := testT0 + 40*testScrape.Milliseconds()
	return &queryrange.Request{Path: "/prometheus/api/v1/query_range", Start: start, End: start + 100*64_000, Step: 64_000, Query: q}
}

// equivalenceData writes about 1000 series over two hours:
//
//	requests_total{job,instance,method}  200 counters: integer steps, some resets and gaps
//	errors_total{job,instance,code}      100 sparse counters
//	temperature{job,instance,sensor}     300 gauges: multiples of 0.25, NaN, ±Inf, gaps, stale markers
//	queue_depth{job,instance,queue}      400 integer gauges, some NaN
//	latency_seconds{job,instance}         50 native histograms
//	load{job,instance}                    50 gauges of random floats, never equal
//	signed_zero{i}                        10 gauges, each +0 or -0
//	dup_a{x="1"}, dup_b{x="1"}           two series that differ only by their name
//
// Values are chosen so that every sum the tests expect to be exact is: the
// partial sums of the shards are exact in float64, whatever the order.
func equivalenceData(t testing.TB) storage.Queryable {
	t.Helper()
	db, err := tsdb.Open(t.TempDir(), slog.New(slog.DiscardHandler), nil, tsdb.DefaultOptions(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })

	rng := rand.New(rand.NewPCG(7, 11))
	steps := int(testSpan / testScrape)
	jobs := []string{"api", "db", "web", "cache", "queue"}
	type gen func(i int) (float64, bool) // value at step i, or none
	var (
		lsets []labels.Labels
		gens  []gen
	)
	add := func(ls labels.Labels, g gen) { lsets = append(lsets, ls); gens = append(gens, g) }
	gap := func() (int, int) { // a gap of 20 to 40 minutes in some series
		if rng.IntN(10) != 0 {
			return -1, -1
		}
		from := rng.IntN(steps)
		return from, from + 75 + rng.IntN(75)
	}
	for _, job := range jobs {
		for inst := range 10 {
			instance := fmt.Sprintf("i-%d", inst)
			for _, method := range []string{"GET", "POST", "PUT", "DELETE"} {
				v, resetAt := float64(1000+rng.IntN(1000)), -1
				if rng.IntN(10) == 0 {
					resetAt = rng.IntN(steps)
				}
				from, to := gap()
				incs := make([]float64, steps)
				for i := range incs {
					incs[i] = float64(rng.IntN(10))
				}
				add(labels.FromStrings("__name__", "requests_total", "job", job, "instance", instance, "method", method), func(i int) (float64, bool) {
					v += incs[i]
					if i == resetAt {
						v = math.Floor(v / 2)
					}
					return v, i < from || i >= to
				})
			}
			for _, code := range []string{"500", "503"} {
				v := float64(500 + rng.IntN(100))
				from, to := gap()
				incs := make([]float64, steps)
				for i := range incs {
					if rng.IntN(8) == 0 {
						incs[i] = 1
					}
				}
				add(labels.FromStrings("__name__", "errors_total", "job", job, "instance", instance, "code", code), func(i int) (float64, bool) {
					v += incs[i]
					return v, i < from || i >= to
				})
			}
			for _, sensor := range []string{"a", "b", "c", "d", "e", "f"} {
				vals := make([]float64, steps)
				for i := range vals {
					switch r := rng.IntN(100); {
					case r < 2:
						vals[i] = math.NaN()
					case r < 3:
						vals[i] = math.Inf(1)
					case r < 4:
						vals[i] = math.Inf(-1)
					default:
						vals[i] = float64(rng.IntN(801)-400) / 4
					}
				}
				from, to := gap()
				stale := -1
				if rng.IntN(20) == 0 {
					stale = rng.IntN(steps)
				}
				add(labels.FromStrings("__name__", "temperature", "job", job, "instance", instance, "sensor", sensor), func(i int) (float64, bool) {
					switch {
					case i == stale:
						return math.Float64frombits(value.StaleNaN), true
					case stale >= 0 && i > stale:
						return 0, false
					}
					return vals[i], i < from || i >= to
				})
			}
			loads := make([]float64, steps)
			for i := range loads {
				loads[i] = rng.Float64() * 100
			}
			add(labels.FromStrings("__name__", "load", "job", job, "instance", instance), func(i int) (float64, bool) {
				return loads[i], true
			})
			for q := range 8 {
				vals := make([]float64, steps)
				for i := range vals {
					vals[i] = float64(rng.IntN(101))
					if rng.IntN(200) == 0 {
						vals[i] = math.NaN()
					}
				}
				add(labels.FromStrings("__name__", "queue_depth", "job", job, "instance", instance, "queue", fmt.Sprintf("q%d", q)), func(i int) (float64, bool) {
					return vals[i], true
				})
			}
		}
	}
	app := db.Appender(context.Background())
	for i := range steps {
		ts := testT0 + int64(i)*testScrape.Milliseconds()
		for s, ls := range lsets {
			if v, ok := gens[s](i); ok {
				_, err := app.Append(0, ls, ts, v)
				require.NoError(t, err)
			}
		}
		for j, job := range jobs {
			for inst := range 10 {
				h := &histogram.Histogram{
					Schema: 0, ZeroThreshold: 1e-128,
					ZeroCount: uint64(i + 1), Sum: float64(4 * (i + 1) * (10*j + inst + 2)),
					PositiveSpans:   []histogram.Span{{Offset: 0, Length: 3}},
					PositiveBuckets: []int64{int64(3 * (i + 1) * (inst + 1)), 0, int64(-(i + 1) * (inst + 1))},
				}
				h.Count = h.ZeroCount + uint64(3*(i+1)*(inst+1))*2 + uint64(2*(i+1)*(inst+1))
				ls := labels.FromStrings("__name__", "latency_seconds", "job", job, "instance", fmt.Sprintf("i-%d", inst))
				_, err := app.AppendHistogram(0, ls, ts, h, nil)
				require.NoError(t, err)
			}
		}
		for z := range 10 {
			_, err := app.Append(0, labels.FromStrings("__name__", "signed_zero", "i", fmt.Sprint(z%5)+fmt.Sprint(z)), ts, math.Copysign(0, float64((i+z)%3-1)))
			require.NoError(t, err)
		}
		for _, name := range []string{"dup_a", "dup_b"} {
			_, err := app.Append(0, labels.FromStrings("__name__", name, "x", "1"), ts, float64(i))
			require.NoError(t, err)
		}
		if i%100 == 99 {
			require.NoError(t, app.Commit())
			app = db.Appender(context.Background())
		}
	}
	require.NoError(t, app.Commit())
	return querier.ShardingQueryable{Queryable: db}
}

// engineHandler answers range queries with a PromQL engine over q, as the
// querier's API would: annotations as Prometheus words them (sorted, as
// Prometheus's order is a map's), errors as an HTTPError with the API's
// body.
func engineHandler(q storage.Queryable) queryrange.Handler {
	engine := promql.NewEngine(promql.EngineOpts{
		MaxSamples:               50_000_000,
		Timeout:                  time.Minute,
		LookbackDelta:            5 * time.Minute,
		EnableAtModifier:         true,
		EnableNegativeOffset:     true,
		NoStepSubqueryIntervalFn: func(int64) int64 { return time.Minute.Milliseconds() },
	})
	return queryrange.HandlerFunc(func(ctx context.Context, r *queryrange.Request) (*queryrange.Response, error) {
		qry, err := engine.NewRangeQuery(ctx, q, nil, r.Query, time.UnixMilli(r.Start), time.UnixMilli(r.End), time.Duration(r.Step)*time.Millisecond)
		if err != nil {
			return nil, &queryrange.HTTPError{Code: http.StatusBadRequest, Body: []byte(err.Error())}
		}
		defer qry.Close()
		res := qry.Exec(ctx)
		if res.Err != nil {
			return nil, &queryrange.HTTPError{Code: http.StatusUnprocessableEntity, Body: []byte(res.Err.Error())}
		}
		mat, err := res.Matrix()
		if err != nil {
			return nil, err
		}
		warnings, infos := res.Warnings.AsStrings(r.Query, 10, 10)
		slices.Sort(warnings)
		slices.Sort(infos)
		if len(warnings) == 0 {
			warnings = nil
		}
		if len(infos) == 0 {
			infos = nil
		}
		return &queryrange.Response{
			Status:   "success",
			Data:     queryrange.Data{ResultType: model.ValMatrix, Result: toModel(mat)},
			Warnings: warnings,
			Infos:    infos,
		}, nil
	})
}

func toModel(m promql.Matrix) model.Matrix {
	out := make(model.Matrix, 0, len(m))
	for _, s := range m {
		ss := &model.SampleStream{Metric: model.Metric{}}
		s.Metric.Range(func(l labels.Label) { ss.Metric[model.LabelName(l.Name)] = model.LabelValue(l.Value) })
		for _, p := range s.Floats {
			ss.Values = append(ss.Values, model.SamplePair{Timestamp: model.Time(p.T), Value: model.SampleValue(p.F)})
		}
		for _, p := range s.Histograms {
			ss.Histograms = append(ss.Histograms, model.SampleHistogramPair{Timestamp: model.Time(p.T), Histogram: toModelHistogram(p.H)})
		}
		out = append(out, ss)
	}
	return out
}

func toModelHistogram(h *histogram.FloatHistogram) *model.SampleHistogram {
	out := &model.SampleHistogram{Count: model.FloatString(h.Count), Sum: model.FloatString(h.Sum)}
	it := h.AllBucketIterator()
	for it.Next() {
		b := it.At()
		if b.Count == 0 {
			continue
		}
		boundaries := int32(2)
		switch {
		case b.LowerInclusive && b.UpperInclusive:
			boundaries = 3
		case b.LowerInclusive:
			boundaries = 1
		case b.UpperInclusive:
			boundaries = 0
		}
		out.Buckets = append(out.Buckets, &model.HistogramBucket{Boundaries: boundaries, Lower: model.FloatString(b.Lower), Upper: model.FloatString(b.Upper), Count: model.FloatString(b.Count)})
	}
	return out
}

// countingHandler counts the queries it passes on, and the shard queries.
type countingHandler struct {
	next          queryrange.Handler
	calls, shards atomic.Int64
}

func (c *countingHandler) Do(ctx context.Context, r *queryrange.Request) (*queryrange.Response, error) {
	c.calls.Add(1)
	if strings.Contains(r.Query, querier.ShardLabel) {
		c.shards.Add(1)
	}
	return c.next.Do(ctx, r)
}

// answer is a response as JSON, or its error.
func answer(t *testing.T, h queryrange.Handler, q string) string {
	t.Helper()
	resp, err := h.Do(context.Background(), testRequest(q))
	if err != nil {
		var he *queryrange.HTTPError
		require.True(t, errors.As(err, &he), "%v", err)
		return fmt.Sprintf("error %d: %s", he.Code, he.Body)
	}
	b, err := json.Marshal(resp)
	require.NoError(t, err)
	return string(b)
}

// equivalenceQueries are answered byte for byte the same sharded as whole.
// sharded is whether the query is split; fallback, when set, the reason
// the merge gives up for every shard count but 1.
var equivalenceQueries = []struct {
	query    string
	sharded  bool
	fallback string
}{
	// sum, exact over this data.
	{query: `sum(requests_total)`, sharded: true},
	{query: `sum by (job) (requests_total)`, sharded: true},
	{query: `sum without (instance) (requests_total)`, sharded: true},
	{query: `sum by (job) (rate(requests_total[32s]))`, sharded: true},
	{query: `sum(irate(requests_total[1m]))`, sharded: true},
	{query: `sum by (code) (increase(errors_total[32s]))`, sharded: true},
	{query: `sum(temperature)`, sharded: true}, // NaN, ±Inf
	{query: `sum by (job, sensor) (temperature)`, sharded: true},
	{query: `sum(abs(temperature))`, sharded: true},
	{query: `sum by (job) (clamp(temperature, -10, 10))`, sharded: true},
	{query: `sum(sum_over_time(queue_depth[5m]))`, sharded: true},
	{query: `sum(count_over_time(temperature[10m]))`, sharded: true},
	{query: `sum(changes(queue_depth[15m]))`, sharded: true},
	{query: `sum by (job) (resets(requests_total[30m]))`, sharded: true},
	{query: `sum(timestamp(queue_depth))`, sharded: true},
	{query: `sum(-queue_depth)`, sharded: true},
	{query: `sum(queue_depth offset 10m)`, sharded: true},
	{query: `sum(queue_depth @ end())`, sharded: true},
	{query: "sum without (queue) (\n  queue_depth / 4\n)", sharded: true},
	// min, max.
	{query: `min(temperature)`, sharded: true},
	{query: `max by (job) (temperature)`, sharded: true},
	{query: `min without (sensor) (temperature)`, sharded: true},
	{query: `max(rate(requests_total[5m]))`, sharded: true},
	{query: `min by (job) (deriv(temperature[10m]))`, sharded: true},
	{query: `max(ceil(temperature / 3))`, sharded: true},
	{query: `max(max_over_time(rate(requests_total[5m])[30m:2m]))`, sharded: true},
	{query: `max(max_over_time(temperature[5m] offset 5m))`, sharded: true},
	{query: `max by (job) (rate(temperature[5m]))`, sharded: true}, // an info annotation, with a position
	{query: "min without (sensor) (\n    irate(temperature[1m])\n)", sharded: true},
	{query: "max without (sensor) (\n    rate(temperature[5m])\n)", sharded: true}, // the info on line 2
	{query: `max(signed_zero)`, sharded: true},                                     // +0 and -0: which one comes first
	{query: `min by (i) (signed_zero)`, sharded: true},
	// count, group.
	{query: `count(temperature)`, sharded: true},
	{query: `count by (job) (temperature > 10)`, sharded: true},
	{query: `count without (instance, method) (requests_total)`, sharded: true},
	{query: `count(queue_depth > bool 50)`, sharded: true},
	{query: `group by (job) (requests_total)`, sharded: true},
	{query: `group(temperature)`, sharded: true},
	// avg: sum and count.
	{query: `avg(queue_depth)`, sharded: true},
	{query: `avg by (job) (temperature)`, sharded: true},
	{query: `avg without (queue) (queue_depth / 4)`, sharded: true},
	{query: `avg by (job) (rate(requests_total[32s]))`, sharded: true},
	// topk, bottomk.
	{query: `topk(3, rate(requests_total[5m]))`, sharded: true},
	{query: `bottomk by (job) (2, rate(errors_total[10m]))`, sharded: true},
	{query: `topk without (instance) (1, deriv(temperature[15m]))`, sharded: true},
	{query: `topk(3, load)`, sharded: true},
	{query: `bottomk by (job) (2, load)`, sharded: true},
	{query: `topk without (instance) (1, deriv(load[10m]))`, sharded: true},
	{query: `bottomk(5, max_over_time(load[5m]))`, sharded: true},
	{query: `topk by (job) (2, -load * 3)`, sharded: true},
	{query: `topk(5, temperature)`, sharded: true},              // ties: +Inf
	{query: `bottomk by (job) (3, queue_depth)`, sharded: true}, // ties: integers
	// Native histograms.
	{query: `sum(latency_seconds)`, sharded: true, fallback: reasonHistograms},
	{query: `avg by (job) (latency_seconds)`, sharded: true, fallback: reasonHistograms},
	{query: `sum by (job) ({instance="i-1"})`, sharded: true, fallback: reasonHistograms}, // floats and histograms
	{query: `count by (job) (latency_seconds)`, sharded: true},
	{query: `sum(histogram_count(latency_seconds))`, sharded: true},
	{query: `topk(2, histogram_sum(rate(latency_seconds[5m])))`, sharded: true},
	{query: `max(latency_seconds)`, sharded: true}, // histograms ignored, with an info
	// Answered whole.
	{query: `sum(rate(requests_total[5m])) / sum(rate(errors_total[5m]))`},
	{query: `quantile(0.5, temperature)`},
	{query: `stddev by (job) (queue_depth)`},
	{query: `count_values("v", queue_depth{queue="q0"})`},
	{query: `sum(label_replace(queue_depth, "x", "$1", "queue", "(.*)"))`},
	{query: `sum(sum by (job) (queue_depth))`},
	{query: `sum(queue_depth * on (job, instance, queue) queue_depth)`},
	{query: `histogram_quantile(0.9, sum by (job) (rate(latency_seconds[5m])))`},
	{query: `sum(abs({__name__=~"dup_.*"}))`}, // an error: same labels once the name is gone
	{query: `sum(queue_depth{__query_shard__="2_of_3"})`},
	{query: `rate(requests_total{job="api", instance="i-1"}[5m])`},
}

// TestShardedEqualsUnsharded answers each query whole, then through the
// middleware with 1, 3 and 16 shards: the JSON must be the same byte for
// byte.
func TestShardedEqualsUnsharded(t *testing.T) {
	down := engineHandler(equivalenceData(t))
	want := map[string]string{}
	for _, tc := range equivalenceQueries {
		want[tc.query] = answer(t, down, tc.query)
	}
	for _, n := range []int{1, 3, 16} {
		t.Run(fmt.Sprintf("shards=%d", n), func(t *testing.T) {
			for _, tc := range equivalenceQueries {
				t.Run(tc.query, func(t *testing.T) {
					counting := &countingHandler{next: down}
					metrics := NewMetrics(prometheus.NewRegistry())
					h := Middleware(Config{Enabled: true, TotalShards: n, MaxShardedQueries: 4}, metrics, slog.New(slog.DiscardHandler))(counting)
					require.Equal(t, want[tc.query], answer(t, h, tc.query))

					if !tc.sharded {
						require.Equal(t, int64(1), counting.calls.Load())
						require.Zero(t, testutil.ToFloat64(metrics.sharded))
						return
					}
					parts := int64(1)
					if strings.HasPrefix(tc.query, "avg") {
						parts = 2
					}
					require.Equal(t, parts*int64(n), counting.shards.Load())
					whole := counting.calls.Load() - counting.shards.Load()
					require.Equal(t, 1-whole, int64(testutil.ToFloat64(metrics.sharded)))
					if tc.fallback != "" && n > 1 {
						require.Equal(t, int64(1), whole, "answered whole after the shards")
						require.Equal(t, 1.0, testutil.ToFloat64(metrics.unsharded.WithLabelValues(tc.fallback)))
					}
					if whole > 0 {
						t.Log("answered whole after the shards")
					}
				})
			}
		})
	}
}

// TestShardedFloatSums: sums of values that are not exact in float64 are
// rounded differently when added up by shard. The series and steps are
// the same; the values differ by a unit or two in the last place, more
// where positive and negative values cancel out (the error is relative to
// the values added, not to their sum).
func TestShardedFloatSums(t *testing.T) {
	down := engineHandler(equivalenceData(t))
	for _, q := range []string{
		`sum(rate(requests_total[5m]))`,
		`sum by (job) (load)`,
		`avg(load)`,
		`avg by (job) (rate(requests_total[5m]))`,
		`sum without (instance) (deriv(load[10m]))`,
	} {
		t.Run(q, func(t *testing.T) {
			want, err := down.Do(context.Background(), testRequest(q))
			require.NoError(t, err)
			for _, n := range []int{3, 16} {
				h := Middleware(Config{Enabled: true, TotalShards: n, MaxShardedQueries: 4}, NewMetrics(prometheus.NewRegistry()), slog.New(slog.DiscardHandler))(down)
				got, err := h.Do(context.Background(), testRequest(q))
				require.NoError(t, err)
				require.Len(t, got.Data.Result, len(want.Data.Result))
				points, differ, maxULPs, maxDiff := 0, 0, uint64(0), 0.0
				for i, ws := range want.Data.Result {
					gs := got.Data.Result[i]
					require.Equal(t, ws.Metric, gs.Metric)
					require.Len(t, gs.Values, len(ws.Values))
					for j, wp := range ws.Values {
						gp := gs.Values[j]
						require.Equal(t, wp.Timestamp, gp.Timestamp)
						points++
						if wp.Value == gp.Value {
							continue
						}
						differ++
						a, b := math.Float64bits(float64(wp.Value)), math.Float64bits(float64(gp.Value))
						maxULPs = max(maxULPs, max(a, b)-min(a, b))
						maxDiff = max(maxDiff, math.Abs(float64(wp.Value-gp.Value)))
						require.InDelta(t, float64(wp.Value), float64(gp.Value), 1e-12*max(1, math.Abs(float64(wp.Value))))
					}
				}
				t.Logf("%d shards: %d of %d values differ, by at most %d ulp, %g", n, differ, points, maxULPs, maxDiff)
			}
		})
	}
}
