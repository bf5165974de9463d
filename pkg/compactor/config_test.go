package compactor

import (
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

func TestConfigDefaults(t *testing.T) {
	var cfg Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	require.NoError(t, fs.Parse(nil))
	require.Equal(t, "./data/compactor", cfg.DataDir)
	require.Equal(t, DurationList{2 * time.Hour, 12 * time.Hour, 24 * time.Hour}, cfg.BlockRanges)
	require.Equal(t, 15*time.Minute, cfg.CompactionInterval)
	require.Equal(t, 12*time.Hour, cfg.DeletionDelay)
	require.Equal(t, 1, cfg.CompactionConcurrency)
	require.False(t, cfg.ShardingEnabled)
	require.Equal(t, "inmemory", cfg.Ring.KVStore.Store)
	require.Equal(t, 1, cfg.Ring.ReplicationFactor)
	require.NoError(t, cfg.Validate())

	require.NoError(t, fs.Parse([]string{"-compactor.block-ranges=1s, 3s,6s", "-compactor.sharding-enabled", "-compactor.ring.instance-id=c-1"}))
	require.Equal(t, DurationList{time.Second, 3 * time.Second, 6 * time.Second}, cfg.BlockRanges)
	require.Equal(t, "1s,3s,6s", fs.Lookup("compactor.block-ranges").Value.String())
	require.True(t, cfg.ShardingEnabled)
	require.Equal(t, "c-1", cfg.Ring.InstanceID)
	require.NoError(t, cfg.Validate())
}

func TestConfigYAML(t *testing.T) {
	var cfg Config
	cfg.RegisterFlags(flag.NewFlagSet("test", flag.ContinueOnError))
	dec := yaml.NewDecoder(strings.NewReader(`
data_dir: /tmp/c
block_ranges: [1h, 4h]
compaction_interval: 5m
deletion_delay: 1h
compaction_concurrency: 2
sharding_enabled: true
ring:
  instance_id: c-2
  kvstore:
    store: memberlist
`))
	dec.KnownFields(true)
	require.NoError(t, dec.Decode(&cfg))
	require.Equal(t, DurationList{time.Hour, 4 * time.Hour}, cfg.BlockRanges)
	require.Equal(t, 5*time.Minute, cfg.CompactionInterval)
	require.Equal(t, 2, cfg.CompactionConcurrency)
	require.Equal(t, "memberlist", cfg.Ring.KVStore.Store)
	require.NoError(t, cfg.Validate())

	out, err := yaml.Marshal(&cfg)
	require.NoError(t, err)
	var back Config
	require.NoError(t, yaml.Unmarshal(out, &back))
	require.Equal(t, cfg.BlockRanges, back.BlockRanges)
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*Config)
		wantErr string
	}{
		{name: "defaults", edit: func(*Config) {}},
		{name: "single range: vertical compaction only", edit: func(c *Config) { c.BlockRanges = DurationList{2 * time.Hour} }},
		{name: "no data dir", edit: func(c *Config) { c.DataDir = "" }, wantErr: "data_dir"},
		{name: "no ranges", edit: func(c *Config) { c.BlockRanges = nil }, wantErr: "block_ranges"},
		{name: "ranges not multiples", edit: func(c *Config) { c.BlockRanges = DurationList{2 * time.Hour, 3 * time.Hour} }, wantErr: "multiple"},
		{name: "ranges not increasing", edit: func(c *Config) { c.BlockRanges = DurationList{2 * time.Hour, 2 * time.Hour} }, wantErr: "multiple"},
		{name: "range below a millisecond", edit: func(c *Config) { c.BlockRanges = DurationList{time.Microsecond} }, wantErr: "milliseconds"},
		{name: "zero interval", edit: func(c *Config) { c.CompactionInterval = 0 }, wantErr: "compaction_interval"},
		{name: "negative delay", edit: func(c *Config) { c.DeletionDelay = -time.Second }, wantErr: "deletion_delay"},
		{name: "zero concurrency", edit: func(c *Config) { c.CompactionConcurrency = 0 }, wantErr: "concurrency"},
		{name: "ring ignored without sharding", edit: func(c *Config) { c.Ring.InstanceID = "" }},
		{name: "ring checked with sharding", edit: func(c *Config) { c.ShardingEnabled = true; c.Ring.InstanceID = "" }, wantErr: "instance_id"},
		{name: "one owner per tenant", edit: func(c *Config) { c.ShardingEnabled = true; c.Ring.ReplicationFactor = 3 }, wantErr: "replication_factor must be 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			tc.edit(&cfg)
			err := cfg.Validate()
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}
