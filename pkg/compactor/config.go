package compactor

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/neocortex-metrics/neocortex/pkg/ringconfig"
)

// RingName names the compactor ring in metrics and logs; RingKey is its KV
// key.
const (
	RingName = "compactor"
	RingKey  = "compactor"
)

// Config configures the compactor.
type Config struct {
	// DataDir is the working directory: blocks are downloaded, compacted
	// and uploaded from here, and removed after each job.
	DataDir string `yaml:"data_dir"`
	// BlockRanges are the compaction levels, smallest first: the first is
	// the range of the blocks ingesters ship, each next one the range that
	// adjacent blocks are merged into. Each must be a multiple of the one
	// before.
	BlockRanges DurationList `yaml:"block_ranges"`
	// CompactionInterval is how often every owned tenant is compacted.
	CompactionInterval time.Duration `yaml:"compaction_interval"`
	// DeletionDelay is how long a block marked for deletion stays in the
	// bucket, so readers that still use it can move off it.
	DeletionDelay time.Duration `yaml:"deletion_delay"`
	// CompactionConcurrency is how many compactions of one tenant run at
	// once.
	CompactionConcurrency int `yaml:"compaction_concurrency"`
	// ShardingEnabled spreads tenants over the compactors of the ring. When
	// false this compactor owns every tenant, so exactly one compactor may
	// run.
	ShardingEnabled bool `yaml:"sharding_enabled"`
	// Ring is the compactor ring, used when sharding is enabled. Each
	// tenant has exactly one owner: replication_factor must stay 1 and
	// zone awareness is not used.
	Ring ringconfig.Config `yaml:"ring"`
}

// RegisterFlags registers the compactor flags and their defaults.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.DataDir, "compactor.data-dir", "./data/compactor", "Working directory of the compactor: blocks are downloaded and compacted here (created if missing).")
	c.BlockRanges = DurationList{2 * time.Hour, 12 * time.Hour, 24 * time.Hour}
	f.Var(&c.BlockRanges, "compactor.block-ranges", "Comma-separated compaction levels, smallest first: the range of the blocks ingesters ship, then each range adjacent blocks are merged into. Each must be a multiple of the one before.")
	f.DurationVar(&c.CompactionInterval, "compactor.compaction-interval", 15*time.Minute, "How often every owned tenant is compacted and its bucket index rewritten.")
	f.DurationVar(&c.DeletionDelay, "compactor.deletion-delay", 12*time.Hour, "How long a block marked for deletion stays in the bucket before its files are deleted; must exceed the interval at which queriers and store-gateways reload bucket indexes.")
	f.IntVar(&c.CompactionConcurrency, "compactor.compaction-concurrency", 1, "How many compactions of one tenant run at once.")
	f.BoolVar(&c.ShardingEnabled, "compactor.sharding-enabled", false, "Spread tenants over the compactors of the ring. When false the compactor owns every tenant, so run exactly one.")
	c.Ring.RegisterFlags(f, "compactor.ring.", ringconfig.Defaults{
		Component:         "compactor",
		KVPrefix:          "collectors/",
		ReplicationFactor: 1,
		NumTokens:         128,
		ReplicationHelp:   "Must be 1: each tenant is compacted by exactly one compactor.",
	})
}

// Validate checks the config.
func (c *Config) Validate() error {
	switch {
	case c.DataDir == "":
		return errors.New("compactor.data_dir must be set")
	case len(c.BlockRanges) == 0:
		return errors.New("compactor.block_ranges must name at least one range")
	case c.CompactionInterval <= 0:
		return errors.New("compactor.compaction_interval must be positive")
	case c.DeletionDelay < 0:
		return errors.New("compactor.deletion_delay must not be negative")
	case c.CompactionConcurrency < 1:
		return errors.New("compactor.compaction_concurrency must be at least 1")
	}
	for i, r := range c.BlockRanges {
		if r < time.Millisecond || r%time.Millisecond != 0 {
			return fmt.Errorf("compactor.block_ranges: %s is not a whole number of milliseconds, at least 1ms", r)
		}
		if i > 0 && (r <= c.BlockRanges[i-1] || r%c.BlockRanges[i-1] != 0) {
			return fmt.Errorf("compactor.block_ranges: %s must be a larger multiple of %s", r, c.BlockRanges[i-1])
		}
	}
	if !c.ShardingEnabled {
		return nil
	}
	if c.Ring.ReplicationFactor != 1 {
		return errors.New("compactor.ring.replication_factor must be 1")
	}
	return c.Ring.Validate()
}

// DurationList is a list of durations; as a flag it is comma-separated
// ("2h,12h,24h"), in YAML a sequence.
type DurationList []time.Duration

// String returns the list as a flag value.
func (d *DurationList) String() string {
	parts := make([]string, len(*d))
	for i, v := range *d {
		parts[i] = v.String()
	}
	return strings.Join(parts, ",")
}

// Set parses a comma-separated list, replacing the current one.
func (d *DurationList) Set(s string) error {
	var out DurationList
	for p := range strings.SplitSeq(s, ",") {
		v, err := time.ParseDuration(strings.TrimSpace(p))
		if err != nil {
			return fmt.Errorf("parse duration %q: %w", p, err)
		}
		out = append(out, v)
	}
	*d = out
	return nil
}

// MarshalYAML writes the durations as strings ("2h0m0s").
func (d DurationList) MarshalYAML() (any, error) {
	out := make([]string, len(d))
	for i, v := range d {
		out[i] = v.String()
	}
	return out, nil
}

// milliseconds returns the ranges in milliseconds, as block times are.
func (d DurationList) milliseconds() []int64 {
	out := make([]int64, len(d))
	for i, v := range d {
		out[i] = v.Milliseconds()
	}
	return out
}
