package compactor

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"
	"go.uber.org/goleak"

	"github.com/neocortex-metrics/neocortex/pkg/storage/bucketindex"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	minute = int64(time.Minute / time.Millisecond)
	hour   = int64(time.Hour / time.Millisecond)
)

type sample struct {
	T int64
	V float64
}

type testSeries struct {
	lbls    labels.Labels
	samples []sample
}

// genSeries returns a series named name with a sample every step in
// [mint, maxt), its value a function of time.
func genSeries(name string, mint, maxt, step int64) testSeries {
	s := testSeries{lbls: labels.FromStrings("__name__", name, "job", "test")}
	for t := mint; t < maxt; t += step {
		s.samples = append(s.samples, sample{T: t, V: float64(t/1000) + float64(len(name))})
	}
	return s
}

// writeBlock writes a TSDB block of [mint, maxt) holding series into a new
// directory and returns the block's directory.
func writeBlock(t testing.TB, mint, maxt int64, series ...testSeries) string {
	t.Helper()
	opts := tsdb.DefaultHeadOptions()
	opts.ChunkRange = maxt - mint
	opts.ChunkDirRoot = t.TempDir()
	h, err := tsdb.NewHead(nil, nil, nil, nil, opts, tsdb.NewHeadStats())
	require.NoError(t, err)
	defer h.Close()
	require.NoError(t, h.Init(math.MinInt64))
	app := h.Appender(context.Background())
	for _, s := range series {
		for _, smp := range s.samples {
			require.True(t, smp.T >= mint && smp.T < maxt, "sample outside the block")
			_, err := app.Append(0, s.lbls, smp.T, smp.V)
			require.NoError(t, err)
		}
	}
	require.NoError(t, app.Commit())
	comp, err := tsdb.NewLeveledCompactor(context.Background(), nil, nil, []int64{maxt - mint}, nil, nil)
	require.NoError(t, err)
	dir := t.TempDir()
	ids, err := comp.Write(dir, tsdb.NewRangeHead(h, mint, maxt-1), mint, maxt, nil)
	require.NoError(t, err)
	require.Len(t, ids, 1)
	return filepath.Join(dir, ids[0].String())
}

// editMeta changes a local block's meta.json.
func editMeta(t testing.TB, dir string, edit func(*tsdb.BlockMeta)) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	require.NoError(t, err)
	var m tsdb.BlockMeta
	require.NoError(t, json.Unmarshal(b, &m))
	edit(&m)
	b, err = json.Marshal(&m)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "meta.json"), b, 0o644))
}

// uploadLocalBlock uploads a local block to <tenant>/<ULID>/.
func uploadLocalBlock(t testing.TB, bkt objstore.Bucket, tenant, dir string) ulid.ULID {
	t.Helper()
	id := ulid.MustParse(filepath.Base(dir))
	require.NoError(t, objstore.UploadDir(context.Background(), log.NewNopLogger(), bkt, dir, bucketindex.BlockPath(tenant, id)))
	return id
}

// putBlock writes a block of [mint, maxt) and uploads it.
func putBlock(t testing.TB, bkt objstore.Bucket, tenant string, mint, maxt int64, series ...testSeries) ulid.ULID {
	t.Helper()
	return uploadLocalBlock(t, bkt, tenant, writeBlock(t, mint, maxt, series...))
}

// readBucketBlock downloads a block and returns its samples by series.
func readBucketBlock(t testing.TB, bkt objstore.Bucket, tenant string, id ulid.ULID) (tsdb.BlockMeta, map[string][]sample) {
	t.Helper()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), id.String())
	src := bucketindex.BlockPath(tenant, id)
	require.NoError(t, objstore.DownloadDir(ctx, log.NewNopLogger(), bkt, src, src, dir))
	b, err := tsdb.OpenBlock(nil, dir, nil, nil)
	require.NoError(t, err)
	defer b.Close()
	q, err := tsdb.NewBlockQuerier(b, math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	defer q.Close()
	out := map[string][]sample{}
	ss := q.Select(ctx, true, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	var it chunkenc.Iterator
	for ss.Next() {
		s := ss.At()
		it = s.Iterator(it)
		for it.Next() == chunkenc.ValFloat {
			ts, v := it.At()
			out[s.Labels().String()] = append(out[s.Labels().String()], sample{T: ts, V: v})
		}
		require.NoError(t, it.Err())
	}
	require.NoError(t, ss.Err())
	return b.Meta(), out
}

// union returns the samples of all series, each (series, timestamp) once.
func union(sets ...[]testSeries) map[string][]sample {
	out := map[string][]sample{}
	for _, set := range sets {
		for _, s := range set {
			k := s.lbls.String()
			for _, smp := range s.samples {
				if !slices.Contains(out[k], smp) {
					out[k] = append(out[k], smp)
				}
			}
		}
	}
	for k := range out {
		slices.SortFunc(out[k], func(a, b sample) int { return int(a.T - b.T) })
	}
	return out
}

// liveBlocks returns the tenant's blocks not marked for deletion, by MinTime.
func liveBlocks(t testing.TB, bkt objstore.Bucket, tenant string) []*bucketindex.Block {
	t.Helper()
	idx, err := bucketindex.Build(context.Background(), bkt, tenant, nil)
	require.NoError(t, err)
	return idx.Queryable(math.MinInt64, math.MaxInt64)
}

// listObjects returns every object under prefix.
func listObjects(t testing.TB, bkt objstore.Bucket, prefix string) []string {
	t.Helper()
	var out []string
	require.NoError(t, bkt.Iter(context.Background(), prefix, func(name string) error {
		out = append(out, name)
		return nil
	}, objstore.WithRecursiveIter()))
	return out
}

func testLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newBucket(t testing.TB) objstore.Bucket {
	t.Helper()
	bkt, err := filesystem.NewBucket(t.TempDir())
	require.NoError(t, err)
	return bkt
}

// testConfig is the default config with a temporary data dir.
func testConfig(t testing.TB) Config {
	t.Helper()
	var cfg Config
	fs := flag.NewFlagSet("test", flag.PanicOnError)
	cfg.RegisterFlags(fs)
	require.NoError(t, fs.Parse(nil))
	cfg.DataDir = t.TempDir()
	return cfg
}

func newTestCompactor(t testing.TB, cfg Config, bkt objstore.Bucket, lim Limits) (*Compactor, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	c, err := New(cfg, Deps{Bucket: bkt, Limits: lim, Registerer: reg})
	require.NoError(t, err)
	return c, reg
}

// recordingBucket records uploads and deletions in order.
type recordingBucket struct {
	objstore.Bucket
	mu  sync.Mutex
	ops []string
}

func (b *recordingBucket) Upload(ctx context.Context, name string, r io.Reader, opts ...objstore.ObjectUploadOption) error {
	b.record("upload " + name)
	return b.Bucket.Upload(ctx, name, r, opts...)
}

func (b *recordingBucket) Delete(ctx context.Context, name string) error {
	b.record("delete " + name)
	return b.Bucket.Delete(ctx, name)
}

func (b *recordingBucket) record(op string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ops = append(b.ops, op)
}

// opsUnder returns the recorded operations of one kind on objects under
// prefix, object names only, in order.
func (b *recordingBucket) opsUnder(kind, prefix string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, op := range b.ops {
		if name, ok := strings.CutPrefix(op, kind+" "); ok && strings.HasPrefix(name, prefix) {
			out = append(out, strings.TrimPrefix(name, prefix))
		}
	}
	return out
}

// truncateObject cuts an object in the bucket to half its size.
func truncateObject(t testing.TB, bkt objstore.Bucket, name string) {
	t.Helper()
	ctx := context.Background()
	r, err := bkt.Get(ctx, name)
	require.NoError(t, err)
	b, err := io.ReadAll(r)
	require.NoError(t, err)
	require.NoError(t, r.Close())
	require.NoError(t, bkt.Upload(ctx, name, strings.NewReader(string(b[:len(b)/2]))))
}

// readJSONObject decodes an object; ok is false when it does not exist.
func readJSONObject(ctx context.Context, bkt objstore.Bucket, name string, v any) (ok bool, err error) {
	r, err := bkt.Get(ctx, name)
	if bkt.IsObjNotFoundErr(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer r.Close()
	return true, json.NewDecoder(r).Decode(v)
}

func objectPath(tenant string, id ulid.ULID, file string) string {
	return path.Join(bucketindex.BlockPath(tenant, id), file)
}
