package bucketindex

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/thanos-io/objstore"
)

// Object names inside a block's directory and a tenant's directory.
const (
	MetaFilename           = "meta.json"
	DeletionMarkFilename   = "deletion-mark.json"
	NoCompactMarkFilename  = "no-compact-mark.json"
	TenantDeletionFilename = "tenant-deletion-mark.json"
	IndexFilename          = "bucket-index.json.gz"
)

// DeletionMark says a block is to be deleted: queriers and store-gateways
// stop using it at once, and the compactor removes its files once
// DeletionTime is older than the deletion delay. Marking first and deleting
// later lets every reader move off a block before it disappears.
type DeletionMark struct {
	ID           ulid.ULID `json:"id"`
	DeletionTime int64     `json:"deletion_time"` // Unix seconds.
	Version      int       `json:"version"`
}

// NoCompactMark says a block must not be compacted (it is corrupt, or
// overlaps in a way compaction cannot resolve); it is still queried.
type NoCompactMark struct {
	ID            ulid.ULID `json:"id"`
	NoCompactTime int64     `json:"no_compact_time"` // Unix seconds.
	Reason        string    `json:"reason"`
	Details       string    `json:"details"`
	Version       int       `json:"version"`
}

// TenantDeletionMark says a tenant's data is to be deleted in full.
type TenantDeletionMark struct {
	CreationTime int64 `json:"creation_time"` // Unix seconds.
	// FinishedTime is set once every block is gone.
	FinishedTime int64 `json:"finished_time,omitempty"`
}

// BlockPath is the directory of a block in the bucket.
func BlockPath(tenant string, id ulid.ULID) string { return path.Join(tenant, id.String()) }

// WriteDeletionMark marks a block for deletion, unless it already is.
func WriteDeletionMark(ctx context.Context, bkt objstore.Bucket, tenant string, id ulid.ULID, now time.Time) error {
	name := path.Join(BlockPath(tenant, id), DeletionMarkFilename)
	if ok, err := bkt.Exists(ctx, name); err != nil {
		return fmt.Errorf("check deletion mark of block %s: %w", id, err)
	} else if ok {
		return nil
	}
	return uploadJSON(ctx, bkt, name, DeletionMark{ID: id, DeletionTime: now.Unix(), Version: 1})
}

// WriteNoCompactMark marks a block as not to be compacted.
func WriteNoCompactMark(ctx context.Context, bkt objstore.Bucket, tenant string, id ulid.ULID, reason, details string, now time.Time) error {
	name := path.Join(BlockPath(tenant, id), NoCompactMarkFilename)
	return uploadJSON(ctx, bkt, name, NoCompactMark{ID: id, NoCompactTime: now.Unix(), Reason: reason, Details: details, Version: 1})
}

// WriteTenantDeletionMark records that a tenant is to be deleted.
func WriteTenantDeletionMark(ctx context.Context, bkt objstore.Bucket, tenant string, m TenantDeletionMark) error {
	return uploadJSON(ctx, bkt, path.Join(tenant, TenantDeletionFilename), m)
}

// ReadTenantDeletionMark returns a tenant's deletion mark, or nil if the
// tenant is not being deleted.
func ReadTenantDeletionMark(ctx context.Context, bkt objstore.BucketReader, tenant string) (*TenantDeletionMark, error) {
	var m TenantDeletionMark
	ok, err := readJSON(ctx, bkt, path.Join(tenant, TenantDeletionFilename), &m)
	if err != nil || !ok {
		return nil, err
	}
	return &m, nil
}

func uploadJSON(ctx context.Context, bkt objstore.Bucket, name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := bkt.Upload(ctx, name, bytes.NewReader(b)); err != nil {
		return fmt.Errorf("upload %s: %w", name, err)
	}
	return nil
}

// readJSON decodes an object; ok is false when it does not exist.
func readJSON(ctx context.Context, bkt objstore.BucketReader, name string, v any) (ok bool, err error) {
	r, err := bkt.Get(ctx, name)
	if bkt.IsObjNotFoundErr(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("get %s: %w", name, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return false, fmt.Errorf("read %s: %w", name, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("decode %s: %w", name, err)
	}
	return true, nil
}
