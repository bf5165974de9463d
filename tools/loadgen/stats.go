package main

import (
	"maps"
	"math"
	"slices"
	"sync"
	"time"
)

// Stats counts what the sender did. It is safe for concurrent use.
type Stats struct {
	mu       sync.Mutex
	now      func() time.Time
	interval time.Duration
	s        Snapshot
	// latencies holds the duration of every push attempt.
	latencies []time.Duration
	// pending counts the unanswered requests of each started step.
	pending map[int64]stepState
}

type stepState struct {
	due     time.Time
	pending int
}

// Snapshot is the state of a run at one moment; the report prints it.
type Snapshot struct {
	Elapsed time.Duration

	StepsSent      int64 // steps whose requests were all queued
	StepsCompleted int64 // steps whose requests were all answered
	StepsLate      int64 // steps answered more than one interval after they fell due
	StepsNotSent   int64 // steps that fell due but were not started before the run stopped
	MaxStepLag     time.Duration

	RequestsSent, RequestsAcked, RequestsFailed int64
	SamplesSent, SamplesAcked, SamplesFailed    int64
	Retries                                     int64
	NetworkErrors                               int64
	// StatusErrors counts non-2xx answers by status code, retried ones included.
	StatusErrors map[int]int64

	LatencyP50, LatencyP99 time.Duration
}

// NewStats returns empty stats for a run with the given interval.
func NewStats(interval time.Duration, now func() time.Time) *Stats {
	return &Stats{now: now, interval: interval, pending: map[int64]stepState{}, s: Snapshot{StatusErrors: map[int]int64{}}}
}

// StepStarted records that step, due at due, is about to be sent as nreq requests.
func (st *Stats) StepStarted(step int64, due time.Time, nreq int) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.s.StepsSent++
	st.pending[step] = stepState{due: due, pending: nreq}
}

// StepsNotSent records steps that fell due but were never started.
func (st *Stats) StepsNotSent(n int64) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.s.StepsNotSent += n
}

// RequestSent records the first attempt of a request of n samples.
func (st *Stats) RequestSent(n int) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.s.RequestsSent++
	st.s.SamplesSent += int64(n)
}

// Attempt records one push attempt: its duration and how it failed, if it
// did (status 0 is a network error).
func (st *Stats) Attempt(d time.Duration, failed bool, status int) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.latencies = append(st.latencies, d)
	switch {
	case !failed:
	case status == 0:
		st.s.NetworkErrors++
	default:
		st.s.StatusErrors[status]++
	}
}

// Retry records that a push is retried.
func (st *Stats) Retry() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.s.Retries++
}

// RequestDone records the final outcome of a request of n samples of step.
func (st *Stats) RequestDone(step int64, n int, acked bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if acked {
		st.s.RequestsAcked++
		st.s.SamplesAcked += int64(n)
	} else {
		st.s.RequestsFailed++
		st.s.SamplesFailed += int64(n)
	}
	ps, ok := st.pending[step]
	if !ok {
		return
	}
	if ps.pending--; ps.pending > 0 {
		st.pending[step] = ps
		return
	}
	delete(st.pending, step)
	st.s.StepsCompleted++
	lag := st.now().Sub(ps.due)
	st.s.MaxStepLag = max(st.s.MaxStepLag, lag)
	if lag > st.interval {
		st.s.StepsLate++
	}
}

// Behind tells whether a step was, or still is, answered more than one
// interval after it fell due.
func (st *Stats) Behind() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.s.StepsLate > 0 {
		return true
	}
	now := st.now()
	for _, ps := range st.pending {
		if now.Sub(ps.due) > st.interval {
			return true
		}
	}
	return false
}

// Snapshot returns the figures so far, elapsed counted from start.
func (st *Stats) Snapshot(start time.Time) Snapshot {
	st.mu.Lock()
	s := st.s
	s.StatusErrors = maps.Clone(st.s.StatusErrors)
	lat := slices.Clone(st.latencies)
	now := st.now()
	// A step still unanswered an interval after it fell due is late already.
	for _, ps := range st.pending {
		if lag := now.Sub(ps.due); lag > st.interval {
			s.MaxStepLag = max(s.MaxStepLag, lag)
		}
	}
	st.mu.Unlock()

	s.Elapsed = now.Sub(start)
	slices.Sort(lat)
	s.LatencyP50 = percentile(lat, 0.50)
	s.LatencyP99 = percentile(lat, 0.99)
	return s
}

// KeepingUp tells whether every step due was sent and answered within one
// interval of falling due.
func (s Snapshot) KeepingUp(interval time.Duration) bool {
	return s.StepsLate == 0 && s.StepsNotSent == 0 && s.MaxStepLag <= interval
}

// percentile returns the nearest-rank p-quantile of sorted, 0 if empty.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
