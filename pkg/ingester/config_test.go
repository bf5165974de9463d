package ingester

import (
	"flag"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestConfigStripeSize: the head's stripe count must be a power of two.
func TestConfigStripeSize(t *testing.T) {
	for _, tc := range []struct {
		stripes int
		err     string
	}{
		{1024, ""},
		{1, ""},
		{16384, ""},
		{0, "ingester.tsdb_stripe_size 0 must be a power of two"},
		{-2, "ingester.tsdb_stripe_size -2 must be a power of two"},
		{1000, "ingester.tsdb_stripe_size 1000 must be a power of two"},
	} {
		var cfg Config
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		cfg.RegisterFlags(fs)
		require.NoError(t, fs.Parse(nil))
		require.Equal(t, 1024, cfg.StripeSize, "the default")
		cfg.Ring.InstanceID = "test"
		cfg.StripeSize = tc.stripes
		err := cfg.Validate()
		if tc.err == "" {
			require.NoError(t, err, "%d stripes", tc.stripes)
			continue
		}
		require.EqualError(t, err, tc.err)
	}
}
