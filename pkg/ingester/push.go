package ingester

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/grafana/dskit/httpgrpc"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"

	"github.com/neocortex-metrics/neocortex/pkg/ingester/ingesterpb"
	"github.com/neocortex-metrics/neocortex/pkg/remotewrite"
	"github.com/neocortex-metrics/neocortex/pkg/tenant"
	"github.com/neocortex-metrics/neocortex/pkg/validation"
)

// Push appends the request's series to the tenant's TSDB. Samples the TSDB
// refuses (series limits, out of order, too old, duplicates) are counted and
// reported in one 400 error after the rest has been committed.
func (i *Ingester) Push(ctx context.Context, req *ingesterpb.PushRequest) (*ingesterpb.PushResponse, error) {
	tenantID, err := tenant.FromContext(ctx)
	if err != nil {
		return nil, httpgrpc.Errorf(http.StatusUnauthorized, "%s", err)
	}
	d := decodeBuffers.Get().(*decodeBuffer)
	defer decodeBuffers.Put(d)
	// Label strings point into req.WriteRequest; nothing of wr is kept
	// beyond PushWriteRequest, and its errors are formatted anew.
	if err := d.arena.Unmarshal(req.WriteRequest, &d.wr, nil); err != nil {
		return nil, httpgrpc.Errorf(http.StatusBadRequest, "decode write request: %s", err)
	}
	if err := i.PushWriteRequest(ctx, tenantID, &d.wr); err != nil {
		return nil, err
	}
	return &ingesterpb.PushResponse{}, nil
}

// decodeBuffer is the memory one Push decodes its request into, pooled so
// that series, labels and samples are not allocated anew for every request.
type decodeBuffer struct {
	arena remotewrite.Arena
	wr    prompb.WriteRequest
}

var decodeBuffers = sync.Pool{New: func() any { return new(decodeBuffer) }}

// maxNewSeriesPerCommit bounds the series one commit creates. A commit
// logs its new series as one WAL record, and the tenant's WAL keeps a
// compression buffer as big as the largest record it ever wrote: a push of
// 2000 new series left about 470 KB in every tenant that got one. 256
// series of 10 labels make a record of about 64 KB; each commit more costs
// about 40µs (BenchmarkIngesterPush/new_series: 2% more CPU than one
// commit per push, 5% with 128). A push is not a transaction (see openDB),
// so committing it in parts changes nothing its sender can tell.
const maxNewSeriesPerCommit = 256

// Addr is the address this ingester advertises in the ring.
func (i *Ingester) Addr() string { return i.deps.Addr }

// PushWriteRequest appends a decoded request for the tenant: the work of
// Push without the gRPC encoding, for a distributor in the same process.
// The request is only read, and nothing of it is kept: labels of new series
// are copied (they may point into a request buffer).
func (i *Ingester) PushWriteRequest(ctx context.Context, tenantID string, wr *prompb.WriteRequest) error {
	db, err := i.dbInUse(tenantID)
	if err != nil {
		return err
	}
	defer db.done()
	if !db.exemplarsUsed.Load() && hasExemplars(wr) {
		i.useExemplars(tenantID, db)
	}
	db.configMu.RLock()
	defer db.configMu.RUnlock()

	var (
		app       = db.Appender(ctx)
		getRef, _ = app.(storage.GetRef)
		newSeries int // created by app, not yet committed
		b         = labels.NewScratchBuilderWithSymbolTable(db.symbolTable(), 16)
		exSyms    *labels.SymbolTable // taken at the push's first exemplar
		scratch   labels.Labels
		appended  int
		rejected  int
		firstErr  string
		discarded = map[string]int{}

		exemplars, discardedExemplars int
	)
	reject := func(reason string, n int, err error, ts *prompb.TimeSeries) {
		discarded[reason] += n
		rejected += n
		if firstErr == "" {
			firstErr = fmt.Sprintf("%s for series %s", err, validation.SeriesString(ts.Labels))
		}
	}
	for idx := range wr.Timeseries {
		ts := &wr.Timeseries[idx]
		b.Reset()
		for _, l := range ts.Labels {
			b.Add(l.Name, l.Value)
		}
		b.Overwrite(&scratch)
		lset := scratch
		var ref storage.SeriesRef
		if getRef != nil {
			var own labels.Labels
			if ref, own = getRef.GetRef(lset, lset.Hash()); ref != 0 {
				lset = own // the head's copy, safe to hand back to it
			}
		}
		if ref == 0 {
			// A new series: the head keeps its labels, which must not be
			// overwritten by the next series. (With stringlabels, Copy
			// also copies the strings out of the request buffer; with
			// dedupelabels the table already holds copies.)
			lset = lset.Copy()
			newSeries++
		}
		for si, s := range ts.Samples {
			r, err := app.Append(ref, lset, s.Timestamp, s.Value)
			if err == nil {
				ref = r
				appended++
				continue
			}
			var le *limitError
			if errors.As(err, &le) {
				// The series does not exist and may not be created: drop all of it.
				reject(le.reason, len(ts.Samples)-si+len(ts.Histograms), err, ts)
				goto nextSeries
			}
			reason, ok := sampleErrorReason(err)
			if !ok {
				_ = app.Rollback()
				return fmt.Errorf("append to TSDB of tenant %s: %w", tenantID, err)
			}
			reject(reason, 1, fmt.Errorf("%w at timestamp %d", err, s.Timestamp), ts)
		}
		for _, h := range ts.Histograms {
			var err error
			var r storage.SeriesRef
			if h.IsFloatHistogram() {
				r, err = app.AppendHistogram(ref, lset, h.Timestamp, nil, h.ToFloatHistogram())
			} else {
				r, err = app.AppendHistogram(ref, lset, h.Timestamp, h.ToIntHistogram(), nil)
			}
			if err == nil {
				ref = r
				appended++
				continue
			}
			var le *limitError
			if errors.As(err, &le) {
				reject(le.reason, 1, err, ts)
				continue
			}
			reason, ok := sampleErrorReason(err)
			if !ok {
				reason = validation.ReasonInvalidHistogram
			}
			reject(reason, 1, fmt.Errorf("%w at timestamp %d", err, h.Timestamp), ts)
		}
		if ref != 0 && len(ts.Exemplars) > 0 {
			if exSyms == nil {
				exSyms = db.exemplarSymbolTable()
			}
			okEx, badEx := appendExemplars(app, exSyms, ref, lset, ts.Exemplars)
			exemplars += okEx
			discardedExemplars += badEx
		}
	nextSeries:
		if newSeries >= maxNewSeriesPerCommit {
			if err := app.Commit(); err != nil {
				return fmt.Errorf("commit to TSDB of tenant %s: %w", tenantID, err)
			}
			app = db.Appender(ctx)
			getRef, _ = app.(storage.GetRef)
			newSeries = 0
		}
	}
	if err := app.Commit(); err != nil {
		return fmt.Errorf("commit to TSDB of tenant %s: %w", tenantID, err)
	}
	now := time.Now()
	if appended > 0 {
		db.lastAppend.Store(now.UnixNano())
	}
	for idx := range wr.Metadata {
		db.metadata.add(&wr.Metadata[idx], now)
	}
	i.metrics.ingestedSamples.WithLabelValues(tenantID).Add(float64(appended))
	if exemplars > 0 {
		i.metrics.ingestedExemplars.WithLabelValues(tenantID).Add(float64(exemplars))
	}
	if discardedExemplars > 0 {
		i.metrics.discardedExemplars.WithLabelValues(tenantID).Add(float64(discardedExemplars))
	}
	for reason, n := range discarded {
		i.deps.Discarded.WithLabelValues(reason, tenantID).Add(float64(n))
	}
	if rejected > 0 {
		return httpgrpc.Errorf(http.StatusBadRequest, "ingester rejected %d of %d samples; first: %s", rejected, rejected+appended, firstErr)
	}
	return nil
}

// sampleErrorReason maps the TSDB's per-sample refusals to discard reasons.
func sampleErrorReason(err error) (string, bool) {
	switch {
	case errors.Is(err, storage.ErrOutOfOrderSample):
		return validation.ReasonOutOfOrder, true
	case errors.Is(err, storage.ErrOutOfBounds), errors.Is(err, storage.ErrTooOldSample):
		return validation.ReasonOutOfBounds, true
	case errors.Is(err, storage.ErrDuplicateSampleForTimestamp):
		return validation.ReasonDuplicateSample, true
	}
	return "", false
}

func hasExemplars(wr *prompb.WriteRequest) bool {
	for i := range wr.Timeseries {
		if len(wr.Timeseries[i].Exemplars) > 0 {
			return true
		}
	}
	return false
}

// appendExemplars appends a series' exemplars. A refused exemplar never
// fails the push (as in Prometheus); duplicates, which a retried push
// brings, are neither appended nor counted as refused.
func appendExemplars(app storage.Appender, syms *labels.SymbolTable, ref storage.SeriesRef, lset labels.Labels, exs []prompb.Exemplar) (appended, refused int) {
	b := labels.NewScratchBuilderWithSymbolTable(syms, 4)
	for _, e := range exs {
		b.Reset()
		for _, l := range e.Labels {
			b.Add(l.Name, l.Value)
		}
		b.Sort()
		_, err := app.AppendExemplar(ref, lset, exemplar.Exemplar{Labels: b.Labels(), Value: e.Value, Ts: e.Timestamp, HasTs: true})
		switch {
		case err == nil:
			appended++
		case errors.Is(err, storage.ErrDuplicateExemplar):
		default:
			refused++
		}
	}
	return appended, refused
}
