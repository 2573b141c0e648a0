// Command bench-cascade measures the video cascade with real processes: a site gateway and a
// centre (`offsite demo node`, the binary given by -offsite), 16 simulated 720p cameras
// (~3 Mbit/s, keyframe every 4 s) at the site, and 16 × 4 pion WHEP viewers at the centre, all
// on loopback. It prints the site's CPU and its upstream bit rate (what its RTSP re-serve sends
// the centre, which should be the 16 cameras once, not once per viewer), the centre's CPU per
// viewer, WHEP POST → first complete keyframe at a viewer (p50, p99) and the centre's added
// latency (RTP in from the site → WebRTC RTP out, its relay histogram), ending with one
// "BENCH cascade …" line. It never asserts on time. It lives in streams/ to reuse the
// benchmark viewer (streams/internal/whepclient); it imports nothing of gateway/.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/offsite-gw/offsite/internal/benchkit"
	"github.com/offsite-gw/offsite/streams/internal/whepclient"
	"github.com/offsite-gw/offsite/streams/simcam"
)

type user struct {
	Username string `json:"username"`
	Role     string `json:"role"`
	Password string `json:"password,omitempty"`
}

type ready struct {
	PID   int    `json:"pid"`
	HTTP  string `json:"http"`
	RTSP  string `json:"rtsp"`
	Users []user `json:"users"`
}

var loopback = map[string]string{"http": "127.0.0.1:0", "rtsp": "127.0.0.1:0", "mqtt": "127.0.0.1:0", "webrtc": "127.0.0.1:0"}

func main() {
	bin := flag.String("offsite", "", "the offsite binary (built by scripts/bench-cascade.sh)")
	cameras := flag.Int("cameras", 16, "simulated cameras at the site")
	perCamera := flag.Int("viewers", 4, "viewers per camera at the centre")
	steady := flag.Duration("steady", 15*time.Second, "measurement window")
	clipPath := flag.String("clip", "", "H.264 Annex-B clip (default: the 720p clip of make bench-relay, generated with ffmpeg once)")
	flag.Parse()
	log.SetFlags(0)
	if *bin == "" {
		log.Fatal("bench-cascade: -offsite BIN is required")
	}
	clip, err := benchkit.H264Clip(*clipPath)
	must(err)
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var cams []simcam.Camera
	for i := 1; i <= *cameras; i++ {
		cams = append(cams, simcam.Camera{Path: fmt.Sprintf("c%02d", i), Clip: clip, FPS: 25})
	}
	sim := &simcam.Server{Listen: "127.0.0.1:0", Username: "admin", Password: "bench-cam", Cameras: cams, Logger: quiet}
	must(sim.Initialize())
	defer sim.Close()

	dir, err := os.MkdirTemp("", "bench-cascade")
	must(err)
	defer os.RemoveAll(dir)
	secret := "bench-cascade-enrolment-secret-0123456789abcdef"
	users := []user{{Username: "admin", Role: "admin"}} // passwords issued by the nodes (ready.json)
	siteUsers := users
	// A user may hold 8 viewing sessions (streams.webrtc.max_sessions_per_user): the viewers
	// log in as monitoring-room users of 8 sessions each.
	nViewers := *cameras * *perCamera
	for i := 0; i < (nViewers+7)/8; i++ {
		users = append(users, user{Username: fmt.Sprintf("wall-%02d", i+1), Role: "viewer"})
	}

	centreSpec := map[string]any{"role": "centre", "gateway_id": "bench-centre", "data_dir": filepath.Join(dir, "centre"), "listen": loopback,
		"users": users, "enrol": []map[string]string{{"id": "bench-site", "name": "bench site", "secret": secret}}}
	centre, stopCentre := startNode(*bin, dir, "centre", centreSpec)
	defer stopCentre()
	centreURL := "http://" + centre.HTTP
	// The site serves the demo's service hall: its three cameras are simulated cameras 1-3;
	// the rest are added through its API.
	siteSpec := map[string]any{"role": "site", "gateway_id": "bench-site", "name": "bench site", "data_dir": filepath.Join(dir, "site"), "listen": loopback,
		"users": siteUsers, "sites": []string{"hq-service-hall"}, "centre_secret": secret,
		"cameras": map[string]any{"urls": map[string]string{"counter-empties": sim.URL("c01"), "waiting-area": sim.URL("c02"), "hall-entrance": sim.URL("c03")},
			"username": sim.Username, "password": sim.Password},
		"uplinks": []map[string]any{{"Name": "centre", "Kind": "centre", "BaseURL": centreURL, "Secret": secret,
			"InventoryEvery": int64(2 * time.Second), "HeartbeatEvery": int64(10 * time.Second)}}}
	site, stopSite := startNode(*bin, dir, "site", siteSpec)
	defer stopSite()
	siteURL := "http://" + site.HTTP

	siteToken := login(siteURL, "admin", passwordOf(site.Users, "admin"))
	for i := 4; i <= *cameras; i++ {
		body := map[string]any{"id": fmt.Sprintf("bench-cam-%02d", i), "site_id": "hq-service-hall", "kind": "camera", "name": fmt.Sprintf("bench %d", i),
			"profile": "generic-rtsp", "stream": map[string]any{"url": sim.URL(fmt.Sprintf("c%02d", i)), "username": sim.Username, "password": sim.Password, "transport": "tcp"}}
		if code, b := do("POST", siteURL+"/api/v1/devices", siteToken, body); code != http.StatusCreated {
			log.Fatalf("bench-cascade: add camera %d at the site: %d %s", i, code, b)
		}
	}
	token := login(centreURL, "admin", passwordOf(centre.Users, "admin"))
	var wallTokens []string
	for _, u := range centre.Users {
		if strings.HasPrefix(u.Username, "wall-") {
			wallTokens = append(wallTokens, login(centreURL, u.Username, u.Password))
		}
	}
	next := 0
	nextToken := func() string { // under mu
		tk := wallTokens[next%len(wallTokens)]
		next++
		return tk
	}
	var ids []string
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ids = relayed(centreURL, token)
		if len(ids) >= *cameras || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if len(ids) < *cameras {
		log.Fatalf("bench-cascade: the centre relays %d of %d site cameras after 2 minutes", len(ids), *cameras)
	}
	ids = ids[:*cameras]
	fmt.Printf("centre %s relays %d cameras of site %s; starting %d viewers\n", centreURL, len(ids), siteURL, len(ids)**perCamera)

	api, err := whepclient.NewAPI(false)
	must(err)
	var (
		mu      sync.Mutex
		clients []*whepclient.Client
		cold    = map[*whepclient.Client]bool{}
		failed  int
		wg      sync.WaitGroup
	)
	sem := make(chan struct{}, 8)
	joinCtx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	join := func(id string, first bool) {
		defer wg.Done()
		defer func() { <-sem }()
		mu.Lock()
		tk := nextToken()
		mu.Unlock()
		c := &whepclient.Client{API: api, Endpoint: centreURL + "/api/v1/cameras/" + id + "/whep", Token: tk, HeaderOnly: true}
		ctx, cancel := context.WithTimeout(joinCtx, 30*time.Second)
		defer cancel()
		err := c.Start(ctx)
		if err == nil {
			err = c.WaitFrames(ctx, 1)
		}
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			log.Printf("viewer of %s: %v", id, err)
			failed++
			return
		}
		clients = append(clients, c)
		cold[c] = first
	}
	// First one viewer per camera (cold: the centre pulls from the site, which pulls from the
	// camera), then the others (warm: the centre's hub serves them from its GOP cache).
	for round := 0; round < *perCamera; round++ {
		for _, id := range ids {
			wg.Add(1)
			sem <- struct{}{}
			go join(id, round == 0)
		}
		if round == 0 {
			wg.Wait()
		}
	}
	wg.Wait()
	defer func() {
		for _, c := range clients {
			_ = c.Close(true)
		}
	}()
	time.Sleep(2 * time.Second) // let the joins settle before the window

	sent0 := metric(siteURL, "offsite_rtsp_reserve_sent_bytes_total")
	lat0 := histogram(centreURL, "offsite_streams_relay_latency_seconds")
	siteCPU0, centreCPU0, t0 := cpuTicks(site.PID), cpuTicks(centre.PID), time.Now()
	time.Sleep(*steady)
	wall := time.Since(t0)
	siteCPU, centreCPU := cpuPct(siteCPU0, cpuTicks(site.PID), wall), cpuPct(centreCPU0, cpuTicks(centre.PID), wall)
	upMbps := (metric(siteURL, "offsite_rtsp_reserve_sent_bytes_total") - sent0) * 8 / wall.Seconds() / 1e6
	lat := histogram(centreURL, "offsite_streams_relay_latency_seconds").minus(lat0)
	sessions := metric(siteURL, "offsite_rtsp_reserve_sessions")
	clipMbps := float64(len(clip)) * 8 / (float64(countFrames(clip)) / 25) / 1e6

	var fk, fkCold []float64
	for _, c := range clients {
		if st := c.Stats(); st.FirstKeyframe > 0 {
			if cold[c] {
				fkCold = append(fkCold, float64(st.FirstKeyframe)/1e6)
			} else {
				fk = append(fk, float64(st.FirstKeyframe)/1e6)
			}
		}
	}
	n := len(clients)
	fmt.Printf("viewers ok %d, failed %d; site re-serve sessions %.0f (cameras %d)\n", n, failed, sessions, len(ids))
	fmt.Printf("site upstream %.1f Mbit/s = %.2f × (%d cameras × %.2f Mbit/s clip); site CPU %.1f%%\n", upMbps, upMbps/(float64(len(ids))*clipMbps), len(ids), clipMbps, siteCPU)
	fmt.Printf("centre CPU %.1f%% (%.2f%% per viewer)\n", centreCPU, centreCPU/float64(max(n, 1)))
	fmt.Printf("WHEP POST → first keyframe, viewers joining a camera the centre pulls already: p50 %.0f ms, p99 %.0f ms\n", quantile(fk, 0.5), quantile(fk, 0.99))
	fmt.Printf("WHEP POST → first keyframe, first viewer of a camera (centre and site pull on demand; waits for the camera's next keyframe): p50 %.0f ms, p99 %.0f ms\n", quantile(fkCold, 0.5), quantile(fkCold, 0.99))
	fmt.Printf("centre added latency (RTP in from the site → WebRTC RTP out) p50 %.1f ms, p99 %.1f ms\n", lat.quantile(0.5)*1000, lat.quantile(0.99)*1000)
	fmt.Printf("BENCH cascade cameras=%d viewers=%d failed=%d site_sessions=%.0f site_cpu_pct=%.1f site_upstream_mbit_s=%.1f upstream_per_camera_stream=%.2f centre_cpu_pct=%.1f centre_cpu_pct_per_viewer=%.2f first_keyframe_p50_ms=%.0f first_keyframe_p99_ms=%.0f cold_first_keyframe_p50_ms=%.0f cold_first_keyframe_p99_ms=%.0f centre_latency_p50_ms=%.1f centre_latency_p99_ms=%.1f\n",
		len(ids), n, failed, sessions, siteCPU, upMbps, upMbps/(float64(len(ids))*clipMbps), centreCPU, centreCPU/float64(max(n, 1)),
		quantile(fk, 0.5), quantile(fk, 0.99), quantile(fkCold, 0.5), quantile(fkCold, 0.99), lat.quantile(0.5)*1000, lat.quantile(0.99)*1000)
}

// startNode runs `offsite demo node --spec` and waits for its ready.json.
func startNode(bin, dir, name string, spec map[string]any) (ready, func()) {
	nd := filepath.Join(dir, name)
	must(os.MkdirAll(nd, 0o750))
	specPath := filepath.Join(nd, "node.json")
	b, _ := json.Marshal(spec)
	must(os.WriteFile(specPath, b, 0o600))
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	must(err)
	cmd := exec.Command(bin, "demo", "node", "--spec", specPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	must(cmd.Start())
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		var r ready
		if b, err := os.ReadFile(filepath.Join(nd, "ready.json")); err == nil && json.Unmarshal(b, &r) == nil && r.HTTP != "" {
			if r.PID == 0 {
				r.PID = cmd.Process.Pid
			}
			return r, stop
		}
		select {
		case <-done:
			out, _ := os.ReadFile(filepath.Join(dir, name+".log"))
			log.Fatalf("bench-cascade: %s exited:\n%s", name, out)
		case <-time.After(100 * time.Millisecond):
		}
	}
	stop()
	log.Fatalf("bench-cascade: %s not ready after 2 minutes", name)
	return ready{}, nil
}

func passwordOf(us []user, name string) string {
	for _, u := range us {
		if u.Username == name {
			return u.Password
		}
	}
	return ""
}

func do(method, url, token string, body any) (int, []byte) {
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, _ := http.NewRequest(method, url, rd)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	return resp.StatusCode, buf.Bytes()
}

func login(base, name, pw string) string {
	code, b := do("POST", base+"/api/v1/auth/login", "", map[string]string{"username": name, "password": pw})
	if code != 200 {
		log.Fatalf("bench-cascade: login at %s: %d %s", base, code, b)
	}
	var r struct{ Token string }
	must(json.Unmarshal(b, &r))
	return r.Token
}

// relayed lists the site cameras the centre relays (those with a status of its relay).
func relayed(base, token string) []string {
	_, b := do("GET", base+"/api/v1/cameras", token, nil)
	var r struct {
		Cameras []struct {
			ID      string
			Gateway string
			Status  *struct{ State string }
		}
	}
	_ = json.Unmarshal(b, &r)
	var ids []string
	for _, c := range r.Cameras {
		if c.Gateway == "bench-site" && c.Status != nil {
			ids = append(ids, c.ID)
		}
	}
	sort.Strings(ids)
	return ids
}

func scrape(base string) []string {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var lines []string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

func metric(base, name string) float64 {
	for _, l := range scrape(base) {
		if f := strings.Fields(l); len(f) == 2 && f[0] == name {
			v, _ := strconv.ParseFloat(f[1], 64)
			return v
		}
	}
	return math.NaN()
}

// hist is a Prometheus histogram's cumulative buckets (upper bound → count).
type hist struct {
	le    []float64
	count []float64
}

func histogram(base, name string) hist {
	var h hist
	for _, l := range scrape(base) {
		if !strings.HasPrefix(l, name+"_bucket{") {
			continue
		}
		i := strings.Index(l, `le="`)
		j := strings.Index(l[i+4:], `"`)
		le, err := strconv.ParseFloat(l[i+4:i+4+j], 64)
		if err != nil {
			le = math.Inf(1)
		}
		f := strings.Fields(l)
		v, _ := strconv.ParseFloat(f[len(f)-1], 64)
		h.le, h.count = append(h.le, le), append(h.count, v)
	}
	return h
}

func (h hist) minus(o hist) hist {
	out := hist{le: h.le, count: append([]float64(nil), h.count...)}
	if len(o.count) == len(h.count) {
		for i := range out.count {
			out.count[i] -= o.count[i]
		}
	}
	return out
}

// quantile interpolates within the bucket that holds q of the observations.
func (h hist) quantile(q float64) float64 {
	if len(h.count) == 0 || h.count[len(h.count)-1] == 0 {
		return math.NaN()
	}
	want := q * h.count[len(h.count)-1]
	prevLe, prevC := 0.0, 0.0
	for i, c := range h.count {
		if c >= want {
			if math.IsInf(h.le[i], 1) {
				return prevLe
			}
			if c == prevC {
				return h.le[i]
			}
			return prevLe + (h.le[i]-prevLe)*(want-prevC)/(c-prevC)
		}
		prevLe, prevC = h.le[i], c
	}
	return prevLe
}

func quantile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[int(math.Ceil(q*float64(len(s))))-1]
}

func cpuTicks(pid int) int64 { return int64(benchkit.CPUTime(pid) / (10 * time.Millisecond)) }

func cpuPct(t0, t1 int64, wall time.Duration) float64 {
	return float64(t1-t0) / 100 / wall.Seconds() * 100
}

// countFrames counts the clip's H.264 access units (VCL NAL units with first_mb_in_slice 0).
func countFrames(clip []byte) int {
	n := 0
	for i := 0; i+4 < len(clip); i++ {
		if clip[i] == 0 && clip[i+1] == 0 && clip[i+2] == 1 {
			t := clip[i+3] & 0x1f
			if (t == 1 || t == 5) && clip[i+4]&0x80 != 0 {
				n++
			}
		}
	}
	return max(n, 1)
}

func must(err error) {
	if err != nil {
		log.Fatalf("bench-cascade: %v", err)
	}
}
