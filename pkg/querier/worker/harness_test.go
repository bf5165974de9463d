package worker_test

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grafana/dskit/middleware"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	"github.com/neocortex-metrics/neocortex/pkg/frontend/frontendpb"
	"github.com/neocortex-metrics/neocortex/pkg/frontend/queue"
	"github.com/neocortex-metrics/neocortex/pkg/frontend/transport"
	"github.com/neocortex-metrics/neocortex/pkg/querier"
	"github.com/neocortex-metrics/neocortex/pkg/querier/worker"
	"github.com/neocortex-metrics/neocortex/pkg/scheduler"
	"github.com/neocortex-metrics/neocortex/pkg/tenant"
)

type mode string

const (
	direct    mode = "direct"
	scheduled mode = "scheduler"
)

var modes = []mode{direct, scheduled}

// cluster is a frontend, in direct mode or behind a scheduler, each on its
// own gRPC server on loopback, and the workers pulling from them.
type cluster struct {
	t        *testing.T
	mode     mode
	frontend *transport.Frontend
	// queueReg holds the metrics of the queue the workers pull from.
	queueReg    *prometheus.Registry
	frontendReg *prometheus.Registry
	// pullAddr is where workers connect: the frontend or the scheduler.
	pullAddr string
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// listen returns a loopback listener and serves register's services on it
// once serve is called; the server stops at the end of the test, after the
// services registered later.
func listen(t *testing.T) (net.Listener, func(register func(*grpc.Server))) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	return lis, func(register func(*grpc.Server)) {
		// The same tenant interceptors as the process's server.
		srv := grpc.NewServer(
			grpc.ChainUnaryInterceptor(middleware.ServerUserHeaderInterceptor),
			grpc.ChainStreamInterceptor(middleware.StreamServerUserHeaderInterceptor),
		)
		register(srv)
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = srv.Serve(lis)
		}()
		t.Cleanup(func() {
			srv.Stop()
			<-done
		})
	}
}

func startService(t *testing.T, s services.Service) {
	t.Helper()
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), s))
	t.Cleanup(func() { require.NoError(t, services.StopAndAwaitTerminated(context.Background(), s)) })
}

func queueConfig(maxOutstanding, maxQueriers int) queue.Config {
	return queue.Config{MaxOutstandingPerTenant: maxOutstanding, MaxQueriersPerTenant: maxQueriers}
}

func newCluster(t *testing.T, m mode, qcfg queue.Config) *cluster {
	t.Helper()
	c := &cluster{t: t, mode: m, frontendReg: prometheus.NewRegistry()}
	var fcfg transport.Config
	fcfg.RegisterFlags(flag.NewFlagSet("", flag.PanicOnError))
	fcfg.Queue = qcfg
	flis, fserve := listen(t)
	if m == scheduled {
		var scfg scheduler.Config
		scfg.RegisterFlags(flag.NewFlagSet("", flag.PanicOnError))
		scfg.Queue = qcfg
		require.NoError(t, scfg.Validate())
		c.queueReg = prometheus.NewRegistry()
		s := scheduler.New(scfg, quiet(), c.queueReg)
		slis, sserve := listen(t)
		sserve(func(srv *grpc.Server) { frontendpb.RegisterSchedulerServer(srv, s) })
		startService(t, s)
		c.pullAddr = slis.Addr().String()
		fcfg.SchedulerAddress = []string{c.pullAddr}
		fcfg.Address = flis.Addr().String()
	} else {
		c.queueReg = c.frontendReg
		c.pullAddr = flis.Addr().String()
	}
	require.NoError(t, fcfg.Validate())
	f, err := transport.New(fcfg, quiet(), c.frontendReg)
	require.NoError(t, err)
	c.frontend = f
	fserve(func(srv *grpc.Server) { frontendpb.RegisterFrontendServer(srv, f) })
	startService(t, f)
	if m == scheduled {
		require.Eventually(t, func() bool {
			return gauge(t, c.frontendReg, "neocortex_query_frontend_connected_schedulers", "") == 1
		}, 5*time.Second, 10*time.Millisecond, "frontend connects to the scheduler")
	}
	return c
}

// addWorker starts a worker named id that pulls from addr (the cluster's
// pull address when empty) and runs requests against a.
func (c *cluster) addWorker(id string, parallelism int, addr string, a http.Handler) *worker.Worker {
	c.t.Helper()
	var cfg worker.Config
	cfg.RegisterFlags(flag.NewFlagSet("", flag.PanicOnError))
	if addr == "" {
		addr = c.pullAddr
	}
	if c.mode == scheduled {
		cfg.SchedulerAddress = []string{addr}
	} else {
		cfg.FrontendAddress = []string{addr}
	}
	cfg.QuerierID = id
	cfg.Parallelism = parallelism
	require.NoError(c.t, cfg.Validate())
	w := worker.New(cfg, a, quiet(), prometheus.NewRegistry())
	startService(c.t, w)
	if a, ok := a.(api); ok {
		// Before the worker stops, which waits for running requests.
		c.t.Cleanup(a.releaseAll)
	}
	return w
}

// waitQueriers waits until n queriers pull from the queue.
func (c *cluster) waitQueriers(n int) {
	c.t.Helper()
	require.Eventually(c.t, func() bool {
		return gauge(c.t, c.queueReg, "neocortex_query_queue_connected_queriers", "") == float64(n)
	}, 5*time.Second, 10*time.Millisecond, "%d queriers connect", n)
}

// queueLength is the number of tenantID's queued requests.
func (c *cluster) queueLength(tenantID string) float64 {
	return gauge(c.t, c.queueReg, "neocortex_query_queue_length", tenantID)
}

// gauge returns the value of a gauge, of the series of tenant when it is
// set; -1 when there is none.
func gauge(t *testing.T, reg *prometheus.Registry, name, tenantID string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if tenantID == "" {
				return m.GetGauge().GetValue()
			}
			for _, l := range m.GetLabel() {
				if l.GetName() == "tenant" && l.GetValue() == tenantID {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return -1
}

func (c *cluster) get(ctx context.Context, tenantID, url string) (*frontendpb.HTTPResponse, error) {
	return c.frontend.RoundTrip(tenant.WithTenant(ctx, tenantID), &frontendpb.HTTPRequest{
		Method:  http.MethodGet,
		Url:     url,
		Headers: []*frontendpb.Header{{Name: "Accept", Values: []string{"application/json"}}},
	})
}

// api is the querier API of the tests. /slow waits for a token from block
// (or its context); /fail answers 500; /panic panics; every path answers a
// body naming the querier, the tenant from the context and from the header,
// and the path. Each request "fetches" 3 series of 100 bytes.
type api struct {
	id string
	*apiState
}

type apiState struct {
	block     chan struct{}
	release   sync.Once
	started   chan string   // a /slow request of this tenant started
	cancelled chan struct{} // a /slow request saw its context done
	served    atomic.Int64
}

func newAPI() *apiState {
	return &apiState{block: make(chan struct{}), started: make(chan string, 1000), cancelled: make(chan struct{}, 1000)}
}

func (s *apiState) as(id string) api { return api{id: id, apiState: s} }

// releaseAll lets every /slow request, present and future, through.
func (s *apiState) releaseAll() { s.release.Do(func() { close(s.block) }) }

func (a api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.served.Add(1)
	if st := querier.StatsFromContext(r.Context()); st != nil {
		st.Series.Add(3)
		st.Bytes.Add(100)
	}
	id, err := tenant.FromContext(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	switch r.URL.Path {
	case "/slow":
		a.started <- id
		select {
		case <-a.block:
		case <-r.Context().Done():
			a.cancelled <- struct{}{}
			http.Error(w, "cancelled", transport.StatusClientClosedRequest)
			return
		}
	case "/fail":
		http.Error(w, "boom", http.StatusInternalServerError)
		return
	case "/panic":
		panic("boom")
	}
	w.Header().Set("X-Querier", a.id)
	fmt.Fprintf(w, "querier=%s tenant=%s header=%s path=%s q=%s", a.id, id, r.Header.Get(tenant.Header), r.URL.Path, r.URL.Query().Get("q"))
}

// proxy forwards TCP connections to a target until it is killed, which
// breaks them all at once, like the death of the process behind.
type proxy struct {
	lis    net.Listener
	target string

	mtx    sync.Mutex
	killed bool
	conns  []net.Conn
	wg     sync.WaitGroup
	once   sync.Once
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &proxy{lis: lis, target: target}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.kill)
	return p
}

func (p *proxy) addr() string { return p.lis.Addr().String() }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.lis.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mtx.Lock()
		if p.killed {
			p.mtx.Unlock()
			c.Close()
			u.Close()
			return
		}
		p.conns = append(p.conns, c, u)
		p.mtx.Unlock()
		p.wg.Add(2)
		go func() {
			defer p.wg.Done()
			_, _ = io.Copy(u, c)
			u.Close()
		}()
		go func() {
			defer p.wg.Done()
			_, _ = io.Copy(c, u)
			c.Close()
		}()
	}
}

func (p *proxy) kill() {
	p.once.Do(func() {
		p.lis.Close()
		p.mtx.Lock()
		p.killed = true
		for _, c := range p.conns {
			c.Close()
		}
		p.mtx.Unlock()
		p.wg.Wait()
	})
}
