package ingester

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sync"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/fileutil"
	"github.com/thanos-io/objstore"

	"github.com/neocortex-metrics/neocortex/pkg/storage/bucketindex"
)

// shippedFilename records, in a tenant's TSDB directory, which local
// blocks are already in the bucket.
const shippedFilename = "shipped.json"

type shippedFile struct {
	Version int         `json:"version"`
	Shipped []ulid.ULID `json:"shipped"`
}

type shipperMetrics struct {
	uploads        prometheus.Counter
	uploadFailures prometheus.Counter
	uploadedBytes  prometheus.Counter
	lastUpload     prometheus.Gauge
}

func newShipperMetrics(reg prometheus.Registerer) *shipperMetrics {
	return &shipperMetrics{
		uploads: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "neocortex_ingester_shipper_uploads_total",
			Help: "Blocks uploaded to the bucket.",
		}),
		uploadFailures: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "neocortex_ingester_shipper_upload_failures_total",
			Help: "Block uploads that failed; they are retried on the next cycle.",
		}),
		uploadedBytes: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "neocortex_ingester_shipper_uploaded_bytes_total",
			Help: "Bytes of block files uploaded to the bucket.",
		}),
		lastUpload: promauto.With(reg).NewGauge(prometheus.GaugeOpts{
			Name: "neocortex_ingester_shipper_last_successful_upload_timestamp_seconds",
			Help: "When a block was last uploaded.",
		}),
	}
}

// shipper uploads a tenant's blocks to <tenant>/<ULID>/ in the bucket, once
// each, and remembers which it has uploaded across restarts.
type shipper struct {
	bkt     objstore.Bucket
	tenant  string
	dir     string // the tenant's TSDB directory
	logger  *slog.Logger
	metrics *shipperMetrics

	mu      sync.Mutex // serialises Sync
	shipped sync.Map   // ulid.ULID → struct{}; read by the TSDB's retention
}

func newShipper(bkt objstore.Bucket, tenant, dir string, logger *slog.Logger, m *shipperMetrics) (*shipper, error) {
	s := &shipper{bkt: bkt, tenant: tenant, dir: dir, logger: logger, metrics: m}
	b, err := os.ReadFile(filepath.Join(dir, shippedFilename))
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", shippedFilename, err)
	}
	var f shippedFile
	if err := json.Unmarshal(b, &f); err != nil {
		// A damaged record only costs re-uploading the same blocks, which
		// the compactor deduplicates; never refuse to start for it.
		logger.Warn("ignoring unreadable record of shipped blocks", "err", err)
		return s, nil
	}
	for _, id := range f.Shipped {
		s.shipped.Store(id, struct{}{})
	}
	return s, nil
}

// IsShipped reports whether the block is in the bucket.
func (s *shipper) IsShipped(id ulid.ULID) bool {
	_, ok := s.shipped.Load(id)
	return ok
}

// Sync uploads the blocks not yet shipped, oldest first, and returns how
// many it uploaded. A failed upload is retried on the next call.
func (s *shipper) Sync(ctx context.Context, blocks []*tsdb.Block) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	var errs []error
	for _, b := range blocks {
		meta := b.Meta()
		if s.IsShipped(meta.ULID) {
			continue
		}
		if err := s.upload(ctx, b.Dir(), meta.ULID); err != nil {
			s.metrics.uploadFailures.Inc()
			errs = append(errs, fmt.Errorf("upload block %s: %w", meta.ULID, err))
			continue
		}
		s.shipped.Store(meta.ULID, struct{}{})
		if err := s.save(blocks); err != nil {
			errs = append(errs, err)
		}
		n++
		s.metrics.uploads.Inc()
		s.metrics.lastUpload.SetToCurrentTime()
		s.logger.Info("shipped block", "block", meta.ULID, "mint", meta.MinTime, "maxt", meta.MaxTime, "series", meta.Stats.NumSeries)
	}
	return n, errors.Join(errs...)
}

// upload copies a block's files with meta.json last: a block is complete
// in the bucket once meta.json is there, and readers ignore it until then.
func (s *shipper) upload(ctx context.Context, dir string, id ulid.ULID) error {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		// The tombstones file is local bookkeeping; blocks are shipped
		// before anything could be deleted from them.
		if rel != bucketindex.MetaFilename && rel != "tombstones" {
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		return err
	}
	slices.Sort(files)
	files = append(files, bucketindex.MetaFilename)
	dst := bucketindex.BlockPath(s.tenant, id)
	for _, rel := range files {
		src := filepath.Join(dir, rel)
		if err := s.uploadFile(ctx, src, path.Join(dst, filepath.ToSlash(rel))); err != nil {
			return err
		}
	}
	return nil
}

func (s *shipper) uploadFile(ctx context.Context, src, dst string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if err := s.bkt.Upload(ctx, dst, f); err != nil {
		return fmt.Errorf("upload %s: %w", dst, err)
	}
	s.metrics.uploadedBytes.Add(float64(st.Size()))
	return nil
}

// save writes the record of shipped blocks, keeping only blocks that still
// exist locally.
func (s *shipper) save(blocks []*tsdb.Block) error {
	f := shippedFile{Version: 1}
	for _, b := range blocks {
		if s.IsShipped(b.Meta().ULID) {
			f.Shipped = append(f.Shipped, b.Meta().ULID)
		}
	}
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	tmp := filepath.Join(s.dir, shippedFilename+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", shippedFilename, err)
	}
	if err := fileutil.Replace(tmp, filepath.Join(s.dir, shippedFilename)); err != nil {
		return fmt.Errorf("write %s: %w", shippedFilename, err)
	}
	return nil
}
