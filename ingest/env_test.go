package ingest_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/devices"
	profiles "github.com/offsite-gw/offsite/firmware-profiles"
	"github.com/offsite-gw/offsite/ingest"
	"github.com/offsite-gw/offsite/internal/errs"
	"github.com/offsite-gw/offsite/internal/store/storetest"
)

// fakeDevices is the part of devices.Store that ingest uses, in memory.
type fakeDevices struct {
	devices.Store
	mu      sync.Mutex
	devs    []devices.Device
	secrets map[string]string
}

func (f *fakeDevices) add(site, id, profile string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.secrets == nil {
		f.secrets = map[string]string{}
	}
	f.devs = append(f.devs, devices.Device{ID: id, SiteID: site, Kind: devices.KindSensor, Profile: profile,
		MQTT: &devices.MQTTCredentials{Username: id}})
	f.secrets[id] = "secret-" + id
}

func (f *fakeDevices) ListDevices(_ context.Context, _ devices.DeviceFilter) ([]devices.Device, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]devices.Device(nil), f.devs...), nil
}

func (f *fakeDevices) CheckMQTT(_ context.Context, username, secret string) (devices.Device, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, d := range f.devs {
		if d.MQTT != nil && d.MQTT.Username == username && f.secrets[username] == secret && secret != "" {
			return d, nil
		}
	}
	return devices.Device{}, errs.E(errs.KindUnauthorized, "mqtt_login_refused", "refused")
}

func quietLogger() *slog.Logger {
	if os.Getenv("OFFSITE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func registry(t testing.TB) *profiles.Registry {
	r, err := profiles.NewRegistry(true, "")
	require.NoError(t, err)
	return r
}

// stack is a Directory, Quarantine, Presence and Pipeline around one sink.
type stack struct {
	devs     *fakeDevices
	reg      *profiles.Registry
	dir      *ingest.Directory
	quar     *ingest.Quarantine
	presence *ingest.Presence
	pipe     *ingest.Pipeline
}

func newStack(t *testing.T, devs *fakeDevices, sink ingest.Sink) *stack {
	t.Helper()
	s := &stack{devs: devs, reg: registry(t)}
	s.dir = &ingest.Directory{Devices: devs, Profiles: s.reg, Logger: quietLogger(), RefreshInterval: -1}
	require.NoError(t, s.dir.Initialize())
	t.Cleanup(s.dir.Close)
	s.quar = &ingest.Quarantine{DB: storetest.SQLite(t, testSchema...), Logger: quietLogger()}
	require.NoError(t, s.quar.Initialize())
	t.Cleanup(s.quar.Close)
	s.presence = &ingest.Presence{Directory: s.dir, Logger: quietLogger()}
	require.NoError(t, s.presence.Initialize())
	t.Cleanup(s.presence.Close)
	s.pipe = &ingest.Pipeline{Directory: s.dir, Sink: sink, Quarantine: s.quar, Presence: s.presence, Logger: quietLogger(), QueueSize: 4096}
	require.NoError(t, s.pipe.Initialize())
	t.Cleanup(s.pipe.Close)
	return s
}

func (s *stack) flush(t *testing.T, tel ingest.Telemetry) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	require.NoError(t, s.pipe.Flush(ctx))
	if tel != nil {
		require.NoError(t, tel.Flush(ctx))
	}
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func needed(t testing.TB, what string) {
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is required under CI", what)
	}
	t.Skipf("%s not available: skipped (required under CI=true)", what)
}

// influxd is a real InfluxDB 1.8 on loopback.
type influxd struct {
	t    testing.TB
	bin  string
	conf string
	url  string
	cmd  *exec.Cmd
	done chan struct{}
}

func influxBin(t testing.TB) string {
	bin := os.Getenv("OFFSITE_TEST_INFLUXD")
	if bin == "" {
		wd, _ := os.Getwd()
		bin = filepath.Join(wd, "..", "bin", "influxd")
	}
	if _, err := os.Stat(bin); err != nil {
		needed(t, "influxd (OFFSITE_TEST_INFLUXD or bin/influxd; go install github.com/influxdata/influxdb/cmd/influxd@v1.8.10)")
	}
	return bin
}

func startInflux(t testing.TB) *influxd {
	t.Helper()
	bin := influxBin(t)
	dir := t.TempDir()
	port := freePort(t)
	conf := filepath.Join(dir, "influxdb.conf")
	require.NoError(t, os.WriteFile(conf, []byte(fmt.Sprintf(`reporting-disabled = true
bind-address = "127.0.0.1:%d"
[meta]
  dir = "%s/meta"
  logging-enabled = false
[data]
  dir = "%s/data"
  wal-dir = "%s/wal"
  query-log-enabled = false
  trace-logging-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:%d"
  auth-enabled = false
  log-enabled = false
  flux-enabled = true
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
[logging]
  level = "error"
`, freePort(t), dir, dir, dir, port)), 0o600))
	d := &influxd{t: t, bin: bin, conf: conf, url: fmt.Sprintf("http://127.0.0.1:%d", port)}
	d.start()
	resp, err := http.PostForm(d.url+"/query", url.Values{"q": {"CREATE DATABASE offsite"}})
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	t.Cleanup(d.kill)
	return d
}

func (d *influxd) start() {
	d.t.Helper()
	d.cmd = exec.Command(d.bin, "run", "-config", d.conf)
	d.cmd.Stdout, d.cmd.Stderr = io.Discard, io.Discard
	require.NoError(d.t, d.cmd.Start())
	d.done = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { _ = c.Wait(); close(done) }(d.cmd, d.done)
	// On a busy machine influxd 1.8 has been seen to take over a minute before its HTTP
	// listener opens.
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(d.url + "/ping"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 204 {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	d.t.Fatalf("influxd did not answer on %s", d.url)
}

// kill stops influxd with SIGKILL, as a crash would.
func (d *influxd) kill() {
	if d.cmd != nil && d.cmd.Process != nil {
		_ = d.cmd.Process.Kill()
		<-d.done
		d.cmd = nil
	}
}

func (d *influxd) store(t *testing.T) *ingest.InfluxStore {
	s := &ingest.InfluxStore{URL: d.url, Bucket: "offsite/autogen", SpoolDir: t.TempDir(), Logger: quietLogger(),
		FlushInterval: 50 * time.Millisecond, RetryInterval: 300 * time.Millisecond, WriteTimeout: 3 * time.Second}
	require.NoError(t, s.Initialize())
	t.Cleanup(s.Close)
	return s
}

// mosquitto is a real Mosquitto on loopback with a password file and a per-device ACL.
type mosquitto struct {
	t    testing.TB
	conf string
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

const gatewayUser, gatewayPass = "offsite-gateway", "gateway-secret"

func startMosquitto(t testing.TB, devs *fakeDevices) *mosquitto {
	t.Helper()
	if _, err := exec.LookPath("mosquitto"); err != nil {
		needed(t, "mosquitto (apt-get install mosquitto)")
	}
	if _, err := os.Stat("/usr/sbin/mosquitto"); err != nil {
		needed(t, "mosquitto")
	}
	dir := t.TempDir()
	pw := filepath.Join(dir, "passwd")
	lines := []string{gatewayUser + ":" + gatewayPass}
	devs.mu.Lock()
	for u, s := range devs.secrets {
		lines = append(lines, u+":"+s)
	}
	devs.mu.Unlock()
	require.NoError(t, os.WriteFile(pw, []byte(strings.Join(lines, "\n")+"\n"), 0o600))
	out, err := exec.Command("mosquitto_passwd", "-U", pw).CombinedOutput()
	require.NoError(t, err, string(out))
	acl := filepath.Join(dir, "acl")
	require.NoError(t, os.WriteFile(acl, []byte(fmt.Sprintf(`user %s
topic read offsite/#
topic readwrite $share/#

pattern write offsite/+/%%u/up
pattern write offsite/+/%%u/status
`, gatewayUser)), 0o600))
	port := freePort(t)
	conf := filepath.Join(dir, "mosquitto.conf")
	require.NoError(t, os.WriteFile(conf, []byte(fmt.Sprintf(`listener %d 127.0.0.1
allow_anonymous false
password_file %s
acl_file %s
persistence true
persistence_location %s/
autosave_interval 1
max_queued_messages 1000000
max_inflight_messages 0
log_dest file %s/mosquitto.log
%s`, port, pw, acl, dir, dir, runAs())), 0o600))
	m := &mosquitto{t: t, conf: conf, port: port}
	m.start()
	t.Cleanup(m.stop)
	return m
}

// runAs keeps mosquitto from dropping root to the "mosquitto" user, who cannot read the
// test's temporary files.
func runAs() string {
	if os.Geteuid() == 0 {
		return "user root\n"
	}
	return ""
}

func (m *mosquitto) url() string { return fmt.Sprintf("tcp://127.0.0.1:%d", m.port) }

func (m *mosquitto) start() {
	m.t.Helper()
	m.cmd = exec.Command("mosquitto", "-c", m.conf)
	m.cmd.Stdout, m.cmd.Stderr = io.Discard, io.Discard
	require.NoError(m.t, m.cmd.Start())
	m.done = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { _ = c.Wait(); close(done) }(m.cmd, m.done)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", m.port)); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	m.t.Fatalf("mosquitto did not listen on %d", m.port)
}

// stop ends mosquitto with SIGTERM, so it writes its persistence file.
func (m *mosquitto) stop() {
	if m.cmd != nil && m.cmd.Process != nil {
		_ = m.cmd.Process.Signal(os.Interrupt)
		select {
		case <-m.done:
		case <-time.After(10 * time.Second):
			_ = m.cmd.Process.Kill()
			<-m.done
		}
		m.cmd = nil
	}
}

// deviceClient is a paho client logged in as one sensor, with a persistent session that
// reconnects by itself.
func deviceClient(t testing.TB, brokerURL, username, secret string) (paho.Client, error) {
	return dial(t, brokerURL, "dev-"+username, username, secret, true)
}

// oneShotClient has a clean session and does not reconnect: for messages the broker refuses.
func oneShotClient(t testing.TB, brokerURL, clientID, username, secret string) (paho.Client, error) {
	return dial(t, brokerURL, clientID, username, secret, false)
}

func dial(t testing.TB, brokerURL, clientID, username, secret string, persistent bool) (paho.Client, error) {
	opts := paho.NewClientOptions().AddBroker(brokerURL).SetClientID(clientID).
		SetUsername(username).SetPassword(secret).SetCleanSession(!persistent).SetProtocolVersion(4).
		SetAutoReconnect(persistent).SetConnectRetry(false).SetMaxReconnectInterval(500 * time.Millisecond).
		SetConnectTimeout(5 * time.Second).SetWriteTimeout(5 * time.Second)
	c := paho.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, fmt.Errorf("connect timeout")
	}
	if tok.Error() != nil {
		return nil, tok.Error()
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c, nil
}

func publish(t testing.TB, c paho.Client, topic string, payload []byte) error {
	tok := c.Publish(topic, 1, false, payload)
	if !tok.WaitTimeout(20 * time.Second) {
		return fmt.Errorf("publish timeout")
	}
	return tok.Error()
}

func dustPayload(ts time.Time, pm10 float64) []byte {
	return []byte(fmt.Sprintf(`{"ts": %d, "sn": "YZ1", "data": {"pm25": 30.5, "pm10": %g, "tsp": 120, "noise": 61.2, "ws": 2.1, "wd": 180, "temp": 12.5, "hum": 60}}`,
		ts.UnixMilli(), pm10))
}

// elevatorFrame is the 16-byte frame of elevator-monitor.
func elevatorFrame(floor int8, speedCentiMS uint16) []byte {
	b := []byte{0xaa, 0x55, byte(floor), 0, 1, 1, byte(speedCentiMS >> 8), byte(speedCentiMS), 0, 40, 0b0000_0000, 0, 0, 215, 0, 1}
	return b
}

// waitFor polls cond until it holds or timeout passes, then fails with cond's last message.
func waitFor(t testing.TB, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, msg := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %s: %s", timeout, msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
