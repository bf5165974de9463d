// Package queue is the per-tenant fair request queue that query-frontends
// (direct mode) and query-schedulers hold and queriers pull from: each
// tenant has its own FIFO, queriers take from the tenants in turn, and with
// shuffle sharding a tenant's requests reach only a few queriers, so one
// tenant's flood cannot starve another.
package queue

import (
	"context"
	"errors"
	"flag"
	"slices"
	"sync"
	"time"

	"github.com/grafana/dskit/services"
)

// Sentinel errors of the queue.
var (
	// ErrTooManyRequests is returned by Enqueue when the tenant already has
	// max_outstanding_requests_per_tenant requests queued (HTTP 429).
	ErrTooManyRequests = errors.New("too many outstanding requests")
	// ErrStopped is returned once the queue is stopping or stopped.
	ErrStopped = errors.New("queue is stopped")
)

// Config is the queue's limits. Frontends and schedulers register it with
// their own flag prefix and inline it in their config.
type Config struct {
	MaxOutstandingPerTenant int           `yaml:"max_outstanding_requests_per_tenant"`
	MaxQueriersPerTenant    int           `yaml:"max_queriers_per_tenant"`
	QuerierForgetDelay      time.Duration `yaml:"querier_forget_delay"`
}

// RegisterFlagsWithPrefix registers the flags under prefix (e.g.
// "frontend.") and sets their defaults.
func (c *Config) RegisterFlagsWithPrefix(prefix string, f *flag.FlagSet) {
	f.IntVar(&c.MaxOutstandingPerTenant, prefix+"max-outstanding-requests-per-tenant", 100, "Most requests of one tenant that may wait in the queue; more are refused with 429.")
	f.IntVar(&c.MaxQueriersPerTenant, prefix+"max-queriers-per-tenant", 0, "Shuffle sharding: how many queriers may run one tenant's queries, chosen by a hash of the tenant (0 = all).")
	f.DurationVar(&c.QuerierForgetDelay, prefix+"querier-forget-delay", 0, "How long a disconnected querier keeps its place in the tenants' shuffle shards, so that a restart does not reshuffle them (0 = forget at once).")
}

// Validate checks the limits.
func (c *Config) Validate() error {
	switch {
	case c.MaxOutstandingPerTenant < 1:
		return errors.New("max_outstanding_requests_per_tenant must be at least 1")
	case c.MaxQueriersPerTenant < 0:
		return errors.New("max_queriers_per_tenant must not be negative")
	case c.QuerierForgetDelay < 0:
		return errors.New("querier_forget_delay must not be negative")
	}
	return nil
}

// Request is what the queue holds; the queue only compares requests (in
// Remove), so they are usually pointers.
type Request any

// Position is where a querier stopped in the round robin over tenants; pass
// the one Dequeue returned to the next Dequeue of the same querier connection.
type Position int

// FirstPosition is the position of a querier connection's first Dequeue.
const FirstPosition Position = -1

const (
	// cleanupInterval is how often disconnected queriers are forgotten and
	// idle tenants deleted.
	cleanupInterval = 5 * time.Second
	// tenantIdleTimeout is how long a tenant's queue stays empty before the
	// tenant and its metric series are deleted.
	tenantIdleTimeout = time.Minute
)

// Queue is the per-tenant fair queue. It is a service: its running loop
// forgets disconnected queriers and deletes idle tenants; stopping it wakes
// every Dequeue, which then returns ErrStopped. All methods are safe for
// concurrent use.
type Queue struct {
	services.Service

	cfg     Config
	metrics *Metrics
	now     func() time.Time

	mtx     sync.Mutex
	wake    chan struct{} // closed and replaced when requests, queriers or the state change
	stopped bool
	tenants map[string]*tenantQueue
	// order is the round robin of tenants; nil entries are holes left by
	// deleted tenants, reused by new ones so positions stay stable.
	order    []*tenantQueue
	queriers map[string]*querier
	// sortedQueriers are the ids of the queriers in the shuffle shards:
	// connected ones and disconnected ones not forgotten yet.
	sortedQueriers []string
}

type tenantQueue struct {
	name        string
	index       int
	items       []entry
	maxQueriers int
	// queriers are the ids of the tenant's shuffle shard; nil is all.
	queriers  map[string]struct{}
	idleSince time.Time // when items became empty
}

type entry struct {
	req      Request
	enqueued time.Time
}

type querier struct {
	connections    int
	disconnectedAt time.Time // zero while connected
}

// New returns a queue with cfg's limits and metrics m (from NewMetrics).
func New(cfg Config, m *Metrics) *Queue {
	q := &Queue{
		cfg:      cfg,
		metrics:  m,
		now:      time.Now,
		wake:     make(chan struct{}),
		tenants:  map[string]*tenantQueue{},
		queriers: map[string]*querier{},
	}
	q.Service = services.NewBasicService(nil, q.running, q.stopping)
	return q
}

func (q *Queue) running(ctx context.Context) error {
	t := time.NewTicker(cleanupInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			q.cleanup(q.now())
		}
	}
}

func (q *Queue) stopping(error) error {
	q.mtx.Lock()
	defer q.mtx.Unlock()
	q.stopped = true
	q.broadcast()
	return nil
}

// broadcast wakes every Dequeue. The caller holds mtx.
func (q *Queue) broadcast() {
	close(q.wake)
	q.wake = make(chan struct{})
}

// Enqueue appends req to tenant's FIFO. maxQueriers is the size of the
// tenant's shuffle shard (0 = all queriers); it may change from call to call.
// It returns ErrTooManyRequests when the tenant's queue is full and
// ErrStopped once the queue stops.
func (q *Queue) Enqueue(tenant string, req Request, maxQueriers int) error {
	q.mtx.Lock()
	defer q.mtx.Unlock()
	if q.stopped {
		return ErrStopped
	}
	tq := q.tenants[tenant]
	if tq == nil {
		tq = &tenantQueue{name: tenant, index: -1, maxQueriers: maxQueriers}
		if i := slices.Index(q.order, nil); i >= 0 {
			tq.index = i
			q.order[i] = tq
		} else {
			tq.index = len(q.order)
			q.order = append(q.order, tq)
		}
		q.tenants[tenant] = tq
		tq.queriers = shuffleShard(tenant, maxQueriers, q.sortedQueriers)
	} else if tq.maxQueriers != maxQueriers {
		tq.maxQueriers = maxQueriers
		tq.queriers = shuffleShard(tenant, maxQueriers, q.sortedQueriers)
	}
	if len(tq.items) >= q.cfg.MaxOutstandingPerTenant {
		q.metrics.discarded.WithLabelValues(tenant).Inc()
		return ErrTooManyRequests
	}
	tq.items = append(tq.items, entry{req: req, enqueued: q.now()})
	q.metrics.length.WithLabelValues(tenant).Set(float64(len(tq.items)))
	q.broadcast()
	return nil
}

// Dequeue blocks until a request that querierID may run is queued, and
// returns it with the position to pass to this connection's next Dequeue.
// It takes from the tenants in turn, starting after last. It returns
// ctx's error when ctx is done and ErrStopped once the queue stops.
func (q *Queue) Dequeue(ctx context.Context, querierID string, last Position) (Request, Position, error) {
	for {
		q.mtx.Lock()
		if q.stopped {
			q.mtx.Unlock()
			return nil, last, ErrStopped
		}
		if err := ctx.Err(); err != nil {
			q.mtx.Unlock()
			return nil, last, err
		}
		if req, pos, ok := q.next(querierID, last); ok {
			q.mtx.Unlock()
			return req, pos, nil
		}
		wake := q.wake
		q.mtx.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
		}
	}
}

// next pops the first request querierID may run from the tenants after
// last. The caller holds mtx.
func (q *Queue) next(querierID string, last Position) (Request, Position, bool) {
	n := len(q.order)
	for i := 1; i <= n; i++ {
		idx := (int(last) + i) % n
		if idx < 0 {
			idx += n
		}
		tq := q.order[idx]
		if tq == nil || len(tq.items) == 0 {
			continue
		}
		if tq.queriers != nil {
			if _, ok := tq.queriers[querierID]; !ok {
				continue
			}
		}
		e := tq.items[0]
		tq.items[0] = entry{}
		tq.items = tq.items[1:]
		now := q.now()
		if len(tq.items) == 0 {
			tq.items = nil // release the backing array
			tq.idleSince = now
		}
		q.metrics.length.WithLabelValues(tq.name).Set(float64(len(tq.items)))
		q.metrics.wait.Observe(now.Sub(e.enqueued).Seconds())
		return e.req, Position(idx), true
	}
	return nil, last, false
}

// Remove takes req, compared with ==, out of tenant's queue, e.g. when its
// caller gave up on it. It returns false when req is not queued (any more).
func (q *Queue) Remove(tenant string, req Request) bool {
	q.mtx.Lock()
	defer q.mtx.Unlock()
	tq := q.tenants[tenant]
	if tq == nil {
		return false
	}
	for i, e := range tq.items {
		if e.req == req {
			tq.items = slices.Delete(tq.items, i, i+1)
			if len(tq.items) == 0 {
				tq.items = nil
				tq.idleSince = q.now()
			}
			q.metrics.length.WithLabelValues(tenant).Set(float64(len(tq.items)))
			return true
		}
	}
	return false
}

// Drain empties the queue and returns the requests it held, so that their
// owner can fail them, e.g. before stopping the queue.
func (q *Queue) Drain() []Request {
	q.mtx.Lock()
	defer q.mtx.Unlock()
	var out []Request
	now := q.now()
	for _, tq := range q.tenants {
		if len(tq.items) == 0 {
			continue
		}
		for _, e := range tq.items {
			out = append(out, e.req)
		}
		tq.items = nil
		tq.idleSince = now
		q.metrics.length.WithLabelValues(tq.name).Set(0)
	}
	return out
}

// Len is the number of queued requests of all tenants.
func (q *Queue) Len() int {
	q.mtx.Lock()
	defer q.mtx.Unlock()
	n := 0
	for _, tq := range q.tenants {
		n += len(tq.items)
	}
	return n
}

// RegisterQuerierConnection records one more connection (stream) of querier
// id; its first one adds the querier to the shuffle shards.
func (q *Queue) RegisterQuerierConnection(id string) {
	q.mtx.Lock()
	defer q.mtx.Unlock()
	qr := q.queriers[id]
	if qr == nil {
		qr = &querier{}
		q.queriers[id] = qr
		q.reshard()
	}
	qr.connections++
	qr.disconnectedAt = time.Time{}
	q.metrics.queriers.Set(float64(q.connectedQueriers()))
}

// UnregisterQuerierConnection records that a connection of querier id
// closed. After its last one the querier leaves the shuffle shards, at once
// or after querier_forget_delay.
func (q *Queue) UnregisterQuerierConnection(id string) {
	q.mtx.Lock()
	defer q.mtx.Unlock()
	qr := q.queriers[id]
	if qr == nil || qr.connections == 0 {
		return
	}
	qr.connections--
	if qr.connections == 0 {
		if q.cfg.QuerierForgetDelay > 0 {
			qr.disconnectedAt = q.now()
		} else {
			delete(q.queriers, id)
			q.reshard()
		}
	}
	q.metrics.queriers.Set(float64(q.connectedQueriers()))
}

// Serve is one connection of querier id: it hands run the requests
// dequeued for the querier, one at a time, until ctx ends (its error), run
// fails (its error) or the queue stops (then shutdown tells the querier).
func (q *Queue) Serve(ctx context.Context, id string, run func(Request) error, shutdown func() error) error {
	q.RegisterQuerierConnection(id)
	defer q.UnregisterQuerierConnection(id)
	last := FirstPosition
	for {
		req, pos, err := q.Dequeue(ctx, id, last)
		if errors.Is(err, ErrStopped) {
			return shutdown()
		}
		if err != nil {
			return err
		}
		last = pos
		if err := run(req); err != nil {
			return err
		}
	}
}

// ConnectedQueriers is the number of queriers with at least one connection.
func (q *Queue) ConnectedQueriers() int {
	q.mtx.Lock()
	defer q.mtx.Unlock()
	return q.connectedQueriers()
}

func (q *Queue) connectedQueriers() int {
	n := 0
	for _, qr := range q.queriers {
		if qr.connections > 0 {
			n++
		}
	}
	return n
}

// reshard recomputes every tenant's shuffle shard after the queriers
// changed. The caller holds mtx.
func (q *Queue) reshard() {
	q.sortedQueriers = q.sortedQueriers[:0]
	for id := range q.queriers {
		q.sortedQueriers = append(q.sortedQueriers, id)
	}
	slices.Sort(q.sortedQueriers)
	for _, tq := range q.tenants {
		tq.queriers = shuffleShard(tq.name, tq.maxQueriers, q.sortedQueriers)
	}
	// A request may now reach a querier that waits for work.
	q.broadcast()
}

// cleanup forgets the queriers disconnected for longer than the forget
// delay and deletes the tenants idle for longer than tenantIdleTimeout.
func (q *Queue) cleanup(now time.Time) {
	q.mtx.Lock()
	defer q.mtx.Unlock()
	changed := false
	for id, qr := range q.queriers {
		if qr.connections == 0 && !qr.disconnectedAt.IsZero() && now.Sub(qr.disconnectedAt) >= q.cfg.QuerierForgetDelay {
			delete(q.queriers, id)
			changed = true
		}
	}
	if changed {
		q.reshard()
	}
	for name, tq := range q.tenants {
		if len(tq.items) == 0 && now.Sub(tq.idleSince) >= tenantIdleTimeout {
			delete(q.tenants, name)
			q.order[tq.index] = nil
			q.metrics.deleteTenant(name)
		}
	}
	for len(q.order) > 0 && q.order[len(q.order)-1] == nil {
		q.order = q.order[:len(q.order)-1]
	}
}
