package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/require"

	"github.com/neocortex-metrics/neocortex/pkg/app"
)

// TestPromQLEquivalence writes one generated data set to a 3-ingester RF=3
// cluster and to a local Prometheus TSDB, then evaluates a table of queries
// on both, Neocortex through its HTTP API and the local TSDB with
// Prometheus's engine, and requires the very same answers: labels, values
// bit for bit (NaN equal to NaN) and timestamps. Every ingester holds every
// sample, so a replica's sample counted twice, a chunk boundary or a stale
// marker that leaks through the read path changes an answer.
func TestPromQLEquivalence(t *testing.T) {
	const tenant = "equivalence"
	ctx := context.Background()
	// The TSDB cuts head chunks at multiples of its 2h block range and
	// spreads the chunks before evenly, so the data ends at the last odd
	// hour (UTC), up to 2h ago: every series is then cut at the same places
	// in every run, one of them 1h before the end.
	ds := equivData(time.Now().Add(-time.Hour).Truncate(2 * time.Hour).Add(time.Hour))

	first := clusterConfig(t, app.Ingester, "ingester-1", nil)
	seed := []string{fmt.Sprintf("127.0.0.1:%d", first.Memberlist.TCPTransport.BindPort)}
	ingesters := []*app.App{startApp(t, first)}
	for i := 2; i <= 3; i++ {
		ingesters = append(ingesters, startApp(t, clusterConfig(t, app.Ingester, fmt.Sprintf("ingester-%d", i), seed)))
	}
	frontCfg := clusterConfig(t, app.Distributor+","+app.Querier, "front", seed)
	frontCfg.Limits.IngestionRate = 0 // the whole data set arrives in a few seconds
	front := startApp(t, frontCfg)
	eventually(t, 30*time.Second, func() bool { return front.Ring.InstancesCount() == 3 }, "the front sees 3 ingesters")

	db, err := tsdb.Open(t.TempDir(), slog.New(slog.DiscardHandler), nil, tsdb.DefaultOptions(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })

	t.Cleanup(func() {
		if t.Failed() {
			equivLogIngestion(t, ingesters)
		}
	})
	// Both stores get the same requests in the same order: in time slices
	// across all series, as a Prometheus server sends them, which keeps every
	// sample inside the head's appendable window.
	rw := pushClient(front, tenant)
	total := 0
	for _, req := range ds.requests(10 * time.Minute) {
		require.NoError(t, rw.Push(ctx, req))
		local := db.Appender(ctx)
		for _, s := range req.Timeseries {
			ls := equivLabels(s.Labels)
			for _, x := range s.Samples {
				_, err := local.Append(0, ls, x.Timestamp, x.Value)
				require.NoError(t, err)
			}
			for _, h := range s.Histograms {
				_, err := local.AppendHistogram(0, ls, h.Timestamp, h.ToIntHistogram(), nil)
				require.NoError(t, err)
			}
			total += len(s.Samples) + len(s.Histograms)
		}
		require.NoError(t, local.Commit())
		// A push returns once a quorum has the samples. Wait for the third
		// replica too: every ingester then answers every query with all
		// samples, and the next push cannot overtake this one on a slow
		// replica, where it would make these samples out of order.
		eventually(t, 30*time.Second, func() bool {
			for _, ing := range ingesters {
				if counterValue(t, ing, "neocortex_ingester_ingested_samples_total", map[string]string{"tenant": tenant}) != float64(total) {
					return false
				}
			}
			return true
		}, fmt.Sprintf("every ingester holds the %d samples pushed so far", total))
	}
	require.Equal(t, ds.samples, total)

	engine := promql.NewEngine(promql.EngineOpts{
		Logger:               slog.New(slog.DiscardHandler),
		Timeout:              time.Minute,
		MaxSamples:           50e6,
		LookbackDelta:        5 * time.Minute,
		EnableAtModifier:     true,
		EnableNegativeOffset: true,
		// Prometheus's default for a subquery without a step: the global
		// evaluation interval, 1m unless configured.
		NoStepSubqueryIntervalFn: func(int64) int64 { return time.Minute.Milliseconds() },
	})

	ranges := []struct {
		name       string
		start, end time.Time
		step       time.Duration
	}{
		{"all data, step 60s", ds.start, ds.end, time.Minute},
		{"across the gaps and stale markers, step 15s", ds.end.Add(-95 * time.Minute), ds.end.Add(-35 * time.Minute), 15 * time.Second},
		{"end of data and beyond, step 97s", ds.end.Add(-20*time.Minute + 123*time.Millisecond), ds.end.Add(15 * time.Minute), 97 * time.Second},
		{"start of data, step 30s", ds.start.Add(-10 * time.Minute), ds.start.Add(25 * time.Minute), 30 * time.Second},
	}
	instants := []time.Time{
		ds.end,
		ds.staleAt, // on the stale marker
		ds.staleAt.Add(-time.Millisecond),
		ds.end.Add(-67*time.Minute + 7*time.Millisecond), // in the gaps
		ds.start.Add(37 * equivStep),                     // on a sample of the aligned series
	}

	// The engine does not ask for sorted series, and the head then returns
	// them in creation order, while Neocortex's merge of the replicas returns
	// them sorted by labels. The order changes the rounding of stddev and
	// stdvar in the last bit, so the reference sorts too.
	reference := equivSortedQueryable{db}
	queries := equivQueries(ds)
	t.Run("the table covers PromQL", func(t *testing.T) { equivCoverage(t, queries) })

	evalLocal := func(t *testing.T, q promql.Query, err error) equivResult {
		t.Helper()
		require.NoError(t, err)
		defer q.Close()
		res := q.Exec(ctx)
		require.NoError(t, res.Err)
		return equivFromEngine(res.Value)
	}
	for _, q := range queries {
		t.Run(q.expr, func(t *testing.T) {
			t.Parallel() // GOMAXPROCS rows at once: one computes while another waits on the network
			nonEmpty := false
			if !q.instantOnly {
				for _, r := range ranges {
					pq, err := engine.NewRangeQuery(ctx, reference, nil, q.expr, r.start, r.end, r.step)
					want := evalLocal(t, pq, err)
					v := url.Values{"query": {q.expr}, "start": {equivSec(r.start)}, "end": {equivSec(r.end)}, "step": {strconv.FormatFloat(r.step.Seconds(), 'f', -1, 64)}}
					got := equivNeocortex(t, front, tenant, "/prometheus/api/v1/query_range", v)
					equivRequireSame(t, want, got, false, "range query %s", r.name)
					nonEmpty = nonEmpty || len(want.series) > 0
				}
			}
			for _, ts := range instants {
				pq, err := engine.NewInstantQuery(ctx, reference, nil, q.expr, ts)
				want := evalLocal(t, pq, err)
				v := url.Values{"query": {q.expr}, "time": {equivSec(ts)}}
				got := equivNeocortex(t, front, tenant, "/prometheus/api/v1/query", v)
				equivRequireSame(t, want, got, q.ordered, "instant query at %s (%d)", ts.UTC().Format(time.RFC3339Nano), ts.UnixMilli())
				nonEmpty = nonEmpty || len(want.series) > 0
			}
			require.True(t, nonEmpty || q.mayBeEmpty, "the query selects nothing anywhere: a comparison of empty results proves nothing")
		})
	}
}

// equivLogIngestion logs what each ingester ingested and discarded.
func equivLogIngestion(t *testing.T, ingesters []*app.App) {
	for i, ing := range ingesters {
		mfs, err := ing.Registry.Gather()
		require.NoError(t, err)
		for _, mf := range mfs {
			if mf.GetName() == "neocortex_ingester_ingested_samples_total" || mf.GetName() == "neocortex_discarded_samples_total" {
				for _, m := range mf.GetMetric() {
					t.Logf("ingester %d: %s %v %g", i+1, mf.GetName(), m.GetLabel(), m.GetCounter().GetValue())
				}
			}
		}
	}
}

// equivSortedQueryable always asks its storage for sorted series.
type equivSortedQueryable struct{ storage.Queryable }

func (s equivSortedQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	q, err := s.Queryable.Querier(mint, maxt)
	return equivSortedQuerier{q}, err
}

type equivSortedQuerier struct{ storage.Querier }

func (q equivSortedQuerier) Select(ctx context.Context, _ bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	return q.Querier.Select(ctx, true, hints, ms...)
}

// equivQuery is one row of the query table.
type equivQuery struct {
	expr        string
	instantOnly bool // a range vector: no range query
	ordered     bool // the order of an instant vector is part of the answer
	mayBeEmpty  bool // an empty answer everywhere is right
}

func equivQueries(ds *equivDataset) []equivQuery {
	at := equivSec(ds.start.Add(47*time.Minute + 123*time.Millisecond))
	stale := equivSec(ds.staleAt)
	q := func(expr string) equivQuery { return equivQuery{expr: expr} }
	rangeVector := func(expr string) equivQuery { return equivQuery{expr: expr, instantOnly: true} }
	ordered := func(expr string) equivQuery { return equivQuery{expr: expr, instantOnly: true, ordered: true} }
	return []equivQuery{
		// Selectors, raw samples included: duplicates would show here first.
		q(`http_requests_total`),
		q(`http_requests_total{job="api"}`),
		q(`http_requests_total{code!="200"}`),
		q(`http_requests_total{method=~"G.*",instance!~"i-[01]"}`),
		q(`{__name__=~"queue_.*|jobs_running"}`),
		q(`{__name__=~"node_.+",instance="i-1"}`),
		q(`{__name__=~".+"}`),
		q(`node_special`),
		q(`rpc_latency_native`),
		rangeVector(`{__name__=~".+"}[1h]`),
		rangeVector(`{__name__=~"queue_length|jobs_running"}[7m]`),
		rangeVector(`http_requests_total{job="web"}[1m] offset 30s`),
		rangeVector(`rpc_latency_native[5m]`),

		// Counters and gauges over ranges.
		q(`rate(http_requests_total[5m])`),
		q(`rate(errors_total[2m])`),
		q(`rate(errors_total{instance!="i-2"}[2m])`),
		q(`irate(http_requests_total{job="api"}[1m])`),
		q(`increase(errors_total[10m])`),
		q(`increase(http_requests_total[7m15s])`),
		q(`delta(node_temperature_celsius[10m])`),
		q(`idelta(queue_length[3m])`),
		q(`idelta(node_temperature_celsius[1m])`),
		q(`deriv(node_temperature_celsius[15m])`),
		q(`predict_linear(node_temperature_celsius[30m], 3600)`),
		q(`resets(http_requests_total[30m])`),
		q(`changes(process_up[30m])`),
		q(`changes(queue_length[1h])`),
		// The name goes, so these select metrics whose other labels differ.
		q(`count_over_time({__name__=~"http_requests_total|node_.+|queue_length|jobs_running|build_info|rpc_duration_seconds_(bucket|sum)"}[10m])`),
		q(`count_over_time({__name__=~"errors_total|process_up"}[10m])`),
		q(`count_over_time({__name__=~"rpc_duration_seconds_count|rpc_latency_native"}[10m])`),
		q(`sum by (job) (count_over_time(http_requests_total[1h] offset 5m))`),
		q(`avg_over_time(node_temperature_celsius[10m])`),
		q(`min_over_time(queue_length[20m])`),
		q(`max_over_time(node_special[10m])`),
		q(`sum_over_time(node_special[10m])`),
		q(`last_over_time(queue_length[10m])`),
		q(`last_over_time(node_temperature_celsius[10m])`),
		q(`first_over_time(jobs_running[30m])`),
		q(`present_over_time(queue_length[6m])`),
		q(`present_over_time(node_special[6m])`),
		q(`stddev_over_time(node_temperature_celsius[20m])`),
		q(`stdvar_over_time(node_special[5m])`),
		q(`quantile_over_time(0.9, node_temperature_celsius[30m])`),
		q(`quantile_over_time(0.5, node_special[15m])`),
		{expr: `absent(nonexistent_metric)`},
		{expr: `absent(http_requests_total{job="nope"})`},
		{expr: `absent(queue_length{queue="d"})`, mayBeEmpty: true},
		{expr: `absent(http_requests_total)`, mayBeEmpty: true},
		q(`absent_over_time(jobs_running[3m])`),
		q(`absent_over_time(queue_length{queue="b"}[5m])`),

		// Histograms, classic and native.
		q(`histogram_quantile(0.9, rate(rpc_duration_seconds_bucket[5m]))`),
		q(`histogram_quantile(0.5, sum by (le) (rate(rpc_duration_seconds_bucket[10m])))`),
		q(`histogram_quantile(0.99, sum by (le, instance) (increase(rpc_duration_seconds_bucket[15m])))`),
		q(`rate(rpc_duration_seconds_sum[5m]) / rate(rpc_duration_seconds_count[5m])`),
		q(`histogram_quantile(0.9, rate(rpc_latency_native[5m]))`),
		q(`histogram_count(rate(rpc_latency_native[5m]))`),
		q(`histogram_sum(increase(rpc_latency_native[10m]))`),
		q(`histogram_avg(rate(rpc_latency_native[5m]))`),
		q(`histogram_stddev(rpc_latency_native)`),
		q(`histogram_stdvar(rate(rpc_latency_native[5m]))`),
		q(`histogram_fraction(0, 1, rate(rpc_latency_native[5m]))`),
		q(`sum(rate(rpc_latency_native[5m]))`),

		// Aggregations.
		q(`sum(rate(http_requests_total[5m]))`),
		q(`sum by (job, code) (rate(http_requests_total[5m]))`),
		q(`avg without (instance) (node_temperature_celsius)`),
		q(`min by (sensor) (node_temperature_celsius)`),
		q(`max(node_special)`),
		q(`sum(node_special)`),
		q(`avg by (instance) (node_special)`),
		q(`count by (job) (http_requests_total)`),
		q(`group by (job, instance) (http_requests_total)`),
		q(`stddev by (job) (rate(http_requests_total[5m]))`),
		q(`stdvar(node_temperature_celsius)`),
		q(`topk(3, rate(http_requests_total[5m]))`),
		q(`bottomk by (job) (2, http_requests_total)`),
		q(`quantile by (job) (0.75, rate(http_requests_total[5m]))`),
		q(`count_values("value", process_up)`),
		q(`count_values without (instance) ("v", round(node_temperature_celsius))`),
		q(`sum by (queue) (queue_length)`),
		q(`sum by (sensor) (node_temperature_celsius)`),

		// Binary operators.
		q(`http_requests_total + 1`),
		q(`2 * node_temperature_celsius - 3`),
		q(`node_temperature_celsius / 0`),
		q(`node_temperature_celsius % 7`),
		q(`node_temperature_celsius ^ 2`),
		q(`-node_temperature_celsius`),
		q(`node_temperature_celsius atan2 on (instance) group_left node_special`),
		q(`rate(http_requests_total{code="500"}[5m]) / ignoring (code) rate(http_requests_total{code="200"}[5m])`),
		q(`rate(http_requests_total[5m]) * on (job, instance) group_left (version) build_info`),
		q(`build_info * on (job, instance) group_right (version) rate(http_requests_total[5m])`),
		q(`http_requests_total / on () group_left sum(http_requests_total)`),
		q(`node_temperature_celsius > 0`),
		q(`node_temperature_celsius > bool 0`),
		q(`process_up == 0`),
		q(`queue_length <= 5`),
		q(`node_temperature_celsius <= -10`),
		q(`queue_length != bool 3`),
		q(`process_up != bool 1`),
		q(`node_special >= 0`),
		q(`node_special == bool node_special`),
		q(`rate(http_requests_total[5m]) > 0.5 < 1.5`),
		q(`http_requests_total and on (job, instance) process_up == 1`),
		q(`queue_length or jobs_running`),
		q(`node_special or node_temperature_celsius`),
		q(`queue_length unless queue_length{queue="a"}`),
		q(`node_temperature_celsius unless node_temperature_celsius{sensor="cpu"}`),
		q(`http_requests_total unless ignoring (code, method) process_up == 0`),
		q(`vector(1) or absent(nonexistent_metric)`),
		q(`(1 + 2) * 3 - 4 / 5 % 6 ^ 0.5 < bool 7`),
		q(`scalar(sum(process_up)) * 2`),

		// Maths.
		q(`abs(node_temperature_celsius)`),
		q(`ceil(node_temperature_celsius)`),
		q(`floor(node_special)`),
		q(`round(node_temperature_celsius)`),
		q(`round(node_temperature_celsius, 0.25)`),
		q(`sqrt(node_temperature_celsius)`),
		q(`exp(node_temperature_celsius / 10)`),
		q(`ln(node_temperature_celsius)`),
		q(`log2(queue_length)`),
		q(`log2(http_requests_total)`),
		q(`log10(http_requests_total)`),
		q(`clamp(node_temperature_celsius, -5, 5)`),
		q(`clamp_min(node_special, 0)`),
		q(`clamp_max(node_special, 0)`),
		q(`sgn(node_special)`),
		q(`sin(node_temperature_celsius) + cos(node_temperature_celsius) + tan(node_temperature_celsius)`),
		q(`asin(node_temperature_celsius / 40) + acos(node_temperature_celsius / 40) + atan(node_temperature_celsius)`),
		q(`sinh(node_temperature_celsius / 10) + cosh(node_temperature_celsius / 10) + tanh(node_temperature_celsius)`),
		q(`asinh(node_temperature_celsius) + acosh(abs(node_temperature_celsius) + 1) + atanh(node_temperature_celsius / 40)`),
		q(`deg(node_temperature_celsius) - rad(node_temperature_celsius) * pi()`),

		// Time.
		q(`timestamp(queue_length)`),
		q(`timestamp(node_temperature_celsius)`),
		q(`timestamp(rpc_latency_native)`),
		q(`time()`),
		q(`minute()`),
		q(`hour(timestamp(queue_length))`),
		q(`hour(timestamp(node_temperature_celsius))`),
		q(`day_of_week()`),
		q(`day_of_month(timestamp(process_up))`),
		q(`day_of_year()`),
		q(`days_in_month()`),
		q(`month(timestamp(jobs_running))`),
		q(`year()`),

		// Labels, ordering, vector and scalar.
		q(`label_replace(http_requests_total, "status_class", "${1}xx", "code", "(.).*")`),
		q(`label_join(process_up, "target", "/", "job", "instance")`),
		ordered(`sort(node_temperature_celsius)`),
		ordered(`sort_desc(rate(http_requests_total[5m]))`),
		q(`vector(time())`),
		q(`scalar(process_up{job="api",instance="i-0"})`),
		q(`scalar(process_up)`),

		// Offset, @ and subqueries.
		q(`rate(http_requests_total[5m] offset 10m)`),
		q(`queue_length offset -5m`),
		q(`node_temperature_celsius offset -5m`),
		q(`sum(node_temperature_celsius offset 1h)`),
		q(`http_requests_total @ start()`),
		q(`rate(http_requests_total[5m] @ end())`),
		q(`node_temperature_celsius @ ` + at),
		q(`max_over_time(node_temperature_celsius[10m] @ ` + at + ` offset 5m)`),
		q(`queue_length @ ` + stale),
		q(`max_over_time(rate(http_requests_total[5m])[30m:1m])`),
		q(`min_over_time(queue_length[1h:97s])`),
		q(`rate(http_requests_total[10m:30s] offset 5m)`),
		q(`deriv(sum(node_temperature_celsius)[15m:1m] @ end())`),
		q(`max_over_time(max_over_time(node_temperature_celsius[5m])[30m:2m])`),
		q(`avg_over_time(node_temperature_celsius[20m:])`),

		// Staleness: queue d ends with a stale marker, jobs_running has one
		// and resumes.
		q(`queue_length{queue="d"}`),
		q(`jobs_running`),
		q(`count_over_time(jobs_running[10m])`),
		q(`last_over_time(queue_length{queue="d"}[10m])`),
	}
}

// equivCoverage requires that the rows use every PromQL function that is not experimental, every aggregation and
// every binary operator with its modifiers, offsets, @ and subqueries: a gap
// in the table is then a choice.
func equivCoverage(t *testing.T, queries []equivQuery) {
	seen := map[string]bool{}
	p := parser.NewParser(parser.Options{})
	for _, q := range queries {
		expr, err := p.ParseExpr(q.expr)
		require.NoError(t, err, q.expr)
		parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
			switch n := n.(type) {
			case *parser.Call:
				seen[n.Func.Name+"()"] = true
			case *parser.AggregateExpr:
				seen[n.Op.String()] = true
				seen[fmt.Sprintf("aggregation by=%t", !n.Without && len(n.Grouping) > 0)] = true
				seen[fmt.Sprintf("aggregation without=%t", n.Without)] = true
			case *parser.BinaryExpr:
				seen[n.Op.String()] = true
				seen[fmt.Sprintf("bool=%t", n.ReturnBool)] = true
				if m := n.VectorMatching; m != nil {
					seen[fmt.Sprintf("on=%t", m.On)] = true
					seen["card="+m.Card.String()] = true
				}
			case *parser.UnaryExpr:
				seen["unary "+n.Op.String()] = true
			case *parser.SubqueryExpr:
				seen[fmt.Sprintf("subquery step=%t", n.Step != 0)] = true
			case *parser.VectorSelector:
				seen[fmt.Sprintf("offset>0=%t", n.OriginalOffset > 0)] = true
				seen[fmt.Sprintf("offset<0=%t", n.OriginalOffset < 0)] = true
				seen[fmt.Sprintf("@ start/end=%s", n.StartOrEnd)] = true
				seen[fmt.Sprintf("@ fixed=%t", n.Timestamp != nil)] = true
			}
			return nil
		})
	}
	var want []string
	for name, f := range parser.Functions {
		if !f.Experimental {
			want = append(want, name+"()")
		}
	}
	want = append(want,
		"sum", "avg", "min", "max", "count", "group", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values",
		"aggregation by=true", "aggregation without=true",
		"+", "-", "*", "/", "%", "^", "atan2", "==", "!=", ">", "<", ">=", "<=", "and", "or", "unless",
		"bool=true", "on=true", "on=false", "card=many-to-one", "card=one-to-many", "card=many-to-many", "unary -",
		"subquery step=true", "subquery step=false", "offset>0=true", "offset<0=true",
		"@ start/end=start", "@ start/end=end", "@ fixed=true",
	)
	var missing []string
	for _, w := range want {
		if !seen[w] {
			missing = append(missing, w)
		}
	}
	slices.Sort(missing)
	require.Empty(t, missing, "PromQL the query table does not cover")
}

// equivStep is the scrape interval of the data set.
const equivStep = 15 * time.Second

// equivPoints is the number of scrapes of a series: 2h at 15s, both ends.
const equivPoints = 481

// equivDataset is the data of TestPromQLEquivalence.
type equivDataset struct {
	start, end time.Time // the first and the last scrape of the grid
	staleAt    time.Time // the stale marker of queue_length{queue="d"}
	series     []prompb.TimeSeries
	samples    int
}

// equivData generates the data set from a fixed seed over the two hours up
// to end: 73 series, 35k samples, 4 chunks or more per series.
//
//	http_requests_total{job,instance,method,code}  24 counters, 3 with resets
//	node_temperature_celsius{instance,sensor}      6 gauges, negative and positive
//	node_special{instance}                         3 gauges with NaN, ±Inf and 0
//	rpc_duration_seconds_{bucket,sum,count}        classic histogram of 3 instances, one resets
//	queue_length{queue}                            4 gauges: b with a 30m gap, c with a 6m gap,
//	                                               d ending in a stale marker at end-45m
//	jobs_running{job}                              a stale marker at end-70m, back at end-55m
//	errors_total{instance}                         3 counters, one resets, one with a 7.5m gap
//	process_up{job,instance}                       6 gauges scraped exactly on the 15s grid
//	build_info{job,instance,version}               6 info series on the grid
//	rpc_latency_native{instance}                   2 native histograms, one resets
//
// There is no -0: remote write 1.0 cannot carry it (a proto3 double equal
// to 0 is not encoded, so -0 arrives as 0, at Prometheus too).
func equivData(end time.Time) *equivDataset {
	g := &equivGen{r: rand.New(rand.NewPCG(20260101, 42)), start: end.Add(-2 * time.Hour).UnixMilli()}
	ds := &equivDataset{start: end.Add(-2 * time.Hour), end: end}
	var (
		jobs      = []string{"api", "web"}
		instances = []string{"i-0", "i-1", "i-2"}
	)
	between := func(from, to int) func(int) bool { return func(i int) bool { return i >= from && i < to } }

	for _, job := range jobs {
		for _, inst := range instances {
			ts := g.times(false)
			for _, method := range []string{"GET", "POST"} {
				for _, code := range []string{"200", "500"} {
					perStep := 50.0
					if code == "500" {
						perStep = 2
					}
					var resets []int
					switch {
					case job == "api" && inst == "i-1" && method == "GET":
						resets = []int{150, 390}
					case job == "web" && inst == "i-0" && method == "POST" && code == "200":
						resets = []int{333}
					}
					g.add(labels.FromStrings("__name__", "http_requests_total", "job", job, "instance", inst, "method", method, "code", code),
						ts, g.counter(perStep, method == "GET", resets...), nil)
				}
			}
		}
	}
	for _, inst := range instances {
		ts := g.times(false)
		for _, sensor := range []string{"cpu", "board"} {
			phase := g.r.Float64() * 2 * math.Pi
			vals := make([]float64, equivPoints)
			for i := range vals {
				vals[i] = 20*math.Sin(float64(i)/40+phase) + 3*g.r.NormFloat64() - 5
			}
			g.add(labels.FromStrings("__name__", "node_temperature_celsius", "instance", inst, "sensor", sensor), ts, vals, nil)
		}
	}
	special := map[string]map[int]float64{
		"i-0": {100: math.NaN(), 101: math.Inf(1), 300: math.Inf(-1), 301: 0},
		"i-1": {250: math.NaN(), 251: math.NaN(), 420: math.Inf(1)},
		"i-2": {10: 0, 11: 0},
	}
	for _, inst := range instances {
		ts := g.times(false)
		vals := make([]float64, equivPoints)
		for i := range vals {
			vals[i] = 10 * g.r.NormFloat64()
			if v, ok := special[inst][i]; ok {
				vals[i] = v
			}
		}
		g.add(labels.FromStrings("__name__", "node_special", "instance", inst), ts, vals, nil)
	}
	for _, inst := range instances {
		g.classicHistogram(inst, map[string]int{"i-1": 222}[inst])
	}
	{
		gaps := map[string]func(int) bool{"b": between(160, 280), "c": between(300, 324), "d": func(i int) bool { return i > 300 }}
		for _, queue := range []string{"a", "b", "c", "d"} {
			ts := g.times(false)
			vals := make([]float64, equivPoints)
			v := float64(g.r.IntN(20))
			for i := range vals {
				v = max(0, v+float64(g.r.IntN(5)-2))
				vals[i] = v
			}
			if queue == "d" {
				vals[300] = math.Float64frombits(value.StaleNaN)
				ds.staleAt = time.UnixMilli(ts[300])
			}
			g.add(labels.FromStrings("__name__", "queue_length", "queue", queue), ts, vals, gaps[queue])
		}
	}
	{
		ts := g.times(false)
		vals := make([]float64, equivPoints)
		for i := range vals {
			vals[i] = float64(g.r.IntN(5))
		}
		vals[200] = math.Float64frombits(value.StaleNaN)
		g.add(labels.FromStrings("__name__", "jobs_running", "job", "batch"), ts, vals, between(201, 260))
	}
	for _, inst := range instances {
		var resets []int
		var gap func(int) bool
		switch inst {
		case "i-0":
			resets = []int{100}
		case "i-2":
			gap = between(200, 230)
		}
		g.add(labels.FromStrings("__name__", "errors_total", "instance", inst), g.times(false), g.counter(0.3, true, resets...), gap)
	}
	for _, job := range jobs {
		for _, inst := range instances {
			ts := g.times(true)
			up := make([]float64, equivPoints)
			for i := range up {
				up[i] = 1
				if (job == "web" && inst == "i-2" && i >= 100 && i < 140) || (job == "api" && inst == "i-1" && i >= 300 && i < 310) {
					up[i] = 0
				}
			}
			g.add(labels.FromStrings("__name__", "process_up", "job", job, "instance", inst), ts, up, nil)
			version := map[string]string{"api": "1.2.3", "web": "2.0.0"}[job]
			if job == "web" && inst == "i-2" {
				version = "2.0.1"
			}
			ones := make([]float64, equivPoints)
			for i := range ones {
				ones[i] = 1
			}
			g.add(labels.FromStrings("__name__", "build_info", "job", job, "instance", inst, "version", version), ts, ones, nil)
		}
	}
	g.nativeHistogram("i-0", -1)
	g.nativeHistogram("i-1", 250)

	ds.series = g.out
	for _, s := range ds.series {
		ds.samples += len(s.Samples) + len(s.Histograms)
	}
	return ds
}

// requests cuts the data set into write requests of one time slice each.
func (ds *equivDataset) requests(slice time.Duration) []*prompb.WriteRequest {
	var out []*prompb.WriteRequest
	for from := ds.start.UnixMilli(); ; from += slice.Milliseconds() {
		to := from + slice.Milliseconds()
		req := &prompb.WriteRequest{}
		more := false
		for _, s := range ds.series {
			part := prompb.TimeSeries{Labels: s.Labels}
			for _, x := range s.Samples {
				if x.Timestamp >= from && x.Timestamp < to {
					part.Samples = append(part.Samples, x)
				}
				more = more || x.Timestamp >= to
			}
			for _, h := range s.Histograms {
				if h.Timestamp >= from && h.Timestamp < to {
					part.Histograms = append(part.Histograms, h)
				}
				more = more || h.Timestamp >= to
			}
			if len(part.Samples)+len(part.Histograms) > 0 {
				req.Timeseries = append(req.Timeseries, part)
			}
		}
		out = append(out, req)
		if !more {
			return out
		}
	}
}

type equivGen struct {
	r     *rand.Rand
	start int64 // ms of the first scrape of the grid
	out   []prompb.TimeSeries
}

// times returns the scrape times of one target: the 15s grid, shifted by a
// random offset of the target and up to 40ms of jitter unless aligned.
func (g *equivGen) times(aligned bool) []int64 {
	ts := make([]int64, equivPoints)
	var off int64
	if !aligned {
		off = g.r.Int64N(equivStep.Milliseconds())
	}
	for i := range ts {
		ts[i] = g.start + int64(i)*equivStep.Milliseconds() + off
		if !aligned {
			ts[i] += g.r.Int64N(40)
		}
	}
	return ts
}

// counter returns the values of a counter that grows by perStep on
// average, in whole numbers or fractions, and restarts at each reset.
func (g *equivGen) counter(perStep float64, whole bool, resets ...int) []float64 {
	vals := make([]float64, equivPoints)
	v := g.r.Float64() * 100 * perStep
	for i := range vals {
		if slices.Contains(resets, i) {
			v = 0
		}
		inc := g.r.Float64() * 2 * perStep
		if whole {
			inc = math.Floor(inc)
		}
		v += inc
		vals[i] = v
	}
	return vals
}

// add adds a float series with a sample at every scrape but those skipped.
func (g *equivGen) add(ls labels.Labels, ts []int64, vals []float64, skip func(int) bool) {
	s := prompb.TimeSeries{Labels: equivPromLabels(ls)}
	for i := range ts {
		if skip == nil || !skip(i) {
			s.Samples = append(s.Samples, prompb.Sample{Timestamp: ts[i], Value: vals[i]})
		}
	}
	g.out = append(g.out, s)
}

// classicHistogram adds the bucket, sum and count series of one instance's
// histogram, all reset at scrape reset (none if 0).
func (g *equivGen) classicHistogram(inst string, reset int) {
	les := []float64{0.1, 0.5, 1, math.Inf(1)}
	ts := g.times(false)
	buckets := make([][]float64, len(les))
	for b := range buckets {
		buckets[b] = make([]float64, equivPoints)
	}
	sum, count := make([]float64, equivPoints), make([]float64, equivPoints)
	cum := make([]float64, len(les))
	var s, c float64
	for i := range equivPoints {
		if i == reset && reset > 0 {
			clear(cum)
			s, c = 0, 0
		}
		for range g.r.IntN(20) {
			obs := g.r.ExpFloat64() * 0.4
			for b, le := range les {
				if obs <= le {
					cum[b]++
				}
			}
			s += obs
			c++
		}
		for b := range les {
			buckets[b][i] = cum[b]
		}
		sum[i], count[i] = s, c
	}
	for b, le := range les {
		g.add(labels.FromStrings("__name__", "rpc_duration_seconds_bucket", "instance", inst, "job", "api", "le", strconv.FormatFloat(le, 'g', -1, 64)), ts, buckets[b], nil)
	}
	g.add(labels.FromStrings("__name__", "rpc_duration_seconds_sum", "instance", inst, "job", "api"), ts, sum, nil)
	g.add(labels.FromStrings("__name__", "rpc_duration_seconds_count", "instance", inst, "job", "api"), ts, count, nil)
}

// nativeHistogram adds an integer native histogram (schema 0, buckets
// (0.125, 8]) of one instance, reset at scrape reset (none if < 0).
func (g *equivGen) nativeHistogram(inst string, reset int) {
	ts := g.times(false)
	abs := make([]int64, 6)
	var zero uint64
	var sum float64
	s := prompb.TimeSeries{Labels: equivPromLabels(labels.FromStrings("__name__", "rpc_latency_native", "instance", inst))}
	for i, t := range ts {
		if i == reset {
			clear(abs)
			zero, sum = 0, 0
		}
		zero += uint64(g.r.IntN(2))
		count := zero
		deltas := make([]int64, len(abs))
		for k := range abs {
			n := g.r.Int64N(5)
			abs[k] += n
			sum += float64(n) * 0.75 * math.Exp2(float64(k-2)) // the middle of bucket (2^(k-3), 2^(k-2)]
			count += uint64(abs[k])
			deltas[k] = abs[k]
			if k > 0 {
				deltas[k] -= abs[k-1]
			}
		}
		h := &histogram.Histogram{
			Schema: 0, ZeroThreshold: 0.001, ZeroCount: zero, Count: count, Sum: sum,
			PositiveSpans: []histogram.Span{{Offset: -2, Length: uint32(len(abs))}}, PositiveBuckets: deltas,
		}
		s.Histograms = append(s.Histograms, prompb.FromIntHistogram(t, h))
	}
	g.out = append(g.out, s)
}

func equivPromLabels(ls labels.Labels) []prompb.Label {
	var out []prompb.Label
	ls.Range(func(l labels.Label) { out = append(out, prompb.Label{Name: l.Name, Value: l.Value}) })
	return out
}

func equivLabels(ls []prompb.Label) labels.Labels {
	b := labels.NewScratchBuilder(len(ls))
	for _, l := range ls {
		b.Add(l.Name, l.Value)
	}
	return b.Labels()
}

// equivSec formats t as Unix seconds with milliseconds, exactly.
func equivSec(t time.Time) string {
	ms := t.UnixMilli()
	return fmt.Sprintf("%d.%03d", ms/1000, ms%1000)
}

// equivResult is a query answer in a form both sides convert to: each
// series' points as "ms value", values formatted so that two strings are
// equal exactly when the floats are (NaN equals NaN, -0 differs from 0).
type equivResult struct {
	resultType string
	series     map[string][]string // by labelsKey
	order      []string            // labelsKey in answer order
}

func equivFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func equivPoint(ms int64, f float64) string { return fmt.Sprintf("%d %s", ms, equivFloat(f)) }

type equivBucket struct {
	boundaries   int
	lower, upper float64
	count        float64
}

func equivHistPoint(ms int64, count, sum float64, buckets []equivBucket) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d {count=%s sum=%s", ms, equivFloat(count), equivFloat(sum))
	for _, bk := range buckets {
		if bk.count != 0 { // Prometheus's JSON leaves empty buckets out
			fmt.Fprintf(&b, " %d:%s..%s=%s", bk.boundaries, equivFloat(bk.lower), equivFloat(bk.upper), equivFloat(bk.count))
		}
	}
	b.WriteString("}")
	return b.String()
}

func equivFromHistogram(ms int64, h *histogram.FloatHistogram) string {
	var buckets []equivBucket
	it := h.AllBucketIterator()
	for it.Next() {
		bk := it.At()
		// The boundary rule as Prometheus's JSON numbers it.
		rule := 2
		switch {
		case bk.LowerInclusive && bk.UpperInclusive:
			rule = 3
		case bk.LowerInclusive:
			rule = 1
		case bk.UpperInclusive:
			rule = 0
		}
		buckets = append(buckets, equivBucket{rule, bk.Lower, bk.Upper, bk.Count})
	}
	return equivHistPoint(ms, h.Count, h.Sum, buckets)
}

func equivFromEngine(v parser.Value) equivResult {
	res := equivResult{resultType: string(v.Type()), series: map[string][]string{}}
	put := func(ls labels.Labels, pts []string) {
		k := labelsKey(ls.Map())
		res.series[k] = pts
		res.order = append(res.order, k)
	}
	switch v := v.(type) {
	case promql.Matrix:
		for _, s := range v {
			var pts []string
			for _, p := range s.Floats {
				pts = append(pts, equivPoint(p.T, p.F))
			}
			for _, p := range s.Histograms {
				pts = append(pts, equivFromHistogram(p.T, p.H))
			}
			put(s.Metric, pts)
		}
	case promql.Vector:
		for _, s := range v {
			if s.H != nil {
				put(s.Metric, []string{equivFromHistogram(s.T, s.H)})
			} else {
				put(s.Metric, []string{equivPoint(s.T, s.F)})
			}
		}
	case promql.Scalar:
		put(labels.EmptyLabels(), []string{equivPoint(v.T, v.V)})
	default:
		panic(fmt.Sprintf("unexpected result type %s", v.Type()))
	}
	return res
}

// equivNeocortex runs a query against Neocortex's HTTP API and converts the
// JSON answer.
func equivNeocortex(t *testing.T, a *app.App, tenant, path string, v url.Values) equivResult {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+a.Server.HTTPAddr()+path+"?"+v.Encode(), nil)
	require.NoError(t, err)
	req.Header.Set("X-Scope-OrgID", tenant)
	resp, err := testHTTP.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	var r struct {
		Status string `json:"status"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(body, &r), string(body))
	require.Equal(t, "success", r.Status, string(body))

	res := equivResult{resultType: r.Data.ResultType, series: map[string][]string{}}
	put := func(metric map[string]string, pts []string) {
		k := labelsKey(metric)
		_, dup := res.series[k]
		require.False(t, dup, "series %s twice in the answer", k)
		res.series[k] = pts
		res.order = append(res.order, k)
	}
	switch r.Data.ResultType {
	case "matrix":
		var ms []struct {
			Metric     map[string]string    `json:"metric"`
			Values     [][2]json.RawMessage `json:"values"`
			Histograms [][2]json.RawMessage `json:"histograms"`
		}
		require.NoError(t, json.Unmarshal(r.Data.Result, &ms))
		for _, s := range ms {
			var pts []string
			for _, p := range s.Values {
				pts = append(pts, equivPoint(equivJSONTime(t, p[0]), equivJSONFloat(t, p[1])))
			}
			for _, p := range s.Histograms {
				pts = append(pts, equivJSONHistogram(t, p[0], p[1]))
			}
			put(s.Metric, pts)
		}
	case "vector":
		var vs []struct {
			Metric    map[string]string `json:"metric"`
			Value     []json.RawMessage `json:"value"`
			Histogram []json.RawMessage `json:"histogram"`
		}
		require.NoError(t, json.Unmarshal(r.Data.Result, &vs))
		for _, s := range vs {
			if s.Histogram != nil {
				require.Len(t, s.Histogram, 2)
				put(s.Metric, []string{equivJSONHistogram(t, s.Histogram[0], s.Histogram[1])})
				continue
			}
			require.Len(t, s.Value, 2)
			put(s.Metric, []string{equivPoint(equivJSONTime(t, s.Value[0]), equivJSONFloat(t, s.Value[1]))})
		}
	case "scalar":
		var p [2]json.RawMessage
		require.NoError(t, json.Unmarshal(r.Data.Result, &p))
		put(map[string]string{}, []string{equivPoint(equivJSONTime(t, p[0]), equivJSONFloat(t, p[1]))})
	default:
		t.Fatalf("unexpected result type %q", r.Data.ResultType)
	}
	return res
}

// equivJSONTime converts a JSON timestamp (seconds, a number) to ms.
func equivJSONTime(t *testing.T, raw json.RawMessage) int64 {
	t.Helper()
	f, err := strconv.ParseFloat(string(raw), 64)
	require.NoError(t, err, string(raw))
	return int64(math.Round(f * 1000))
}

// equivJSONFloat converts a JSON value (a string) to a float.
func equivJSONFloat(t *testing.T, raw json.RawMessage) float64 {
	t.Helper()
	var s string
	require.NoError(t, json.Unmarshal(raw, &s), string(raw))
	f, err := strconv.ParseFloat(s, 64)
	require.NoError(t, err, s)
	return f
}

func equivJSONHistogram(t *testing.T, ts, raw json.RawMessage) string {
	t.Helper()
	var h struct {
		Count   json.RawMessage     `json:"count"`
		Sum     json.RawMessage     `json:"sum"`
		Buckets [][]json.RawMessage `json:"buckets"`
	}
	require.NoError(t, json.Unmarshal(raw, &h), string(raw))
	var buckets []equivBucket
	for _, b := range h.Buckets {
		require.Len(t, b, 4, string(raw))
		rule, err := strconv.Atoi(string(b[0]))
		require.NoError(t, err, string(raw))
		buckets = append(buckets, equivBucket{rule, equivJSONFloat(t, b[1]), equivJSONFloat(t, b[2]), equivJSONFloat(t, b[3])})
	}
	return equivHistPoint(equivJSONTime(t, ts), equivJSONFloat(t, h.Count), equivJSONFloat(t, h.Sum), buckets)
}

// equivRequireSame fails with the first differences between the local
// engine's answer and Neocortex's.
func equivRequireSame(t *testing.T, want, got equivResult, ordered bool, msg string, args ...any) {
	t.Helper()
	where := fmt.Sprintf(msg, args...)
	require.Equal(t, want.resultType, got.resultType, where)
	var diffs []string
	note := func(format string, args ...any) {
		if len(diffs) < 10 {
			diffs = append(diffs, fmt.Sprintf(format, args...))
		}
	}
	for k, w := range want.series {
		g, ok := got.series[k]
		if !ok {
			note("series %s missing (%d points)", k, len(w))
			continue
		}
		for i := 0; i < max(len(w), len(g)); i++ {
			switch {
			case i >= len(g):
				note("%s: point %q missing", k, w[i])
			case i >= len(w):
				note("%s: extra point %q", k, g[i])
			case w[i] != g[i]:
				note("%s: want %q, got %q", k, w[i], g[i])
			}
		}
	}
	for k, g := range got.series {
		if _, ok := want.series[k]; !ok {
			note("series %s not expected (%d points)", k, len(g))
		}
	}
	if ordered && len(diffs) == 0 {
		require.Equal(t, want.order, got.order, "order of the answer, %s", where)
	}
	require.Empty(t, diffs, "Neocortex differs from Prometheus, %s", where)
}
