// Package scheduler is the query-scheduler (-target=query-scheduler): it
// holds the per-tenant fair queue on behalf of query-frontends, so that
// frontends and queriers scale independently of it and of each other.
// Frontends enqueue over FrontendLoop streams, queriers pull over
// QuerierLoop streams and deliver results straight to the frontend.
package scheduler

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/neocortex-metrics/neocortex/pkg/frontend/frontendpb"
	"github.com/neocortex-metrics/neocortex/pkg/frontend/queue"
)

// Config configures the scheduler.
type Config struct {
	Queue queue.Config `yaml:",inline"`
}

// RegisterFlags registers the flags and their defaults.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	c.Queue.RegisterFlagsWithPrefix("query-scheduler.", f)
}

// Validate checks the config.
func (c *Config) Validate() error {
	if err := c.Queue.Validate(); err != nil {
		return fmt.Errorf("query-scheduler: %w", err)
	}
	return nil
}

// drainTimeout bounds how long a stopping scheduler lets the queued and
// running queries finish while queriers are connected.
const drainTimeout = 30 * time.Second

// Scheduler is the query-scheduler service and its gRPC Scheduler service
// (register it on the process's gRPC server).
type Scheduler struct {
	services.Service
	frontendpb.UnimplementedSchedulerServer

	cfg     Config
	logger  *slog.Logger
	queue   *queue.Queue
	metrics *metrics

	mtx      sync.Mutex
	draining bool
	running  int           // queries handed to queriers and not answered yet
	stopped  chan struct{} // closed at the end of stopping: FrontendLoops end
}

var _ frontendpb.SchedulerServer = (*Scheduler)(nil)

type metrics struct {
	frontends prometheus.Gauge
}

// New returns a scheduler whose metrics are registered with reg.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer) *Scheduler {
	s := &Scheduler{
		cfg:    cfg,
		logger: logger.With("component", "query-scheduler"),
		queue:  queue.New(cfg.Queue, queue.NewMetrics(prometheus.WrapRegistererWith(prometheus.Labels{"component": "query-scheduler"}, reg))),
		metrics: &metrics{
			frontends: promauto.With(reg).NewGauge(prometheus.GaugeOpts{
				Name: "neocortex_query_scheduler_connected_frontends",
				Help: "Query-frontend streams connected to the scheduler.",
			}),
		},
		stopped: make(chan struct{}),
	}
	s.Service = services.NewBasicService(s.starting, s.runningLoop, s.stopping)
	return s
}

func (s *Scheduler) starting(ctx context.Context) error {
	return services.StartAndAwaitRunning(ctx, s.queue)
}

func (s *Scheduler) runningLoop(ctx context.Context) error {
	w := services.NewFailureWatcher()
	w.WatchService(s.queue)
	select {
	case <-ctx.Done():
		return nil
	case err := <-w.Chan():
		return fmt.Errorf("query queue: %w", err)
	}
}

// stopping refuses new queries, lets queued and running ones finish while
// queriers are connected, fails what is left and closes the streams.
func (s *Scheduler) stopping(error) error {
	s.mtx.Lock()
	s.draining = true
	s.mtx.Unlock()
	deadline := time.Now().Add(drainTimeout)
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		s.mtx.Lock()
		busy := s.running > 0
		s.mtx.Unlock()
		if (!busy && s.queue.Len() == 0) || s.queue.ConnectedQueriers() == 0 {
			break
		}
		if time.Now().After(deadline) {
			s.logger.Warn("stopping with queries queued or running", "timeout", drainTimeout)
			break
		}
		<-t.C
	}
	for _, item := range s.queue.Drain() {
		r := item.(*request)
		r.fc.forget(r.queryID)
		r.fc.send(&frontendpb.SchedulerToFrontend{Status: frontendpb.SchedulerToFrontend_SHUTTING_DOWN, QueryId: r.queryID})
		r.cancel()
	}
	err := services.StopAndAwaitTerminated(context.Background(), s.queue)
	close(s.stopped)
	return err
}

func (s *Scheduler) isDraining() bool {
	s.mtx.Lock()
	defer s.mtx.Unlock()
	return s.draining
}

// request is a query in the scheduler, from its enqueueing until the
// querier running it is ready for the next.
type request struct {
	fc           *frontendConn
	queryID      uint64
	tenant       string
	req          *frontendpb.HTTPRequest
	statsEnabled bool
	// ctx is done when the frontend cancels the query or goes away.
	ctx    context.Context
	cancel context.CancelFunc
}

// frontendConn is one frontend's FrontendLoop stream.
type frontendConn struct {
	addr string

	mtx     sync.Mutex
	stream  frontendpb.Scheduler_FrontendLoopServer
	closed  bool                // no sends once the handler returned
	pending map[uint64]*request // queued or running
}

// send sends m unless the stream is closed. A failed send breaks the
// stream, which the FrontendLoop handler sees.
func (fc *frontendConn) send(m *frontendpb.SchedulerToFrontend) {
	fc.mtx.Lock()
	defer fc.mtx.Unlock()
	if !fc.closed {
		_ = fc.stream.Send(m)
	}
}

func (fc *frontendConn) forget(id uint64) {
	fc.mtx.Lock()
	defer fc.mtx.Unlock()
	delete(fc.pending, id)
}

// FrontendLoop serves a frontend's stream: it enqueues the frontend's
// queries and cancels them on request. When the stream ends, the frontend's
// queued queries are dropped and the running ones cancelled.
func (s *Scheduler) FrontendLoop(stream frontendpb.Scheduler_FrontendLoopServer) error {
	init, err := stream.Recv()
	if err != nil {
		return err
	}
	if init.GetType() != frontendpb.FrontendToScheduler_INIT || init.GetFrontendAddress() == "" {
		return status.Error(codes.InvalidArgument, "the first message must be INIT with the frontend's address")
	}
	if s.isDraining() {
		return stream.Send(&frontendpb.SchedulerToFrontend{Status: frontendpb.SchedulerToFrontend_SHUTTING_DOWN, Error: "query-scheduler is stopping"})
	}
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	fc := &frontendConn{addr: init.GetFrontendAddress(), stream: stream, pending: map[uint64]*request{}}
	defer s.closeFrontend(fc)
	fc.send(&frontendpb.SchedulerToFrontend{Status: frontendpb.SchedulerToFrontend_OK})
	s.metrics.frontends.Inc()
	defer s.metrics.frontends.Dec()

	// Messages are read on their own so that the loop also ends when the
	// scheduler stops; the reader ends with the stream.
	msgs := frontendpb.Receive(ctx, stream.Recv)
	for {
		select {
		case <-s.stopped:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case m := <-msgs:
			if m.Err != nil {
				return m.Err
			}
			switch m.Msg.GetType() {
			case frontendpb.FrontendToScheduler_ENQUEUE:
				s.enqueue(ctx, fc, m.Msg)
			case frontendpb.FrontendToScheduler_CANCEL:
				s.cancel(fc, m.Msg.GetQueryId())
			}
		}
	}
}

func (s *Scheduler) enqueue(ctx context.Context, fc *frontendConn, m *frontendpb.FrontendToScheduler) {
	reply := func(st frontendpb.SchedulerToFrontend_Status, msg string) {
		fc.send(&frontendpb.SchedulerToFrontend{Status: st, QueryId: m.GetQueryId(), Error: msg})
	}
	if s.isDraining() {
		reply(frontendpb.SchedulerToFrontend_SHUTTING_DOWN, "query-scheduler is stopping")
		return
	}
	if m.GetTenantId() == "" || m.GetHttpRequest() == nil {
		reply(frontendpb.SchedulerToFrontend_ERROR, "a query needs a tenant and a request")
		return
	}
	rctx, rcancel := context.WithCancel(ctx)
	r := &request{
		fc:           fc,
		queryID:      m.GetQueryId(),
		tenant:       m.GetTenantId(),
		req:          m.GetHttpRequest(),
		statsEnabled: m.GetStatsEnabled(),
		ctx:          rctx,
		cancel:       rcancel,
	}
	fc.mtx.Lock()
	_, dup := fc.pending[r.queryID]
	if !dup {
		fc.pending[r.queryID] = r
	}
	fc.mtx.Unlock()
	if dup {
		rcancel()
		reply(frontendpb.SchedulerToFrontend_ERROR, fmt.Sprintf("query %d is already enqueued", r.queryID))
		return
	}
	err := s.queue.Enqueue(r.tenant, r, s.cfg.Queue.MaxQueriersPerTenant)
	switch {
	case err == nil:
		reply(frontendpb.SchedulerToFrontend_OK, "")
		return
	case errors.Is(err, queue.ErrTooManyRequests):
		reply(frontendpb.SchedulerToFrontend_TOO_MANY_REQUESTS, err.Error())
	case errors.Is(err, queue.ErrStopped):
		reply(frontendpb.SchedulerToFrontend_SHUTTING_DOWN, err.Error())
	default:
		reply(frontendpb.SchedulerToFrontend_ERROR, err.Error())
	}
	fc.forget(r.queryID)
	rcancel()
}

// cancel drops a queued query, or tells the querier running it (through its
// QuerierLoop, which watches the request's context).
func (s *Scheduler) cancel(fc *frontendConn, id uint64) {
	fc.mtx.Lock()
	r := fc.pending[id]
	delete(fc.pending, id)
	fc.mtx.Unlock()
	if r == nil {
		return
	}
	s.queue.Remove(r.tenant, r)
	r.cancel()
}

// closeFrontend drops the queued queries of a frontend whose stream ended
// and cancels its running ones.
func (s *Scheduler) closeFrontend(fc *frontendConn) {
	fc.mtx.Lock()
	fc.closed = true
	pending := fc.pending
	fc.pending = map[uint64]*request{}
	fc.mtx.Unlock()
	for _, r := range pending {
		s.queue.Remove(r.tenant, r)
		r.cancel()
	}
}

// QuerierLoop serves a querier's stream: each message from the querier says
// it is ready, and gets one query.
func (s *Scheduler) QuerierLoop(stream frontendpb.Scheduler_QuerierLoopServer) error {
	hello, err := stream.Recv()
	if err != nil {
		return err
	}
	id := hello.GetQuerierId()
	if id == "" {
		return status.Error(codes.InvalidArgument, "the first message must name the querier")
	}
	ctx := stream.Context()
	// The querier's messages are read on their own so that its death or a
	// cancelled query are noticed while a query runs. The reader ends with
	// the stream, when this handler returns at the latest.
	msgs := frontendpb.Receive(ctx, stream.Recv)
	return s.queue.Serve(ctx, id, func(item queue.Request) error {
		r := item.(*request)
		if r.ctx.Err() != nil {
			return nil // cancelled while queued
		}
		return s.runOn(ctx, id, stream, msgs, r)
	}, func() error {
		return stream.Send(&frontendpb.SchedulerToQuerier{Type: frontendpb.SchedulerToQuerier_SHUTDOWN})
	})
}

// runOn hands r to the querier and waits until the querier is ready again.
// An error means the stream is broken; the frontend is then told.
func (s *Scheduler) runOn(ctx context.Context, querierID string, stream frontendpb.Scheduler_QuerierLoopServer, msgs <-chan frontendpb.Received[*frontendpb.QuerierToScheduler], r *request) error {
	s.mtx.Lock()
	s.running++
	s.mtx.Unlock()
	defer func() {
		s.mtx.Lock()
		s.running--
		s.mtx.Unlock()
		r.fc.forget(r.queryID)
		r.cancel()
	}()
	fail := func(err error) error {
		r.fc.send(&frontendpb.SchedulerToFrontend{
			Status:  frontendpb.SchedulerToFrontend_ERROR,
			QueryId: r.queryID,
			Error:   fmt.Sprintf("querier %s went away while running the query: %v", querierID, err),
		})
		return err
	}
	err := stream.Send(&frontendpb.SchedulerToQuerier{
		Type:            frontendpb.SchedulerToQuerier_HTTP_REQUEST,
		QueryId:         r.queryID,
		FrontendAddress: r.fc.addr,
		TenantId:        r.tenant,
		HttpRequest:     r.req,
		StatsEnabled:    r.statsEnabled,
	})
	if err != nil {
		return fail(err)
	}
	cancelled := r.ctx.Done()
	for {
		select {
		case m := <-msgs:
			if m.Err != nil {
				return fail(m.Err)
			}
			return nil // ready: the result went to the frontend
		case <-cancelled:
			cancelled = nil
			if err := stream.Send(&frontendpb.SchedulerToQuerier{Type: frontendpb.SchedulerToQuerier_CANCEL, QueryId: r.queryID}); err != nil {
				return err
			}
		case <-ctx.Done():
			return fail(ctx.Err())
		}
	}
}
