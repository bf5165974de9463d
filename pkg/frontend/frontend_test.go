package frontend

import (
	"flag"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/neocortex-metrics/neocortex/pkg/frontend/transport"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		change  func(*Config)
		wantErr string
	}{
		{"defaults", func(*Config) {}, ""},
		{"sharding on, shard queries at once automatic", func(c *Config) { c.Sharding.Enabled = true; c.Sharding.TotalShards = 64 }, ""},
		{"more shard queries at once than the queue holds", func(c *Config) { c.Sharding.MaxShardedQueries = 16 },
			"frontend.max_outstanding_requests_per_tenant (100) must be at least max_query_parallelism × query_sharding.max_sharded_queries (224) when query sharding is enabled, or one query fills the queue"},
		{"sharding with room", func(c *Config) { c.Sharding.MaxShardedQueries = 16; c.Queue.MaxOutstandingPerTenant = 224 }, ""},
		{"sharding off", func(c *Config) { c.Sharding.Enabled = false; c.Sharding.MaxShardedQueries = 16 }, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c Config
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			c.RegisterFlags(fs)
			require.NoError(t, fs.Parse(nil))
			tc.change(&c)
			err := c.Validate()
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.EqualError(t, err, tc.wantErr)
		})
	}
}

// TestTimingWriterFlushes: the range handler flushes its answer through
// the writer before caching it; a flush starts the answer, with its
// Server-Timing.
func TestTimingWriterFlushes(t *testing.T) {
	rec := httptest.NewRecorder()
	tw := &timingWriter{ResponseWriter: rec, start: time.Now(), stats: &transport.Stats{}}
	require.NoError(t, http.NewResponseController(tw).Flush())
	require.True(t, rec.Flushed)
	require.Equal(t, http.StatusOK, rec.Code)
	require.Contains(t, rec.Header().Get("Server-Timing"), "response_time;dur=")
}
