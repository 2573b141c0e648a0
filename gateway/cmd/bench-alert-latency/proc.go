package main

import (
	"os"
	"strconv"
	"strings"
	"time"
)

// cpuTime is the CPU time (user + system) a process used so far, from /proc (Linux; 0
// elsewhere). Clock ticks are assumed to be 100 Hz, as on every Linux the gateway targets.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name may contain spaces; fields after it start at ") ".
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// loadAvg is the one-minute load average ("" if unknown): the machine is shared, and the
// figures are only comparable at similar loads.
func loadAvg() string {
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
