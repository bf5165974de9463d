package querier

import (
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/neocortex-metrics/neocortex/pkg/server"
	"github.com/neocortex-metrics/neocortex/pkg/tenant"
	"github.com/neocortex-metrics/neocortex/pkg/tenantmetrics"
)

// requestMetrics count the API's requests and their time per tenant.
type requestMetrics struct {
	requests *prometheus.CounterVec
	seconds  *prometheus.CounterVec
	duration *prometheus.HistogramVec
	// forget drops the per-tenant series of tenants that stopped querying.
	forget *tenantmetrics.Forgetter
}

func newRequestMetrics(reg prometheus.Registerer) *requestMetrics {
	f := promauto.With(reg)
	m := &requestMetrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "neocortex_querier_requests_total",
			Help: "Query API requests by tenant, endpoint and HTTP status code.",
		}, []string{"tenant", "endpoint", "status_code"}),
		seconds: f.NewCounterVec(prometheus.CounterOpts{
			Name: "neocortex_querier_request_seconds_total",
			Help: "Time spent serving query API requests, by tenant.",
		}, []string{"tenant"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:                            "neocortex_querier_request_duration_seconds",
			Help:                            "Time to serve a query API request, by endpoint.",
			Buckets:                         prometheus.DefBuckets,
			NativeHistogramBucketFactor:     1.1,
			NativeHistogramMaxBucketNumber:  100,
			NativeHistogramMinResetDuration: time.Hour,
		}, []string{"endpoint"}),
	}
	m.forget = tenantmetrics.New(tenantmetrics.DefaultForgetAfter, m.requests.MetricVec, m.seconds.MetricVec)
	return m
}

// endpoint names the API endpoint of path, e.g. "query_range" or "label_values".
func endpoint(path string) string {
	i := strings.Index(path, "/api/v1/")
	if i < 0 {
		return "other"
	}
	p := path[i+len("/api/v1/"):]
	if strings.HasPrefix(p, "label/") {
		return "label_values"
	}
	return p
}

// instrument counts requests and logs the ones slower than the threshold
// (0 = none) with the tenant, query and what they fetched.
func instrument(next http.Handler, m *requestMetrics, logger *slog.Logger, slow time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		// Parse the form here so the slow-query log sees POSTed parameters.
		_ = r.ParseForm()
		// A querier worker may have put its own collector in: it reports
		// the stats back to the frontend.
		stats := StatsFromContext(r.Context())
		if stats == nil {
			stats = &Stats{}
			r = r.WithContext(WithStats(r.Context(), stats))
		}
		sw := &server.StatusRecorder{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		d := time.Since(start)
		status := sw.Status()
		if status == 0 {
			status = http.StatusOK
		}
		tenantID, _ := tenant.FromContext(r.Context())
		ep := endpoint(r.URL.Path)
		m.forget.Seen(tenantID)
		m.requests.WithLabelValues(tenantID, ep, strconv.Itoa(status)).Inc()
		m.seconds.WithLabelValues(tenantID).Add(d.Seconds())
		m.duration.WithLabelValues(ep).Observe(d.Seconds())
		if slow > 0 && d >= slow {
			logger.Info("slow query", "tenant", tenantID, "endpoint", ep, "query", r.Form.Get("query"),
				"start", r.Form.Get("start"), "end", r.Form.Get("end"), "step", r.Form.Get("step"), "time", r.Form.Get("time"),
				"status", status, "duration", d, "series_fetched", stats.Series.Load(),
				"chunks_fetched", stats.Chunks.Load(), "chunk_bytes_fetched", stats.Bytes.Load())
		}
	})
}
