// Package bucketblock serves queries over a Prometheus TSDB block straight
// from object storage. Opening a block copies only its index-header (the
// index's symbol table and postings offset table) to local disk; a query
// then range-reads the postings lists, series entries and chunks it needs,
// caching postings and series in an IndexCache.
package bucketblock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/thanos-io/objstore"
)

// Files of a block in the bucket and in the local directory.
const (
	metaFilename  = "meta.json"
	indexFilename = "index"
	chunksDirname = "chunks"
)

// Tuning of range reads. A range read costs about as much as reading some
// more bytes, so nearby ranges are read at once.
const (
	// maxGapBytes is the most unwanted bytes read to join two ranges.
	maxGapBytes = 16 << 10
	// maxRangeBytes bounds one range read: large reads are split so that
	// they proceed in parallel.
	maxRangeBytes = 16 << 20
	// maxConcurrentReads bounds the range reads in flight for one query.
	maxConcurrentReads = 16
	// seriesBatchSize is how many series a query reads (entries, then
	// chunks) before it hands them to its caller.
	seriesBatchSize = 4096
	// defaultChunkSizeEstimate is read for a chunk whose size nothing
	// tells; one that turns out larger is read again alone.
	defaultChunkSizeEstimate = 4 << 10
)

// ErrClosed is returned by the queries on a closed Block.
var ErrClosed = errors.New("block is closed")

// Block is one block of a tenant in the bucket, open for queries. It is safe
// for concurrent use; Close waits for the queries in flight.
type Block struct {
	bkt     objstore.BucketReader
	tenant  string
	meta    tsdb.BlockMeta
	prefix  string // Of the block's objects in the bucket.
	header  *indexHeader
	cache   IndexCache
	metrics *Metrics

	indexName string
	// What is read past the start of the last series entry or chunk of a
	// range, whose size nothing tells.
	seriesSizeEstimate int64
	chunkSizeEstimate  int64

	// mtx is held for reading by every query: Close unmaps the
	// index-header only once none is running.
	mtx    sync.RWMutex
	closed bool
}

// Open loads (or builds) the block's index-header under dir, in
// <dir>/<tenant>/<block>/, beside a copy of its meta.json. It reads from the
// bucket only meta.json, the index's size, its TOC and its symbol table and
// postings offset table; reopening a block whose local files are valid reads
// nothing from the bucket. cache may be nil (no caching), logger and m too.
func Open(ctx context.Context, bkt objstore.BucketReader, tenant string, id ulid.ULID, dir string, cache IndexCache, logger *slog.Logger, m *Metrics) (*Block, error) {
	if tenant == "" || tenant == "." || tenant == ".." || strings.ContainsAny(tenant, `/\`) {
		return nil, fmt.Errorf("open block %s: invalid tenant %q", id, tenant)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	blockDir := filepath.Join(dir, tenant, id.String())
	prefix := path.Join(tenant, id.String())

	meta, err := loadMeta(ctx, bkt, path.Join(prefix, metaFilename), blockDir, id)
	if err != nil {
		return nil, fmt.Errorf("open block %s: %w", id, err)
	}
	indexName := path.Join(prefix, indexFilename)
	h, err := openHeader(ctx, bkt, indexName, blockDir, logger, m)
	if err != nil {
		return nil, fmt.Errorf("open block %s: %w", id, err)
	}
	b := &Block{
		bkt:       bkt,
		tenant:    tenant,
		meta:      *meta,
		prefix:    prefix,
		header:    h,
		cache:     cache,
		metrics:   m,
		indexName: indexName,

		chunkSizeEstimate: defaultChunkSizeEstimate,
	}
	b.seriesSizeEstimate = 4 << 10
	if n := int64(meta.Stats.NumSeries); n > 0 {
		// Entries are 16-byte aligned and vary in size: read a few times the
		// mean past the last entry of a range so that it is seldom read twice.
		mean := (h.seriesEnd - int64(h.toc.Series)) / n
		b.seriesSizeEstimate = min(max(4*mean, 512), 64<<10)
	}
	m.blocksOpen.Inc()
	return b, nil
}

// loadMeta reads the block's meta.json from the local copy in blockDir, or
// from the bucket (keeping a local copy).
func loadMeta(ctx context.Context, bkt objstore.BucketReader, name, blockDir string, id ulid.ULID) (*tsdb.BlockMeta, error) {
	local := filepath.Join(blockDir, metaFilename)
	if data, err := os.ReadFile(local); err == nil {
		if meta, err := parseMeta(data, id); err == nil {
			return meta, nil
		}
	}
	rc, err := bkt.Get(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	data, err := io.ReadAll(rc)
	_ = rc.Close()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	meta, err := parseMeta(data, id)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := writeFileAtomic(local, data); err != nil {
		return nil, fmt.Errorf("keep a copy of %s: %w", name, err)
	}
	return meta, nil
}

func parseMeta(data []byte, id ulid.ULID) (*tsdb.BlockMeta, error) {
	var meta tsdb.BlockMeta
	if err := json.Unmarshal(data, &meta); err != nil {
		return nil, fmt.Errorf("decode meta: %w", err)
	}
	if meta.Version != 1 {
		return nil, fmt.Errorf("unsupported meta version %d", meta.Version)
	}
	if meta.ULID != id {
		return nil, fmt.Errorf("meta is of block %s", meta.ULID)
	}
	return &meta, nil
}

func writeFileAtomic(fn string, data []byte) (err error) {
	if err := os.MkdirAll(filepath.Dir(fn), 0o750); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(fn), filepath.Base(fn)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), fn)
}

// Meta returns the block's meta.json.
func (b *Block) Meta() tsdb.BlockMeta { return b.meta }

// IndexHeaderSize returns the bytes of the block's index-header file.
func (b *Block) IndexHeaderSize() int64 { return int64(b.header.size()) }

// Close releases the index-header once the queries in flight are done. The
// local files stay, for a later Open.
func (b *Block) Close() error {
	b.mtx.Lock()
	defer b.mtx.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	b.metrics.blocksOpen.Dec()
	if err := b.header.close(); err != nil {
		return fmt.Errorf("close index-header of block %s: %w", b.meta.ULID, err)
	}
	return nil
}

// acquire holds the block open for a query; release with b.mtx.RUnlock.
func (b *Block) acquire() error {
	b.mtx.RLock()
	if b.closed {
		b.mtx.RUnlock()
		return ErrClosed
	}
	return nil
}
