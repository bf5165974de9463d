package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/neocortex-metrics/neocortex/pkg/app"
)

const (
	dashJobs   = 10
	dashSeries = 10000
	dashSpan   = 7 * 24 * time.Hour
	// dashScrape is 2.5m, not 5m: range selectors are left-open since
	// Prometheus 3, so a 5m window holds one sample of a 5m scrape, too
	// few for rate.
	dashScrape  = 150 * time.Second
	dashSamples = int(dashSpan/dashScrape) + 1 // per series, both ends included
	dashQuery   = `sum by (job) (rate(x_total[5m]))`
	// dashPushBatch is the series per push request: of 24 samples each,
	// under the default ingestion burst size (50k samples), which bounds
	// a request even with an unlimited ingestion rate.
	dashPushBatch = 2000
	dashPushers   = 4 // push requests in flight
	// dashPushWindow is the time span of one round of pushes. The head
	// refuses samples older than its newest minus half the block range
	// (1h by default), and concurrent pushes of one round may advance the
	// newest sample to the round's end: a round must not span more than
	// that.
	dashPushWindow = time.Hour
)

// dashVariant is one query-frontend configuration under benchmark.
type dashVariant struct {
	name      string
	configure func(*app.Config)
	// warm primes the results cache before the timer starts.
	warm bool
	// sharded answers may differ from the others in the last digits, as
	// shards sum in another order.
	sharded bool
}

func dashVariants() []dashVariant {
	shards := func(n int) func(*app.Config) {
		return func(c *app.Config) {
			c.Frontend.QueryRange.CacheResults = false
			c.Frontend.Sharding.Enabled = true
			c.Frontend.Sharding.TotalShards = n
		}
	}
	return []dashVariant{
		// Cold first, as the others report their speed-up over it: split
		// by day, every part asked of the queriers, not sharded.
		{name: "cold", configure: func(c *app.Config) {
			c.Frontend.QueryRange.CacheResults = false
			c.Frontend.Sharding.Enabled = false
		}},
		{name: "no-frontend-split", configure: func(c *app.Config) {
			c.Frontend.QueryRange.SplitQueriesByInterval = 0
			c.Frontend.QueryRange.CacheResults = false
			c.Frontend.Sharding.Enabled = false
		}},
		{name: "warm", configure: func(c *app.Config) {
			c.Frontend.QueryRange.CacheResults = true
			c.Frontend.Sharding.Enabled = false
		}, warm: true},
		{name: "default", configure: func(c *app.Config) {
			c.Frontend.QueryRange.CacheResults = false
			c.Frontend.Sharding.TotalShards = 0 // one per CPU, shared by the day parts
		}, sharded: true},
		{name: "sharded-2", configure: shards(2), sharded: true},
		{name: "sharded-4", configure: shards(4), sharded: true},
		{name: "sharded-16", configure: shards(16), sharded: true},
	}
}

// dashAnswer is the first answer seen for one step, which every variant's
// answer must equal.
type dashAnswer struct {
	body    []byte
	sharded bool
}

// BenchmarkFrontendDashboard measures a 7-day dashboard query, sum by (job)
// of the rate of 10k counters, through the query-frontend of a single-binary
// process per variant: split by day with a cold and a warm results cache,
// unsplit, and split and sharded. A week at a 2.5m scrape is 40M samples;
// they stay in the ingesters' heads. Each step=… benchmark reports its
// seconds per query and its speed-up over cold (x-vs-cold).
func BenchmarkFrontendDashboard(b *testing.B) {
	if testing.Short() {
		b.Skip("pushes 40M samples per variant")
	}
	steps := []time.Duration{time.Hour, 5 * time.Minute}
	// Every variant gets the same samples and queries, so that the answers
	// compare; old enough to be cached (outside max_freshness).
	last := time.Now().Add(-time.Hour).Truncate(time.Hour)
	first := last.Add(-dashSpan)

	answers := map[time.Duration]dashAnswer{}
	coldPerQuery := map[time.Duration]float64{} // step → seconds
	variants := dashVariants()
	for _, v := range variants {
		b.Run(v.name, func(b *testing.B) {
			cfg := testConfig(b)
			cfg.Limits.IngestionRate = 0
			// The ingesters hold the whole week: ask them for all of it,
			// and cut no blocks while the benchmark runs.
			cfg.Querier.QueryIngestersWithin = 0
			cfg.Ingester.HeadCompactionInterval = 24 * time.Hour
			// Split by day and sharded 16 ways, one query has up to
			// max_query_parallelism × max_sharded_queries (14 × 16) parts
			// in flight, more than the default queue limit of 100 takes.
			cfg.Frontend.Queue.MaxOutstandingPerTenant = 1000
			v.configure(cfg)
			a := startApp(b, cfg)

			start := time.Now()
			pushDashboardData(b, a, first)
			took := time.Since(start)

			for n, step := range steps {
				u := dashURL(a, first, last, step)
				// The check also primes the cache of the warm variant.
				status, body := getRangeBench(b, u)
				if status != http.StatusOK {
					b.Fatalf("step %s: status %d: %.500s", step, status, body)
				}
				checkDashAnswer(b, body, step)
				if want, ok := answers[step]; !ok {
					answers[step] = dashAnswer{body: body, sharded: v.sharded}
				} else if err := compareDashAnswers(want.body, body, !want.sharded && !v.sharded); err != nil {
					b.Fatalf("step %s: answer differs from the first variant's: %v", step, err)
				}
				if v.warm {
					// A second query is answered from the cache: it must
					// equal the one that filled it.
					_, again := getRangeBench(b, u)
					if err := compareDashAnswers(body, again, true); err != nil {
						b.Fatalf("step %s: cached answer differs: %v", step, err)
					}
				}

				b.Run("step="+stepName(step), func(b *testing.B) {
					for b.Loop() {
						if status, body := getRangeBench(b, u); status != http.StatusOK {
							b.Fatalf("status %d: %.500s", status, body)
						}
					}
					s := b.Elapsed().Seconds() / float64(b.N)
					b.ReportMetric(s, "s/query")
					// Only leaf benchmarks' logs are printed without -v.
					if n == 0 {
						b.Logf("pushed %d samples of %d series in %s (%.0f samples/s)", dashSeries*dashSamples, dashSeries,
							took.Round(time.Millisecond), float64(dashSeries*dashSamples)/took.Seconds())
					}
					if v.name == "cold" {
						coldPerQuery[step] = s
					} else if cold, ok := coldPerQuery[step]; ok {
						b.ReportMetric(cold/s, "x-vs-cold")
						b.Logf("%.3fs/query, %.2fx the speed of cold (%.3fs/query)", s, cold/s, cold)
					}
				})
			}
		})
	}
}

// stepName is a step without the zero units time.Duration prints (1h, 5m).
func stepName(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}

func dashURL(a *app.App, start, end time.Time, step time.Duration) string {
	v := url.Values{}
	v.Set("query", dashQuery)
	v.Set("start", strconv.FormatInt(start.Unix(), 10))
	v.Set("end", strconv.FormatInt(end.Unix(), 10))
	v.Set("step", strconv.FormatFloat(step.Seconds(), 'f', -1, 64))
	return "http://" + a.Server.HTTPAddr() + "/prometheus/api/v1/query_range?" + v.Encode()
}

// dashValue is the counter value of series i at its sample s: increasing by
// 1 to 7 per scrape, with a jitter smaller than the increase, and the same
// in every process.
func dashValue(i, s int) float64 {
	return float64(i%1000) + float64(s*(1+i%7)) + 0.2*float64((s*7919+i*104729)%5)
}

// pushDashboardData pushes dashSamples samples of x_total, every dashScrape
// from first, for each of dashSeries series, and checks all were ingested.
// Rounds of dashPushWindow go in time order, as the head requires; the
// requests of a round go dashPushers at a time.
func pushDashboardData(b *testing.B, a *app.App, first time.Time) {
	b.Helper()
	lbls := make([][]prompb.Label, dashSeries)
	for i := range lbls {
		lbls[i] = []prompb.Label{
			{Name: "__name__", Value: "x_total"},
			{Name: "instance", Value: fmt.Sprintf("instance-%05d", i/dashJobs)},
			{Name: "job", Value: fmt.Sprintf("job-%d", i%dashJobs)},
		}
	}
	client := pushClient(a, rangeBenchTenant)
	perRound := int(dashPushWindow / dashScrape)
	var failed atomic.Pointer[error]
	for lo := 0; lo < dashSamples; lo += perRound {
		hi := min(lo+perRound, dashSamples)
		batches := make(chan int)
		var wg sync.WaitGroup
		for range dashPushers {
			wg.Go(func() {
				for from := range batches {
					req := &prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, 0, dashPushBatch)}
					for i := from; i < min(from+dashPushBatch, dashSeries); i++ {
						samples := make([]prompb.Sample, 0, hi-lo)
						for s := lo; s < hi; s++ {
							samples = append(samples, prompb.Sample{Timestamp: first.Add(time.Duration(s) * dashScrape).UnixMilli(), Value: dashValue(i, s)})
						}
						req.Timeseries = append(req.Timeseries, prompb.TimeSeries{Labels: lbls[i], Samples: samples})
					}
					if err := client.Push(context.Background(), req); err != nil {
						err = fmt.Errorf("push samples %d-%d of series %d-: %w", lo, hi, from, err)
						failed.CompareAndSwap(nil, &err)
					}
				}
			})
		}
		for from := 0; from < dashSeries; from += dashPushBatch {
			batches <- from
		}
		close(batches)
		wg.Wait()
		if err := failed.Load(); err != nil {
			b.Fatal(*err)
		}
	}
	if got := ingestedSamples(b, a, rangeBenchTenant); got != float64(dashSeries*dashSamples) {
		b.Fatalf("ingested %v samples, want %d", got, dashSeries*dashSamples)
	}
}

// parseDashAnswer returns the matrix of a range query answer, keyed by the
// series' labels, each a list of (s, value) points.
func parseDashAnswer(body []byte) (map[string][][2]float64, error) {
	var qr queryResponse
	if err := json.Unmarshal(body, &qr); err != nil {
		return nil, err
	}
	if qr.Status != "success" || qr.Data.ResultType != "matrix" {
		return nil, fmt.Errorf("status %q, result type %q: %s", qr.Status, qr.Data.ResultType, qr.Error)
	}
	var ms []matrixSeries
	if err := json.Unmarshal(qr.Data.Result, &ms); err != nil {
		return nil, err
	}
	out := make(map[string][][2]float64, len(ms))
	for _, s := range ms {
		pts := make([][2]float64, 0, len(s.Values))
		for _, p := range s.Values {
			t, ok := p[0].(float64)
			str, ok2 := p[1].(string)
			if !ok || !ok2 {
				return nil, fmt.Errorf("malformed point %v", p)
			}
			f, err := strconv.ParseFloat(str, 64)
			if err != nil {
				return nil, err
			}
			pts = append(pts, [2]float64{t, f})
		}
		out[labelsKey(s.Metric)] = pts
	}
	return out, nil
}

// checkDashAnswer fails unless the answer has a point at every step for
// every job: rate needs two samples in its window, so the window must be
// longer than the scrape interval.
func checkDashAnswer(b *testing.B, body []byte, step time.Duration) {
	b.Helper()
	m, err := parseDashAnswer(body)
	if err != nil {
		b.Fatalf("step %s: %v: %.500s", step, err, body)
	}
	if len(m) != dashJobs {
		b.Fatalf("step %s: %d series, want %d: %.500s", step, len(m), dashJobs, body)
	}
	want := int(dashSpan/step) + 1
	for k, pts := range m {
		// The first step's window holds only the first sample.
		if len(pts) != want && len(pts) != want-1 {
			b.Fatalf("step %s: series %s has %d points, want %d", step, k, len(pts), want)
		}
	}
}

// compareDashAnswers reports how got differs from want: byte for byte when
// exact, else value by value with a relative tolerance of 1e-9.
func compareDashAnswers(want, got []byte, exact bool) error {
	if exact {
		if string(want) != string(got) {
			return fmt.Errorf("bodies differ:\n%.300s\n%.300s", want, got)
		}
		return nil
	}
	wm, err := parseDashAnswer(want)
	if err != nil {
		return err
	}
	gm, err := parseDashAnswer(got)
	if err != nil {
		return err
	}
	if len(wm) != len(gm) {
		return fmt.Errorf("%d series, want %d", len(gm), len(wm))
	}
	for k, wp := range wm {
		gp, ok := gm[k]
		if !ok {
			return fmt.Errorf("series %s missing", k)
		}
		if len(gp) != len(wp) {
			return fmt.Errorf("series %s: %d points, want %d", k, len(gp), len(wp))
		}
		for i := range wp {
			w, g := wp[i], gp[i]
			if w[0] != g[0] || math.Abs(w[1]-g[1]) > 1e-9*max(math.Abs(w[1]), math.Abs(g[1])) {
				return fmt.Errorf("series %s point %d: %v, want %v", k, i, g, w)
			}
		}
	}
	return nil
}
