package main

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"

	"github.com/offsite-gw/offsite/analytics/leases"
	"github.com/offsite-gw/offsite/api"
	"github.com/offsite-gw/offsite/api/auth"
	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/events/event"
	profiles "github.com/offsite-gw/offsite/firmware-profiles"
	"github.com/offsite-gw/offsite/internal/audit"
	"github.com/offsite-gw/offsite/internal/errs"
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

	rtspUser, rtspPass string

	mu     sync.Mutex
	state  map[string]streams.State
	config map[string]streams.CameraConfig
}

// viewerHeader carries the authenticated user from the fiber route to streams.Handler. The
// route always overwrites it, so a client cannot forge it.
const viewerHeader = "X-Offsite-Viewer"

func (g *gateway) openVideo(ctx context.Context) error {
	sc := g.cfg.Streams
	v := &video{g: g, state: map[string]streams.State{}, config: map[string]streams.CameraConfig{}}
	g.video = v
	v.rtspUser = sc.RTSP.Username
	pass, err := rtspPassword(g.cfg.DataDir, sc.RTSP.Password)
	if err != nil {
		return err
	}
	v.rtspPass = pass

	v.manager = &streams.Manager{StallTimeout: sc.StallTimeout, OfflineTimeout: sc.OfflineTimeout, BackoffMin: sc.BackoffMin,
		BackoffMax: sc.BackoffMax, IdleTimeout: sc.IdleTimeout, QueueSize: sc.QueueUnits, OnState: v.onState,
		Registerer: g.reg, Logger: g.log.With("component", "streams")}
	if err := v.manager.Initialize(); err != nil {
		return err
	}
	g.onStop("streams", func(context.Context) error { v.manager.Close(); return nil })

	v.whep = &streams.WHEP{Manager: v.manager, UDPListen: sc.WebRTC.UDPListen, TCPListen: sc.WebRTC.TCPListen,
		PublicIPs: sc.WebRTC.PublicIPs, DisconnectTimeout: sc.WebRTC.DisconnectTimeout, MaxLag: sc.WebRTC.MaxLag,
		MaxSessions: sc.WebRTC.MaxSessions, OnSession: v.onSession, Registerer: g.reg, Logger: g.log.With("component", "whep")}
	if err := v.whep.Initialize(); err != nil {
		return fmt.Errorf("webrtc: %w", err)
	}
	g.onStop("webrtc", func(context.Context) error { v.whep.Close(); return nil })
	v.snapshot = &streams.Snapshot{Manager: v.manager, FFmpegPath: sc.Snapshot.FFmpeg, CacheFor: sc.Snapshot.Cache}
	if err := v.snapshot.Initialize(); err != nil {
		return err
	}
	v.handler = &streams.Handler{WHEP: v.whep, Snapshot: v.snapshot, Authorize: func(r *http.Request, _ string) (string, error) {
		if u := r.Header.Get(viewerHeader); u != "" {
			return u, nil
		}
		return "", errs.E(errs.KindUnauthorized, "unauthenticated", "log in first")
	}}
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
		Username: v.rtspUser, Password: v.rtspPass, Logger: v.g.log.With("component", "rtsp-reserve")}
	if err := v.reserve.Initialize(); err != nil {
		return fmt.Errorf("rtsp re-serve: %w", err)
	}
	v.g.onStop("rtsp re-serve", func(context.Context) error { v.reserve.Close(); return nil })
	return nil
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
	v.mu.Lock()
	var gone []string
	for id := range v.config {
		if !seen[id] {
			gone = append(gone, id)
			delete(v.config, id)
		}
	}
	v.mu.Unlock()
	for _, id := range gone {
		v.manager.RemoveCamera(id)
	}
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
	return cfg, nil
}

// onState turns camera state changes into events: video.signal_lost raises an alarm per
// camera, device.online clears it. It runs on a source's goroutine and never blocks.
func (v *video) onState(camera string, st streams.State, reason string) {
	v.mu.Lock()
	prev := v.state[camera]
	v.state[camera] = st
	v.mu.Unlock()
	typ := streams.EventType(prev, st)
	if typ == "" {
		return
	}
	e := event.Event{Type: typ, Device: &event.Device{ID: camera}, AlarmKey: camera + "/signal", Rule: "video.signal", OccurredAt: time.Now()}
	if typ == "video.signal_lost" {
		e.Severity, e.State = "major", "active"
		_, text := humanReason(reason)
		e.Message = "摄像机视频信号中断：" + text + "（" + reason + "）"
	} else {
		e.Severity, e.State = "info", "cleared"
		e.Message = "摄像机视频信号恢复"
	}
	v.g.raise(e)
}

// onSession puts every viewing session into the audit log (等级保护: who watched what, when).
func (v *video) onSession(se streams.SessionEvent) {
	e := audit.Entry{Actor: se.User, Action: "camera.view." + se.Kind, Target: se.Camera, IP: se.RemoteAddr, Result: "ok"}
	if se.Kind == "end" {
		e.Detail = fmt.Sprintf("session %s from %s to %s (%s), reason: %s, packets sent %d, dropped %d", se.ID,
			se.Start.Format(time.RFC3339), se.End.Format(time.RFC3339), se.End.Sub(se.Start).Round(time.Second), se.Reason, se.PacketsSent, se.PacketsDropped)
	} else {
		e.Detail = "session " + se.ID
	}
	_ = v.g.audit.Record(context.Background(), e)
}

// mayView checks that u may watch camera id: a viewing role, and the camera's site in scope.
func (v *video) mayView(ctx context.Context, u auth.User, id string) (devices.Device, error) {
	switch u.Role {
	case auth.RoleAdmin, auth.RoleMaintainer, auth.RoleOfficer, auth.RoleViewer, auth.RoleService:
	default:
		return devices.Device{}, errs.E(errs.KindForbidden, "forbidden", "role %s may not watch cameras", u.Role)
	}
	d, err := v.g.devices.GetDevice(ctx, id)
	if err != nil || d.Kind != devices.KindCamera {
		return d, errs.E(errs.KindNotFound, "camera_not_found", "camera %q does not exist", id)
	}
	site, err := v.g.devices.GetSite(ctx, d.SiteID)
	if err != nil || !u.Scope().AllowsSite(site) {
		return d, errs.E(errs.KindNotFound, "camera_not_found", "camera %q does not exist", id)
	}
	return d, nil
}

// humanReason turns a relay's technical reason into a code the dashboard translates and a
// Chinese sentence for event messages, so a person reads "the camera refuses connections"
// rather than "describe: bad status code: 503".
func humanReason(reason string) (code, text string) {
	r := strings.ToLower(reason)
	switch {
	case reason == "":
		return "", ""
	case strings.Contains(r, "401") || strings.Contains(r, "unauthorized") || strings.Contains(r, "auth"):
		return "auth_failed", "摄像机拒绝登录，请核对设备档案中的用户名和密码"
	case strings.Contains(r, "503") || strings.Contains(r, "bad status code"):
		return "camera_refused", "摄像机拒绝取流，可能正在重启或连接数已满"
	case strings.Contains(r, "connection refused") || strings.Contains(r, "no route") || strings.Contains(r, "i/o timeout") || strings.Contains(r, "dial"):
		return "camera_unreachable", "无法连接摄像机，请检查网络或供电"
	case strings.Contains(r, "no packets") || strings.Contains(r, "stall"):
		return "no_data", "摄像机已连接但没有画面数据"
	case strings.Contains(r, "eof") || strings.Contains(r, "reset") || strings.Contains(r, "lost") || strings.Contains(r, "closed"):
		return "stream_lost", "视频流被摄像机中断"
	}
	return "signal_lost", "视频信号中断"
}

// cameraView is GET /api/v1/cameras: the device and what the relay knows of it.
type cameraView struct {
	// ReasonCode explains a camera that is not online (auth_failed, camera_refused,
	// camera_unreachable, no_data, stream_lost, signal_lost); the dashboard translates it.
	ReasonCode string                `json:"reason_code,omitempty"`
	ID         string                `json:"id"`
	SiteID     string                `json:"site_id"`
	Name       string                `json:"name"`
	Profile    string                `json:"profile"`
	Status     *streams.CameraStatus `json:"status,omitempty"`
	WHEP       string                `json:"whep"`
	Snap       string                `json:"snapshot"`
}

func (v *video) routes(srv *api.Server) error {
	h := adaptor.HTTPHandler(v.handler)
	view := func(c *fiber.Ctx) error {
		u, ok := api.UserOf(c)
		if !ok {
			return errs.E(errs.KindUnauthorized, "unauthenticated", "log in first")
		}
		if _, err := v.mayView(c.UserContext(), u, c.Params("id")); err != nil {
			return err
		}
		c.Request().Header.Set(viewerHeader, u.Username)
		return h(c)
	}
	statusOf := func(id string) *streams.CameraStatus {
		for _, st := range v.manager.Cameras() {
			if st.ID == id {
				st := st
				return &st
			}
		}
		return nil
	}
	toView := func(d devices.Device) cameraView {
		cv := cameraView{ID: d.ID, SiteID: d.SiteID, Name: d.Name, Profile: d.Profile, Status: statusOf(d.ID),
			WHEP: "/api/v1/cameras/" + d.ID + "/whep", Snap: "/api/v1/cameras/" + d.ID + "/snapshot.jpg"}
		if cv.Status != nil && cv.Status.State != streams.StateOnline.String() {
			cv.ReasonCode, _ = humanReason(cv.Status.Reason)
		}
		return cv
	}
	srv.Mount(func(r fiber.Router) {
		r.Get("/cameras", func(c *fiber.Ctx) error {
			u, _ := api.UserOf(c)
			cams, err := v.g.devices.ListDevices(c.UserContext(), devices.DeviceFilter{Kind: devices.KindCamera, Scope: u.Scope(), SiteID: c.Query("site")})
			if err != nil {
				return err
			}
			out := make([]cameraView, 0, len(cams))
			for _, d := range cams {
				out = append(out, toView(d))
			}
			return c.JSON(fiber.Map{"cameras": out})
		})
		r.Get("/cameras/:id", func(c *fiber.Ctx) error {
			u, _ := api.UserOf(c)
			d, err := v.mayView(c.UserContext(), u, c.Params("id"))
			if err != nil {
				return err
			}
			return c.JSON(toView(d))
		})
		r.Post("/cameras/:id/whep", view)
		r.Options("/cameras/:id/whep", view)
		r.Delete("/cameras/:id/whep/:session", view)
		r.Patch("/cameras/:id/whep/:session", view)
		r.Get("/cameras/:id/snapshot.jpg", view)

		worker := srv.RequireRole(auth.RoleService, auth.RoleAdmin)
		v.leases.Routes(r, worker)
		v.leases.SettingsRoutes(r, srv.RequireRole(auth.RoleService, auth.RoleAdmin, auth.RoleMaintainer),
			srv.RequireRole(auth.RoleAdmin, auth.RoleMaintainer),
			func(c *fiber.Ctx) string { u, _ := api.UserOf(c); return u.Username })
	})
	return srv.AddOpenAPIPaths(videoOpenAPI)
}

//go:embed video_openapi.json
var videoOpenAPI []byte
