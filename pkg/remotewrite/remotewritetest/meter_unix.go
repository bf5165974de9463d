//go:build unix

package remotewritetest

import (
	"runtime"
	"syscall"
	"testing"
	"time"
)

// Meter measures the time, process CPU time and heap allocations of
// the timed part of a benchmark and reports them per sample. Use Pause and
// Resume instead of b.StopTimer and b.StartTimer.
type Meter struct {
	b       *testing.B
	mallocs uint64        // allocations while running
	cpu     time.Duration // process CPU time while running
	mark    uint64
	cpuMark time.Duration
}

// NewMeter resets the benchmark timer and starts measuring.
func NewMeter(b *testing.B) *Meter {
	b.ReportAllocs()
	m := &Meter{b: b}
	b.ResetTimer()
	m.mark, m.cpuMark = mallocs(), processCPU()
	return m
}

// Pause stops the timer and the measurements.
func (m *Meter) Pause() {
	m.b.StopTimer()
	m.mallocs += mallocs() - m.mark
	m.cpu += processCPU() - m.cpuMark
}

// Resume restarts the timer and the measurements.
func (m *Meter) Resume() {
	m.mark, m.cpuMark = mallocs(), processCPU()
	m.b.StartTimer()
}

// Report stops the timer and reports samples/s, ns/sample, cpu-ns/sample
// (process CPU time, all goroutines, GC included) and allocs/sample.
func (m *Meter) Report(samples int) {
	m.Pause()
	if samples == 0 {
		return
	}
	el := m.b.Elapsed()
	m.b.ReportMetric(float64(samples)/el.Seconds(), "samples/s")
	m.b.ReportMetric(float64(el.Nanoseconds())/float64(samples), "ns/sample")
	m.b.ReportMetric(float64(m.cpu.Nanoseconds())/float64(samples), "cpu-ns/sample")
	m.b.ReportMetric(float64(m.mallocs)/float64(samples), "allocs/sample")
}

func mallocs() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.Mallocs
}

// processCPU is the user and system CPU time of the process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
