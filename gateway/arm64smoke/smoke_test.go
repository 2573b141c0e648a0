package arm64smoke_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/emmansun/gmsm/sm3"
	"github.com/oklog/ulid/v2"
	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite"

	"github.com/offsite-gw/offsite/events/uplink/provincesim"
)

// deadline bounds each CPU model's run: start, checks and stop. On this machine one run takes
// 6-34 s (2 shared cores, load average up to 20); the margin is for a loaded machine.
const deadline = 150 * time.Second

// TestDemoUnderEmulation runs `offsite demo` built for linux/arm64 under qemu user-mode
// emulation, once per CPU model, and checks what a person installing it on a Kunpeng server
// would check first. scripts/arm64-smoke.sh sets OFFSITE_ARM64_BINARY; without it the test is
// skipped (the ordinary `go test ./...` has no arm64 binary to run).
func TestDemoUnderEmulation(t *testing.T) {
	bin := os.Getenv("OFFSITE_ARM64_BINARY")
	if bin == "" {
		t.Skip("OFFSITE_ARM64_BINARY not set; scripts/arm64-smoke.sh builds the binary and sets it")
	}
	qemu := os.Getenv("OFFSITE_QEMU")
	if qemu == "" {
		qemu = "qemu-aarch64-static"
	}
	// neoverse-n1: ARMv8.2 like the Kunpeng 920, without the SM3/SM4 instructions.
	// max: every feature qemu emulates, SM3/SM4 included (the path that used to crash).
	cpus := strings.Fields(os.Getenv("OFFSITE_ARM64_CPUS"))
	if len(cpus) == 0 {
		cpus = []string{"neoverse-n1", "max"}
	}
	if qemu == "none" { // on an arm64 machine: the binary runs as it is
		qemu, cpus = "", []string{"native"}
	} else {
		var err error
		qemu, err = exec.LookPath(qemu)
		require.NoError(t, err, "qemu user-mode emulator for aarch64 (Debian: qemu-user-static)")
	}
	for _, cpu := range cpus {
		t.Run(cpu, func(t *testing.T) { smoke(t, qemu, cpu, bin) })
	}
}

func smoke(t *testing.T, qemu, cpu, bin string) {
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	require.NoError(t, os.MkdirAll(data, 0o750))

	// The province receiver runs here, on the host, with a secret of our choosing; the demo
	// reuses the province secret of an existing demo.json (as on its second start).
	secret := randomHex(t, 24)
	seed, _ := json.Marshal(map[string]any{"province": map[string]string{"alg": "hmac-sm3", "secret": secret}})
	require.NoError(t, os.WriteFile(filepath.Join(data, "demo.json"), seed, 0o600))
	recv := &provincesim.Handler{Secret: []byte(secret)}
	require.NoError(t, recv.Initialize())
	defer recv.Close()
	var batches batchLog
	province := httptest.NewServer(batches.record(recv))
	defer province.Close()

	logPath := filepath.Join(dir, "gateway.log")
	logFile, err := os.Create(logPath)
	require.NoError(t, err)
	defer logFile.Close()
	args := []string{bin, "demo", "--data", data,
		"--http", "127.0.0.1:0", "--rtsp", "127.0.0.1:0", "--mqtt", "127.0.0.1:0", "--webrtc", "127.0.0.1:0",
		"--analytics", "off", "--province-url", province.URL}
	cmd := exec.Command(args[0], args[1:]...)
	if qemu != "" {
		// The demo is a city: the supervisor and its three nodes (a centre, two site gateways)
		// all run emulated on the same CPU model.
		args = append([]string{qemu, "-cpu", cpu}, args...)
		cmd = exec.Command(args[0], args[1:]...)
		cmd.Env = append(os.Environ(), "OFFSITE_DEMO_EXEC="+qemu+" -cpu "+cpu)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	running := true
	defer func() { // only the process this test started
		if running {
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("gateway log (%s, %s):\n%s", cpu, logPath, excerpt(logPath))
		}
	}()
	gone := func() error {
		select {
		case err := <-exited:
			running = false
			return fmt.Errorf("gateway exited: %v", err)
		default:
			return nil
		}
	}

	// 1. It starts: demo.json gets the HTTP address and /healthz answers.
	var df demoFile
	waitFor(t, ctx, "the demo to start", gone, func() error {
		b, err := os.ReadFile(filepath.Join(data, "demo.json"))
		if err != nil {
			return err
		}
		df = demoFile{}
		if err := json.Unmarshal(b, &df); err != nil || df.HTTP == "" {
			return fmt.Errorf("demo.json not written yet")
		}
		return get(ctx, df.HTTP+"/healthz", "", nil)
	})
	require.Equal(t, province.URL, df.Province.URL, "uplink goes to the receiver on the host")
	require.Equal(t, secret, df.Province.Secret)

	// 2. An admin logs in and sees every device the demo made.
	token := login(t, ctx, df)
	var devs struct {
		Devices []struct {
			ID string `json:"id"`
		} `json:"devices"`
	}
	require.NoError(t, get(ctx, df.HTTP+"/api/v1/devices", token, &devs))
	var want, got []string
	for _, c := range df.Cameras {
		want = append(want, c.ID)
	}
	for _, s := range df.Sensors {
		want = append(want, s.ID)
	}
	for _, d := range devs.Devices {
		got = append(got, d.ID)
	}
	require.Len(t, want, 20, "the demo's 6 cameras, 13 MQTT sensors and the HJ 212 station")
	require.ElementsMatch(t, want, got)

	// 3. A reading published over MQTT with a device's own credentials is stored and served.
	// dust-07-a is the sensor the demo's simulator keeps silent, so the value is ours.
	var sensor demoSensor
	for _, s := range df.Sensors {
		if s.ID == "dust-07-a" {
			sensor = s
		}
	}
	require.NotEmpty(t, sensor.MQTT, "demo.json names dust-07-a and its gateway's broker")
	site := df.gateway(t, sensor.Gateway)
	siteToken := loginAt(t, ctx, site.HTTP, site.Users)
	value := 100 + float64(time.Now().UnixNano()%8000)/10 // 100.0 … 899.9, different each run
	publish(t, sensor.MQTT, sensor, fmt.Sprintf(`{"ts": %d, "sn": "ARM64-SMOKE", "data": {"pm25": 40.5, "pm10": %.1f, "noise": 61.2}}`,
		time.Now().UnixMilli(), value))
	waitFor(t, ctx, "the reading to be stored", gone, func() error {
		var latest struct {
			Readings []struct {
				Metric string  `json:"metric"`
				Value  float64 `json:"value"`
			} `json:"readings"`
		}
		if err := get(ctx, site.HTTP+"/api/v1/devices/"+sensor.ID+"/readings/latest", siteToken, &latest); err != nil {
			return err
		}
		for _, r := range latest.Readings {
			if r.Metric == "pm10" && fmt.Sprintf("%.1f", r.Value) == fmt.Sprintf("%.1f", value) {
				return nil
			}
		}
		return fmt.Errorf("pm10 %.1f not among %+v", value, latest.Readings)
	})

	// 4. An event reaches the province receiver, signed with HMAC-SM3 computed on arm64; the
	// receiver verified it, and so does this test on its own from the raw request.
	id := ulid.Make().String()
	ev := fmt.Sprintf(`{"id": %q, "type": "test.arm64_smoke", "severity": "info", "message": "arm64 smoke on %s"}`, id, cpu)
	require.NoError(t, post(ctx, df.HTTP+"/api/v1/events", token, ev, http.StatusCreated, nil))
	waitFor(t, ctx, "the event at the province receiver", gone, func() error {
		if !recv.Has(id) {
			return fmt.Errorf("not received; receiver stats %+v", recv.Stats())
		}
		return nil
	})
	req, ok := batches.find(id)
	require.True(t, ok, "the batch carrying %s was recorded", id)
	mac := hmac.New(sm3.New, []byte(secret))
	sum := sha256.Sum256(req.body)
	mac.Write([]byte(req.header.Get("X-Offsite-Timestamp") + "\n" + req.header.Get("X-Offsite-Nonce") + "\n" + hex.EncodeToString(sum[:])))
	require.Equal(t, "hmac-sm3="+hex.EncodeToString(mac.Sum(nil)), req.header.Get("X-Offsite-Signature"))
	require.Equal(t, "demo-centre", req.header.Get("X-Offsite-Gateway"), "the centre delivers to the province")

	// 5. Every camera comes on line: the gateway opened each camera's SM4-GCM sealed RTSP
	// password (bound to the camera's id) and the simulated camera accepted it.
	online := map[string]bool{}
	waitFor(t, ctx, "every camera on line", gone, func() error {
		var cams struct {
			Cameras []struct {
				ID string `json:"id"`
				// State is the camera's state at its site gateway (the site pulls it for its
				// analytics); Status is the centre's relay of it, idle while nobody watches.
				State  string `json:"state"`
				Status struct {
					State  string `json:"state"`
					Reason string `json:"reason"`
				} `json:"status"`
			} `json:"cameras"`
		}
		if err := get(ctx, df.HTTP+"/api/v1/cameras", token, &cams); err != nil {
			return err
		}
		var missing []string
		for _, c := range cams.Cameras {
			if c.Status.State == "online" || c.State == "online" {
				online[c.ID] = true
			}
		}
		for _, c := range df.Cameras {
			if !online[c.ID] {
				missing = append(missing, c.ID)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("not yet on line: %v (%+v)", missing, cams.Cameras)
		}
		return nil
	})

	// 6. It stops on SIGTERM, like systemd stops it, and exits cleanly.
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-exited:
		running = false
		require.NoError(t, err, "exit status after SIGTERM")
	case <-time.After(30 * time.Second):
		t.Fatal("gateway did not stop within 30 s of SIGTERM")
	}

	// The passwords it opened are stored sealed with SM4-GCM, not in clear and not with AES,
	// at the site gateways that pull the cameras.
	n := 0
	for _, gw := range df.Gateways {
		db, err := sql.Open("sqlite", "file:"+filepath.Join(data, gw.ID, "offsite.db")+"?mode=ro")
		require.NoError(t, err)
		rows, err := db.QueryContext(ctx, `SELECT id, rtsp_password_enc FROM devices WHERE kind = 'camera'`)
		require.NoError(t, err)
		for rows.Next() {
			var dev, enc string
			require.NoError(t, rows.Scan(&dev, &enc))
			require.True(t, strings.HasPrefix(enc, "sm4gcm:v1:"), "%s: %q", dev, enc)
			n++
		}
		require.NoError(t, rows.Err())
		rows.Close()
		db.Close()
	}
	require.Equal(t, len(df.Cameras), n)
}

type demoUser struct {
	Username string `json:"username"`
	Password string `json:"password"`
	Role     string `json:"role"`
}

type demoFile struct {
	HTTP     string     `json:"http"`
	MQTT     string     `json:"mqtt"`
	Users    []demoUser `json:"users"`
	Gateways []struct {
		ID    string     `json:"id"`
		HTTP  string     `json:"http"`
		Users []demoUser `json:"users"`
	} `json:"gateways"`
	Cameras []struct {
		ID string `json:"id"`
	} `json:"cameras"`
	Sensors  []demoSensor `json:"sensors"`
	Province struct {
		URL    string `json:"url"`
		Secret string `json:"secret"`
	} `json:"province"`
}

type demoSensor struct {
	ID           string `json:"id"`
	Gateway      string `json:"gateway"`
	MQTT         string `json:"mqtt"`
	Topic        string `json:"topic"`
	MQTTUsername string `json:"mqtt_username"`
	MQTTPassword string `json:"mqtt_password"`
}

type demoSite struct {
	HTTP  string
	Users []demoUser
}

// gateway is the site gateway of the demo city named id.
func (df demoFile) gateway(t *testing.T, id string) demoSite {
	for _, g := range df.Gateways {
		if g.ID == id {
			return demoSite{HTTP: g.HTTP, Users: g.Users}
		}
	}
	t.Fatalf("demo.json has no site gateway %q", id)
	return demoSite{}
}

func login(t *testing.T, ctx context.Context, df demoFile) string {
	return loginAt(t, ctx, df.HTTP, df.Users)
}

// loginAt logs in as the admin of the node at base.
func loginAt(t *testing.T, ctx context.Context, base string, users []demoUser) string {
	for _, u := range users {
		if u.Role != "admin" {
			continue
		}
		body, _ := json.Marshal(map[string]string{"username": u.Username, "password": u.Password})
		var out struct {
			Token string `json:"token"`
		}
		require.NoError(t, post(ctx, base+"/api/v1/auth/login", "", string(body), http.StatusOK, &out))
		require.NotEmpty(t, out.Token)
		return out.Token
	}
	t.Fatal("demo.json has no admin user")
	return ""
}

func publish(t *testing.T, broker string, s demoSensor, payload string) {
	opts := paho.NewClientOptions().AddBroker(broker).SetClientID("arm64-smoke-" + s.ID).
		SetUsername(s.MQTTUsername).SetPassword(s.MQTTPassword).SetConnectTimeout(20 * time.Second)
	c := paho.NewClient(opts)
	tok := c.Connect()
	require.True(t, tok.WaitTimeout(30*time.Second), "MQTT connect to %s", broker)
	require.NoError(t, tok.Error())
	defer c.Disconnect(250)
	// QoS 1: the embedded broker acknowledges only once the reading is in the journal.
	tok = c.Publish(s.Topic, 1, false, payload)
	require.True(t, tok.WaitTimeout(30*time.Second), "MQTT publish")
	require.NoError(t, tok.Error())
}

// waitFor polls check until it returns nil, the gateway is gone, or ctx ends.
func waitFor(t *testing.T, ctx context.Context, what string, gone func() error, check func() error) {
	t.Helper()
	var last error
	for {
		if last = check(); last == nil {
			return
		}
		if err := gone(); err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: gave up after %s: %v", what, deadline, last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func get(ctx context.Context, url, token string, out any) error {
	return do(ctx, http.MethodGet, url, token, "", http.StatusOK, out)
}

func post(ctx context.Context, url, token, body string, want int, out any) error {
	return do(ctx, http.MethodPost, url, token, body, want, out)
}

func do(ctx context.Context, method, url, token, body string, want int, out any) error {
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, method, url, strings.NewReader(body))
	if err != nil {
		return err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// batchLog keeps the raw requests the receiver got, to check signatures without its code.
type batchLog struct {
	mu   sync.Mutex
	reqs []rawRequest
}

type rawRequest struct {
	header http.Header
	body   []byte
}

func (l *batchLog) record(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		l.mu.Lock()
		l.reqs = append(l.reqs, rawRequest{header: r.Header.Clone(), body: body})
		l.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}

func (l *batchLog) find(id string) (rawRequest, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.reqs {
		var b struct {
			Events []struct {
				ID string `json:"id"`
			} `json:"events"`
		}
		if json.Unmarshal(r.body, &b) != nil {
			continue
		}
		for _, e := range b.Events {
			if e.ID == id {
				return r, true
			}
		}
	}
	return rawRequest{}, false
}

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

// excerpt is what to show of the gateway's log on failure: a crash report's first lines (the
// signal and the failing function) when there is one, then the log's last lines.
func excerpt(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	var out []string
	for i, l := range all {
		if strings.HasPrefix(l, "SIG") || strings.HasPrefix(l, "panic:") || strings.HasPrefix(l, "fatal error:") {
			out = append(all[i:min(i+16, len(all))], "…")
			break
		}
	}
	return strings.Join(append(out, all[max(0, len(all)-30):]...), "\n")
}
