package storegateway

import (
	"errors"
	"flag"
	"time"

	"github.com/neocortex-metrics/neocortex/pkg/ringconfig"
	"github.com/neocortex-metrics/neocortex/pkg/storage/bucketblock"
)

// RingName names the store-gateway ring in metrics and logs; RingKey is its
// KV key.
const (
	RingName = "store-gateway"
	RingKey  = "store-gateway"
)

// Config configures a store-gateway.
type Config struct {
	// DataDir holds the index-headers of the blocks this store-gateway
	// serves, and its ring tokens.
	DataDir string `yaml:"data_dir"`
	// SyncInterval is how often the bucket indexes are read for new,
	// deleted and re-sharded blocks.
	SyncInterval time.Duration `yaml:"sync_interval"`
	// BlockSyncConcurrency is how many blocks are opened at once.
	BlockSyncConcurrency int `yaml:"block_sync_concurrency"`
	// IndexCache caches postings and series read from block indexes.
	IndexCache bucketblock.CacheConfig `yaml:"index_cache"`
	// Ring shards blocks over store-gateways.
	Ring ringconfig.Config `yaml:"sharding_ring"`
}

// RegisterFlags registers the store-gateway flags and their defaults.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.DataDir, "store-gateway.data-dir", "./data/store-gateway", "Directory of the index-headers of the blocks served (created if missing).")
	f.DurationVar(&c.SyncInterval, "store-gateway.sync-interval", time.Minute, "How often the bucket indexes are read for new and deleted blocks.")
	f.IntVar(&c.BlockSyncConcurrency, "store-gateway.block-sync-concurrency", 8, "How many blocks are opened (index-headers built) at once.")
	c.IndexCache.RegisterFlagsWithPrefix("store-gateway.index-cache.", f)
	c.Ring.RegisterFlags(f, "store-gateway.sharding-ring.", ringconfig.Defaults{
		Component:         "store-gateway",
		KVPrefix:          "collectors/",
		ReplicationFactor: 1,
		NumTokens:         512,
		ReplicationHelp:   "Number of store-gateways that serve each block (use 3 in a cluster); a query fails only if every one of them fails to answer for a block.",
	})
}

// Validate checks the config.
func (c *Config) Validate() error {
	switch {
	case c.DataDir == "":
		return errors.New("store_gateway.data_dir must be set")
	case c.SyncInterval <= 0:
		return errors.New("store_gateway.sync_interval must be positive")
	case c.BlockSyncConcurrency < 1:
		return errors.New("store_gateway.block_sync_concurrency must be at least 1")
	}
	if err := c.IndexCache.Validate(); err != nil {
		return err
	}
	return c.Ring.Validate()
}
