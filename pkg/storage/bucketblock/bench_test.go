package bucketblock

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore/providers/filesystem"
)

// benchBlocks are built once per process, in benchDir (removed by
// TestMain).
var (
	benchDir     string
	benchBlocksM sync.Mutex
	benchBlocks  = map[syntheticBlock]benchBlock{}
)

type benchBlock struct {
	bkt       *filesystem.Bucket
	id        ulid.ULID
	indexSize int64
}

// getBenchBlock writes and uploads the block s once.
func getBenchBlock(b *testing.B, s syntheticBlock) benchBlock {
	benchBlocksM.Lock()
	defer benchBlocksM.Unlock()
	if bb, ok := benchBlocks[s]; ok {
		return bb
	}
	if benchDir == "" {
		dir, err := os.MkdirTemp("", "bucketblock-bench-")
		require.NoError(b, err)
		benchDir = dir
		sharedDirs = append(sharedDirs, dir)
	}
	start := time.Now()
	src, err := os.MkdirTemp(benchDir, "src-")
	require.NoError(b, err)
	blockDir := s.write(b, src)
	bdir, err := os.MkdirTemp(benchDir, "bucket-")
	require.NoError(b, err)
	bkt, err := filesystem.NewBucket(bdir)
	require.NoError(b, err)
	id := uploadBlock(b, bkt, blockDir)
	st, err := os.Stat(filepath.Join(blockDir, indexFilename))
	require.NoError(b, err)
	require.NoError(b, os.RemoveAll(src))
	b.Logf("wrote a block of %d series in %s", s.numSeries, time.Since(start).Round(time.Millisecond))
	bb := benchBlock{bkt: bkt, id: id, indexSize: st.Size()}
	benchBlocks[s] = bb
	return bb
}

// BenchmarkSeries selects 10k of the 100k series of a block, with their
// two chunks each, from a filesystem bucket.
func BenchmarkSeries(b *testing.B) {
	bb := getBenchBlock(b, syntheticBlock{numSeries: 100_000, chunksPerSeries: 2})
	ms := []*labels.Matcher{re("__name__", "metric_0[01][0-9]")} // 20 of 200 names.
	logSizes := sync.OnceFunc(func() {
		blk, err := Open(context.Background(), bb.bkt, testTenant, bb.id, b.TempDir(), nil, nil, nil)
		require.NoError(b, err)
		b.Logf("index %d bytes, index-header %d bytes (%.1f%%)", bb.indexSize, blk.IndexHeaderSize(), 100*float64(blk.IndexHeaderSize())/float64(bb.indexSize))
		require.NoError(b, blk.Close())
	})
	logSizes()
	cases := []struct {
		name       string
		cache      bool
		skipChunks bool
	}{
		{"no cache", false, false},
		{"warm cache", true, false},
		{"no cache, skip chunks", false, true},
		{"warm cache, skip chunks", true, true},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			var cache IndexCache
			if c.cache {
				cache = NewInMemoryIndexCache(256<<20, nil)
			}
			m := NewMetrics(prometheus.NewRegistry())
			blk, err := Open(context.Background(), bb.bkt, testTenant, bb.id, b.TempDir(), cache, nil, m)
			require.NoError(b, err)
			defer func() { require.NoError(b, blk.Close()) }()
			query := func() int {
				n := 0
				err := blk.Series(context.Background(), math.MinInt64, math.MaxInt64, c.skipChunks, ms, func(_ labels.Labels, chks []chunks.Meta) error {
					n++
					return nil
				})
				require.NoError(b, err)
				return n
			}
			require.Equal(b, 10_000, query()) // Warms the cache, when there is one.
			before := totalBytesRead(m)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				query()
			}
			b.StopTimer()
			b.ReportMetric(float64(totalBytesRead(m)-before)/float64(b.N), "bucket-B/op")
		})
	}
}

func totalBytesRead(m *Metrics) float64 {
	var sum float64
	for _, k := range []string{kindPostings, kindSeries, kindChunks} {
		sum += testutil.ToFloat64(m.bytesRead.WithLabelValues(k))
	}
	return sum
}

// BenchmarkOpen reopens a block of a million series from its index-header
// and reports the heap an open block holds per million series, and the
// sizes of the index and the index-header.
func BenchmarkOpen(b *testing.B) {
	const numSeries = 1_000_000
	bb := getBenchBlock(b, syntheticBlock{numSeries: numSeries, chunksPerSeries: 1})
	dir := b.TempDir()
	start := time.Now()
	blk, err := Open(context.Background(), bb.bkt, testTenant, bb.id, dir, nil, nil, nil)
	require.NoError(b, err)
	b.Logf("built the index-header in %s", time.Since(start).Round(time.Millisecond))
	headerSize := blk.IndexHeaderSize()
	require.NoError(b, blk.Close())

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	blk, err = Open(context.Background(), bb.bkt, testTenant, bb.id, dir, nil, nil, nil)
	require.NoError(b, err)
	runtime.GC()
	runtime.ReadMemStats(&after)
	heap := float64(after.HeapAlloc) - float64(before.HeapAlloc)
	runtime.KeepAlive(blk)
	require.NoError(b, blk.Close())
	b.Logf("index %d bytes, index-header %d bytes (%.1f%%), heap per open block %.0f bytes per million series",
		bb.indexSize, headerSize, 100*float64(headerSize)/float64(bb.indexSize), heap/numSeries*1e6)

	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		blk, err := Open(context.Background(), bb.bkt, testTenant, bb.id, dir, nil, nil, nil)
		require.NoError(b, err)
		require.NoError(b, blk.Close())
	}
	b.StopTimer()
	b.ReportMetric(heap/numSeries*1e6, "heap-B/Mseries")
	b.ReportMetric(float64(headerSize), "header-B")
	b.ReportMetric(float64(bb.indexSize), "index-B")
}
