package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// runner is one run: it writes the -backfill, if any, then sends on the
// interval schedule until -duration or -samples, reports, and verifies.
//
// Steps are numbered from the run's first sample: with a backfill of B
// steps, steps 0…B-1 are timestamped before the start and the live run
// goes on from step B (or later, if the backfill had to catch up), on the
// same grid of timestamps originMs + step × interval.
type runner struct {
	cfg    Config
	logger *slog.Logger
	out    io.Writer

	gen     *Generator
	plan    *Plan
	acks    *AckLog
	stats   *Stats         // the live run
	bfStats *Stats         // the backfill
	monitor *ServerMonitor // nil without -server-pid

	// originMs is the timestamp of step 0. Set before sending starts.
	originMs int64
	outMu    sync.Mutex

	// phaseMu guards the phase times below, which the progress reports read.
	phaseMu sync.Mutex
	// bfStart and bfEnd bound the backfill; bfEnd is zero until it is done.
	bfStart, bfEnd time.Time
	// bfCPU is the server's CPU seconds at the end of the backfill: the
	// live run's are counted from there.
	bfCPU float64
	// start is the timestamp of the live run's first step, zero until the
	// live run starts; startMs is the same in milliseconds.
	start   time.Time
	startMs int64
}

// errNothingSent is a run in which the server acknowledged no sample.
var errNothingSent = errors.New("the server acknowledged no sample")

// newRunner prepares a run; it fails if -server-pid cannot be followed.
func newRunner(cfg Config, logger *slog.Logger, out io.Writer) (*runner, error) {
	r := &runner{
		cfg:    cfg,
		logger: logger,
		out:    out,
		gen: NewGenerator(cfg.Seed, cfg.ActiveSeries, cfg.LabelsPerSeries, cfg.Churn, cfg.Interval.Milliseconds()).
			WithChurnFrom(cfg.BackfillSteps()),
		plan:    NewPlan(cfg.TenantList(), cfg.ActiveSeries, cfg.SeriesPerRequest),
		acks:    &AckLog{},
		stats:   NewStats(cfg.Interval, time.Now),
		bfStats: NewStats(cfg.Interval, time.Now),
	}
	if cfg.ServerPID > 0 {
		m, err := NewServerMonitor(cfg.ServerPID)
		if err != nil {
			return nil, fmt.Errorf("follow server pid %d: %w", cfg.ServerPID, err)
		}
		r.monitor = m
	}
	return r, nil
}

// send runs the sending phase, the backfill then the live run, until its
// end or ctx is cancelled, printing progress reports and then the final
// one. Cancelling ctx also abandons the requests in flight.
func (r *runner) send(ctx context.Context) (Snapshot, error) {
	backfillSteps := r.cfg.BackfillSteps()
	r.originMs = time.Now().UnixMilli() - backfillSteps*r.cfg.Interval.Milliseconds()
	sender := NewSender(SenderConfig{
		URL:                r.cfg.URL,
		Concurrency:        r.cfg.Concurrency,
		RemoteWriteVersion: r.cfg.RemoteWriteVersion,
		Timeout:            r.cfg.RemoteTimeout,
		MaxRetries:         r.cfg.MaxRetries,
		MinBackoff:         r.cfg.MinBackoff,
		MaxBackoff:         r.cfg.MaxBackoff,
	}, SenderDeps{Gen: r.gen, Plan: r.plan, Stats: r.stats, BackfillStats: r.bfStats, Acks: r.acks, Logger: r.logger})
	sender.Start(ctx)

	r.logger.Info("sending",
		"url", r.cfg.URL, "remote_write_version", r.cfg.RemoteWriteVersion, "tenants", len(r.plan.Tenants), "active_series", r.cfg.ActiveSeries,
		"requests_per_interval", len(r.plan.Requests), "interval", r.cfg.Interval,
		"duration", r.cfg.Duration, "samples", r.cfg.Samples, "backfill", r.cfg.Backfill, "backfill_steps", backfillSteps, "live_run", r.cfg.LiveRun())
	if r.cfg.Backfill > 0 && backfillSteps == 0 {
		r.logger.Warn("-backfill is shorter than -interval: nothing to backfill")
	}
	stopBackground := r.background()
	first := int64(0)
	if backfillSteps > 0 {
		first = r.backfill(ctx, sender, backfillSteps)
	}
	if r.cfg.LiveRun() && ctx.Err() == nil {
		r.phaseMu.Lock()
		r.startMs = r.originMs + first*r.cfg.Interval.Milliseconds()
		r.start = time.UnixMilli(r.startMs)
		r.phaseMu.Unlock()
		r.produce(ctx, sender, first)
	}
	sender.Close()
	stopBackground()

	snap, bf := r.snapshots()
	if err := r.report("final", snap, bf); err != nil {
		return snap, err
	}
	if snap.SamplesAcked == 0 && (bf == nil || bf.SamplesAcked == 0) {
		return snap, errNothingSent
	}
	return snap, nil
}

// backfill writes steps 0…n-1, all timestamped before the start, as fast as
// the server takes them. If there is a live run to follow, it then catches
// up with the clock: the steps that fell due meanwhile are written the same
// way, round after round, until the next step is not yet due, so that the
// live run starts on time, right after the last backfilled step. If a round
// is not shorter than the one before, the server takes samples no faster
// than the live run makes them and catching up would never end: the live
// run then starts behind, and its report says so. It returns the first
// step of the live run.
func (r *runner) backfill(ctx context.Context, sender *Sender, n int64) int64 {
	intervalMs := r.cfg.Interval.Milliseconds()
	r.phaseMu.Lock()
	r.bfStart = time.Now()
	r.phaseMu.Unlock()
	r.logger.Info("backfilling", "steps", n, "from", time.UnixMilli(r.originMs).UTC(), "to", time.UnixMilli(r.originMs+(n-1)*intervalMs).UTC())
	ts := func(step int64) int64 { return r.originMs + step*intervalMs }
	next, todo := int64(0), n
	for {
		if err := sender.Backfill(ctx, next, next+todo, ts); err != nil {
			break
		}
		next += todo
		if !r.cfg.LiveRun() {
			break
		}
		due := stepsDue(r.originMs, intervalMs, time.Now().UnixMilli(), next)
		if due == 0 {
			break
		}
		if due >= todo {
			r.logger.Warn("the backfill cannot catch up with the clock: the live run starts behind", "steps_behind", due)
			break
		}
		todo = due
	}
	end := time.Now()
	var cpu float64
	if r.monitor != nil {
		if srv, err := r.monitor.Figures(); err != nil {
			r.logger.Warn("read server figures", "err", err)
		} else {
			cpu = srv.CPUSeconds
		}
	}
	r.phaseMu.Lock()
	r.bfEnd, r.bfCPU = end, cpu
	r.phaseMu.Unlock()
	snap := r.bfStats.Snapshot(end)
	r.logger.Info("backfill done", "steps", next, "samples_acknowledged", snap.SamplesAcked, "samples_failed", snap.SamplesFailed, "took", end.Sub(r.bfStart))
	return next
}

// stepsDue returns how many steps from next on are due at nowMs: step k is
// due once its timestamp, originMs + k × intervalMs, is not in the future.
func stepsDue(originMs, intervalMs, nowMs, next int64) int64 {
	if nowMs < originMs {
		return 0
	}
	return max((nowMs-originMs)/intervalMs+1-next, 0)
}

// produce queues one step per interval, on the wall-clock schedule, from
// step first on, starting at r.start. It never skips or thins a step to
// catch up: a step that cannot be queued in time is queued late, and the
// report shows the lag.
func (r *runner) produce(ctx context.Context, sender *Sender, first int64) {
	var deadline time.Time
	if r.cfg.Duration > 0 {
		deadline = r.start.Add(r.cfg.Duration)
	}
	limit := r.cfg.Samples
	if limit == 0 {
		limit = -1
	}
	var queued int64
	warned := false
	for k := int64(0); ; k++ {
		due := r.start.Add(time.Duration(k) * r.cfg.Interval)
		if !deadline.IsZero() && !due.Before(deadline) || limit >= 0 && queued >= limit {
			return
		}
		if wait := time.Until(due); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		now := time.Now()
		if !deadline.IsZero() && !now.Before(deadline) {
			// Behind at the deadline: steps k… fell due but were not sent.
			notSent := int64((deadline.Sub(due) + r.cfg.Interval - 1) / r.cfg.Interval)
			r.stats.StepsNotSent(notSent)
			r.logger.Warn("stopped behind schedule", "steps_not_sent", notSent)
			return
		}
		if !warned && (now.Sub(due) > r.cfg.Interval || r.stats.Behind()) {
			warned = true
			r.logger.Warn("falling behind schedule: the server or the sender cannot keep up; see steps_late in the report", "step", first+k)
		}
		remaining := int64(-1)
		if limit >= 0 {
			remaining = limit - queued
		}
		n, err := sender.Enqueue(ctx, first+k, due, r.startMs+k*r.cfg.Interval.Milliseconds(), remaining)
		queued += n
		if err != nil {
			return
		}
	}
}

// background samples the server's RSS every second and prints a progress
// report every -report-interval, until the returned function is called.
func (r *runner) background() (stop func()) {
	var (
		rssC, reportC <-chan time.Time
		tickers       []*time.Ticker
	)
	if r.monitor != nil {
		t := time.NewTicker(time.Second)
		tickers, rssC = append(tickers, t), t.C
	}
	if r.cfg.ReportInterval > 0 {
		t := time.NewTicker(r.cfg.ReportInterval)
		tickers, reportC = append(tickers, t), t.C
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			case <-rssC:
				if err := r.monitor.SampleRSS(); err != nil {
					r.logger.Warn("sample server rss", "err", err)
				}
			case <-reportC:
				snap, bf := r.snapshots()
				if err := r.report("progress", snap, bf); err != nil {
					r.logger.Warn("write report", "err", err)
				}
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
		for _, t := range tickers {
			t.Stop()
		}
	}
}

// snapshots returns the figures of the live run, elapsed from its start
// (all zero before it starts), and of the backfill, elapsed from its start
// to its end or to now (nil without -backfill).
func (r *runner) snapshots() (Snapshot, *Snapshot) {
	r.phaseMu.Lock()
	start, bfStart, bfEnd := r.start, r.bfStart, r.bfEnd
	r.phaseMu.Unlock()
	var snap Snapshot
	if start.IsZero() {
		snap = r.stats.Snapshot(time.Now())
		snap.Elapsed = 0
	} else {
		snap = r.stats.Snapshot(start)
	}
	if r.cfg.Backfill == 0 {
		return snap, nil
	}
	bf := r.bfStats.Snapshot(bfStart)
	switch {
	case bfStart.IsZero():
		bf.Elapsed = 0
	case !bfEnd.IsZero():
		bf.Elapsed = bfEnd.Sub(bfStart)
	}
	return snap, &bf
}

// report prints one report, followed by an empty line. The server's CPU
// is split at the end of the backfill: what came before is the backfill's,
// the rest the live run's.
func (r *runner) report(kind string, snap Snapshot, bf *Snapshot) error {
	in := ReportInput{Kind: kind, Interval: r.cfg.Interval, ActiveSeries: r.cfg.ActiveSeries, Snap: snap}
	if bf != nil {
		in.Backfill = &BackfillInput{Snap: *bf}
	}
	if r.monitor != nil {
		srv, err := r.monitor.Figures()
		if err != nil {
			r.logger.Warn("read server figures", "err", err)
		} else {
			r.phaseMu.Lock()
			bfCPU, bfRunning := r.bfCPU, r.cfg.BackfillSteps() > 0 && r.bfEnd.IsZero()
			r.phaseMu.Unlock()
			if bfRunning {
				bfCPU = srv.CPUSeconds
			}
			srv.CPUSeconds -= bfCPU
			if in.Backfill != nil {
				in.Backfill.ServerCPUSeconds = bfCPU
			}
			in.Server = &srv
		}
	}
	return r.write(in.Figures())
}

func (r *runner) write(figs []Figure) error {
	r.outMu.Lock()
	defer r.outMu.Unlock()
	if err := WriteFigures(r.out, figs); err != nil {
		return err
	}
	_, err := io.WriteString(r.out, "\n")
	return err
}

// verify reads back what was acknowledged and prints the verify figures.
func (r *runner) verify(ctx context.Context) (VerifyResult, error) {
	v := &Verifier{
		QueryURL:          r.cfg.QueryURL,
		HTTP:              &http.Client{Timeout: 2 * time.Minute},
		Gen:               r.gen,
		Plan:              r.plan,
		Acks:              r.acks,
		StartMs:           r.originMs,
		IntervalMs:        r.cfg.Interval.Milliseconds(),
		Steps:             r.acks.Steps(),
		Concurrency:       r.cfg.Concurrency,
		MaxPointsPerQuery: 500000,
	}
	r.logger.Info("verifying", "query_url", r.cfg.QueryURL, "steps", v.Steps)
	start := time.Now()
	res, err := v.Run(ctx)
	if err != nil {
		return res, fmt.Errorf("verify: %w", err)
	}
	return res, r.write(VerifyFigures(res, time.Since(start)))
}
