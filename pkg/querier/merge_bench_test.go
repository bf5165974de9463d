package querier

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
)

const (
	mergeBenchSamples         = 240 // per series: 1h at 15s
	mergeBenchSamplesPerChunk = 120
	mergeBenchStepMs          = 15_000
	mergeBenchStartMs         = 1_700_000_000_000
)

// mergeBenchReplicaResults builds what Select holds after fetching from
// every replica: per replica, the same n series sorted by labels, each a
// counter of mergeBenchSamples samples in XOR chunks of
// mergeBenchSamplesPerChunk. Every replica decodes its own copy of the chunk
// bytes, as queryIngester does.
func mergeBenchReplicaResults(b *testing.B, replicas, n int) []seriesList {
	b.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	out := make([]seriesList, replicas)
	for i := range n {
		lset := labels.FromStrings("__name__", "bench_merge_total", "job", fmt.Sprintf("job-%d", i%10), "series", fmt.Sprintf("%06d", i))
		var encoded [][]byte
		var bounds [][2]int64
		v := float64(rng.IntN(1000))
		for c := 0; c < mergeBenchSamples/mergeBenchSamplesPerChunk; c++ {
			chk := chunkenc.NewXORChunk()
			app, err := chk.Appender()
			if err != nil {
				b.Fatal(err)
			}
			first := int64(c * mergeBenchSamplesPerChunk)
			for s := first; s < first+mergeBenchSamplesPerChunk; s++ {
				v += float64(rng.IntN(100))
				app.Append(0, mergeBenchStartMs+s*mergeBenchStepMs, v)
			}
			encoded = append(encoded, chk.Bytes())
			bounds = append(bounds, [2]int64{mergeBenchStartMs + first*mergeBenchStepMs, mergeBenchStartMs + (first+mergeBenchSamplesPerChunk-1)*mergeBenchStepMs})
		}
		for r := range out {
			metas := make([]chunks.Meta, 0, len(encoded))
			for c, data := range encoded {
				chk, err := chunkenc.FromData(chunkenc.EncXOR, append([]byte(nil), data...))
				if err != nil {
					b.Fatal(err)
				}
				metas = append(metas, chunks.Meta{MinTime: bounds[c][0], MaxTime: bounds[c][1], Chunk: chk})
			}
			out[r].add(newFetchedSeries(lset, metas))
		}
	}
	return out
}

// mergeReplicas is the merge at the end of ingesterQuerier.Select.
func mergeReplicas(results []seriesList) storage.SeriesSet {
	sets := make([]storage.SeriesSet, 0, len(results))
	for _, r := range results {
		sets = append(sets, newFetchedSeriesSet(r))
	}
	return storage.NewMergeSeriesSet(sets, 0, storage.ChainedSeriesMerge)
}

// BenchmarkMergeDedup measures merging replicas' identical answers into
// one sample per timestamp and reading every merged sample, as PromQL does
// after the querier's Select; with one replica, just the reading.
func BenchmarkMergeDedup(b *testing.B) {
	for _, c := range []struct{ replicas, n int }{{1, 10000}, {3, 1000}, {3, 10000}} {
		n := c.n
		b.Run(fmt.Sprintf("replicas=%d/series=%d", c.replicas, n), func(b *testing.B) {
			results := mergeBenchReplicaResults(b, c.replicas, n)
			var (
				it   chunkenc.Iterator
				sink float64
			)
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			mallocs := ms.Mallocs
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				set := mergeReplicas(results)
				gotSeries, gotSamples := 0, 0
				for set.Next() {
					gotSeries++
					it = set.At().Iterator(it)
					prev := int64(-1)
					for it.Next() != chunkenc.ValNone {
						t, v := it.At()
						if t <= prev {
							b.Fatalf("series %d: sample at %d after %d", gotSeries, t, prev)
						}
						prev = t
						sink += v
						gotSamples++
					}
					if err := it.Err(); err != nil {
						b.Fatal(err)
					}
				}
				if err := set.Err(); err != nil {
					b.Fatal(err)
				}
				if gotSeries != n || gotSamples != n*mergeBenchSamples {
					b.Fatalf("merged %d series and %d samples, want %d and %d", gotSeries, gotSamples, n, n*mergeBenchSamples)
				}
			}
			b.StopTimer()
			runtime.ReadMemStats(&ms)
			if sink == 0 {
				b.Fatal("no samples read")
			}
			samples := float64(b.N * n * mergeBenchSamples)
			el := b.Elapsed()
			b.ReportMetric(samples/el.Seconds(), "samples/s")
			b.ReportMetric(float64(el.Nanoseconds())/samples, "ns/sample")
			b.ReportMetric(float64(ms.Mallocs-mallocs)/samples, "allocs/sample")
		})
	}
}
