//go:build unix

package distributor

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/grafana/dskit/middleware"
	"github.com/grafana/dskit/ring"
	ringclient "github.com/grafana/dskit/ring/client"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/grpc"

	"github.com/neocortex-metrics/neocortex/pkg/ingester/client"
	"github.com/neocortex-metrics/neocortex/pkg/ingester/ingesterpb"
	"github.com/neocortex-metrics/neocortex/pkg/limits"
	"github.com/neocortex-metrics/neocortex/pkg/remotewrite"
	"github.com/neocortex-metrics/neocortex/pkg/validation"
)

// The write-path benchmarks use Prometheus-like requests: benchSeriesPerRequest
// series of 10 labels each, one sample per series.
const (
	benchSeriesPerRequest = 1000
	benchTenant           = "bench-tenant"
	// benchBaseTimestamp is a fixed sample time (2023-11-14) so that request
	// sizes do not depend on the clock; it is in the past, which the
	// distributor accepts.
	benchBaseTimestamp = int64(1_700_000_000_000)
)

// benchMetricNames are the metric names the benchmark series cycle through.
var benchMetricNames = []string{
	"apiserver_request_duration_seconds_count",
	"container_cpu_usage_seconds_total",
	"container_memory_working_set_bytes",
	"container_network_receive_bytes_total",
	"container_network_transmit_bytes_total",
	"container_fs_reads_bytes_total",
	"container_fs_writes_bytes_total",
	"go_goroutines",
	"go_memstats_heap_inuse_bytes",
	"go_gc_duration_seconds_sum",
	"grpc_server_handled_total",
	"http_requests_total",
	"http_request_duration_seconds_sum",
	"http_request_duration_seconds_count",
	"kube_pod_container_status_restarts_total",
	"kube_pod_status_ready",
	"process_cpu_seconds_total",
	"process_resident_memory_bytes",
	"process_open_fds",
	"up",
}

var (
	benchNamespaces = []string{"payments-prod", "checkout-prod", "search-platform", "observability", "identity-prod"}
	benchApps       = []string{"checkout-service", "payment-gateway", "search-indexer", "session-store", "frontend-web", "inventory-api", "notification-worker"}
)

// benchLabels returns the sorted labels of benchmark series i: its metric
// name is benchMetricNames[i%len], its target (pod, instance, node) i/len.
// The same i always gives the same series; different i give different series.
func benchLabels(i int) []prompb.Label {
	target := i / len(benchMetricNames)
	rng := rand.New(rand.NewPCG(42, uint64(target)))
	ns := benchNamespaces[target%len(benchNamespaces)]
	app := benchApps[(target/len(benchNamespaces))%len(benchApps)]
	return []prompb.Label{
		{Name: "__name__", Value: benchMetricNames[i%len(benchMetricNames)]},
		{Name: "cluster", Value: "prod-eu-west-1-main"},
		{Name: "container", Value: app},
		{Name: "endpoint", Value: "http-metrics"},
		{Name: "instance", Value: fmt.Sprintf("10.%d.%d.%d:8080", 16+(target>>16)&0xff, (target>>8)&0xff, target&0xff)},
		{Name: "job", Value: ns + "/" + app},
		{Name: "namespace", Value: ns},
		{Name: "node", Value: fmt.Sprintf("ip-10-0-%d-%d.eu-west-1.compute.internal", (target/40)%256, (target/40/256)%256)},
		{Name: "pod", Value: fmt.Sprintf("%s-%08x-%05d", app, rng.Uint32(), target%100000)},
		{Name: "service", Value: app},
	}
}

// benchWriteRequest returns series first … first+n-1 with one sample each at ts.
func benchWriteRequest(first, n int, ts int64) *prompb.WriteRequest {
	req := &prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, n)}
	for j := range req.Timeseries {
		req.Timeseries[j] = prompb.TimeSeries{
			Labels:  benchLabels(first + j),
			Samples: []prompb.Sample{{Value: float64((first + j) % 977), Timestamp: ts}},
		}
	}
	return req
}

// sampleMeter measures the time, process CPU time and heap allocations of
// the timed part of a benchmark and reports them per sample. Use pause and
// resume instead of b.StopTimer and b.StartTimer.
type sampleMeter struct {
	b       *testing.B
	mallocs uint64        // allocations while running
	cpu     time.Duration // process CPU time while running
	mark    uint64
	cpuMark time.Duration
}

// newSampleMeter resets the benchmark timer and starts measuring.
func newSampleMeter(b *testing.B) *sampleMeter {
	b.ReportAllocs()
	m := &sampleMeter{b: b}
	b.ResetTimer()
	m.mark, m.cpuMark = benchMallocs(), processCPU()
	return m
}

func (m *sampleMeter) pause() {
	m.b.StopTimer()
	m.mallocs += benchMallocs() - m.mark
	m.cpu += processCPU() - m.cpuMark
}

func (m *sampleMeter) resume() {
	m.mark, m.cpuMark = benchMallocs(), processCPU()
	m.b.StartTimer()
}

// report stops the timer and reports samples/s, ns/sample, cpu-ns/sample
// (process CPU time, all goroutines, GC included) and allocs/sample.
func (m *sampleMeter) report(samples int) {
	m.pause()
	if samples == 0 {
		return
	}
	el := m.b.Elapsed()
	m.b.ReportMetric(float64(samples)/el.Seconds(), "samples/s")
	m.b.ReportMetric(float64(el.Nanoseconds())/float64(samples), "ns/sample")
	m.b.ReportMetric(float64(m.cpu.Nanoseconds())/float64(samples), "cpu-ns/sample")
	m.b.ReportMetric(float64(m.mallocs)/float64(samples), "allocs/sample")
}

func benchMallocs() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.Mallocs
}

// processCPU is the user and system CPU time of the process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchLimits are the default limits without an ingestion rate limit, which a
// benchmark pushing millions of samples per second would hit.
func benchLimits(b *testing.B) *limits.Overrides {
	b.Helper()
	var l limits.Limits
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	l.RegisterFlags(fs)
	if err := fs.Parse(nil); err != nil {
		b.Fatal(err)
	}
	l.IngestionRate = 0
	return limits.NewOverrides(l, nil)
}

func newBenchDistributor(b *testing.B, r IngesterRing, clients ClientPool) *Distributor {
	b.Helper()
	reg := prometheus.NewRegistry()
	return New(Config{MaxRecvMsgSize: 100 << 20, RemoteTimeout: 5 * time.Second}, Deps{
		Limits:     benchLimits(b),
		Ring:       r,
		Clients:    clients,
		Discarded:  validation.NewDiscardedSamples(reg),
		Logger:     slog.New(slog.DiscardHandler),
		Registerer: reg,
	})
}

// BenchmarkDecode measures reading, decompressing and unmarshalling a
// remote-write body of 1000 series.
func BenchmarkDecode(b *testing.B) {
	body, err := remotewrite.Encode(benchWriteRequest(0, benchSeriesPerRequest, benchBaseTimestamp))
	if err != nil {
		b.Fatal(err)
	}
	d := newBenchDistributor(b, nil, nil)
	b.SetBytes(int64(len(body)))
	m := newSampleMeter(b)
	for b.Loop() {
		r, err := http.NewRequest(http.MethodPost, "/api/v1/push", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		r.Header.Set("Content-Type", "application/x-protobuf")
		r.Header.Set("Content-Encoding", "snappy")
		req, _, _, err := d.decode(r)
		if err != nil {
			b.Fatal(err)
		}
		if len(req.Timeseries) != benchSeriesPerRequest {
			b.Fatalf("decoded %d series, want %d", len(req.Timeseries), benchSeriesPerRequest)
		}
	}
	m.report(b.N * benchSeriesPerRequest)
}

// BenchmarkValidateAndShard measures the per-series work of Push before the
// fan-out: label and timestamp validation and the ring token, for 1000 series.
func BenchmarkValidateAndShard(b *testing.B) {
	req := benchWriteRequest(0, benchSeriesPerRequest, benchBaseTimestamp)
	lim := benchLimits(b).For(benchTenant)
	keys := make([]uint32, 0, len(req.Timeseries))
	valid := make([]prompb.TimeSeries, 0, len(req.Timeseries))
	m := newSampleMeter(b)
	for b.Loop() {
		now := time.Now()
		keys, valid = keys[:0], valid[:0]
		for _, ts := range req.Timeseries {
			if e := validation.Labels(lim, ts.Labels); e != nil {
				b.Fatal(e)
			}
			for _, s := range ts.Samples {
				if e := validation.Timestamp(lim, now, s.Timestamp, ts.Labels); e != nil {
					b.Fatal(e)
				}
			}
			keys = append(keys, seriesToken(benchTenant, ts.Labels))
			valid = append(valid, ts)
		}
	}
	m.report(b.N * benchSeriesPerRequest)
}

// BenchmarkSeriesToken measures the ring token of one 10-label series.
func BenchmarkSeriesToken(b *testing.B) {
	series := make([][]prompb.Label, 1024)
	for i := range series {
		series[i] = benchLabels(i)
	}
	var sink uint32
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		sink ^= seriesToken(benchTenant, series[i&1023])
		i++
	}
	if sink == 0x5eed {
		b.Log(sink) // keeps the result alive
	}
}

// BenchmarkPushEndToEnd measures Distributor.Push of 1000 series to fake
// ingesters: no-op gRPC servers on loopback behind a fixed ring of RF
// instances that own every series. cpu-ns/sample is the CPU time of the whole
// process, so it includes the servers' gRPC receive side.
func BenchmarkPushEndToEnd(b *testing.B) {
	for _, rf := range []int{1, 3} {
		b.Run(fmt.Sprintf("RF=%d", rf), func(b *testing.B) {
			r := &benchRing{maxErrors: rf / 2}
			pool := benchClientPool{}
			for i := range rf {
				addr := startNoopIngester(b)
				c, err := client.Dial(client.Config{MaxRecvMsgSize: 100 << 20, MaxSendMsgSize: 100 << 20}, addr)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = c.Close() })
				pool[addr] = c
				r.instances = append(r.instances, ring.InstanceDesc{
					Id: fmt.Sprintf("ingester-%d", i), Addr: addr, State: ring.ACTIVE, Timestamp: time.Now().Unix(),
				})
			}
			d := newBenchDistributor(b, r, pool)
			// As the HTTP handler does: decoded with each series' encoding,
			// which is forwarded as it came.
			enc, err := benchWriteRequest(0, benchSeriesPerRequest, benchBaseTimestamp).Marshal()
			if err != nil {
				b.Fatal(err)
			}
			var (
				req prompb.WriteRequest
				raw [][]byte
			)
			if err := remotewrite.UnmarshalRaw(enc, &req, &raw); err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			// Connect and warm up before measuring.
			if err := d.push(ctx, benchTenant, &req, raw); err != nil {
				b.Fatal(err)
			}
			m := newSampleMeter(b)
			for b.Loop() {
				// push filters the samples of req in place; all are valid, so
				// req is unchanged and can be pushed again.
				if err := d.push(ctx, benchTenant, &req, raw); err != nil {
					b.Fatal(err)
				}
			}
			m.report(b.N * benchSeriesPerRequest)
		})
	}
}

// benchRing is a ring in which every key belongs to all its instances.
type benchRing struct {
	instances []ring.InstanceDesc
	maxErrors int
}

var _ IngesterRing = (*benchRing)(nil)

func (r *benchRing) Get(_ uint32, _ ring.Operation, buf []ring.InstanceDesc, _, _ []string) (ring.ReplicationSet, error) {
	return ring.ReplicationSet{Instances: append(buf[:0], r.instances...), MaxErrors: r.maxErrors}, nil
}

func (r *benchRing) ReplicationFactor() int { return len(r.instances) }
func (r *benchRing) InstancesCount() int    { return len(r.instances) }

// benchClientPool hands out the client of each address.
type benchClientPool map[string]*client.Client

var _ ClientPool = benchClientPool(nil)

func (p benchClientPool) GetClientForInstance(inst ring.InstanceDesc) (ringclient.PoolClient, error) {
	c, ok := p[inst.Addr]
	if !ok {
		return nil, fmt.Errorf("no client for %s", inst.Addr)
	}
	return c, nil
}

// noopIngester accepts every push and stores nothing.
type noopIngester struct {
	ingesterpb.UnimplementedIngesterServer
}

func (noopIngester) Push(context.Context, *ingesterpb.PushRequest) (*ingesterpb.PushResponse, error) {
	return &ingesterpb.PushResponse{}, nil
}

// startNoopIngester serves a noopIngester on a free loopback port until the
// benchmark ends and returns its address.
func startNoopIngester(b *testing.B) string {
	b.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := grpc.NewServer(
		grpc.MaxRecvMsgSize(100<<20),
		grpc.ChainUnaryInterceptor(middleware.ServerUserHeaderInterceptor),
	)
	ingesterpb.RegisterIngesterServer(srv, noopIngester{})
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	b.Cleanup(func() {
		srv.GracefulStop()
		if err := <-done; err != nil {
			b.Error(err)
		}
	})
	return lis.Addr().String()
}
