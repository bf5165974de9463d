package compactor

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/index"
	"github.com/thanos-io/objstore"

	"github.com/neocortex-metrics/neocortex/pkg/logging"
	"github.com/neocortex-metrics/neocortex/pkg/storage/bucketindex"
)

// Reasons of no-compact marks.
const (
	// noCompactCorrupted: the block cannot be read (missing or corrupt
	// file, bad index, unreadable chunks).
	noCompactCorrupted = "block-corrupted"
	// noCompactFailed: compaction failed and no single block could be
	// blamed, so every block of the job is set aside.
	noCompactFailed = "compaction-failed"
)

// blockFiles are the files of a block that compaction reads; the chunks
// directory is downloaded whole.
var blockFiles = []string{bucketindex.MetaFilename, "index"}

// runJob merges a job's blocks into one: it downloads them, compacts them
// locally, uploads the result (meta.json last) and only then marks the
// sources for deletion. A block that cannot be read or compacted is marked
// no-compact and left out, and the job goes on with the others; only bucket
// and local disk errors are returned.
func (c *Compactor) runJob(ctx context.Context, tenant string, j job) error {
	start := time.Now()
	logger := c.logger.With("tenant", tenant)
	dir := filepath.Join(c.cfg.DataDir, tenant, j.blocks[0].ID.String())
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("clean job directory: %w", err)
	}
	defer os.RemoveAll(dir)

	var (
		sources []*bucketindex.Block
		dirs    []string
		open    []*tsdb.Block
	)
	defer func() {
		for _, b := range open {
			_ = b.Close()
		}
	}()
	for _, b := range j.blocks {
		bdir := filepath.Join(dir, b.ID.String())
		ok, err := c.downloadBlock(ctx, tenant, b.ID, bdir)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		blk, err := openBlock(logger, bdir)
		if err == nil && blk.Meta().ULID != b.ID {
			_ = blk.Close()
			err = fmt.Errorf("meta.json names block %s", blk.Meta().ULID)
		}
		if err != nil {
			if err := c.markNoCompact(ctx, tenant, b.ID, noCompactCorrupted, err); err != nil {
				return err
			}
			continue
		}
		sources, dirs, open = append(sources, b), append(dirs, bdir), append(open, blk)
	}
	if len(sources) < 2 {
		return nil
	}

	ids, err := compactBlocks(ctx, logger, filepath.Join(dir, "out"), dirs, open, c.ranges)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return c.setAsideFailed(ctx, tenant, sources, open, err)
	}
	var id ulid.ULID
	if len(ids) > 0 {
		id = ids[0]
		if err := c.uploadBlock(ctx, tenant, filepath.Join(dir, "out", id.String()), id); err != nil {
			return err
		}
	}
	// The sources go only now that the result is complete in the bucket.
	for _, b := range sources {
		if err := bucketindex.WriteDeletionMark(ctx, c.bkt, tenant, b.ID, c.now()); err != nil {
			return fmt.Errorf("mark compacted block %s for deletion: %w", b.ID, err)
		}
		c.metrics.markedDeletion.WithLabelValues(reasonCompaction).Inc()
	}
	c.metrics.blocksCompacted.Add(float64(len(sources)))
	if len(ids) == 0 {
		logger.Info("compacted blocks into no block: they hold no samples", "kind", j.kind, "sources", len(sources))
		return nil
	}
	c.metrics.compactions.WithLabelValues(j.kind).Inc()
	logger.Info("compacted blocks", "kind", j.kind, "block", id, "sources", len(sources), "duration", time.Since(start))
	return nil
}

// downloadBlock fetches the files compaction reads into dir. ok is false
// when the block must be left out: it was marked for deletion meanwhile, or
// a file is missing (then it is marked no-compact).
func (c *Compactor) downloadBlock(ctx context.Context, tenant string, id ulid.ULID, dir string) (ok bool, err error) {
	src := bucketindex.BlockPath(tenant, id)
	gokit := logging.GoKit(c.logger)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, fmt.Errorf("create block directory: %w", err)
	}
	for _, f := range blockFiles {
		err = objstore.DownloadFile(ctx, gokit, c.bkt, path.Join(src, f), filepath.Join(dir, f))
		if err != nil {
			break
		}
	}
	if err == nil {
		err = objstore.DownloadDir(ctx, gokit, c.bkt, src, path.Join(src, "chunks"), filepath.Join(dir, "chunks"))
	}
	if err == nil {
		return true, nil
	}
	if !c.bkt.IsObjNotFoundErr(err) {
		return false, fmt.Errorf("download block %s: %w", id, err)
	}
	marked, xerr := c.bkt.Exists(ctx, path.Join(src, bucketindex.DeletionMarkFilename))
	if xerr != nil {
		return false, fmt.Errorf("check deletion mark of block %s: %w", id, xerr)
	}
	if marked {
		return false, nil // being deleted by someone else
	}
	return false, c.markNoCompact(ctx, tenant, id, noCompactCorrupted, err)
}

// uploadBlock uploads a compacted block: every file but meta.json first,
// then meta.json, so that no reader ever takes a half-uploaded block for a
// complete one. A failed upload is removed as far as possible.
func (c *Compactor) uploadBlock(ctx context.Context, tenant, dir string, id ulid.ULID) error {
	dst := bucketindex.BlockPath(tenant, id)
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if rel != bucketindex.MetaFilename {
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list compacted block %s: %w", id, err)
	}
	files = append(files, bucketindex.MetaFilename)
	gokit := logging.GoKit(c.logger)
	for i, f := range files {
		if err := objstore.UploadFile(ctx, gokit, c.bkt, filepath.Join(dir, filepath.FromSlash(f)), path.Join(dst, f)); err != nil {
			for _, g := range files[:i+1] {
				_ = c.deleteObject(context.WithoutCancel(ctx), path.Join(dst, g))
			}
			return fmt.Errorf("upload compacted block %s of tenant %s: %w", id, tenant, err)
		}
	}
	return nil
}

// setAsideFailed handles a failed compaction: the blocks that fail a full
// read are marked no-compact; if none does, every block of the job is, so
// that the same failure does not repeat every cycle.
func (c *Compactor) setAsideFailed(ctx context.Context, tenant string, sources []*bucketindex.Block, open []*tsdb.Block, cause error) error {
	blamed := false
	for i, b := range open {
		if err := verifyBlock(ctx, b); err != nil {
			blamed = true
			if err := c.markNoCompact(ctx, tenant, sources[i].ID, noCompactCorrupted, err); err != nil {
				return err
			}
		}
	}
	if blamed {
		return nil
	}
	for _, b := range sources {
		if err := c.markNoCompact(ctx, tenant, b.ID, noCompactFailed, cause); err != nil {
			return err
		}
	}
	return nil
}

func (c *Compactor) markNoCompact(ctx context.Context, tenant string, id ulid.ULID, reason string, cause error) error {
	c.logger.Warn("block cannot be compacted; marking it no-compact", "tenant", tenant, "block", id, "reason", reason, "err", cause)
	if err := bucketindex.WriteNoCompactMark(ctx, c.bkt, tenant, id, reason, cause.Error(), c.now()); err != nil {
		return fmt.Errorf("mark block %s no-compact: %w", id, err)
	}
	c.metrics.markedNoCompact.Inc()
	return nil
}

// openBlock opens a downloaded block. The TSDB may panic on some corrupt
// data; that is an error of the block, not of the process.
func openBlock(logger *slog.Logger, dir string) (b *tsdb.Block, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("open block: panic: %v", r)
		}
	}()
	return tsdb.OpenBlock(logger, dir, nil, nil)
}

// compactBlocks merges the blocks in dirs into one block under dest. When
// the blocks overlap, series are merged with duplicate samples removed
// (the TSDB's default compacting merger with ChainedSeriesMerge). It
// returns no id when the result has no samples.
func compactBlocks(ctx context.Context, logger *slog.Logger, dest string, dirs []string, open []*tsdb.Block, ranges []int64) (ids []ulid.ULID, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("compact: panic: %v", r)
		}
	}()
	comp, err := tsdb.NewLeveledCompactorWithOptions(ctx, nil, logger, ranges, nil, tsdb.LeveledCompactorOptions{
		EnableOverlappingCompaction: true,
	})
	if err != nil {
		return nil, err
	}
	return comp.Compact(dest, dirs, open)
}

// verifyBlock reads every series and every sample of a block.
func verifyBlock(ctx context.Context, b *tsdb.Block) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("read block: panic: %v", r)
		}
	}()
	ir, err := b.Index()
	if err != nil {
		return fmt.Errorf("open index: %w", err)
	}
	defer ir.Close()
	cr, err := b.Chunks()
	if err != nil {
		return fmt.Errorf("open chunks: %w", err)
	}
	defer cr.Close()
	name, value := index.AllPostingsKey()
	p, err := ir.Postings(ctx, name, value)
	if err != nil {
		return fmt.Errorf("read postings: %w", err)
	}
	var (
		builder = labels.NewScratchBuilder(0)
		metas   []chunks.Meta
		it      chunkenc.Iterator
	)
	for p.Next() {
		if err := ir.Series(p.At(), &builder, &metas); err != nil {
			return fmt.Errorf("read series: %w", err)
		}
		for _, m := range metas {
			chk, iterable, err := cr.ChunkOrIterable(m)
			if err != nil {
				return fmt.Errorf("read chunk of series %s: %w", builder.Labels(), err)
			}
			if chk != nil {
				it = chk.Iterator(it)
			} else {
				it = iterable.Iterator(it)
			}
			for it.Next() != chunkenc.ValNone {
			}
			if err := it.Err(); err != nil {
				return fmt.Errorf("read chunk of series %s: %w", builder.Labels(), err)
			}
		}
	}
	if err := p.Err(); err != nil {
		return fmt.Errorf("read postings: %w", err)
	}
	return nil
}

// deleteObject deletes an object; one already gone is no error.
func (c *Compactor) deleteObject(ctx context.Context, name string) error {
	if err := c.bkt.Delete(ctx, name); err != nil && !c.bkt.IsObjNotFoundErr(err) {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}
