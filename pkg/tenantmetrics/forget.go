// Package tenantmetrics forgets the per-tenant series of a component's
// metrics for tenants it has not served for a while, so that tenants who
// come and go do not grow its metrics without end.
package tenantmetrics

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Label is the label that names the tenant in per-tenant metrics.
const Label = "tenant"

// DefaultForgetAfter is how long a component keeps the series of a tenant
// it does not serve: a day, so that counters of tenants that send or query
// a few times a day do not restart, and their increase is counted whole.
const DefaultForgetAfter = 24 * time.Hour

// Forgetter deletes the series of a tenant from its vectors once the
// tenant has not been seen for the forget-after period.
type Forgetter struct {
	after time.Duration
	vecs  []*prometheus.MetricVec
	now   func() time.Time

	seen      sync.Map // tenant → *atomic.Int64, Unix nanoseconds
	nextCheck atomic.Int64
	also      []func(cutoff time.Time)
}

// New returns a Forgetter of the series of vecs (each with a Label label)
// for tenants not seen for after.
func New(after time.Duration, vecs ...*prometheus.MetricVec) *Forgetter {
	return &Forgetter{after: after, vecs: vecs, now: time.Now}
}

// Also makes each check call f with its cutoff too, for other per-tenant
// state to forget what was last used before it. Call it before any Seen.
func (f *Forgetter) Also(fn func(cutoff time.Time)) { f.also = append(f.also, fn) }

// Seen records that the component serves tenant now. Every tenth of the
// forget-after period, the call that comes first also forgets the tenants
// not seen for it.
func (f *Forgetter) Seen(tenant string) {
	now := f.now().UnixNano()
	if v, ok := f.seen.Load(tenant); ok {
		v.(*atomic.Int64).Store(now)
	} else {
		v := new(atomic.Int64)
		v.Store(now)
		if old, loaded := f.seen.LoadOrStore(tenant, v); loaded {
			old.(*atomic.Int64).Store(now)
		}
	}
	// One call per period wins the check: the one that moves it on.
	if next := f.nextCheck.Load(); now >= next && f.nextCheck.CompareAndSwap(next, now+int64(f.after/10)) {
		cutoff := now - int64(f.after)
		f.forget(cutoff)
		for _, fn := range f.also {
			fn(time.Unix(0, cutoff))
		}
	}
}

// forget deletes the series of the tenants last seen before cutoff.
func (f *Forgetter) forget(cutoff int64) {
	f.seen.Range(func(k, v any) bool {
		if v.(*atomic.Int64).Load() >= cutoff {
			return true
		}
		f.seen.Delete(k)
		for _, vec := range f.vecs {
			vec.DeletePartialMatch(prometheus.Labels{Label: k.(string)})
		}
		return true
	})
}
