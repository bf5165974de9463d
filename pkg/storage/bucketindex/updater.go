package bucketindex

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/thanos-io/objstore"
)

// Build lists a tenant's blocks in the bucket and returns a fresh index.
// Entries of old (may be nil) are reused for blocks it already knows, so
// only new blocks' meta.json are read. A block without meta.json is still
// being uploaded (meta.json goes last) and is left out.
func Build(ctx context.Context, bkt objstore.BucketReader, tenant string, old *Index) (*Index, error) {
	known := map[ulid.ULID]*Block{}
	if old != nil {
		for _, b := range old.Blocks {
			known[b.ID] = b
		}
	}
	idx := &Index{Version: IndexVersion, UpdatedAt: now().Unix()}
	var ids []ulid.ULID
	err := bkt.Iter(ctx, tenant+"/", func(name string) error {
		id, err := ulid.Parse(strings.TrimSuffix(path.Base(name), "/"))
		if err == nil && strings.HasSuffix(name, "/") {
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list blocks of tenant %s: %w", tenant, err)
	}
	for _, id := range ids {
		dir := BlockPath(tenant, id)
		var mark DeletionMark
		marked, err := readJSON(ctx, bkt, path.Join(dir, DeletionMarkFilename), &mark)
		if err != nil {
			return nil, err
		}
		if b, ok := known[id]; ok {
			// The entry's meta.json facts never change, but a no-compact
			// mark may have come since, and a block marked for deletion may
			// have lost its meta.json (deletion removes it first).
			b, err := refreshBlock(ctx, bkt, tenant, b, marked)
			if err != nil {
				return nil, err
			}
			if b == nil {
				idx.DeletionMarks = append(idx.DeletionMarks, &mark)
				continue
			}
			idx.Blocks = append(idx.Blocks, b)
		} else {
			b, err := readBlock(ctx, bkt, tenant, id)
			if err != nil {
				return nil, err
			}
			if b == nil {
				if marked {
					// Partly deleted: meta.json goes first on deletion. The
					// compactor finishes the job; readers must not see it.
					idx.DeletionMarks = append(idx.DeletionMarks, &mark)
				}
				continue
			}
			idx.Blocks = append(idx.Blocks, b)
		}
		if marked {
			idx.DeletionMarks = append(idx.DeletionMarks, &mark)
		}
	}
	slices.SortFunc(idx.Blocks, func(a, b *Block) int {
		if c := cmp.Compare(a.MinTime, b.MinTime); c != 0 {
			return c
		}
		return a.ID.Compare(b.ID)
	})
	return idx, nil
}

// refreshBlock returns a copy of a known block's entry with its no-compact
// flag re-read; nil if the block is marked for deletion and its meta.json is
// gone (a partly deleted block).
func refreshBlock(ctx context.Context, bkt objstore.BucketReader, tenant string, known *Block, marked bool) (*Block, error) {
	dir := BlockPath(tenant, known.ID)
	if marked {
		ok, err := bkt.Exists(ctx, path.Join(dir, MetaFilename))
		if err != nil {
			return nil, fmt.Errorf("check meta.json of block %s: %w", known.ID, err)
		}
		if !ok {
			return nil, nil
		}
	}
	noCompact, err := bkt.Exists(ctx, path.Join(dir, NoCompactMarkFilename))
	if err != nil {
		return nil, fmt.Errorf("check no-compact mark of block %s: %w", known.ID, err)
	}
	b := *known
	b.NoCompact = noCompact
	return &b, nil
}

// readBlock reads a block's meta.json and no-compact mark; nil if meta.json
// is not there or cannot be decoded: a corrupt meta.json leaves that one
// block out rather than failing the whole tenant's index.
func readBlock(ctx context.Context, bkt objstore.BucketReader, tenant string, id ulid.ULID) (*Block, error) {
	var meta tsdb.BlockMeta
	dir := BlockPath(tenant, id)
	ok, err := readJSON(ctx, bkt, path.Join(dir, MetaFilename), &meta)
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &syntaxErr) || errors.As(err, &typeErr) {
		return nil, nil
	}
	if err != nil || !ok {
		return nil, err
	}
	attrs, err := bkt.Attributes(ctx, path.Join(dir, MetaFilename))
	if err != nil {
		return nil, fmt.Errorf("stat meta.json of block %s: %w", id, err)
	}
	noCompact, err := bkt.Exists(ctx, path.Join(dir, NoCompactMarkFilename))
	if err != nil {
		return nil, fmt.Errorf("check no-compact mark of block %s: %w", id, err)
	}
	return &Block{
		ID:              id,
		MinTime:         meta.MinTime,
		MaxTime:         meta.MaxTime,
		UploadedAt:      attrs.LastModified.Unix(),
		CompactionLevel: meta.Compaction.Level,
		NumSeries:       meta.Stats.NumSeries,
		NumSamples:      meta.Stats.NumSamples,
		NoCompact:       noCompact,
		OutOfOrder:      meta.Compaction.FromOutOfOrder(),
	}, nil
}

// ListTenants returns the tenants that have a directory in the bucket.
func ListTenants(ctx context.Context, bkt objstore.BucketReader) ([]string, error) {
	var tenants []string
	err := bkt.Iter(ctx, "", func(name string) error {
		if strings.HasSuffix(name, "/") {
			tenants = append(tenants, strings.TrimSuffix(name, "/"))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	return tenants, nil
}
