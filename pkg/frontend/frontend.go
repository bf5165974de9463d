// Package frontend is the query-frontend: it serves the Prometheus query API
// paths, splits, caches and shards range queries, and sends every request
// through a per-tenant fair queue to the queriers that pull from it (or
// from a query-scheduler).
package frontend

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/neocortex-metrics/neocortex/pkg/cache"
	"github.com/neocortex-metrics/neocortex/pkg/frontend/queryrange"
	"github.com/neocortex-metrics/neocortex/pkg/frontend/querysharding"
	"github.com/neocortex-metrics/neocortex/pkg/frontend/transport"
	"github.com/neocortex-metrics/neocortex/pkg/server"
	"github.com/neocortex-metrics/neocortex/pkg/tenant"
	"github.com/neocortex-metrics/neocortex/pkg/tenantmetrics"
)

// Config configures a query-frontend.
type Config struct {
	transport.Config `yaml:",inline"`
	QueryRange       queryrange.Config    `yaml:",inline"`
	Sharding         querysharding.Config `yaml:"query_sharding"`
	// SlowQueryThreshold logs requests that take at least this long.
	SlowQueryThreshold time.Duration `yaml:"log_queries_longer_than"`

	// LocalQuerierCPUs is set by a process whose own querier answers the
	// frontend's queries (the single binary): its CPUs, which automatic
	// query sharding splits queries over.
	LocalQuerierCPUs int `yaml:"-"`
}

// RegisterFlags registers the query-frontend flags and their defaults.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	c.Config.RegisterFlags(f)
	c.QueryRange.RegisterFlags(f)
	c.Sharding.RegisterFlags(f)
	f.DurationVar(&c.SlowQueryThreshold, "frontend.log-queries-longer-than", 10*time.Second, "Log requests that take at least this long, with their tenant, query and what they fetched (0 = never).")
}

// Validate checks the config.
func (c *Config) Validate() error {
	if err := errors.Join(c.Config.Validate(), c.QueryRange.Validate(), c.Sharding.Validate()); err != nil {
		return err
	}
	// One query can have every part's shards queued at once; a queue that
	// cannot hold them refuses the tenant's own query with 429.
	if c.Sharding.Enabled && c.Sharding.MaxShardedQueries > 0 {
		if n := c.QueryRange.MaxQueryParallelism * c.Sharding.MaxShardedQueries; n > c.Queue.MaxOutstandingPerTenant {
			return fmt.Errorf("frontend.max_outstanding_requests_per_tenant (%d) must be at least max_query_parallelism × query_sharding.max_sharded_queries (%d) when query sharding is enabled, or one query fills the queue",
				c.Queue.MaxOutstandingPerTenant, n)
		}
	}
	return nil
}

// Frontend is the query-frontend: a service (the queue and the gRPC
// service queriers pull from) and the HTTP handler of the query API.
type Frontend struct {
	*transport.Frontend
	cfg     Config
	cache   cache.Cache // nil without a results cache
	rng     http.Handler
	pass    http.Handler
	logger  *slog.Logger
	metrics *metrics
}

type metrics struct {
	queries       *prometheus.CounterVec
	seconds       *prometheus.CounterVec
	fetchedSeries *prometheus.CounterVec
	fetchedBytes  *prometheus.CounterVec
	// forget drops the per-tenant series of tenants that stopped querying.
	forget *tenantmetrics.Forgetter
}

// New returns a query-frontend.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Frontend, error) {
	t, err := transport.New(cfg.Config, logger, reg)
	if err != nil {
		return nil, err
	}
	f := &Frontend{Frontend: t, cfg: cfg, logger: logger}
	if cfg.QueryRange.CacheResults {
		if f.cache, err = queryrange.NewResultsCacheBackend(cfg.QueryRange.ResultsCache, logger, reg); err != nil {
			return nil, fmt.Errorf("create results cache: %w", err)
		}
	}
	var sharding queryrange.Middleware
	cfg.Sharding = cfg.Sharding.Resolve(cfg.LocalQuerierCPUs, cfg.Queue.MaxOutstandingPerTenant/max(1, cfg.QueryRange.MaxQueryParallelism))
	if cfg.Sharding.Enabled {
		logger.Info("query sharding", "total_shards", cfg.Sharding.TotalShards, "max_sharded_queries", cfg.Sharding.MaxShardedQueries)
		sharding = querysharding.Middleware(cfg.Sharding, querysharding.NewMetrics(reg), logger)
	}
	tw, err := queryrange.NewTripperware(cfg.QueryRange, queryrange.Deps{Cache: f.cache, Logger: logger, Registerer: reg, Sharding: sharding})
	if err != nil {
		return nil, err
	}
	rt := transport.HTTPRoundTripper(t)
	downstream := queryrange.HandlerFunc(func(ctx context.Context, r *queryrange.Request) (*queryrange.Response, error) {
		hr, err := queryrange.EncodeRequest(ctx, r)
		if err != nil {
			return nil, err
		}
		resp, err := rt.RoundTrip(hr)
		if err != nil {
			// The queue's refusals keep their status (429 is not retried;
			// a querier lost mid-request, 502, is).
			return nil, &queryrange.HTTPError{Code: transport.StatusCode(err), Body: []byte(err.Error())}
		}
		defer resp.Body.Close()
		return queryrange.DecodeResponse(resp)
	})
	f.rng = queryrange.NewHTTPHandler(tw(downstream), logger)
	f.pass = transport.NewHandler(t, cfg.MaxBodySize, false, logger)
	f.metrics = &metrics{
		queries: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "neocortex_frontend_queries_total",
			Help: "Requests the query-frontend answered, by tenant and status code.",
		}, []string{"tenant", "status_code"}),
		seconds: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "neocortex_frontend_query_seconds_total",
			Help: "Time spent answering requests, by tenant.",
		}, []string{"tenant"}),
		fetchedSeries: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "neocortex_frontend_fetched_series_total",
			Help: "Series the queriers fetched for the tenant's requests.",
		}, []string{"tenant"}),
		fetchedBytes: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "neocortex_frontend_fetched_chunk_bytes_total",
			Help: "Chunk bytes the queriers fetched for the tenant's requests.",
		}, []string{"tenant"}),
	}
	m := f.metrics
	m.forget = tenantmetrics.New(tenantmetrics.DefaultForgetAfter, m.queries.MetricVec, m.seconds.MetricVec, m.fetchedSeries.MetricVec, m.fetchedBytes.MetricVec)
	return f, nil
}

// Close releases the results cache; call it after the service stopped.
func (f *Frontend) Close() error {
	if f.cache == nil {
		return nil
	}
	return f.cache.Close()
}

var _ io.Closer = (*Frontend)(nil)

// Register serves the query API under prefix (/prometheus, /api/prom) on
// mux; wrap puts the tenant in each request's context.
func (f *Frontend) Register(mux *http.ServeMux, prefix string, wrap func(http.Handler) http.Handler) {
	rng := wrap(f.instrument(f.rng))
	mux.Handle("GET "+prefix+"/api/v1/query_range", rng)
	mux.Handle("POST "+prefix+"/api/v1/query_range", rng)
	mux.Handle(prefix+"/api/v1/", wrap(f.instrument(f.pass)))
}

// instrument counts each request per tenant, collects what the queriers
// fetched for it, reports it in a Server-Timing header and logs slow ones.
func (f *Frontend) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		stats := &transport.Stats{}
		r = r.WithContext(transport.WithStats(r.Context(), stats))
		tw := &timingWriter{ResponseWriter: w, start: start, stats: stats}
		sw := &server.StatusRecorder{ResponseWriter: tw}
		next.ServeHTTP(sw, r)
		d := time.Since(start)
		status := sw.Status()
		if status == 0 {
			status = http.StatusOK
		}
		tenantID, _ := tenant.FromContext(r.Context())
		f.metrics.forget.Seen(tenantID)
		f.metrics.queries.WithLabelValues(tenantID, fmt.Sprint(status)).Inc()
		f.metrics.seconds.WithLabelValues(tenantID).Add(d.Seconds())
		f.metrics.fetchedSeries.WithLabelValues(tenantID).Add(float64(stats.FetchedSeries.Load()))
		f.metrics.fetchedBytes.WithLabelValues(tenantID).Add(float64(stats.FetchedBytes.Load()))
		if f.cfg.SlowQueryThreshold > 0 && d >= f.cfg.SlowQueryThreshold {
			f.logger.Info("slow query", "tenant", tenantID, "path", r.URL.Path, "query", r.FormValue("query"),
				"start", r.FormValue("start"), "end", r.FormValue("end"), "step", r.FormValue("step"),
				"status", status, "duration", d, "querier_wall_time", time.Duration(stats.WallTime.Load()),
				"fetched_series", stats.FetchedSeries.Load(), "fetched_chunk_bytes", stats.FetchedBytes.Load())
		}
	})
}

// timingWriter adds the Server-Timing header when the answer starts: the
// time so far, the queriers' total wall time and what they fetched.
type timingWriter struct {
	http.ResponseWriter
	start   time.Time
	stats   *transport.Stats
	written bool
}

func (w *timingWriter) WriteHeader(code int) {
	if !w.written {
		w.written = true
		ms := func(d time.Duration) string { return fmt.Sprintf("%.3f", float64(d)/float64(time.Millisecond)) }
		parts := []string{
			"response_time;dur=" + ms(time.Since(w.start)),
			"querier_wall_time;dur=" + ms(time.Duration(w.stats.WallTime.Load())),
			fmt.Sprintf("fetched_series;desc=\"%d\"", w.stats.FetchedSeries.Load()),
			fmt.Sprintf("fetched_chunk_bytes;desc=\"%d\"", w.stats.FetchedBytes.Load()),
		}
		w.Header().Set("Server-Timing", strings.Join(parts, ", "))
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *timingWriter) Write(b []byte) (int, error) {
	if !w.written {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Flush flushes what was written (the range handler flushes its answer
// before caching it).
func (w *timingWriter) Flush() {
	if !w.written {
		w.WriteHeader(http.StatusOK)
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap returns the underlying writer, for http.ResponseController.
func (w *timingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
