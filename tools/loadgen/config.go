package main

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// The values of -remote-write-version.
const (
	remoteWrite1 = "1.0"
	remoteWrite2 = "2.0"
)

// minLabelsPerSeries is __name__, instance and pod: the labels that make a
// series unique and that churn changes.
const minLabelsPerSeries = 3

// Config is everything a run is told on the command line.
type Config struct {
	URL                string
	QueryURL           string
	Tenants            string
	ActiveSeries       int
	LabelsPerSeries    int
	SeriesPerRequest   int
	Concurrency        int
	Interval           time.Duration
	Duration           time.Duration
	Samples            int64
	Backfill           time.Duration
	Churn              int
	Seed               int64
	RemoteWriteVersion string
	ServerPID          int
	Verify             bool
	ReportInterval     time.Duration

	RemoteTimeout time.Duration
	MaxRetries    int
	MinBackoff    time.Duration
	MaxBackoff    time.Duration
}

// RegisterFlags registers every option and its default.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.URL, "url", "http://localhost:8080/api/v1/push", "Remote-write push URL.")
	f.StringVar(&c.QueryURL, "query-url", "http://localhost:8080/prometheus", "Prometheus query API prefix used by -verify (…/api/v1/query_range is appended).")
	f.StringVar(&c.Tenants, "tenants", "loadgen", "Comma-separated tenants (X-Scope-OrgID); the active series are split evenly across them.")
	f.IntVar(&c.ActiveSeries, "active-series", 10000, "Series written every interval, over all tenants.")
	f.IntVar(&c.LabelsPerSeries, "labels-per-series", 10, fmt.Sprintf("Labels of each series, __name__ included (at least %d).", minLabelsPerSeries))
	f.IntVar(&c.SeriesPerRequest, "series-per-request", 1000, "Series (one sample each) per remote-write request.")
	f.IntVar(&c.Concurrency, "concurrency", 4, "Requests in flight at once (sender shards); each series always goes through the same shard, in order.")
	f.DurationVar(&c.Interval, "interval", 15*time.Second, "Scrape interval: every active series gets one sample per interval, timestamped with the interval's wall-clock time.")
	f.DurationVar(&c.Duration, "duration", time.Minute, "Stop sending after this long (0 = no time limit). With -samples, whichever comes first. Counted from the live run's first step, after any -backfill.")
	f.Int64Var(&c.Samples, "samples", 0, "Stop sending after this many samples (0 = no limit). With -duration, whichever comes first. Backfilled samples do not count.")
	f.DurationVar(&c.Backfill, "backfill", 0, "Before the live run, write this much history of the active series as fast as the server takes it: one sample per series per -interval, on the live run's timestamps, from the start minus -backfill (rounded down to whole intervals; less than one interval writes nothing), the series as they are at the start: churn starts with the live run. With -backfill, -duration 0 and -samples 0 together mean no live run: only the backfill is written.")
	f.IntVar(&c.Churn, "churn", 0, "Series replaced per minute: a replaced series stops and a new one, with a new pod label value, takes its place.")
	f.Int64Var(&c.Seed, "seed", 1, "Seed of the label values and sample values; the same seed gives the same series.")
	f.StringVar(&c.RemoteWriteVersion, "remote-write-version", remoteWrite1, `Remote-write protocol version: "1.0" (prometheus.WriteRequest) or "2.0" (io.prometheus.write.v2.Request, with a metadata type per series). The load and -verify are the same for both.`)
	f.IntVar(&c.ServerPID, "server-pid", 0, "PID of the server process, if local (Linux): report its CPU seconds per million samples and its RSS.")
	f.BoolVar(&c.Verify, "verify", false, "After sending, read back every acknowledged sample through the query API and exit non-zero if any is missing or wrong.")
	f.DurationVar(&c.ReportInterval, "report-interval", 10*time.Second, "How often to print a progress report (0 = only the final one).")
	f.DurationVar(&c.RemoteTimeout, "remote-timeout", 30*time.Second, "Time limit of one push attempt.")
	f.IntVar(&c.MaxRetries, "max-retries", 10, "Retries of a push answered 5xx or 429 or failing on the network, before its samples are counted as failed.")
	f.DurationVar(&c.MinBackoff, "min-backoff", 30*time.Millisecond, "First retry backoff; doubled on each retry. A Retry-After from the server replaces it.")
	f.DurationVar(&c.MaxBackoff, "max-backoff", 5*time.Second, "Longest retry backoff.")
}

// BackfillSteps returns how many steps -backfill writes before the start:
// whole intervals only, so that the backfill's timestamps are the live
// run's, continued into the past.
func (c *Config) BackfillSteps() int64 {
	return int64(c.Backfill / c.Interval)
}

// LiveRun tells whether there is a live run. There is none only when a
// -backfill is asked for with neither -duration nor -samples: a run that
// fills history and exits. Without -backfill, that pair still means a live
// run without end.
func (c *Config) LiveRun() bool {
	return c.Backfill == 0 || c.Duration > 0 || c.Samples > 0
}

// TenantList returns the tenants of -tenants, trimmed.
func (c *Config) TenantList() []string {
	var ts []string
	for _, t := range strings.Split(c.Tenants, ",") {
		if t = strings.TrimSpace(t); t != "" {
			ts = append(ts, t)
		}
	}
	return ts
}

// Validate checks the options against each other.
func (c *Config) Validate() error {
	if c.RemoteWriteVersion != remoteWrite1 && c.RemoteWriteVersion != remoteWrite2 {
		return fmt.Errorf("-remote-write-version %q is not supported: use %q (prometheus.WriteRequest) or %q (io.prometheus.write.v2.Request)", c.RemoteWriteVersion, remoteWrite1, remoteWrite2)
	}
	for name, u := range map[string]string{"url": c.URL, "query-url": c.QueryURL} {
		p, err := url.Parse(u)
		if err != nil {
			return fmt.Errorf("parse -%s: %w", name, err)
		}
		if p.Scheme != "http" && p.Scheme != "https" || p.Host == "" {
			return fmt.Errorf("-%s %q is not an http(s) URL", name, u)
		}
	}
	tenants := c.TenantList()
	if len(tenants) == 0 {
		return errors.New("-tenants names no tenant")
	}
	seen := map[string]bool{}
	for _, t := range tenants {
		if seen[t] {
			return fmt.Errorf("-tenants names %q twice", t)
		}
		seen[t] = true
	}
	switch {
	case c.ActiveSeries < len(tenants):
		return fmt.Errorf("-active-series %d is less than the %d tenants", c.ActiveSeries, len(tenants))
	case c.ActiveSeries > maxTargets*len(metricNames):
		return fmt.Errorf("-active-series %d is more than the %d distinct series the generator can make", c.ActiveSeries, maxTargets*len(metricNames))
	case c.LabelsPerSeries < minLabelsPerSeries:
		return fmt.Errorf("-labels-per-series %d is less than %d", c.LabelsPerSeries, minLabelsPerSeries)
	case c.SeriesPerRequest <= 0:
		return errors.New("-series-per-request must be positive")
	case c.Concurrency <= 0:
		return errors.New("-concurrency must be positive")
	case c.Interval < 10*time.Millisecond || c.Interval%time.Millisecond != 0:
		return fmt.Errorf("-interval %s must be at least 10ms and a whole number of milliseconds", c.Interval)
	case c.Duration < 0 || c.Samples < 0 || c.Churn < 0 || c.ReportInterval < 0 || c.Backfill < 0:
		return errors.New("-duration, -samples, -churn, -report-interval and -backfill must not be negative")
	case c.ServerPID < 0:
		return errors.New("-server-pid must not be negative")
	case c.RemoteTimeout <= 0:
		return errors.New("-remote-timeout must be positive")
	case c.MaxRetries < 0:
		return errors.New("-max-retries must not be negative")
	case c.MinBackoff <= 0 || c.MaxBackoff < c.MinBackoff:
		return errors.New("-min-backoff must be positive and at most -max-backoff")
	}
	return nil
}
