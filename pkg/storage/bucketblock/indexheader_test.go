package bucketblock

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/encoding"
	"github.com/prometheus/prometheus/tsdb/index"
	"github.com/stretchr/testify/require"
)

// sectionSize returns the bytes of the section (4-byte length, content,
// CRC32) at off of the index file.
func sectionSize(t *testing.T, idx []byte, off uint64) int64 {
	return 4 + int64(binary.BigEndian.Uint32(idx[off:])) + 4
}

func TestIndexHeaderHoldsTwoSections(t *testing.T) {
	blockDir := syntheticBlock{numSeries: 20000, chunksPerSeries: 1}.write(t, t.TempDir())
	idx, err := os.ReadFile(filepath.Join(blockDir, indexFilename))
	require.NoError(t, err)
	toc, err := index.NewTOCFromByteSlice(realByteSlice(idx))
	require.NoError(t, err)

	bkt := newCountingBucket(newFilesystemBucket(t))
	id := uploadBlock(t, bkt, blockDir)
	dir := t.TempDir()
	b, err := Open(context.Background(), bkt, testTenant, id, dir, nil, nil, nil)
	require.NoError(t, err)
	defer func() { require.NoError(t, b.Close()) }()

	fn := filepath.Join(dir, testTenant, id.String(), headerFilename)
	hdr, err := os.ReadFile(fn)
	require.NoError(t, err)
	symbols := sectionSize(t, idx, toc.Symbols)
	table := sectionSize(t, idx, toc.PostingsTable)
	require.Equal(t, headerLen+symbols+table, int64(len(hdr)))
	require.Equal(t, int64(len(hdr)), b.IndexHeaderSize())
	// The two sections, verbatim.
	require.Equal(t, idx[toc.Symbols:int64(toc.Symbols)+symbols], hdr[headerLen:headerLen+symbols])
	require.Equal(t, idx[toc.PostingsTable:int64(toc.PostingsTable)+table], hdr[headerLen+symbols:])
	require.Less(t, int64(len(hdr))*4, int64(len(idx)), "the index-header is much smaller than the index")
	t.Logf("index %d bytes, index-header %d bytes", len(idx), len(hdr))

	// Open read the meta, the index's size and three ranges of it: the
	// TOC, the symbols (with the index's magic and version before them)
	// and the postings offset table.
	reads, gets, attrs := bkt.counts()
	require.Equal(t, map[string]int{"index": 3}, reads)
	require.Equal(t, map[string]int{"meta.json": 1}, gets)
	require.Equal(t, map[string]int{"index": 1}, attrs)
}

func TestIndexHeaderReusedOnReopen(t *testing.T) {
	blockDir := syntheticBlock{numSeries: 500, chunksPerSeries: 1}.write(t, t.TempDir())
	bkt := newCountingBucket(newFilesystemBucket(t))
	id := uploadBlock(t, bkt, blockDir)
	dir := t.TempDir()
	fn := filepath.Join(dir, testTenant, id.String(), headerFilename)
	ms := []*labels.Matcher{eq("job", "job-1")}

	query := func(b *Block) []blockSeries {
		got, err := querySeries(context.Background(), t, b, 0, 1<<62, withSamples, ms)
		require.NoError(t, err)
		require.Len(t, got, 50)
		return got
	}
	b, err := Open(context.Background(), bkt, testTenant, id, dir, nil, nil, nil)
	require.NoError(t, err)
	want := query(b)
	require.NoError(t, b.Close())
	built, err := os.Stat(fn)
	require.NoError(t, err)

	cases := []struct {
		name    string
		damage  func(t *testing.T)
		rebuilt bool
	}{
		{"valid", func(*testing.T) {}, false},
		{"truncated", func(t *testing.T) { require.NoError(t, os.Truncate(fn, built.Size()-10)) }, true},
		{"corrupt postings offset table", func(t *testing.T) { flipByte(t, fn, built.Size()-20) }, true},
		{"corrupt symbols", func(t *testing.T) { flipByte(t, fn, headerLen+12) }, true},
		{"corrupt header", func(t *testing.T) { flipByte(t, fn, 10) }, true},
		{"missing", func(t *testing.T) { require.NoError(t, os.Remove(fn)) }, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.damage(t)
			bkt.reset()
			b, err := Open(context.Background(), bkt, testTenant, id, dir, nil, nil, nil)
			require.NoError(t, err)
			defer func() { require.NoError(t, b.Close()) }()
			reads, gets, attrs := bkt.counts()
			if c.rebuilt {
				require.Equal(t, map[string]int{"index": 3}, reads)
				require.Equal(t, map[string]int{"index": 1}, attrs)
			} else {
				require.Equal(t, map[string]int{}, reads)
				require.Equal(t, map[string]int{}, attrs)
			}
			require.Equal(t, map[string]int{}, gets, "meta.json is kept locally")
			require.Equal(t, want, query(b))
		})
	}
}

func flipByte(t *testing.T, fn string, off int64) {
	f, err := os.OpenFile(fn, os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()
	var b [1]byte
	_, err = f.ReadAt(b[:], off)
	require.NoError(t, err)
	b[0] ^= 0xff
	_, err = f.WriteAt(b[:], off)
	require.NoError(t, err)
}

func TestOpenErrors(t *testing.T) {
	blockDir := syntheticBlock{numSeries: 100, chunksPerSeries: 1}.write(t, t.TempDir())
	idx, err := os.ReadFile(filepath.Join(blockDir, indexFilename))
	require.NoError(t, err)

	cases := []struct {
		name    string
		tenant  string
		prepare func(t *testing.T, bkt *countingBucket, prefix string)
		wantErr string
	}{
		{"index format v1", testTenant, func(t *testing.T, bkt *countingBucket, prefix string) {
			v1 := bytes.Clone(idx)
			v1[4] = index.FormatV1
			require.NoError(t, bkt.Upload(context.Background(), prefix+"/index", bytes.NewReader(v1)))
		}, "unsupported index format version 1, only 2 is supported"},
		{"bad TOC", testTenant, func(t *testing.T, bkt *countingBucket, prefix string) {
			bad := bytes.Clone(idx)
			bad[len(bad)-10] ^= 0xff
			require.NoError(t, bkt.Upload(context.Background(), prefix+"/index", bytes.NewReader(bad)))
		}, encoding.ErrInvalidChecksum.Error()},
		{"corrupt symbols in the bucket", testTenant, func(t *testing.T, bkt *countingBucket, prefix string) {
			bad := bytes.Clone(idx)
			bad[index.HeaderLen+10] ^= 0xff
			require.NoError(t, bkt.Upload(context.Background(), prefix+"/index", bytes.NewReader(bad)))
		}, "read symbols"},
		{"index missing", testTenant, func(t *testing.T, bkt *countingBucket, prefix string) {
			require.NoError(t, bkt.Delete(context.Background(), prefix+"/index"))
		}, "stat"},
		{"meta missing", testTenant, func(t *testing.T, bkt *countingBucket, prefix string) {
			require.NoError(t, bkt.Delete(context.Background(), prefix+"/meta.json"))
		}, "meta.json"},
		{"index reads fail", testTenant, func(_ *testing.T, bkt *countingBucket, _ string) {
			bkt.failGetRange = "/index"
		}, "injected failure"},
		{"tenant with a slash", "a/b", func(*testing.T, *countingBucket, string) {}, "invalid tenant"},
		{"dot-dot tenant", "..", func(*testing.T, *countingBucket, string) {}, "invalid tenant"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bkt := newCountingBucket(newFilesystemBucket(t))
			id := uploadBlock(t, bkt, blockDir)
			c.prepare(t, bkt, testTenant+"/"+id.String())
			dir := t.TempDir()
			m := NewMetrics(prometheus.NewRegistry())
			b, err := Open(context.Background(), bkt, c.tenant, id, dir, nil, nil, m)
			require.ErrorContains(t, err, c.wantErr)
			require.Nil(t, b)
			// No index-header is left behind.
			_, err = os.Stat(filepath.Join(dir, testTenant, id.String(), headerFilename))
			require.ErrorIs(t, err, os.ErrNotExist)
		})
	}
}

// TestPostingsLookups checks the index-header's look-ups against the
// index's own postings offset table.
func TestPostingsLookups(t *testing.T) {
	blockDir := syntheticBlock{numSeries: 5000, chunksPerSeries: 1}.write(t, t.TempDir())
	ir, err := index.NewFileReader(filepath.Join(blockDir, indexFilename), index.DecodePostingsRaw)
	require.NoError(t, err)
	defer ir.Close()
	ranges, err := ir.PostingsRanges()
	require.NoError(t, err)

	bkt := newFilesystemBucket(t)
	id := uploadBlock(t, bkt, blockDir)
	b, err := Open(context.Background(), bkt, testTenant, id, t.TempDir(), nil, nil, nil)
	require.NoError(t, err)
	defer func() { require.NoError(t, b.Close()) }()
	ctx := context.Background()
	h := b.header

	names, err := ir.LabelNames(ctx)
	require.NoError(t, err)
	require.Equal(t, names, h.labelNames)
	for _, name := range names {
		values, err := ir.SortedLabelValues(ctx, name, nil)
		require.NoError(t, err)
		got, err := h.labelValues(ctx, name)
		require.NoError(t, err)
		require.Equal(t, values, got)

		all, err := h.postingsRanges(ctx, name, nil)
		require.NoError(t, err)
		require.Len(t, all, len(values))
		for i, r := range all {
			want := ranges[labels.Label{Name: name, Value: values[i]}]
			// The index's range is the list without length and CRC32; the
			// header's runs from the length to the next list.
			require.Equal(t, want.Start-4, r.start, "%s=%s", name, values[i])
			require.GreaterOrEqual(t, r.end, want.End+4)
			require.Less(t, r.end, want.End+8)
		}
		// Looking values up one by one, or all at once, and some that
		// are not there.
		lookups := append([]string{""}, values...)
		lookups = append(lookups, "~~~")
		got2, err := h.postingsRangesFor(ctx, name, lookups)
		require.NoError(t, err)
		require.Equal(t, all, got2)
		for i, v := range values {
			one, err := h.postingsRangesFor(ctx, name, []string{v})
			require.NoError(t, err)
			require.Equal(t, []postingsRange{all[i]}, one)
		}
	}
	none, err := h.postingsRangesFor(ctx, "nonexistent", []string{"a"})
	require.NoError(t, err)
	require.Empty(t, none)

	// The samples: every 32nd value and the last of each name.
	require.Len(t, h.samples["job"], 1+1)
	require.Len(t, h.samples["pod"], (1250+31)/32+1)
}

// TestIndexHeaderRangesAreExact checks that building the index-header
// reads no byte it does not keep.
func TestIndexHeaderRangesAreExact(t *testing.T) {
	blockDir := syntheticBlock{numSeries: 300, chunksPerSeries: 1}.write(t, t.TempDir())
	bkt := newFilesystemBucket(t)
	id := uploadBlock(t, bkt, blockDir)
	m := NewMetrics(prometheus.NewRegistry())
	b, err := Open(context.Background(), bkt, testTenant, id, t.TempDir(), nil, nil, m)
	require.NoError(t, err)
	defer func() { require.NoError(t, b.Close()) }()
	rc, err := bkt.Get(context.Background(), testTenant+"/"+id.String()+"/index")
	require.NoError(t, err)
	idx, err := io.ReadAll(rc)
	require.NoError(t, err)
	require.NoError(t, rc.Close())
	toc, err := index.NewTOCFromByteSlice(realByteSlice(idx))
	require.NoError(t, err)
	// The TOC, the index header and symbols, the postings offset table:
	// read up to their CRC32, not the padding after.
	want := float64(indexTOCLen + index.HeaderLen + sectionSize(t, idx, toc.Symbols) + sectionSize(t, idx, toc.PostingsTable))
	require.Equal(t, want, testutil.ToFloat64(m.bytesRead.WithLabelValues(kindIndexHeader)))
}
