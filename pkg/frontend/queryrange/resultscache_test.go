package queryrange

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/neocortex-metrics/neocortex/pkg/cache"
	"github.com/neocortex-metrics/neocortex/pkg/tenant"
)

// synth answers every request with two series holding a sample at each
// evaluation timestamp (value: the timestamp in seconds), one float and
// one histogram, plus what decorate adds.
func synth(decorate func(*Response)) Handler {
	return HandlerFunc(func(_ context.Context, r *Request) (*Response, error) {
		f := &model.SampleStream{Metric: model.Metric{"series": "float"}}
		h := &model.SampleStream{Metric: model.Metric{"series": "histogram"}}
		for ts := r.Start; ts <= r.End; ts += r.Step {
			f.Values = append(f.Values, model.SamplePair{Timestamp: model.Time(ts), Value: model.SampleValue(ts) / 1000})
			h.Histograms = append(h.Histograms, model.SampleHistogramPair{Timestamp: model.Time(ts), Histogram: &model.SampleHistogram{
				Count: model.FloatString(ts), Sum: 1.5, Buckets: model.HistogramBuckets{{Boundaries: 3, Lower: -1, Upper: 1, Count: model.FloatString(ts)}},
			}})
		}
		resp := &Response{Status: "success", Data: Data{ResultType: model.ValMatrix, Result: model.Matrix{f, h}}}
		if decorate != nil {
			decorate(resp)
		}
		return resp, nil
	})
}

type cacheFixture struct {
	rec   *recorder
	h     Handler
	cache *cache.InMemory
	clock time.Time
}

// newCacheFixture is a results cache on downstream with an in-memory
// backend, a 24h interval, the default configuration and a clock at 100
// days.
func newCacheFixture(t *testing.T, downstream Handler) *cacheFixture {
	f := &cacheFixture{rec: &recorder{next: downstream}, clock: time.UnixMilli(100 * day)}
	f.cache = cache.NewInMemory(1<<30, "test", prometheus.NewRegistry())
	cfg := testConfig().ResultsCache
	f.h = ResultsCache(cfg, ResultsCacheDeps{
		Cache: f.cache, Interval: 24 * time.Hour, Now: func() time.Time { return f.clock },
		Parser: defaultParser(), Metrics: NewMetrics(prometheus.NewRegistry()),
	})(f.rec)
	return f
}

// do answers r for tenant and returns the sub-ranges that reached
// downstream.
func (f *cacheFixture) do(t *testing.T, tenantID string, r *Request) [][2]int64 {
	t.Helper()
	got, err := f.h.Do(tenant.WithTenant(context.Background(), tenantID), r)
	require.NoError(t, err)
	want, err := synth(nil).Do(context.Background(), r.WithRange(r.Start, r.Start+(r.End-r.Start)/r.Step*r.Step))
	require.NoError(t, err)
	if len(got.Warnings) == 0 && len(got.Infos) == 0 {
		require.Equal(t, encode(t, want), encode(t, got))
	}
	return ranges(f.rec.take())
}

func TestResultsCacheTenantIsolation(t *testing.T) {
	f := newCacheFixture(t, synth(nil))
	r := &Request{Query: "up", Start: 10 * day, End: 10*day + hour, Step: minute}
	require.Equal(t, [][2]int64{{r.Start, r.End}}, f.do(t, "a", r))
	require.Equal(t, [][2]int64{{r.Start, r.End}}, f.do(t, "b", r))
	require.Empty(t, f.do(t, "a", r))
	require.Empty(t, f.do(t, "b", r))
}

func TestResultsCacheFreshness(t *testing.T) {
	f := newCacheFixture(t, synth(nil))
	now := f.clock.UnixMilli()
	r := &Request{Query: "up", Start: now - 2*hour, End: now, Step: minute}

	// The last minute is not cached: now-1m is, now is not.
	require.Equal(t, [][2]int64{{r.Start, r.End}}, f.do(t, "a", r))
	require.Equal(t, [][2]int64{{now, now}}, f.do(t, "a", r))

	// Ten minutes later the same request is served from cache up to the
	// old now-1m, and from downstream after.
	f.clock = f.clock.Add(10 * time.Minute)
	require.Equal(t, [][2]int64{{now, now}}, f.do(t, "a", r))
	r2 := r.WithRange(r.Start, now+10*minute)
	require.Equal(t, [][2]int64{{now + minute, now + 10*minute}}, f.do(t, "a", r2))
	require.Equal(t, [][2]int64{{now + 10*minute, now + 10*minute}}, f.do(t, "a", r2))

	// A request entirely within the window passes through, caching
	// nothing.
	fresh := &Request{Query: "up", Start: now + 10*minute - 30000, End: now + 10*minute, Step: 10000}
	require.Equal(t, [][2]int64{{fresh.Start, fresh.End}}, f.do(t, "a", fresh))
	require.Equal(t, [][2]int64{{fresh.Start, fresh.End}}, f.do(t, "a", fresh))
}

func TestResultsCacheNoStore(t *testing.T) {
	f := newCacheFixture(t, synth(nil))
	r := &Request{Query: "up", Start: 10 * day, End: 10*day + hour, Step: minute}
	noStore := *r
	noStore.Options.CacheDisabled = true

	require.Equal(t, [][2]int64{{r.Start, r.End}}, f.do(t, "a", &noStore))
	require.Equal(t, [][2]int64{{r.Start, r.End}}, f.do(t, "a", r), "no-store wrote nothing")
	require.Equal(t, [][2]int64{{r.Start, r.End}}, f.do(t, "a", &noStore), "no-store read nothing")
	require.Empty(t, f.do(t, "a", r))
}

func TestResultsCacheUncacheable(t *testing.T) {
	rows := []struct {
		name     string
		query    string
		decorate func(*Response)
	}{
		{"warnings", "up", func(r *Response) { r.Warnings = []string{"PromQL warning: something"} }},
		{"infos", "up", func(r *Response) { r.Infos = []string{"PromQL info: something"} }},
		{"negative offset", "up offset -5m", nil},
		{"offset expression", "up offset (5m + 1m)", nil},
		{"@ after the freshness window", "up @ 8640000", nil},
		{"@ start() not pinned", "up @ start()", nil},
		{"@ end() in a subquery, not pinned", "max_over_time(up[1h:1m] @ end())", nil},
		{"range() not pinned", "rate(up[range()])", nil},
		{"does not parse", "up[", nil},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			f := newCacheFixture(t, synth(row.decorate))
			r := &Request{Query: row.query, Start: 10 * day, End: 10*day + hour, Step: minute}
			require.Equal(t, [][2]int64{{r.Start, r.End}}, f.do(t, "a", r))
			require.Equal(t, [][2]int64{{r.Start, r.End}}, f.do(t, "a", r))
		})
	}

	t.Run("@ before the freshness window is cacheable", func(t *testing.T) {
		f := newCacheFixture(t, synth(nil))
		r := &Request{Query: "up @ 8639000", Start: 10 * day, End: 10*day + hour, Step: minute}
		require.Equal(t, [][2]int64{{r.Start, r.End}}, f.do(t, "a", r))
		require.Empty(t, f.do(t, "a", r))
	})

	t.Run("errors", func(t *testing.T) {
		fail := true
		f := newCacheFixture(t, HandlerFunc(func(ctx context.Context, r *Request) (*Response, error) {
			if fail {
				return nil, &HTTPError{Code: 422, Body: []byte("no")}
			}
			return synth(nil).Do(ctx, r)
		}))
		r := &Request{Query: "up", Start: 10 * day, End: 10*day + hour, Step: minute}
		ctx := tenant.WithTenant(context.Background(), "a")
		_, err := f.h.Do(ctx, r)
		require.Equal(t, &HTTPError{Code: 422, Body: []byte("no")}, err)
		f.rec.take()
		fail = false
		require.Equal(t, [][2]int64{{r.Start, r.End}}, f.do(t, "a", r))
		require.Empty(t, f.do(t, "a", r))
	})
}

func TestResultsCacheFillsGaps(t *testing.T) {
	f := newCacheFixture(t, synth(nil))
	base := 10 * day
	r := func(from, to int64) *Request {
		return &Request{Query: "up", Start: base + from*hour, End: base + to*hour, Step: 30 * minute}
	}
	require.Equal(t, [][2]int64{{base + 2*hour, base + 5*hour}}, f.do(t, "a", r(2, 5)))
	require.Equal(t, [][2]int64{{base + 10*hour, base + 12*hour}}, f.do(t, "a", r(10, 12)))
	// Before, between and after the cached extents.
	require.Equal(t, [][2]int64{
		{base, base + 2*hour - 30*minute},
		{base + 5*hour + 30*minute, base + 10*hour - 30*minute},
		{base + 12*hour + 30*minute, base + 20*hour},
	}, f.do(t, "a", r(0, 20)))
	require.Empty(t, f.do(t, "a", r(0, 20)))
	require.Empty(t, f.do(t, "a", r(3, 17)))
	// Another phase of the same step is another key.
	shifted := &Request{Query: "up", Start: base + 3*hour + minute, End: base + 17*hour + minute, Step: 30 * minute}
	require.Equal(t, [][2]int64{{shifted.Start, shifted.End}}, f.do(t, "a", shifted))
	require.Empty(t, f.do(t, "a", shifted))
}

func TestResultsCacheUnreadableEntry(t *testing.T) {
	f := newCacheFixture(t, synth(nil))
	r := &Request{Query: "up", Start: 10 * day, End: 10*day + hour, Step: minute}
	f.cache.Store(map[string][]byte{resultsCacheKey("a", r, day): []byte("garbage")}, 0)
	require.Equal(t, [][2]int64{{r.Start, r.End}}, f.do(t, "a", r))
	require.Empty(t, f.do(t, "a", r))
}

func TestResultsCacheKey(t *testing.T) {
	base := &Request{Query: "up", Start: 10*day + hour, End: 10*day + 2*hour, Step: minute}
	key := resultsCacheKey("a", base, day)
	require.Regexp(t, `^qr1:[A-Za-z0-9_-]{43}$`, key)

	same := []*Request{
		base.WithRange(10*day, 10*day+23*hour),
		base.WithRange(10*day+2*hour, 11*day),
	}
	for _, r := range same {
		require.Equal(t, key, resultsCacheKey("a", r, day))
	}
	differ := map[string]string{
		"tenant":   resultsCacheKey("b", base, day),
		"query":    resultsCacheKey("a", base.WithQuery("up "), day),
		"step":     resultsCacheKey("a", &Request{Query: "up", Start: base.Start, End: base.End, Step: 2 * minute}, day),
		"phase":    resultsCacheKey("a", base.WithRange(base.Start+1000, base.End), day),
		"interval": resultsCacheKey("a", base, 12*hour),
		"day":      resultsCacheKey("a", base.WithRange(11*day, 11*day+hour), day),
	}
	for name, k := range differ {
		require.NotEqual(t, key, k, name)
	}
}

func TestResultsCacheMetrics(t *testing.T) {
	f := newCacheFixture(t, synth(nil))
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	h := ResultsCache(testConfig().ResultsCache, ResultsCacheDeps{Cache: f.cache, Now: func() time.Time { return f.clock }, Parser: defaultParser(), Metrics: m})(synth(nil))
	ctx := tenant.WithTenant(context.Background(), "a")
	for range 2 {
		_, err := h.Do(ctx, &Request{Query: "up", Start: 10 * day, End: 10*day + hour, Step: minute})
		require.NoError(t, err)
	}
	require.Equal(t, 1.0, testutil.ToFloat64(m.CacheDownstreamRequests))
	_, err := h.Do(context.Background(), &Request{Query: "up", Start: 10 * day, End: 10*day + hour, Step: minute})
	require.NoError(t, err)
	require.Equal(t, 1.0, testutil.ToFloat64(m.CacheDownstreamRequests), "without a tenant the cache is bypassed")
}
