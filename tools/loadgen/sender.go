package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/neocortex-metrics/neocortex/pkg/remotewrite"
)

// SenderConfig is how the sender pushes and retries.
type SenderConfig struct {
	URL         string
	Concurrency int
	// RemoteWriteVersion is "1.0" or "2.0"; empty means "1.0".
	RemoteWriteVersion string
	// Timeout bounds one push attempt.
	Timeout time.Duration
	// MaxRetries bounds the retries of one request; then its samples fail.
	MaxRetries int
	// MinBackoff is the first wait before a retry, doubled up to MaxBackoff.
	// A Retry-After from the server replaces it.
	MinBackoff, MaxBackoff time.Duration
}

// SenderDeps are what the sender reads from and records into.
type SenderDeps struct {
	Gen  *Generator
	Plan *Plan
	// Stats records the live steps (Enqueue), BackfillStats the backfilled
	// ones (Backfill); BackfillStats may be nil if Backfill is not used.
	Stats, BackfillStats *Stats
	Acks                 *AckLog
	Logger               *slog.Logger
}

// Sender pushes the steps of a run with Concurrency shards. Request r of
// every step goes to shard r%Concurrency, which sends its requests one at a
// time, retries included, in the order they were queued: since a series is
// always in the same request, its samples are never sent out of order. This
// is how Prometheus's remote-write shards work.
type Sender struct {
	cfg     SenderConfig
	deps    SenderDeps
	http    *http.Client
	clients []*remotewrite.Client // one per tenant
	queues  []chan job
	wg      sync.WaitGroup

	mu     sync.Mutex
	logged map[int]bool // status codes whose first failure was logged
}

// job is request req of step, cut to its first n series. Its outcome is
// recorded in stats, and done, if not nil, is told when it is answered.
type job struct {
	step  int64
	tsMs  int64
	req   int
	n     int
	stats *Stats
	done  *sync.WaitGroup
}

// NewSender returns a sender; Start starts its shards.
func NewSender(cfg SenderConfig, deps SenderDeps) *Sender {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = cfg.Concurrency
	s := &Sender{
		cfg:    cfg,
		deps:   deps,
		http:   &http.Client{Transport: tr, Timeout: cfg.Timeout},
		logged: map[int]bool{},
	}
	for _, t := range deps.Plan.Tenants {
		s.clients = append(s.clients, &remotewrite.Client{URL: cfg.URL, Tenant: t, HTTP: s.http})
	}
	// A shard's queue holds two steps of its requests: when a shard is
	// further behind, Enqueue blocks and the run reports the lag.
	perShard := (len(deps.Plan.Requests) + cfg.Concurrency - 1) / cfg.Concurrency
	for range cfg.Concurrency {
		s.queues = append(s.queues, make(chan job, 2*perShard))
	}
	return s
}

// Start starts the shards; they push with ctx until Close.
func (s *Sender) Start(ctx context.Context) {
	for _, q := range s.queues {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			sh := &shard{s: s, cache: map[int]*requestCache{}}
			for j := range q {
				sh.do(ctx, j)
			}
		}()
	}
}

// Enqueue queues the requests of step, timestamped tsMs and due at due, with
// at most limit samples (limit < 0: no limit). It returns the number of
// samples queued; it blocks while a shard is two steps behind.
func (s *Sender) Enqueue(ctx context.Context, step int64, due time.Time, tsMs int64, limit int64) (int64, error) {
	return s.enqueue(ctx, s.deps.Stats, nil, step, due, tsMs, limit)
}

// Backfill sends steps [from, to), step k timestamped tsMs(k), as fast as
// the shards take them, records them in BackfillStats, and returns once
// every one of their requests is answered (or abandoned, if ctx is
// cancelled). The steps go through the same shards as live ones, request r
// to shard r%Concurrency, so a series' samples stay in order across the
// backfill and the live run.
func (s *Sender) Backfill(ctx context.Context, from, to int64, tsMs func(step int64) int64) error {
	var done sync.WaitGroup
	defer done.Wait()
	for k := from; k < to; k++ {
		if _, err := s.enqueue(ctx, s.deps.BackfillStats, &done, k, time.Now(), tsMs(k), -1); err != nil {
			return err
		}
	}
	return nil
}

func (s *Sender) enqueue(ctx context.Context, st *Stats, done *sync.WaitGroup, step int64, due time.Time, tsMs int64, limit int64) (int64, error) {
	var jobs []job
	var queued int64
	for r, spec := range s.deps.Plan.Requests {
		n := int64(spec.Hi - spec.Lo)
		if limit >= 0 {
			n = min(n, limit-queued)
		}
		if n <= 0 {
			break
		}
		jobs = append(jobs, job{step: step, tsMs: tsMs, req: r, n: int(n), stats: st, done: done})
		queued += n
	}
	s.deps.Acks.AddStep(len(s.deps.Plan.Requests))
	st.StepStarted(step, due, len(jobs))
	if done != nil {
		done.Add(len(jobs))
	}
	for i, j := range jobs {
		select {
		case s.queues[j.req%len(s.queues)] <- j:
		case <-ctx.Done():
			// The step's unqueued requests will never be answered.
			for range jobs[i:] {
				st.RequestDone(step, 0, false)
				if done != nil {
					done.Done()
				}
			}
			return queued, ctx.Err()
		}
	}
	return queued, nil
}

// Close waits for the queued requests to be answered and stops the shards.
func (s *Sender) Close() {
	for _, q := range s.queues {
		close(q)
	}
	s.wg.Wait()
	s.http.CloseIdleConnections()
}

// shard sends the requests of one queue. It owns the requests' cached
// series: no other shard builds them.
type shard struct {
	s     *Sender
	cache map[int]*requestCache
}

// requestCache is a request's series, rebuilt only where churn changed a
// slot's generation.
type requestCache struct {
	wr   prompb.WriteRequest
	gens []int64
	v2   v2Encoder // unused with remote-write 1.0
}

func (sh *shard) do(ctx context.Context, j job) {
	if j.done != nil {
		defer j.done.Done()
	}
	st := j.stats
	st.RequestSent(j.n)
	wr := sh.build(j)
	var body []byte
	var headers map[string]string // nil: the client's, remote-write 1.0
	var err error
	if sh.s.cfg.RemoteWriteVersion == remoteWrite2 {
		spec := sh.s.deps.Plan.Requests[j.req]
		body, err = sh.cache[j.req].v2.encode(sh.s.deps.Gen, sh.cache[j.req], spec.Lo, j.n)
		headers = remoteWrite2Headers
	} else {
		body, err = remotewrite.Encode(wr)
	}
	acked := false
	if err == nil {
		acked = sh.push(ctx, st, sh.s.clients[sh.s.deps.Plan.Requests[j.req].Tenant], body, headers)
	} else {
		sh.s.deps.Logger.Error("encode request", "err", err)
	}
	if acked {
		sh.s.deps.Acks.Ack(j.step, j.req, j.n)
	}
	st.RequestDone(j.step, j.n, acked)
}

// build returns request j's WriteRequest. It is valid until the next call.
func (sh *shard) build(j job) *prompb.WriteRequest {
	gen := sh.s.deps.Gen
	spec := sh.s.deps.Plan.Requests[j.req]
	c := sh.cache[j.req]
	if c == nil {
		c = &requestCache{wr: prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, spec.Hi-spec.Lo)}, gens: make([]int64, spec.Hi-spec.Lo)}
		for i := range c.wr.Timeseries {
			c.gens[i] = -1
			c.wr.Timeseries[i].Samples = make([]prompb.Sample, 1)
		}
		sh.cache[j.req] = c
	}
	for i := range j.n {
		slot := spec.Lo + i
		g := gen.Generation(slot, j.step)
		ts := &c.wr.Timeseries[i]
		if g != c.gens[i] {
			c.gens[i] = g
			ts.Labels = gen.Labels(slot, g)
		}
		ts.Samples[0] = prompb.Sample{Value: gen.Value(slot, g, j.step), Timestamp: j.tsMs}
	}
	return &prompb.WriteRequest{Timeseries: c.wr.Timeseries[:j.n]}
}

// push sends body, retrying 5xx, 429 and network errors with exponential
// backoff (or the server's Retry-After) up to MaxRetries times, as
// Prometheus does. It reports whether the server acknowledged the request.
// headers replace the client's (see remotewrite.Client.PushRaw). Attempts
// are recorded in st.
func (sh *shard) push(ctx context.Context, st *Stats, c *remotewrite.Client, body []byte, headers map[string]string) bool {
	cfg := sh.s.cfg
	backoff := cfg.MinBackoff
	for attempt := 0; ; attempt++ {
		start := time.Now()
		err := c.PushRaw(ctx, body, headers)
		if err == nil {
			st.Attempt(time.Since(start), false, 0)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		status, wait := 0, backoff
		var rwErr *remotewrite.Error
		if errors.As(err, &rwErr) {
			status = rwErr.StatusCode
			if rwErr.RetryAfter > 0 {
				wait = rwErr.RetryAfter
			}
		}
		st.Attempt(time.Since(start), true, status)
		retryable := rwErr == nil || rwErr.Retryable()
		sh.s.logFirst(status, c.Tenant, retryable, err)
		if !retryable || attempt >= cfg.MaxRetries {
			return false
		}
		st.Retry()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
		backoff = min(2*backoff, cfg.MaxBackoff)
	}
}

// logFirst logs the first failure of each status (0: network error); the
// report counts them all.
func (s *Sender) logFirst(status int, tenant string, retryable bool, err error) {
	s.mu.Lock()
	first := !s.logged[status]
	s.logged[status] = true
	s.mu.Unlock()
	if first {
		s.deps.Logger.Warn("push failed; further failures like it are only counted", "tenant", tenant, "status", status, "retryable", retryable, "err", err)
	}
}
