package bucketblock

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"github.com/prometheus/prometheus/tsdb/encoding"
	"github.com/prometheus/prometheus/tsdb/fileutil"
	"github.com/prometheus/prometheus/tsdb/index"
	"github.com/thanos-io/objstore"
)

// The index-header is the part of a block's index that a query needs before
// it knows which ranges of the index to read: the symbol table and the
// postings offset table, copied verbatim, behind a fixed header:
//
//	magic            4  headerMagic
//	version          1  headerVersion
//	index version    1  index.FormatV2
//	reserved         2
//	index size       8  bytes of the index file in the bucket
//	TOC              48 the index's six section offsets
//	symbols length   8  bytes of the symbol table section that follows
//	table length     8  bytes of the postings offset table section after it
//	CRC32            4  Castagnoli, of everything above
//
// All integers are big-endian. Each section keeps its own length prefix and
// CRC32, which are checked every time the file is opened.
const (
	headerFilename = "index-header"
	headerMagic    = 0x4E434948 // "NCIH"
	headerVersion  = 1
	headerLen      = 4 + 1 + 1 + 2 + 8 + 6*8 + 8 + 8 + 4

	// indexTOCLen is the size of the TOC at the end of an index file.
	indexTOCLen = 6*8 + crc32.Size
	// postingsSampleFactor: one in so many values of each label name is
	// kept in memory, as in Prometheus' index.Reader.
	postingsSampleFactor = 32
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// postingsSample is one value of a label name kept in memory, and where its
// entry starts in the postings offset table.
type postingsSample struct {
	value    string
	tableOff int
}

// postingsRange is where the postings list of one label pair lies in the
// index: [start, end) holds its length prefix, the list, its CRC32 and the
// padding before the next list.
type postingsRange struct {
	name, value string
	start, end  int64
}

// indexHeader answers symbol and postings-offset look-ups for one block from
// the memory-mapped index-header file. It keeps in memory only every 32nd
// symbol offset and every 32nd value of each label name (plus the last one).
type indexHeader struct {
	f         *fileutil.MmapFile
	b         []byte
	indexSize int64
	toc       index.TOC

	symbols     *index.Symbols
	nameSymbols map[uint32]string

	// table is the content of the postings offset table: a 4-byte count
	// then the entries. Sample offsets are relative to it.
	table      []byte
	samples    map[string][]postingsSample
	labelNames []string // Sorted, without the all-postings key's empty name.

	seriesEnd   int64 // End of the series section in the index.
	postingsEnd int64 // End of the last postings list in the index.
}

// nextSection returns the smallest TOC offset past off, or def when there
// is none: the end of the section that starts at off.
func nextSection(toc *index.TOC, off, def uint64) uint64 {
	end := def
	for _, o := range []uint64{toc.Symbols, toc.Series, toc.LabelIndices, toc.LabelIndicesTable, toc.Postings, toc.PostingsTable} {
		if o > off && o < end {
			end = o
		}
	}
	return end
}

// openHeader opens the index-header in dir, building it from the block's
// index in the bucket when it is missing or unreadable.
func openHeader(ctx context.Context, bkt objstore.BucketReader, indexName, dir string, logger *slog.Logger, m *Metrics) (*indexHeader, error) {
	fn := filepath.Join(dir, headerFilename)
	h, err := loadHeader(fn)
	if err == nil {
		return h, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		logger.Warn("rebuilding unreadable index-header", "file", fn, "err", err)
	}
	start := time.Now()
	if err := buildHeader(ctx, bkt, indexName, fn, m); err != nil {
		m.headerBuildFail.Inc()
		return nil, fmt.Errorf("build index-header: %w", err)
	}
	m.headerBuild.Observe(time.Since(start).Seconds())
	h, err = loadHeader(fn)
	if err != nil {
		// What was just copied from the bucket is damaged; do not keep it.
		_ = os.Remove(fn)
		return nil, fmt.Errorf("load index-header built from %s: %w", indexName, err)
	}
	return h, nil
}

// buildHeader range-reads the TOC, the symbol table and the postings offset
// table of the index and writes the index-header to fn, atomically.
func buildHeader(ctx context.Context, bkt objstore.BucketReader, indexName, fn string, m *Metrics) (err error) {
	attrs, err := bkt.Attributes(ctx, indexName)
	if err != nil {
		return fmt.Errorf("stat %s: %w", indexName, err)
	}
	size := attrs.Size
	if size < index.HeaderLen+indexTOCLen {
		return fmt.Errorf("index %s of %d bytes is too small", indexName, size)
	}
	tocBytes, err := readAll(ctx, bkt, indexName, size-indexTOCLen, indexTOCLen, m, kindIndexHeader)
	if err != nil {
		return err
	}
	toc, err := index.NewTOCFromByteSlice(realByteSlice(tocBytes))
	if err != nil {
		return fmt.Errorf("read TOC of %s: %w", indexName, err)
	}
	if toc.Symbols != index.HeaderLen {
		return fmt.Errorf("index %s: symbol table at %d, want %d", indexName, toc.Symbols, index.HeaderLen)
	}
	tocEnd := uint64(size - indexTOCLen)
	if toc.PostingsTable >= tocEnd || toc.Series > tocEnd || toc.Postings > toc.PostingsTable {
		return fmt.Errorf("index %s: TOC %+v does not fit %d bytes", indexName, *toc, size)
	}

	if err := os.MkdirAll(filepath.Dir(fn), 0o750); err != nil {
		return fmt.Errorf("create index-header directory: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(fn), headerFilename+".tmp-*")
	if err != nil {
		return fmt.Errorf("create index-header: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(make([]byte, headerLen)); err != nil {
		return fmt.Errorf("write index-header: %w", err)
	}

	// The index starts with its magic and version, then the symbol table:
	// one read checks the version and copies the table.
	symEnd := nextSection(toc, toc.Symbols, tocEnd)
	symLen, err := copySection(ctx, bkt, indexName, 0, int64(symEnd), tmp, m, func(r io.Reader) error {
		var hdr [index.HeaderLen]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return fmt.Errorf("read index header: %w", err)
		}
		if mg := binary.BigEndian.Uint32(hdr[:4]); mg != index.MagicIndex {
			return fmt.Errorf("index %s: invalid magic number %x", indexName, mg)
		}
		if v := hdr[4]; v != index.FormatV2 {
			return fmt.Errorf("index %s: unsupported index format version %d, only %d is supported", indexName, v, index.FormatV2)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("copy symbol table: %w", err)
	}
	tableLen, err := copySection(ctx, bkt, indexName, int64(toc.PostingsTable), int64(tocEnd-toc.PostingsTable), tmp, m, nil)
	if err != nil {
		return fmt.Errorf("copy postings offset table: %w", err)
	}

	var e encoding.Encbuf
	e.PutBE32(headerMagic)
	e.PutByte(headerVersion)
	e.PutByte(index.FormatV2)
	e.PutBytes([]byte{0, 0})
	e.PutBE64(uint64(size))
	for _, o := range tocValues(toc) {
		e.PutBE64(o)
	}
	e.PutBE64(uint64(symLen))
	e.PutBE64(uint64(tableLen))
	e.PutBE32(crc32.Checksum(e.Get(), castagnoli))
	if _, err := tmp.WriteAt(e.Get(), 0); err != nil {
		return fmt.Errorf("write index-header: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("sync index-header: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close index-header: %w", err)
	}
	if err := os.Rename(tmp.Name(), fn); err != nil {
		return fmt.Errorf("rename index-header: %w", err)
	}
	return nil
}

func tocValues(toc *index.TOC) []uint64 {
	return []uint64{toc.Symbols, toc.Series, toc.LabelIndices, toc.LabelIndicesTable, toc.Postings, toc.PostingsTable}
}

// copySection range-reads [off, off+length) of the index, lets skip consume
// what precedes the section, then copies one section (4-byte length,
// content, CRC32) to w and returns its size. The rest of the range is
// padding and is not read.
func copySection(ctx context.Context, bkt objstore.BucketReader, name string, off, length int64, w io.Writer, m *Metrics, skip func(io.Reader) error) (int64, error) {
	rc, err := bkt.GetRange(ctx, name, off, length)
	if err != nil {
		return 0, fmt.Errorf("read %s bytes %d-%d: %w", name, off, off+length, err)
	}
	defer rc.Close()
	cr := &countingReader{r: rc}
	defer func() {
		m.rangeReads.WithLabelValues(kindIndexHeader).Inc()
		m.bytesRead.WithLabelValues(kindIndexHeader).Add(float64(cr.n))
	}()
	if skip != nil {
		if err := skip(cr); err != nil {
			return 0, err
		}
	}
	var lenBuf [4]byte
	if _, err := io.ReadFull(cr, lenBuf[:]); err != nil {
		return 0, fmt.Errorf("read section length: %w", err)
	}
	l := int64(binary.BigEndian.Uint32(lenBuf[:]))
	if cr.n+l+crc32.Size > length {
		return 0, fmt.Errorf("section of %d bytes at %d overflows its %d bytes", l, off, length)
	}
	if _, err := w.Write(lenBuf[:]); err != nil {
		return 0, fmt.Errorf("write section: %w", err)
	}
	n, err := io.CopyN(w, cr, l+crc32.Size)
	if err != nil {
		return 0, fmt.Errorf("copy section of %s: %w", name, err)
	}
	return n + 4, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// loadHeader memory-maps and checks an index-header, and samples its
// postings offset table.
func loadHeader(fn string) (_ *indexHeader, err error) {
	f, err := fileutil.OpenMmapFile(fn)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
		}
	}()
	b := f.Bytes()
	if len(b) < headerLen {
		return nil, fmt.Errorf("index-header of %d bytes is too small", len(b))
	}
	d := encoding.Decbuf{B: b[:headerLen]}
	if crc := binary.BigEndian.Uint32(b[headerLen-4:]); crc != crc32.Checksum(b[:headerLen-4], castagnoli) {
		return nil, fmt.Errorf("index-header: %w", encoding.ErrInvalidChecksum)
	}
	if mg := d.Be32(); mg != headerMagic {
		return nil, fmt.Errorf("index-header: invalid magic number %x", mg)
	}
	if v := d.Byte(); v != headerVersion {
		return nil, fmt.Errorf("index-header: unsupported version %d", v)
	}
	if v := d.Byte(); v != index.FormatV2 {
		return nil, fmt.Errorf("index-header: unsupported index format version %d", v)
	}
	d.Skip(2)
	h := &indexHeader{f: f, b: b, indexSize: int64(d.Be64())}
	h.toc = index.TOC{
		Symbols: d.Be64(), Series: d.Be64(), LabelIndices: d.Be64(),
		LabelIndicesTable: d.Be64(), Postings: d.Be64(), PostingsTable: d.Be64(),
	}
	symLen, tableLen := d.Be64(), d.Be64()
	if d.Err() != nil {
		return nil, fmt.Errorf("index-header: %w", d.Err())
	}
	if uint64(len(b)) != headerLen+symLen+tableLen {
		return nil, fmt.Errorf("index-header of %d bytes, want %d", len(b), headerLen+symLen+tableLen)
	}
	tocEnd := uint64(h.indexSize - indexTOCLen)
	h.seriesEnd = int64(nextSection(&h.toc, h.toc.Series, tocEnd))
	h.postingsEnd = int64(nextSection(&h.toc, h.toc.Postings, tocEnd))

	h.symbols, err = index.NewSymbols(realByteSlice(b), index.FormatV2, headerLen)
	if err != nil {
		return nil, fmt.Errorf("read symbols: %w", err)
	}
	tableOff := headerLen + int(symLen)
	td := encoding.NewDecbufAt(realByteSlice(b), tableOff, nil)
	if td.Err() != nil {
		return nil, fmt.Errorf("read postings offset table: %w", td.Err())
	}
	h.table = td.Get()
	if err := h.samplePostings(realByteSlice(b), tableOff); err != nil {
		return nil, err
	}
	h.nameSymbols = make(map[uint32]string, len(h.samples))
	for name := range h.samples {
		if name == "" {
			continue
		}
		ref, err := h.symbols.ReverseLookup(name)
		if err != nil {
			return nil, fmt.Errorf("look up symbol of label name %q: %w", name, err)
		}
		h.nameSymbols[ref] = name
		h.labelNames = append(h.labelNames, name)
	}
	slices.Sort(h.labelNames)
	return h, nil
}

// samplePostings reads the whole postings offset table (checking its CRC32)
// and keeps every postingsSampleFactor-th value of each name plus its last.
// It also checks that the postings lists are laid out in table order, which
// is what lets the next entry's offset bound each list.
func (h *indexHeader) samplePostings(bs realByteSlice, tableOff int) error {
	h.samples = map[string][]postingsSample{}
	var (
		cur     []postingsSample
		curName string
		started bool
		count   int
		prevOff uint64
		// The last value of the current name, when not sampled: it points
		// into the mapped file and is copied only at the end of the name.
		lastValue []byte
		lastOff   int
		lastSet   bool
	)
	flush := func() {
		if lastSet {
			cur = append(cur, postingsSample{value: string(lastValue), tableOff: lastOff})
		}
		if started {
			h.samples[curName] = slices.Clip(cur)
		}
	}
	err := index.ReadPostingsOffsetTable(bs, uint64(tableOff), func(name, value []byte, off uint64, labelOffset int) error {
		if off < prevOff || int64(off) < int64(h.toc.Postings) || int64(off) >= h.postingsEnd {
			return fmt.Errorf("postings list of %q=%q at %d is out of order or outside the postings section", name, value, off)
		}
		prevOff = off
		if !started || string(name) != curName {
			flush()
			curName, cur, count, lastSet, started = string(name), nil, 0, false, true
			if _, dup := h.samples[curName]; dup {
				return fmt.Errorf("label name %q is not contiguous in the postings offset table", name)
			}
		}
		if count%postingsSampleFactor == 0 {
			cur = append(cur, postingsSample{value: string(value), tableOff: labelOffset})
			lastSet = false
		} else {
			lastValue, lastOff, lastSet = value, labelOffset, true
		}
		count++
		return nil
	})
	if err != nil {
		return fmt.Errorf("read postings offset table: %w", err)
	}
	flush()
	return nil
}

func (h *indexHeader) close() error { return h.f.Close() }

// lookupSymbol resolves a symbol reference of a series entry. Label names,
// half of all look-ups, come from a map; values are copied out of the file.
func (h *indexHeader) lookupSymbol(_ context.Context, ref uint32) (string, error) {
	if s, ok := h.nameSymbols[ref]; ok {
		return s, nil
	}
	return h.symbols.Lookup(ref)
}

// symbolCache remembers the symbols one query looked up: most label values
// repeat from series to series. It is direct-mapped, so bounded, and not
// safe for concurrent use.
type symbolCache struct {
	h    *indexHeader
	refs [symbolCacheSize]uint32
	vals [symbolCacheSize]string
}

const symbolCacheSize = 1024

func newSymbolCache(h *indexHeader) *symbolCache {
	c := &symbolCache{h: h}
	for i := range c.refs {
		c.refs[i] = ^uint32(0) // No symbol has this reference: it is past 4 GiB.
	}
	return c
}

func (c *symbolCache) lookup(ctx context.Context, ref uint32) (string, error) {
	i := ref % symbolCacheSize
	if c.refs[i] == ref {
		return c.vals[i], nil
	}
	s, err := c.h.lookupSymbol(ctx, ref)
	if err != nil {
		return "", err
	}
	c.refs[i], c.vals[i] = ref, s
	return s, nil
}

// scanName walks the postings offset table from off (an entry of name) to
// the last entry of name, calling f with each value and its postings range.
// The value is only valid during the call. f stops the walk by returning
// false.
func (h *indexHeader) scanName(ctx context.Context, name string, off int, f func(value []byte, start, end int64) bool) error {
	if off < 0 || off > len(h.table) {
		return fmt.Errorf("postings offset table position %d out of range", off)
	}
	d := encoding.Decbuf{B: h.table[off:]}
	var (
		pendingValue []byte
		pendingOff   uint64
		pending      bool
	)
	for i := 0; ; i++ {
		if i%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if d.Len() == 0 {
			if pending {
				f(pendingValue, int64(pendingOff), h.postingsEnd)
			}
			return nil
		}
		if k := d.Uvarint(); k != 2 && d.Err() == nil {
			return fmt.Errorf("postings offset table entry with %d keys", k)
		}
		n := d.UvarintBytes()
		v := d.UvarintBytes()
		o := d.Uvarint64()
		if d.Err() != nil {
			return fmt.Errorf("read postings offset table: %w", d.Err())
		}
		if pending && !f(pendingValue, int64(pendingOff), int64(o)) {
			return nil
		}
		if string(n) != name {
			return nil
		}
		pendingValue, pendingOff, pending = v, o, true
	}
}

// postingsRanges returns the postings ranges of the values of name that
// match (all of them when match is nil), in value order.
func (h *indexHeader) postingsRanges(ctx context.Context, name string, match func(string) bool) ([]postingsRange, error) {
	e := h.samples[name]
	if len(e) == 0 {
		return nil, nil
	}
	var out []postingsRange
	err := h.scanName(ctx, name, e[0].tableOff, func(v []byte, start, end int64) bool {
		if match == nil || match(yoloString(v)) {
			out = append(out, postingsRange{name: name, value: string(v), start: start, end: end})
		}
		return true
	})
	return out, err
}

// postingsRangesFor returns the postings ranges of those of values (sorted,
// without duplicates) that name has in the block.
func (h *indexHeader) postingsRangesFor(ctx context.Context, name string, values []string) ([]postingsRange, error) {
	e := h.samples[name]
	if len(e) == 0 {
		return nil, nil
	}
	var out []postingsRange
	for _, value := range values {
		i := sort.Search(len(e), func(i int) bool { return e[i].value >= value })
		if i == len(e) {
			break // Past the last value; so are the rest.
		}
		if e[i].value != value {
			if i == 0 {
				continue // Before the first value.
			}
			i--
		}
		err := h.scanName(ctx, name, e[i].tableOff, func(v []byte, start, end int64) bool {
			if string(v) == value {
				out = append(out, postingsRange{name: name, value: value, start: start, end: end})
			}
			return string(v) < value
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// labelValues returns the values of name, sorted.
func (h *indexHeader) labelValues(ctx context.Context, name string) ([]string, error) {
	e := h.samples[name]
	if len(e) == 0 {
		return nil, nil
	}
	out := make([]string, 0, len(e)*postingsSampleFactor/2)
	err := h.scanName(ctx, name, e[0].tableOff, func(v []byte, _, _ int64) bool {
		out = append(out, string(v))
		return true
	})
	return out, err
}

// size returns the bytes of the index-header file.
func (h *indexHeader) size() int { return len(h.b) }

type realByteSlice []byte

func (b realByteSlice) Len() int                    { return len(b) }
func (b realByteSlice) Range(start, end int) []byte { return b[start:end] }
