package querysharding

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/neocortex-metrics/neocortex/pkg/frontend/queryrange"
)

// BenchmarkQuery answers queries over equivalenceData whole and in shards,
// the engine running in the benchmark's process: the shards' extra cost
// (parsing, selecting and evaluating n times, merging) without the
// parallelism of several queriers.
func BenchmarkQuery(b *testing.B) {
	down := engineHandler(equivalenceData(b))
	for _, q := range []string{
		`sum by (job) (rate(requests_total[5m]))`,
		`avg(queue_depth)`,
		`topk(3, load)`,
	} {
		for _, n := range []int{0, 4, 16} {
			h := down
			if n > 0 {
				h = Middleware(Config{Enabled: true, TotalShards: n, MaxShardedQueries: n}, NewMetrics(prometheus.NewRegistry()), slog.New(slog.DiscardHandler))(down)
			}
			b.Run(fmt.Sprintf("%s/shards=%d", q, n), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := h.Do(context.Background(), testRequest(q)); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkMerge merges shard answers of groups series over 241 steps
// (4h at 1m), each shard answering for every group (for topk by job, with
// its k+1 = 6 best series of each group): the merge's own cost, which the
// unsharded query does not pay.
func BenchmarkMerge(b *testing.B) {
	const steps = 241
	g := grid{start: 0, step: 60_000, n: steps}
	for _, tc := range []struct {
		op     parser.ItemType
		groups int
	}{{parser.SUM, 10}, {parser.SUM, 1000}, {parser.MAX, 1000}, {parser.TOPK, 100}} {
		for _, n := range []int{4, 16} {
			pl := &plan{op: tc.op, k: 5, grouping: []string{"job"}}
			rng := rand.New(rand.NewPCG(1, 2))
			shards := make([]*queryrange.Response, n)
			for s := range shards {
				var m model.Matrix
				series := tc.groups
				if tc.op == parser.TOPK {
					series *= int(pl.k + 1)
				}
				for si := range series {
					ss := &model.SampleStream{Metric: model.Metric{"job": model.LabelValue(fmt.Sprintf("job-%d", si%tc.groups)), "instance": model.LabelValue(fmt.Sprintf("i-%05d", si))}}
					if tc.op == parser.TOPK { // each shard holds its own series
						ss.Metric["shard"] = model.LabelValue(fmt.Sprint(s))
					}
					for i := range steps {
						ss.Values = append(ss.Values, model.SamplePair{Timestamp: model.Time(int64(i) * g.step), Value: model.SampleValue(rng.Float64())})
					}
					m = append(m, ss)
				}
				shards[s] = matrixResponse(m...)
			}
			points := 0
			for _, r := range shards {
				points += len(r.Data.Result) * steps
			}
			b.Run(fmt.Sprintf("%s/groups=%d/shards=%d", tc.op, tc.groups, n), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := pl.merge(g, [][]*queryrange.Response{shards}); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(points), "ns/point")
			})
		}
	}
}
