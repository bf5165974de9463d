package main

import (
	"sort"
	"sync"
)

// RequestSpec is one remote-write request of every step: the series of slots
// [Lo, Hi) of one tenant. A slot is always in the same request, which is how
// the sender keeps each series' samples in order.
type RequestSpec struct {
	Tenant int
	Lo, Hi int
}

// Plan splits the active series across tenants and requests.
type Plan struct {
	Tenants  []string
	Requests []RequestSpec
	// TenantSlots holds each tenant's slots, [lo, hi).
	TenantSlots [][2]int
}

// NewPlan gives each tenant a contiguous, near-equal block of the slots and
// cuts each block into requests of at most perRequest series.
func NewPlan(tenants []string, activeSeries, perRequest int) *Plan {
	p := &Plan{Tenants: tenants}
	for t := range tenants {
		lo, hi := t*activeSeries/len(tenants), (t+1)*activeSeries/len(tenants)
		p.TenantSlots = append(p.TenantSlots, [2]int{lo, hi})
		for l := lo; l < hi; l += perRequest {
			p.Requests = append(p.Requests, RequestSpec{Tenant: t, Lo: l, Hi: min(l+perRequest, hi)})
		}
	}
	return p
}

// RequestOf returns the index of the request that carries slot.
func (p *Plan) RequestOf(slot int) int {
	return sort.Search(len(p.Requests), func(i int) bool { return p.Requests[i].Hi > slot })
}

// AckLog records, per step and request, how many series the server
// acknowledged: a request's first n series, n being all of them except in a
// step cut short by -samples. It is safe for concurrent use.
type AckLog struct {
	mu    sync.Mutex
	steps [][]int32
}

// AddStep makes room for a step of nreq requests; steps are added in order.
func (a *AckLog) AddStep(nreq int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.steps = append(a.steps, make([]int32, nreq))
}

// Ack records that the first n series of request req of step were stored.
func (a *AckLog) Ack(step int64, req, n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.steps[step][req] = int32(n)
}

// Acked returns how many series of request req of step were acknowledged.
func (a *AckLog) Acked(step int64, req int) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if step < 0 || step >= int64(len(a.steps)) {
		return 0
	}
	return int(a.steps[step][req])
}

// Steps returns how many steps were started.
func (a *AckLog) Steps() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return int64(len(a.steps))
}
