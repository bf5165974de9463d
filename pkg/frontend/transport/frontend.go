// Package transport is the query-frontend's end of the query path: it sends
// each HTTP request to a querier, either through its own per-tenant queue
// that queriers pull from (direct mode) or through query-schedulers
// (scheduler mode), and waits for the answer.
package transport

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grafana/dskit/flagext"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/neocortex-metrics/neocortex/pkg/frontend/frontendpb"
	"github.com/neocortex-metrics/neocortex/pkg/frontend/queue"
	"github.com/neocortex-metrics/neocortex/pkg/tenant"
)

// Sentinel errors of RoundTrip; StatusCode maps them to HTTP.
var (
	// ErrTooManyRequests: the tenant has too many requests queued (429).
	ErrTooManyRequests = queue.ErrTooManyRequests
	// ErrStopped: the frontend is stopping (503).
	ErrStopped = errors.New("query-frontend is stopping")
	// ErrQuerierFailed: the querier running the request went away before it
	// answered; another querier may succeed (502).
	ErrQuerierFailed = errors.New("querier failed while running the request")
	// ErrNoScheduler: no query-scheduler is connected (503).
	ErrNoScheduler = errors.New("no query-scheduler is connected")
	// ErrSchedulerFailed: the query-scheduler holding the request went away
	// or stopped before the request ran (502).
	ErrSchedulerFailed = errors.New("query-scheduler failed before the request ran")
)

// Config configures the frontend's end of the query path.
type Config struct {
	// SchedulerAddress lists the query-schedulers; empty is direct mode.
	SchedulerAddress flagext.StringSliceCSV `yaml:"scheduler_address"`
	// Address is where queriers reach this frontend's gRPC server to deliver
	// results in scheduler mode.
	Address            string `yaml:"address"`
	QueryStatsEnabled  bool   `yaml:"query_stats_enabled"`
	MaxBodySize        int64  `yaml:"max_body_size_bytes"`
	GRPCMaxRecvMsgSize int    `yaml:"grpc_max_recv_msg_size_bytes"`
	GRPCMaxSendMsgSize int    `yaml:"grpc_max_send_msg_size_bytes"`
	// Queue is the queue's limits in direct mode.
	Queue queue.Config `yaml:",inline"`
}

// RegisterFlags registers the flags and their defaults.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.Var(&c.SchedulerAddress, "frontend.scheduler-address", "Comma-separated gRPC addresses of the query-schedulers to send queries to (empty = queue them here for queriers to pull).")
	f.StringVar(&c.Address, "frontend.address", "", "Address (host:port of the gRPC server) queriers deliver results to in scheduler mode. Required with a scheduler address.")
	f.BoolVar(&c.QueryStatsEnabled, "frontend.query-stats-enabled", false, "Ask queriers for each request's statistics (time, fetched series and bytes) and log them.")
	f.Int64Var(&c.MaxBodySize, "frontend.max-body-size-bytes", 10<<20, "Largest request body the frontend accepts (413 beyond).")
	f.IntVar(&c.GRPCMaxRecvMsgSize, "frontend.grpc-max-recv-msg-size-bytes", 100<<20, "Largest gRPC message accepted from a query-scheduler.")
	f.IntVar(&c.GRPCMaxSendMsgSize, "frontend.grpc-max-send-msg-size-bytes", 100<<20, "Largest gRPC message sent to a query-scheduler.")
	c.Queue.RegisterFlagsWithPrefix("frontend.", f)
}

// Validate checks the config.
func (c *Config) Validate() error {
	for _, a := range c.SchedulerAddress {
		if a == "" {
			return errors.New("frontend scheduler_address has an empty entry")
		}
	}
	if c.MaxBodySize <= 0 || c.GRPCMaxRecvMsgSize <= 0 || c.GRPCMaxSendMsgSize <= 0 {
		return errors.New("frontend max_body_size_bytes and gRPC message sizes must be positive")
	}
	if err := c.Queue.Validate(); err != nil {
		return fmt.Errorf("frontend: %w", err)
	}
	return nil
}

// RoundTripper sends one HTTP request of the tenant in ctx to a querier.
type RoundTripper interface {
	// RoundTrip returns the querier's answer, whatever its status code, or
	// an error when the request did not get one (see the sentinel errors).
	// When ctx is done it returns ctx's error at once and the request is
	// taken out of the queue, or the querier running it is told to stop.
	// It is safe for concurrent use.
	RoundTrip(ctx context.Context, req *frontendpb.HTTPRequest) (*frontendpb.HTTPResponse, error)
}

var (
	_ RoundTripper              = (*Frontend)(nil)
	_ frontendpb.FrontendServer = (*Frontend)(nil)
)

// drainTimeout bounds how long a stopping frontend (or scheduler) lets the
// requests in flight finish while queriers are connected.
const drainTimeout = 30 * time.Second

// Frontend sends requests to queriers. It is a service, and the gRPC
// Frontend service that queriers connect to (register it on the process's
// gRPC server).
type Frontend struct {
	services.Service
	frontendpb.UnimplementedFrontendServer

	cfg     Config
	logger  *slog.Logger
	metrics *metrics

	// queue is the queue of direct mode; nil in scheduler mode.
	queue *queue.Queue
	// schedulers are the scheduler connections of scheduler mode.
	schedulers []*schedulerClient
	nextSched  atomic.Uint64
	nextID     atomic.Uint64
	loopCancel context.CancelFunc
	loops      sync.WaitGroup

	mtx      sync.Mutex
	draining bool
	inflight int
	queries  map[uint64]*query // scheduler mode, by id
}

type metrics struct {
	inflight   prometheus.Gauge
	schedulers prometheus.Gauge
}

// New returns a frontend in direct mode, or in scheduler mode when
// cfg.SchedulerAddress is set (then cfg.Address is required). Metrics are
// registered with reg.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Frontend, error) {
	if len(cfg.SchedulerAddress) > 0 && cfg.Address == "" {
		return nil, errors.New("frontend address is required with a scheduler address: queriers deliver results to it")
	}
	f := &Frontend{
		cfg:    cfg,
		logger: logger.With("component", "query-frontend"),
		metrics: &metrics{
			inflight: promauto.With(reg).NewGauge(prometheus.GaugeOpts{
				Name: "neocortex_query_frontend_inflight_requests",
				Help: "Requests sent to queriers and not answered yet, queued ones included.",
			}),
		},
		queries: map[uint64]*query{},
	}
	// Query ids start at random so that a late result meant for a previous
	// run of this frontend does not match a query of this one.
	f.nextID.Store(rand.Uint64())
	if len(cfg.SchedulerAddress) == 0 {
		f.queue = queue.New(cfg.Queue, queue.NewMetrics(prometheus.WrapRegistererWith(prometheus.Labels{"component": "query-frontend"}, reg)))
	} else {
		f.metrics.schedulers = promauto.With(reg).NewGauge(prometheus.GaugeOpts{
			Name: "neocortex_query_frontend_connected_schedulers",
			Help: "Query-schedulers the frontend has a working stream to.",
		})
		for _, addr := range cfg.SchedulerAddress {
			f.schedulers = append(f.schedulers, &schedulerClient{addr: addr, queries: map[uint64]*query{}})
		}
	}
	f.Service = services.NewBasicService(f.starting, f.running, f.stopping)
	return f, nil
}

func (f *Frontend) starting(ctx context.Context) error {
	if f.queue != nil {
		return services.StartAndAwaitRunning(ctx, f.queue)
	}
	for _, sc := range f.schedulers {
		conn, err := frontendpb.Dial(sc.addr, f.cfg.GRPCMaxRecvMsgSize, f.cfg.GRPCMaxSendMsgSize)
		if err != nil {
			f.closeSchedulerConns()
			return fmt.Errorf("dial query-scheduler %s: %w", sc.addr, err)
		}
		sc.conn = conn
	}
	// The loops outlive running: they serve the requests in flight while
	// the frontend drains, and stopping ends them.
	loopCtx, cancel := context.WithCancel(context.Background())
	f.loopCancel = cancel
	for _, sc := range f.schedulers {
		f.loops.Add(1)
		go func() {
			defer f.loops.Done()
			f.schedulerLoop(loopCtx, sc)
		}()
	}
	return nil
}

func (f *Frontend) running(ctx context.Context) error {
	if f.queue == nil {
		<-ctx.Done()
		return nil
	}
	w := services.NewFailureWatcher()
	w.WatchService(f.queue)
	select {
	case <-ctx.Done():
		return nil
	case err := <-w.Chan():
		return fmt.Errorf("query queue: %w", err)
	}
}

// stopping refuses new requests, lets the ones in flight finish while
// queriers (or schedulers) are there to run them, then fails what is left.
func (f *Frontend) stopping(error) error {
	f.mtx.Lock()
	f.draining = true
	f.mtx.Unlock()
	f.drain()
	if f.queue != nil {
		for _, r := range f.queue.Drain() {
			r.(*request).deliver(result{err: ErrStopped})
		}
		// Wakes the queriers' Process streams, which tell them to go.
		return services.StopAndAwaitTerminated(context.Background(), f.queue)
	}
	f.loopCancel()
	f.loops.Wait()
	f.closeSchedulerConns()
	return nil
}

func (f *Frontend) drain() {
	deadline := time.Now().Add(drainTimeout)
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for time.Now().Before(deadline) {
		f.mtx.Lock()
		n := f.inflight
		f.mtx.Unlock()
		if n == 0 || !f.canServe() {
			return
		}
		<-t.C
	}
	f.logger.Warn("stopping with requests in flight", "timeout", drainTimeout)
}

// canServe tells whether requests in flight may still get an answer.
func (f *Frontend) canServe() bool {
	if f.queue != nil {
		return f.queue.ConnectedQueriers() > 0
	}
	for _, sc := range f.schedulers {
		if sc.connected() {
			return true
		}
	}
	return false
}

func (f *Frontend) closeSchedulerConns() {
	for _, sc := range f.schedulers {
		if sc.conn != nil {
			sc.conn.Close()
		}
	}
}

// RoundTrip sends req, for the tenant in ctx, to a querier and returns its
// answer. Statistics are asked for when ctx carries a Stats (WithStats).
func (f *Frontend) RoundTrip(ctx context.Context, req *frontendpb.HTTPRequest) (*frontendpb.HTTPResponse, error) {
	tenantID, err := tenant.FromContext(ctx)
	if err != nil {
		return nil, err
	}
	if !f.begin() {
		return nil, ErrStopped
	}
	defer f.end()
	stats := StatsFromContext(ctx)
	var res result
	if f.queue != nil {
		res = f.roundTripDirect(ctx, tenantID, req, stats != nil)
	} else {
		res = f.roundTripScheduler(ctx, tenantID, req, stats != nil)
	}
	if res.err != nil {
		return nil, res.err
	}
	stats.add(res.stats)
	return res.resp, nil
}

func (f *Frontend) begin() bool {
	if f.State() != services.Running && f.State() != services.Stopping {
		return false
	}
	f.mtx.Lock()
	defer f.mtx.Unlock()
	if f.draining {
		return false
	}
	f.inflight++
	f.metrics.inflight.Inc()
	return true
}

func (f *Frontend) end() {
	f.mtx.Lock()
	defer f.mtx.Unlock()
	f.inflight--
	f.metrics.inflight.Dec()
}

// result is the outcome of one request.
type result struct {
	resp  *frontendpb.HTTPResponse
	stats *frontendpb.QueryStats
	err   error
}

// Stats adds up what queriers reported for the requests sent with one
// context (e.g. all the parts of a split query). Safe for concurrent use.
type Stats struct {
	WallTime, FetchedSeries, FetchedChunks, FetchedBytes atomic.Int64
}

func (s *Stats) add(qs *frontendpb.QueryStats) {
	if s == nil || qs == nil {
		return
	}
	s.WallTime.Add(qs.GetWallTimeNanoseconds())
	s.FetchedSeries.Add(qs.GetFetchedSeries())
	s.FetchedChunks.Add(qs.GetFetchedChunks())
	s.FetchedBytes.Add(qs.GetFetchedBytes())
}

type statsKey struct{}

// WithStats returns a context whose requests ask queriers for statistics
// and add them to s.
func WithStats(ctx context.Context, s *Stats) context.Context {
	return context.WithValue(ctx, statsKey{}, s)
}

// StatsFromContext returns the Stats of ctx, or nil.
func StatsFromContext(ctx context.Context) *Stats {
	s, _ := ctx.Value(statsKey{}).(*Stats)
	return s
}
