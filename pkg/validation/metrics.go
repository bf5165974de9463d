package validation

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// NewDiscardedSamples returns neocortex_discarded_samples_total. A process
// builds it once and hands it to every component that discards samples.
func NewDiscardedSamples(reg prometheus.Registerer) *prometheus.CounterVec {
	return promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
		Name: "neocortex_discarded_samples_total",
		Help: "Samples (and native histogram samples) rejected, by reason and tenant.",
	}, []string{"reason", "tenant"})
}
