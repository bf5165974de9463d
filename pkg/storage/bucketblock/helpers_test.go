package bucketblock

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/go-kit/log"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/index"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"
)

const testTenant = "tenant-1"

// sample is a float, histogram or float histogram sample.
type sample struct {
	t  int64
	f  float64
	h  *histogram.Histogram
	fh *histogram.FloatHistogram
}

func (s sample) T() int64                      { return s.t }
func (s sample) ST() int64                     { return 0 }
func (s sample) F() float64                    { return s.f }
func (s sample) H() *histogram.Histogram       { return s.h }
func (s sample) FH() *histogram.FloatHistogram { return s.fh }
func (s sample) Copy() chunks.Sample           { return s }
func (s sample) Type() chunkenc.ValueType {
	switch {
	case s.h != nil:
		return chunkenc.ValHistogram
	case s.fh != nil:
		return chunkenc.ValFloatHistogram
	}
	return chunkenc.ValFloat
}

// newFilesystemBucket returns a bucket in a temporary directory.
func newFilesystemBucket(t testing.TB) *filesystem.Bucket {
	bkt, err := filesystem.NewBucket(t.TempDir())
	require.NoError(t, err)
	return bkt
}

// uploadBlock uploads the block in blockDir for testTenant and returns its
// ULID.
func uploadBlock(t testing.TB, bkt objstore.Bucket, blockDir string) ulid.ULID {
	id, err := ulid.Parse(filepath.Base(blockDir))
	require.NoError(t, err)
	require.NoError(t, objstore.UploadDir(context.Background(), log.NewNopLogger(), bkt, blockDir, path.Join(testTenant, id.String())))
	return id
}

// countingBucket counts the reads of the objects of a bucket, by object
// kind (the last element of its name, "chunks" for segments), and can fail
// them.
type countingBucket struct {
	objstore.Bucket

	mtx       sync.Mutex
	getRanges map[string]int
	gets      map[string]int
	attrs     map[string]int
	// failGetRange, when set, fails the range reads of the objects whose
	// name contains it.
	failGetRange string
}

func newCountingBucket(b objstore.Bucket) *countingBucket {
	c := &countingBucket{Bucket: b}
	c.reset()
	return c
}

func (c *countingBucket) reset() {
	c.mtx.Lock()
	defer c.mtx.Unlock()
	c.getRanges, c.gets, c.attrs = map[string]int{}, map[string]int{}, map[string]int{}
}

func objectKind(name string) string {
	if strings.Contains(name, "/chunks/") {
		return "chunks"
	}
	return path.Base(name)
}

func (c *countingBucket) GetRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	c.mtx.Lock()
	c.getRanges[objectKind(name)]++
	fail := c.failGetRange != "" && strings.Contains(name, c.failGetRange)
	c.mtx.Unlock()
	if fail {
		return nil, fmt.Errorf("injected failure reading %s", name)
	}
	return c.Bucket.GetRange(ctx, name, off, length)
}

func (c *countingBucket) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	c.mtx.Lock()
	c.gets[objectKind(name)]++
	c.mtx.Unlock()
	return c.Bucket.Get(ctx, name)
}

func (c *countingBucket) Attributes(ctx context.Context, name string) (objstore.ObjectAttributes, error) {
	c.mtx.Lock()
	c.attrs[objectKind(name)]++
	c.mtx.Unlock()
	return c.Bucket.Attributes(ctx, name)
}

func (c *countingBucket) counts() (getRanges, gets, attrs map[string]int) {
	c.mtx.Lock()
	defer c.mtx.Unlock()
	return maps(c.getRanges), maps(c.gets), maps(c.attrs)
}

func maps(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// testSeries returns the series of the main test block: floats,
// histograms and float histograms under a few metric names, with
// high-cardinality (pod), sparse (env, path) and low-cardinality (job,
// instance) labels, in [mint, mint+2h).
func testSeries(mint int64) []storage.Series {
	const (
		numSeries = 2400
		step      = 40_000
		samples   = 180
	)
	var out []storage.Series
	for i := range numSeries {
		b := labels.NewScratchBuilder(8)
		name := []string{"metric_a", "metric_b", "metric_h", "metric_fh"}[i%4]
		b.Add("__name__", name)
		b.Add("job", fmt.Sprintf("job-%d", i%3))
		b.Add("instance", fmt.Sprintf("inst-%d", i%50))
		b.Add("pod", fmt.Sprintf("pod-%05d", i))
		switch i % 5 {
		case 0:
			b.Add("env", "prod")
		case 1:
			b.Add("env", "dev")
		}
		if i%7 == 0 {
			b.Add("path", []string{"/api/v1", "/api/v2", "/health", "/api/v1/query"}[i/7%4])
		}
		b.Sort()
		n := samples
		start := mint
		switch i % 11 {
		case 3: // Only in the first half hour.
			n = 45
		case 4: // Only in the last hour.
			start += samples / 2 * step
			n = samples / 2
		}
		ss := make([]chunks.Sample, 0, n)
		for j := range n {
			t := start + int64(j)*step
			switch name {
			case "metric_h":
				ss = append(ss, sample{t: t, h: histogramFor(i, j)})
			case "metric_fh":
				ss = append(ss, sample{t: t, fh: histogramFor(i, j).ToFloat(nil)})
			default:
				ss = append(ss, sample{t: t, f: float64(i*1000+j) / 7})
			}
		}
		out = append(out, storage.NewListSeries(b.Labels(), ss))
	}
	return out
}

func histogramFor(i, j int) *histogram.Histogram {
	h := &histogram.Histogram{
		Count:         uint64(10 + i%5 + j),
		ZeroCount:     2,
		ZeroThreshold: 0.001,
		Sum:           float64(i + j),
		Schema:        1,
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}, {Offset: 1, Length: 2}},
		PositiveBuckets: []int64{
			int64(1 + j%3), 1, -1, 0,
		},
		NegativeSpans:   []histogram.Span{{Offset: 0, Length: 1}},
		NegativeBuckets: []int64{int64(j%4 + 1)},
	}
	h.Count = h.ZeroCount
	var abs int64
	for _, d := range h.PositiveBuckets {
		abs += d
		h.Count += uint64(abs)
	}
	h.Count += uint64(h.NegativeBuckets[0])
	return h
}

// syntheticBlock describes a block written directly with the index and
// chunks writers, faster than through a TSDB head: series i has the labels
// syntheticLabels(i) and chunksPerSeries XOR chunks of 120 samples.
type syntheticBlock struct {
	numSeries       int
	chunksPerSeries int
	segmentSize     int64
	mint            int64
}

// syntheticSymbols is the symbol table of all synthetic labels: with
// -tags dedupelabels, labels.FromStrings would make one per series.
var syntheticSymbols = labels.NewSymbolTable()

func syntheticLabels(i int) labels.Labels {
	b := labels.NewScratchBuilderWithSymbolTable(syntheticSymbols, 5)
	b.Add("__name__", fmt.Sprintf("metric_%03d", i%200))
	b.Add("instance", fmt.Sprintf("host-%04d", (i/200)%5000))
	b.Add("job", fmt.Sprintf("job-%d", i%10))
	b.Add("pod", fmt.Sprintf("pod-%07d", i/4))
	b.Add("zone", fmt.Sprintf("zone-%d", i%3))
	return b.Labels()
}

const syntheticStep = 15_000

// write creates the block under dir and returns its directory.
func (s syntheticBlock) write(t testing.TB, dir string) string {
	id := ulid.MustNew(ulid.Now(), nil)
	blockDir := filepath.Join(dir, id.String())
	lsets := make([]labels.Labels, s.numSeries)
	symbols := map[string]struct{}{}
	for i := range lsets {
		lsets[i] = syntheticLabels(i)
		lsets[i].Range(func(l labels.Label) {
			symbols[l.Name] = struct{}{}
			symbols[l.Value] = struct{}{}
		})
	}
	slices.SortFunc(lsets, labels.Compare)
	lsets = slices.CompactFunc(lsets, labels.Equal)

	cw, err := chunks.NewWriter(filepath.Join(blockDir, chunksDirname), chunks.WithSegmentSize(s.segmentSize))
	require.NoError(t, err)
	iw, err := index.NewWriter(context.Background(), filepath.Join(blockDir, indexFilename))
	require.NoError(t, err)
	syms := make([]string, 0, len(symbols))
	for sym := range symbols {
		syms = append(syms, sym)
	}
	slices.Sort(syms)
	for _, sym := range syms {
		require.NoError(t, iw.AddSymbol(sym))
	}
	var numChunks, numSamples uint64
	maxt := s.mint
	for ref, lset := range lsets {
		metas := make([]chunks.Meta, s.chunksPerSeries)
		for c := range metas {
			xc := chunkenc.NewXORChunk()
			app, err := xc.Appender()
			require.NoError(t, err)
			mint := s.mint + int64(c*120*syntheticStep)
			for j := range 120 {
				app.Append(0, mint+int64(j*syntheticStep), float64(ref*j+c))
			}
			metas[c] = chunks.Meta{Chunk: xc, MinTime: mint, MaxTime: mint + 119*syntheticStep}
			maxt = max(maxt, metas[c].MaxTime)
		}
		require.NoError(t, cw.WriteChunks(metas...))
		require.NoError(t, iw.AddSeries(storage.SeriesRef(ref+1), lset, metas...))
		numChunks += uint64(len(metas))
		numSamples += uint64(120 * len(metas))
	}
	require.NoError(t, cw.Close())
	require.NoError(t, iw.Close())
	meta := tsdb.BlockMeta{
		ULID:    id,
		MinTime: s.mint,
		MaxTime: maxt + 1,
		Stats:   tsdb.BlockStats{NumSeries: uint64(len(lsets)), NumChunks: numChunks, NumSamples: numSamples},
		Version: 1,
	}
	meta.Compaction.Level = 1
	meta.Compaction.Sources = []ulid.ULID{id}
	data, err := json.Marshal(meta)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(blockDir, metaFilename), data, 0o600))
	return blockDir
}
