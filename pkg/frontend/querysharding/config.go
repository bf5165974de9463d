package querysharding

import (
	"errors"
	"flag"
)

// DefaultSeparateShards is the shard count a frontend with separate
// queriers uses when total_shards is left at 0.
const DefaultSeparateShards = 16

// Config configures query sharding.
type Config struct {
	// Enabled turns query sharding on.
	Enabled bool `yaml:"enabled"`
	// TotalShards is how many shards a shardable query is split into; 0
	// picks it (see Resolve).
	TotalShards int `yaml:"total_shards"`
	// MaxShardedQueries is how many shard queries of one query run at once;
	// 0 picks it (see Resolve).
	MaxShardedQueries int `yaml:"max_sharded_queries"`

	// shareCPUs: TotalShards are the CPUs of the querier in this process,
	// shared by the parts of a split query that run at once (Resolve).
	shareCPUs bool
}

// ShardsFor is how many shards a query is split into when it runs beside
// parallel-1 other parts of its split query: all of TotalShards, or, when
// they are the CPUs of this process's querier, its share of them, at
// least one (no sharding).
func (c Config) ShardsFor(parallel int) int {
	if !c.shareCPUs || parallel <= 1 {
		return c.TotalShards
	}
	return max(1, c.TotalShards/parallel)
}

// RegisterFlags registers the query-sharding flags and their defaults.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.BoolVar(&c.Enabled, "frontend.query-sharding-enabled", true, "Split shardable aggregations (sum, min, max, count, group, avg, topk, bottomk over series-wise expressions) into one query per hash shard of the series, run in parallel and merged.")
	f.IntVar(&c.TotalShards, "frontend.query-sharding-total-shards", 0, "How many shards a shardable query is split into. 0: the CPUs this process may use (GOMAXPROCS) when its own querier answers the queries (the single binary), shared by the parts of a split query that run at once; 16 with separate queriers. 1 turns sharding off.")
	f.IntVar(&c.MaxShardedQueries, "frontend.query-sharding-max-sharded-queries", 0, "How many shard queries of one query run at once; avg runs two per shard. 0: all the shards, or as many as the per-tenant queue holds for max_query_parallelism parts of one query at once.")
}

// Validate checks the config.
func (c *Config) Validate() error {
	if !c.Enabled {
		return nil
	}
	if c.TotalShards < 0 || c.TotalShards > 1024 {
		return errors.New("query sharding: total_shards must be between 0 (automatic) and 1024")
	}
	if c.MaxShardedQueries < 0 {
		return errors.New("query sharding: max_sharded_queries must not be negative")
	}
	return nil
}

// Resolve fills in what is left at 0. localCPUs is the number of CPUs of
// a querier in this process that answers the frontend's queries, 0 when
// the queriers are separate. queueSlots is how many shard queries of one
// part fit in the per-tenant queue when max_query_parallelism parts run at
// once. A config that resolves to a single shard is not enabled. The
// CPUs of a local querier are shared by the parts of a split query that run
// at once (ShardsFor): a week split by day is not sharded on 2 CPUs.
func (c Config) Resolve(localCPUs, queueSlots int) Config {
	if !c.Enabled {
		return c
	}
	if c.TotalShards == 0 {
		c.TotalShards = DefaultSeparateShards
		if localCPUs > 0 {
			c.TotalShards = min(localCPUs, 1024)
			c.shareCPUs = true
		}
	}
	if c.MaxShardedQueries == 0 {
		c.MaxShardedQueries = max(1, min(c.TotalShards, queueSlots))
	}
	if c.TotalShards == 1 {
		c.Enabled, c.shareCPUs = false, false
	}
	return c
}
