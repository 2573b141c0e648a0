package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// centreProc is `offsite serve` running as a child process in its own data directory with
// every listener on loopback: the centre the simulated sites post to.
type centreProc struct {
	Bin     string
	DataDir string
	DSN     string // store.dsn: "" = SQLite in DataDir, postgres://… = PostgreSQL
	Logger  *slog.Logger

	HTTP    string // base URL, http://127.0.0.1:PORT
	LogPath string // the centre's stdout and stderr

	cmd      *exec.Cmd
	logFile  *os.File
	exited   chan struct{}
	exitErr  error
	pwMu     sync.Mutex
	password string
}

// config is the YAML handed to `offsite serve`: the chosen store, SQLite telemetry, the
// embedded broker and the relay on loopback ports nobody uses, logs at info as in production.
func (g *centreProc) config(httpAddr, mqttAddr string) string {
	return fmt.Sprintf(`gateway_id: bench-centre
data_dir: %q
log: {level: info, format: text}
http: {listen: %q}
store: {dsn: %q}
ingest:
  broker: {listen: %q}
  telemetry: {backend: sqlite}
streams:
  rtsp: {listen: "127.0.0.1:0"}
  webrtc: {udp_listen: "127.0.0.1:0", tcp_listen: "127.0.0.1:0"}
`, g.DataDir, httpAddr, g.DSN, mqttAddr)
}

// Start writes the configuration, starts the centre and waits until /healthz answers and the
// first-start admin password was read from its stdout.
func (g *centreProc) Start(ctx context.Context) error {
	httpAddr, err := freePort()
	if err != nil {
		return err
	}
	mqttAddr, err := freePort()
	if err != nil {
		return err
	}
	g.HTTP = "http://" + httpAddr
	cfgPath := filepath.Join(g.DataDir, "offsite.yml")
	if err := os.WriteFile(cfgPath, []byte(g.config(httpAddr, mqttAddr)), 0o600); err != nil {
		return fmt.Errorf("write centre config: %w", err)
	}
	g.LogPath = filepath.Join(g.DataDir, "centre.log")
	if g.logFile, err = os.Create(g.LogPath); err != nil {
		return fmt.Errorf("centre log: %w", err)
	}
	g.cmd = exec.Command(g.Bin, "serve", "--config", cfgPath)
	g.cmd.Env = os.Environ()
	g.cmd.Stderr = g.logFile
	stdout, err := g.cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := g.cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", g.Bin, err)
	}
	g.Logger.Info("centre started", "pid", g.cmd.Process.Pid, "http", g.HTTP, "data", g.DataDir)
	go g.readStdout(stdout)
	g.exited = make(chan struct{})
	go func() {
		g.exitErr = g.cmd.Wait()
		close(g.exited)
	}()
	deadline := time.Now().Add(90 * time.Second)
	for {
		select {
		case <-g.exited:
			return fmt.Errorf("centre exited during start-up (%v); see %s:\n%s", g.exitErr, g.LogPath, g.tail(20))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if g.adminPassword() != "" && healthy(g.HTTP) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("centre not ready within 90s; see %s:\n%s", g.LogPath, g.tail(20))
		}
	}
}

// Pid is the centre's process id (0 before Start).
func (g *centreProc) Pid() int {
	if g.cmd == nil || g.cmd.Process == nil {
		return 0
	}
	return g.cmd.Process.Pid
}

// readStdout copies the centre's stdout into its log file and picks the admin password out
// of the first-start notice (`created user "admin" with password`, then the password).
func (g *centreProc) readStdout(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	announced := false
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(g.logFile, line)
		switch {
		case strings.Contains(line, `created user "admin" with password`):
			announced = true
		case announced && strings.TrimSpace(line) != "":
			g.pwMu.Lock()
			g.password = strings.TrimSpace(line)
			g.pwMu.Unlock()
			announced = false
		}
	}
}

func (g *centreProc) adminPassword() string {
	g.pwMu.Lock()
	defer g.pwMu.Unlock()
	return g.password
}

// Stop sends SIGTERM to the centre's PID and waits for a graceful exit (SIGKILL to that PID
// after 30 s).
func (g *centreProc) Stop() error {
	if g.cmd == nil || g.cmd.Process == nil {
		return nil
	}
	defer g.logFile.Close()
	select {
	case <-g.exited:
		return fmt.Errorf("centre had already exited: %v", g.exitErr)
	default:
	}
	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("SIGTERM pid %d: %w", g.cmd.Process.Pid, err)
	}
	select {
	case <-g.exited:
		return nil
	case <-time.After(30 * time.Second):
		_ = g.cmd.Process.Kill()
		<-g.exited
		return errors.New("centre did not stop within 30s of SIGTERM; killed")
	}
}

// countLogLines counts centre log lines at WARN and ERROR level.
func (g *centreProc) countLogLines() (warn, errs int) {
	b, _ := os.ReadFile(g.LogPath)
	for _, l := range strings.Split(string(b), "\n") {
		switch {
		case strings.Contains(l, "stopping: signal received"):
			return warn, errs
		case strings.Contains(l, "level=WARN"):
			warn++
		case strings.Contains(l, "level=ERROR"):
			errs++
		}
	}
	return warn, errs
}

func (g *centreProc) tail(n int) string {
	b, _ := os.ReadFile(g.LogPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// freePort returns a loopback address with a port nobody listens on right now.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func healthy(base string) bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(base + "/healthz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// cpuTime is the CPU time (user + system) a process used so far, from /proc/PID/stat (100 Hz
// clock ticks, as on every Linux the gateway targets).
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// rssBytes is the resident set size of a process now, from /proc/PID/status (VmRSS).
func rssBytes(pid int) int64 {
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

// loadAvg is the one-minute load average: the machine is shared, and figures compare only at
// similar loads.
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

// usage watches a process's CPU and peak RSS over one phase.
type usage struct {
	pid   int
	began time.Time
	cpu0  time.Duration
	stop  chan struct{}
	done  chan struct{}
	peak  int64
}

func watch(pid int) *usage {
	u := &usage{pid: pid, began: time.Now(), cpu0: cpuTime(pid), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(u.done)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			if r := rssBytes(pid); r > u.peak {
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

// end returns the CPU used over the phase in percent of one core and the peak RSS in MiB.
func (u *usage) end() (cpuPct, rssMB float64) {
	cpu := cpuTime(u.pid) - u.cpu0
	wall := time.Since(u.began)
	close(u.stop)
	<-u.done
	return 100 * cpu.Seconds() / wall.Seconds(), float64(u.peak) / (1 << 20)
}
