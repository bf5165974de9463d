package compactor

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Reasons a block is marked for deletion: the reason label of
// neocortex_compactor_blocks_marked_for_deletion_total.
const (
	reasonCompaction     = "compaction"
	reasonRetention      = "retention"
	reasonTenantDeletion = "tenant-deletion"
)

// Kinds of compaction: the kind label of neocortex_compactor_compactions_total.
const (
	kindVertical   = "vertical"
	kindHorizontal = "horizontal"
)

// Metrics are the compactor's metrics.
type Metrics struct {
	runsStarted     prometheus.Counter
	runsCompleted   prometheus.Counter
	runsFailed      prometheus.Counter
	lastSuccess     prometheus.Gauge
	runDuration     prometheus.Histogram
	compactions     *prometheus.CounterVec
	blocksCompacted prometheus.Counter
	markedDeletion  *prometheus.CounterVec
	markedNoCompact prometheus.Counter
	blocksDeleted   prometheus.Counter
}

// NewMetrics registers the compactor metrics with reg (which may be nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		runsStarted: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "neocortex_compactor_runs_started_total",
			Help: "Compaction cycles started.",
		}),
		runsCompleted: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "neocortex_compactor_runs_completed_total",
			Help: "Compaction cycles that processed every owned tenant without error.",
		}),
		runsFailed: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "neocortex_compactor_runs_failed_total",
			Help: "Compaction cycles in which at least one tenant failed (the others were still processed).",
		}),
		lastSuccess: promauto.With(reg).NewGauge(prometheus.GaugeOpts{
			Name: "neocortex_compactor_last_successful_run_timestamp_seconds",
			Help: "Unix time at which the last cycle without error finished.",
		}),
		runDuration: promauto.With(reg).NewHistogram(prometheus.HistogramOpts{
			Name:    "neocortex_compactor_run_duration_seconds",
			Help:    "Duration of compaction cycles.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8), // 1s .. 4.5h
		}),
		compactions: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "neocortex_compactor_compactions_total",
			Help: "Blocks written by compaction, by kind: vertical (overlapping blocks merged, duplicates removed) or horizontal (adjacent blocks merged into a larger range).",
		}, []string{"kind"}),
		blocksCompacted: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "neocortex_compactor_blocks_compacted_total",
			Help: "Source blocks merged into compacted blocks.",
		}),
		markedDeletion: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "neocortex_compactor_blocks_marked_for_deletion_total",
			Help: "Blocks marked for deletion, by reason: compaction, retention or tenant-deletion.",
		}, []string{"reason"}),
		markedNoCompact: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "neocortex_compactor_blocks_marked_for_no_compaction_total",
			Help: "Blocks that could not be compacted (corrupt, unreadable) and were marked never to be compacted again; they are still queried.",
		}),
		blocksDeleted: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "neocortex_compactor_blocks_deleted_total",
			Help: "Blocks whose files were deleted from the bucket.",
		}),
	}
	for _, k := range []string{kindVertical, kindHorizontal} {
		m.compactions.WithLabelValues(k)
	}
	for _, r := range []string{reasonCompaction, reasonRetention, reasonTenantDeletion} {
		m.markedDeletion.WithLabelValues(r)
	}
	return m
}
