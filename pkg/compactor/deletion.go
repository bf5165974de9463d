package compactor

import (
	"context"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/thanos-io/objstore"

	"github.com/neocortex-metrics/neocortex/pkg/storage/bucketindex"
)

// applyRetention marks for deletion the tenant's blocks whose every sample
// is older than now − retention (MaxTime is exclusive, so MaxTime ≤ the
// cutoff). It returns how many it marked.
func (c *Compactor) applyRetention(ctx context.Context, tenant string, idx *bucketindex.Index) (int, error) {
	if c.deps.Limits == nil {
		return 0, nil
	}
	retention := c.deps.Limits.BlocksRetentionPeriod(tenant)
	if retention <= 0 {
		return 0, nil
	}
	now := c.now()
	cutoff := now.Add(-retention).UnixMilli()
	marks := idx.DeletionMarkMap()
	n := 0
	for _, b := range idx.Blocks {
		if _, marked := marks[b.ID]; marked || b.MaxTime > cutoff {
			continue
		}
		if err := bucketindex.WriteDeletionMark(ctx, c.bkt, tenant, b.ID, now); err != nil {
			return n, fmt.Errorf("mark block %s of tenant %s for deletion: %w", b.ID, tenant, err)
		}
		c.logger.Info("block past retention; marked for deletion", "tenant", tenant, "block", b.ID, "retention", retention)
		c.metrics.markedDeletion.WithLabelValues(reasonRetention).Inc()
		n++
	}
	return n, nil
}

// deleteMarkedBlocks deletes the files of the blocks whose deletion mark is
// older than the deletion delay.
func (c *Compactor) deleteMarkedBlocks(ctx context.Context, tenant string, idx *bucketindex.Index) error {
	now := c.now()
	for _, m := range idx.DeletionMarks {
		if now.Sub(time.Unix(m.DeletionTime, 0)) < c.cfg.DeletionDelay {
			continue
		}
		if err := c.deleteBlock(ctx, tenant, m.ID); err != nil {
			return err
		}
		c.logger.Info("deleted block", "tenant", tenant, "block", m.ID)
	}
	return nil
}

// deleteBlock deletes a block's files: meta.json first, so that from then
// on nobody takes what is left for a complete block; then the rest; the
// deletion mark last, so that a deletion cut short is finished later.
func (c *Compactor) deleteBlock(ctx context.Context, tenant string, id ulid.ULID) error {
	dir := bucketindex.BlockPath(tenant, id)
	meta := path.Join(dir, bucketindex.MetaFilename)
	mark := path.Join(dir, bucketindex.DeletionMarkFilename)
	if err := c.deleteObject(ctx, meta); err != nil {
		return fmt.Errorf("delete block %s of tenant %s: %w", id, tenant, err)
	}
	var rest []string
	err := c.bkt.Iter(ctx, dir+"/", func(name string) error {
		if name != meta && name != mark {
			rest = append(rest, name)
		}
		return nil
	}, objstore.WithRecursiveIter())
	if err != nil {
		return fmt.Errorf("list block %s of tenant %s: %w", id, tenant, err)
	}
	for _, name := range append(rest, mark) {
		if err := c.deleteObject(ctx, name); err != nil {
			return fmt.Errorf("delete block %s of tenant %s: %w", id, tenant, err)
		}
	}
	c.metrics.blocksDeleted.Inc()
	return nil
}

// deleteTenant deletes everything a tenant marked for deletion has in the
// bucket but the mark: the bucket index first, so that readers drop all its
// blocks at once, then each block (marked for deletion, then deleted like
// any other), then whatever is left. The mark stays, with FinishedTime set,
// so that blocks ingesters still ship are deleted by later cycles.
func (c *Compactor) deleteTenant(ctx context.Context, tenant string, m *bucketindex.TenantDeletionMark) error {
	if err := bucketindex.DeleteIndex(ctx, c.bkt, tenant); err != nil {
		return err
	}
	ids, err := c.listBlocks(ctx, tenant)
	if err != nil {
		return err
	}
	now := c.now()
	for _, id := range ids {
		marked, err := c.bkt.Exists(ctx, path.Join(bucketindex.BlockPath(tenant, id), bucketindex.DeletionMarkFilename))
		if err != nil {
			return fmt.Errorf("check deletion mark of block %s: %w", id, err)
		}
		if !marked {
			if err := bucketindex.WriteDeletionMark(ctx, c.bkt, tenant, id, now); err != nil {
				return fmt.Errorf("mark block %s of deleted tenant %s: %w", id, tenant, err)
			}
			c.metrics.markedDeletion.WithLabelValues(reasonTenantDeletion).Inc()
		}
		if err := c.deleteBlock(ctx, tenant, id); err != nil {
			return err
		}
	}
	markName := path.Join(tenant, bucketindex.TenantDeletionFilename)
	var rest []string
	err = c.bkt.Iter(ctx, tenant+"/", func(name string) error {
		if name != markName {
			rest = append(rest, name)
		}
		return nil
	}, objstore.WithRecursiveIter())
	if err != nil {
		return fmt.Errorf("list objects of deleted tenant %s: %w", tenant, err)
	}
	for _, name := range rest {
		if err := c.deleteObject(ctx, name); err != nil {
			return fmt.Errorf("delete objects of tenant %s: %w", tenant, err)
		}
	}
	if len(ids) > 0 {
		c.logger.Info("deleted blocks of tenant marked for deletion", "tenant", tenant, "blocks", len(ids))
	}
	if m.FinishedTime == 0 {
		m.FinishedTime = now.Unix()
		if err := bucketindex.WriteTenantDeletionMark(ctx, c.bkt, tenant, *m); err != nil {
			return fmt.Errorf("finish deletion of tenant %s: %w", tenant, err)
		}
		c.logger.Info("finished deleting tenant", "tenant", tenant)
	}
	return nil
}

// listBlocks returns the ids of the blocks that have any object left in the
// tenant's directory, complete or not.
func (c *Compactor) listBlocks(ctx context.Context, tenant string) ([]ulid.ULID, error) {
	var ids []ulid.ULID
	err := c.bkt.Iter(ctx, tenant+"/", func(name string) error {
		if !strings.HasSuffix(name, "/") {
			return nil
		}
		if id, err := ulid.Parse(path.Base(name)); err == nil {
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list blocks of tenant %s: %w", tenant, err)
	}
	return ids, nil
}
