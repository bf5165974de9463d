package tenantmetrics

import (
	"sort"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
)

// TestForgetter: the series of a tenant go once it has not been seen for
// the forget-after period, checked at most every tenth of it, and come
// back when it is seen again; other labels do not matter.
func TestForgetter(t *testing.T) {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "requests_total"}, []string{Label, "code"})
	seconds := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "seconds"}, []string{Label})
	other := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "other_total"}, []string{Label})
	f := New(24*time.Hour, requests.MetricVec, seconds.MetricVec)
	var cutoffs []time.Duration // after t0
	t0 := time.Unix(100000, 0)
	f.Also(func(cutoff time.Time) { cutoffs = append(cutoffs, cutoff.Sub(t0)) })
	now := t0
	f.now = func() time.Time { return now }
	serve := func(tenant string) {
		f.Seen(tenant)
		requests.WithLabelValues(tenant, "200").Inc()
		requests.WithLabelValues(tenant, "500").Inc()
		seconds.WithLabelValues(tenant).Set(1)
		other.WithLabelValues(tenant).Inc()
	}
	tenants := func(v prometheus.Collector) []string {
		ch := make(chan prometheus.Metric, 100)
		v.Collect(ch)
		close(ch)
		set := map[string]bool{}
		for m := range ch {
			var pb dto.Metric
			require.NoError(t, m.Write(&pb))
			for _, l := range pb.GetLabel() {
				if l.GetName() == Label {
					set[l.GetValue()] = true
				}
			}
		}
		var out []string
		for k := range set {
			out = append(out, k)
		}
		sort.Strings(out)
		return out
	}

	for _, step := range []struct {
		at        time.Duration // after t0
		serve     string
		want      []string // tenants with series in requests and seconds
		wantCount int      // series in requests
	}{
		{0, "a", []string{"a"}, 2},
		{time.Hour, "b", []string{"a", "b"}, 4},
		{23 * time.Hour, "a", []string{"a", "b"}, 4},
		{25 * time.Hour, "c", []string{"a", "b", "c"}, 6},             // b not seen for 24h, but last checked 2h ago
		{25*time.Hour + time.Second, "c", []string{"a", "b", "c"}, 6}, // the next check is due 2.4h after the last
		{27*time.Hour + 25*time.Minute, "c", []string{"a", "c"}, 4},   // b forgotten
		{52 * time.Hour, "b", []string{"b"}, 2},                       // a and c forgotten, b back
	} {
		now = t0.Add(step.at)
		serve(step.serve)
		require.Equal(t, step.want, tenants(requests), "requests at %s", step.at)
		require.Equal(t, step.want, tenants(seconds), "seconds at %s", step.at)
		require.Equal(t, step.wantCount, testutil.CollectAndCount(requests), "at %s", step.at)
	}
	require.Equal(t, []string{"a", "b", "c"}, tenants(other), "a vector it was not given keeps its series")
	require.Equal(t, []time.Duration{-24 * time.Hour, -time.Hour, 3*time.Hour + 25*time.Minute, 28 * time.Hour}, cutoffs, "Also: at each check, with its cutoff")
}
