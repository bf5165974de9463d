package main

import (
	"flag"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
		// What a valid configuration runs.
		wantBackfillSteps int64
		wantNoLiveRun     bool
	}{
		{name: "defaults"},
		{name: "several tenants", args: []string{"-tenants", "a, b,c"}},
		{name: "remote write 1.0", args: []string{"-remote-write-version", "1.0"}},
		{name: "remote write 2.0", args: []string{"-remote-write-version", "2.0"}},
		{name: "unknown remote write version", args: []string{"-remote-write-version", "2"},
			wantErr: `-remote-write-version "2" is not supported: use "1.0" (prometheus.WriteRequest) or "2.0" (io.prometheus.write.v2.Request)`},
		{name: "too few labels", args: []string{"-labels-per-series", "2"}, wantErr: "-labels-per-series 2 is less than 3"},
		{name: "no tenant", args: []string{"-tenants", " , "}, wantErr: "no tenant"},
		{name: "duplicate tenant", args: []string{"-tenants", "a,a"}, wantErr: `names "a" twice`},
		{name: "fewer series than tenants", args: []string{"-tenants", "a,b", "-active-series", "1"}, wantErr: "less than the 2 tenants"},
		{name: "not a URL", args: []string{"-url", "localhost:8080"}, wantErr: "not an http(s) URL"},
		{name: "sub-millisecond interval", args: []string{"-interval", "1500us"}, wantErr: "whole number of milliseconds"},
		{name: "backoffs reversed", args: []string{"-min-backoff", "2s", "-max-backoff", "1s"}, wantErr: "-min-backoff"},
		{name: "negative backfill", args: []string{"-backfill", "-1m"}, wantErr: "-backfill must not be negative"},
		{name: "no time or sample limit is an endless live run", args: []string{"-duration", "0", "-samples", "0"}},
		{name: "backfill then a live minute", args: []string{"-backfill", "10m"}, wantBackfillSteps: 40},
		{name: "backfill only", args: []string{"-backfill", "10m", "-duration", "0", "-samples", "0"}, wantBackfillSteps: 40, wantNoLiveRun: true},
		{name: "backfill then live samples", args: []string{"-backfill", "10m", "-duration", "0", "-samples", "5000"}, wantBackfillSteps: 40},
		{name: "backfill rounded down to whole intervals", args: []string{"-backfill", "44s", "-interval", "15s"}, wantBackfillSteps: 2},
		{name: "backfill shorter than an interval writes nothing", args: []string{"-backfill", "14s", "-interval", "15s", "-duration", "0", "-samples", "0"}, wantNoLiveRun: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			var cfg Config
			cfg.RegisterFlags(fs)
			require.NoError(t, fs.Parse(tc.args))
			err := cfg.Validate()
			if tc.wantErr == "" {
				require.NoError(t, err)
				require.Equal(t, tc.wantBackfillSteps, cfg.BackfillSteps())
				require.Equal(t, !tc.wantNoLiveRun, cfg.LiveRun())
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}
