package ingester

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/prometheus/prometheus/tsdb/chunks"

	"github.com/neocortex-metrics/neocortex/pkg/ringconfig"
)

// Config configures an ingester.
type Config struct {
	// DataDir holds one TSDB (head, WAL, blocks) per tenant, in a directory
	// named after the tenant, and the ring tokens file.
	DataDir string `yaml:"data_dir"`
	// BlockRange is the time span of the blocks cut from each tenant's head.
	BlockRange time.Duration `yaml:"block_ranges_period"`
	// Retention is how long local blocks are kept once shipped, counted
	// from their newest sample.
	Retention time.Duration `yaml:"retention_period"`
	// HeadCompactionInterval is how often heads are checked for blocks to
	// cut, and new blocks shipped.
	HeadCompactionInterval time.Duration `yaml:"head_compaction_interval"`
	// HeadCompactionIdleTimeout: a tenant that has sent nothing for this
	// long has its whole head cut into blocks and shipped (0 = never).
	HeadCompactionIdleTimeout time.Duration `yaml:"head_compaction_idle_timeout"`
	// CloseIdleTSDBTimeout: a tenant that has sent nothing for this long,
	// and has nothing left locally, has its TSDB closed and removed (0 =
	// never).
	CloseIdleTSDBTimeout time.Duration `yaml:"close_idle_tsdb_timeout"`
	// MetadataRetainPeriod is how long metric metadata is kept after it was
	// last pushed.
	MetadataRetainPeriod time.Duration `yaml:"metadata_retain_period"`
	// ShipConcurrency is how many tenants' blocks are cut and shipped at once.
	ShipConcurrency int `yaml:"ship_concurrency"`
	// LimitsReloadPeriod is how often runtime changes of per-tenant TSDB
	// settings (the out-of-order window) are applied.
	LimitsReloadPeriod time.Duration `yaml:"limits_reload_period"`
	// StripeSize is how many lock stripes each tenant's head splits its
	// series map into (a power of two).
	StripeSize int `yaml:"tsdb_stripe_size"`
	// HeadChunksWriteBufferSize is the buffer each tenant's head writes its
	// full chunks through to its chunks_head files, allocated at the first
	// such chunk and kept while the tenant is open.
	HeadChunksWriteBufferSize int `yaml:"tsdb_head_chunks_write_buffer_size_bytes"`

	Ring RingConfig `yaml:"ring"`
}

// RegisterFlags registers the ingester flags and their defaults.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.DataDir, "ingester.data-dir", "./data/tsdb", "Directory of the per-tenant TSDBs (created if missing).")
	f.DurationVar(&c.BlockRange, "ingester.block-ranges-period", 2*time.Hour, "Time span of the TSDB blocks cut from the head and shipped to the bucket.")
	f.DurationVar(&c.Retention, "ingester.retention-period", 6*time.Hour, "How long local blocks are kept after shipping, counted from their newest sample; must cover querier.query_ingesters_within.")
	f.DurationVar(&c.HeadCompactionInterval, "ingester.head-compaction-interval", time.Minute, "How often heads are checked for blocks to cut, and new blocks shipped.")
	f.DurationVar(&c.HeadCompactionIdleTimeout, "ingester.head-compaction-idle-timeout", time.Hour, "A tenant that has sent no sample for this long has its whole head cut into blocks and shipped, so that its last hours reach the bucket before queries for them stop asking the ingesters (querier.query_ingesters_within); samples older than the cut are refused afterwards. 0 = never: a head is cut only when it spans 1.5 block ranges.")
	f.DurationVar(&c.CloseIdleTSDBTimeout, "ingester.close-idle-tsdb-timeout", 13*time.Hour, "A tenant that has sent no sample for this long, whose head is empty (see head-compaction-idle-timeout) and whose blocks have all been shipped and have left the local disk (retention-period), has its TSDB closed and its directory removed: its memory (about 0.75 MB), files and goroutines are freed, and its next sample opens a new one. 0 = never.")
	f.DurationVar(&c.MetadataRetainPeriod, "ingester.metadata-retain-period", 10*time.Minute, "How long metric metadata (type, help, unit) is kept after it was last pushed; Prometheus pushes it every minute. Longer than the senders' metadata interval.")
	f.IntVar(&c.ShipConcurrency, "ingester.ship-concurrency", 4, "How many tenants' blocks are cut and shipped at once.")
	f.DurationVar(&c.LimitsReloadPeriod, "ingester.limits-reload-period", 10*time.Second, "How often per-tenant TSDB settings from the runtime config are applied.")
	f.IntVar(&c.StripeSize, "ingester.tsdb-stripe-size", 1024, "Lock stripes of each tenant's head series map, a power of two. Each costs about 240 bytes per tenant (Prometheus's 16384 cost 3.9 MB per tenant); more only help many concurrent writes of one tenant.")
	f.IntVar(&c.HeadChunksWriteBufferSize, "ingester.tsdb-head-chunks-write-buffer-size-bytes", 128<<10, "Buffer of each tenant's writes of full head chunks to disk, 64 KiB to 8 MiB, a multiple of 1024. Every tenant keeps one once its first chunk is full (Prometheus's 4 MiB made 1000 tenants hold 4 GB); a bigger one only saves write calls.")
	c.Ring.RegisterFlags(f, "ingester.ring.", ringconfig.Defaults{
		Component:         "ingester",
		KVPrefix:          "collectors/",
		ReplicationFactor: 1,
		NumTokens:         128,
		ReplicationHelp:   "Number of ingesters each series is written to; writes need a quorum of RF/2+1.",
	})
}

// Validate checks the config.
func (c *Config) Validate() error {
	if c.DataDir == "" {
		return errors.New("ingester.data_dir must be set")
	}
	if c.BlockRange < time.Second || c.BlockRange%time.Second != 0 {
		return fmt.Errorf("ingester.block_ranges_period %s must be a whole number of seconds, at least 1s", c.BlockRange)
	}
	if c.Retention <= 0 {
		return errors.New("ingester.retention_period must be positive")
	}
	if c.HeadCompactionInterval <= 0 || c.ShipConcurrency < 1 {
		return errors.New("ingester.head_compaction_interval and ingester.ship_concurrency must be positive")
	}
	if c.HeadCompactionIdleTimeout < 0 || c.CloseIdleTSDBTimeout < 0 {
		return errors.New("ingester.head_compaction_idle_timeout and ingester.close_idle_tsdb_timeout must not be negative")
	}
	if c.MetadataRetainPeriod <= 0 {
		return errors.New("ingester.metadata_retain_period must be positive")
	}
	if c.LimitsReloadPeriod <= 0 {
		return errors.New("ingester.limits_reload_period must be positive")
	}
	if c.StripeSize < 1 || c.StripeSize&(c.StripeSize-1) != 0 {
		return fmt.Errorf("ingester.tsdb_stripe_size %d must be a power of two", c.StripeSize)
	}
	if b := c.HeadChunksWriteBufferSize; b < chunks.MinWriteBufferSize || b > chunks.MaxWriteBufferSize || b%1024 != 0 {
		return fmt.Errorf("ingester.tsdb_head_chunks_write_buffer_size_bytes %d must be a multiple of 1024 from %d to %d", b, chunks.MinWriteBufferSize, chunks.MaxWriteBufferSize)
	}
	return c.Ring.Validate()
}

// RingConfig is the ingester ring.
type RingConfig = ringconfig.Config
