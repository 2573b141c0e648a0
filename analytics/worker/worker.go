// Package worker is the video analytics worker offsite-analytics (cgo: OpenCV through gocv,
// libavcodec). It leases cameras from the gateway, reads their RTSP re-serve, decodes only
// keyframes into small grey pictures and raises video.tamper, video.staff_absent,
// video.crowding and video.motion — each with a JPEG snapshot as evidence and a clear when the
// condition ends. The gateway never imports this package.
package worker

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/offsite-gw/offsite/analytics/lease"
	"github.com/offsite-gw/offsite/events/event"
)

// Worker holds leases and runs one Pipeline per leased camera.
type Worker struct {
	Client   *Client
	ID       string
	Capacity int
	// LookEvery: one analysis per camera per this (default 1 s).
	LookEvery time.Duration
	Logger    *slog.Logger

	mu        sync.Mutex
	pipes     map[string]*running
	queue     chan queued
	lastGrant time.Time
}

type running struct {
	p        *Pipeline
	cancel   context.CancelFunc
	done     chan struct{}
	settings string
	rtsp     string
}

type queued struct {
	a lease.Assignment
	s Signal
}

func (w *Worker) logger() *slog.Logger {
	if w.Logger == nil {
		return slog.Default()
	}
	return w.Logger
}

// Cameras returns the cameras the worker analyses now.
func (w *Worker) Cameras() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]string, 0, len(w.pipes))
	for id := range w.pipes {
		out = append(out, id)
	}
	return out
}

// Run acquires and renews leases until ctx ends, then stops the pipelines, delivers the
// events still queued (up to 10 s) and releases the leases so the cameras move at once.
func (w *Worker) Run(ctx context.Context) error {
	w.mu.Lock()
	w.pipes = map[string]*running{}
	w.mu.Unlock()
	w.queue = make(chan queued, 1024)
	sendCtx, stopSend := context.WithCancel(context.Background())
	sent := make(chan struct{})
	go func() { defer close(sent); w.send(sendCtx) }()

	renew := lease.DefaultRenewEvery
	ttl := lease.DefaultTTL
	for {
		g, err := w.Client.Acquire(ctx, w.ID, w.Capacity)
		switch {
		case err == nil:
			w.lastGrant = time.Now()
			if g.RenewMillis > 0 {
				renew = time.Duration(g.RenewMillis) * time.Millisecond
			}
			if g.TTLMillis > 0 {
				ttl = time.Duration(g.TTLMillis) * time.Millisecond
			}
			w.reconcile(ctx, g.Assignments)
		case ctx.Err() == nil:
			w.logger().Warn("lease renewal failed", "worker", w.ID, "err", err)
			// Past our lease's end another worker may own the cameras: stop before it starts.
			if !w.lastGrant.IsZero() && time.Since(w.lastGrant) > ttl-renew/2 {
				w.logger().Warn("leases lapsed; stopping all cameras", "worker", w.ID)
				w.reconcile(ctx, nil)
			}
		}
		select {
		case <-ctx.Done():
			w.reconcile(ctx, nil)
			close(w.queue)
			select {
			case <-sent:
			case <-time.After(10 * time.Second):
				stopSend()
				<-sent
			}
			stopSend()
			rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := w.Client.Release(rctx, w.ID); err != nil {
				w.logger().Warn("release leases", "worker", w.ID, "err", err)
			}
			return nil
		case <-time.After(renew):
		}
	}
}

// reconcile starts pipelines for new assignments, stops those no longer leased and restarts
// those whose settings or URL changed.
func (w *Worker) reconcile(ctx context.Context, as []lease.Assignment) {
	want := map[string]lease.Assignment{}
	for _, a := range as {
		want[a.CameraID] = a
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for id, r := range w.pipes {
		a, ok := want[id]
		if ok && settingsKey(a.Settings) == r.settings && a.RTSPURL == r.rtsp {
			continue
		}
		r.cancel()
		<-r.done
		delete(w.pipes, id)
		w.logger().Info("camera stopped", "worker", w.ID, "camera", id, "looks", r.p.Looks)
	}
	for id, a := range want {
		if _, ok := w.pipes[id]; ok || ctx.Err() != nil {
			continue
		}
		pctx, cancel := context.WithCancel(ctx)
		p := &Pipeline{Assignment: a, LookEvery: w.LookEvery, Logger: w.logger(), Sink: w.enqueue}
		r := &running{p: p, cancel: cancel, done: make(chan struct{}), settings: settingsKey(a.Settings), rtsp: a.RTSPURL}
		go func() { defer close(r.done); p.Run(pctx) }()
		w.pipes[id] = r
		w.logger().Info("camera started", "worker", w.ID, "camera", id, "zones", len(a.Settings.Zones))
	}
}

func settingsKey(s lease.CameraSettings) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func (w *Worker) enqueue(a lease.Assignment, s Signal) {
	select {
	case w.queue <- queued{a, s}:
	default:
		w.logger().Error("event queue full; event dropped", "camera", a.CameraID, "type", s.Type, "alarm_key", s.AlarmKey, "state", s.State)
	}
}

// send delivers events in order: snapshot first, then the event pointing at it; transient
// failures are retried with backoff, permanent ones (400: the gateway refuses it) logged.
func (w *Worker) send(ctx context.Context) {
	for q := range w.queue {
		ev := w.event(q.a, q.s)
		backoff := 500 * time.Millisecond
		for {
			err := w.deliver(ctx, &ev, q.s.Snapshot)
			if err == nil {
				break
			}
			if Permanent(err) || ctx.Err() != nil {
				w.logger().Error("event not delivered", "camera", q.a.CameraID, "type", ev.Type, "alarm_key", ev.AlarmKey, "err", err)
				break
			}
			w.logger().Warn("event delivery failed; retrying", "camera", q.a.CameraID, "type", ev.Type, "err", err, "in", backoff)
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 30*time.Second)
		}
	}
}

func (w *Worker) deliver(ctx context.Context, ev *event.Event, snap []byte) error {
	if len(snap) > 0 && len(ev.Evidence) == 0 {
		sum, url, err := w.Client.PutEvidence(ctx, snap)
		if err != nil {
			return err
		}
		ev.Evidence = []event.Evidence{{Kind: "snapshot", URL: url, SHA256: sum}}
	}
	return w.Client.PostEvent(ctx, *ev)
}

func (w *Worker) event(a lease.Assignment, s Signal) event.Event {
	ev := event.Event{
		Type: s.Type, Severity: Severity(s.Type), State: s.State, OccurredAt: s.At.UTC(),
		Device:   &event.Device{ID: a.CameraID, Kind: "camera"},
		AlarmKey: s.AlarmKey, Rule: rule(s), Message: s.Message,
	}
	if a.SiteID != "" {
		ev.Site = &event.Site{ID: a.SiteID}
	}
	if s.Metric != "" && s.State == "active" {
		r := &event.Reading{Metric: s.Metric, Value: s.Value}
		if s.Limit != 0 {
			l := s.Limit
			r.Limit = &l
		}
		switch s.Metric {
		case "absent_seconds":
			r.Unit = "s"
		case "people":
			r.Unit = "人"
		}
		ev.Reading = r
	}
	return ev
}

func rule(s Signal) string {
	switch s.Type {
	case event.TypeVideoTamper:
		return "tamper." + s.Reason
	case event.TypeVideoStaffAbsent, event.TypeVideoCrowding:
		return s.Type[len("video."):] + "/" + s.Zone
	default:
		return s.Type[len("video."):]
	}
}
