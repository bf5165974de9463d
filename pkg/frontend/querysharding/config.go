package querysharding

import (
	"errors"
	"flag"
)

// Config configures query sharding.
type Config struct {
	// Enabled turns query sharding on (experimental).
	Enabled bool `yaml:"enabled"`
	// TotalShards is how many shards a shardable query is split into.
	TotalShards int `yaml:"total_shards"`
	// MaxShardedQueries is how many shard queries of one query run at once.
	MaxShardedQueries int `yaml:"max_sharded_queries"`
}

// RegisterFlags registers the query-sharding flags and their defaults.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.BoolVar(&c.Enabled, "frontend.query-sharding-enabled", false, "Split shardable aggregations (sum, min, max, count, group, avg, topk, bottomk over series-wise expressions) into one query per hash shard of the series, run in parallel and merged (experimental).")
	f.IntVar(&c.TotalShards, "frontend.query-sharding-total-shards", 16, "How many shards a shardable query is split into.")
	f.IntVar(&c.MaxShardedQueries, "frontend.query-sharding-max-sharded-queries", 16, "How many shard queries of one query run at once; avg runs two per shard.")
}

// Validate checks the config.
func (c *Config) Validate() error {
	if !c.Enabled {
		return nil
	}
	if c.TotalShards < 1 || c.TotalShards > 1024 {
		return errors.New("query sharding: total_shards must be between 1 and 1024")
	}
	if c.MaxShardedQueries < 1 {
		return errors.New("query sharding: max_sharded_queries must be at least 1")
	}
	return nil
}
