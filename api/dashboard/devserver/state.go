package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

type user struct {
	ID          string   `json:"id"`
	Username    string   `json:"username"`
	Password    string   `json:"-"`
	DisplayName string   `json:"display_name"`
	Role        string   `json:"role"`
	Departments []string `json:"departments"`
	Regions     []string `json:"regions"`
}

type site struct {
	ID               string   `json:"id"`
	Name             string   `json:"name"`
	USCC             string   `json:"uscc"`
	RegionCode       string   `json:"region_code"`
	Address          string   `json:"address"`
	Department       string   `json:"department"`
	SupervisionItems []string `json:"supervision_items"`
}

type device struct {
	ID       string `json:"id"`
	SiteID   string `json:"site_id"`
	Kind     string `json:"kind"`
	Name     string `json:"name"`
	Vendor   string `json:"vendor"`
	Model    string `json:"model"`
	Profile  string `json:"profile"`
	Firmware string `json:"firmware"`
	Serial   string `json:"serial"`
	Status   struct {
		State    string    `json:"state"`
		LastSeen time.Time `json:"last_seen"`
		Reason   string    `json:"reason,omitempty"`
	} `json:"status"`
}

// step and alert mirror events (Alert with its Source event and Steps).
type step struct {
	Action  string    `json:"action"`
	State   string    `json:"state"`
	At      time.Time `json:"at"`
	Actor   string    `json:"actor,omitempty"`
	Note    string    `json:"note,omitempty"`
	Outcome string    `json:"outcome,omitempty"`
}

type alert struct {
	ID         string         `json:"id"`
	State      string         `json:"state"`
	Severity   string         `json:"severity"`
	Type       string         `json:"type"`
	Department string         `json:"department"`
	SiteID     string         `json:"site_id"`
	DeviceID   string         `json:"device_id"`
	Message    string         `json:"message"`
	OpenedAt   time.Time      `json:"opened_at"`
	Assignee   string         `json:"claimed_by,omitempty"`
	Outcome    string         `json:"outcome,omitempty"`
	Event      map[string]any `json:"source"`
	Timeline   []step         `json:"steps"`
}

type maint struct {
	ID       int64     `json:"id"`
	DeviceID string    `json:"device_id"`
	At       time.Time `json:"at"`
	Actor    string    `json:"actor"`
	Kind     string    `json:"kind"`
	Note     string    `json:"note"`
}

type state struct {
	mu       sync.Mutex
	users    []user
	tokens   map[string]*user
	sites    []site
	devices  []*device
	alerts   []*alert
	maint    map[string][]maint
	events   []map[string]any // the SSE log
	subs     map[chan map[string]any]struct{}
	camDown  map[string]bool
	readings map[string][]reading
	video    *video
}

type reading struct {
	T time.Time
	V float64
}

func newState() *state {
	s := &state{tokens: map[string]*user{}, maint: map[string][]maint{}, subs: map[chan map[string]any]struct{}{},
		camDown: map[string]bool{}, readings: map[string][]reading{}}
	s.users = []user{
		{ID: "u1", Username: "admin", Password: "admin", DisplayName: "系统管理员", Role: "admin"},
		{ID: "u2", Username: "officer", Password: "officer", DisplayName: "李执法", Role: "officer", Departments: []string{"市生态环境局"}},
		{ID: "u3", Username: "maintainer", Password: "maintainer", DisplayName: "王运维", Role: "maintainer"},
	}
	s.sites = []site{
		{ID: "hall-01", Name: "市民之家政务服务大厅", USCC: "11410700MB1234567X", RegionCode: "410702", Address: "人民路 88 号", Department: "市政务服务和大数据管理局", SupervisionItems: []string{"4107020001"}},
		{ID: "site-02", Name: "城东建筑工地（三标段）", USCC: "91410700MA44ABCD1Q", RegionCode: "410703", Address: "东环路与纬三路交叉口", Department: "市生态环境局", SupervisionItems: []string{"4107030012", "4107030013"}},
		{ID: "market-03", Name: "新华农贸市场", USCC: "92410702MA9XYZ0012", RegionCode: "410702", Address: "新华街 12 号", Department: "市市场监督管理局", SupervisionItems: []string{"4107020105"}},
	}
	add := func(id, site, kind, name, vendor, model, profile, fw string) *device {
		d := &device{ID: id, SiteID: site, Kind: kind, Name: name, Vendor: vendor, Model: model, Profile: profile, Firmware: fw, Serial: "SN" + strings.ToUpper(id)}
		d.Status.State = "online"
		d.Status.LastSeen = time.Now().Add(-20 * time.Second)
		s.devices = append(s.devices, d)
		return d
	}
	add("cam-hall-1", "hall-01", "camera", "大厅全景", "海康威视", "DS-2CD3T47", "hikvision-ipc", "V5.7.3")
	add("cam-hall-2", "hall-01", "camera", "综合窗口", "海康威视", "DS-2CD3T47", "hikvision-ipc", "V5.7.3")
	add("cam-site-1", "site-02", "camera", "工地大门", "大华", "IPC-HFW2431", "dahua-ipc", "V2.800")
	add("cam-site-2", "site-02", "camera", "塔吊区域", "大华", "IPC-HFW2431", "dahua-ipc", "V2.800")
	add("cam-mkt-1", "market-03", "camera", "市场入口", "海康威视", "DS-2CD2T45", "hikvision-ipc", "V5.5.0")
	add("dust-01", "site-02", "sensor", "扬尘噪声监测仪", "聚光科技", "YZ-100", "dust-noise-monitor", "1.4.2")
	off := add("gas-01", "market-03", "sensor", "燃气探测器", "汉威", "HW-G2", "gas-detector", "0.0.0")
	off.Status.State = "offline"
	off.Status.LastSeen = time.Now().Add(-3 * time.Hour)
	off.Status.Reason = "心跳超时（5 分钟无数据）"
	stl := add("cold-01", "market-03", "sensor", "冷库温度记录仪", "精创", "RC-4", "coldchain-logger", "2.1.0")
	stl.Status.State = "stalled"
	stl.Status.LastSeen = time.Now().Add(-11 * time.Minute)
	s.maint["dust-01"] = []maint{{ID: 1, DeviceID: "dust-01", At: time.Now().Add(-72 * time.Hour), Actor: "maintainer", Kind: "inspect", Note: "清洁采样头，校准噪声模块"}}
	// Two days of readings for the dust sensor.
	now := time.Now()
	for t := now.Add(-48 * time.Hour); t.Before(now); t = t.Add(time.Minute) {
		h := float64(t.Hour()) + float64(t.Minute())/60
		v := 60 + 35*math.Sin(h/24*2*math.Pi) + 8*math.Sin(float64(t.Unix())/700)
		s.readings["dust-01/pm10"] = append(s.readings["dust-01/pm10"], reading{t, v})
		s.readings["dust-01/noise"] = append(s.readings["dust-01/noise"], reading{t, 55 + 6*math.Sin(float64(t.Unix())/900)})
	}
	s.openAlert("sensor.threshold", "major", "site-02", "dust-01", "城东建筑工地 PM10 超标：182 µg/m³（限值 150）", map[string]any{"metric": "pm10", "value": 182.0, "unit": "µg/m³", "limit": 150.0}, now.Add(-40*time.Minute))
	s.openAlert("video.staff_absent", "minor", "hall-01", "cam-hall-2", "综合窗口 15 分钟无人值守", nil, now.Add(-25*time.Minute))
	s.openAlert("device.offline", "minor", "market-03", "gas-01", "燃气探测器离线", nil, now.Add(-3*time.Hour))
	a := s.openAlert("video.crowding", "critical", "market-03", "cam-mkt-1", "市场入口人员聚集（约 60 人）", nil, now.Add(-2*time.Hour))
	a.State, a.Assignee = "claimed", "officer"
	a.Timeline = append(a.Timeline, step{Action: "claim", State: "claimed", At: now.Add(-110 * time.Minute), Actor: "officer", Note: "已通知市场管理方疏导"})
	return s
}

func newID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return strings.ToUpper(hex.EncodeToString(b))
}

func (s *state) siteByID(id string) *site {
	for i := range s.sites {
		if s.sites[i].ID == id {
			return &s.sites[i]
		}
	}
	return nil
}

func (s *state) deviceByID(id string) *device {
	for _, d := range s.devices {
		if d.ID == id {
			return d
		}
	}
	return nil
}

// openAlert must be called with s.mu held (or before serving).
func (s *state) openAlert(typ, sev, siteID, devID, msg string, rd map[string]any, at time.Time) *alert {
	st := s.siteByID(siteID)
	dev := s.deviceByID(devID)
	ev := map[string]any{
		"id": newID(), "type": typ, "severity": sev, "state": "active", "occurred_at": at.UTC().Format(time.RFC3339Nano),
		"gateway_id": "dev-gw-01", "site": map[string]any{"id": st.ID, "name": st.Name, "uscc": st.USCC, "region_code": st.RegionCode},
		"device":     map[string]any{"id": dev.ID, "kind": dev.Kind, "profile": dev.Profile, "name": dev.Name},
		"department": st.Department, "supervision_item": st.SupervisionItems[0], "message": msg, "rule": dev.Profile + "/" + typ,
	}
	if rd != nil {
		ev["reading"] = rd
	}
	if dev.Kind == "camera" || rd != nil {
		cam := devID
		if dev.Kind != "camera" {
			cam = "cam-site-1"
		}
		ev["evidence"] = []map[string]any{{"kind": "snapshot", "url": "/api/v1/cameras/" + cam + "/snapshot.jpg?at=" + strconv.FormatInt(at.Unix(), 10), "sha256": "…"}}
	}
	a := &alert{ID: newID(), State: "opened", Severity: sev, Type: typ, Event: ev, Department: st.Department, SiteID: st.ID,
		DeviceID: dev.ID, Message: msg, OpenedAt: at, Timeline: []step{{Action: "open", State: "opened", At: at}}}
	s.alerts = append(s.alerts, a)
	return a
}

func (s *state) publish(ev map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := ev["id"]; !ok {
		ev["id"] = newID()
	}
	s.events = append(s.events, ev)
	if len(s.events) > 1000 {
		s.events = s.events[len(s.events)-1000:]
	}
	for ch := range s.subs {
		select {
		case ch <- ev:
		default:
		}
	}
}

// background ticks the sensors' readings and emits an occasional minor event.
func (s *state) background(ctx context.Context) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.mu.Lock()
			d := s.deviceByID("dust-01")
			d.Status.LastSeen = now
			s.readings["dust-01/pm10"] = append(s.readings["dust-01/pm10"], reading{now, 70 + 10*math.Sin(float64(now.Unix())/300)})
			s.mu.Unlock()
		}
	}
}

// onReading is called by the broker for every reading a sensor publishes.
func (s *state) onReading(devID string, payload []byte) {
	var p struct {
		Values map[string]float64 `json:"values"`
	}
	if json.Unmarshal(payload, &p) != nil {
		return
	}
	now := time.Now()
	limits := map[string]float64{"pm10": 150, "noise": 85, "pm25": 75, "lel": 20, "temperature": 8}
	units := map[string]string{"pm10": "µg/m³", "noise": "dB(A)", "pm25": "µg/m³", "lel": "%LEL", "temperature": "°C"}
	s.mu.Lock()
	dev := s.deviceByID(devID)
	if dev == nil {
		s.mu.Unlock()
		return
	}
	dev.Status.State, dev.Status.LastSeen = "online", now
	var opened []*alert
	for m, v := range p.Values {
		s.readings[devID+"/"+m] = append(s.readings[devID+"/"+m], reading{now, v})
		if lim, ok := limits[m]; ok && v > lim {
			st := s.siteByID(dev.SiteID)
			msg := fmt.Sprintf("%s %s 超标：%.1f %s（限值 %.0f）", st.Name, strings.ToUpper(m), v, units[m], lim)
			opened = append(opened, s.openAlert("sensor.threshold", "major", dev.SiteID, devID, msg,
				map[string]any{"metric": m, "value": v, "unit": units[m], "limit": lim}, now))
		}
	}
	s.mu.Unlock()
	for _, a := range opened {
		ev := map[string]any{}
		for k, v := range a.Event {
			ev[k] = v
		}
		s.publish(ev)
		s.publish(map[string]any{"type": "alert.opened", "severity": a.Severity, "department": a.Department, "occurred_at": now.UTC().Format(time.RFC3339Nano),
			"alert": map[string]any{"id": a.ID, "state": "opened"}})
	}
}

// ---- HTTP ----

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"code": code, "message": msg}})
}

func (s *state) auth(r *http.Request) *user {
	tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	if tok == "" {
		tok = r.URL.Query().Get("token")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokens[tok]
}

func (u *user) sees(dept string) bool {
	return len(u.Departments) == 0 || slices.Contains(u.Departments, dept)
}

func (s *state) routes(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/v1/auth/login", func(w http.ResponseWriter, r *http.Request) {
		var in struct{ Username, Password string }
		_ = json.NewDecoder(r.Body).Decode(&in)
		for i := range s.users {
			u := &s.users[i]
			if u.Username == in.Username && u.Password == in.Password {
				tok := newID() + newID()
				s.mu.Lock()
				s.tokens[tok] = u
				s.mu.Unlock()
				writeJSON(w, 200, map[string]any{"token": tok, "expires_at": time.Now().Add(12 * time.Hour), "user": u})
				return
			}
		}
		writeErr(w, 401, "invalid_credentials", "用户名或密码错误")
	})
	mux.HandleFunc("POST /_dev/cameras/{id}/{action}", func(w http.ResponseWriter, r *http.Request) {
		id, action := r.PathValue("id"), r.PathValue("action")
		s.mu.Lock()
		s.camDown[id] = action == "down"
		if d := s.deviceByID(id); d != nil {
			if action == "down" {
				d.Status.State, d.Status.Reason = "offline", "RTSP 连接超时：dial tcp 10.20.3.21:554: i/o timeout"
			} else {
				d.Status.State, d.Status.Reason, d.Status.LastSeen = "online", "", time.Now()
			}
		}
		s.mu.Unlock()
		w.WriteHeader(204)
	})
	mux.HandleFunc("GET /_dev/sessions", func(w http.ResponseWriter, r *http.Request) {
		n := 0
		if s.video != nil {
			s.video.mu.Lock()
			n = len(s.video.sessions)
			s.video.mu.Unlock()
		}
		writeJSON(w, 200, map[string]int{"whep_sessions": n})
	})
	api := http.NewServeMux()
	mux.Handle("/api/v1/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u := s.auth(r)
		if u == nil {
			writeErr(w, 401, "unauthorized", "请先登录")
			return
		}
		api.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), userKey{}, u)))
	}))
	me := func(r *http.Request) *user { return r.Context().Value(userKey{}).(*user) }

	api.HandleFunc("GET /api/v1/auth/me", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, me(r)) })
	api.HandleFunc("POST /api/v1/auth/logout", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
	api.HandleFunc("GET /api/v1/sites", func(w http.ResponseWriter, r *http.Request) {
		out := []site{}
		for _, st := range s.sites {
			if me(r).sees(st.Department) {
				out = append(out, st)
			}
		}
		writeJSON(w, 200, out)
	})
	api.HandleFunc("GET /api/v1/sites/{id}", func(w http.ResponseWriter, r *http.Request) {
		if st := s.siteByID(r.PathValue("id")); st != nil && me(r).sees(st.Department) {
			writeJSON(w, 200, st)
			return
		}
		writeErr(w, 404, "site_not_found", "没有这个站点")
	})
	api.HandleFunc("GET /api/v1/devices", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		out := []*device{}
		for _, d := range s.devices {
			if k := r.URL.Query().Get("kind"); k != "" && d.Kind != k {
				continue
			}
			if me(r).sees(s.siteByID(d.SiteID).Department) {
				out = append(out, d)
			}
		}
		writeJSON(w, 200, out)
	})
	api.HandleFunc("GET /api/v1/devices/export", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		fmt.Fprintln(w, "site_id,device_id,kind,name")
		for _, d := range s.devices {
			fmt.Fprintf(w, "%s,%s,%s,%s\n", d.SiteID, d.ID, d.Kind, d.Name)
		}
	})
	api.HandleFunc("POST /api/v1/devices/import", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		var rows []map[string]any
		col := slices.Index(strings.Split(strings.TrimSpace(lines[0]), ","), "uscc")
		for i, l := range lines[1:] {
			f := strings.Split(strings.TrimSpace(l), ",")
			if col >= 0 && col < len(f) && len(f[col]) != 18 {
				rows = append(rows, map[string]any{"row": i + 2, "column": "uscc", "reason": fmt.Sprintf("统一社会信用代码应为 18 位，实际 %d 位", len(f[col]))})
			}
		}
		if len(rows) > 0 {
			writeJSON(w, 422, map[string]any{"error": map[string]any{"code": "invalid_rows", "message": fmt.Sprintf("%d 行有错误，整表未导入", len(rows)), "rows": rows}})
			return
		}
		writeJSON(w, 200, map[string]any{"sites": 1, "devices": len(lines) - 1})
	})
	api.HandleFunc("GET /api/v1/devices/{id}", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if d := s.deviceByID(r.PathValue("id")); d != nil {
			writeJSON(w, 200, d)
			return
		}
		writeErr(w, 404, "device_not_found", "没有这个设备")
	})
	api.HandleFunc("GET /api/v1/devices/{id}/telemetry", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		from, _ := time.Parse(time.RFC3339Nano, q.Get("from"))
		to, _ := time.Parse(time.RFC3339Nano, q.Get("to"))
		if to.IsZero() {
			to = time.Now()
		}
		if from.IsZero() {
			from = to.Add(-time.Hour)
		}
		step := to.Sub(from) / 120
		s.mu.Lock()
		defer s.mu.Unlock()
		pts := []map[string]any{}
		var bucket time.Time
		for _, rd := range s.readings[r.PathValue("id")+"/"+q.Get("metric")] {
			if rd.T.Before(from) || rd.T.After(to) {
				continue
			}
			if !bucket.IsZero() && rd.T.Sub(bucket) < step {
				continue
			}
			bucket = rd.T
			pts = append(pts, map[string]any{"t": rd.T.UTC().Format(time.RFC3339), "v": math.Round(rd.V*10) / 10})
		}
		writeJSON(w, 200, map[string]any{"metric": q.Get("metric"), "points": pts})
	})
	api.HandleFunc("GET /api/v1/devices/{id}/maintenance", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		writeJSON(w, 200, append([]maint{}, s.maint[r.PathValue("id")]...))
	})
	api.HandleFunc("POST /api/v1/devices/{id}/maintenance", func(w http.ResponseWriter, r *http.Request) {
		var m maint
		_ = json.NewDecoder(r.Body).Decode(&m)
		s.mu.Lock()
		defer s.mu.Unlock()
		m.DeviceID, m.Actor, m.At = r.PathValue("id"), me(r).Username, time.Now()
		m.ID = int64(len(s.maint[m.DeviceID]) + 1)
		s.maint[m.DeviceID] = append(s.maint[m.DeviceID], m)
		writeJSON(w, 201, m)
	})
	api.HandleFunc("GET /api/v1/profiles", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, profiles()) })
	api.HandleFunc("GET /api/v1/profiles/{id}", func(w http.ResponseWriter, r *http.Request) {
		for _, p := range profiles() {
			if p["id"] == r.PathValue("id") {
				writeJSON(w, 200, p)
				return
			}
		}
		writeErr(w, 404, "profile_not_found", "no such profile")
	})
	api.HandleFunc("GET /api/v1/cameras", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		out := []map[string]any{}
		for _, d := range s.devices {
			if d.Kind == "camera" {
				out = append(out, s.camStatus(d))
			}
		}
		writeJSON(w, 200, out)
	})
	api.HandleFunc("GET /api/v1/cameras/{id}", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if d := s.deviceByID(r.PathValue("id")); d != nil && d.Kind == "camera" {
			writeJSON(w, 200, s.camStatus(d))
			return
		}
		writeErr(w, 404, "camera_not_found", "没有这个摄像机")
	})
	api.HandleFunc("GET /api/v1/cameras/{id}/snapshot.jpg", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/jpeg")
		_ = jpeg.Encode(w, snapshot(r.PathValue("id")), &jpeg.Options{Quality: 80})
	})
	api.HandleFunc("POST /api/v1/cameras/{id}/whep", func(w http.ResponseWriter, r *http.Request) { s.video.serveWHEP(w, r) })
	api.HandleFunc("DELETE /api/v1/whep/sessions/{sid}", func(w http.ResponseWriter, r *http.Request) {
		s.video.closeSession(r.PathValue("sid"))
		w.WriteHeader(204)
	})

	api.HandleFunc("GET /api/v1/alerts", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		out := []*alert{}
		for _, a := range s.alerts {
			if st := r.URL.Query().Get("state"); st != "" && a.State != st {
				continue
			}
			if me(r).sees(a.Department) {
				out = append(out, a)
			}
		}
		writeJSON(w, 200, map[string]any{"items": out})
	})
	api.HandleFunc("GET /api/v1/alerts/{id}", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, a := range s.alerts {
			if a.ID == r.PathValue("id") && me(r).sees(a.Department) {
				writeJSON(w, 200, a)
				return
			}
		}
		writeErr(w, 404, "alert_not_found", "没有这条告警")
	})
	api.HandleFunc("POST /api/v1/alerts/{id}/{action}", func(w http.ResponseWriter, r *http.Request) {
		var in struct{ Note, Outcome string }
		_ = json.NewDecoder(r.Body).Decode(&in)
		next := map[string]string{"claim": "claimed", "handle": "handled", "feedback": "fed_back", "close": "closed"}
		from := map[string][]string{"claim": {"opened"}, "handle": {"claimed", "handled"}, "feedback": {"handled"}, "close": {"fed_back"}}
		evType := map[string]string{"claim": "alert.claimed", "handle": "alert.handled", "feedback": "alert.fed_back", "close": "alert.closed"}
		act := r.PathValue("action")
		if next[act] == "" {
			writeErr(w, 404, "not_found", "unknown action")
			return
		}
		s.mu.Lock()
		var found *alert
		for _, a := range s.alerts {
			if a.ID == r.PathValue("id") {
				found = a
			}
		}
		if found == nil {
			s.mu.Unlock()
			writeErr(w, 404, "alert_not_found", "没有这条告警")
			return
		}
		if !slices.Contains(from[act], found.State) {
			s.mu.Unlock()
			writeErr(w, 409, "invalid_transition", fmt.Sprintf("cannot %s an alert that is %s", act, found.State))
			return
		}
		if act == "feedback" && in.Outcome == "" {
			s.mu.Unlock()
			writeErr(w, 400, "outcome_required", "feedback needs an outcome")
			return
		}
		found.State = next[act]
		if act == "claim" {
			found.Assignee = me(r).Username
		}
		found.Timeline = append(found.Timeline, step{Action: act, State: next[act], At: time.Now(), Actor: me(r).Username, Note: in.Note, Outcome: in.Outcome})
		if in.Outcome != "" {
			found.Outcome = in.Outcome
		}
		sev := found.Severity
		s.mu.Unlock()
		s.publish(map[string]any{"type": evType[act], "severity": sev, "department": found.Department, "occurred_at": time.Now().UTC().Format(time.RFC3339Nano),
			"alert": map[string]any{"id": found.ID, "state": next[act], "actor": me(r).Username, "note": in.Note, "outcome": in.Outcome}})
		writeJSON(w, 200, found)
	})
	api.HandleFunc("GET /api/v1/events/stream", s.serveSSE)
	api.HandleFunc("GET /api/v1/uplinks", func(w http.ResponseWriter, r *http.Request) {
		// Shaped like events/uplink.Status.
		writeJSON(w, 200, []map[string]any{
			{"name": "core", "kind": "core", "url": "http://10.1.2.3:9000/", "cursor": 1284, "head": 1284, "backlog": 0, "lag_seconds": 0, "delivered": 1284, "rejected": 0, "dead_letters": 0, "last_success": time.Now().Add(-12 * time.Second)},
			{"name": "province", "kind": "province", "url": "http://10.9.8.7:8443/", "cursor": 902, "head": 939, "backlog": 37, "lag_seconds": 842, "attempts": 6, "delivered": 902, "rejected": 1, "dead_letters": 1, "last_success": time.Now().Add(-14 * time.Minute), "last_error": "503 Service Unavailable", "last_error_at": time.Now().Add(-20 * time.Second)},
		})
	})
	api.HandleFunc("GET /api/v1/uplinks/{id}/dead-letters", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != "province" { // uplink names are the ids
			writeJSON(w, 200, []any{})
			return
		}
		writeJSON(w, 200, []map[string]any{{"uplink": "province", "event_id": "01JD7Q2K9W3XAB", "seq": 311, "type": "video.motion", "reason": "unsupported event type for this platform", "at": time.Now().Add(-5 * time.Hour), "attempts": 1}})
	})
	api.HandleFunc("POST /api/v1/uplinks/{id}/dead-letters/resend", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"queued": 1})
	})
}

type userKey struct{}

func (s *state) camStatus(d *device) map[string]any {
	m := map[string]any{"id": d.ID, "site": d.SiteID, "state": "online", "since": time.Now().Add(-time.Hour), "codec": "H264", "width": 640, "height": 360, "readers": 1}
	if s.camDown[d.ID] {
		m["state"], m["reason"] = "offline", d.Status.Reason
	}
	return m
}

func (s *state) serveSSE(w http.ResponseWriter, r *http.Request) {
	u := r.Context().Value(userKey{}).(*user)
	fl, ok := w.(http.Flusher)
	if !ok {
		writeErr(w, 500, "no_flush", "streaming unsupported")
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	ch := make(chan map[string]any, 64)
	last := r.Header.Get("Last-Event-ID")
	if last == "" {
		last = r.URL.Query().Get("last_event_id")
	}
	s.mu.Lock()
	s.subs[ch] = struct{}{}
	var backlog []map[string]any
	if last != "" {
		for i, e := range s.events {
			if e["id"] == last {
				backlog = append(backlog, s.events[i+1:]...)
			}
		}
	}
	s.mu.Unlock()
	defer func() { s.mu.Lock(); delete(s.subs, ch); s.mu.Unlock() }()
	send := func(e map[string]any) {
		if d, _ := e["department"].(string); d != "" && !u.sees(d) {
			return
		}
		b, _ := json.Marshal(e)
		fmt.Fprintf(w, "id: %s\nevent: %s\ndata: %s\n\n", e["id"], e["type"], b)
		fl.Flush()
	}
	fmt.Fprint(w, "retry: 2000\n\n")
	fl.Flush()
	for _, e := range backlog {
		send(e)
	}
	ping := time.NewTicker(20 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case e := <-ch:
			send(e)
		case <-ping.C:
			fmt.Fprint(w, ": ping\n\n")
			fl.Flush()
		}
	}
}

func profiles() []map[string]any {
	return []map[string]any{
		{"id": "dust-noise-monitor", "name": "扬尘噪声监测仪", "kind": "sensor", "firmware": map[string]any{"supported": []string{"*"}},
			"metrics": []map[string]any{{"name": "pm10", "label": "PM10", "unit": "µg/m³", "min": 0, "max": 1000}, {"name": "noise", "label": "噪声", "unit": "dB(A)", "min": 20, "max": 140}},
			"rules":   []map[string]any{{"id": "pm10-high", "kind": "threshold", "metric": "pm10", "op": ">", "value": 150, "severity": "major"}}},
		{"id": "gas-detector", "name": "可燃气体探测器", "kind": "sensor", "firmware": map[string]any{"supported": []string{"*"}, "bad": []map[string]any{{"version": "0.0.0", "reason": "出厂占位固件版本，请升级到厂商正式固件"}}},
			"metrics": []map[string]any{{"name": "lel", "label": "可燃气体浓度", "unit": "%LEL", "min": 0, "max": 100}}},
		{"id": "coldchain-logger", "name": "冷链温度记录仪", "kind": "sensor", "metrics": []map[string]any{{"name": "temperature", "label": "温度", "unit": "°C", "min": -50, "max": 100}}},
		{"id": "hikvision-ipc", "name": "海康威视网络摄像机", "kind": "camera", "firmware": map[string]any{"supported": []string{"*"}, "bad": []map[string]any{{"version": "V5.5.0", "reason": "已知漏洞 CVE-2021-36260，请升级"}}}},
		{"id": "dahua-ipc", "name": "大华网络摄像机", "kind": "camera"},
	}
}

func snapshot(id string) image.Image {
	img := image.NewRGBA(image.Rect(0, 0, 480, 270))
	var seed byte
	for _, c := range []byte(id) {
		seed += c
	}
	for y := 0; y < 270; y++ {
		for x := 0; x < 480; x++ {
			img.Set(x, y, color.RGBA{uint8(40 + x/8), uint8(60 + y/5 + int(seed)%40), uint8(90 + (x+y)/12), 255})
		}
	}
	for x := 160; x < 320; x++ {
		for y := 100; y < 180; y++ {
			img.Set(x, y, color.RGBA{220, 120, 40, 255})
		}
	}
	return img
}
