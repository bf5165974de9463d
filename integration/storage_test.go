//go:build integration

package integration

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/neocortex-metrics/neocortex/pkg/remotewrite"
)

// bucketIndex is a tenant's bucket-index.json.gz, decoded here from its
// documented format (pkg/storage/bucketindex) rather than by that package,
// so that the files in the bucket are what is checked.
type bucketIndex struct {
	Version       int          `json:"version"`
	Blocks        []indexBlock `json:"blocks"`
	DeletionMarks []struct {
		ID string `json:"id"`
	} `json:"block_deletion_marks"`
	UpdatedAt int64 `json:"updated_at"`
}

type indexBlock struct {
	ID              string `json:"block_id"`
	MinTime         int64  `json:"min_time"`
	MaxTime         int64  `json:"max_time"` // exclusive
	CompactionLevel int    `json:"compaction_level"`
	NumSeries       uint64 `json:"num_series"`
	NumSamples      uint64 `json:"num_samples"`
}

// readBucketIndex reads the index of the tenant whose directory in the
// bucket is dir.
func readBucketIndex(dir string) (*bucketIndex, error) {
	f, err := os.Open(filepath.Join(dir, "bucket-index.json.gz"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return nil, err
	}
	var idx bucketIndex
	if err := json.NewDecoder(gz).Decode(&idx); err != nil {
		return nil, err
	}
	return &idx, nil
}

// live returns the blocks not marked for deletion: those queries read.
func (idx *bucketIndex) live() []indexBlock {
	deleted := map[string]bool{}
	for _, m := range idx.DeletionMarks {
		deleted[m.ID] = true
	}
	var out []indexBlock
	for _, b := range idx.Blocks {
		if !deleted[b.ID] {
			out = append(out, b)
		}
	}
	return out
}

// overlap returns two of blocks whose time ranges overlap, if any.
func overlap(blocks []indexBlock) (a, b indexBlock, ok bool) {
	for i := range blocks {
		for j := i + 1; j < len(blocks); j++ {
			if blocks[i].MinTime < blocks[j].MaxTime && blocks[j].MinTime < blocks[i].MaxTime {
				return blocks[i], blocks[j], true
			}
		}
	}
	return indexBlock{}, indexBlock{}, false
}

// uploadedBlocks lists the complete blocks (meta.json present) in a
// tenant's directory of the bucket.
func uploadedBlocks(dir string) []string {
	entries, _ := os.ReadDir(dir)
	var out []string
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(dir, e.Name(), "meta.json")); e.IsDir() && err == nil {
			out = append(out, e.Name())
		}
	}
	slices.Sort(out)
	return out
}

// waitForCompactedBlocks waits until the compactor has indexed every block
// in the tenant's directory (and so settled: nothing is uploaded but by the
// compactor, which indexes its output) and merged all overlapping ones,
// and until the store-gateway sg has loaded every indexed block. It returns
// that index.
func waitForCompactedBlocks(t *testing.T, dir string, sg *neocortex, timeout time.Duration) *bucketIndex {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		state := func() (*bucketIndex, string) {
			idx, err := readBucketIndex(dir)
			if err != nil {
				return nil, "no bucket index: " + err.Error()
			}
			var indexed []string
			for _, b := range idx.Blocks {
				indexed = append(indexed, b.ID)
			}
			slices.Sort(indexed)
			if up := uploadedBlocks(dir); !slices.Equal(indexed, up) {
				return nil, fmt.Sprintf("index lists blocks %v, bucket holds %v", indexed, up)
			}
			if a, b, ok := overlap(idx.live()); ok {
				return nil, fmt.Sprintf("blocks %s and %s overlap", a.ID, b.ID)
			}
			if n := sg.metric("neocortex_storegateway_blocks_loaded"); n != float64(len(idx.Blocks)) {
				return nil, fmt.Sprintf("%s loaded %v blocks of %d", sg.name, n, len(idx.Blocks))
			}
			return idx, ""
		}
		idx, waiting := state()
		if idx != nil {
			return idx
		}
		if time.Now().After(deadline) {
			t.Fatalf("blocks not compacted and loaded after %s: %s", timeout, waiting)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// startVersityGW runs versitygw, an S3 server on a posix directory whose
// top-level directories are buckets, with the bucket already there. It
// returns the endpoint (host:port) and the bucket's directory. Object
// metadata goes to a sidecar directory rather than extended attributes,
// which not every temp filesystem has.
func startVersityGW(t *testing.T, bucket, accessKey, secretKey string) (endpoint, bucketDir string) {
	t.Helper()
	bin := requireBinary(t, "versitygw")
	root := t.TempDir()
	bucketDir = filepath.Join(root, bucket)
	require.NoError(t, os.Mkdir(bucketDir, 0o755))
	endpoint = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := start(t, "versitygw", bin, "--port", endpoint, "--access", accessKey, "--secret", secretKey,
		"--region", "us-east-1", "--quiet", "posix", "--sidecar", t.TempDir(), root)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if c, err := net.Dial("tcp", endpoint); err == nil {
			c.Close()
			break
		}
		if !p.running() || time.Now().After(deadline) {
			t.Fatalf("versitygw not listening on %s:\n%s", endpoint, p.logs.String())
		}
	}
	return endpoint, bucketDir
}

// TestLongTermStorageS3 ships blocks to a real S3 server (versitygw), then
// answers from them alone in a new process that has no ingester data: the
// answers must be exactly the samples written. The store-gateway keeps its
// index cache in a real memcached, which the second process finds filled
// by the first. One block is then checked by Prometheus's own promtool.
func TestLongTermStorageS3(t *testing.T) {
	promtool := requireBinary(t, "promtool")
	const (
		bucket, accessKey, secretKey = "neocortex-blocks", "neocortex-test", "neocortex-test-secret"
		tenant                       = "s3-team"
		nSeries, nSamples            = 500, 121
		step                         = 15 * time.Second
	)
	endpoint, bucketRoot := startVersityGW(t, bucket, accessKey, secretKey)
	memcached := startMemcached(t)

	// 30 minutes at 15s, inside one 2h block range, so that one block holds
	// every series.
	end := time.Now().Add(-time.Minute).Truncate(step)
	start := end.Add(-(nSamples - 1) * step)
	if b := end.Truncate(2 * time.Hour); start.Before(b) {
		end = b.Add(-step)
		start = end.Add(-(nSamples - 1) * step)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	want := map[string][][2]string{} // the range query's answer
	var sum float64
	var series []prompb.TimeSeries
	for s := range nSeries {
		lbls := map[string]string{"__name__": "s3_test_requests_total", "series": strconv.Itoa(s), "job": "job-" + strconv.Itoa(s%5)}
		ts := prompb.TimeSeries{}
		for _, k := range []string{"__name__", "job", "series"} {
			ts.Labels = append(ts.Labels, prompb.Label{Name: k, Value: lbls[k]})
		}
		v := float64(s)
		for i := range nSamples {
			at := start.Add(time.Duration(i) * step)
			v += float64(rng.IntN(100))
			ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: at.UnixMilli(), Value: v})
			want[labelKey(lbls)] = append(want[labelKey(lbls)], [2]string{fmt.Sprint(float64(at.Unix())), strconv.FormatFloat(v, 'f', -1, 64)})
			sum += v
		}
		series = append(series, ts)
	}

	args := func(ingesterDir string) []string {
		return []string{
			"-target=all", "-ingester.ring.instance-id=single", "-ingester.data-dir=" + ingesterDir,
			"-distributor.ingestion-rate-limit=0",
			"-storage.backend=s3", "-storage.s3.endpoint=" + endpoint, "-storage.s3.bucket-name=" + bucket,
			"-storage.s3.access-key-id=" + accessKey, "-storage.s3.secret-access-key=" + secretKey,
			"-storage.s3.region=us-east-1", "-storage.s3.insecure=true", "-storage.s3.path-style=true",
			// Blocks are read for the whole of every query, and the ingesters
			// are asked too (0 = always), so that the first process must
			// deduplicate what both hold.
			"-querier.query-store-after=0s", "-querier.query-ingesters-within=0s", "-querier.bucket-index-cache-ttl=0s",
			"-compactor.compaction-interval=1s", "-store-gateway.sync-interval=1s",
			"-store-gateway.index-cache.backend=memcached", "-store-gateway.index-cache.memcached.addresses=" + memcached,
			// Every range query is answered by the querier, not from a
			// results cache filled by an earlier check.
			"-frontend.cache-results=false",
		}
	}
	api := func(n *neocortex) string { return "http://" + n.httpAddr + "/prometheus" }
	rangeQ := "s3_test_requests_total"
	sumQ := fmt.Sprintf("sum(sum_over_time(s3_test_requests_total[%ds]))", int(end.Sub(start).Seconds())+1)
	wantSum := map[string]string{"{}": strconv.FormatFloat(sum, 'f', -1, 64)}
	checkAnswers := func(n *neocortex, what string) time.Duration {
		t.Helper()
		began := time.Now()
		require.Equal(t, want, queryRange(t, api(n), tenant, rangeQ, start, end, step), what)
		took := time.Since(began)
		require.Equal(t, wantSum, instant(t, api(n), tenant, sumQ, end), what)
		return took
	}

	ingesterDir := t.TempDir()
	first := startNeocortex(t, "neocortex-1", args(ingesterDir)...)
	rw := &remotewrite.Client{URL: "http://" + first.httpAddr + "/api/v1/push", Tenant: tenant}
	for batch := range slices.Chunk(series, 100) {
		require.NoError(t, rw.Push(context.Background(), &prompb.WriteRequest{Timeseries: batch}))
	}
	checkAnswers(first, "from the ingester")

	flushStart := time.Now()
	first.flushIngester(t)
	flushTook := time.Since(flushStart)
	tenantDir := filepath.Join(bucketRoot, tenant)
	idx := waitForCompactedBlocks(t, tenantDir, first, 60*time.Second)
	indexedAfter := time.Since(flushStart)
	coldTook := checkAnswers(first, "from the ingester and the blocks")
	require.Positive(t, first.metric("neocortex_querier_fetched_series_total", `source="store-gateways"`), "the blocks were read")
	require.Positive(t, first.metric("neocortex_storegateway_index_cache_requests_total"), "the index cache was asked")
	itemsAfterFirst, err := memcachedItems(memcached)
	require.NoError(t, err)
	require.Positive(t, itemsAfterFirst, "memcached holds index cache items")

	first.kill(syscall.SIGTERM)
	require.Equal(t, 0, first.cmd.ProcessState.ExitCode(), "SIGTERM exits cleanly")
	require.NoError(t, os.RemoveAll(ingesterDir))
	restartBegan := time.Now()
	second := startNeocortex(t, "neocortex-2", args(t.TempDir())...)
	readyAfter := time.Since(restartBegan)
	queryTook := checkAnswers(second, "from the blocks alone")
	require.Zero(t, second.metric("neocortex_querier_fetched_series_total", `source="ingesters"`), "nothing came from the ingester")
	require.Positive(t, second.metric("neocortex_querier_fetched_series_total", `source="store-gateways"`), "the blocks were read")
	require.Positive(t, second.metric("neocortex_storegateway_index_cache_hits_total"), "index cache hits in memcached, filled by the first process")
	warmTook := checkAnswers(second, "from the blocks alone, again")
	require.NotContains(t, first.logs.String()+second.logs.String(), "panic", "no panic (metrics registration)")
	items, err := memcachedItems(memcached)
	require.NoError(t, err)

	// The block, downloaded from the S3 server's files, is a Prometheus
	// TSDB block that promtool reads.
	live := idx.live()
	require.Len(t, live, 1, "one block of the tenant's 30 minutes")
	blk := live[0]
	require.Equal(t, uint64(nSeries), blk.NumSeries)
	require.Equal(t, uint64(nSeries*nSamples), blk.NumSamples)
	local := t.TempDir()
	sizes := copyDir(t, filepath.Join(tenantDir, blk.ID), filepath.Join(local, blk.ID))
	out, err := exec.Command(promtool, "tsdb", "analyze", local, blk.ID).CombinedOutput()
	require.NoError(t, err, "promtool tsdb analyze:\n%s", out)
	m := regexp.MustCompile(`(?m)^(?:Total )?Series: (\d+)$`).FindSubmatch(out)
	require.NotNil(t, m, "promtool tsdb analyze:\n%s", out)
	require.Equal(t, strconv.Itoa(nSeries), string(m[1]), "series promtool counts")

	total, chunks := int64(0), int64(0)
	for name, n := range sizes {
		total += n
		if strings.HasPrefix(name, "chunks/") {
			chunks += n
		}
	}
	samples := float64(blk.NumSamples)
	t.Logf("s3 block %s: %d series, %d samples; %d bytes in the bucket (%.2f bytes/sample; chunks %.2f, index %d bytes)",
		blk.ID, blk.NumSeries, blk.NumSamples, total, float64(total)/samples, float64(chunks)/samples, sizes["index"])
	t.Logf("s3 timings: flush %s; flush to indexed and loaded %s; restart to ready %s; range query of %d samples from the blocks %s",
		flushTook.Round(time.Millisecond), indexedAfter.Round(time.Millisecond), readyAfter.Round(time.Millisecond),
		nSeries*nSamples, queryTook.Round(time.Millisecond))
	t.Logf("s3 memcached index cache: %d items after the first blocks query, %d at the end; range query from ingester and blocks with a cold cache %s; "+
		"from the blocks after the restart (cache filled) %s, again %s",
		itemsAfterFirst, items, coldTook.Round(time.Millisecond), queryTook.Round(time.Millisecond), warmTook.Round(time.Millisecond))
}

// copyDir copies the files under src to dst and returns their sizes by
// path relative to src.
func copyDir(t *testing.T, src, dst string) map[string]int64 {
	t.Helper()
	sizes := map[string]int64{}
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sizes[filepath.ToSlash(rel)] = int64(len(b))
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	require.NoError(t, err)
	return sizes
}
