package compactor

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"

	"github.com/neocortex-metrics/neocortex/pkg/storage/bucketindex"
)

// realisticSeries returns n series at a 15s scrape interval shaped like
// node and service metrics: 40% integer counters (request counts, rates
// log-uniform in 0.001..50/s), 20% CPU-seconds counters (steps of 10ms),
// 20% byte gauges (random walk in pages), 5% small integer gauges, 5%
// noisy float gauges (temperatures, ratios) and 10% constants (up, *_info),
// with a scrape in 20 off by up to 2ms.
func realisticSeries(n int, mint, maxt int64) []testSeries {
	rng := mrand.New(mrand.NewPCG(1, 2))
	kinds := []string{
		"counter", "counter", "counter", "counter", "counter", "counter", "counter", "counter",
		"cpu", "cpu", "cpu", "cpu", "bytes", "bytes", "bytes", "bytes", "int", "gauge", "const", "const",
	}
	out := make([]testSeries, 0, n)
	for i := range n {
		kind := kinds[i%len(kinds)]
		lbls := labels.FromStrings(
			"__name__", fmt.Sprintf("%s_metric_%d", kind, i%37),
			"job", []string{"node", "api", "db"}[i%3],
			"instance", fmt.Sprintf("10.0.%d.%d:9100", i/250, i%250),
			"series", fmt.Sprint(i),
		)
		s := testSeries{lbls: lbls}
		offset := int64(rng.IntN(15000))
		rate := math.Pow(10, -3+rng.Float64()*4.7) // 0.001 .. 50 per second
		v := 0.0
		switch kind {
		case "bytes":
			v = float64(1e9 + rng.IntN(1e9))
		case "counter", "cpu":
			v = float64(rng.IntN(1e6))
		}
		for t := mint + offset; t < maxt; t += 15000 {
			ts := t
			if rng.IntN(20) == 0 {
				ts += int64(rng.IntN(5)) - 2
			}
			switch kind {
			case "counter":
				v += math.Round(rate * 15 * (0.5 + rng.Float64()))
			case "cpu":
				v = math.Round((v+15*rng.Float64()*0.3)*100) / 100
			case "bytes":
				v += float64(4096 * (rng.IntN(201) - 100))
			case "int":
				v = max(0, v+float64(rng.IntN(5)-2))
			case "gauge":
				v = 20 + rng.NormFloat64()*3
			case "const":
				v = 1
			}
			if ts >= mint && ts < maxt {
				s.samples = append(s.samples, sample{T: ts, V: v})
			}
		}
		out = append(out, s)
	}
	return out
}

// copyBlock copies a local block under a new ULID, as another ingester
// would have cut the same data.
func copyBlock(t testing.TB, src string) string {
	t.Helper()
	id := ulid.MustNew(ulid.Now(), rand.Reader)
	dst := filepath.Join(t.TempDir(), id.String())
	require.NoError(t, filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if info.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(filepath.Join(dst, rel))
		if err != nil {
			return err
		}
		_, err = io.Copy(out, in)
		return errors.Join(err, out.Close())
	}))
	editMeta(t, dst, func(m *tsdb.BlockMeta) { m.ULID, m.Compaction.Sources = id, []ulid.ULID{id} })
	return dst
}

func objectBytes(t testing.TB, bkt objstore.Bucket, prefix string) int64 {
	t.Helper()
	var total int64
	for _, name := range listObjects(t, bkt, prefix) {
		attrs, err := bkt.Attributes(context.Background(), name)
		require.NoError(t, err)
		total += attrs.Size
	}
	return total
}

// TestBytesPerSample measures the bucket bytes per sample of a compacted
// block made from the RF=3 copies of 1000 realistic series over 2h at a 15s
// scrape interval.
func TestBytesPerSample(t *testing.T) {
	if testing.Short() {
		t.Skip("measurement")
	}
	ctx := context.Background()
	bkt := newBucket(t)
	series := realisticSeries(1000, 0, 2*hour)
	samples := 0
	for _, s := range series {
		samples += len(s.samples)
	}
	first := writeBlock(t, 0, 2*hour, series...)
	var sources []ulid.ULID
	for _, dir := range []string{first, copyBlock(t, first), copyBlock(t, first)} {
		sources = append(sources, uploadLocalBlock(t, bkt, "t", dir))
	}
	copyBytes := objectBytes(t, bkt, bucketindex.BlockPath("t", sources[0])+"/")

	comp, _ := newTestCompactor(t, testConfig(t), bkt, nil)
	require.NoError(t, comp.CompactOnce(ctx))
	live := liveBlocks(t, bkt, "t")
	require.Len(t, live, 1)
	require.Equal(t, uint64(samples), live[0].NumSamples, "duplicates removed")
	merged := objectBytes(t, bkt, bucketindex.BlockPath("t", live[0].ID)+"/")

	t.Logf("%d series, %d samples: one ingester's block %d bytes (%.3f bytes/sample); compacted from 3 copies %d bytes (%.3f bytes/sample, %.3f per ingested sample copy)",
		len(series), samples, copyBytes, float64(copyBytes)/float64(samples), merged, float64(merged)/float64(samples), float64(merged)/float64(3*samples))
	require.Less(t, float64(merged)/float64(samples), 3.5)
}
