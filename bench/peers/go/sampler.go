// The Go peer's metrics sampler: the figures ServiceStatus reports (system
// and process CPU, memory, the cgroup's limit), read from /proc every
// second, as the Rust services' sampler does. The first sample comes after
// a 200 ms CPU window; the peer says SERVING once it is in.

package main

import (
	"bufio"
	"context"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

const (
	sampleInterval = time.Second
	firstWindow    = 200 * time.Millisecond
	// clockTicks is USER_HZ, the unit of /proc CPU times (100 on Linux).
	clockTicks = 100
)

type sample struct {
	takenAt           time.Time
	cpuPercent        float64
	processCPUPercent float64
	memoryUsed        uint64
	memoryTotal       uint64
	processMemory     uint64
	containerLimit    *uint64
}

func (s *sample) memoryPercent() float64 {
	if s.memoryTotal == 0 {
		return 0
	}
	return float64(s.memoryUsed) / float64(s.memoryTotal) * 100
}

type sampler struct {
	latest atomic.Pointer[sample]
	ready  chan struct{}
}

type cpuTimes struct {
	at           time.Time
	busy, total  uint64
	processTicks uint64
}

func startSampler(ctx context.Context) *sampler {
	s := &sampler{ready: make(chan struct{})}
	go func() {
		previous := readCPU()
		wait := firstWindow
		for first := true; ; first = false {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			now := readCPU()
			s.latest.Store(takeSample(previous, now))
			previous = now
			if first {
				close(s.ready)
			}
			wait = sampleInterval
		}
	}()
	return s
}

func takeSample(before, after cpuTimes) *sample {
	result := &sample{takenAt: after.at}
	if total := after.total - before.total; total > 0 {
		result.cpuPercent = float64(after.busy-before.busy) / float64(total) * 100
	}
	if elapsed := after.at.Sub(before.at).Seconds(); elapsed > 0 {
		result.processCPUPercent = float64(after.processTicks-before.processTicks) / clockTicks / elapsed * 100
	}
	memory := readKeyValues("/proc/meminfo")
	result.memoryTotal = memory["MemTotal"] * 1024
	result.memoryUsed = result.memoryTotal - memory["MemAvailable"]*1024
	if statm, err := os.ReadFile("/proc/self/statm"); err == nil {
		if fields := strings.Fields(string(statm)); len(fields) > 1 {
			pages, _ := strconv.ParseUint(fields[1], 10, 64)
			result.processMemory = pages * uint64(os.Getpagesize())
		}
	}
	if limit, err := os.ReadFile("/sys/fs/cgroup/memory.max"); err == nil {
		if value, err := strconv.ParseUint(strings.TrimSpace(string(limit)), 10, 64); err == nil {
			result.containerLimit = &value
		}
	}
	return result
}

// readCPU reads the system's busy and total jiffies and this process's CPU ticks.
func readCPU() cpuTimes {
	times := cpuTimes{at: time.Now()}
	if stat, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(stat), "\n")
		for i, field := range strings.Fields(line)[1:] {
			value, _ := strconv.ParseUint(field, 10, 64)
			times.total += value
			if i != 3 && i != 4 { // idle, iowait
				times.busy += value
			}
		}
	}
	if stat, err := os.ReadFile("/proc/self/stat"); err == nil {
		text := string(stat)
		fields := strings.Fields(text[strings.LastIndexByte(text, ')')+2:])
		if len(fields) > 12 {
			user, _ := strconv.ParseUint(fields[11], 10, 64)
			system, _ := strconv.ParseUint(fields[12], 10, 64)
			times.processTicks = user + system
		}
	}
	return times
}

// readKeyValues parses "Key: value kB" lines (/proc/meminfo).
func readKeyValues(path string) map[string]uint64 {
	values := map[string]uint64{}
	file, err := os.Open(path)
	if err != nil {
		return values
	}
	defer file.Close()
	lines := bufio.NewScanner(file)
	for lines.Scan() {
		key, rest, found := strings.Cut(lines.Text(), ":")
		if !found {
			continue
		}
		if fields := strings.Fields(rest); len(fields) > 0 {
			values[key], _ = strconv.ParseUint(fields[0], 10, 64)
		}
	}
	return values
}
