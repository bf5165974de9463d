// Package worker is the querier's end of the query path: it pulls requests
// from query-frontends (direct mode) or query-schedulers over gRPC streams,
// runs each against the querier's HTTP API in-process and sends the answer
// back, to the stream or, for scheduled queries, to the frontend that asked.
package worker

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/grafana/dskit/backoff"
	"github.com/grafana/dskit/flagext"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"google.golang.org/grpc"

	"github.com/neocortex-metrics/neocortex/pkg/frontend/frontendpb"
	"github.com/neocortex-metrics/neocortex/pkg/tenant"
)

// Config configures the worker. With neither address set the worker idles:
// the querier then only serves its API directly.
type Config struct {
	// FrontendAddress lists the query-frontends to pull from (direct mode).
	FrontendAddress flagext.StringSliceCSV `yaml:"frontend_address"`
	// SchedulerAddress lists the query-schedulers to pull from.
	SchedulerAddress flagext.StringSliceCSV `yaml:"scheduler_address"`
	// Parallelism is the number of streams, hence of concurrent requests,
	// per frontend or scheduler address.
	Parallelism int `yaml:"parallelism"`
	// QuerierID names this querier to frontends and schedulers: its streams
	// count as one querier for shuffle sharding.
	QuerierID          string `yaml:"querier_id"`
	GRPCMaxRecvMsgSize int    `yaml:"grpc_max_recv_msg_size_bytes"`
	GRPCMaxSendMsgSize int    `yaml:"grpc_max_send_msg_size_bytes"`
}

// RegisterFlags registers the flags and their defaults.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	hostname, err := os.Hostname()
	if err != nil {
		hostname = "querier"
	}
	f.Var(&c.FrontendAddress, "querier.frontend-address", "Comma-separated gRPC addresses of the query-frontends to pull queries from (direct mode).")
	f.Var(&c.SchedulerAddress, "querier.scheduler-address", "Comma-separated gRPC addresses of the query-schedulers to pull queries from. Exclusive with -querier.frontend-address.")
	f.IntVar(&c.Parallelism, "querier.worker-parallelism", 10, "Queries run at once per frontend or scheduler address (one stream each).")
	f.StringVar(&c.QuerierID, "querier.id", hostname, "This querier's id towards frontends and schedulers; shuffle sharding counts queriers by it.")
	f.IntVar(&c.GRPCMaxRecvMsgSize, "querier.worker-grpc-max-recv-msg-size-bytes", 100<<20, "Largest gRPC message accepted from a frontend or scheduler.")
	f.IntVar(&c.GRPCMaxSendMsgSize, "querier.worker-grpc-max-send-msg-size-bytes", 100<<20, "Largest gRPC message sent to a frontend; larger answers become a 413 error (not to a frontend in the same process, which gets them in memory).")
}

// Validate checks the config.
func (c *Config) Validate() error {
	switch {
	case len(c.FrontendAddress) > 0 && len(c.SchedulerAddress) > 0:
		return errors.New("querier frontend_address and scheduler_address are exclusive")
	case c.Parallelism < 1:
		return errors.New("querier worker parallelism must be at least 1")
	case c.QuerierID == "":
		return errors.New("querier_id must be set")
	case c.GRPCMaxRecvMsgSize <= 0 || c.GRPCMaxSendMsgSize <= 0:
		return errors.New("querier worker gRPC message sizes must be positive")
	}
	for _, a := range append(append([]string{}, c.FrontendAddress...), c.SchedulerAddress...) {
		if a == "" {
			return errors.New("querier frontend_address or scheduler_address has an empty entry")
		}
	}
	return nil
}

// backoffConfig paces the reconnections of one stream.
var backoffConfig = backoff.Config{MinBackoff: 100 * time.Millisecond, MaxBackoff: 5 * time.Second}

const (
	// queryResultTimeout bounds the delivery of one result to a frontend.
	queryResultTimeout = 30 * time.Second
	// idleConnTimeout is how long an unused connection to a frontend stays open.
	idleConnTimeout = 5 * time.Minute
)

// errShutdown ends a stream whose frontend or scheduler is stopping.
var errShutdown = errors.New("frontend or scheduler is stopping")

// Worker pulls requests and runs them against the querier's API. It is a
// service. When it stops, idle streams close at once and running requests
// finish and are answered first.
type Worker struct {
	services.Service

	cfg       Config
	handler   http.Handler
	logger    *slog.Logger
	metrics   *metrics
	targets   []target
	frontends *frontendPool

	localFrontend func() frontendpb.FrontendServer
}

// target is a frontend or scheduler the worker pulls requests from: at an
// address, or the frontend of this process (local), reached without gRPC.
type target struct {
	addr  string
	conn  *grpc.ClientConn
	local frontendpb.FrontendServer
}

type metrics struct {
	requests *prometheus.CounterVec
	streams  prometheus.Gauge
}

// New returns a worker that runs requests against handler (the querier's
// API, which reads the tenant from the request context). Metrics are
// registered with reg.
func New(cfg Config, handler http.Handler, logger *slog.Logger, reg prometheus.Registerer) *Worker {
	f := promauto.With(reg)
	w := &Worker{
		cfg:     cfg,
		handler: handler,
		logger:  logger.With("component", "querier-worker"),
		metrics: &metrics{
			requests: f.NewCounterVec(prometheus.CounterOpts{
				Name: "neocortex_querier_worker_requests_total",
				Help: "Requests pulled from frontends or schedulers and run, by HTTP status code.",
			}, []string{"status_code"}),
			streams: f.NewGauge(prometheus.GaugeOpts{
				Name: "neocortex_querier_worker_streams",
				Help: "Open streams to frontends or schedulers.",
			}),
		},
		frontends: newFrontendPool(cfg.GRPCMaxRecvMsgSize, cfg.GRPCMaxSendMsgSize),
	}
	w.Service = services.NewBasicService(w.starting, w.running, w.stopping)
	return w
}

// WithLocalFrontend makes a worker that is given no frontend or scheduler
// address pull from the frontend that get returns when the worker starts,
// one in this process: its requests and answers are handed over without
// gRPC, so no message size limit applies to them. Call it before the
// worker starts.
func (w *Worker) WithLocalFrontend(get func() frontendpb.FrontendServer) *Worker {
	w.localFrontend = get
	return w
}

func (w *Worker) starting(context.Context) error {
	if w.localFrontend != nil && len(w.cfg.FrontendAddress) == 0 && len(w.cfg.SchedulerAddress) == 0 {
		f := w.localFrontend()
		if f == nil {
			return errors.New("no query-frontend in this process to pull queries from")
		}
		w.targets = append(w.targets, target{addr: "in-process query-frontend", local: f})
		return nil
	}
	addrs := w.cfg.FrontendAddress
	if len(w.cfg.SchedulerAddress) > 0 {
		addrs = w.cfg.SchedulerAddress
	}
	for _, addr := range addrs {
		conn, err := frontendpb.Dial(addr, w.cfg.GRPCMaxRecvMsgSize, w.cfg.GRPCMaxSendMsgSize)
		if err != nil {
			w.closeConns()
			return fmt.Errorf("dial %s: %w", addr, err)
		}
		w.targets = append(w.targets, target{addr: addr, conn: conn})
	}
	return nil
}

func (w *Worker) running(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, t := range w.targets {
		for range w.cfg.Parallelism {
			wg.Add(1)
			go func() {
				defer wg.Done()
				w.streamLoop(ctx, t)
			}()
		}
	}
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case <-tick.C:
			w.frontends.closeIdle(time.Now().Add(-idleConnTimeout))
		}
	}
}

func (w *Worker) stopping(error) error {
	w.closeConns()
	w.frontends.close()
	return nil
}

func (w *Worker) closeConns() {
	for _, t := range w.targets {
		if t.conn != nil {
			t.conn.Close()
		}
	}
}

// streamLoop keeps one stream to t open until ctx is done, reconnecting
// with backoff.
func (w *Worker) streamLoop(ctx context.Context, t target) {
	bo := backoff.New(ctx, backoffConfig)
	for bo.Ongoing() {
		var err error
		if len(w.cfg.SchedulerAddress) > 0 {
			err = w.schedulerStream(ctx, t.conn, bo)
		} else {
			err = w.frontendStream(ctx, t, bo)
		}
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errShutdown) {
			w.logger.Debug("stream closed by a stopping peer", "addr", t.addr)
		} else {
			w.logger.Warn("stream closed", "addr", t.addr, "err", err)
		}
		bo.Wait()
	}
}

// openStream opens a stream with open, on a context that outlives ctx (so
// that a stopping worker finishes its running requests) but not while the
// stream is being opened. cancel closes the stream.
func openStream[S any](ctx context.Context, open func(context.Context, ...grpc.CallOption) (S, error)) (s S, cancel context.CancelFunc, err error) {
	sctx, cancel := context.WithCancel(frontendpb.StreamContext(context.Background()))
	stop := context.AfterFunc(ctx, cancel)
	s, err = open(sctx)
	if !stop() || err != nil {
		cancel()
		if err == nil {
			err = ctx.Err()
		}
		return s, nil, err
	}
	return s, cancel, nil
}

func (w *Worker) frontendStream(ctx context.Context, t target, bo *backoff.Backoff) error {
	open := frontendpb.LocalProcess(t.local)
	if t.local == nil {
		open = frontendpb.NewFrontendClient(t.conn).Process
	}
	stream, cancel, err := openStream(ctx, open)
	if err != nil {
		return err
	}
	if err := stream.Send(&frontendpb.ClientToFrontend{QuerierId: w.cfg.QuerierID}); err != nil {
		cancel()
		return err
	}
	recv := func() incoming {
		m, err := stream.Recv()
		switch {
		case err != nil:
			return incoming{err: err}
		case m.GetType() == frontendpb.FrontendToClient_CANCEL:
			return incoming{kind: kindCancel}
		case m.GetType() == frontendpb.FrontendToClient_SHUTDOWN:
			return incoming{kind: kindShutdown}
		}
		return incoming{kind: kindRequest, work: &work{tenant: m.GetTenantId(), req: m.GetHttpRequest(), stats: m.GetStatsEnabled(), local: t.local != nil}}
	}
	answer := func(execCtx context.Context, wk *work) error {
		resp, stats := w.execute(execCtx, wk)
		return stream.Send(&frontendpb.ClientToFrontend{HttpResponse: resp, Stats: stats})
	}
	return w.serve(ctx, cancel, bo, recv, answer)
}

func (w *Worker) schedulerStream(ctx context.Context, conn *grpc.ClientConn, bo *backoff.Backoff) error {
	stream, cancel, err := openStream(ctx, frontendpb.NewSchedulerClient(conn).QuerierLoop)
	if err != nil {
		return err
	}
	ready := &frontendpb.QuerierToScheduler{QuerierId: w.cfg.QuerierID}
	if err := stream.Send(ready); err != nil {
		cancel()
		return err
	}
	recv := func() incoming {
		m, err := stream.Recv()
		switch {
		case err != nil:
			return incoming{err: err}
		case m.GetType() == frontendpb.SchedulerToQuerier_CANCEL:
			return incoming{kind: kindCancel, queryID: m.GetQueryId()}
		case m.GetType() == frontendpb.SchedulerToQuerier_SHUTDOWN:
			return incoming{kind: kindShutdown}
		}
		return incoming{kind: kindRequest, queryID: m.GetQueryId(), work: &work{
			tenant: m.GetTenantId(), req: m.GetHttpRequest(), stats: m.GetStatsEnabled(), frontend: m.GetFrontendAddress(),
		}}
	}
	answer := func(execCtx context.Context, wk *work) error {
		resp, stats := w.execute(execCtx, wk)
		// A cancelled query has nobody waiting for it.
		if execCtx.Err() == nil {
			w.deliver(wk, &frontendpb.QueryResultRequest{QueryId: wk.queryID, HttpResponse: resp, Stats: stats})
		}
		return stream.Send(ready)
	}
	return w.serve(ctx, cancel, bo, recv, answer)
}

// deliver sends a scheduled query's result to the frontend that asked.
func (w *Worker) deliver(wk *work, r *frontendpb.QueryResultRequest) {
	client, err := w.frontends.get(wk.frontend)
	if err == nil {
		ctx, cancel := context.WithTimeout(tenant.WithTenant(context.Background(), wk.tenant), queryResultTimeout)
		_, err = client.QueryResult(ctx, r)
		cancel()
	}
	if err != nil {
		w.logger.Warn("deliver query result", "frontend", wk.frontend, "tenant", wk.tenant, "err", err)
	}
}
