package querysharding

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/neocortex-metrics/neocortex/pkg/frontend/queryrange"
	"github.com/neocortex-metrics/neocortex/pkg/querier"
)

// pts are a series' values at steps 0, 1, 2… of mergeGrid; nil is no value.
type pts []*float64

func v(f float64) *float64 { return &f }

var mergeGrid = grid{start: 1000, step: 10, n: 3}

func stream(metric string, values pts) *model.SampleStream {
	m := model.Metric{}
	for _, kv := range strings.Split(metric, ",") {
		if k, val, ok := strings.Cut(kv, "="); ok {
			m[model.LabelName(k)] = model.LabelValue(val)
		}
	}
	s := &model.SampleStream{Metric: m}
	for i, p := range values {
		if p != nil {
			s.Values = append(s.Values, model.SamplePair{Timestamp: model.Time(mergeGrid.start + int64(i)*mergeGrid.step), Value: model.SampleValue(*p)})
		}
	}
	return s
}

func matrixResponse(ss ...*model.SampleStream) *queryrange.Response {
	return &queryrange.Response{Status: "success", Data: queryrange.Data{ResultType: model.ValMatrix, Result: model.Matrix(ss)}}
}

// render is a matrix as `labels: v v v`, one line per series, "_" for no value.
func render(m model.Matrix) string {
	var b strings.Builder
	for _, s := range m {
		b.WriteString(s.Metric.String())
		b.WriteString(":")
		j := 0
		for i := range mergeGrid.n {
			t := model.Time(mergeGrid.start + int64(i)*mergeGrid.step)
			if j < len(s.Values) && s.Values[j].Timestamp == t {
				fmt.Fprintf(&b, " %s", s.Values[j].Value)
				j++
			} else {
				b.WriteString(" _")
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

func TestMerge(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	negZero := math.Copysign(0, -1)
	for _, tc := range []struct {
		name     string
		pl       plan
		shards   [][]*queryrange.Response // by part, by shard
		want     string
		fallback string
	}{
		{
			name: "sum: missing points, NaN, opposite infinities",
			pl:   plan{op: parser.SUM},
			shards: [][]*queryrange.Response{{
				matrixResponse(stream("job=a", pts{v(1), nil, v(inf)}), stream("job=b", pts{v(nan), v(2), nil})),
				matrixResponse(stream("job=a", pts{v(2), nil, v(-inf)}), stream("job=c", pts{nil, nil, v(3)})),
			}},
			want: "{job=\"a\"}: 3 _ NaN\n{job=\"b\"}: NaN 2 _\n{job=\"c\"}: _ _ 3\n",
		},
		{
			name: "sum never answers -0",
			pl:   plan{op: parser.SUM},
			shards: [][]*queryrange.Response{{
				matrixResponse(stream("", pts{v(negZero), v(negZero), nil})),
				matrixResponse(stream("", pts{v(negZero), nil, nil})),
			}},
			want: "{}: 0 0 _\n",
		},
		{
			name: "min: NaN loses to any number",
			pl:   plan{op: parser.MIN},
			shards: [][]*queryrange.Response{{
				matrixResponse(stream("", pts{v(nan), v(5), v(nan)})),
				matrixResponse(stream("", pts{v(3), v(nan), v(nan)})),
			}},
			want: "{}: 3 5 NaN\n",
		},
		{
			name: "max",
			pl:   plan{op: parser.MAX},
			shards: [][]*queryrange.Response{{
				matrixResponse(stream("", pts{v(-inf), v(5), v(negZero)})),
				matrixResponse(stream("", pts{v(-1), v(7), v(-3)})),
			}},
			want: "{}: -1 7 -0\n",
		},
		{
			name: "max: +0 and -0 are a tie",
			pl:   plan{op: parser.MAX},
			shards: [][]*queryrange.Response{{
				matrixResponse(stream("", pts{v(0), nil, nil})),
				matrixResponse(stream("", pts{v(negZero), nil, nil})),
			}},
			fallback: reasonTies,
		},
		{
			name: "count and group",
			pl:   plan{op: parser.COUNT},
			shards: [][]*queryrange.Response{{
				matrixResponse(stream("job=a", pts{v(2), v(1), nil})),
				matrixResponse(stream("job=a", pts{v(3), nil, nil})),
			}},
			want: "{job=\"a\"}: 5 1 _\n",
		},
		{
			name: "group",
			pl:   plan{op: parser.GROUP},
			shards: [][]*queryrange.Response{{
				matrixResponse(stream("job=a", pts{v(1), nil, nil})),
				matrixResponse(stream("job=a", pts{v(1), v(1), nil})),
			}},
			want: "{job=\"a\"}: 1 1 _\n",
		},
		{
			name: "avg: sums over counts",
			pl:   plan{op: parser.AVG},
			shards: [][]*queryrange.Response{
				{matrixResponse(stream("", pts{v(3), v(negZero), v(inf)})), matrixResponse(stream("", pts{v(4), nil, v(1)}))},
				{matrixResponse(stream("", pts{v(2), v(1), v(1)})), matrixResponse(stream("", pts{v(2), nil, v(1)}))},
			},
			want: "{}: 1.75 0 +Inf\n",
		},
		{
			name: "topk: the k best of the shards' k+1",
			pl:   plan{op: parser.TOPK, k: 2},
			shards: [][]*queryrange.Response{{
				matrixResponse(stream("i=1", pts{v(9), v(nan), nil}), stream("i=2", pts{v(5), v(1), v(3)}), stream("i=3", pts{v(1), nil, nil})),
				matrixResponse(stream("i=4", pts{v(7), v(2), nil}), stream("i=5", pts{nil, v(nan), v(nan)})),
			}},
			want: "{i=\"1\"}: 9 _ _\n{i=\"2\"}: _ 1 3\n{i=\"4\"}: 7 2 _\n{i=\"5\"}: _ _ NaN\n",
		},
		{
			name: "bottomk by group",
			pl:   plan{op: parser.BOTTOMK, k: 1, grouping: []string{"job"}},
			shards: [][]*queryrange.Response{{
				matrixResponse(stream("job=a,i=1", pts{v(9), nil, nil}), stream("job=b,i=2", pts{v(5), nil, nil})),
				matrixResponse(stream("job=a,i=3", pts{v(7), nil, nil}), stream("job=b,i=4", pts{v(nan), nil, nil})),
			}},
			want: "{i=\"2\", job=\"b\"}: 5 _ _\n{i=\"3\", job=\"a\"}: 7 _ _\n",
		},
		{
			name: "topk without: the metric name is not part of the group",
			pl:   plan{op: parser.TOPK, k: 1, without: true, grouping: []string{"i"}, withoutNames: []string{"__name__", "i"}},
			shards: [][]*queryrange.Response{{
				matrixResponse(stream("__name__=x,job=a,i=1", pts{v(1), nil, nil})),
				matrixResponse(stream("__name__=y,job=a,i=2", pts{v(2), nil, nil})),
			}},
			want: "y{i=\"2\", job=\"a\"}: 2 _ _\n",
		},
		{
			name: "topk: a tie for the k-th place",
			pl:   plan{op: parser.TOPK, k: 2},
			shards: [][]*queryrange.Response{{
				matrixResponse(stream("i=1", pts{v(9), nil, nil}), stream("i=2", pts{v(5), nil, nil})),
				matrixResponse(stream("i=3", pts{v(5), nil, nil})),
			}},
			fallback: reasonTies,
		},
		{
			name: "topk: NaNs tie",
			pl:   plan{op: parser.TOPK, k: 1},
			shards: [][]*queryrange.Response{{
				matrixResponse(stream("i=1", pts{v(nan), nil, nil})),
				matrixResponse(stream("i=3", pts{v(nan), nil, nil})),
			}},
			fallback: reasonTies,
		},
		{
			name:     "a step off the grid",
			pl:       plan{op: parser.SUM},
			shards:   [][]*queryrange.Response{{matrixResponse(&model.SampleStream{Metric: model.Metric{}, Values: []model.SamplePair{{Timestamp: 1005, Value: 1}}})}},
			fallback: reasonUnexpected,
		},
		{
			name:     "native histograms",
			pl:       plan{op: parser.COUNT},
			shards:   [][]*queryrange.Response{{matrixResponse(&model.SampleStream{Metric: model.Metric{}, Histograms: []model.SampleHistogramPair{{Timestamp: 1000, Histogram: &model.SampleHistogram{}}}})}},
			fallback: reasonHistograms,
		},
		{
			name: "a group one shard dropped for mixing floats and histograms",
			pl:   plan{op: parser.SUM},
			shards: [][]*queryrange.Response{{
				{Status: "success", Data: queryrange.Data{ResultType: model.ValMatrix, Result: model.Matrix{}}, Warnings: []string{"PromQL warning: encountered a mix of histograms and floats for aggregation (1:5)"}},
				matrixResponse(stream("", pts{v(1), nil, nil})),
			}},
			fallback: reasonHistograms,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.pl.merge(mergeGrid, tc.shards)
			if tc.fallback != "" {
				reason, ok := isFallback(err)
				require.True(t, ok, "%v", err)
				require.Equal(t, tc.fallback, reason)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, render(got))

			// The same answers as queriers send them, decoded lazily, with
			// Data.Result poisoned: merge reads them through Result.
			lazy := make([][]*queryrange.Response, len(tc.shards))
			for i, part := range tc.shards {
				for _, r := range part {
					lazy[i] = append(lazy[i], lazyResponse(t, r))
				}
			}
			got, err = tc.pl.merge(mergeGrid, lazy)
			require.NoError(t, err)
			require.Equal(t, tc.want, render(got))
		})
	}
}

// lazyResponse is r as the frontend decodes a querier's answer: with its
// series undecoded, and Data.Result poisoned.
func lazyResponse(t *testing.T, r *queryrange.Response) *queryrange.Response {
	body, err := queryrange.EncodeResponse(r)
	require.NoError(t, err)
	got, err := queryrange.DecodeResponse(&http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(bytes.NewReader(body))})
	require.NoError(t, err)
	if len(r.Data.Result) > 0 {
		got.Data.Result = model.Matrix{{Metric: model.Metric{"poison": "read without Result"}}}
	}
	return got
}

func TestAnnotationsAreMergedAndCut(t *testing.T) {
	pl, reason := newPlan(parser.NewParser(parser.Options{}), "max(\n  rate(a[5m]))", 2)
	require.Empty(t, reason)
	shards := pl.parts[0].shards
	var infos annotationSet
	infos.add(&shards[0], "max(\n  rate(a[5m]))", []string{"PromQL info: not a counter: \"a\" (2:8)", "PromQL info: x0 (1:1)"}, infosOmitted)
	infos.add(&shards[1], "max(\n  rate(a[5m]))", []string{"PromQL info: not a counter: \"a\" (2:8)"}, infosOmitted)
	require.Equal(t, []string{"PromQL info: not a counter: \"a\" (2:8)", "PromQL info: x0 (1:1)"}, infos.lines(infosOmitted))

	var many annotationSet
	var lines []string
	for i := range 10 {
		lines = append(lines, fmt.Sprintf("PromQL warning: w%d", i))
	}
	many.add(&shards[0], "", append(lines, "3 more warning annotations omitted"), warningsOmitted)
	many.add(&shards[1], "", []string{"PromQL warning: w10"}, warningsOmitted)
	got := many.lines(warningsOmitted)
	require.Len(t, got, 11)
	require.Equal(t, "3 more warning annotations omitted", got[10])
}

func TestShardFailureFailsTheQuery(t *testing.T) {
	defer goleak.VerifyNone(t)
	boom := errors.New("boom")
	var inFlight, most atomic.Int64
	down := queryrange.HandlerFunc(func(ctx context.Context, r *queryrange.Request) (*queryrange.Response, error) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		assert.True(t, r.Options.ShardingDisabled)
		if strings.Contains(r.Query, `"3_of_8"`) {
			return nil, boom
		}
		select {
		case <-ctx.Done(): // the failure cancels the others
			return nil, ctx.Err()
		case <-time.After(10 * time.Second):
			return matrixResponse(), nil
		}
	})
	metrics := NewMetrics(prometheus.NewRegistry())
	h := Middleware(Config{Enabled: true, TotalShards: 8, MaxShardedQueries: 3}, metrics, slog.New(slog.DiscardHandler))(down)
	start := time.Now()
	_, err := h.Do(context.Background(), testRequest(`sum(rate(a[5m]))`))
	require.ErrorIs(t, err, boom)
	require.Less(t, time.Since(start), 5*time.Second)
	require.LessOrEqual(t, most.Load(), int64(3))
	require.Zero(t, testutil.ToFloat64(metrics.sharded))
}

func TestShardingSkipped(t *testing.T) {
	var calls atomic.Int64
	down := queryrange.HandlerFunc(func(_ context.Context, r *queryrange.Request) (*queryrange.Response, error) {
		calls.Add(1)
		assert.NotContains(t, r.Query, querier.ShardLabel)
		return matrixResponse(), nil
	})
	for _, tc := range []struct {
		name   string
		cfg    Config
		req    *queryrange.Request
		reason string
	}{
		{"disabled by config", Config{TotalShards: 4, MaxShardedQueries: 4}, testRequest(`sum(a)`), reasonDisabled},
		{"disabled by the request", Config{Enabled: true, TotalShards: 4, MaxShardedQueries: 4}, func() *queryrange.Request {
			r := testRequest(`sum(a)`)
			r.Options.ShardingDisabled = true
			return r
		}(), reasonDisabled},
		{"not shardable", Config{Enabled: true, TotalShards: 4, MaxShardedQueries: 4}, testRequest(`sum(a) / sum(b)`), reasonNotShardable},
		{"unparsable", Config{Enabled: true, TotalShards: 4, MaxShardedQueries: 4}, testRequest(`sum(`), reasonUnparsable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls.Store(0)
			metrics := NewMetrics(prometheus.NewRegistry())
			_, err := Middleware(tc.cfg, metrics, slog.New(slog.DiscardHandler))(down).Do(context.Background(), tc.req)
			require.NoError(t, err)
			require.Equal(t, int64(1), calls.Load())
			require.Equal(t, 1.0, testutil.ToFloat64(metrics.unsharded.WithLabelValues(tc.reason)))
		})
	}
}

func TestConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg Config
		ok  bool
	}{
		{Config{}, true},
		{Config{Enabled: true}, true},
		{Config{Enabled: true, TotalShards: 16, MaxShardedQueries: 16}, true},
		{Config{Enabled: true, TotalShards: 1024, MaxShardedQueries: 1}, true},
		{Config{Enabled: true, TotalShards: 1025}, false},
		{Config{Enabled: true, TotalShards: -1}, false},
		{Config{Enabled: true, TotalShards: 16, MaxShardedQueries: -1}, false},
		{Config{Enabled: false, TotalShards: -1}, true},
	} {
		err := tc.cfg.Validate()
		if tc.ok {
			require.NoError(t, err, "%+v", tc.cfg)
		} else {
			require.Error(t, err, "%+v", tc.cfg)
		}
	}
}

func TestConfigResolve(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		cfg                   Config
		localCPUs, queueSlots int
		want                  Config
	}{
		{"off stays off", Config{}, 8, 7, Config{}},
		{"single binary: its CPUs", Config{Enabled: true}, 2, 7, Config{Enabled: true, TotalShards: 2, MaxShardedQueries: 2, shareCPUs: true}},
		{"single binary, more CPUs than queue slots", Config{Enabled: true}, 32, 7, Config{Enabled: true, TotalShards: 32, MaxShardedQueries: 7, shareCPUs: true}},
		{"single binary with one CPU: no sharding", Config{Enabled: true}, 1, 7, Config{TotalShards: 1, MaxShardedQueries: 1}},
		{"separate queriers", Config{Enabled: true}, 0, 7, Config{Enabled: true, TotalShards: 16, MaxShardedQueries: 7}},
		{"separate queriers, a large queue", Config{Enabled: true}, 0, 100, Config{Enabled: true, TotalShards: 16, MaxShardedQueries: 16}},
		{"no queue slot still runs one", Config{Enabled: true, TotalShards: 4}, 0, 0, Config{Enabled: true, TotalShards: 4, MaxShardedQueries: 1}},
		{"explicit values kept", Config{Enabled: true, TotalShards: 3, MaxShardedQueries: 9}, 2, 7, Config{Enabled: true, TotalShards: 3, MaxShardedQueries: 9}},
		{"one explicit shard: no sharding", Config{Enabled: true, TotalShards: 1}, 8, 7, Config{TotalShards: 1, MaxShardedQueries: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, tc.cfg.Resolve(tc.localCPUs, tc.queueSlots))
		})
	}
}

func TestShardsFor(t *testing.T) {
	local := Config{Enabled: true}.Resolve(8, 7)
	separate := Config{Enabled: true}.Resolve(0, 7)
	explicit := Config{Enabled: true, TotalShards: 8}.Resolve(8, 7)
	for _, tc := range []struct {
		name     string
		cfg      Config
		parallel int
		want     int
	}{
		{"local, not split", local, 0, 8},
		{"local, one part", local, 1, 8},
		{"local, two parts share the CPUs", local, 2, 4},
		{"local, three parts", local, 3, 2},
		{"local, parts use every CPU", local, 8, 1},
		{"local, more parts than CPUs", local, 14, 1},
		{"separate queriers: every part all shards", separate, 7, 16},
		{"explicit shards: every part all of them", explicit, 7, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, tc.cfg.ShardsFor(tc.parallel))
		})
	}
}
