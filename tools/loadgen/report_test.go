package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestReportFigures(t *testing.T) {
	snap := Snapshot{
		Elapsed:        29*time.Second + 500*time.Millisecond,
		StepsSent:      6,
		StepsCompleted: 6,
		MaxStepLag:     120 * time.Millisecond,
		RequestsSent:   120, RequestsAcked: 119, RequestsFailed: 1,
		SamplesSent: 120000, SamplesAcked: 119000, SamplesFailed: 1000,
		Retries:       3,
		NetworkErrors: 1,
		StatusErrors:  map[int]int64{503: 2, 400: 1},
		LatencyP50:    12345 * time.Microsecond,
		LatencyP99:    98765 * time.Microsecond,
	}
	// idle is the live part of a report of a run that sent nothing.
	const idle = `elapsed_seconds: 0.000
target_samples_per_second: 10.0
samples_per_second: 0.0
keeping_up: true
steps_sent: 0
steps_completed: 0
steps_late: 0
steps_not_sent: 0
max_step_lag_seconds: 0.000
requests_sent: 0
requests_acknowledged: 0
requests_failed: 0
samples_sent: 0
samples_acknowledged: 0
samples_failed: 0
retries: 0
latency_p50_seconds: 0.000000
latency_p99_seconds: 0.000000
errors_network: 0
`
	const common = `target_samples_per_second: 4000.0
samples_per_second: 3966.7
keeping_up: true
steps_sent: 6
steps_completed: 6
steps_late: 0
steps_not_sent: 0
max_step_lag_seconds: 0.120
requests_sent: 120
requests_acknowledged: 119
requests_failed: 1
samples_sent: 120000
samples_acknowledged: 119000
samples_failed: 1000
retries: 3
latency_p50_seconds: 0.012345
latency_p99_seconds: 0.098765
errors_network: 1
errors_status_400: 1
errors_status_503: 2
`
	late := snap
	late.StepsLate, late.StepsNotSent, late.MaxStepLag = 2, 1, 7*time.Second
	late.Elapsed = 40 * time.Second
	late.StatusErrors = nil

	for _, tc := range []struct {
		name string
		in   ReportInput
		want string
	}{
		{
			name: "progress without server",
			in:   ReportInput{Kind: "progress", Interval: 5 * time.Second, ActiveSeries: 20000, Snap: snap},
			want: "report: progress\nelapsed_seconds: 29.500\n" + common,
		},
		{
			name: "final with server",
			in: ReportInput{Kind: "final", Interval: 5 * time.Second, ActiveSeries: 20000, Snap: snap,
				Server: &ServerFigures{CPUSeconds: 2.38, RSS: 300 << 20, PeakRSS: 310 << 20}},
			want: "report: final\nelapsed_seconds: 29.500\n" + common + `server_cpu_seconds: 2.38
server_cpu_seconds_per_million_samples: 20.000
server_rss_bytes: 314572800
server_rss_peak_bytes: 325058560
`,
		},
		{
			name: "falling behind",
			in:   ReportInput{Kind: "final", Interval: 5 * time.Second, ActiveSeries: 20000, Snap: late},
			want: `report: final
elapsed_seconds: 40.000
target_samples_per_second: 4000.0
samples_per_second: 2975.0
keeping_up: false
steps_sent: 6
steps_completed: 6
steps_late: 2
steps_not_sent: 1
max_step_lag_seconds: 7.000
requests_sent: 120
requests_acknowledged: 119
requests_failed: 1
samples_sent: 120000
samples_acknowledged: 119000
samples_failed: 1000
retries: 3
latency_p50_seconds: 0.012345
latency_p99_seconds: 0.098765
errors_network: 1
`,
		},
		{
			name: "nothing acknowledged",
			in: ReportInput{Kind: "final", Interval: time.Second, ActiveSeries: 10, Snap: Snapshot{},
				Server: &ServerFigures{CPUSeconds: 0.5, RSS: 1, PeakRSS: 2}},
			want: "report: final\n" + idle + `server_cpu_seconds: 0.50
server_cpu_seconds_per_million_samples: NaN
server_rss_bytes: 1
server_rss_peak_bytes: 2
`,
		},
		{
			name: "backfill with server",
			in: ReportInput{Kind: "final", Interval: 5 * time.Second, ActiveSeries: 20000, Snap: snap,
				Server: &ServerFigures{CPUSeconds: 2.38, RSS: 300 << 20, PeakRSS: 310 << 20},
				Backfill: &BackfillInput{Snap: Snapshot{
					Elapsed: 4 * time.Second, StepsSent: 40, SamplesSent: 800000, SamplesAcked: 799000, SamplesFailed: 1000, Retries: 2,
				}, ServerCPUSeconds: 15.98}},
			want: "report: final\nelapsed_seconds: 29.500\n" + common + `server_cpu_seconds: 2.38
server_cpu_seconds_per_million_samples: 20.000
server_rss_bytes: 314572800
server_rss_peak_bytes: 325058560
backfill_steps: 40
backfill_seconds: 4.000
backfill_samples_per_second: 199750.0
backfill_samples_sent: 800000
backfill_samples_acknowledged: 799000
backfill_samples_failed: 1000
backfill_retries: 2
backfill_server_cpu_seconds: 15.98
backfill_server_cpu_seconds_per_million_samples: 20.000
`,
		},
		{
			name: "backfill only, without server",
			in: ReportInput{Kind: "final", Interval: time.Second, ActiveSeries: 10, Snap: Snapshot{},
				Backfill: &BackfillInput{Snap: Snapshot{Elapsed: 500 * time.Millisecond, StepsSent: 3, SamplesSent: 30, SamplesAcked: 30}}},
			want: "report: final\n" + idle + `backfill_steps: 3
backfill_seconds: 0.500
backfill_samples_per_second: 60.0
backfill_samples_sent: 30
backfill_samples_acknowledged: 30
backfill_samples_failed: 0
backfill_retries: 0
`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			require.NoError(t, WriteFigures(&b, tc.in.Figures()))
			require.Equal(t, tc.want, b.String())
		})
	}
}

func TestVerifyFigures(t *testing.T) {
	var b bytes.Buffer
	require.NoError(t, WriteFigures(&b, VerifyFigures(VerifyResult{Expected: 12, Found: 10, Missing: 1, Wrong: 1, Queries: 4}, 1500*time.Millisecond)))
	require.Equal(t, `verify_expected_samples: 12
verify_found_samples: 10
verify_missing_samples: 1
verify_wrong_samples: 1
verify_unexpected_samples: 0
verify_queries: 4
verify_seconds: 1.500
`, b.String())
}

func TestStats(t *testing.T) {
	now := time.Unix(1000, 0)
	clock := func() time.Time { return now }
	for _, tc := range []struct {
		name       string
		answerAt   time.Duration // after the step fell due
		wantLate   int64
		wantMaxLag time.Duration
	}{
		{"in time", 2 * time.Second, 0, 2 * time.Second},
		{"late", 6 * time.Second, 1, 6 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := NewStats(5*time.Second, clock)
			due := now
			st.StepStarted(0, due, 2)
			for i, d := range []time.Duration{3, 1, 2, 4} {
				st.Attempt(d*time.Millisecond, i == 0, 503)
			}
			st.RequestDone(0, 10, true)
			now = due.Add(tc.answerAt)
			st.RequestDone(0, 10, false)
			s := st.Snapshot(due)
			require.Equal(t, tc.wantLate, s.StepsLate)
			require.Equal(t, tc.wantMaxLag, s.MaxStepLag)
			require.Equal(t, int64(1), s.StepsCompleted)
			require.Equal(t, int64(10), s.SamplesAcked)
			require.Equal(t, int64(10), s.SamplesFailed)
			require.Equal(t, map[int]int64{503: 1}, s.StatusErrors)
			require.Equal(t, 2*time.Millisecond, s.LatencyP50)
			require.Equal(t, 4*time.Millisecond, s.LatencyP99)
		})
	}
}
