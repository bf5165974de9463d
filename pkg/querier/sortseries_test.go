package querier

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/grafana/dskit/ring"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/stretchr/testify/require"

	"github.com/neocortex-metrics/neocortex/pkg/tenant"
)

func TestSortParallel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 5, 1023, 2048, 4097, 10_001} {
		for _, workers := range []int{1, 2, 3, 4, 8} {
			t.Run(fmt.Sprintf("n=%d/workers=%d", n, workers), func(t *testing.T) {
				in := make([]int, n)
				for i := range in {
					in[i] = rng.IntN(n/2 + 1) // with duplicates
				}
				want := slices.Clone(in)
				slices.Sort(want)
				got := sortParallel(slices.Clone(in), workers, cmp.Compare[int])
				require.Equal(t, want, got)
			})
		}
	}
}

// TestPresortPlainSelector checks that the querier sorts the unsorted
// answer of the in-process ingester for a plain selector with many series,
// and passes it on as it came otherwise.
func TestPresortPlainSelector(t *testing.T) {
	chk := chunkenc.NewXORChunk()
	app, err := chk.Appender()
	require.NoError(t, err)
	app.Append(0, 1000, 1)
	answer := func(n int) LocalIngester {
		return fakeLocal(func(fn func(labels.Labels, []chunks.Meta) error) error {
			b := labels.NewScratchBuilder(2)
			for i := range n {
				// 0, n-1, 1, n-2, ...: not in label order.
				k := i / 2
				if i%2 == 1 {
					k = n - 1 - i/2
				}
				b.Reset()
				b.Add("__name__", "m")
				b.Add("i", fmt.Sprintf("%06d", k))
				if err := fn(b.Labels(), []chunks.Meta{{MinTime: 1000, MaxTime: 1000, Chunk: chk}}); err != nil {
					return err
				}
			}
			return nil
		})
	}
	for _, tc := range []struct {
		name       string
		series     int
		hints      *storage.SelectHints
		wantSorted bool
	}{
		{name: "plain selector, many series", series: presortMinSeries, hints: &storage.SelectHints{Start: 0, End: 2000}, wantSorted: true},
		{name: "plain selector, few series", series: presortMinSeries - 1, hints: &storage.SelectHints{Start: 0, End: 2000}},
		{name: "in an aggregation", series: presortMinSeries, hints: &storage.SelectHints{Start: 0, End: 2000, Func: "count"}},
		{name: "no hints", series: presortMinSeries},
	} {
		t.Run(tc.name, func(t *testing.T) {
			iq := &IngesterQueryable{Ring: oneInstanceRing{ring.InstanceDesc{Addr: "local", Id: "ingester-1"}}, Local: answer(tc.series)}
			q, err := iq.Querier(0, 2000)
			require.NoError(t, err)
			defer q.Close()
			ss := q.Select(tenant.WithTenant(context.Background(), "t"), false, tc.hints, labels.MustNewMatcher(labels.MatchEqual, "__name__", "m"))
			var got []string
			for ss.Next() {
				got = append(got, ss.At().Labels().Get("i"))
				it := ss.At().Iterator(nil)
				require.Equal(t, chunkenc.ValFloat, it.Next())
				ts, v := it.At()
				require.Equal(t, int64(1000), ts)
				require.Equal(t, 1.0, v)
			}
			require.NoError(t, ss.Err())
			require.Len(t, got, tc.series)
			require.Equal(t, tc.wantSorted, slices.IsSorted(got))
			if !tc.wantSorted {
				require.Equal(t, fmt.Sprintf("%06d", tc.series-1), got[1], "the ingester's order")
			}
		})
	}
}
