package ingester

import (
	"flag"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestConfigValidateTSDB: the head's stripe count must be a power of two,
// its chunks write buffer what Prometheus accepts, and the idle timeouts
// not negative, caught at startup.
func TestConfigValidateTSDB(t *testing.T) {
	for _, tc := range []struct {
		stripes, writeBuffer int
		idleTimeout          time.Duration
		err                  string
	}{
		{1024, 128 << 10, time.Hour, ""},
		{1, 64 << 10, time.Hour, ""},
		{16384, 8 << 20, time.Hour, ""},
		{1024, 128 << 10, 0, ""}, // idle cuts off
		{0, 128 << 10, time.Hour, "ingester.tsdb_stripe_size 0 must be a power of two"},
		{-2, 128 << 10, time.Hour, "ingester.tsdb_stripe_size -2 must be a power of two"},
		{1000, 128 << 10, time.Hour, "ingester.tsdb_stripe_size 1000 must be a power of two"},
		{1024, 63 << 10, time.Hour, "ingester.tsdb_head_chunks_write_buffer_size_bytes 64512 must be a multiple of 1024 from 65536 to 8388608"},
		{1024, 8<<20 + 1024, time.Hour, "ingester.tsdb_head_chunks_write_buffer_size_bytes 8389632 must be a multiple of 1024 from 65536 to 8388608"},
		{1024, 100000, time.Hour, "ingester.tsdb_head_chunks_write_buffer_size_bytes 100000 must be a multiple of 1024 from 65536 to 8388608"},
		{1024, 0, 0, "ingester.tsdb_head_chunks_write_buffer_size_bytes 0 must be a multiple of 1024 from 65536 to 8388608"},
		{1024, 128 << 10, -time.Second, "ingester.head_compaction_idle_timeout and ingester.close_idle_tsdb_timeout must not be negative"},
	} {
		var cfg Config
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		cfg.RegisterFlags(fs)
		require.NoError(t, fs.Parse(nil))
		require.Equal(t, 1024, cfg.StripeSize, "the default")
		require.Equal(t, 128<<10, cfg.HeadChunksWriteBufferSize, "the default")
		require.Equal(t, time.Hour, cfg.HeadCompactionIdleTimeout, "the default")
		require.Equal(t, 13*time.Hour, cfg.CloseIdleTSDBTimeout, "the default")
		cfg.Ring.InstanceID = "test"
		cfg.StripeSize, cfg.HeadChunksWriteBufferSize, cfg.HeadCompactionIdleTimeout = tc.stripes, tc.writeBuffer, tc.idleTimeout
		err := cfg.Validate()
		if tc.err == "" {
			require.NoError(t, err, "%d stripes, %d bytes", tc.stripes, tc.writeBuffer)
			continue
		}
		require.EqualError(t, err, tc.err)
	}
}

// TestConfigPeriods: close_idle_tsdb_timeout must not be negative (0
// turns closing off), and metadata_retain_period must be positive.
func TestConfigPeriods(t *testing.T) {
	for _, tc := range []struct {
		closeIdle, metadataRetain time.Duration
		err                       string
	}{
		{13 * time.Hour, 10 * time.Minute, ""},
		{0, time.Second, ""},
		{-time.Minute, 10 * time.Minute, "ingester.head_compaction_idle_timeout and ingester.close_idle_tsdb_timeout must not be negative"},
		{13 * time.Hour, 0, "ingester.metadata_retain_period must be positive"},
	} {
		var cfg Config
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		cfg.RegisterFlags(fs)
		require.NoError(t, fs.Parse(nil))
		require.Equal(t, 10*time.Minute, cfg.MetadataRetainPeriod, "the default")
		cfg.Ring.InstanceID = "test"
		cfg.CloseIdleTSDBTimeout, cfg.MetadataRetainPeriod = tc.closeIdle, tc.metadataRetain
		err := cfg.Validate()
		if tc.err == "" {
			require.NoError(t, err, "%s, %s", tc.closeIdle, tc.metadataRetain)
			continue
		}
		require.EqualError(t, err, tc.err)
	}
}
