package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
)

// clockTicksPerSecond is sysconf(_SC_CLK_TCK), the unit of utime and stime
// in /proc/<pid>/stat. It is 100 on every Linux architecture Go supports;
// reading it would need cgo.
const clockTicksPerSecond = 100

// parseProcStat returns utime+stime, in clock ticks, from the text of
// /proc/<pid>/stat. The command name (field 2) is in parentheses and may hold
// spaces and parentheses itself, so fields are counted from the last ')'.
func parseProcStat(s string) (uint64, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("parse /proc stat: no command name")
	}
	// After the command name come state (field 3) … utime (14), stime (15).
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("parse /proc stat: %d fields after the command name, want at least 13", len(f))
	}
	utime, err := strconv.ParseUint(f[11], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse /proc stat utime: %w", err)
	}
	stime, err := strconv.ParseUint(f[12], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse /proc stat stime: %w", err)
	}
	return utime + stime, nil
}

// parseProcStatusRSS returns VmRSS, in bytes, from the text of
// /proc/<pid>/status.
func parseProcStatusRSS(s string) (uint64, error) {
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("parse /proc status: VmRSS %q is not \"<n> kB\"", strings.TrimSpace(rest))
		}
		kb, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse /proc status VmRSS: %w", err)
		}
		return kb * 1024, nil
	}
	return 0, errors.New("parse /proc status: no VmRSS")
}

// ServerMonitor follows a local server process through /proc: CPU time used
// since the monitor started, and RSS. It is safe for concurrent use.
type ServerMonitor struct {
	pid        int
	startTicks uint64

	mu      sync.Mutex
	rss     uint64
	peakRSS uint64
}

// ServerFigures are what the report prints about the server.
type ServerFigures struct {
	CPUSeconds float64
	RSS        uint64
	PeakRSS    uint64
}

// NewServerMonitor reads the server's CPU time and RSS once, failing if the
// process cannot be read.
func NewServerMonitor(pid int) (*ServerMonitor, error) {
	m := &ServerMonitor{pid: pid}
	ticks, err := m.cpuTicks()
	if err != nil {
		return nil, err
	}
	m.startTicks = ticks
	if err := m.SampleRSS(); err != nil {
		return nil, err
	}
	return m, nil
}

// SampleRSS reads the server's RSS and keeps the peak.
func (m *ServerMonitor) SampleRSS() error {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", m.pid))
	if err != nil {
		return fmt.Errorf("read server rss: %w", err)
	}
	rss, err := parseProcStatusRSS(string(b))
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rss = rss
	m.peakRSS = max(m.peakRSS, rss)
	return nil
}

// Figures samples the server now and returns its figures since the start.
func (m *ServerMonitor) Figures() (ServerFigures, error) {
	ticks, err := m.cpuTicks()
	if err != nil {
		return ServerFigures{}, err
	}
	if err := m.SampleRSS(); err != nil {
		return ServerFigures{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return ServerFigures{
		CPUSeconds: float64(ticks-m.startTicks) / clockTicksPerSecond,
		RSS:        m.rss,
		PeakRSS:    m.peakRSS,
	}, nil
}

func (m *ServerMonitor) cpuTicks() (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", m.pid))
	if err != nil {
		return 0, fmt.Errorf("read server cpu time: %w", err)
	}
	return parseProcStat(string(b))
}
