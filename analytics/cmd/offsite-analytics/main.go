// Command offsite-analytics is the video analytics worker: it logs in to the gateway as a
// service user, leases cameras, analyses their RTSP re-serve (keyframes only) and posts
// video.tamper, video.staff_absent, video.crowding and video.motion events with JPEG
// evidence. Several workers share the cameras; SIGTERM releases the leases at once.
//
//	offsite-analytics --gateway http://127.0.0.1:8080 --username analytics --password … --capacity 60
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/offsite-gw/offsite/analytics/worker"
)

func main() {
	host, _ := os.Hostname()
	var (
		gateway  = flag.String("gateway", envOr("OFFSITE_ANALYTICS_GATEWAY", "http://127.0.0.1:8080"), "gateway base URL")
		username = flag.String("username", envOr("OFFSITE_ANALYTICS_USERNAME", "analytics"), "gateway user of role service")
		password = flag.String("password", os.Getenv("OFFSITE_ANALYTICS_PASSWORD"), "its password (or OFFSITE_ANALYTICS_PASSWORD)")
		id       = flag.String("id", envOr("OFFSITE_ANALYTICS_ID", fmt.Sprintf("%s-%d", host, os.Getpid())), "worker id, unique among the workers")
		capacity = flag.Int("capacity", 60, "most cameras this worker takes (≈ 60 per core at one look per second)")
		every    = flag.Duration("look-every", time.Second, "one analysis per camera per this")
		debug    = flag.Bool("debug", false, "debug logging")
	)
	flag.Parse()
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if *password == "" {
		logger.Error("no password: pass --password or set OFFSITE_ANALYTICS_PASSWORD")
		os.Exit(2)
	}
	worker.SingleThreadedOpenCV()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	w := &worker.Worker{
		Client:    &worker.Client{BaseURL: *gateway, Username: *username, Password: *password},
		ID:        *id,
		Capacity:  *capacity,
		LookEvery: *every,
		Logger:    logger,
	}
	logger.Info("offsite-analytics starting", "gateway", *gateway, "worker", *id, "capacity", *capacity)
	if err := w.Run(ctx); err != nil {
		logger.Error("offsite-analytics stopped", "err", err)
		os.Exit(1)
	}
	logger.Info("offsite-analytics stopped; leases released", "worker", *id)
}

func envOr(k, d string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return d
}
