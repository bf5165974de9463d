//go:build unix

package distributor

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
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
	"github.com/neocortex-metrics/neocortex/pkg/remotewrite/remotewritetest"
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

// benchLimits are the default limits without an ingestion rate limit, which a
// benchmark pushing millions of samples per second would hit.
func benchLimits(b testing.TB) *limits.Overrides {
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

func newBenchDistributor(b testing.TB, r IngesterRing, clients ClientPool) *Distributor {
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
	body, err := remotewrite.Encode(remotewritetest.WriteRequest(0, benchSeriesPerRequest, benchBaseTimestamp))
	if err != nil {
		b.Fatal(err)
	}
	d := newBenchDistributor(b, nil, nil)
	b.SetBytes(int64(len(body)))
	m := remotewritetest.NewMeter(b)
	for b.Loop() {
		r, err := http.NewRequest(http.MethodPost, "/api/v1/push", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		r.Header.Set("Content-Type", "application/x-protobuf")
		r.Header.Set("Content-Encoding", "snappy")
		// As the handler does: into a pooled request, released once done.
		pr := getPushRequest()
		if _, err := d.decode(r, pr); err != nil {
			b.Fatal(err)
		}
		if len(pr.req.Timeseries) != benchSeriesPerRequest {
			b.Fatalf("decoded %d series, want %d", len(pr.req.Timeseries), benchSeriesPerRequest)
		}
		pr.release()
	}
	m.Report(b.N * benchSeriesPerRequest)
}

// BenchmarkValidateAndShard measures the per-series work of Push before the
// fan-out: label and timestamp validation and the ring token, for 1000 series.
func BenchmarkValidateAndShard(b *testing.B) {
	req := remotewritetest.WriteRequest(0, benchSeriesPerRequest, benchBaseTimestamp)
	lim := benchLimits(b).For(benchTenant)
	keys := make([]uint32, 0, len(req.Timeseries))
	valid := make([]prompb.TimeSeries, 0, len(req.Timeseries))
	m := remotewritetest.NewMeter(b)
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
	m.Report(b.N * benchSeriesPerRequest)
}

// BenchmarkSeriesToken measures the ring token of one 10-label series.
func BenchmarkSeriesToken(b *testing.B) {
	series := make([][]prompb.Label, 1024)
	for i := range series {
		series[i] = remotewritetest.SeriesLabels(i)
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
			enc, err := remotewritetest.WriteRequest(0, benchSeriesPerRequest, benchBaseTimestamp).Marshal()
			if err != nil {
				b.Fatal(err)
			}
			// push filters the series of its request in place; all are
			// valid, so the request stays the same and can be pushed again.
			// It is never released, lest the pool recycle it.
			pr := getPushRequest()
			if err := pr.arena.Unmarshal(enc, &pr.req, &pr.raw); err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			// Connect and warm up before measuring.
			if err := d.push(ctx, benchTenant, pr); err != nil {
				b.Fatal(err)
			}
			m := remotewritetest.NewMeter(b)
			for b.Loop() {
				if err := d.push(ctx, benchTenant, pr); err != nil {
					b.Fatal(err)
				}
			}
			m.Report(b.N * benchSeriesPerRequest)
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

func (r *benchRing) ReplicationFactor() int        { return len(r.instances) }
func (r *benchRing) InstancesCount() int           { return len(r.instances) }
func (r *benchRing) InstancesWithTokensCount() int { return len(r.instances) }
func (r *benchRing) ZonesCount() int               { return 1 }

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
func startNoopIngester(b testing.TB) string {
	return startIngesterServer(b, noopIngester{})
}

// startIngesterServer serves srv on a free loopback port until the test
// ends and returns its address.
func startIngesterServer(b testing.TB, ing ingesterpb.IngesterServer) string {
	b.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := grpc.NewServer(
		grpc.MaxRecvMsgSize(100<<20),
		grpc.ChainUnaryInterceptor(middleware.ServerUserHeaderInterceptor),
	)
	ingesterpb.RegisterIngesterServer(srv, ing)
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
