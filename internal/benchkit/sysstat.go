package benchkit

import (
	"os"
	"strconv"
	"strings"
	"time"
)

// CPUTime is the CPU time (user + system) a process used so far, from /proc/PID/stat (Linux;
// 0 elsewhere). Clock ticks are 100 Hz, as on every Linux the gateway targets.
func CPUTime(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name may contain spaces; the fields after it start at ") ".
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// RSSBytes is the resident set size of a process now, from /proc/PID/status (VmRSS).
func RSSBytes(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

// LoadAvg is the one-minute load average ("" if unknown): the machine is shared, and figures
// compare only at similar loads.
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// Usage watches a process's CPU and peak RSS over one phase of a benchmark.
type Usage struct {
	pid   int
	began time.Time
	cpu0  time.Duration
	stop  chan struct{}
	done  chan struct{}
	peak  int64
}

// Watch starts watching pid; End ends the phase.
func Watch(pid int) *Usage {
	u := &Usage{pid: pid, began: time.Now(), cpu0: CPUTime(pid), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(u.done)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			if r := RSSBytes(pid); r > u.peak {
				u.peak = r
			}
			select {
			case <-u.stop:
				return
			case <-t.C:
			}
		}
	}()
	return u
}

// End returns the CPU used over the phase in percent of one core and the peak RSS in MiB.
func (u *Usage) End() (cpuPct, rssMB float64) {
	cpu := CPUTime(u.pid) - u.cpu0
	wall := time.Since(u.began)
	close(u.stop)
	<-u.done
	return 100 * cpu.Seconds() / wall.Seconds(), float64(u.peak) / (1 << 20)
}
