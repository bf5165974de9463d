package main

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"
)

// Figure is one line of a report: "key: value". Keys are stable; scripts
// parse them.
type Figure struct {
	Key, Value string
}

// ReportInput is what one report is made of.
type ReportInput struct {
	Kind         string // "progress" or "final"
	Interval     time.Duration
	ActiveSeries int
	Snap         Snapshot       // the live run
	Server       *ServerFigures // nil without -server-pid; CPU of the live run
	Backfill     *BackfillInput // nil without -backfill
}

// BackfillInput is what the backfill_* lines of a report are made of.
type BackfillInput struct {
	// Snap holds the backfill's figures; Elapsed is its duration so far.
	Snap Snapshot
	// ServerCPUSeconds is the server's CPU during the backfill; printed
	// only with ReportInput.Server.
	ServerCPUSeconds float64
}

// Figures returns the report's lines in their fixed order. Status codes
// appear only once seen, server_* lines only with Server and backfill_*
// lines only with Backfill; every other key is always there. The unprefixed
// figures are the live run's, so that the rates and the CPU per million
// samples measure steady-state ingestion, not the burst of a backfill.
func (in ReportInput) Figures() []Figure {
	s := in.Snap
	// The rate is over the run time, but at least the completed steps ×
	// interval: a run keeping up shows the target rate, even though its last
	// step is answered soon after it is sent, and one falling behind shows
	// less.
	span := max(s.Elapsed, time.Duration(s.StepsCompleted)*in.Interval)
	figs := []Figure{
		{"report", in.Kind},
		{"elapsed_seconds", seconds(s.Elapsed, 3)},
		{"target_samples_per_second", fixed(float64(in.ActiveSeries)/in.Interval.Seconds(), 1)},
		{"samples_per_second", fixed(rate(s.SamplesAcked, span), 1)},
		{"keeping_up", strconv.FormatBool(s.KeepingUp(in.Interval))},
		{"steps_sent", integer(s.StepsSent)},
		{"steps_completed", integer(s.StepsCompleted)},
		{"steps_late", integer(s.StepsLate)},
		{"steps_not_sent", integer(s.StepsNotSent)},
		{"max_step_lag_seconds", seconds(s.MaxStepLag, 3)},
		{"requests_sent", integer(s.RequestsSent)},
		{"requests_acknowledged", integer(s.RequestsAcked)},
		{"requests_failed", integer(s.RequestsFailed)},
		{"samples_sent", integer(s.SamplesSent)},
		{"samples_acknowledged", integer(s.SamplesAcked)},
		{"samples_failed", integer(s.SamplesFailed)},
		{"retries", integer(s.Retries)},
		{"latency_p50_seconds", seconds(s.LatencyP50, 6)},
		{"latency_p99_seconds", seconds(s.LatencyP99, 6)},
		{"errors_network", integer(s.NetworkErrors)},
	}
	codes := make([]int, 0, len(s.StatusErrors))
	for c := range s.StatusErrors {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	for _, c := range codes {
		figs = append(figs, Figure{fmt.Sprintf("errors_status_%d", c), integer(s.StatusErrors[c])})
	}
	if srv := in.Server; srv != nil {
		figs = append(figs,
			Figure{"server_cpu_seconds", fixed(srv.CPUSeconds, 2)},
			Figure{"server_cpu_seconds_per_million_samples", perMillion(srv.CPUSeconds, s.SamplesAcked)},
			Figure{"server_rss_bytes", strconv.FormatUint(srv.RSS, 10)},
			Figure{"server_rss_peak_bytes", strconv.FormatUint(srv.PeakRSS, 10)},
		)
	}
	if bf := in.Backfill; bf != nil {
		b := bf.Snap
		figs = append(figs,
			Figure{"backfill_steps", integer(b.StepsSent)},
			Figure{"backfill_seconds", seconds(b.Elapsed, 3)},
			Figure{"backfill_samples_per_second", fixed(rate(b.SamplesAcked, b.Elapsed), 1)},
			Figure{"backfill_samples_sent", integer(b.SamplesSent)},
			Figure{"backfill_samples_acknowledged", integer(b.SamplesAcked)},
			Figure{"backfill_samples_failed", integer(b.SamplesFailed)},
			Figure{"backfill_retries", integer(b.Retries)},
		)
		if in.Server != nil {
			figs = append(figs,
				Figure{"backfill_server_cpu_seconds", fixed(bf.ServerCPUSeconds, 2)},
				Figure{"backfill_server_cpu_seconds_per_million_samples", perMillion(bf.ServerCPUSeconds, b.SamplesAcked)},
			)
		}
	}
	return figs
}

// perMillion returns cpu seconds per million samples, NaN without samples.
func perMillion(cpu float64, samples int64) string {
	if samples <= 0 {
		return "NaN"
	}
	return fixed(cpu/float64(samples)*1e6, 3)
}

// VerifyFigures returns the report lines of a verification.
func VerifyFigures(r VerifyResult, took time.Duration) []Figure {
	return []Figure{
		{"verify_expected_samples", integer(r.Expected)},
		{"verify_found_samples", integer(r.Found)},
		{"verify_missing_samples", integer(r.Missing)},
		{"verify_wrong_samples", integer(r.Wrong)},
		{"verify_unexpected_samples", integer(r.Unexpected)},
		{"verify_queries", integer(r.Queries)},
		{"verify_seconds", seconds(took, 3)},
	}
}

// WriteFigures writes figs one per line as "key: value".
func WriteFigures(w io.Writer, figs []Figure) error {
	b := make([]byte, 0, 64*len(figs))
	for _, f := range figs {
		b = append(b, f.Key...)
		b = append(b, ": "...)
		b = append(b, f.Value...)
		b = append(b, '\n')
	}
	_, err := w.Write(b)
	return err
}

func rate(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

func integer(n int64) string { return strconv.FormatInt(n, 10) }

func fixed(v float64, prec int) string { return strconv.FormatFloat(v, 'f', prec, 64) }

func seconds(d time.Duration, prec int) string { return fixed(d.Seconds(), prec) }
