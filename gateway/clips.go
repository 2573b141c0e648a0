package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/offsite-gw/offsite/api"
	"github.com/offsite-gw/offsite/events"
	"github.com/offsite-gw/offsite/events/event"
	"github.com/offsite-gw/offsite/gateway/config"
	"github.com/offsite-gw/offsite/internal/errs"
	"github.com/offsite-gw/offsite/streams"
)

// clipper is the gateway's side of event clips (docs/contracts.md §9): which cameras keep a
// pre-roll, which events get a clip, storing finished clips as evidence and announcing them
// with evidence.added, and manual recordings.
type clipper struct {
	g   *gateway
	cfg config.Clips
	rec *streams.Clips

	mu         sync.Mutex
	recordings map[string][]*api.Recording // by camera, newest last
	byRef      map[string]*api.Recording   // by the event the clip is for
	holds      map[string]time.Time        // cameras kept pulled and recorded for a manual recording
}

// newClipper reads the configuration; openClips starts it once the relay exists.
func (g *gateway) newClipper() {
	g.clips = &clipper{g: g, cfg: g.cfg.Clips, recordings: map[string][]*api.Recording{},
		byRef: map[string]*api.Recording{}, holds: map[string]time.Time{}}
}

// wanted says whether a camera keeps a pre-roll by configuration.
func (c *clipper) wanted(camera string) bool {
	if c == nil || !c.cfg.Enabled {
		return false
	}
	if len(c.cfg.Cameras) == 0 || slices.Contains(c.cfg.Cameras, camera) {
		return true
	}
	for _, l := range c.cfg.Links {
		if slices.Contains(l.Cameras, camera) {
			return true
		}
	}
	return false
}

func (c *clipper) typesFor(camera string) []string {
	if t, ok := c.cfg.CameraEventTypes[camera]; ok {
		return t
	}
	return c.cfg.EventTypes
}

func typeMatches(types []string, t string) bool {
	for _, p := range types {
		if p == t || strings.HasSuffix(p, ".") && strings.HasPrefix(t, p) {
			return true
		}
	}
	return false
}

// openClips starts the recorder: it recovers clips a stopped process left, keeps the
// configured cameras' pre-roll and follows the log for events to clip.
func (g *gateway) openClips() error {
	c := g.clips
	c.rec = &streams.Clips{Manager: g.video.manager, Dir: filepath.Join(g.cfg.DataDir, "clips"),
		PreRoll: c.cfg.PreRoll, PostRoll: c.cfg.PostRoll, MaxClip: c.cfg.MaxClip,
		MaxCameraBytes: int64(c.cfg.MaxCameraMB) << 20, MaxTotalBytes: int64(c.cfg.MaxTotalMB) << 20,
		LostAfter: g.cfg.Streams.StallTimeout * 2,
		OnClip:    c.store, Logger: g.log.With("component", "clips")}
	// A manual recording at up to 8 Mbit/s must fit in one evidence file.
	if limit := int64(c.cfg.RecordingMaxMinutes) * 60 << 20; limit > g.evidence.MaxFileBytes {
		g.evidence.MaxFileBytes = limit
	}
	if err := c.rec.Initialize(); err != nil {
		return err
	}
	g.onStop("clips", func(context.Context) error { c.rec.Close(); return nil })
	c.syncCameras()
	head, _ := g.events.Head()
	g.goBackground(func(ctx context.Context) { c.follow(ctx, head) })
	g.goBackground(c.holdLoop)
	return nil
}

// syncCameras gives a pre-roll to the cameras that should have one (after each camera sync:
// a camera whose settings changed has a new hub).
func (c *clipper) syncCameras() {
	if c == nil || c.rec == nil {
		return
	}
	v := c.g.video
	v.mu.Lock()
	var ids []string
	for id := range v.config {
		if !v.children[id] {
			ids = append(ids, id)
		}
	}
	v.mu.Unlock()
	c.mu.Lock()
	held := map[string]bool{}
	for id, until := range c.holds {
		if time.Now().Before(until) {
			held[id] = true
		}
	}
	c.mu.Unlock()
	on := map[string]bool{}
	for _, id := range ids {
		if c.wanted(id) || held[id] {
			on[id] = true
			if err := c.rec.Enable(id, true); err != nil {
				c.g.log.Warn("camera keeps no pre-roll", "camera", id, "err", err)
			}
		}
	}
	for _, id := range c.rec.Enabled() {
		if !on[id] {
			_ = c.rec.Enable(id, false)
		}
	}
}

// follow reads every event logged from head on and records the clips they ask for.
func (c *clipper) follow(ctx context.Context, head int64) {
	ch := c.g.feed.Subscribe(ctx, head, func(e *event.Event) bool {
		return e.State != event.StateCleared && !strings.HasPrefix(e.Type, event.AlertPrefix) &&
			!strings.HasPrefix(e.Type, "evidence.") && e.Device != nil
	})
	for e := range ch {
		for _, cam := range c.camerasFor(&e) {
			id, until, err := c.rec.Record(cam, streams.ClipRequest{Ref: e.ID, At: e.OccurredAt})
			if err != nil {
				c.g.log.Warn("no clip for the event", "camera", cam, "event_id", e.ID, "type", e.Type, "err", err)
				continue
			}
			c.g.log.Debug("clip recording", "camera", cam, "event_id", e.ID, "clip", id, "until", until)
		}
	}
}

// camerasFor lists the cameras whose clip the event gets: its own camera, and the cameras
// linked to its device.
func (c *clipper) camerasFor(e *event.Event) []string {
	if !c.cfg.Enabled {
		return nil
	}
	var out []string
	dev := e.Device.ID
	if c.wanted(dev) && c.isCamera(dev) && typeMatches(c.typesFor(dev), e.Type) {
		out = append(out, dev)
	}
	for _, l := range c.cfg.Links {
		if l.Device != dev {
			continue
		}
		for _, cam := range l.Cameras {
			if !slices.Contains(out, cam) && typeMatches(c.typesFor(cam), e.Type) {
				out = append(out, cam)
			}
		}
	}
	return out
}

func (c *clipper) isCamera(id string) bool {
	v := c.g.video
	v.mu.Lock()
	defer v.mu.Unlock()
	_, ok := v.config[id]
	return ok && !v.children[id]
}

// store keeps a finished clip in the evidence store and logs one evidence.added per event the
// clip is for. The file is hashed as it is copied into the store, and the events are logged
// only after, so no event can name a file with another hash.
func (c *clipper) store(res streams.ClipResult) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f, err := os.Open(res.Path)
	if err != nil {
		return err
	}
	sum, url, err := c.g.evidence.Put(f, ".mp4")
	f.Close()
	if err != nil {
		return fmt.Errorf("store clip: %w", err)
	}
	complete := res.Complete
	start, end := res.Start.UTC(), res.End.UTC()
	evs := make([]event.Event, 0, len(res.Refs))
	for _, ref := range res.Refs {
		at := ref.At.UTC()
		ev := event.Evidence{Kind: "clip", URL: url, SHA256: sum, MIME: "video/mp4", Codec: res.Codec, CameraID: res.Camera,
			Start: &start, End: &end, EventAt: &at, Complete: &complete, Note: res.Note}
		e := event.Event{ID: events.NewID(time.Now()), Type: event.TypeEvidenceAdded, Severity: "info", OccurredAt: time.Now(),
			Device: &event.Device{ID: res.Camera}, Evidence: []event.Evidence{ev}, RefEventID: ref.Ref}
		if orig, err := c.g.events.Get(ctx, ref.Ref); err == nil {
			e.Site, e.Department, e.SupervisionItem = orig.Site, orig.Department, orig.SupervisionItem
		}
		c.g.enrich(ctx, &e)
		name := res.Camera
		if e.Device != nil && e.Device.Name != "" {
			name = e.Device.Name
		}
		e.Message = fmt.Sprintf("证据录像已生成：%s %s–%s", name, res.Start.Local().Format("15:04:05"), res.End.Local().Format("15:04:05"))
		if !complete {
			e.Message += "（录像不完整）"
			e.Detail = res.Note
		}
		evs = append(evs, e)
	}
	if _, err := c.g.events.Append(ctx, evs...); err != nil {
		return fmt.Errorf("log evidence.added: %w", err)
	}
	c.mu.Lock()
	for _, ref := range res.Refs {
		if r := c.byRef[ref.Ref]; r != nil {
			r.State, r.SHA256 = "done", sum
		}
	}
	c.mu.Unlock()
	c.g.log.Info("clip stored", "camera", res.Camera, "sha256", sum, "bytes", res.Bytes, "complete", complete, "note", res.Note, "events", len(res.Refs))
	return nil
}

// MaxRecordingMinutes implements api.CameraRecorder.
func (c *clipper) MaxRecordingMinutes() int { return c.cfg.RecordingMaxMinutes }

// StartRecording implements api.CameraRecorder: the camera is kept pulled and recorded until
// the end, as evidence for the alert's event or a new evidence.manual event.
func (c *clipper) StartRecording(ctx context.Context, req api.RecordingRequest) (api.Recording, error) {
	if !c.isCamera(req.Camera) {
		return api.Recording{}, errs.E(errs.KindNotFound, "camera_not_found", "camera %q is not relayed by this gateway", req.Camera)
	}
	now := time.Now()
	until := now.Add(time.Duration(req.Minutes) * time.Minute)
	ref := req.AlertEventID
	if ref == "" {
		e := event.Event{ID: events.NewID(now), Type: event.TypeEvidenceManual, Severity: "info", OccurredAt: now,
			Device: &event.Device{ID: req.Camera}, Message: "取证录像：" + req.Reason,
			Detail: fmt.Sprintf("manual recording of %d min started by %s", req.Minutes, req.User)}
		c.g.enrich(ctx, &e)
		if _, err := c.g.events.Append(ctx, e); err != nil {
			return api.Recording{}, err
		}
		ref = e.ID
	}
	c.mu.Lock()
	if c.holds[req.Camera].Before(until) {
		c.holds[req.Camera] = until
	}
	c.mu.Unlock()
	if err := c.rec.Enable(req.Camera, true); err != nil {
		return api.Recording{}, err
	}
	c.touch(req.Camera)
	if _, u, err := c.rec.Record(req.Camera, streams.ClipRequest{Ref: ref, At: now, Pre: -1, Post: until.Sub(now)}); err != nil {
		return api.Recording{}, err
	} else if u.Before(until) {
		until = u // an overlapping clip at its longest
	}
	r := &api.Recording{ID: events.NewID(now), EventID: ref, State: "recording", Started: now, Until: until, Reason: req.Reason, By: req.User}
	c.mu.Lock()
	list := append(c.recordings[req.Camera], r)
	if len(list) > 50 {
		list = list[len(list)-50:]
	}
	c.recordings[req.Camera] = list
	c.byRef[ref] = r
	c.mu.Unlock()
	c.g.log.Info("manual recording", "camera", req.Camera, "user", req.User, "event_id", ref, "until", until)
	return *r, nil
}

// Recordings implements api.CameraRecorder.
func (c *clipper) Recordings(camera string) []api.Recording {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]api.Recording, 0, len(c.recordings[camera]))
	for _, r := range c.recordings[camera] {
		out = append(out, *r)
	}
	return out
}

func (c *clipper) touch(camera string) {
	if cam, ok := c.g.video.manager.Camera(camera); ok {
		cam.Touch()
	}
}

// holdLoop keeps cameras with a manual recording pulled until it ends, then lets go of those
// that keep no pre-roll by configuration, and marks recordings that never got video failed.
func (c *clipper) holdLoop(ctx context.Context) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			c.mu.Lock()
			var touch []string
			ended := false
			for id, until := range c.holds {
				if now.Before(until) {
					touch = append(touch, id)
				} else if now.After(until.Add(time.Minute)) {
					delete(c.holds, id)
					ended = true
				}
			}
			for _, list := range c.recordings {
				for _, r := range list {
					if r.State == "recording" && now.After(r.Until.Add(2*time.Minute)) {
						r.State = "failed"
					}
				}
			}
			c.mu.Unlock()
			for _, id := range touch {
				c.touch(id)
			}
			if ended {
				c.syncCameras()
			}
		}
	}
}
