// Package ringconfig is the configuration of a hash ring that instances of
// one component join (ingesters, store-gateways, compactors): the KV store
// it lives in, heartbeats, replication, and how an instance registers.
package ringconfig

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/ring"
)

// Config is one component's ring.
type Config struct {
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

	prefix string
}

// Defaults are the defaults that differ between components.
type Defaults struct {
	// Component names the instances in help texts: "ingester".
	Component string
	// KVPrefix is the key prefix in consul/etcd: "collectors/".
	KVPrefix          string
	ReplicationFactor int
	NumTokens         int
	// ReplicationHelp says what is replicated, for the flag's help.
	ReplicationHelp string
}

// RegisterFlags registers the ring flags under prefix (e.g. "ingester.ring.").
func (c *Config) RegisterFlags(f *flag.FlagSet, prefix string, d Defaults) {
	c.prefix = prefix
	hostname, err := os.Hostname()
	if err != nil {
		hostname = d.Component
	}
	c.KVStore.Store = "inmemory"
	c.KVStore.RegisterFlagsWithPrefix(prefix, d.KVPrefix, f)
	f.DurationVar(&c.HeartbeatPeriod, prefix+"heartbeat-period", 5*time.Second, fmt.Sprintf("How often a %s updates its heartbeat in the ring.", d.Component))
	f.DurationVar(&c.HeartbeatTimeout, prefix+"heartbeat-timeout", time.Minute, fmt.Sprintf("A %s whose heartbeat is older than this is unhealthy and skipped.", d.Component))
	f.IntVar(&c.ReplicationFactor, prefix+"replication-factor", d.ReplicationFactor, d.ReplicationHelp)
	f.BoolVar(&c.ZoneAwarenessEnabled, prefix+"zone-awareness-enabled", false, fmt.Sprintf("Replicate to %ss in different zones.", d.Component))
	f.IntVar(&c.NumTokens, prefix+"num-tokens", d.NumTokens, fmt.Sprintf("Number of tokens each %s owns in the ring.", d.Component))
	f.StringVar(&c.InstanceID, prefix+"instance-id", hostname, fmt.Sprintf("This %s's unique ID in the ring.", d.Component))
	f.StringVar(&c.InstanceAddr, prefix+"instance-addr", "", "Address other components reach this instance at (empty = the gRPC listen address if set, else the first private address of this host).")
	f.IntVar(&c.InstancePort, prefix+"instance-port", 0, "Port advertised in the ring (0 = the gRPC listen port).")
	f.StringVar(&c.InstanceZone, prefix+"instance-availability-zone", "", fmt.Sprintf("This %s's zone, for zone-aware replication.", d.Component))
	f.DurationVar(&c.AutoForgetUnhealthy, prefix+"auto-forget-unhealthy-period", 0, "Remove an instance from the ring once its heartbeat is this old (0 = never).")
}

// Validate checks the ring config.
func (c *Config) Validate() error {
	switch {
	case c.ReplicationFactor < 1:
		return fmt.Errorf("%sreplication_factor must be at least 1", c.prefix)
	case c.NumTokens < 1:
		return fmt.Errorf("%snum_tokens must be at least 1", c.prefix)
	case c.HeartbeatPeriod <= 0 || c.HeartbeatTimeout <= 0:
		return fmt.Errorf("%s heartbeat period and timeout must be positive", c.prefix)
	case c.InstanceID == "":
		return fmt.Errorf("%sinstance_id must be set", c.prefix)
	}
	return nil
}

// ClientConfig is the config a ring client reads the ring with.
func (c *Config) ClientConfig() ring.Config {
	return ring.Config{
		KVStore:              c.KVStore,
		HeartbeatTimeout:     c.HeartbeatTimeout,
		ReplicationFactor:    c.ReplicationFactor,
		ZoneAwarenessEnabled: c.ZoneAwarenessEnabled,
	}
}
