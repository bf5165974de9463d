// Package distributor receives remote-write requests, validates them against
// the tenant's limits, and replicates each series to the ingesters that own
// it in the ring, succeeding once a quorum of them acknowledged.
package distributor

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/grafana/dskit/httpgrpc"
	"github.com/grafana/dskit/limiter"
	"github.com/grafana/dskit/ring"
	ringclient "github.com/grafana/dskit/ring/client"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/neocortex-metrics/neocortex/pkg/ingester/client"
	"github.com/neocortex-metrics/neocortex/pkg/limits"
	"github.com/neocortex-metrics/neocortex/pkg/tenant"
	"github.com/neocortex-metrics/neocortex/pkg/tenantmetrics"
	"github.com/neocortex-metrics/neocortex/pkg/validation"
)

// Config configures a distributor.
type Config struct {
	// MaxRecvMsgSize bounds a push request's body, compressed and decompressed.
	MaxRecvMsgSize int `yaml:"max_recv_msg_size"`
	// RemoteTimeout bounds the fan-out of one request to the ingesters.
	RemoteTimeout time.Duration `yaml:"remote_timeout"`
}

// RegisterFlags registers the distributor flags and their defaults.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.IntVar(&c.MaxRecvMsgSize, "distributor.max-recv-msg-size", 100<<20, "Largest remote-write request accepted, in bytes, compressed or decompressed (larger: 413).")
	f.DurationVar(&c.RemoteTimeout, "distributor.remote-timeout", 5*time.Second, "Time limit for the ingesters to acknowledge one request.")
}

// Validate checks the config.
func (c *Config) Validate() error {
	if c.MaxRecvMsgSize <= 0 {
		return errors.New("distributor.max_recv_msg_size must be positive")
	}
	if c.RemoteTimeout <= 0 {
		return errors.New("distributor.remote_timeout must be positive")
	}
	return nil
}

// IngesterRing is the part of the ring the distributor writes through.
type IngesterRing interface {
	ring.DoBatchRing
	// With these, a request looks its replicas up once when every key
	// has the same ones (see batchRing).
	InstancesWithTokensCount() int
	ZonesCount() int
}

// ClientPool hands out a client per ingester.
type ClientPool interface {
	GetClientForInstance(inst ring.InstanceDesc) (ringclient.PoolClient, error)
}

// Deps are what a distributor needs from the rest of the process.
type Deps struct {
	Limits *limits.Overrides
	Ring   IngesterRing
	// RingZoneAwareness tells whether Ring replicates across zones.
	RingZoneAwareness bool
	// Clients returns *client.Client values.
	Clients    ClientPool
	Discarded  *prometheus.CounterVec
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// LocalIngester is an ingester in the same process: the distributor hands
// it decoded series directly instead of encoding them for gRPC.
type LocalIngester interface {
	// Addr is the address the ingester advertises in the ring.
	Addr() string
	// PushWriteRequest appends req for the tenant. It only reads req and
	// keeps nothing of it; errors are those of the gRPC Push.
	PushWriteRequest(ctx context.Context, tenantID string, req *prompb.WriteRequest) error
}

// Distributor is the distributor service.
type Distributor struct {
	services.Service

	cfg     Config
	deps    Deps
	logger  *slog.Logger
	limiter *limiter.RateLimiter
	metrics *metrics
	now     func() time.Time
	local   LocalIngester
}

// SetLocalIngester makes the distributor push to ing directly whenever the
// ring picks it. It must be called before the distributor starts.
func (d *Distributor) SetLocalIngester(ing LocalIngester) { d.local = ing }

type metrics struct {
	receivedSamples      *prometheus.CounterVec
	rejectedRequests     *prometheus.CounterVec
	ingesterPushFailures *prometheus.CounterVec
	// forget drops the per-tenant series of tenants that stopped pushing.
	forget *tenantmetrics.Forgetter
}

// New returns a distributor.
func New(cfg Config, deps Deps) *Distributor {
	d := &Distributor{
		cfg:     cfg,
		deps:    deps,
		logger:  deps.Logger,
		limiter: limiter.NewRateLimiter(deps.Limits, 10*time.Second),
		now:     time.Now,
		metrics: &metrics{
			receivedSamples: promauto.With(deps.Registerer).NewCounterVec(prometheus.CounterOpts{
				Name: "neocortex_distributor_received_samples_total",
				Help: "Samples and histogram samples accepted by the distributor and sent to ingesters.",
			}, []string{"tenant"}),
			rejectedRequests: promauto.With(deps.Registerer).NewCounterVec(prometheus.CounterOpts{
				Name: "neocortex_distributor_rejected_requests_total",
				Help: "Push requests answered with an error, by tenant and HTTP status code.",
			}, []string{"tenant", "status_code"}),
			ingesterPushFailures: promauto.With(deps.Registerer).NewCounterVec(prometheus.CounterOpts{
				Name: "neocortex_distributor_ingester_push_failures_total",
				Help: "Pushes to one ingester that failed, whether or not the request still reached a quorum.",
			}, []string{"ingester"}),
		},
	}
	vecs := []*prometheus.MetricVec{d.metrics.receivedSamples.MetricVec, d.metrics.rejectedRequests.MetricVec}
	if deps.Discarded != nil {
		vecs = append(vecs, deps.Discarded.MetricVec)
	}
	d.metrics.forget = tenantmetrics.New(tenantmetrics.DefaultForgetAfter, vecs...)
	// The rate limiters of tenants gone for as long go too (a limiter
	// unused that long would have its whole burst again anyway).
	d.metrics.forget.Also(func(cutoff time.Time) { d.limiter.RemoveStaleEntries(cutoff) })
	d.Service = services.NewIdleService(nil, nil)
	return d
}

// Push validates req and writes its valid series to the ingesters. Invalid
// series are dropped and reported in a 400 error once the valid ones are
// stored, as the remote-write specification asks.
func (d *Distributor) Push(ctx context.Context, tenantID string, req *prompb.WriteRequest) error {
	pr := &pushRequest{req: *req} // the caller's memory: never pooled
	pr.refs.Store(1)
	return d.push(ctx, tenantID, pr)
}

// push is Push with, optionally, each series' encoding as received: the
// series that validation leaves unchanged are forwarded as they came.
func (d *Distributor) push(ctx context.Context, tenantID string, pr *pushRequest) error {
	d.metrics.forget.Seen(tenantID)
	lim := d.deps.Limits.For(tenantID)
	now := d.now()
	req, raw := &pr.req, pr.raw
	// When every item goes to the same replicas, none needs a token.
	br := d.batchRing()
	_, same := br.(sameReplicas)
	token := func(ls []prompb.Label) uint32 {
		if same {
			return 0
		}
		return seriesToken(tenantID, ls)
	}

	var (
		firstInvalid *validation.Error
		invalid      int
		discarded    = map[string]int{}
		keys         = pr.keys[:0]
		// The valid series are moved to the front of req.Timeseries (and
		// their encodings to the front of raw): nothing else reads them.
		valid    = req.Timeseries[:0]
		validRaw [][]byte
		samples  int
	)
	if raw != nil {
		validRaw = raw[:0]
	}
	discard := func(e *validation.Error, n int) {
		if n == 0 {
			return
		}
		discarded[e.Reason] += n
		invalid += n
		if firstInvalid == nil {
			firstInvalid = e
		}
	}
	for i, ts := range req.Timeseries {
		if e := validation.Labels(lim, ts.Labels); e != nil {
			discard(e, len(ts.Samples)+len(ts.Histograms))
			continue
		}
		before := len(ts.Samples) + len(ts.Histograms)
		ts.Samples = filterSamples(ts.Samples, func(s prompb.Sample) *validation.Error {
			return validation.Timestamp(lim, now, s.Timestamp, ts.Labels)
		}, discard)
		ts.Histograms = filterSamples(ts.Histograms, func(h prompb.Histogram) *validation.Error {
			return validation.Timestamp(lim, now, h.Timestamp, ts.Labels)
		}, discard)
		if len(ts.Samples)+len(ts.Histograms) == 0 {
			continue
		}
		n := len(ts.Samples) + len(ts.Histograms)
		samples += n
		keys = append(keys, token(ts.Labels))
		valid = append(valid, ts)
		if raw != nil {
			if n == before {
				validRaw = append(validRaw, raw[i])
			} else {
				validRaw = append(validRaw, nil) // changed: encode again
			}
		}
	}

	var metadata []prompb.MetricMetadata
	for i := range req.Metadata {
		md := &req.Metadata[i]
		if e := validation.Metadata(lim, md); e != nil {
			d.deps.Discarded.WithLabelValues(e.Reason, tenantID).Inc()
			continue
		}
		metadata = append(metadata, *md)
		keys = append(keys, token([]prompb.Label{{Name: "__name__", Value: md.MetricFamilyName}}))
	}

	defer func() {
		for reason, n := range discarded {
			d.deps.Discarded.WithLabelValues(reason, tenantID).Add(float64(n))
		}
	}()

	// An unlimited rate (0) bounds nothing, not even one request's size.
	if samples > 0 && !math.IsInf(d.deps.Limits.Limit(tenantID), 1) && !d.limiter.AllowN(now, tenantID, samples) {
		discarded[validation.ReasonRateLimited] += samples
		rate := d.deps.Limits.Limit(tenantID)
		return &rateLimitedError{
			msg: fmt.Sprintf("ingestion rate limit of %g samples/s (burst %d) exceeded by a request of %d samples; no sample of this request was stored",
				rate, d.deps.Limits.Burst(tenantID), samples),
			retryAfter: retryAfter(samples, rate),
		}
	}

	if len(keys) > 0 {
		pr.keys = keys
		if invalid > 0 || len(metadata) != len(req.Metadata) || raw == nil {
			pr.wire = nil // not the body as it came: encoded anew if needed
		}
		if err := d.send(ctx, tenantID, pr, br, valid, validRaw, metadata, keys); err != nil {
			return err
		}
		d.metrics.receivedSamples.WithLabelValues(tenantID).Add(float64(samples))
		if pr.v2 {
			for _, ts := range valid {
				pr.samplesWritten += len(ts.Samples)
				pr.histogramsWritten += len(ts.Histograms)
				pr.exemplarsWritten += len(ts.Exemplars)
			}
		}
	}
	if firstInvalid != nil {
		return httpgrpc.Errorf(http.StatusBadRequest, "%d of %d samples rejected; first: %s",
			invalid, invalid+samples, firstInvalid.Error())
	}
	return nil
}

// send replicates the series to their ingesters. It goes on after the
// caller's context ends, within the remote timeout, so that a client that
// hangs up does not leave replicas half written.
//
// keys holds the tokens of the series, then of the metadata, looked up in
// br (batchRing; sameReplicas needs none, only as many keys as items); raw
// (nil or as long as series) holds the encoding of series[i], or nil. They
// all live in pr, which send holds until the last RPC has ended.
func (d *Distributor) send(ctx context.Context, tenantID string, pr *pushRequest, br ring.DoBatchRing, series []prompb.TimeSeries, raw [][]byte, metadata []prompb.MetricMetadata, keys []uint32) error {
	// Two contexts: DoBatch waits on waitCtx, the RPCs run on rpcCtx, which
	// ends once every RPC has (Cleanup). Were they one, Cleanup's cancel
	// could race DoBatch's report of success and turn it into "context
	// canceled".
	ctx = tenant.WithTenant(context.WithoutCancel(ctx), tenantID)
	waitCtx, cancelWait := context.WithTimeout(ctx, d.cfg.RemoteTimeout)
	defer cancelWait()
	rpcCtx, cancelRPCs := context.WithTimeout(ctx, d.cfg.RemoteTimeout)
	pr.retain()
	cleanup := func() {
		cancelRPCs()
		pr.release()
	}
	var all []int
	if _, ok := br.(sameReplicas); ok {
		// Every item has the same replicas, so the same outcome: DoBatch
		// tracks one key for all of them, and each replica gets every item.
		all = pr.allItems(len(keys))
		keys = keys[:1]
	}
	err := ring.DoBatchWithOptions(waitCtx, ring.Write, br, keys, func(ing ring.InstanceDesc, idx []int) error {
		if all != nil {
			idx = all
		}
		if d.local != nil && ing.Addr == d.local.Addr() {
			err := d.local.PushWriteRequest(rpcCtx, tenantID, subset(series, metadata, idx))
			if err != nil {
				d.metrics.ingesterPushFailures.WithLabelValues(ing.Id).Inc()
			}
			return err
		}
		c, err := d.deps.Clients.GetClientForInstance(ing)
		if err != nil {
			return fmt.Errorf("connect to ingester %s: %w", ing.Id, err)
		}
		if len(idx) == len(series)+len(metadata) {
			// Everything, as to every other replica (DoBatch lists the items
			// in order): one encoding serves them all.
			pr.encodeOnce.Do(func() {
				if pr.wire == nil {
					pr.encoded, pr.encodeErr = encodeRequest(pr.encoded[:0], series, raw, metadata, idx)
					pr.wire = pr.encoded
				}
			})
			if pr.encodeErr != nil {
				return fmt.Errorf("encode push to ingester %s: %w", ing.Id, pr.encodeErr)
			}
			// gRPC holds a reference of its own until it has written wire out.
			pr.retain()
			err = c.(*client.Client).PushEncoded(rpcCtx, &pr.wire, wireReleaser{pr})
		} else {
			bp := encodeBuffers.Get().(*[]byte)
			*bp, err = encodeRequest((*bp)[:0], series, raw, metadata, idx)
			if err != nil {
				putEncodeBuffer(bp)
				return fmt.Errorf("encode push to ingester %s: %w", ing.Id, err)
			}
			// gRPC hands bp back once it is written out.
			err = c.(*client.Client).PushEncoded(rpcCtx, bp, encodeBufferPool{})
		}
		if err != nil {
			d.metrics.ingesterPushFailures.WithLabelValues(ing.Id).Inc()
			d.logger.Debug("push to ingester failed", "tenant", tenantID, "ingester", ing.Id, "err", err)
		}
		return err
	}, ring.DoBatchOptions{Cleanup: cleanup, IsClientError: isClientError})
	if err != nil {
		if isClientError(err) {
			return err
		}
		return &ingesterError{err: err}
	}
	return nil
}

// batchRing returns the ring DoBatch looks the keys of a request up in.
// When every instance is a replica of every key (no more instances than
// the replication factor, all with tokens, and with zone awareness each in
// a zone of its own) the replication set is the same for all keys: it is
// looked up once per request instead of once per series.
func (d *Distributor) batchRing() ring.DoBatchRing {
	r := d.deps.Ring
	n := r.InstancesWithTokensCount()
	if n == 0 || n != r.InstancesCount() || n > r.ReplicationFactor() || d.deps.RingZoneAwareness && r.ZonesCount() != n {
		return r
	}
	set, err := r.Get(0, ring.Write, nil, nil, nil)
	if err != nil {
		return r // DoBatch meets the error itself
	}
	return sameReplicas{IngesterRing: r, set: set}
}

// sameReplicas answers every key with one replication set.
type sameReplicas struct {
	IngesterRing
	set ring.ReplicationSet
}

func (s sameReplicas) Get(uint32, ring.Operation, []ring.InstanceDesc, []string, []string) (ring.ReplicationSet, error) {
	return s.set, nil
}

func filterSamples[S any](in []S, check func(S) *validation.Error, discard func(*validation.Error, int)) []S {
	out := in[:0]
	for _, s := range in {
		if e := check(s); e != nil {
			discard(e, 1)
			continue
		}
		out = append(out, s)
	}
	return out
}

// retryAfter is how many seconds the bucket needs to hold n samples at rate,
// between 1 and 60.
func retryAfter(n int, rate float64) int {
	if rate <= 0 || math.IsInf(rate, 1) {
		return 1
	}
	s := math.Ceil(float64(n) / rate) // may be +Inf for a tiny rate
	return int(max(1, min(s, 60)))
}

// subset is the WriteRequest of the items idx (series, then metadata).
func subset(series []prompb.TimeSeries, metadata []prompb.MetricMetadata, idx []int) *prompb.WriteRequest {
	if len(idx) == len(series)+len(metadata) {
		// Everything, as with a single ingester: DoBatch lists the items in
		// order, so the request is the same.
		return &prompb.WriteRequest{Timeseries: series, Metadata: metadata}
	}
	wr := &prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, 0, len(idx))}
	for _, i := range idx {
		if i < len(series) {
			wr.Timeseries = append(wr.Timeseries, series[i])
		} else {
			wr.Metadata = append(wr.Metadata, metadata[i-len(series)])
		}
	}
	return wr
}

// encodeBuffers recycles the buffers that requests to ingesters are encoded
// into; see maxPooledRequestBytes.
var encodeBuffers = sync.Pool{New: func() any { return new([]byte) }}

func putEncodeBuffer(bp *[]byte) {
	if cap(*bp) <= maxPooledRequestBytes {
		encodeBuffers.Put(bp)
	}
}

// encodeBufferPool lets gRPC hand encodeBuffers back (mem.BufferPool).
type encodeBufferPool struct{}

func (encodeBufferPool) Get(n int) *[]byte {
	bp := encodeBuffers.Get().(*[]byte)
	*bp = slices.Grow((*bp)[:0], n)[:n]
	return bp
}

func (encodeBufferPool) Put(bp *[]byte) { putEncodeBuffer(bp) }

// encodeRequest appends to buf the encoded WriteRequest of the items idx
// (series, then metadata) for one ingester, copying the series that arrived
// encoded: raw, if not nil, holds the encoding of series[i] or nil.
func encodeRequest(buf []byte, series []prompb.TimeSeries, raw [][]byte, metadata []prompb.MetricMetadata, idx []int) ([]byte, error) {
	rawOf := func(i int) []byte {
		if i < len(raw) {
			return raw[i]
		}
		return nil
	}
	size := 0
	for _, i := range idx {
		var n int
		switch {
		case i >= len(series):
			n = metadata[i-len(series)].Size()
		case rawOf(i) != nil:
			n = len(raw[i])
		default:
			n = series[i].Size()
		}
		size += protowire.SizeTag(1) + protowire.SizeBytes(n)
	}
	buf = slices.Grow(buf[:0], size)
	for _, i := range idx {
		var (
			field protowire.Number = 1 // WriteRequest.timeseries
			b     []byte
			err   error
		)
		switch {
		case i >= len(series):
			field = 3 // WriteRequest.metadata
			b, err = metadata[i-len(series)].Marshal()
		case rawOf(i) != nil:
			b = raw[i]
		default:
			b, err = series[i].Marshal()
		}
		if err != nil {
			return buf, err
		}
		buf = protowire.AppendTag(buf, field, protowire.BytesType)
		buf = protowire.AppendBytes(buf, b)
	}
	return buf, nil
}
