package querysharding

import (
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/require"
)

func TestPlan(t *testing.T) {
	p := parser.NewParser(parser.Options{})
	for _, tc := range []struct {
		query  string
		reason string   // empty: shardable
		want   []string // shard 1 of 2, per part
	}{
		{query: `sum(up)`, want: []string{`sum(up{__query_shard__="1_of_2"})`}},
		{query: `sum by (job) (rate(http_requests_total{code="500"}[5m]))`,
			want: []string{`sum by (job) (rate(http_requests_total{__query_shard__="1_of_2",code="500"}[5m]))`}},
		{query: "  SUM without(instance)(\n  {__name__=\"a\", b=~\"c\"} offset 5m\n)",
			want: []string{"  SUM without(instance)(\n  {__query_shard__=\"1_of_2\",__name__=\"a\", b=~\"c\"} offset 5m\n)"}},
		{query: `max(a{} @ end())`, want: []string{`max(a{__query_shard__="1_of_2"} @ end())`}},
		{query: `(min(abs(a) * 2 > bool 3))`, want: []string{`(min(abs(a{__query_shard__="1_of_2"}) * 2 > bool 3))`}},
		{query: `count(max_over_time(rate(a[5m])[1h:1m]))`, want: []string{`count(max_over_time(rate(a{__query_shard__="1_of_2"}[5m])[1h:1m]))`}},
		{query: `group(clamp(a, -time(), 10))`, want: []string{`group(clamp(a{__query_shard__="1_of_2"}, -time(), 10))`}},
		{query: `avg by (job) (a)`, want: []string{`sum by (job) (a{__query_shard__="1_of_2"})`, `count by (job) (a{__query_shard__="1_of_2"})`}},
		{query: `topk(3, quantile_over_time(0.9, a[5m]))`, want: []string{`topk(4, quantile_over_time(0.9, a{__query_shard__="1_of_2"}[5m]))`}},
		{query: `bottomk by (job) ((2.5), -a)`, want: []string{`bottomk by (job) ((3), -a{__query_shard__="1_of_2"})`}},
		{query: `sum({job="x"})`, want: []string{`sum({__query_shard__="1_of_2",job="x"})`}},
		{query: `sum(a # comment
{job="x"})`, want: []string{`sum(a # comment
{__query_shard__="1_of_2",job="x"})`}},

		{query: `sum(`, reason: reasonUnparsable},
		{query: `sum(a{__query_shard__="1_of_2"})`, reason: reasonAlreadySharded},
		{query: `rate(a[5m])`, reason: reasonNotShardable},
		{query: `sum(a) / sum(b)`, reason: reasonNotShardable},
		{query: `sum(sum by (job) (a))`, reason: reasonNotShardable},
		{query: `sum(a * b)`, reason: reasonNotShardable},
		{query: `sum(a * scalar(b))`, reason: reasonNotShardable},
		{query: `sum(a and b)`, reason: reasonNotShardable},
		{query: `quantile(0.9, a)`, reason: reasonNotShardable},
		{query: `stddev(a)`, reason: reasonNotShardable},
		{query: `count_values("v", a)`, reason: reasonNotShardable},
		{query: `topk(scalar(b), a)`, reason: reasonNotShardable},
		{query: `topk(0, a)`, reason: reasonNotShardable},
		{query: `sum(absent(a))`, reason: reasonNotShardable},
		{query: `sum(histogram_quantile(0.9, a))`, reason: reasonNotShardable},
		{query: `sum(label_replace(a, "x", "$1", "y", "(.*)"))`, reason: reasonNotShardable},
		{query: `sum(hour())`, reason: reasonNotShardable},
		{query: `sum(vector(1))`, reason: reasonNotShardable},
		{query: `sum(rate({__name__=~"a|b"}[5m]))`, reason: reasonNotShardable},
		{query: `sum(max_over_time(sum(a)[1h:]))`, reason: reasonNotShardable},
	} {
		t.Run(tc.query, func(t *testing.T) {
			pl, reason := newPlan(p, tc.query, 2)
			require.Equal(t, tc.reason, reason)
			if tc.reason != "" {
				require.Nil(t, pl)
				return
			}
			var got []string
			for _, pt := range pl.parts {
				require.Len(t, pt.shards, 2)
				got = append(got, pt.shards[0].text)
			}
			require.Equal(t, tc.want, got)
		})
	}
}

func TestMapAnnotation(t *testing.T) {
	p := parser.NewParser(parser.Options{})
	q := "avg by (job) (\n  rate(foo[5m])\n)"
	pl, reason := newPlan(p, q, 10)
	require.Empty(t, reason)
	count := &pl.parts[1].shards[9] // count by (job) (\n  rate(foo{__query_shard__="10_of_10"}[5m])\n)
	for _, tc := range []struct{ in, want string }{
		{"PromQL info: metric might not be a counter (2:8)", "PromQL info: metric might not be a counter (2:8)"},
		{"PromQL info: at the aggregation (1:1)", "PromQL info: at the aggregation (1:1)"},
		{"PromQL info: after the keyword (1:7)", "PromQL info: after the keyword (1:5)"},
		{"PromQL info: inside the inserted matcher (2:20)", "PromQL info: inside the inserted matcher (2:11)"},
		{"PromQL info: after the selector (2:42)", "PromQL info: after the selector (2:14)"},
		{"PromQL warning: no position", "PromQL warning: no position"},
		{"PromQL warning: not a position (a:b)", "PromQL warning: not a position (a:b)"},
	} {
		require.Equal(t, tc.want, count.mapAnnotation(q, tc.in), tc.in)
	}
}
