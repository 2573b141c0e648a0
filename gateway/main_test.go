package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/text/encoding/simplifiedchinese"
)

var offsiteBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "offsite-bin")
	if err != nil {
		panic(err)
	}
	offsiteBin = filepath.Join(dir, "offsite")
	cmd := exec.Command("go", "build", "-o", offsiteBin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build offsite: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type demoUserJSON struct {
	Username, Password, Role string
}

type demoJSON struct {
	HTTP   string         `json:"http"`
	Users  []demoUserJSON `json:"users"`
	Centre struct {
		ID, HTTP string
	} `json:"centre"`
	Gateways []struct {
		ID, Name, HTTP, RTSP, MQTT string
		Users                      []demoUserJSON
		Sites                      []string
	} `json:"gateways"`
	Cameras []struct{ ID, WHEP, Gateway, RTSP string } `json:"cameras"`
	Sensors []struct {
		ID, Site, Topic, Profile, Gateway, MQTT string
		MQTTUsername                            string `json:"mqtt_username"`
		MQTTPassword                            string `json:"mqtt_password"`
		Metrics                                 []string
		Protocol, MN, PW                        string // HJ 212 stations (docs/contracts.md §8)
	} `json:"sensors"`
}

// startDemo runs `offsite demo` on a free port and waits until demo.json names its address.
// syncBuffer collects a child process's output while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startDemo(t *testing.T, dataDir string, extra ...string) (*exec.Cmd, demoJSON, *syncBuffer) {
	t.Helper()
	out := &syncBuffer{}
	cmd := exec.Command(offsiteBin, append([]string{"demo", "--data", dataDir, "--http", "127.0.0.1:0", "--rtsp", "127.0.0.1:0",
		"--webrtc", "127.0.0.1:0", "--mqtt", "127.0.0.1:0", "--hj212", "127.0.0.1:0", "--analytics", "off"}, extra...)...)
	cmd.Stdout = out
	cmd.Stderr = out
	before := fileMTime(filepath.Join(dataDir, "demo.json"))
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait(); waitDemoNodesGone(dataDir) })
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		if m := fileMTime(filepath.Join(dataDir, "demo.json")); m.After(before) {
			b, err := os.ReadFile(filepath.Join(dataDir, "demo.json"))
			require.NoError(t, err)
			var dj demoJSON
			require.NoError(t, json.Unmarshal(b, &dj))
			if dj.HTTP != "" {
				if resp, err := http.Get(dj.HTTP + "/healthz"); err == nil {
					resp.Body.Close()
					if resp.StatusCode == 200 {
						return cmd, dj, out
					}
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("demo did not come up in time:\n%s", out.String())
	return nil, demoJSON{}, nil
}

func fileMTime(p string) time.Time {
	st, err := os.Stat(p)
	if err != nil {
		return time.Time{}
	}
	return st.ModTime()
}

func login(t *testing.T, base, user, pw string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"username": user, "password": pw})
	resp, err := http.Post(base+"/api/v1/auth/login", "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	require.Equalf(t, 200, resp.StatusCode, "login %s: %s", user, b)
	var lr struct{ Token string }
	require.NoError(t, json.Unmarshal(b, &lr))
	require.NotEmpty(t, lr.Token)
	return lr.Token
}

func get(t *testing.T, url, token string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func password(dj demoJSON, user string) string {
	for _, u := range dj.Users {
		if u.Username == user {
			return u.Password
		}
	}
	return ""
}

func TestDemoServesLoginDevicesAndRoles(t *testing.T) {
	dir := t.TempDir()
	cmd, dj, out := startDemo(t, dir)
	require.GreaterOrEqual(t, len(dj.Cameras), 4)
	require.GreaterOrEqual(t, len(dj.Sensors), 12)
	roles := map[string]bool{}
	for _, u := range dj.Users {
		roles[u.Role] = true
		require.NotEmpty(t, u.Password)
	}
	require.True(t, roles["admin"] && roles["officer"] && roles["service"], "demo.json users: %+v", dj.Users)
	for _, s := range dj.Sensors {
		require.NotEmpty(t, s.Metrics, "sensor %s lists no metrics", s.ID)
		if s.Protocol == "hj212" {
			require.NotEmpty(t, s.MN, "an HJ 212 station has an MN and PW instead of MQTT credentials")
			require.NotEmpty(t, s.PW)
			continue
		}
		require.NotEmpty(t, s.Topic)
		require.NotEmpty(t, s.MQTTPassword)
		require.NotEmpty(t, s.Metrics, "sensor %s lists no metrics", s.ID)
	}

	code, _ := get(t, dj.HTTP+"/api/v1/devices", "")
	require.Equal(t, 401, code, "unauthenticated call")

	admin := login(t, dj.HTTP, "admin", password(dj, "admin"))
	code, body := get(t, dj.HTTP+"/api/v1/devices", admin)
	require.Equal(t, 200, code, string(body))
	var devs struct{ Devices []map[string]any }
	require.NoError(t, json.Unmarshal(body, &devs))
	require.GreaterOrEqual(t, len(devs.Devices), 16)
	require.NotContains(t, string(body), dj.Sensors[0].MQTTPassword, "secrets are write-only")

	officer := login(t, dj.HTTP, "officer", password(dj, "officer"))
	code, body = get(t, dj.HTTP+"/api/v1/users", officer)
	require.Equal(t, 403, code, string(body))
	require.Contains(t, string(body), `"code"`)
	code, body = get(t, dj.HTTP+"/api/v1/sites", officer)
	require.Equal(t, 200, code)
	var sites struct{ Sites []map[string]any }
	require.NoError(t, json.Unmarshal(body, &sites))
	require.Len(t, sites.Sites, 1, "officer of 市住房和城乡建设局 sees only the construction site: %s", body)

	// Graceful stop on SIGTERM, bounded.
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		require.NoErrorf(t, err, "demo exit:\n%s", out.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("demo did not stop within 30s of SIGTERM:\n%s", out.String())
	}
	require.Contains(t, out.String(), "stopped")
}

func TestDemoResumesAfterKill9(t *testing.T) {
	dir := t.TempDir()
	cmd, first, _ := startDemo(t, dir)
	// A change made in the first run at a site gateway must survive kill -9.
	site, siteUsers := siteOf(t, first, first.Sensors[0].Gateway)
	siteAdmin := login(t, site, "admin", userPassword(siteUsers, "admin"))
	req, _ := http.NewRequest("POST", site+"/api/v1/devices/"+first.Sensors[0].ID+"/maintenance",
		strings.NewReader(`{"kind":"inspect","note":"巡检：探头已清洁"}`))
	req.Header.Set("Authorization", "Bearer "+siteAdmin)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 201, resp.StatusCode)
	// kill -9 of the supervisor; its nodes stop with it (parent-death signal) and resume.
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_, _ = cmd.Process.Wait()

	_, second, out := startDemo(t, dir)
	require.Equal(t, password(first, "admin"), password(second, "admin"), "logins survive a restart")
	require.Equal(t, first.Sensors[0].MQTTPassword, second.Sensors[0].MQTTPassword)
	firstSiteAdmin := userPassword(siteUsers, "admin")
	site, siteUsers = siteOf(t, second, first.Sensors[0].Gateway)
	require.Equal(t, firstSiteAdmin, userPassword(siteUsers, "admin"), "site logins survive a restart")
	siteAdmin = login(t, site, "admin", userPassword(siteUsers, "admin"))
	code, body := get(t, site+"/api/v1/devices/"+first.Sensors[0].ID+"/maintenance", siteAdmin)
	require.Equal(t, 200, code)
	require.Contains(t, string(body), "探头已清洁", out.String())
	admin := login(t, second.HTTP, "admin", password(second, "admin"))
	code, body = get(t, second.HTTP+"/api/v1/devices", admin)
	require.Equal(t, 200, code)
	var devs struct{ Devices []map[string]any }
	require.NoError(t, json.Unmarshal(body, &devs))
	require.Len(t, devs.Devices, len(first.Cameras)+len(first.Sensors), "no duplicate fixtures on resume")
}

func run(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, offsiteBin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return code, stdout.String(), stderr.String()
}

func TestServeRefusesMisspeltKey(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "offsite.yml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf("data_dir: %s\nhttp:\n  listen: 127.0.0.1:0\n  read_timeot: 5s\n", dir)), 0o644))
	code, _, stderr := run(t, nil, "serve", "--config", cfg)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "offsite.yml:4")
	require.Contains(t, stderr, "http.read_timeot")
	require.Contains(t, stderr, "read_timeout")

	code, _, stderr = run(t, []string{"OFFSITE_HTTP_LISTN=:1"}, "serve", "--config", "../deploy/offsite.yml", "--check")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "OFFSITE_HTTP_LISTN")

	code, stdout, _ := run(t, nil, "serve", "--config", "../deploy/offsite.yml", "--check")
	require.Equal(t, 0, code)
	require.Contains(t, stdout, "valid")
}

// loopbackEnv keeps a test gateway on loopback and free ports.
func loopbackEnv() []string {
	return []string{"OFFSITE_HTTP_LISTEN=127.0.0.1:0", "OFFSITE_INGEST_BROKER_LISTEN=127.0.0.1:0",
		"OFFSITE_STREAMS_RTSP_LISTEN=127.0.0.1:0", "OFFSITE_STREAMS_WEBRTC_UDP_LISTEN=127.0.0.1:0",
		"OFFSITE_STREAMS_WEBRTC_TCP_LISTEN=127.0.0.1:0"}
}

func TestServeFirstStartPrintsAdminPasswordOnce(t *testing.T) {
	dir := t.TempDir()
	env := append(loopbackEnv(), "OFFSITE_DATA_DIR="+dir)
	start := func() string {
		out := &syncBuffer{}
		cmd := exec.Command(offsiteBin, "serve", "--config", "../deploy/offsite.yml")
		cmd.Env = append(os.Environ(), env...)
		cmd.Stdout, cmd.Stderr = out, out
		require.NoError(t, cmd.Start())
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) && !strings.Contains(out.String(), "offsite serving") {
			time.Sleep(50 * time.Millisecond)
		}
		require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
		require.NoError(t, cmd.Wait(), out.String())
		return out.String()
	}
	first := start()
	require.Contains(t, first, "created user \"admin\"")
	second := start()
	require.NotContains(t, second, "created user \"admin\"", "the password is shown only once")
}

const csvHeader = "site_id,site_name,uscc,region_code,address,latitude,longitude,department,supervision_items," +
	"device_id,kind,name,vendor,model,profile,firmware,serial,installed_on,rtsp_host,rtsp_port,rtsp_username,rtsp_password,rtsp_channel,rtsp_stream,mqtt_username,mqtt_secret\n"

func TestDevicesImportCLI(t *testing.T) {
	dir := t.TempDir()
	env := []string{"OFFSITE_DATA_DIR=" + dir}
	good := csvHeader +
		"wy-kitchen-1,卫滨区美食城后厨,92410702MA46C7N8XA,410703,新乡市卫滨区解放大道 8 号,35.30,113.85,市市场监督管理局,410703-SC-CY-001,fume-wy-1,sensor,油烟监测,Sdl,SDL-YY01,kitchen-fume-monitor,V4.1.2,SN1,2026-01-05,,,,,,,fume-wy-1,s3cret-fume-wy-1\n" +
		"wy-kitchen-1,卫滨区美食城后厨,92410702MA46C7N8XA,410703,新乡市卫滨区解放大道 8 号,35.30,113.85,市市场监督管理局,410703-SC-CY-001,cam-wy-1,camera,后厨摄像机,Hikvision,DS-2CD,hikvision-ipc,V5.7.3,SN2,2026-01-05,192.0.2.10,554,admin,cam-pass,1,sub,,\n"
	bad := strings.Replace(good, "92410702MA46C7N8XA,410703,新乡市卫滨区解放大道 8 号,35.30,113.85,市市场监督管理局,410703-SC-CY-001,cam-wy-1", "92410702MA46C7N8XB,410703,新乡市卫滨区解放大道 8 号,35.30,113.85,市市场监督管理局,410703-SC-CY-001,cam-wy-1", 1)
	require.NotEqual(t, good, bad)

	badPath := filepath.Join(dir, "bad.csv")
	require.NoError(t, os.WriteFile(badPath, []byte(bad), 0o644))
	code, _, stderr := run(t, env, "devices", "import", badPath)
	require.Equal(t, 1, code, stderr)
	require.Contains(t, stderr, "nothing imported")
	require.Contains(t, stderr, "row 3")
	_, exported, _ := run(t, env, "devices", "export")
	require.NotContains(t, exported, "fume-wy-1", "a bad row imports nothing, not even the good rows")

	gbk, err := simplifiedchinese.GBK.NewEncoder().String(strings.ReplaceAll(good, "µ", ""))
	require.NoError(t, err)
	gbkPath := filepath.Join(dir, "gbk.csv")
	require.NoError(t, os.WriteFile(gbkPath, []byte(gbk), 0o644))
	code, stdout, stderr := run(t, env, "devices", "import", gbkPath)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "imported 1 site(s) and 2 device(s)")
	code, exported, stderr = run(t, env, "devices", "export")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, exported, "卫滨区美食城后厨", "Chinese text survives GBK import")
	require.Contains(t, exported, "cam-wy-1")
	require.NotContains(t, exported, "cam-pass", "export never writes secrets")
}

func TestProfilesValidateCLI(t *testing.T) {
	code, stdout, stderr := run(t, nil, "profiles", "validate", "../firmware-profiles/builtin")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "valid")

	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "broken.yml"), []byte("id: broken\nname: 坏的\nkind: sensor\nvendorr: x\n"), 0o644))
	code, _, stderr = run(t, nil, "profiles", "validate", dir)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "broken.yml:4")
}

func TestVersionAndUsage(t *testing.T) {
	code, stdout, _ := run(t, nil, "version")
	require.Equal(t, 0, code)
	require.True(t, strings.HasPrefix(stdout, "offsite "))
	code, _, stderr := run(t, nil, "frobnicate")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "unknown command")
}

func post(t *testing.T, url, token, body string) (int, []byte) {
	t.Helper()
	return send(t, http.MethodPost, url, token, body)
}

// send is an API request with a JSON body and the bearer token.
func send(t *testing.T, method, url, token, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// An event a worker reports becomes an alert the officer of that department can claim, and
// the event and every alert step reach the province receiver, signed.
func TestDemoEventBecomesAlertAndReachesProvince(t *testing.T) {
	dir := t.TempDir()
	_, dj, out := startDemo(t, dir)
	var full struct {
		Province struct{ URL, Alg, Secret string }
	}
	b, err := os.ReadFile(filepath.Join(dir, "demo.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &full))
	require.NotEmpty(t, full.Province.URL)
	require.Equal(t, "hmac-sm3", full.Province.Alg)

	// The analytics worker beside the construction site's gateway reports it; the alert opens
	// at the centre, where the officer works.
	site, siteUsers := siteOf(t, dj, "demo-gw-city")
	svc := login(t, site, "analytics", userPassword(siteUsers, "analytics"))
	code, body := post(t, site+"/api/v1/events", svc,
		`{"type":"video.crowding","severity":"major","state":"active","occurred_at":"2026-11-27T10:15:04.123Z","device":{"id":"cam-site-gate"},"alarm_key":"cam-site-gate/crowding","message":"人员聚集"}`)
	require.Equalf(t, 201, code, "%s\n%s", body, out)
	var ev struct{ ID string }
	require.NoError(t, json.Unmarshal(body, &ev))

	officer := login(t, dj.HTTP, "officer", password(dj, "officer"))
	var alertID string
	require.Eventually(t, func() bool {
		code, body := get(t, dj.HTTP+"/api/v1/alerts?state=opened", officer)
		var al struct{ Alerts []struct{ ID string } }
		if code != 200 || json.Unmarshal(body, &al) != nil || len(al.Alerts) == 0 {
			return false
		}
		alertID = al.Alerts[0].ID
		return true
	}, 10*time.Second, 100*time.Millisecond, "the officer of 市住房和城乡建设局 sees the alert of the construction site")
	code, body = post(t, dj.HTTP+"/api/v1/alerts/"+alertID+"/claim", officer, `{"note":"已派员核查"}`)
	require.Equal(t, 200, code, string(body))

	require.Eventually(t, func() bool {
		resp, err := http.Get(full.Province.URL + "/offsite/v1/events?limit=100")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		s := string(b)
		return strings.Contains(s, ev.ID) && strings.Contains(s, "alert.opened") && strings.Contains(s, "alert.claimed")
	}, 20*time.Second, 200*time.Millisecond, "the province receiver gets the event and the alert steps")
}
