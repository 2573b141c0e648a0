// Package benchkit is what the benchmark programs (`make bench-*`) share: an `offsite serve`
// child process on loopback, the CPU, memory and load figures of a process, a client of the
// HTTP API as one user, a Server-Sent Events reader and percentiles. Benchmarks only; nothing
// in the product imports it.
package benchkit

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

// Proc is `offsite serve` running as a child process in its own data directory. The caller
// picks the ports (FreePort) and writes the configuration; Start runs it and waits until it
// serves.
type Proc struct {
	Name    string // "gateway", "centre": used in logs and file names
	Bin     string
	DataDir string
	Config  string // the YAML handed to `offsite serve --config`
	HTTP    string // base URL the process serves, http://127.0.0.1:PORT
	Logger  *slog.Logger
	// ReadyWithin bounds the start-up (default 60 s).
	ReadyWithin time.Duration

	LogPath string // the process's stdout and stderr

	cmd      *exec.Cmd
	logFile  *os.File
	exited   chan struct{}
	exitErr  error
	pwMu     sync.Mutex
	password string
}

// Start writes the configuration, starts the process and waits until /healthz answers and the
// first-start admin password was read from its stdout.
func (p *Proc) Start(ctx context.Context) error {
	cfgPath := filepath.Join(p.DataDir, "offsite.yml")
	if err := os.WriteFile(cfgPath, []byte(p.Config), 0o600); err != nil {
		return fmt.Errorf("write %s config: %w", p.Name, err)
	}
	p.LogPath = filepath.Join(p.DataDir, p.Name+".log")
	var err error
	if p.logFile, err = os.Create(p.LogPath); err != nil {
		return fmt.Errorf("%s log: %w", p.Name, err)
	}
	p.cmd = exec.Command(p.Bin, "serve", "--config", cfgPath)
	p.cmd.Env = os.Environ()
	p.cmd.Stderr = p.logFile
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := p.cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.Bin, err)
	}
	if p.Logger != nil {
		p.Logger.Info(p.Name+" started", "pid", p.cmd.Process.Pid, "http", p.HTTP, "data", p.DataDir)
	}
	go p.readStdout(stdout)
	p.exited = make(chan struct{})
	go func() {
		p.exitErr = p.cmd.Wait()
		close(p.exited)
	}()
	within := p.ReadyWithin
	if within <= 0 {
		within = 60 * time.Second
	}
	deadline := time.Now().Add(within)
	for {
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited during start-up (%v); see %s:\n%s", p.Name, p.exitErr, p.LogPath, p.Tail(20))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if p.AdminPassword() != "" && Healthy(p.HTTP) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within %s; see %s:\n%s", p.Name, within, p.LogPath, p.Tail(20))
		}
	}
}

// Pid is the process id (0 before Start).
func (p *Proc) Pid() int {
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// readStdout copies stdout into the log file and picks the admin password out of the
// first-start notice (`created user "admin" with password`, then the password on a line).
func (p *Proc) readStdout(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	announced := false
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(p.logFile, line)
		switch {
		case strings.Contains(line, `created user "admin" with password`):
			announced = true
		case announced && strings.TrimSpace(line) != "":
			p.pwMu.Lock()
			p.password = strings.TrimSpace(line)
			p.pwMu.Unlock()
			announced = false
		}
	}
}

// AdminPassword is the password of the admin the first start created ("" until read).
func (p *Proc) AdminPassword() string {
	p.pwMu.Lock()
	defer p.pwMu.Unlock()
	return p.password
}

// Stop sends SIGTERM to the process's PID and waits for a graceful exit (SIGKILL to that PID
// after 30 s). It returns the exit error, if any.
func (p *Proc) Stop() error {
	if p.cmd == nil || p.cmd.Process == nil {
		return nil
	}
	defer p.logFile.Close()
	select {
	case <-p.exited:
		return fmt.Errorf("%s had already exited: %v", p.Name, p.exitErr)
	default:
	}
	began := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("SIGTERM pid %d: %w", p.cmd.Process.Pid, err)
	}
	select {
	case <-p.exited:
		if p.Logger != nil {
			p.Logger.Info(p.Name+" stopped", "pid", p.cmd.Process.Pid, "after", time.Since(began).Round(time.Millisecond), "exit", p.exitErr)
		}
		return p.exitErr
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return errors.New(p.Name + " did not stop within 30s of SIGTERM; killed")
	}
}

// Tail returns the last n lines of the process's log.
func (p *Proc) Tail(n int) string {
	b, _ := os.ReadFile(p.LogPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// CountLogLines counts log lines at WARN and ERROR level before the stop signal (components
// warn about every connection they close on the way down).
func (p *Proc) CountLogLines() (warn, errs int) {
	b, _ := os.ReadFile(p.LogPath)
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

// FreePort returns a loopback address with a port nobody listens on right now.
func FreePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Healthy tells whether base/healthz answers 200 within a second.
func Healthy(base string) bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(base + "/healthz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
