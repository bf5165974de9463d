package bucketblock

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"slices"
	"sync"
	"testing"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"
	"go.uber.org/goleak"
)

// sharedDirs are the directories of data built once per process.
var sharedDirs []string

func TestMain(m *testing.M) {
	code := m.Run()
	for _, dir := range sharedDirs {
		_ = os.RemoveAll(dir)
	}
	if code == 0 {
		// dskit's memcached client does not stop its DNS resolver's
		// resolv.conf reloading when stopped.
		if err := goleak.Find(goleak.IgnoreTopFunction("github.com/grafana/dskit/dns/miekgdns.(*Resolver).loop")); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// blockChunk is a chunk as compared: its bounds, encoding and bytes.
type blockChunk struct {
	minT, maxT int64
	enc        chunkenc.Encoding
	data       []byte
}

// blockSeries is a series as compared: labels, chunks and the samples of
// the chunks within the queried range.
type blockSeries struct {
	lset    labels.Labels
	chunks  []blockChunk
	samples []sample
}

// appendSamples appends the samples of it in [mint, maxt].
func appendSamples(t testing.TB, out []sample, it chunkenc.Iterator, mint, maxt int64) []sample {
	for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
		var s sample
		switch vt {
		case chunkenc.ValFloat:
			s.t, s.f = it.At()
		case chunkenc.ValHistogram:
			s.t, s.h = it.AtHistogram(nil)
		case chunkenc.ValFloatHistogram:
			s.t, s.fh = it.AtFloatHistogram(nil)
		}
		if s.t >= mint && s.t <= maxt {
			out = append(out, s)
		}
	}
	require.NoError(t, it.Err())
	return out
}

func cloneMatchers(ms []*labels.Matcher) []*labels.Matcher {
	return slices.Clone(ms)
}

// queryMode is what a test query reads and compares.
type queryMode int

const (
	withSamples queryMode = iota // Chunks and the samples in range.
	withChunks                   // Chunks only.
	skipChunks                   // Neither.
)

// referenceSeries queries the block with the TSDB: chunks untrimmed from
// the chunk querier, samples from the sample querier.
func referenceSeries(t testing.TB, blk *tsdb.Block, mint, maxt int64, mode queryMode, ms []*labels.Matcher) []blockSeries {
	ctx := context.Background()
	cq, err := tsdb.NewBlockChunkQuerier(blk, mint, maxt)
	require.NoError(t, err)
	defer cq.Close()
	var out []blockSeries
	cs := cq.Select(ctx, true, &storage.SelectHints{Start: mint, End: maxt, DisableTrimming: true}, cloneMatchers(ms)...)
	for cs.Next() {
		s := blockSeries{lset: cs.At().Labels()}
		if mode != skipChunks {
			it := cs.At().Iterator(nil)
			for it.Next() {
				m := it.At()
				s.chunks = append(s.chunks, blockChunk{m.MinTime, m.MaxTime, m.Chunk.Encoding(), slices.Clone(m.Chunk.Bytes())})
			}
			require.NoError(t, it.Err())
		}
		out = append(out, s)
	}
	require.NoError(t, cs.Err())
	if mode != withSamples {
		return out
	}

	q, err := tsdb.NewBlockQuerier(blk, mint, maxt)
	require.NoError(t, err)
	defer q.Close()
	ss := q.Select(ctx, true, nil, cloneMatchers(ms)...)
	i := 0
	for ss.Next() {
		require.Less(t, i, len(out))
		require.Equal(t, out[i].lset, ss.At().Labels())
		out[i].samples = appendSamples(t, nil, ss.At().Iterator(nil), mint, maxt)
		i++
	}
	require.NoError(t, ss.Err())
	require.Equal(t, len(out), i)
	return out
}

// querySeries queries b, copying what the callback must not keep.
func querySeries(ctx context.Context, t testing.TB, b *Block, mint, maxt int64, mode queryMode, ms []*labels.Matcher) ([]blockSeries, error) {
	var out []blockSeries
	err := b.Series(ctx, mint, maxt, mode == skipChunks, ms, func(lset labels.Labels, chks []chunks.Meta) error {
		s := blockSeries{lset: lset}
		if mode == skipChunks {
			require.Nil(t, chks)
		}
		for _, c := range chks {
			s.chunks = append(s.chunks, blockChunk{c.MinTime, c.MaxTime, c.Chunk.Encoding(), slices.Clone(c.Chunk.Bytes())})
			if mode == withSamples {
				s.samples = appendSamples(t, s.samples, c.Chunk.Iterator(nil), mint, maxt)
			}
		}
		out = append(out, s)
		return nil
	})
	return out, err
}

// requireSameSeries compares series exactly, faster than require.Equal.
func requireSameSeries(t *testing.T, want, got []blockSeries) {
	t.Helper()
	require.Equal(t, len(want), len(got))
	for i := range want {
		require.True(t, labels.Equal(want[i].lset, got[i].lset), "%s != %s", want[i].lset, got[i].lset)
		require.Equal(t, want[i].chunks, got[i].chunks, want[i].lset.String())
		require.Equal(t, len(want[i].samples), len(got[i].samples), want[i].lset.String())
		for j, w := range want[i].samples {
			g := got[i].samples[j]
			ok := w.t == g.t && math.Float64bits(w.f) == math.Float64bits(g.f) &&
				(w.h == nil) == (g.h == nil) && (w.h == nil || w.h.Equals(g.h)) &&
				(w.fh == nil) == (g.fh == nil) && (w.fh == nil || w.fh.Equals(g.fh))
			require.True(t, ok, "sample %d of %s: want %+v, got %+v", j, want[i].lset, w, g)
		}
	}
}

func mustMatcher(t labels.MatchType, name, value string) *labels.Matcher {
	return labels.MustNewMatcher(t, name, value)
}

var (
	eq  = func(n, v string) *labels.Matcher { return mustMatcher(labels.MatchEqual, n, v) }
	neq = func(n, v string) *labels.Matcher { return mustMatcher(labels.MatchNotEqual, n, v) }
	re  = func(n, v string) *labels.Matcher { return mustMatcher(labels.MatchRegexp, n, v) }
	nre = func(n, v string) *labels.Matcher { return mustMatcher(labels.MatchNotRegexp, n, v) }
)

// matcherCases are the matcher sets the block's answers are compared with
// the TSDB's for.
var matcherCases = []struct {
	name string
	ms   []*labels.Matcher
}{
	{"equal", []*labels.Matcher{eq("__name__", "metric_a")}},
	{"two equal", []*labels.Matcher{eq("__name__", "metric_a"), eq("job", "job-1")}},
	{"regexp and not equal", []*labels.Matcher{re("__name__", "metric_.*"), neq("instance", "inst-3")}},
	{"set regexp", []*labels.Matcher{re("__name__", "metric_a|metric_h")}},
	{"case-insensitive regexp", []*labels.Matcher{re("__name__", "(?i)METRIC_F.*")}},
	{"regexp on low cardinality", []*labels.Matcher{re("job", "job-[12]")}},
	{"empty equal with name", []*labels.Matcher{eq("__name__", "metric_b"), eq("env", "")}},
	{"empty equal alone", []*labels.Matcher{eq("env", "")}},
	{"not empty", []*labels.Matcher{neq("env", "")}},
	{"regexp matching empty", []*labels.Matcher{re("env", "prod|")}},
	{"not regexp matching empty", []*labels.Matcher{nre("env", "prod|")}},
	{"not regexp set", []*labels.Matcher{eq("__name__", "metric_fh"), nre("job", "job-0|job-2")}},
	{"high cardinality regexp", []*labels.Matcher{re("pod", "pod-00(1|2).*")}},
	{"high cardinality not regexp alone", []*labels.Matcher{nre("pod", ".*7")}},
	{"all negative", []*labels.Matcher{neq("instance", "inst-1"), neq("job", "job-2")}},
	{"all negative on one name", []*labels.Matcher{neq("job", "job-1"), nre("job", "job-2")}},
	{"no such value", []*labels.Matcher{eq("__name__", "nope")}},
	{"no such value among two", []*labels.Matcher{eq("__name__", "metric_a"), eq("job", "nope")}},
	{"no such name, empty", []*labels.Matcher{eq("nonexistent", "")}},
	{"no such name, not empty", []*labels.Matcher{neq("nonexistent", "")}},
	{"any non-empty", []*labels.Matcher{re("__name__", ".+")}},
	{"no non-empty", []*labels.Matcher{nre("__name__", ".+")}},
	{"any", []*labels.Matcher{re("job", ".*")}},
	{"not any", []*labels.Matcher{nre("job", ".*")}},
	{"sparse label set", []*labels.Matcher{eq("__name__", "metric_h"), re("path", ".+")}},
	{"regexp and not equal on one name", []*labels.Matcher{re("path", "/api/.*"), neq("path", "/api/v1")}},
	{"must be set and not equal", []*labels.Matcher{re("env", ".+"), neq("env", "dev")}},
	{"one series", []*labels.Matcher{eq("pod", "pod-01234")}},
	{"not equal value absent", []*labels.Matcher{eq("__name__", "metric_a"), neq("job", "nope")}},
}

var (
	testBlockOnce sync.Once
	testBlock     string
	testBlockErr  error
)

// testBlockDir returns the directory of the main test block, written with
// the TSDB once per process in a temporary directory (removed by TestMain).
func testBlockDir(t *testing.T) string {
	testBlockOnce.Do(func() {
		const mint = 1_700_006_400_000 // A multiple of 2h.
		dir, err := os.MkdirTemp("", "bucketblock-test-")
		if err != nil {
			testBlockErr = err
			return
		}
		sharedDirs = append(sharedDirs, dir)
		// The head refuses samples older than half its range behind its
		// newest: a range of 8h lets series of 2h be appended one after
		// the other.
		testBlock, testBlockErr = tsdb.CreateBlock(testSeries(mint), dir, 8*3600_000, slog.New(slog.DiscardHandler))
	})
	require.NoError(t, testBlockErr)
	return testBlock
}

// openTestBlock builds the main test block, uploads it and opens it both
// with the TSDB and from the bucket.
func openTestBlock(t *testing.T, cache IndexCache) (*Block, *tsdb.Block, *countingBucket) {
	t.Helper()
	blockDir := testBlockDir(t)
	local, err := tsdb.OpenBlock(nil, blockDir, nil, nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, local.Close()) })

	bkt := newCountingBucket(newFilesystemBucket(t))
	id := uploadBlock(t, bkt, blockDir)
	b, err := Open(context.Background(), bkt, testTenant, id, t.TempDir(), cache, nil, NewMetrics(prometheus.NewRegistry()))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })
	return b, local, bkt
}

func TestSeriesMatchesTSDB(t *testing.T) {
	b, local, _ := openTestBlock(t, nil)
	meta := b.Meta()
	require.Equal(t, local.Meta(), meta)
	require.Equal(t, uint64(2400), meta.Stats.NumSeries)
	var (
		mint = meta.MinTime
		maxt = meta.MaxTime - 1 // The block's range is half-open.
	)
	ranges := []struct {
		name        string
		mint, maxt  int64
		allMatchers bool
	}{
		// With every matcher set.
		{"whole block", math.MinInt64, math.MaxInt64, true},
		{"first quarter", mint, mint + (maxt-mint)/4, true},
		{"within one chunk", mint + 70*60_000, mint + 71*60_000, true},
		// With a few.
		{"block bounds", mint, maxt, false},
		{"last minute", maxt - 60_000, maxt, false},
		{"after the block", maxt + 1, maxt + 3_600_000, false},
		{"before the block", mint - 3_600_000, mint - 1, false},
	}
	ctx := context.Background()
	for _, tr := range ranges {
		for i, mc := range matcherCases {
			if !tr.allMatchers && i%7 != 0 {
				continue
			}
			t.Run(tr.name+"/"+mc.name, func(t *testing.T) {
				// Comparing samples tests trimming to the range; where
				// nothing is trimmed, equal chunk bytes are enough.
				mode := withSamples
				if tr.mint <= mint && tr.maxt >= maxt {
					mode = withChunks
				}
				want := referenceSeries(t, local, tr.mint, tr.maxt, mode, mc.ms)
				got, err := querySeries(ctx, t, b, tr.mint, tr.maxt, mode, cloneMatchers(mc.ms))
				require.NoError(t, err)
				requireSameSeries(t, want, got)

				want = referenceSeries(t, local, tr.mint, tr.maxt, skipChunks, mc.ms)
				got, err = querySeries(ctx, t, b, tr.mint, tr.maxt, skipChunks, cloneMatchers(mc.ms))
				require.NoError(t, err)
				requireSameSeries(t, want, got)
			})
		}
	}
	// Sanity of the cases: each kind of answer and chunk happens.
	all, err := querySeries(ctx, t, b, math.MinInt64, math.MaxInt64, withSamples, []*labels.Matcher{re("__name__", ".+")})
	require.NoError(t, err)
	encodings := map[chunkenc.Encoding]int{}
	for _, s := range all {
		for _, c := range s.chunks {
			encodings[c.enc]++
		}
	}
	require.Equal(t, 3, len(encodings), encodings)
	require.Positive(t, encodings[chunkenc.EncXOR])
	require.Positive(t, encodings[chunkenc.EncHistogram])
	require.Positive(t, encodings[chunkenc.EncFloatHistogram])
	for _, c := range []struct {
		ms   []*labels.Matcher
		want int
	}{
		{[]*labels.Matcher{eq("__name__", "metric_a")}, 600},
		{[]*labels.Matcher{eq("env", "")}, 1440},
		{[]*labels.Matcher{nre("pod", ".*7")}, 2160},
		{[]*labels.Matcher{eq("nonexistent", "")}, 2400},
		{[]*labels.Matcher{neq("nonexistent", "")}, 0},
	} {
		got, err := querySeries(ctx, t, b, math.MinInt64, math.MaxInt64, skipChunks, c.ms)
		require.NoError(t, err)
		require.Equal(t, c.want, len(got), c.ms)
	}
}

func TestLabelsMatchTSDB(t *testing.T) {
	b, local, _ := openTestBlock(t, nil)
	ctx := context.Background()
	q, err := tsdb.NewBlockQuerier(local, math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	defer q.Close()

	cases := append([]struct {
		name string
		ms   []*labels.Matcher
	}{{"no matchers", nil}}, matcherCases...)
	for _, mc := range cases {
		t.Run(mc.name, func(t *testing.T) {
			want, _, err := q.LabelNames(ctx, nil, cloneMatchers(mc.ms)...)
			require.NoError(t, err)
			got, err := b.LabelNames(ctx, cloneMatchers(mc.ms))
			require.NoError(t, err)
			require.Equal(t, nonNil(want), nonNil(got))

			for _, name := range []string{"__name__", "job", "env", "pod", "path", "nonexistent"} {
				want, _, err := q.LabelValues(ctx, name, nil, cloneMatchers(mc.ms)...)
				require.NoError(t, err)
				got, err := b.LabelValues(ctx, name, cloneMatchers(mc.ms))
				require.NoError(t, err)
				require.Equal(t, nonNil(want), nonNil(got), name)
			}
		})
	}
	names, err := b.LabelNames(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, []string{"__name__", "env", "instance", "job", "path", "pod"}, names)
	values, err := b.LabelValues(ctx, "env", []*labels.Matcher{eq("__name__", "metric_a")})
	require.NoError(t, err)
	require.Equal(t, []string{"dev", "prod"}, values)
	values, err = b.LabelValues(ctx, "pod", []*labels.Matcher{eq("instance", "inst-7"), eq("job", "job-1")})
	require.NoError(t, err)
	require.Len(t, values, 16)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// TestLabelValuesBothWays checks both ways LabelValues finds the values of
// matching series: by their series entries, or by intersecting the
// postings lists of the values.
func TestLabelValuesBothWays(t *testing.T) {
	b, local, _ := openTestBlock(t, nil)
	ctx := context.Background()
	q, err := tsdb.NewBlockQuerier(local, math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	defer q.Close()
	for _, mc := range matcherCases {
		for _, name := range []string{"pod", "job", "env"} {
			want, _, err := q.LabelValues(ctx, name, nil, cloneMatchers(mc.ms)...)
			require.NoError(t, err)
			want = nonNil(want)
			refs, err := b.expandedPostings(ctx, cloneMatchers(mc.ms))
			require.NoError(t, err)
			candidates, err := b.header.postingsRanges(ctx, name, nil)
			require.NoError(t, err)
			if len(refs) == 0 || len(candidates) == 0 {
				continue
			}
			got, err := b.labelValuesFromSeries(ctx, name, refs, func(string) bool { return true })
			require.NoError(t, err)
			require.Equal(t, want, got, "%s %s", mc.name, name)
			got, err = b.labelValuesFromPostings(ctx, candidates, refs)
			require.NoError(t, err)
			require.Equal(t, want, got, "%s %s", mc.name, name)
		}
	}
}

// TestMultipleSegmentsAndRefetches reads a block of many small chunk
// segments, with size estimates so small that entries and chunks are read
// again alone, and compares with the TSDB.
func TestMultipleSegmentsAndRefetches(t *testing.T) {
	blockDir := syntheticBlock{numSeries: 2000, chunksPerSeries: 3, segmentSize: 64 << 10, mint: 0}.write(t, t.TempDir())
	local, err := tsdb.OpenBlock(nil, blockDir, nil, nil)
	require.NoError(t, err)
	defer func() { require.NoError(t, local.Close()) }()
	bkt := newFilesystemBucket(t)
	id := uploadBlock(t, bkt, blockDir)
	segments := 0
	require.NoError(t, bkt.Iter(context.Background(), testTenant+"/"+id.String()+"/chunks/", func(string) error {
		segments++
		return nil
	}))
	require.Greater(t, segments, 5)

	reg := prometheus.NewRegistry()
	b, err := Open(context.Background(), bkt, testTenant, id, t.TempDir(), nil, nil, NewMetrics(reg))
	require.NoError(t, err)
	defer func() { require.NoError(t, b.Close()) }()

	ms := []*labels.Matcher{re("job", "job-[1-3]")}
	for _, estimates := range []struct{ series, chunk int64 }{{1, 1}, {b.seriesSizeEstimate, b.chunkSizeEstimate}} {
		b.seriesSizeEstimate, b.chunkSizeEstimate = estimates.series, estimates.chunk
		for _, tr := range [][2]int64{{math.MinInt64, math.MaxInt64}, {120 * syntheticStep, 121 * syntheticStep}} {
			want := referenceSeries(t, local, tr[0], tr[1], withSamples, ms)
			got, err := querySeries(context.Background(), t, b, tr[0], tr[1], withSamples, ms)
			require.NoError(t, err)
			require.Len(t, want, 600)
			require.Equal(t, want, got)
		}
	}
	// The tiny estimates made every last entry and chunk of a range be
	// read again.
	require.Positive(t, testutil.ToFloat64(b.metrics.refetches.WithLabelValues(kindSeries)))
	require.Positive(t, testutil.ToFloat64(b.metrics.refetches.WithLabelValues(kindChunks)))
}

// TestReadErrorsFailQueries checks that a read error or a file gone from
// the bucket fails a query rather than making it return less.
func TestReadErrorsFailQueries(t *testing.T) {
	ms := []*labels.Matcher{eq("__name__", "metric_a")}
	cases := []struct {
		name    string
		breakIt func(t *testing.T, bkt *countingBucket, id ulid.ULID)
		// skipChunks queries read no chunk: they only fail when the index
		// does.
		failsSkipChunks bool
	}{
		{"chunk reads fail", func(_ *testing.T, bkt *countingBucket, _ ulid.ULID) { bkt.failGetRange = "/chunks/" }, false},
		{"index reads fail", func(_ *testing.T, bkt *countingBucket, _ ulid.ULID) { bkt.failGetRange = "/index" }, true},
		{"chunk segment deleted", func(t *testing.T, bkt *countingBucket, id ulid.ULID) {
			require.NoError(t, bkt.Delete(context.Background(), testTenant+"/"+id.String()+"/chunks/000001"))
		}, false},
		{"index deleted", func(t *testing.T, bkt *countingBucket, id ulid.ULID) {
			require.NoError(t, bkt.Delete(context.Background(), testTenant+"/"+id.String()+"/index"))
		}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, _, bkt := openTestBlock(t, NewInMemoryIndexCache(1<<20, nil))
			got, err := querySeries(context.Background(), t, b, math.MinInt64, math.MaxInt64, withSamples, ms)
			require.NoError(t, err)
			require.Len(t, got, 600)

			c.breakIt(t, bkt, b.Meta().ULID)
			// A different query: its postings and series are not cached.
			other := []*labels.Matcher{eq("__name__", "metric_b")}
			got, err = querySeries(context.Background(), t, b, math.MinInt64, math.MaxInt64, withSamples, other)
			require.Error(t, err)
			require.Nil(t, got)
			got, err = querySeries(context.Background(), t, b, math.MinInt64, math.MaxInt64, skipChunks, other)
			if c.failsSkipChunks {
				require.Error(t, err)
				require.Nil(t, got)
			} else {
				require.NoError(t, err)
				require.Len(t, got, 600)
			}
			// Even with postings and series cached, chunks are read.
			if !c.failsSkipChunks {
				got, err = querySeries(context.Background(), t, b, math.MinInt64, math.MaxInt64, withSamples, ms)
				require.Error(t, err)
				require.Nil(t, got)
			}
			if c.failsSkipChunks {
				_, err = b.LabelValues(context.Background(), "pod", other)
				require.Error(t, err)
				_, err = b.LabelNames(context.Background(), other)
				require.Error(t, err)
			}
		})
	}
}

func TestCanceledQuery(t *testing.T) {
	b, _, _ := openTestBlock(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := querySeries(ctx, t, b, math.MinInt64, math.MaxInt64, withSamples, []*labels.Matcher{re("__name__", ".+")})
	require.ErrorIs(t, err, context.Canceled)
	_, err = b.LabelValues(ctx, "pod", []*labels.Matcher{re("job", ".+")})
	require.ErrorIs(t, err, context.Canceled)

	// Canceled by the callback midway.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	n := 0
	err = b.Series(ctx, math.MinInt64, math.MaxInt64, false, []*labels.Matcher{re("__name__", ".+")}, func(labels.Labels, []chunks.Meta) error {
		n++
		if n == 10 {
			cancel()
		}
		return nil
	})
	require.ErrorIs(t, err, context.Canceled)
}

func TestClosedBlock(t *testing.T) {
	b, _, _ := openTestBlock(t, nil)
	require.NoError(t, b.Close())
	_, err := querySeries(context.Background(), t, b, math.MinInt64, math.MaxInt64, withSamples, []*labels.Matcher{eq("job", "job-1")})
	require.ErrorIs(t, err, ErrClosed)
	_, err = b.LabelNames(context.Background(), nil)
	require.ErrorIs(t, err, ErrClosed)
	_, err = b.LabelValues(context.Background(), "job", nil)
	require.ErrorIs(t, err, ErrClosed)
}

// TestRepeatedQueryHitsCache checks that a repeated query reads only
// chunks from the bucket.
func TestRepeatedQueryHitsCache(t *testing.T) {
	reg := prometheus.NewRegistry()
	cache := NewInMemoryIndexCache(64<<20, reg)
	b, _, bkt := openTestBlock(t, cache)
	ms := []*labels.Matcher{re("__name__", "metric_(a|h)"), neq("env", "dev")}
	ctx := context.Background()

	bkt.reset()
	first, err := querySeries(ctx, t, b, math.MinInt64, math.MaxInt64, withSamples, ms)
	require.NoError(t, err)
	require.Len(t, first, 960)
	reads, _, _ := bkt.counts()
	require.Positive(t, reads["index"])
	require.Positive(t, reads["chunks"])

	bkt.reset()
	second, err := querySeries(ctx, t, b, math.MinInt64, math.MaxInt64, withSamples, ms)
	require.NoError(t, err)
	require.Equal(t, first, second)
	reads, gets, attrs := bkt.counts()
	require.Zero(t, reads["index"], "postings and series come from the cache")
	require.Equal(t, map[string]int{}, gets)
	require.Equal(t, map[string]int{}, attrs)
	require.Positive(t, reads["chunks"])

	// Every postings list and series entry of the second query was a hit.
	requests := testutil.ToFloat64(cache.metrics.requests[ItemSeries])
	hits := testutil.ToFloat64(cache.metrics.hits[ItemSeries])
	require.Equal(t, float64(2*960), requests)
	require.Equal(t, float64(960), hits)
	require.Equal(t, testutil.ToFloat64(cache.metrics.requests[ItemPostings])/2, testutil.ToFloat64(cache.metrics.hits[ItemPostings]))
}

// TestQueryMetrics checks the counts of series and chunks returned and of
// bytes read.
func TestQueryMetrics(t *testing.T) {
	blockDir := syntheticBlock{numSeries: 1000, chunksPerSeries: 2, mint: 0}.write(t, t.TempDir())
	bkt := newFilesystemBucket(t)
	id := uploadBlock(t, bkt, blockDir)
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	b, err := Open(context.Background(), bkt, testTenant, id, t.TempDir(), nil, nil, m)
	require.NoError(t, err)
	defer func() { require.NoError(t, b.Close()) }()

	got, err := querySeries(context.Background(), t, b, 0, 10*syntheticStep, withSamples, []*labels.Matcher{eq("job", "job-3")})
	require.NoError(t, err)
	require.Len(t, got, 100)
	require.Equal(t, float64(100), testutil.ToFloat64(m.seriesReturned))
	require.Equal(t, float64(100), testutil.ToFloat64(m.chunksReturned), "only the chunks in range")
	require.Equal(t, float64(1), testutil.ToFloat64(m.blocksOpen))
	require.Equal(t, float64(1), testutil.ToFloat64(m.rangeReads.WithLabelValues(kindPostings)))
	require.Positive(t, testutil.ToFloat64(m.bytesRead.WithLabelValues(kindSeries)))
	require.Positive(t, testutil.ToFloat64(m.bytesRead.WithLabelValues(kindChunks)))
	require.Equal(t, float64(3), testutil.ToFloat64(m.rangeReads.WithLabelValues(kindIndexHeader)), "TOC, symbols, postings offset table")
	require.Equal(t, 1, testutil.CollectAndCount(m.headerBuild))
	require.NoError(t, b.Close())
	require.Equal(t, float64(0), testutil.ToFloat64(m.blocksOpen))
}

var _ objstore.Bucket = (*countingBucket)(nil)
