package ingester

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/ring"
)

// Config configures an ingester.
type Config struct {
	// DataDir holds one TSDB (head, WAL, blocks) per tenant, in a directory
	// named after the tenant, and the ring tokens file.
	DataDir string `yaml:"data_dir"`
	// BlockRange is the time span of the blocks cut from each tenant's head.
	BlockRange time.Duration `yaml:"block_range"`
	// Retention is how long local blocks are kept (0 = forever).
	Retention time.Duration `yaml:"retention_period"`
	// LimitsReloadPeriod is how often runtime changes of per-tenant TSDB
	// settings (the out-of-order window) are applied.
	LimitsReloadPeriod time.Duration `yaml:"limits_reload_period"`

	Ring RingConfig `yaml:"ring"`
}

// RegisterFlags registers the ingester flags and their defaults.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.DataDir, "ingester.data-dir", "./data/tsdb", "Directory of the per-tenant TSDBs (created if missing).")
	f.DurationVar(&c.BlockRange, "ingester.block-range", 2*time.Hour, "Time span of the TSDB blocks cut from the head.")
	f.DurationVar(&c.Retention, "ingester.retention-period", 0, "How long to keep local TSDB blocks (0 = forever).")
	f.DurationVar(&c.LimitsReloadPeriod, "ingester.limits-reload-period", 10*time.Second, "How often per-tenant TSDB settings from the runtime config are applied.")
	c.Ring.RegisterFlags(f)
}

// Validate checks the config.
func (c *Config) Validate() error {
	if c.DataDir == "" {
		return errors.New("ingester.data_dir must be set")
	}
	if c.BlockRange < time.Second || c.BlockRange%time.Second != 0 {
		return fmt.Errorf("ingester.block_range %s must be a whole number of seconds, at least 1s", c.BlockRange)
	}
	if c.LimitsReloadPeriod <= 0 {
		return errors.New("ingester.limits_reload_period must be positive")
	}
	return c.Ring.Validate()
}

// RingConfig is the ingester ring: the KV store it lives in, how this
// ingester registers itself, and how clients read it.
type RingConfig struct {
	KVStore              kv.Config     `yaml:"kvstore"`
	HeartbeatPeriod      time.Duration `yaml:"heartbeat_period"`
	HeartbeatTimeout     time.Duration `yaml:"heartbeat_timeout"`
	ReplicationFactor    int           `yaml:"replication_factor"`
	ZoneAwarenessEnabled bool          `yaml:"zone_awareness_enabled"`
	NumTokens            int           `yaml:"num_tokens"`
	InstanceID           string        `yaml:"instance_id"`
	InstanceAddr         string        `yaml:"instance_addr"`
	InstancePort         int           `yaml:"instance_port"`
	InstanceZone         string        `yaml:"instance_availability_zone"`
	AutoForgetUnhealthy  time.Duration `yaml:"auto_forget_unhealthy_period"`
}

// RegisterFlags registers the ring flags and their defaults.
func (c *RingConfig) RegisterFlags(f *flag.FlagSet) {
	hostname, err := os.Hostname()
	if err != nil {
		hostname = "ingester"
	}
	c.KVStore.Store = "inmemory"
	c.KVStore.RegisterFlagsWithPrefix("ingester.ring.", "collectors/", f)
	f.DurationVar(&c.HeartbeatPeriod, "ingester.ring.heartbeat-period", 5*time.Second, "How often an ingester updates its heartbeat in the ring.")
	f.DurationVar(&c.HeartbeatTimeout, "ingester.ring.heartbeat-timeout", time.Minute, "An ingester whose heartbeat is older than this is unhealthy: skipped for writes and reads.")
	f.IntVar(&c.ReplicationFactor, "ingester.ring.replication-factor", 1, "Number of ingesters each series is written to; writes need a quorum of RF/2+1.")
	f.BoolVar(&c.ZoneAwarenessEnabled, "ingester.ring.zone-awareness-enabled", false, "Replicate each series to ingesters in different zones.")
	f.IntVar(&c.NumTokens, "ingester.ring.num-tokens", 128, "Number of tokens each ingester owns in the ring.")
	f.StringVar(&c.InstanceID, "ingester.ring.instance-id", hostname, "This ingester's unique ID in the ring.")
	f.StringVar(&c.InstanceAddr, "ingester.ring.instance-addr", "", "Address other components reach this ingester at (empty = the gRPC listen address if set, else the first private address of this host).")
	f.IntVar(&c.InstancePort, "ingester.ring.instance-port", 0, "Port advertised in the ring (0 = the gRPC listen port).")
	f.StringVar(&c.InstanceZone, "ingester.ring.instance-availability-zone", "", "This ingester's zone, for zone-aware replication.")
	f.DurationVar(&c.AutoForgetUnhealthy, "ingester.ring.auto-forget-unhealthy-period", 0, "Remove an instance from the ring once its heartbeat is this old (0 = never).")
}

// Validate checks the ring config.
func (c *RingConfig) Validate() error {
	switch {
	case c.ReplicationFactor < 1:
		return errors.New("ingester.ring.replication_factor must be at least 1")
	case c.NumTokens < 1:
		return errors.New("ingester.ring.num_tokens must be at least 1")
	case c.HeartbeatPeriod <= 0 || c.HeartbeatTimeout <= 0:
		return errors.New("ingester.ring heartbeat period and timeout must be positive")
	case c.InstanceID == "":
		return errors.New("ingester.ring.instance_id must be set")
	}
	return nil
}

// ClientConfig is the config a ring client (distributor, querier) reads the
// ring with.
func (c *RingConfig) ClientConfig() ring.Config {
	return ring.Config{
		KVStore:              c.KVStore,
		HeartbeatTimeout:     c.HeartbeatTimeout,
		ReplicationFactor:    c.ReplicationFactor,
		ZoneAwarenessEnabled: c.ZoneAwarenessEnabled,
	}
}
