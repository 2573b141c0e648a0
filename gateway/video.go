package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/offsite-gw/offsite/analytics/leases"
	"github.com/offsite-gw/offsite/api"
	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/events/event"
	profiles "github.com/offsite-gw/offsite/firmware-profiles"
	"github.com/offsite-gw/offsite/streams"
)

// video is the gateway's side of streams/: which cameras to pull (from the device registry),
// who may watch them, and the events their states turn into.
type video struct {
	g        *gateway
	manager  *streams.Manager
	whep     *streams.WHEP
	snapshot *streams.Snapshot
	handler  *streams.Handler
	reserve  *streams.Reserve
	leases   *leases.Service
	// consumers are the re-serve's own logins (one per worker or recorder), besides the
	// configured one.
	consumers *streams.ConsumerStore

	rtspUser, rtspPass string
	// reserveAddr is the re-serve's address once it listens (read by the inventory).
	reserveAddr atomic.Pointer[string]

	mu     sync.Mutex
	state  map[string]streams.State
	config map[string]streams.CameraConfig
	// children are the cameras of site gateways below this centre, pulled from their
	// re-serve on demand (cascade); their state is the site's to report, not this node's.
	children map[string]bool
	// viewers is the last user allowed to watch each camera (named in a cascade pull).
	viewers map[string]string
}

func (g *gateway) openVideo(ctx context.Context) error {
	sc := g.cfg.Streams
	v := &video{g: g, state: map[string]streams.State{}, config: map[string]streams.CameraConfig{}, children: map[string]bool{}}
	g.video = v
	v.rtspUser = sc.RTSP.Username
	pass, err := rtspPassword(g.cfg.DataDir, sc.RTSP.Password)
	if err != nil {
		return err
	}
	v.rtspPass = pass
	v.consumers = &streams.ConsumerStore{DB: g.db, Reserved: []string{v.rtspUser}, OnRevoke: func(name string) {
		if v.reserve != nil {
			n := v.reserve.Disconnect(name)
			g.log.Info("RTSP consumer revoked", "consumer", name, "connections_closed", n)
		}
	}}

	v.manager = &streams.Manager{StallTimeout: sc.StallTimeout, OfflineTimeout: sc.OfflineTimeout, BackoffMin: sc.BackoffMin,
		BackoffMax: sc.BackoffMax, IdleTimeout: sc.IdleTimeout, QueueSize: sc.QueueUnits, OnState: v.onState, PullHeader: v.pullHeader,
		Registerer: g.reg, Logger: g.log.With("component", "streams")}
	if err := v.manager.Initialize(); err != nil {
		return err
	}
	g.onStop("streams", func(context.Context) error { v.manager.Close(); return nil })

	v.whep = &streams.WHEP{Manager: v.manager, UDPListen: sc.WebRTC.UDPListen, TCPListen: sc.WebRTC.TCPListen,
		PublicIPs: sc.WebRTC.PublicIPs, DisconnectTimeout: sc.WebRTC.DisconnectTimeout, MaxLag: sc.WebRTC.MaxLag,
		MaxSessions: sc.WebRTC.MaxSessions, MaxSessionsPerUser: sc.WebRTC.MaxSessionsPerUser, MaxSessionsPerCamera: sc.WebRTC.MaxSessionsPerCamera,
		OnSession: v.onSession, Registerer: g.reg, Logger: g.log.With("component", "whep")}
	if err := v.whep.Initialize(); err != nil {
		return fmt.Errorf("webrtc: %w", err)
	}
	g.onStop("webrtc", func(context.Context) error { v.whep.Close(); return nil })
	v.snapshot = &streams.Snapshot{Manager: v.manager, FFmpegPath: sc.Snapshot.FFmpeg, CacheFor: sc.Snapshot.Cache}
	if err := v.snapshot.Initialize(); err != nil {
		return err
	}
	// The API's camera routes check who may watch a camera and name the viewer for it.
	v.handler = &streams.Handler{WHEP: v.whep, Snapshot: v.snapshot, Authorize: v.authorizeViewer, MayEndAny: api.VideoMayEndAny}
	if err := v.handler.Initialize(); err != nil {
		return err
	}

	v.leases = &leases.Service{DB: g.db, Cameras: g.devices, RTSPURL: v.rtspURL, Logger: g.log.With("component", "leases")}
	if err := v.sync(ctx); err != nil {
		return err
	}
	g.goBackground(func(ctx context.Context) {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := v.sync(ctx); err != nil && ctx.Err() == nil {
					g.log.Warn("camera sync failed", "err", err)
				}
			}
		}
	})
	return nil
}

// startReserve opens the RTSP re-serve listener (an input: opened last, closed first).
func (v *video) startReserve() error {
	sc := v.g.cfg.Streams.RTSP
	v.reserve = &streams.Reserve{Manager: v.manager, Listen: sc.Listen, UDPRTPListen: sc.UDPRTPListen, UDPRTCPListen: sc.UDPRTCPListen,
		Username: v.rtspUser, Password: v.rtspPass, Credentials: v.reserveCredentials(),
		AuthFailLimit: orOff(sc.AuthFailLimit), AuthFailWindow: sc.AuthFailWindow,
		HandshakeTimeout: orOff(sc.HandshakeTimeout), MaxConnsPerAddr: orOff(sc.MaxConnsPerAddr),
		OnPull: v.onPull, VerifyPull: v.verifyPull, Registerer: v.g.reg, Logger: v.g.log.With("component", "rtsp-reserve")}
	if err := v.reserve.Initialize(); err != nil {
		return fmt.Errorf("rtsp re-serve: %w", err)
	}
	addr := v.reserve.Addr()
	if host, port, err := net.SplitHostPort(addr); err == nil && (host == "" || host == "::" || host == "0.0.0.0") {
		addr = net.JoinHostPort("0.0.0.0", port) // any address: the centre uses the one the site connects from
	}
	v.reserveAddr.Store(&addr)
	v.g.onStop("rtsp re-serve", func(context.Context) error { v.reserve.Close(); return nil })
	return nil
}

// reserveCredentials are the re-serve's logins besides the configured one: the consumers an
// admin created, and this site's centre (cascade) if it has one.
func (v *video) reserveCredentials() []streams.CredentialSource {
	srcs := []streams.CredentialSource{v.consumers}
	if c := v.g.cascadeCredential(); c != nil {
		srcs = append(srcs, c)
	}
	return srcs
}

// rtspURL is the re-serve URL a worker reads a camera from, with the re-serve credentials.
func (v *video) rtspURL(cameraID string) string {
	host := "127.0.0.1:8554"
	if v.reserve != nil {
		host = displayAddr(v.reserve.Addr())
	} else if _, port, err := net.SplitHostPort(v.g.cfg.Streams.RTSP.Listen); err == nil {
		host = "127.0.0.1:" + port
	}
	return "rtsp://" + url.UserPassword(v.rtspUser, v.rtspPass).String() + "@" + host + "/" + url.PathEscape(cameraID)
}

// rtspPassword returns the configured re-serve password, or the one kept in data_dir,
// creating it on first start.
func rtspPassword(dataDir, configured string) (string, error) {
	if configured != "" {
		return configured, nil
	}
	path := filepath.Join(dataDir, "rtsp.password")
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	pw := devices.GenerateSecret()
	if err := os.WriteFile(path, []byte(pw+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("streams.rtsp.password: create %s: %w", path, err)
	}
	return pw, nil
}

// sync makes the relay pull exactly the registered cameras, with their current settings.
// Devices change through the API or a CSV import; this runs at start and every 10 s.
func (v *video) sync(ctx context.Context) error {
	cams, err := v.g.devices.ListDevices(ctx, devices.DeviceFilter{Kind: devices.KindCamera})
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, d := range cams {
		seen[d.ID] = true
		cfg, err := v.cameraConfig(ctx, d)
		if err != nil {
			v.g.log.Warn("camera cannot be pulled", "device", d.ID, "site", d.SiteID, "err", err)
			continue
		}
		v.mu.Lock()
		same := v.config[d.ID] == cfg
		v.config[d.ID] = cfg
		v.mu.Unlock()
		if same {
			continue
		}
		if err := v.manager.AddCamera(cfg); err != nil {
			v.g.log.Warn("camera not added", "device", d.ID, "err", err)
		}
	}
	for _, cfg := range v.g.childCameras(ctx) {
		if seen[cfg.ID] {
			v.g.log.Warn("a site gateway's camera has the id of one of this node's; not relayed", "camera", cfg.ID)
			continue
		}
		seen[cfg.ID] = true
		v.mu.Lock()
		same := v.config[cfg.ID] == cfg
		v.config[cfg.ID] = cfg
		v.children[cfg.ID] = true
		v.mu.Unlock()
		if same {
			continue
		}
		if err := v.manager.AddCamera(cfg); err != nil {
			v.g.log.Warn("site gateway camera not added", "camera", cfg.ID, "err", err)
		}
	}
	v.mu.Lock()
	var gone []string
	for id := range v.config {
		if !seen[id] {
			delete(v.children, id)
			gone = append(gone, id)
			delete(v.config, id)
		}
	}
	v.mu.Unlock()
	for _, id := range gone {
		v.manager.RemoveCamera(id)
	}
	v.g.clips.syncCameras()
	return nil
}

func (v *video) cameraConfig(ctx context.Context, d devices.Device) (streams.CameraConfig, error) {
	cfg := streams.CameraConfig{ID: d.ID, Site: d.SiteID, Transport: "tcp"}
	st := d.Stream
	if st == nil {
		return cfg, errors.New("no stream settings")
	}
	if st.Transport != "" {
		cfg.Transport = st.Transport
	}
	cfg.Username = st.Username
	if st.HasPassword {
		pw, err := v.g.devices.CameraPassword(ctx, d.ID)
		if err != nil {
			return cfg, err
		}
		cfg.Password = pw
	}
	if st.URL != "" {
		cfg.URL = st.URL
	} else {
		p, ok := v.g.profiles.Get(d.Profile)
		if !ok {
			return cfg, fmt.Errorf("profile %q is unknown", d.Profile)
		}
		stream := st.Stream
		if stream == "" {
			stream = "sub"
		}
		u, err := profiles.URL(p, stream, st.Host, st.Port, st.Channel)
		if err != nil {
			return cfg, err
		}
		cfg.URL = u
	}
	// Cameras the video analytics watch are pulled always, so a lost signal is noticed even
	// when nobody looks; the rest only while someone watches.
	if set, err := v.leases.Settings(ctx, d.ID); err == nil && !set.Disabled {
		cfg.AlwaysOn = true
	}
	// So are cameras with event clips: their pre-roll must be there when an event comes.
	if v.g.clips.wanted(d.ID) {
		cfg.AlwaysOn = true
		cfg.H265 = true // an H.265 camera cannot be watched in a browser, but it can be clipped
	}
	return cfg, nil
}

// onState turns camera state changes into events: video.signal_lost raises an alarm per
// camera, device.online clears it. It runs on a source's goroutine and never blocks.
func (v *video) onState(camera string, st streams.State, reason string) {
	v.mu.Lock()
	prev := v.state[camera]
	v.state[camera] = st
	child := v.children[camera]
	v.mu.Unlock()
	if child {
		return // the site gateway raises its cameras' events
	}
	typ := streams.EventType(prev, st)
	if typ == "" {
		return
	}
	e := event.Event{Type: typ, Device: &event.Device{ID: camera}, AlarmKey: camera + "/signal", Rule: "video.signal", OccurredAt: time.Now()}
	if typ == "video.signal_lost" {
		e.Severity, e.State = "major", "active"
		_, text := streams.ExplainReason(reason)
		e.Message, e.Detail = "摄像机视频信号中断："+text, reason
	} else {
		e.Severity, e.State = "info", "cleared"
		e.Message = "摄像机视频信号恢复"
	}
	v.g.raise(e)
}

// onSession puts every viewing session into the audit log (等级保护: who watched what, when,
// and who ended it).
func (v *video) onSession(se streams.SessionEvent) {
	_ = v.g.audit.Record(context.Background(), api.ViewingAudit(se))
}

// onPull puts every pull from the RTSP re-serve into the audit log.
func (v *video) onPull(pe streams.PullEvent) {
	_ = v.g.audit.Record(context.Background(), pullAudit(pe))
}
