//go:build unix

package ingester

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/kv/consul"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/tsdb/chunks"

	"github.com/neocortex-metrics/neocortex/pkg/ingester/ingesterpb"
	"github.com/neocortex-metrics/neocortex/pkg/limits"
	"github.com/neocortex-metrics/neocortex/pkg/remotewrite/remotewritetest"
	"github.com/neocortex-metrics/neocortex/pkg/tenant"
	"github.com/neocortex-metrics/neocortex/pkg/validation"
)

// The ingester benchmarks push Prometheus-like requests: benchSeriesPerRequest
// series of 10 labels each, one sample per series, as a distributor would.
const (
	benchSeriesPerRequest = 1000
	benchTenant           = "bench-tenant"
	// benchBaseTimestamp is a fixed sample time (2023-11-14): the TSDB does
	// not compare sample times with the clock, and fixed times keep runs
	// comparable.
	benchBaseTimestamp = int64(1_700_000_000_000)
	// benchScrapeInterval is the step between the samples of a series.
	benchScrapeInterval = 15 * time.Second
	// benchMaxRounds scrapes at benchScrapeInterval span 90 minutes. After
	// that samples come 1ms apart so that the span of the head stays below
	// the 3h (1.5 block ranges) at which the TSDB compacts it, which would be
	// measured too.
	benchMaxRounds = 360
)

// benchSampleTime is the time of a series' sample of the given round.
func benchSampleTime(round int64) int64 {
	return benchBaseTimestamp + min(round, benchMaxRounds)*benchScrapeInterval.Milliseconds() + max(0, round-benchMaxRounds)
}

// benchPushRequest is benchWriteRequest encoded as a distributor sends it.
func benchPushRequest(b *testing.B, first, n int, ts int64) *ingesterpb.PushRequest {
	buf, err := remotewritetest.WriteRequest(first, n, ts).Marshal()
	if err != nil {
		b.Fatal(err)
	}
	return &ingesterpb.PushRequest{WriteRequest: buf}
}

// setSampleTimestamps sets the time of every sample of req.
func setSampleTimestamps(req *prompb.WriteRequest, ts int64) {
	for i := range req.Timeseries {
		for j := range req.Timeseries[i].Samples {
			req.Timeseries[i].Samples[j].Timestamp = ts
		}
	}
}

// startBenchIngester starts an ingester with the default config in a
// temporary directory and stops it when the benchmark ends. The series
// limits are off so that a long run cannot hit them; the limiter still runs.
func startBenchIngester(b *testing.B) *Ingester {
	b.Helper()
	var cfg Config
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	var lim limits.Limits
	lim.RegisterFlags(fs)
	if err := fs.Parse(nil); err != nil {
		b.Fatal(err)
	}
	lim.MaxSeriesPerUser, lim.MaxSeriesPerMetric = 0, 0
	cfg.DataDir = b.TempDir()
	cfg.Ring.InstanceID = "bench"

	kvClient, closer := consul.NewInMemoryClient(ring.GetCodec(), log.NewNopLogger(), nil)
	b.Cleanup(func() { _ = closer.Close() })
	reg := prometheus.NewRegistry()
	ing, err := New(cfg, Deps{
		Limits:     limits.NewOverrides(lim, nil),
		KV:         kvClient,
		Addr:       "127.0.0.1:0",
		Discarded:  validation.NewDiscardedSamples(reg),
		Logger:     slog.New(slog.DiscardHandler),
		Registerer: reg,
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := services.StartAndAwaitRunning(context.Background(), ing); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := services.StopAndAwaitTerminated(context.Background(), ing); err != nil {
			b.Error(err)
		}
	})
	return ing
}

func benchPush(ctx context.Context, b *testing.B, ing *Ingester, req *ingesterpb.PushRequest) {
	if _, err := ing.Push(ctx, req); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkIngesterPush measures Ingester.Push of 1000 series with one sample
// each, decoding included, into series that exist (the steady state) and into
// new ones (churn, first scrape of new targets). Encoding the requests is not
// measured.
func BenchmarkIngesterPush(b *testing.B) {
	b.Run("existing_series", func(b *testing.B) {
		const numSeries = 10 * benchSeriesPerRequest
		const groups = numSeries / benchSeriesPerRequest
		ing := startBenchIngester(b)
		ctx := tenant.WithTenant(context.Background(), benchTenant)
		reqs := make([]*prompb.WriteRequest, groups)
		for g := range reqs {
			reqs[g] = remotewritetest.WriteRequest(g*benchSeriesPerRequest, benchSeriesPerRequest, benchBaseTimestamp)
			benchPush(ctx, b, ing, benchPushRequest(b, g*benchSeriesPerRequest, benchSeriesPerRequest, benchBaseTimestamp))
		}
		samples := 0
		m := remotewritetest.NewMeter(b)
		for i := 0; b.Loop(); i++ {
			m.Pause()
			// Each iteration pushes the next group of series, one scrape
			// interval after the group's previous push.
			g := i % groups
			wr := reqs[g]
			setSampleTimestamps(wr, benchSampleTime(int64(i/groups+1)))
			buf, err := wr.Marshal()
			if err != nil {
				b.Fatal(err)
			}
			req := &ingesterpb.PushRequest{WriteRequest: buf}
			m.Resume()
			benchPush(ctx, b, ing, req)
			samples += benchSeriesPerRequest
		}
		m.Report(samples)
	})

	b.Run("new_series", func(b *testing.B) {
		ing := startBenchIngester(b)
		ctx := tenant.WithTenant(context.Background(), benchTenant)
		benchPush(ctx, b, ing, benchPushRequest(b, 0, 1, benchBaseTimestamp)) // open the TSDB
		next := 1
		samples := 0
		m := remotewritetest.NewMeter(b)
		for i := 0; b.Loop(); i++ {
			m.Pause()
			req := benchPushRequest(b, next, benchSeriesPerRequest, benchBaseTimestamp+int64(i))
			next += benchSeriesPerRequest
			m.Resume()
			benchPush(ctx, b, ing, req)
			samples += benchSeriesPerRequest
		}
		m.Report(samples)
	})
}

// BenchmarkIngesterMemoryPerSeries measures the live heap an ingester holds
// per series: each iteration creates 100k series with one sample in a new
// tenant and reports the growth of the heap after a GC, averaged, as
// bytes/series. Run it with a small -benchtime such as 1x.
func BenchmarkIngesterMemoryPerSeries(b *testing.B) {
	const numSeries = 100_000
	ing := startBenchIngester(b)
	reqs := make([]*ingesterpb.PushRequest, numSeries/benchSeriesPerRequest)
	for j := range reqs {
		reqs[j] = benchPushRequest(b, j*benchSeriesPerRequest, benchSeriesPerRequest, benchBaseTimestamp)
	}
	var grown int64
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		ctx := tenant.WithTenant(context.Background(), fmt.Sprintf("mem-%d", i))
		// Open the tenant's TSDB first: its fixed cost is not per series.
		benchPush(ctx, b, ing, benchPushRequest(b, numSeries, 1, benchBaseTimestamp))
		before := liveHeap()
		b.StartTimer()
		for _, req := range reqs {
			benchPush(ctx, b, ing, req)
		}
		b.StopTimer()
		grown += int64(liveHeap()) - int64(before)
	}
	b.ReportMetric(float64(grown)/float64(b.N*numSeries), "bytes/series")
}

// liveHeap is the size of the live heap, after a full GC.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkQueryChunks measures reading every chunk of 10k series of 16
// samples each for an in-process querier (QueryChunks), the first step of
// any PromQL query over recent data; ns/series is per series read.
func BenchmarkQueryChunks(b *testing.B) {
	const numSeries = 10 * benchSeriesPerRequest
	ing := startBenchIngester(b)
	ctx := tenant.WithTenant(context.Background(), benchTenant)
	for round := range int64(16) {
		for g := 0; g < numSeries; g += benchSeriesPerRequest {
			benchPush(ctx, b, ing, benchPushRequest(b, g, benchSeriesPerRequest, benchSampleTime(round)))
		}
	}
	req := &ingesterpb.QueryRequest{
		StartMs:  benchBaseTimestamp,
		EndMs:    benchSampleTime(16),
		Matchers: []*ingesterpb.LabelMatcher{{Type: ingesterpb.LabelMatcher_RE, Name: "__name__", Value: ".+"}},
	}
	b.ReportAllocs()
	series := 0
	for b.Loop() {
		n := 0
		err := ing.QueryChunks(ctx, benchTenant, req, func(_ labels.Labels, metas []chunks.Meta) error {
			n++
			if len(metas) != 1 {
				return fmt.Errorf("got %d chunks, want 1", len(metas))
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		if n != numSeries {
			b.Fatalf("read %d series, want %d", n, numSeries)
		}
		series += n
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(series), "ns/series")
}
