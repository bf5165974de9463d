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

// runner is one run: it sends on the interval schedule until -duration or
// -samples, reports, and verifies.
type runner struct {
	cfg    Config
	logger *slog.Logger
	out    io.Writer

	gen     *Generator
	plan    *Plan
	acks    *AckLog
	stats   *Stats
	monitor *ServerMonitor // nil without -server-pid

	start   time.Time
	startMs int64
	outMu   sync.Mutex
}

// errNothingSent is a run in which the server acknowledged no sample.
var errNothingSent = errors.New("the server acknowledged no sample")

// newRunner prepares a run; it fails if -server-pid cannot be followed.
func newRunner(cfg Config, logger *slog.Logger, out io.Writer) (*runner, error) {
	r := &runner{
		cfg:    cfg,
		logger: logger,
		out:    out,
		gen:    NewGenerator(cfg.Seed, cfg.ActiveSeries, cfg.LabelsPerSeries, cfg.Churn, cfg.Interval.Milliseconds()),
		plan:   NewPlan(cfg.TenantList(), cfg.ActiveSeries, cfg.SeriesPerRequest),
		acks:   &AckLog{},
		stats:  NewStats(cfg.Interval, time.Now),
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

// send runs the sending phase until its end or ctx is cancelled, printing
// progress reports and then the final one. Cancelling ctx also abandons
// the requests in flight.
func (r *runner) send(ctx context.Context) (Snapshot, error) {
	r.startMs = time.Now().UnixMilli()
	r.start = time.UnixMilli(r.startMs)
	sender := NewSender(SenderConfig{
		URL:                r.cfg.URL,
		Concurrency:        r.cfg.Concurrency,
		RemoteWriteVersion: r.cfg.RemoteWriteVersion,
		Timeout:            r.cfg.RemoteTimeout,
		MaxRetries:         r.cfg.MaxRetries,
		MinBackoff:         r.cfg.MinBackoff,
		MaxBackoff:         r.cfg.MaxBackoff,
	}, SenderDeps{Gen: r.gen, Plan: r.plan, Stats: r.stats, Acks: r.acks, Logger: r.logger})
	sender.Start(ctx)

	r.logger.Info("sending",
		"url", r.cfg.URL, "remote_write_version", r.cfg.RemoteWriteVersion, "tenants", len(r.plan.Tenants), "active_series", r.cfg.ActiveSeries,
		"requests_per_interval", len(r.plan.Requests), "interval", r.cfg.Interval,
		"duration", r.cfg.Duration, "samples", r.cfg.Samples)
	stopBackground := r.background()
	r.produce(ctx, sender)
	sender.Close()
	stopBackground()

	snap := r.stats.Snapshot(r.start)
	if err := r.report("final", snap); err != nil {
		return snap, err
	}
	if snap.SamplesAcked == 0 {
		return snap, errNothingSent
	}
	return snap, nil
}

// produce queues one step per interval, on the wall-clock schedule. It never
// skips or thins a step to catch up: a step that cannot be queued in time is
// queued late, and the report shows the lag.
func (r *runner) produce(ctx context.Context, sender *Sender) {
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
			r.logger.Warn("falling behind schedule: the server or the sender cannot keep up; see steps_late in the report", "step", k)
		}
		remaining := int64(-1)
		if limit >= 0 {
			remaining = limit - queued
		}
		n, err := sender.Enqueue(ctx, k, due, r.startMs+k*r.cfg.Interval.Milliseconds(), remaining)
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
				if err := r.report("progress", r.stats.Snapshot(r.start)); err != nil {
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

// report prints one report, followed by an empty line.
func (r *runner) report(kind string, snap Snapshot) error {
	in := ReportInput{Kind: kind, Interval: r.cfg.Interval, ActiveSeries: r.cfg.ActiveSeries, Snap: snap}
	if r.monitor != nil {
		srv, err := r.monitor.Figures()
		if err != nil {
			r.logger.Warn("read server figures", "err", err)
		} else {
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
		StartMs:           r.startMs,
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
