// Package limits holds the per-tenant limits of every component and the
// Overrides that resolve them for one tenant from the defaults in the config
// file and the per-tenant overrides of the runtime-config file.
package limits

import (
	"errors"
	"flag"
	"math"
	"time"
)

// Limits are the limits that apply to one tenant. The zero value of a numeric
// limit disables it unless its doc says otherwise.
type Limits struct {
	// Distributor.
	IngestionRate          float64       `yaml:"ingestion_rate"`
	IngestionBurstSize     int           `yaml:"ingestion_burst_size"`
	MaxLabelNameLength     int           `yaml:"max_label_name_length"`
	MaxLabelValueLength    int           `yaml:"max_label_value_length"`
	MaxLabelNamesPerSeries int           `yaml:"max_label_names_per_series"`
	CreationGracePeriod    time.Duration `yaml:"creation_grace_period"`
	MaxMetadataLength      int           `yaml:"max_metadata_length"`

	// Ingester.
	MaxSeriesPerUser     int           `yaml:"max_series_per_user"`
	MaxSeriesPerMetric   int           `yaml:"max_series_per_metric"`
	OutOfOrderTimeWindow time.Duration `yaml:"out_of_order_time_window"`
	MaxExemplars         int           `yaml:"max_exemplars"`

	// Querier.
	MaxQueryLength               time.Duration `yaml:"max_query_length"`
	MaxQueryLookback             time.Duration `yaml:"max_query_lookback"`
	MaxFetchedSeriesPerQuery     int           `yaml:"max_fetched_series_per_query"`
	MaxFetchedChunkBytesPerQuery int           `yaml:"max_fetched_chunk_bytes_per_query"`
	MaxSamplesPerQuery           int           `yaml:"max_samples_per_query"`

	// Compactor.
	CompactorBlocksRetentionPeriod time.Duration `yaml:"compactor_blocks_retention_period"`
}

// RegisterFlags registers the default of every limit. The flag names are the
// ones Cortex operators already know.
func (l *Limits) RegisterFlags(f *flag.FlagSet) {
	f.Float64Var(&l.IngestionRate, "distributor.ingestion-rate-limit", 25000, "Per-tenant ingestion rate limit in samples per second (0 = unlimited).")
	f.IntVar(&l.IngestionBurstSize, "distributor.ingestion-burst-size", 50000, "Per-tenant number of samples that may be pushed at once above the rate limit; also the largest request a tenant can send.")
	f.IntVar(&l.MaxLabelNameLength, "validation.max-length-label-name", 1024, "Maximum length in bytes of a label name (0 = unlimited).")
	f.IntVar(&l.MaxLabelValueLength, "validation.max-length-label-value", 2048, "Maximum length in bytes of a label value (0 = unlimited).")
	f.IntVar(&l.MaxLabelNamesPerSeries, "validation.max-label-names-per-series", 30, "Maximum number of label names per series, including __name__ (0 = unlimited).")
	f.IntVar(&l.MaxMetadataLength, "validation.max-metadata-length", 1024, "Maximum length in bytes of a metric family name, help or unit in pushed metadata (0 = unlimited).")
	f.DurationVar(&l.CreationGracePeriod, "validation.create-grace-period", 10*time.Minute, "Reject samples whose timestamp is more than this far in the future (0 = no check).")
	f.IntVar(&l.MaxSeriesPerUser, "ingester.max-series-per-user", 5000000, "Maximum number of active series per tenant in each ingester (0 = unlimited).")
	f.IntVar(&l.MaxSeriesPerMetric, "ingester.max-series-per-metric", 50000, "Maximum number of active series per metric name per tenant in each ingester (0 = unlimited).")
	f.DurationVar(&l.OutOfOrderTimeWindow, "ingester.out-of-order-time-window", 0, "How far behind a series' newest sample an out-of-order sample is still accepted (0 = out-of-order samples are rejected).")
	f.IntVar(&l.MaxExemplars, "ingester.max-exemplars", 100000, "Exemplars each ingester keeps per tenant, the oldest dropped first (0 = exemplars are not stored). The storage (about 66 bytes an exemplar) is allocated when the tenant sends its first exemplar.")
	f.DurationVar(&l.MaxQueryLength, "querier.max-query-length", 0, "Longest time range a query may read, lookback and range selectors included (0 = unlimited); longer queries get 422.")
	f.DurationVar(&l.MaxQueryLookback, "querier.max-query-lookback", 0, "How far back queries may read (0 = unlimited); older parts of a query's range read no data.")
	f.IntVar(&l.MaxFetchedSeriesPerQuery, "querier.max-fetched-series-per-query", 0, "Most series one query may fetch from the ingesters (0 = unlimited); more get 422.")
	f.IntVar(&l.MaxSamplesPerQuery, "querier.max-samples-per-query", 0, "Most samples one query of the tenant may hold in memory at once (0 = querier.max_samples); more get 422.")
	f.DurationVar(&l.CompactorBlocksRetentionPeriod, "compactor.blocks-retention-period", 0, "Delete blocks from the bucket once their newest sample is older than this (0 = keep forever).")
	f.IntVar(&l.MaxFetchedChunkBytesPerQuery, "querier.max-fetched-chunk-bytes-per-query", 0, "Most chunk bytes one query may fetch from the ingesters (0 = unlimited); more get 422.")
}

// Validate reports limits that cannot be meant.
func (l *Limits) Validate() error {
	switch {
	case l.IngestionRate < 0 || math.IsNaN(l.IngestionRate):
		return errors.New("ingestion_rate must be a non-negative number")
	case l.IngestionRate > 0 && l.IngestionBurstSize <= 0:
		return errors.New("ingestion_burst_size must be positive when ingestion_rate is set")
	case l.MaxLabelNameLength < 0, l.MaxLabelValueLength < 0, l.MaxLabelNamesPerSeries < 0, l.MaxMetadataLength < 0:
		return errors.New("label limits must not be negative")
	case l.CreationGracePeriod < 0, l.OutOfOrderTimeWindow < 0:
		return errors.New("creation_grace_period and out_of_order_time_window must not be negative")
	case l.MaxSeriesPerUser < 0, l.MaxSeriesPerMetric < 0, l.MaxExemplars < 0:
		return errors.New("series limits must not be negative")
	case l.MaxQueryLength < 0, l.MaxQueryLookback < 0, l.MaxFetchedSeriesPerQuery < 0, l.MaxFetchedChunkBytesPerQuery < 0, l.MaxSamplesPerQuery < 0:
		return errors.New("query limits must not be negative")
	case l.CompactorBlocksRetentionPeriod < 0:
		return errors.New("compactor_blocks_retention_period must not be negative")
	}
	return nil
}
