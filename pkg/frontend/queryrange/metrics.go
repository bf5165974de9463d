package queryrange

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are the range-query middlewares' metrics. The results cache
// backend has its own (neocortex_frontend_results_cache_…, package cache).
type Metrics struct {
	// SplitQueries counts the parts SplitByInterval sends on.
	SplitQueries prometheus.Counter
	// Retries counts the attempts Retry makes after the first.
	Retries prometheus.Counter
	// CacheDownstreamRequests counts the sub-ranges ResultsCache fetches
	// because it has not got them.
	CacheDownstreamRequests prometheus.Counter
}

// NewMetrics registers the metrics with reg, if not nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	return &Metrics{
		SplitQueries: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "neocortex_frontend_split_queries_total",
			Help: "Range queries sent on after splitting by interval, one per part.",
		}),
		Retries: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "neocortex_frontend_retries_total",
			Help: "Range query attempts after a first one that failed with a 5xx or a transport error.",
		}),
		CacheDownstreamRequests: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "neocortex_frontend_results_cache_downstream_requests_total",
			Help: "Sub-ranges of range queries fetched from downstream because the results cache lacked them.",
		}),
	}
}
