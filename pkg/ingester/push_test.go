package ingester

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/kv/consul"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/neocortex-metrics/neocortex/pkg/ingester/ingesterpb"
	"github.com/neocortex-metrics/neocortex/pkg/limits"
	"github.com/neocortex-metrics/neocortex/pkg/tenant"
	"github.com/neocortex-metrics/neocortex/pkg/validation"
)

func newTestIngester(t *testing.T) *Ingester {
	t.Helper()
	return startTestIngester(t, t.TempDir())
}

// startTestIngester starts an ingester with its data in dir and stops it
// when the test ends, if it still runs.
func startTestIngester(t *testing.T, dir string) *Ingester {
	t.Helper()
	return startLimitedIngester(t, dir, nil)
}

// startLimitedIngester is startTestIngester with the default limits
// changed by change (if not nil).
func startLimitedIngester(t *testing.T, dir string, change func(*limits.Limits)) *Ingester {
	t.Helper()
	var cfg Config
	var lim limits.Limits
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	lim.RegisterFlags(fs)
	require.NoError(t, fs.Parse(nil))
	if change != nil {
		change(&lim)
	}
	cfg.DataDir = dir
	cfg.Ring.InstanceID = "test"
	kv, closer := consul.NewInMemoryClient(ring.GetCodec(), log.NewNopLogger(), nil)
	t.Cleanup(func() { _ = closer.Close() })
	reg := prometheus.NewRegistry()
	ing, err := New(cfg, Deps{
		Limits:     limits.NewOverrides(lim, nil),
		KV:         kv,
		Addr:       "127.0.0.1:1",
		Discarded:  validation.NewDiscardedSamples(reg),
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		Registerer: reg,
	})
	require.NoError(t, err)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), ing))
	t.Cleanup(func() { require.NoError(t, services.StopAndAwaitTerminated(context.Background(), ing)) })
	return ing
}

// TestPushDoesNotKeepTheRequestBuffer overwrites each request's buffer after
// the push: the series the head created must keep their own labels.
func TestPushDoesNotKeepTheRequestBuffer(t *testing.T) {
	ing := newTestIngester(t)
	ctx := tenant.WithTenant(context.Background(), "t")
	push := func(ts int64, jobs ...string) {
		req := &prompb.WriteRequest{}
		for _, job := range jobs {
			req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
				Labels:  []prompb.Label{{Name: "__name__", Value: "up"}, {Name: "job", Value: job}},
				Samples: []prompb.Sample{{Timestamp: ts, Value: 1}},
			})
		}
		buf, err := req.Marshal()
		require.NoError(t, err)
		_, err = ing.Push(ctx, &ingesterpb.PushRequest{WriteRequest: buf})
		require.NoError(t, err)
		for i := range buf {
			buf[i] = 'X'
		}
	}
	push(1000, "job-1", "job-2") // creates both series
	push(2000, "job-1")          // appends by reference
	push(1000, "job-3")          // another new series

	db, err := ing.lookupDB("t")
	require.NoError(t, err)
	q, err := db.Querier(0, 3000)
	require.NoError(t, err)
	defer q.Close()
	ss := q.Select(ctx, true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "up"))
	var got []string
	samples := 0
	for ss.Next() {
		got = append(got, ss.At().Labels().String())
		it := ss.At().Iterator(nil)
		for it.Next() != 0 {
			samples++
		}
	}
	require.NoError(t, ss.Err())
	require.Equal(t, []string{`{__name__="up", job="job-1"}`, `{__name__="up", job="job-2"}`, `{__name__="up", job="job-3"}`}, got)
	require.Equal(t, 4, samples)
}

func TestMetadataStore(t *testing.T) {
	s := newMetadataStore()
	md := func(name, help string) *prompb.MetricMetadata {
		return &prompb.MetricMetadata{MetricFamilyName: name, Type: prompb.MetricMetadata_GAUGE, Help: help}
	}
	t0 := time.Unix(1000, 0)
	for i := 0; i < maxMetadataPerMetric+3; i++ {
		s.add(md("a", string(rune('A'+i))), t0)
	}
	s.add(md("a", "D"), t0) // known: moves to the newest
	s.add(md("b", "only"), t0)
	got := s.get("a", 0, 2)
	require.Equal(t, []*ingesterpb.Metadata{
		{MetricFamilyName: "a", Type: "gauge", Help: "D"},
		{MetricFamilyName: "a", Type: "gauge", Help: "M"},
	}, got)
	require.Len(t, s.get("a", 0, 0), maxMetadataPerMetric)
	require.Len(t, s.get("", 1, 1), 1)
	require.Len(t, s.get("", 0, 1), 2)
	require.Empty(t, s.get("nope", 0, 0))

	// Pushed again later: the newest entry of a, one older one of a.
	t1 := t0.Add(time.Minute)
	s.add(md("a", "D"), t1)
	s.add(md("a", "K"), t1)
	s.purge(t0) // nothing is older than t0
	require.Len(t, s.get("", 0, 0), maxMetadataPerMetric+1)
	s.purge(t1)
	require.Equal(t, []*ingesterpb.Metadata{
		{MetricFamilyName: "a", Type: "gauge", Help: "K"},
		{MetricFamilyName: "a", Type: "gauge", Help: "D"},
	}, s.get("", 0, 0), "only what was pushed at t1; b is gone")
	s.purge(t1.Add(time.Nanosecond))
	require.Empty(t, s.get("", 0, 0))
	require.Empty(t, s.families, "no family is left")
}
