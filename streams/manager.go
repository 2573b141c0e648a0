package streams

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/offsite-gw/offsite/internal/errs"
)

// CameraConfig says how to pull one camera.
type CameraConfig struct {
	ID        string
	Site      string
	URL       string // rtsp://host:port/path, e.g. from firmware-profiles' profiles.URL
	Username  string
	Password  string
	Transport string // "tcp" (default) or "udp"
	// AlwaysOn keeps the camera pulled even with nobody watching (cameras with analytics,
	// recorders); otherwise it is pulled on demand and dropped IdleTimeout after the last reader.
	AlwaysOn    bool
	IdleTimeout time.Duration // 0: the manager's
	// H265 pulls a camera that sends H.265 for its clips (it still cannot be watched in a
	// browser or re-served) instead of refusing it.
	H265 bool
}

// Manager owns the cameras: one Hub and (while pulled) one Source each.
type Manager struct {
	StallTimeout   time.Duration // default 5 s
	OfflineTimeout time.Duration // default 15 s
	BackoffMin     time.Duration // default 1 s
	BackoffMax     time.Duration // default 30 s
	IdleTimeout    time.Duration // on-demand cameras: stop pulling this long after the last reader (default 30 s)
	QueueSize      int           // per reader, in units (default 256)
	GOPMaxUnits    int           // default 600
	// OnState is called on every camera state change (see EventType for the events to log).
	OnState func(camera string, st State, reason string)
	// PullHeader, if set, is called each time a camera's RTSP session opens, for headers to
	// add to its requests (a centre's pull names the user it is opened for; cascade).
	PullHeader func(camera string) map[string]string
	// Registerer, if set, receives the relay's Prometheus metrics.
	Registerer prometheus.Registerer
	Logger     *slog.Logger

	// Latency is the relay's added latency in seconds, camera packet in → a frame's last packet
	// to a WebRTC viewer handed to the kernel (offsite_streams_relay_latency_seconds); set by
	// Initialize.
	Latency prometheus.Histogram

	mu      sync.Mutex
	cameras map[string]*Camera
	closed  bool
	metrics *metrics
}

// Initialize prepares the manager.
func (m *Manager) Initialize() error {
	if m.IdleTimeout <= 0 {
		m.IdleTimeout = 30 * time.Second
	}
	if m.Logger == nil {
		m.Logger = slog.Default()
	}
	m.cameras = make(map[string]*Camera)
	m.Latency = newLatencyHistogram("offsite_streams_relay_latency_seconds", "Added latency: camera RTP in to WebRTC RTP out.")
	if m.Registerer != nil {
		m.metrics = &metrics{m: m}
		if err := m.Registerer.Register(m.metrics); err != nil {
			return fmt.Errorf("streams metrics: %w", err)
		}
	}
	return nil
}

// Close stops every camera.
func (m *Manager) Close() {
	m.mu.Lock()
	m.closed = true
	cams := m.cameras
	m.cameras = map[string]*Camera{}
	m.mu.Unlock()
	for _, c := range cams {
		c.close()
	}
	if m.metrics != nil && m.Registerer != nil {
		m.Registerer.Unregister(m.metrics)
	}
}

// AddCamera adds a camera, or replaces the one with the same ID (its readers are disconnected).
func (m *Manager) AddCamera(cfg CameraConfig) error {
	if cfg.ID == "" || strings.ContainsAny(cfg.ID, "/ ?#") {
		return errs.E(errs.KindInvalid, "invalid_camera_id", "camera id %q must be non-empty without '/', '?', '#' or spaces", cfg.ID)
	}
	probe := Source{Camera: cfg.ID, URL: cfg.URL, Transport: cfg.Transport, Hub: &Hub{}}
	if err := probe.validate(); err != nil {
		return errs.Wrap(errs.KindInvalid, "invalid_camera_stream", err, "camera %s", cfg.ID)
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = m.IdleTimeout
	}
	c := &Camera{cfg: cfg, m: m, wake: make(chan struct{}, 1), done: make(chan struct{})}
	c.hub = &Hub{Camera: cfg.ID, QueueSize: m.QueueSize, GOPMaxUnits: m.GOPMaxUnits, OnReadersChanged: c.poke}
	if err := c.hub.Initialize(); err != nil {
		return err
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return errs.E(errs.KindUnavailable, "closed", "the video relay is shutting down")
	}
	old := m.cameras[cfg.ID]
	m.cameras[cfg.ID] = c
	m.mu.Unlock()
	if old != nil {
		old.close()
	}
	c.wg.Add(1)
	go c.run()
	return nil
}

// RemoveCamera stops and forgets a camera.
func (m *Manager) RemoveCamera(id string) {
	m.mu.Lock()
	c := m.cameras[id]
	delete(m.cameras, id)
	m.mu.Unlock()
	if c != nil {
		c.close()
	}
}

// Camera returns a camera by ID.
func (m *Manager) Camera(id string) (*Camera, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.cameras[id]
	return c, ok
}

// Cameras returns the status of every camera.
func (m *Manager) Cameras() []CameraStatus {
	m.mu.Lock()
	cams := make([]*Camera, 0, len(m.cameras))
	for _, c := range m.cameras {
		cams = append(cams, c)
	}
	m.mu.Unlock()
	out := make([]CameraStatus, 0, len(cams))
	for _, c := range cams {
		out = append(out, c.Status())
	}
	return out
}

// lookup returns a camera or a not-found error.
func (m *Manager) lookup(id string) (*Camera, error) {
	c, ok := m.Camera(id)
	if !ok {
		return nil, errs.E(errs.KindNotFound, "camera_not_found", "camera %q is not known to the video relay", id)
	}
	return c, nil
}

// Camera is one camera's hub and pull. On-demand cameras are pulled while the hub has active
// readers or someone touched the camera within its idle timeout.
type Camera struct {
	cfg  CameraConfig
	m    *Manager
	hub  *Hub
	wake chan struct{}
	done chan struct{}
	wg   sync.WaitGroup
	once sync.Once

	mu        sync.Mutex
	src       *Source
	lastState State
	touched   time.Time
	lastSrc   *Source // kept for the status after an on-demand stop
}

// ID returns the camera's ID.
func (c *Camera) ID() string { return c.cfg.ID }

// Config returns the camera's configuration.
func (c *Camera) Config() CameraConfig { return c.cfg }

// Hub returns the camera's hub.
func (c *Camera) Hub() *Hub { return c.hub }

// Touch starts an on-demand pull (if not running) and keeps it for the idle timeout.
func (c *Camera) Touch() {
	c.mu.Lock()
	c.touched = time.Now()
	c.mu.Unlock()
	c.poke()
}

func (c *Camera) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *Camera) close() {
	c.once.Do(func() {
		close(c.done)
		c.wg.Wait()
		c.hub.Close()
	})
}

// run owns starting and stopping the camera's Source.
func (c *Camera) run() {
	defer c.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var idleSince time.Time // when the last active reader left
	prevReaders := 0
	for {
		readers := c.hub.ActiveReaders()
		if readers == 0 && prevReaders > 0 {
			idleSince = time.Now()
		}
		prevReaders = readers
		c.mu.Lock()
		touched := c.touched
		running := c.src != nil
		c.mu.Unlock()
		if touched.After(idleSince) {
			idleSince = touched
		}
		want, left := true, time.Duration(0)
		if !c.cfg.AlwaysOn && readers == 0 {
			left = c.cfg.IdleTimeout - time.Since(idleSince)
			want = !idleSince.IsZero() && left > 0
		}
		switch {
		case want && !running:
			c.startSource()
		case !want && running:
			c.stopSource()
		}
		if want && left > 0 {
			timer.Reset(left)
		}
		select {
		case <-c.done:
			c.stopSource()
			return
		case <-c.wake:
		case <-timer.C:
		}
	}
}

func (c *Camera) startSource() {
	s := &Source{
		Camera: c.cfg.ID, URL: c.cfg.URL, Username: c.cfg.Username, Password: c.cfg.Password,
		Transport: c.cfg.Transport, Hub: c.hub, H265: c.cfg.H265,
		StallTimeout: c.m.StallTimeout, OfflineTimeout: c.m.OfflineTimeout,
		BackoffMin: c.m.BackoffMin, BackoffMax: c.m.BackoffMax,
		Logger: c.m.Logger,
		OnState: func(camera string, st State, reason string) {
			c.mu.Lock()
			c.lastState = st
			c.mu.Unlock()
			if c.m.OnState != nil {
				c.m.OnState(camera, st, reason)
			}
		},
	}
	if ph := c.m.PullHeader; ph != nil {
		id := c.cfg.ID
		s.Header = func() map[string]string { return ph(id) }
	}
	if err := s.Initialize(); err != nil {
		c.m.Logger.Error("camera source", "camera", c.cfg.ID, "err", err)
		return
	}
	c.mu.Lock()
	c.src, c.lastSrc = s, s
	c.mu.Unlock()
}

func (c *Camera) stopSource() {
	c.mu.Lock()
	s := c.src
	c.src = nil
	c.mu.Unlock()
	if s == nil {
		return
	}
	s.Close()
	s.setState(StateIdle, "nobody is watching")
}

// WaitFormat touches the camera and waits until its stream was described (or ctx ends). It
// returns the format, and an error wrapping ErrCodec for a stream browsers cannot play.
func (c *Camera) WaitFormat(ctx context.Context) (*Format, error) {
	c.Touch()
	for {
		f, changed := c.hub.Format()
		if f != nil {
			if f.Codec != "H264" {
				return f, c.problemOr(f)
			}
			if c.hub.HasBFrames() {
				return f, ErrBFrames
			}
			return f, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.done:
			return nil, errs.E(errs.KindNotFound, "camera_not_found", "camera %q was removed", c.cfg.ID)
		case <-changed:
		}
	}
}

func (c *Camera) problemOr(f *Format) error {
	c.mu.Lock()
	s := c.lastSrc
	c.mu.Unlock()
	if s != nil {
		if p := s.Problem(); p != nil {
			return p
		}
	}
	return fmt.Errorf("%w: the camera sends %s", ErrCodec, f.Codec)
}

// CameraStatus is a camera's state for the API and the dashboard.
type CameraStatus struct {
	ID       string    `json:"id"`
	Site     string    `json:"site,omitempty"`
	State    string    `json:"state"`
	Reason   string    `json:"reason,omitempty"`
	Since    time.Time `json:"since"`
	AlwaysOn bool      `json:"always_on"`
	Codec    string    `json:"codec,omitempty"`
	Width    int       `json:"width,omitempty"`
	Height   int       `json:"height,omitempty"`
	Audio    string    `json:"audio,omitempty"`
	// Problem is set when the stream cannot be shown in browsers (H.265, B-frames), with a
	// message a person can act on.
	Problem        *Problem `json:"problem,omitempty"`
	Readers        int      `json:"readers"`
	PacketsIn      uint64   `json:"packets_in"`
	PacketsDropped uint64   `json:"packets_dropped"`
}

// Problem is a codec problem.
type Problem struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Status returns the camera's status.
func (c *Camera) Status() CameraStatus {
	c.mu.Lock()
	s := c.lastSrc
	c.mu.Unlock()
	st := CameraStatus{ID: c.cfg.ID, Site: c.cfg.Site, State: StateIdle.String(), AlwaysOn: c.cfg.AlwaysOn}
	if s != nil {
		state, reason, since := s.State()
		st.State, st.Reason, st.Since = state.String(), reason, since
		st.PacketsIn = s.PacketsIn()
	}
	if f, _ := c.hub.Format(); f != nil {
		st.Codec, st.Width, st.Height = f.Codec, f.Width, f.Height
		if f.Audio != nil {
			st.Audio = "PCMA"
			if f.Audio.MULaw {
				st.Audio = "PCMU"
			}
		}
		var perr error
		if f.Codec != "H264" {
			perr = c.problemOr(f)
		} else if c.hub.HasBFrames() {
			perr = ErrBFrames
		}
		if perr != nil {
			st.Problem = &Problem{Code: "codec_unsupported", Message: strings.TrimPrefix(perr.Error(), ErrCodec.Error()+": ")}
		}
	}
	hs := c.hub.Stats()
	st.Readers, st.PacketsDropped = hs.Readers, hs.PacketsDropped
	return st
}

// codecError turns a codec problem into the API error.
func codecError(err error) error {
	if errors.Is(err, ErrCodec) {
		return errs.Wrap(errs.KindInvalid, "codec_unsupported", nil, "%s", strings.TrimPrefix(err.Error(), ErrCodec.Error()+": "))
	}
	return err
}
