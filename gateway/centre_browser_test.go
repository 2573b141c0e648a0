package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// cbNode is one `offsite serve` process of the centre browser test.
type cbNode struct {
	id, dir, config, http, mqtt string
	adminPassword               string
	out                         *syncBuffer
	cmd                         *exec.Cmd
}

// cbFreeAddr returns a loopback address with a port that was free a moment ago.
func cbFreeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// cbConfig writes the configuration of a node: a centre (uplink "") or a site gateway
// reporting to the centre at uplink with secret.
func cbConfig(t *testing.T, root, id, centreURL, secret string) *cbNode {
	t.Helper()
	n := &cbNode{id: id, dir: filepath.Join(root, id), http: cbFreeAddr(t), mqtt: cbFreeAddr(t), out: &syncBuffer{}}
	require.NoError(t, os.MkdirAll(n.dir, 0o755))
	cfg := fmt.Sprintf(`gateway_id: %s
data_dir: %s
http:
  listen: %s
ingest:
  broker:
    listen: %s
streams:
  rtsp:
    listen: 127.0.0.1:0
  webrtc:
    udp_listen: 127.0.0.1:0
    tcp_listen: "off"
centre:
  offline_after: 20s
`, id, n.dir, n.http, n.mqtt)
	if centreURL != "" {
		cfg += fmt.Sprintf(`uplinks:
  - name: centre
    kind: centre
    url: %s
    secret: %q
    inventory_every: 1s
    heartbeat_every: 5s
    backoff_max: 2s
`, centreURL, secret)
	}
	n.config = filepath.Join(n.dir, "offsite.yml")
	require.NoError(t, os.WriteFile(n.config, []byte(cfg), 0o600))
	return n
}

var adminPasswordRE = regexp.MustCompile(`created user "admin" with password\s+(\S+)`)

// stop ends the node with SIGTERM and waits for it.
func (n *cbNode) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, n.cmd.Process.Signal(syscall.SIGTERM))
	done := make(chan struct{})
	go func() { _, _ = n.cmd.Process.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not stop within 30s of SIGTERM:\n%s", n.id, n.out.String())
	}
}

// start runs `offsite serve` and waits for /healthz and the admin password it prints once.
func (n *cbNode) start(t *testing.T) {
	t.Helper()
	cmd := exec.Command(offsiteBin, "serve", "--config", n.config)
	cmd.Stdout, cmd.Stderr = n.out, n.out
	require.NoError(t, cmd.Start())
	n.cmd = cmd
	t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if m := adminPasswordRE.FindStringSubmatch(n.out.String()); m != nil {
			n.adminPassword = m[1]
			if resp, err := http.Get("http://" + n.http + "/healthz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					return
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s did not come up in time:\n%s", n.id, n.out.String())
}

// cbGateway is the part of GET /api/v1/gateways the test waits on.
type cbGateway struct {
	ID, State   string
	Devices     int
	Refused     int
	LastRefusal string `json:"last_refusal"`
}

func cbGateways(t *testing.T, base, token string) map[string]cbGateway {
	t.Helper()
	code, body := get(t, base+"/api/v1/gateways", token)
	require.Equal(t, 200, code, string(body))
	var list []cbGateway
	require.NoError(t, json.Unmarshal(body, &list))
	m := map[string]cbGateway{}
	for _, g := range list {
		m[g.ID] = g
	}
	return m
}

// cbWaitGateway waits until the centre lists gateway id as wanted.
func cbWaitGateway(t *testing.T, base, token, id string, ok func(cbGateway) bool, logs ...*syncBuffer) cbGateway {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		if g, found := cbGateways(t, base, token)[id]; found && ok(g) {
			return g
		}
		time.Sleep(250 * time.Millisecond)
	}
	var out strings.Builder
	for _, l := range logs {
		out.WriteString(l.String())
	}
	t.Fatalf("the centre does not list gateway %s as expected: %+v\n%s", id, cbGateways(t, base, token)[id], out.String())
	return cbGateway{}
}

var secretRE = regexp.MustCompile(`shown only this once:\s+(\S+)`)

// TestCentreDashboardInBrowser runs a centre and two site gateways as real `offsite serve`
// processes, enrols the first with the CLI and the second through the dashboard, and drives
// Debian's headless Chromium through the centre's 站点网关 page and its devices page
// (api/dashboard/browsertest/centre.mjs): the site online with its device count and a
// refused request, the secret shown once with the uplink snippet — and working, since the
// second site reports with it — and every device labelled with its gateway, with the live
// state of a sensor that publishes a reading at its site; then the second site stops and
// shows 离线, and removing both leaves the page explaining enrolment.
func TestCentreDashboardInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three gateways and a browser")
	}
	harness := browserHarness(t)
	root := t.TempDir()
	artifacts := os.Getenv("OFFSITE_TEST_ARTIFACTS")
	if artifacts == "" {
		artifacts = filepath.Join(root, "artifacts")
	}
	artifacts = filepath.Join(artifacts, "screens")

	centre := cbConfig(t, root, "city-centre", "", "")
	centreURL := "http://" + centre.http
	const siteID, siteName = "wb-site-gw", "卫滨区美食城网关"
	code, stdout, stderr := run(t, nil, "gateways", "add", "--config", centre.config, "--id", siteID, "--name", siteName)
	require.Equal(t, 0, code, stderr)
	m := secretRE.FindStringSubmatch(stdout)
	require.NotNil(t, m, "gateways add prints the secret: %s", stdout)
	centre.start(t)

	site := cbConfig(t, root, siteID, centreURL, m[1])
	const sensorSecret = "s3cret-gas-wb-1"
	sheet := csvHeader +
		"wy-kitchen-1,卫滨区美食城后厨,92410702MA46C7N8XA,410703,新乡市卫滨区解放大道 8 号,35.30,113.85,市应急管理局,410703-YJ-RQ-001,gas-wb-1,sensor,可燃气体探测器 1,通用,NB-01,gas-detector,V2.0.1,SN1,2026-01-05,,,,,,,gas-wb-1," + sensorSecret + "\n" +
		"wy-kitchen-1,卫滨区美食城后厨,92410702MA46C7N8XA,410703,新乡市卫滨区解放大道 8 号,35.30,113.85,市应急管理局,410703-YJ-RQ-001,gas-wb-2,sensor,可燃气体探测器 2,通用,NB-01,gas-detector,V2.0.1,SN2,2026-01-05,,,,,,,gas-wb-2,s3cret-gas-wb-2\n" +
		"wy-kitchen-1,卫滨区美食城后厨,92410702MA46C7N8XA,410703,新乡市卫滨区解放大道 8 号,35.30,113.85,市应急管理局,410703-YJ-RQ-001,cam-wb-1,camera,后厨摄像机,Hikvision,DS-2CD,hikvision-ipc,V5.7.3,SN3,2026-01-05,127.0.0.1,9,admin,cam-pass,1,sub,,\n"
	sheetPath := filepath.Join(root, "site.csv")
	require.NoError(t, os.WriteFile(sheetPath, []byte(sheet), 0o644))
	code, _, stderr = run(t, nil, "devices", "import", "--config", site.config, sheetPath)
	require.Equal(t, 0, code, stderr)
	site.start(t)

	admin := login(t, centreURL, "admin", centre.adminPassword)
	cbWaitGateway(t, centreURL, admin, siteID, func(g cbGateway) bool { return g.State == "online" && g.Devices == 3 }, centre.out, site.out)

	// A request that claims to be the site but is not signed: refused and counted.
	req, _ := http.NewRequest("POST", centreURL+"/offsite/v1/events:batch", bytes.NewReader([]byte(`{"gateway_id":"`+siteID+`","events":[]}`)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Offsite-Gateway", siteID)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 401, resp.StatusCode)
	refused := cbWaitGateway(t, centreURL, admin, siteID, func(g cbGateway) bool { return g.Refused == 1 })
	require.NotEmpty(t, refused.LastRefusal)

	const secondID, secondName = "hq-site-gw", "红旗区政务服务中心网关"
	secretFile := filepath.Join(root, "second.secret")
	setup := map[string]any{
		"admin": map[string]string{"username": "admin", "password": centre.adminPassword},
		"site": map[string]any{"id": siteID, "name": siteName, "devices": 3, "refusal": refused.LastRefusal,
			"site_name": "卫滨区美食城后厨", "department": "市应急管理局", "camera": "cam-wb-1",
			"sensor": map[string]string{"id": "gas-wb-1", "site": "wy-kitchen-1", "topic": "offsite/wy-kitchen-1/gas-wb-1/up",
				"mqtt": "tcp://" + site.mqtt, "username": "gas-wb-1", "password": sensorSecret}},
		"enrol":  map[string]string{"id": secondID, "name": secondName, "secret_file": secretFile},
		"second": map[string]any{"id": secondID, "name": secondName, "devices": 1},
	}
	setupPath := filepath.Join(root, "setup.json")
	b, _ := json.Marshal(setup)
	require.NoError(t, os.WriteFile(setupPath, b, 0o600))

	browse := func(phase string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "node", "centre.mjs", centreURL, setupPath, phase)
		cmd.Dir = harness
		cmd.Env = append(os.Environ(), "OFFSITE_TEST_ARTIFACTS="+artifacts)
		res, err := cmd.CombinedOutput()
		t.Logf("browser, %s:\n%s", phase, res)
		if err != nil {
			t.Logf("centre output:\n%s", centre.out.String())
		}
		require.NoError(t, err, "browser phase %s failed", phase)
	}

	browse("enrol")
	secret, err := os.ReadFile(secretFile)
	require.NoError(t, err, "the browser wrote the secret it was shown")
	require.Equal(t, "unknown", cbGateways(t, centreURL, admin)[secondID].State, "enrolled through the page, not heard from yet")

	// The second site reports with the secret the page showed.
	second := cbConfig(t, root, secondID, centreURL, strings.TrimSpace(string(secret)))
	sheet2 := csvHeader +
		"hq-hall-1,红旗区政务服务中心,11410702MB1234567Q,410702,新乡市红旗区人民路 1 号,35.30,113.87,市政务服务和大数据管理局,410702-ZW-01,gas-hq-1,sensor,大厅可燃气体探测器,通用,NB-01,gas-detector,V2.0.1,SN9,2026-01-05,,,,,,,gas-hq-1,s3cret-gas-hq-1\n"
	sheet2Path := filepath.Join(root, "second.csv")
	require.NoError(t, os.WriteFile(sheet2Path, []byte(sheet2), 0o644))
	code, _, stderr = run(t, nil, "devices", "import", "--config", second.config, sheet2Path)
	require.Equal(t, 0, code, stderr)
	second.start(t)
	cbWaitGateway(t, centreURL, admin, secondID, func(g cbGateway) bool { return g.State == "online" && g.Devices == 1 }, centre.out, second.out)

	browse("verify")

	// The second site stops: after offline_after (20s here) the centre marks it offline.
	second.stop(t)
	cbWaitGateway(t, centreURL, admin, secondID, func(g cbGateway) bool { return g.State == "offline" }, centre.out)
	browse("finish")
	t.Logf("screenshots in %s", artifacts)
}
