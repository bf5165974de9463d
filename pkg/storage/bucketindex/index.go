// Package bucketindex is the per-tenant list of blocks and deletion marks,
// kept in <tenant>/bucket-index.json.gz, so that queriers and store-gateways
// need not list the bucket. The compactor writes it; everyone else reads it.
package bucketindex

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/thanos-io/objstore"
)

// IndexVersion is the version of the index format written by this code.
const IndexVersion = 1

// ErrIndexNotFound is returned by ReadIndex when a tenant has no index yet.
var ErrIndexNotFound = errors.New("bucket index not found")

// Index lists a tenant's blocks and deletion marks.
type Index struct {
	Version int `json:"version"`
	// Blocks are the complete blocks (meta.json present), by MinTime.
	Blocks []*Block `json:"blocks"`
	// DeletionMarks are the blocks marked for deletion; they are also in
	// Blocks until they are deleted.
	DeletionMarks []*DeletionMark `json:"block_deletion_marks"`
	// UpdatedAt is when the index was written, in Unix seconds.
	UpdatedAt int64 `json:"updated_at"`
}

// Block is a block's entry in the index.
type Block struct {
	ID ulid.ULID `json:"block_id"`
	// MinTime and MaxTime are the block's range in milliseconds; MaxTime
	// is exclusive, as in the TSDB.
	MinTime int64 `json:"min_time"`
	MaxTime int64 `json:"max_time"`
	// UploadedAt is when meta.json was found, in Unix seconds.
	UploadedAt      int64  `json:"uploaded_at"`
	CompactionLevel int    `json:"compaction_level"`
	NumSeries       uint64 `json:"num_series"`
	NumSamples      uint64 `json:"num_samples"`
	// NoCompact is set when the block carries a no-compact mark.
	NoCompact bool `json:"no_compact,omitempty"`
	// OutOfOrder is set for blocks cut from out-of-order data.
	OutOfOrder bool `json:"out_of_order,omitempty"`
}

// Within reports whether the block holds samples in [mint, maxt] (ms).
func (b *Block) Within(mint, maxt int64) bool { return b.MinTime <= maxt && mint < b.MaxTime }

// DeletionMarkMap returns the deletion marks by block.
func (idx *Index) DeletionMarkMap() map[ulid.ULID]*DeletionMark {
	m := make(map[ulid.ULID]*DeletionMark, len(idx.DeletionMarks))
	for _, d := range idx.DeletionMarks {
		m[d.ID] = d
	}
	return m
}

// Queryable returns the blocks a query over [mint, maxt] must read: those
// overlapping the range and not marked for deletion.
func (idx *Index) Queryable(mint, maxt int64) []*Block {
	marks := idx.DeletionMarkMap()
	var out []*Block
	for _, b := range idx.Blocks {
		if _, deleted := marks[b.ID]; !deleted && b.Within(mint, maxt) {
			out = append(out, b)
		}
	}
	return out
}

// IndexPath is the index's object name.
func IndexPath(tenant string) string { return path.Join(tenant, IndexFilename) }

// ReadIndex reads a tenant's index; ErrIndexNotFound if it has none.
func ReadIndex(ctx context.Context, bkt objstore.BucketReader, tenant string) (*Index, error) {
	r, err := bkt.Get(ctx, IndexPath(tenant))
	if bkt.IsObjNotFoundErr(err) {
		return nil, ErrIndexNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get bucket index of tenant %s: %w", tenant, err)
	}
	defer r.Close()
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("read bucket index of tenant %s: %w", tenant, err)
	}
	b, err := io.ReadAll(gz)
	if err != nil {
		return nil, fmt.Errorf("read bucket index of tenant %s: %w", tenant, err)
	}
	var idx Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("decode bucket index of tenant %s: %w", tenant, err)
	}
	if idx.Version != IndexVersion {
		return nil, fmt.Errorf("bucket index of tenant %s has version %d, want %d", tenant, idx.Version, IndexVersion)
	}
	return &idx, nil
}

// WriteIndex writes a tenant's index.
func WriteIndex(ctx context.Context, bkt objstore.Bucket, tenant string, idx *Index) error {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	if err := json.NewEncoder(gz).Encode(idx); err != nil {
		return err
	}
	if err := gz.Close(); err != nil {
		return err
	}
	if err := bkt.Upload(ctx, IndexPath(tenant), &buf); err != nil {
		return fmt.Errorf("upload bucket index of tenant %s: %w", tenant, err)
	}
	return nil
}

// DeleteIndex removes a tenant's index.
func DeleteIndex(ctx context.Context, bkt objstore.Bucket, tenant string) error {
	err := bkt.Delete(ctx, IndexPath(tenant))
	if err != nil && !bkt.IsObjNotFoundErr(err) {
		return fmt.Errorf("delete bucket index of tenant %s: %w", tenant, err)
	}
	return nil
}

// now is replaced by tests.
var now = time.Now
