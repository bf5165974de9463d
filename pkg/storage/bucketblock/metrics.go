package bucketblock

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Kinds of data read from a block in the bucket: the label of the bucket
// read metrics.
const (
	kindIndexHeader = "index-header"
	kindPostings    = "postings"
	kindSeries      = "series"
	kindChunks      = "chunks"
)

// Metrics are the metrics of the blocks served from the bucket. One Metrics
// is shared by all the blocks of a process.
type Metrics struct {
	rangeReads      *prometheus.CounterVec
	bytesRead       *prometheus.CounterVec
	refetches       *prometheus.CounterVec
	headerBuild     prometheus.Histogram
	seriesReturned  prometheus.Counter
	chunksReturned  prometheus.Counter
	blocksOpen      prometheus.Gauge
	headerBuildFail prometheus.Counter
}

// NewMetrics registers the block metrics with reg (which may be nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	return &Metrics{
		rangeReads: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "neocortex_storegateway_bucket_range_reads_total",
			Help: "Range reads of block files issued to the bucket, by kind of data (index-header, postings, series, chunks).",
		}, []string{"kind"}),
		bytesRead: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "neocortex_storegateway_bucket_read_bytes_total",
			Help: "Bytes of block files read from the bucket, by kind of data (index-header, postings, series, chunks).",
		}, []string{"kind"}),
		refetches: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "neocortex_storegateway_bucket_refetches_total",
			Help: "Series entries or chunks read again alone because they were larger than the range first read for them.",
		}, []string{"kind"}),
		headerBuild: promauto.With(reg).NewHistogram(prometheus.HistogramOpts{
			Name:    "neocortex_storegateway_index_header_build_duration_seconds",
			Help:    "Time to build the index-header of a block from the bucket.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 12),
		}),
		headerBuildFail: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "neocortex_storegateway_index_header_build_failures_total",
			Help: "Index-header builds that failed.",
		}),
		seriesReturned: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "neocortex_storegateway_series_returned_total",
			Help: "Series returned by block queries.",
		}),
		chunksReturned: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "neocortex_storegateway_chunks_returned_total",
			Help: "Chunks returned by block queries.",
		}),
		blocksOpen: promauto.With(reg).NewGauge(prometheus.GaugeOpts{
			Name: "neocortex_storegateway_blocks_open",
			Help: "Blocks open for queries.",
		}),
	}
}
