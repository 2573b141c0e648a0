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
	"strings"
	"sync"
	"syscall"
	"time"
)

// gatewayProc is `offsite serve` running as a child process in its own data directory, every
// listener on loopback.
type gatewayProc struct {
	Bin     string
	DataDir string
	// Cooldown is rules.cooldown: how soon one alarm may activate again after it cleared.
	Cooldown time.Duration
	Logger   *slog.Logger

	HTTP    string // base URL, http://127.0.0.1:PORT
	MQTT    string // tcp://127.0.0.1:PORT
	LogPath string // the gateway's stdout and stderr

	cmd      *exec.Cmd
	logFile  *os.File
	exited   chan struct{}
	exitErr  error
	pwMu     sync.Mutex
	password string
}

// config is the YAML handed to `offsite serve`: SQLite store and telemetry, the embedded
// broker, everything on 127.0.0.1. The connect rate is raised because every simulated device
// connects from the same address at once.
func (g *gatewayProc) config(httpAddr, mqttAddr string) string {
	return fmt.Sprintf(`gateway_id: bench-gw-01
data_dir: %q
log: {level: info, format: text}
http: {listen: %q}
store: {dsn: ""}
ingest:
  broker: {listen: %q, connect_rate: 1000, connect_burst: 1000}
  telemetry: {backend: sqlite}
streams:
  rtsp: {listen: "127.0.0.1:0"}
  webrtc: {udp_listen: "127.0.0.1:0", tcp_listen: "127.0.0.1:0"}
rules:
  cooldown: %s
`, g.DataDir, httpAddr, mqttAddr, g.Cooldown)
}

// Start writes the configuration, starts the gateway and waits until /healthz answers and the
// first-start admin password was read from its stdout.
func (g *gatewayProc) Start(ctx context.Context) error {
	httpAddr, err := freePort()
	if err != nil {
		return err
	}
	mqttAddr, err := freePort()
	if err != nil {
		return err
	}
	g.HTTP, g.MQTT = "http://"+httpAddr, "tcp://"+mqttAddr
	cfgPath := filepath.Join(g.DataDir, "offsite.yml")
	if err := os.WriteFile(cfgPath, []byte(g.config(httpAddr, mqttAddr)), 0o600); err != nil {
		return fmt.Errorf("write gateway config: %w", err)
	}
	g.LogPath = filepath.Join(g.DataDir, "gateway.log")
	if g.logFile, err = os.Create(g.LogPath); err != nil {
		return fmt.Errorf("gateway log: %w", err)
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
	g.Logger.Info("gateway started", "pid", g.cmd.Process.Pid, "http", g.HTTP, "mqtt", g.MQTT, "data", g.DataDir)
	go g.readStdout(stdout)
	g.exited = make(chan struct{})
	go func() {
		g.exitErr = g.cmd.Wait()
		close(g.exited)
	}()

	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-g.exited:
			return fmt.Errorf("gateway exited during start-up (%v); see %s:\n%s", g.exitErr, g.LogPath, g.tail(20))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if g.adminPassword() != "" && healthy(g.HTTP) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("gateway not ready within 60s; see %s:\n%s", g.LogPath, g.tail(20))
		}
	}
}

// readStdout copies the gateway's stdout into its log file and picks the admin password out
// of the first-start notice:
//
//	First start: created user "admin" with password
//
//	    PASSWORD
func (g *gatewayProc) readStdout(r io.Reader) {
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

func (g *gatewayProc) adminPassword() string {
	g.pwMu.Lock()
	defer g.pwMu.Unlock()
	return g.password
}

// Stop sends SIGTERM to the gateway's PID and waits for a graceful exit (killing it after
// 30 s). It returns the exit error, if any.
func (g *gatewayProc) Stop() error {
	if g.cmd == nil || g.cmd.Process == nil {
		return nil
	}
	defer g.logFile.Close()
	select {
	case <-g.exited:
		return fmt.Errorf("gateway had already exited: %v", g.exitErr)
	default:
	}
	began := time.Now()
	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("SIGTERM pid %d: %w", g.cmd.Process.Pid, err)
	}
	select {
	case <-g.exited:
		g.Logger.Info("gateway stopped", "pid", g.cmd.Process.Pid, "after", time.Since(began).Round(time.Millisecond), "exit", g.exitErr)
		return g.exitErr
	case <-time.After(30 * time.Second):
		_ = g.cmd.Process.Kill()
		<-g.exited
		return errors.New("gateway did not stop within 30s of SIGTERM; killed")
	}
}

// tail returns the last n lines of the gateway's log.
func (g *gatewayProc) tail(n int) string {
	b, _ := os.ReadFile(g.LogPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// countLogLines counts gateway log lines at WARN or ERROR level before the stop signal (the
// broker warns about every connection it closes on the way down).
func (g *gatewayProc) countLogLines() (warn, errs int) {
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
