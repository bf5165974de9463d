package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/neocortex-metrics/neocortex/pkg/app"
)

const (
	rangeBenchTenant          = "bench"
	rangeBenchJobs            = 10
	rangeBenchInstances       = 1000
	rangeBenchSeries          = rangeBenchJobs * rangeBenchInstances
	rangeBenchSamples         = 240 // per series: 1h at 15s
	rangeBenchStep            = 15 * time.Second
	rangeBenchSeriesPerPush   = 2000
	rangeBenchSamplesPerPush  = 12 // per series
	rangeBenchQuery           = `sum by (job) (rate(bench_requests_total[5m]))`
	rangeBenchTotalSamples    = rangeBenchSeries * rangeBenchSamples
	rangeBenchPushesPerSeries = rangeBenchSamples / rangeBenchSamplesPerPush
)

// pushRangeBenchData pushes 1h of bench_requests_total counters ending at
// last, in time order per series, and returns the first sample's time.
func pushRangeBenchData(b *testing.B, a *app.App, last time.Time) time.Time {
	b.Helper()
	first := last.Add(-(rangeBenchSamples - 1) * rangeBenchStep)
	rng := rand.New(rand.NewPCG(7, 11))
	values := make([]float64, rangeBenchSeries)
	lbls := make([][]prompb.Label, rangeBenchSeries)
	for i := range lbls {
		values[i] = float64(rng.IntN(1000))
		lbls[i] = []prompb.Label{
			{Name: "__name__", Value: "bench_requests_total"},
			{Name: "instance", Value: fmt.Sprintf("instance-%03d", i/rangeBenchJobs)},
			{Name: "job", Value: fmt.Sprintf("job-%d", i%rangeBenchJobs)},
		}
	}
	client := pushClient(a, rangeBenchTenant)
	for p := range rangeBenchPushesPerSeries {
		for lo := 0; lo < rangeBenchSeries; lo += rangeBenchSeriesPerPush {
			req := &prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, 0, rangeBenchSeriesPerPush)}
			for i := lo; i < lo+rangeBenchSeriesPerPush; i++ {
				samples := make([]prompb.Sample, 0, rangeBenchSamplesPerPush)
				for s := p * rangeBenchSamplesPerPush; s < (p+1)*rangeBenchSamplesPerPush; s++ {
					values[i] += float64(rng.IntN(20))
					samples = append(samples, prompb.Sample{Timestamp: first.Add(time.Duration(s) * rangeBenchStep).UnixMilli(), Value: values[i]})
				}
				req.Timeseries = append(req.Timeseries, prompb.TimeSeries{Labels: lbls[i], Samples: samples})
			}
			if err := client.Push(context.Background(), req); err != nil {
				b.Fatalf("push: %v", err)
			}
		}
	}
	if got := ingestedSamples(b, a, rangeBenchTenant); got != rangeBenchTotalSamples {
		b.Fatalf("ingested %v samples, want %d", got, rangeBenchTotalSamples)
	}
	return first
}

// ingestedSamples is the ingester's count of samples appended for tenant.
func ingestedSamples(b *testing.B, a *app.App, tenant string) float64 {
	b.Helper()
	mfs, err := a.Registry.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "neocortex_ingester_ingested_samples_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if matchLabels(m.GetLabel(), map[string]string{"tenant": tenant}) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// getRangeBench runs one query and returns its status and body.
func getRangeBench(b *testing.B, u string) (int, []byte) {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("X-Scope-OrgID", rangeBenchTenant)
	resp, err := testHTTP.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.Fatal(err)
	}
	return resp.StatusCode, body
}

// BenchmarkRangeQuery measures an HTTP range query aggregating 10k counters
// over 1h at 15s steps (2.4M stored samples read per query) against a
// single-binary process with RF=1.
func BenchmarkRangeQuery(b *testing.B) {
	cfg := testConfig(b)
	cfg.Limits.IngestionRate = 0
	a := startApp(b, cfg)

	last := time.Now().Truncate(rangeBenchStep)
	first := pushRangeBenchData(b, a, last)

	v := url.Values{}
	v.Set("query", rangeBenchQuery)
	v.Set("start", strconv.FormatInt(first.Unix(), 10))
	v.Set("end", strconv.FormatInt(last.Unix(), 10))
	v.Set("step", strconv.FormatFloat(rangeBenchStep.Seconds(), 'f', -1, 64))
	u := "http://" + a.Server.HTTPAddr() + "/prometheus/api/v1/query_range?" + v.Encode()

	status, body := getRangeBench(b, u)
	if status != http.StatusOK {
		b.Fatalf("status %d: %s", status, body)
	}
	var qr queryResponse
	if err := json.Unmarshal(body, &qr); err != nil {
		b.Fatal(err)
	}
	var ms []matrixSeries
	if err := json.Unmarshal(qr.Data.Result, &ms); err != nil {
		b.Fatal(err)
	}
	if qr.Data.ResultType != "matrix" || len(ms) != rangeBenchJobs {
		b.Fatalf("got %d series of type %q, want %d of matrix", len(ms), qr.Data.ResultType, rangeBenchJobs)
	}
	for _, s := range ms {
		// rate needs two samples in its window: every step but the first.
		if len(s.Values) != rangeBenchSamples-1 {
			b.Fatalf("series %v has %d points, want %d", s.Metric, len(s.Values), rangeBenchSamples-1)
		}
	}

	runtime.GC()
	var mem runtime.MemStats
	runtime.ReadMemStats(&mem)
	mallocs := mem.Mallocs
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if status, body := getRangeBench(b, u); status != http.StatusOK {
			b.Fatalf("status %d: %s", status, body)
		}
	}
	b.StopTimer()
	runtime.ReadMemStats(&mem)

	el := b.Elapsed()
	queries := float64(b.N)
	samples := queries * rangeBenchTotalSamples
	b.ReportMetric(queries/el.Seconds(), "queries/s")
	b.ReportMetric(float64(el.Nanoseconds())/1e6/queries, "ms/query")
	b.ReportMetric(samples/el.Seconds(), "samples/s")
	b.ReportMetric(float64(el.Nanoseconds())/samples, "ns/sample")
	// The process runs in this one, so the allocations are the whole read
	// path's: HTTP, PromQL, querier, gRPC and ingester.
	b.ReportMetric(float64(mem.Mallocs-mallocs)/samples, "allocs/sample")
}
