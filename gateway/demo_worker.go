package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/offsite-gw/offsite/analytics/lease"
	"github.com/offsite-gw/offsite/streams/simcam"
)

// demoAnalyticsSettings stores the analytics settings that make the demo's clerk-less counter
// and covered lens raise their alerts (only when the camera has none yet, so a maintainer's
// changes survive a restart).
func demoAnalyticsSettings(ctx context.Context, g *gateway, spec demoDeviceSpec) error {
	var all map[string]json.RawMessage
	if err := json.Unmarshal(simcam.AnalyticsDemoSettings(), &all); err != nil {
		return fmt.Errorf("demo analytics settings: %w", err)
	}
	raw, ok := all[spec.sim]
	if !ok {
		return nil
	}
	if cur, err := g.video.leases.Settings(ctx, spec.id); err == nil && len(cur.Zones) > 0 {
		return nil
	}
	set, err := lease.ParseSettings(raw)
	if err != nil {
		return fmt.Errorf("demo analytics settings for %s: %w", spec.id, err)
	}
	return g.video.leases.PutSettings(ctx, spec.id, set, "demo")
}

// startWorker runs the video analytics worker beside the demo gateway. It is a separate cgo
// binary (OpenCV); "auto" looks for offsite-analytics beside this binary, then on PATH.
func startWorker(which, base, id string, users []demoUser, logger *slog.Logger, out io.Writer) (stop func(), err error) {
	if which == "off" {
		return nil, nil
	}
	path := which
	if which == "auto" {
		path = ""
		if exe, err := os.Executable(); err == nil {
			if p := filepath.Join(filepath.Dir(exe), "offsite-analytics"); isExecutable(p) {
				path = p
			}
		}
		if path == "" {
			if p, err := exec.LookPath("offsite-analytics"); err == nil {
				path = p
			}
		}
		if path == "" {
			return nil, errors.New("offsite-analytics not found beside offsite or on PATH (make build builds it; it needs libopencv-dev)")
		}
	}
	var pw string
	for _, u := range users {
		if u.Role == "service" {
			pw = u.Password
		}
	}
	cmd := exec.Command(path, "--gateway", base, "--username", "analytics", "--id", id)
	cmd.Env = append(os.Environ(), "OFFSITE_ANALYTICS_PASSWORD="+pw)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	logger.Info("video analytics worker started", "gateway", base, "pid", cmd.Process.Pid, "binary", path)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	return func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}, nil
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// startDevControl serves, on a loopback port of its own, a way to switch the demo's simulated
// cameras off and on (POST /_dev/cameras/{id}/down|up) and the number of WHEP sessions open on
// all nodes (GET /_dev/sessions). Demo only: production has no simulated cameras.
func startDevControl(ctx context.Context, cams *simcam.Server, city *demoCity, logger *slog.Logger) (string, error) {
	simOf := map[string]string{}
	for _, spec := range demoDevices {
		if spec.sim != "" {
			simOf[spec.id] = spec.sim
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /_dev/cameras/{id}/{action}", func(w http.ResponseWriter, r *http.Request) {
		path, ok := simOf[r.PathValue("id")]
		action := r.PathValue("action")
		if !ok || (action != "down" && action != "up") {
			http.Error(w, "unknown camera or action (down|up)", http.StatusNotFound)
			return
		}
		cams.SetDown(path, action == "down")
		logger.Info("simulated camera switched", "camera", r.PathValue("id"), "action", action)
		w.WriteHeader(http.StatusNoContent)
	})
	registerNodeControl(mux, city, logger)
	mux.HandleFunc("GET /_dev/sessions", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]int{"whep_sessions": city.sessions()})
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln) //nolint:errcheck
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	return "http://" + ln.Addr().String() + "/_dev/cameras/{id}/{action}", nil
}
