package queue

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are the queue's metrics. When a frontend and a scheduler share a
// registry, each wraps it with its own component label.
type Metrics struct {
	length    *prometheus.GaugeVec
	discarded *prometheus.CounterVec
	wait      prometheus.Histogram
	queriers  prometheus.Gauge
}

// NewMetrics registers the queue's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	return &Metrics{
		length: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "neocortex_query_queue_length",
			Help: "Requests waiting in the query queue, by tenant.",
		}, []string{"tenant"}),
		discarded: f.NewCounterVec(prometheus.CounterOpts{
			Name: "neocortex_query_queue_discarded_requests_total",
			Help: "Requests refused (429) because the tenant had too many queued, by tenant.",
		}, []string{"tenant"}),
		wait: f.NewHistogram(prometheus.HistogramOpts{
			Name:                            "neocortex_query_queue_wait_duration_seconds",
			Help:                            "Time requests spent in the query queue before a querier took them.",
			Buckets:                         prometheus.DefBuckets,
			NativeHistogramBucketFactor:     1.1,
			NativeHistogramMaxBucketNumber:  100,
			NativeHistogramMinResetDuration: time.Hour,
		}),
		queriers: f.NewGauge(prometheus.GaugeOpts{
			Name: "neocortex_query_queue_connected_queriers",
			Help: "Queriers with at least one connection pulling from the queue.",
		}),
	}
}

func (m *Metrics) deleteTenant(tenant string) {
	m.length.DeleteLabelValues(tenant)
	m.discarded.DeleteLabelValues(tenant)
}
