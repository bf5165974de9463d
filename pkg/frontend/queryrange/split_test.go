package queryrange

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/require"
)

func TestSplitRequest(t *testing.T) {
	rows := []struct {
		name             string
		start, end, step int64
		interval         int64
		want             [][2]int64
	}{
		{"within one interval", 10, 50, 10, 100, [][2]int64{{10, 50}}},
		{"step divides the interval", 0, 250, 10, 100, [][2]int64{{0, 90}, {100, 190}, {200, 250}}},
		{"step does not divide the interval", 5, 260, 30, 100, [][2]int64{{5, 95}, {125, 185}, {215, 245}}},
		{"end between evaluation timestamps", 0, 265, 30, 100, [][2]int64{{0, 90}, {120, 180}, {210, 240}}},
		{"step above the interval", 0, 1000, 250, 100, [][2]int64{{0, 0}, {250, 250}, {500, 500}, {750, 750}, {1000, 1000}}},
		{"a point on each boundary", 100, 300, 100, 100, [][2]int64{{100, 100}, {200, 200}, {300, 300}}},
		{"one point", 42, 42, 7, 100, [][2]int64{{42, 42}}},
		{"negative times", -150, 40, 20, 100, [][2]int64{{-150, -110}, {-90, -10}, {10, 30}}},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			r := &Request{Query: "q", Start: row.start, End: row.end, Step: row.step}
			parts := splitRequest(r, row.interval)
			require.Equal(t, row.want, ranges(parts))

			// The parts hold every evaluation timestamp of r once, each
			// part within one interval.
			var want, got []int64
			for ts := r.Start; ts <= r.End; ts += r.Step {
				want = append(want, ts)
			}
			for _, p := range parts {
				require.Equal(t, floorTo(p.Start, row.interval), floorTo(p.End, row.interval))
				require.Equal(t, "q", p.Query)
				for ts := p.Start; ts <= p.End; ts += p.Step {
					got = append(got, ts)
				}
			}
			require.Equal(t, want, got)
		})
	}
}

func TestStepAlign(t *testing.T) {
	rows := []struct {
		name                   string
		start, end, step       int64
		wantStart, wantEnd     int64
		wantSameRequestPointer bool
	}{
		{"aligned", 60, 120, 30, 60, 120, true},
		{"unaligned", 61, 149, 30, 60, 120, false},
		{"negative", -61, -1, 30, -90, -30, false},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			in := &Request{Start: row.start, End: row.end, Step: row.step}
			var got *Request
			_, err := StepAlign()(HandlerFunc(func(_ context.Context, r *Request) (*Response, error) {
				got = r
				return nil, nil
			})).Do(context.Background(), in)
			require.NoError(t, err)
			require.Equal(t, [2]int64{row.wantStart, row.wantEnd}, [2]int64{got.Start, got.End})
			require.Equal(t, row.wantSameRequestPointer, got == in)
			require.Equal(t, [2]int64{row.start, row.end}, [2]int64{in.Start, in.End}, "the caller's request is not changed")
		})
	}
}

func TestPinRange(t *testing.T) {
	r := &Request{Start: 90061001, End: 180122002, Step: 15000} // 1d1h1m1.001s to 2d2h2m2.002s
	rows := []struct {
		query   string
		want    string
		changed bool
	}{
		{`rate(x[5m] offset 1h @ 100)`, `rate(x[5m] @ 100.000 offset 1h)`, false},
		{`x @ start()`, `x @ 90061.001`, true},
		{`sum(rate(x{a="b"}[5m] @ end()))`, `sum(rate(x{a="b"}[5m] @ 180122.002))`, true},
		{`max_over_time(rate(x[5m])[1h:1m] @ start() offset 5m)`, `max_over_time(rate(x[5m])[1h:1m] @ 90061.001 offset 5m)`, true},
		{`x - start()`, `x - 90061.001`, true},
		{`x > end() - range() + step()`, `x > 180122.002 - 90061.001 + 15`, true},
		{`rate(x[range()])`, `rate(x[1d1h1m1s1ms])`, true},
		{`rate(x[min_of(range(), 1h)] offset step())`, `rate(x[min_of(1d1h1m1s1ms, 1h)] offset step())`, true},
		{`label_replace(x, "a", "b", "c", "d") and on () vector(1)`, `label_replace(x, "a", "b", "c", "d") and on () vector(1)`, false},
	}
	p := parser.NewParser(parser.Options{EnableExperimentalFunctions: true})
	for _, row := range rows {
		t.Run(row.query, func(t *testing.T) {
			expr, err := p.ParseExpr(row.query)
			require.NoError(t, err)
			expr, changed, err := pinRange(expr, r)
			require.NoError(t, err)
			require.Equal(t, row.changed, changed)
			require.Equal(t, row.want, expr.String())
			_, err = p.ParseExpr(expr.String())
			require.NoError(t, err)
		})
	}

	t.Run("negative start() in parentheses", func(t *testing.T) {
		expr, err := p.ParseExpr(`start() ^ 2`)
		require.NoError(t, err)
		expr, _, err = pinRange(expr, &Request{Start: -5000, End: 0, Step: 1000})
		require.NoError(t, err)
		require.Equal(t, `(-5) ^ 2`, expr.String())
	})

	t.Run("one point: step() is 0 as for the whole request", func(t *testing.T) {
		expr, err := p.ParseExpr(`step()`)
		require.NoError(t, err)
		expr, _, err = pinRange(expr, &Request{Start: 5000, End: 5000, Step: 1000})
		require.NoError(t, err)
		require.Equal(t, `0`, expr.String())
	})
}

func TestSplitByIntervalSendsOnWhole(t *testing.T) {
	rows := []struct{ name, query string }{
		{"does not parse", `sum(rate(x[5m])`},
		{"experimental function the parser does not allow", `x @ start() + start()`},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			rec := &recorder{next: HandlerFunc(func(context.Context, *Request) (*Response, error) {
				return &Response{Status: "success", Data: Data{ResultType: model.ValMatrix}}, nil
			})}
			r := &Request{Query: row.query, Start: 0, End: 3 * day, Step: hour}
			_, err := SplitByInterval(24*time.Hour, 4, defaultParser(), NewMetrics(prometheus.NewRegistry()))(rec).Do(context.Background(), r)
			require.NoError(t, err)
			require.Equal(t, []*Request{r}, rec.take())
		})
	}
}

func TestSplitByIntervalParallelism(t *testing.T) {
	const parallelism = 3
	var inFlight, most atomic.Int32
	release := make(chan struct{})
	h := HandlerFunc(func(context.Context, *Request) (*Response, error) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		<-release
		return &Response{Status: "success", Data: Data{ResultType: model.ValMatrix}}, nil
	})
	m := NewMetrics(prometheus.NewRegistry())
	done := make(chan error)
	go func() {
		_, err := SplitByInterval(24*time.Hour, parallelism, defaultParser(), m)(h).Do(context.Background(), &Request{Query: "up", Start: 0, End: 10 * day, Step: hour})
		done <- err
	}()
	require.Eventually(t, func() bool { return inFlight.Load() == parallelism }, 5*time.Second, time.Millisecond)
	close(release)
	require.NoError(t, <-done)
	require.Equal(t, int32(parallelism), most.Load())
	require.Equal(t, 11.0, testutil.ToFloat64(m.SplitQueries))
}

func TestSplitByIntervalFirstErrorCancelsTheRest(t *testing.T) {
	boom := &HTTPError{Code: 422, Body: []byte("boom")}
	var mu sync.Mutex
	var canceled int
	var others sync.WaitGroup
	others.Add(3)
	h := HandlerFunc(func(ctx context.Context, r *Request) (*Response, error) {
		if r.Start == 2*day {
			others.Wait() // the three other first parts are in flight
			return nil, boom
		}
		others.Done()
		<-ctx.Done()
		mu.Lock()
		canceled++
		mu.Unlock()
		return nil, ctx.Err()
	})
	_, err := SplitByInterval(24*time.Hour, 4, defaultParser(), NewMetrics(prometheus.NewRegistry()))(h).Do(context.Background(), &Request{Query: "up", Start: 0, End: 10 * day, Step: hour})
	require.Same(t, boom, err)
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, 3, canceled, "the parts in flight are canceled, the rest never sent")
}

func TestMergeResponses(t *testing.T) {
	s := func(name string, ts ...int64) *model.SampleStream {
		ss := &model.SampleStream{Metric: model.Metric{"n": model.LabelValue(name)}}
		for _, t := range ts {
			ss.Values = append(ss.Values, model.SamplePair{Timestamp: model.Time(t), Value: model.SampleValue(t)})
		}
		return ss
	}
	resp := func(warnings []string, ss ...*model.SampleStream) *Response {
		return &Response{Status: "success", Data: Data{ResultType: model.ValMatrix, Result: ss}, Warnings: warnings}
	}
	got := must[*Response](t)(mergeResponses([]*Response{
		resp([]string{"w1"}, s("b", 1, 2), s("a", 1)),
		resp([]string{"w2", "w1"}, s("c", 3), s("b", 2, 3, 4)),
		resp(nil, s("a", 5)),
	}))
	require.Equal(t, resp([]string{"w1", "w2"}, s("a", 1, 5), s("b", 1, 2, 3, 4), s("c", 3)), got)

	// Prometheus's label order: name, then value, then fewer labels first.
	got = must[*Response](t)(mergeResponses([]*Response{
		resp(nil, &model.SampleStream{Metric: model.Metric{"a": "1", "b": "2"}}, &model.SampleStream{Metric: model.Metric{"a": "1"}}),
		resp(nil, &model.SampleStream{Metric: model.Metric{"a": "0", "c": "0"}}, &model.SampleStream{Metric: model.Metric{"b": "0"}}),
	}))
	var order []model.Metric
	for _, ss := range got.Data.Result {
		order = append(order, ss.Metric)
	}
	require.Equal(t, []model.Metric{{"a": "0", "c": "0"}, {"a": "1"}, {"a": "1", "b": "2"}, {"b": "0"}}, order)
}
