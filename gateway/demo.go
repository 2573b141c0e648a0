package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/events/uplink"
	"github.com/offsite-gw/offsite/events/uplink/provincesim"
	profiles "github.com/offsite-gw/offsite/firmware-profiles"
	"github.com/offsite-gw/offsite/ingest/sim"
	"github.com/offsite-gw/offsite/streams/simcam"
)

// demoFile is what `offsite demo` writes to DIR/demo.json (docs/contracts.md §2, §7). It is also
// how a second run with the same --data finds the credentials it handed out before.
type demoFile struct {
	// HTTP, RTSP and MQTT are the centre's; Users are the centre's users.
	HTTP     string        `json:"http"`
	RTSP     string        `json:"rtsp,omitempty"`
	MQTT     string        `json:"mqtt,omitempty"`
	HJ212    string        `json:"hj212,omitempty"` // tcp://host:port of demo-gw-city's HJ 212 listener (§8)
	Centre   *demoNodeAddr `json:"centre,omitempty"`
	Gateways []demoGateway `json:"gateways"`
	Users    []demoUser    `json:"users"`
	Cameras  []demoCamera  `json:"cameras"`
	Sensors  []demoSensor  `json:"sensors"`
	Province *demoLink     `json:"province,omitempty"`
	// DevCameraControl takes a simulated camera off line and back (POST, {id} and
	// {action} = down|up), for the browser tests and for trying the wall's offline tiles.
	DevCameraControl string `json:"dev_camera_control,omitempty"`
}

type demoNodeAddr struct {
	ID   string `json:"id,omitempty"`
	HTTP string `json:"http"`
}

// demoGateway is one site gateway of the demo city.
type demoGateway struct {
	ID    string     `json:"id"`
	Name  string     `json:"name"`
	HTTP  string     `json:"http"`
	RTSP  string     `json:"rtsp"`
	MQTT  string     `json:"mqtt"`
	Users []demoUser `json:"users"`
	// Secret is what this gateway signs its batches and inventory to the centre with.
	Secret string   `json:"secret"`
	Sites  []string `json:"sites"`
}

type demoUser struct {
	Username    string   `json:"username"`
	Password    string   `json:"password"`
	Role        string   `json:"role"`
	Departments []string `json:"departments,omitempty"`
}

type demoCamera struct {
	ID      string `json:"id"`
	Site    string `json:"site"`
	Name    string `json:"name"`
	Profile string `json:"profile"`
	Gateway string `json:"gateway,omitempty"`
	WHEP    string `json:"whep"`
	RTSP    string `json:"rtsp,omitempty"`
	// Scenario names what the simulated camera does on purpose: "reboots" (drops off every
	// 3 minutes for 20 s), "staff_absent" (the clerk leaves), "goes_black" (covered lens).
	Scenario string `json:"scenario,omitempty"`
}

// demoCameraScenario maps a simulated camera clip to what it does (demoCamera.Scenario).
var demoCameraScenario = map[string]string{"back-office": "reboots", "counter-empties": "staff_absent", "goes-black": "goes_black"}

type demoSensor struct {
	ID           string   `json:"id"`
	Site         string   `json:"site"`
	Name         string   `json:"name"`
	Profile      string   `json:"profile"`
	Gateway      string   `json:"gateway,omitempty"`
	MQTT         string   `json:"mqtt,omitempty"`
	Topic        string   `json:"topic"`
	MQTTUsername string   `json:"mqtt_username"`
	MQTTPassword string   `json:"mqtt_password"`
	Metrics      []string `json:"metrics"`
	// HJ 212 stations (protocol "hj212") have an MN and PW instead of MQTT credentials.
	Protocol string `json:"protocol,omitempty"`
	MN       string `json:"mn,omitempty"`
	PW       string `json:"pw,omitempty"`
}

type demoLink struct {
	URL    string `json:"url"`
	Alg    string `json:"alg"`
	Secret string `json:"secret"`
}

// The demo city: a centre where officers, the monitoring room and maintainers work, and two
// site gateways, one at the service hall and one serving the construction site and the market.
const demoCentreID = "demo-centre"

var demoGatewayPlan = []struct{ id, name string }{
	{"demo-gw-hall", "红旗区政务服务中心 站点网关"},
	{"demo-gw-city", "红旗区工地与农贸市场 站点网关"},
}

// demoSiteGateway says which site gateway serves a demo site.
var demoSiteGateway = map[string]string{
	"hq-service-hall":    "demo-gw-hall",
	"hq-construction-07": "demo-gw-city",
	"hq-market-02":       "demo-gw-city",
	demoHJ212Site.ID:     "demo-gw-city",
}

// demoSilentSensor goes silent now and then (sensor.silent, presence); tests publish their own
// readings for it without the simulator overwriting them.
const demoSilentSensor = "dust-07-a"

// Users of the centre and of every site gateway.
var (
	demoCentreUsers = []demoUser{
		{Username: "admin", Role: "admin"},
		{Username: "officer", Role: "officer", Departments: []string{"市住房和城乡建设局"}},
		{Username: "officer-market", Role: "officer", Departments: []string{"市市场监督管理局"}},
		{Username: "officer-hall", Role: "officer", Departments: []string{"市政务服务和大数据管理局"}},
		{Username: "officer-eco", Role: "officer", Departments: []string{"市生态环境局"}},
		{Username: "monitor", Role: "viewer"},
		{Username: "maintainer", Role: "maintainer"},
		{Username: "analytics", Role: "service"},
	}
	demoSiteUsers = []demoUser{
		{Username: "admin", Role: "admin"},
		{Username: "analytics", Role: "service"},
	}
)

func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "node" {
		return cmdDemoNode(ctx, args[1:], stderr)
	}
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data", "./demo-data", "directory for the demo's databases, keys and demo.json; reused on the next run")
	httpAddr := fs.String("http", "127.0.0.1:8080", "the centre's HTTP listen address; the site gateways take the next ports (port 0: any free port)")
	provinceURL := fs.String("province-url", "", "deliver the centre's province uplink here instead of the local receiver")
	rtspAddr := fs.String("rtsp", "127.0.0.1:8554", "the centre's RTSP re-serve address; site gateways take the next ports")
	webrtcAddr := fs.String("webrtc", "127.0.0.1:8189", "the centre's WebRTC (ICE) UDP and TCP address; site gateways take the next ports")
	mqttAddr := fs.String("mqtt", "127.0.0.1:1883", "the centre's MQTT broker address; site gateways take the next ports")
	hj212Addr := fs.String("hj212", "127.0.0.1:9212", "HJ 212-2017 listener of the site gateway that serves the wastewater treatment plant")
	worker := fs.String("analytics", "auto", "video analytics worker binary: auto (offsite-analytics beside this binary or on PATH), a path, or off")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("demo takes no arguments, got %q", fs.Args())}
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := os.MkdirAll(*dataDir, 0o750); err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	demoPath := filepath.Join(*dataDir, "demo.json")
	prev := readDemoFile(demoPath, logger)
	city := &demoCity{exe: exe, dir: *dataDir, logger: logger, out: stderr, prev: prev}

	// The province link: a local receiver that checks signatures and de-duplicates, unless
	// --province-url names a real (or another) receiver. Its secret and address survive
	// restarts.
	province := demoLink{Alg: uplink.AlgSM3, Secret: devices.GenerateSecret() + devices.GenerateSecret()}
	if prev.Province != nil && prev.Province.Secret != "" {
		province.Secret = prev.Province.Secret
	}
	if *provinceURL != "" {
		province.URL = strings.TrimRight(*provinceURL, "/")
	} else {
		recv := &provincesim.Handler{Secret: []byte(province.Secret), Dir: filepath.Join(*dataDir, "province-receiver"), Logger: logger.With("component", "province-receiver")}
		if err := recv.Initialize(); err != nil {
			return fmt.Errorf("province receiver: %w", err)
		}
		defer recv.Close()
		srv := &provincesim.Server{Addr: reuseAddr(prev.Province, "127.0.0.1:0"), Handler: recv}
		if err := srv.Start(); err != nil && srv.Addr != "127.0.0.1:0" {
			srv = &provincesim.Server{Addr: "127.0.0.1:0", Handler: recv}
			err = srv.Start()
			if err != nil {
				return fmt.Errorf("province receiver: %w", err)
			}
		} else if err != nil {
			return fmt.Errorf("province receiver: %w", err)
		}
		defer srv.Stop()
		province.URL = srv.URL()
	}

	// Simulated cameras: short H.264 clips with SPS/PPS only in the SDP, like many real
	// cameras; one reboots every few minutes, one loses its clerk, one goes black.
	cams := &simcam.Server{Listen: "127.0.0.1:0", Username: "admin", Password: devices.GenerateSecret(),
		Cameras: append(simcam.DemoCameras(), simcam.AnalyticsDemoCameras()...), Logger: logger.With("component", "simcam")}
	if err := cams.Initialize(); err != nil {
		return fmt.Errorf("simulated cameras: %w", err)
	}
	defer cams.Close()
	camURLs := map[string]string{}
	for _, d := range demoDevices {
		if d.sim != "" {
			camURLs[d.sim] = cams.URL(d.sim)
		}
	}

	// The three nodes: the centre first (the sites deliver to it), then the site gateways.
	addrs := func(i int) nodeListen {
		return nodeListen{HTTP: shiftPort(*httpAddr, i), RTSP: shiftPort(*rtspAddr, i), MQTT: shiftPort(*mqttAddr, i), WebRTC: shiftPort(*webrtcAddr, i)}
	}
	centreSpec := nodeSpec{Role: "centre", GatewayID: demoCentreID, DataDir: filepath.Join(*dataDir, "centre"), Listen: addrs(0),
		Users:   withPasswords(demoCentreUsers, prev.Users),
		Uplinks: []uplink.Config{{Name: "province", BaseURL: province.URL, Alg: province.Alg, Secret: province.Secret}}}
	var siteSpecs []nodeSpec
	for i, gp := range demoGatewayPlan {
		pg := prev.gateway(gp.id)
		secret := pg.Secret
		if secret == "" {
			secret = devices.GenerateSecret() + devices.GenerateSecret()
		}
		var sites []string
		for _, s := range append(demoSites, demoHJ212Site) {
			if demoSiteGateway[s.ID] == gp.id {
				sites = append(sites, s.ID)
			}
		}
		hj212 := ""
		if demoSiteGateway[demoHJ212Site.ID] == gp.id {
			hj212 = *hj212Addr
		}
		centreSpec.Enrol = append(centreSpec.Enrol, nodeEnrolment{ID: gp.id, Name: gp.name, Secret: secret})
		siteSpecs = append(siteSpecs, nodeSpec{Role: "site", GatewayID: gp.id, Name: gp.name, DataDir: filepath.Join(*dataDir, gp.id),
			Listen: addrs(i + 1), Users: withPasswords(demoSiteUsers, pg.Users), Sites: sites, Sensors: prev.Sensors,
			Cameras:      nodeCameras{URLs: camURLs, Username: cams.Username, Password: cams.Password},
			CentreSecret: secret, HJ212: hj212})
	}

	centre, err := city.start(ctx, centreSpec)
	if err != nil {
		city.stop()
		return err
	}
	centreURL := "http://" + centre.ready.HTTP
	var sites []*demoNode
	for i := range siteSpecs {
		siteSpecs[i].Uplinks = []uplink.Config{{Name: "centre", Kind: uplink.KindCentre, BaseURL: centreURL, Secret: siteSpecs[i].CentreSecret,
			HeartbeatEvery: 10 * time.Second, InventoryEvery: 2 * time.Second}}
		n, err := city.start(ctx, siteSpecs[i])
		if err != nil {
			city.stop()
			return err
		}
		sites = append(sites, n)
	}

	df := demoFile{HTTP: centreURL, RTSP: "rtsp://" + centre.ready.RTSP, MQTT: "tcp://" + centre.ready.MQTT,
		Centre: &demoNodeAddr{ID: demoCentreID, HTTP: centreURL}, Users: centre.ready.Users, Province: &province}
	reg, err := profiles.NewRegistry(true, "")
	if err != nil {
		city.stop()
		return err
	}
	var fleets []*sim.Fleet
	var stopWorkers []func()
	defer func() {
		for _, stop := range stopWorkers {
			stop() // first, so they release their leases while the gateways still answer
		}
		for _, f := range fleets {
			f.Close()
		}
		city.stop()
	}()
	for _, n := range sites {
		base := "http://" + n.ready.HTTP
		gw := demoGateway{ID: n.spec.GatewayID, Name: n.spec.Name, HTTP: base, RTSP: "rtsp://" + n.ready.RTSP, MQTT: "tcp://" + n.ready.MQTT,
			Users: n.ready.Users, Secret: n.spec.CentreSecret, Sites: n.spec.Sites}
		df.Gateways = append(df.Gateways, gw)
		fleet := &sim.Fleet{BrokerURL: gw.MQTT, Interval: 5 * time.Second, Logger: logger.With("component", "sim-sensors", "gateway", gw.ID)}
		if n.ready.HJ212 != "" {
			df.HJ212 = "tcp://" + n.ready.HJ212
			stop, err := startHJ212Demo(n.ready, logger)
			if err != nil {
				return fmt.Errorf("simulated HJ 212 station: %w", err)
			}
			defer stop()
		}
		for _, sn := range n.ready.Sensors {
			sn.Gateway = gw.ID
			if sn.Protocol == "hj212" {
				df.Sensors = append(df.Sensors, sn) // simulated over HJ 212 (startHJ212Demo)
				continue
			}
			sn.MQTT = gw.MQTT
			df.Sensors = append(df.Sensors, sn)
			p, _ := reg.Get(sn.Profile)
			fleet.Sensors = append(fleet.Sensors, sim.Sensor{Device: sn.ID, Site: sn.Site, Profile: p,
				Username: sn.MQTTUsername, Password: sn.MQTTPassword, Silent: sn.ID == demoSilentSensor})
		}
		if len(fleet.Sensors) > 0 {
			if err := fleet.Initialize(); err != nil {
				return fmt.Errorf("simulated sensors of %s: %w", gw.ID, err)
			}
			fleets = append(fleets, fleet)
		}
		for _, c := range n.ready.Cameras {
			c.Gateway = gw.ID
			// Watched at the centre, which pulls it from the site once (cascade).
			c.WHEP = centreURL + "/api/v1/cameras/" + c.ID + "/whep"
			df.Cameras = append(df.Cameras, c)
		}
		if len(n.ready.Cameras) > 0 {
			stop, err := startWorker(*worker, base, "demo-worker-"+strings.TrimPrefix(gw.ID, "demo-gw-"), gw.Users, logger, stderr)
			if err != nil {
				logger.Warn("video analytics worker not started", "gateway", gw.ID, "reason", err)
			} else if stop != nil {
				stopWorkers = append(stopWorkers, stop)
			}
		}
	}
	if err := waitForInventories(ctx, centreURL, df.Users, len(sites)); err != nil {
		logger.Warn("the centre has not heard from every site gateway yet", "err", err)
	}
	if err := setSiteBaseURLs(ctx, centreURL, df.Users, df.Gateways); err != nil {
		logger.Warn("the centre does not know the site gateways' addresses: their evidence cannot be fetched", "err", err)
	}
	if ctl, err := startDevControl(ctx, cams, city, logger); err != nil {
		logger.Warn("camera control for tests not started", "err", err)
	} else {
		df.DevCameraControl = ctl
	}
	if err := writeDemoFile(demoPath, df); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nOffsite demo city is running: a centre and %d site gateways.\n\n  Centre:    %s/   (officers, monitoring room, maintainers)\n  API:       %s/api/v1/openapi.json\n", len(sites), centreURL, centreURL)
	for _, u := range df.Users {
		fmt.Fprintf(stdout, "  Login:     %-15s %s  (%s)\n", u.Username, u.Password, u.Role)
	}
	for _, gw := range df.Gateways {
		fmt.Fprintf(stdout, "  Site:      %s  %s  (%s)\n", gw.HTTP, gw.Name, gw.ID)
	}
	fmt.Fprintf(stdout, "  Details:   %s\n\nPress Ctrl-C to stop; run again with the same --data to resume.\n\n", demoPath)
	<-ctx.Done()
	logger.Info("stopping demo")
	return nil
}

// demoAdminToken logs in to the centre as the demo's admin.
func demoAdminToken(centre string, users []demoUser) (string, error) {
	pw := ""
	for _, u := range users {
		if u.Username == "admin" {
			pw = u.Password
		}
	}
	body, _ := json.Marshal(map[string]string{"username": "admin", "password": pw})
	resp, err := http.Post(centre+"/api/v1/auth/login", "application/json", strings.NewReader(string(body)))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var lr struct{ Token string }
	if err := json.NewDecoder(resp.Body).Decode(&lr); err != nil {
		return "", err
	}
	if lr.Token == "" {
		return "", fmt.Errorf("demo admin login at %s: %s", centre, resp.Status)
	}
	return lr.Token, nil
}

// waitForInventories waits until the centre holds an inventory of every site gateway, so the
// demo is ready when it says so (at most a minute).
func waitForInventories(ctx context.Context, centre string, users []demoUser, n int) error {
	token, err := demoAdminToken(centre, users)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(time.Minute)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, centre+"/api/v1/gateways", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			var gws []struct {
				InventoryRevision int64 `json:"inventory_revision"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&gws)
			resp.Body.Close()
			have := 0
			for _, g := range gws {
				if g.InventoryRevision > 0 {
					have++
				}
			}
			if have >= n {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return errors.New("no inventory from every site gateway after a minute")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// setSiteBaseURLs tells the centre where each site gateway's API is (its enrolment's base
// URL), so that it can fetch their evidence files (docs/contracts.md §9). The sites start
// after the centre, on ports not known before, hence an update after the start.
func setSiteBaseURLs(ctx context.Context, centre string, users []demoUser, gws []demoGateway) error {
	token, err := demoAdminToken(centre, users)
	if err != nil {
		return err
	}
	for _, gw := range gws {
		b, _ := json.Marshal(map[string]string{"name": gw.Name, "base_url": gw.HTTP})
		req, _ := http.NewRequestWithContext(ctx, http.MethodPut, centre+"/api/v1/gateways/"+gw.ID, strings.NewReader(string(b)))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("set base URL of %s: status %d", gw.ID, resp.StatusCode)
		}
	}
	return nil
}

func (df demoFile) gateway(id string) demoGateway {
	for _, g := range df.Gateways {
		if g.ID == id {
			return g
		}
	}
	return demoGateway{}
}

// withPasswords gives each wanted user the password it had in the last run, if any.
func withPasswords(wanted, prev []demoUser) []demoUser {
	pw := map[string]string{}
	for _, u := range prev {
		pw[u.Username] = u.Password
	}
	out := make([]demoUser, len(wanted))
	for i, u := range wanted {
		u.Password = pw[u.Username]
		out[i] = u
	}
	return out
}

// shiftPort returns addr with its port moved up by i (port 0 stays 0: any free port).
func shiftPort(addr string, i int) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	p, err := strconv.Atoi(port)
	if err != nil || p == 0 {
		return addr
	}
	return net.JoinHostPort(host, strconv.Itoa(p+i))
}

func reuseAddr(prev *demoLink, dflt string) string {
	if prev == nil || prev.URL == "" {
		return dflt
	}
	host := strings.TrimPrefix(prev.URL, "http://")
	if h, _, err := net.SplitHostPort(host); err == nil && h == "127.0.0.1" {
		return host
	}
	return dflt
}

// demoCity runs the demo's nodes as child processes (`offsite demo node`), restarts one that
// dies (after kill -9, say), and stops them all on Ctrl-C.
type demoCity struct {
	exe    string
	dir    string
	logger *slog.Logger
	out    io.Writer
	prev   demoFile

	mu      sync.Mutex
	nodes   []*demoNode
	closing bool
}

type demoNode struct {
	spec  nodeSpec
	ready nodeReady
	mu    sync.Mutex
	cmd   *exec.Cmd
	done  chan struct{}
	held  chan struct{} // set while a test keeps the node down (demo_nodes_dev.go)
}

// start runs one node and waits until it serves. The node's concrete addresses are kept in
// its spec, so a restart listens where it did before.
func (c *demoCity) start(ctx context.Context, spec nodeSpec) (*demoNode, error) {
	n := &demoNode{spec: spec}
	if err := c.launch(ctx, n); err != nil {
		return nil, err
	}
	// A restart listens where the node did and keeps the credentials it handed out.
	n.spec.Listen = nodeListen{HTTP: n.ready.HTTP, RTSP: n.ready.RTSP, MQTT: n.ready.MQTT, WebRTC: n.ready.WebRTC}
	n.spec.Users, n.spec.Sensors = n.ready.Users, n.ready.Sensors
	if n.ready.HJ212 != "" {
		n.spec.HJ212 = n.ready.HJ212
	}
	c.mu.Lock()
	c.nodes = append(c.nodes, n)
	c.mu.Unlock()
	go c.watch(ctx, n)
	return n, nil
}

func (c *demoCity) launch(ctx context.Context, n *demoNode) error {
	if err := os.MkdirAll(n.spec.DataDir, 0o750); err != nil {
		return err
	}
	specPath := filepath.Join(n.spec.DataDir, "node.json")
	readyPath := filepath.Join(n.spec.DataDir, "ready.json")
	_ = os.Remove(readyPath)
	b, _ := json.MarshalIndent(n.spec, "", "  ")
	if err := os.WriteFile(specPath, b, 0o600); err != nil {
		return err
	}
	argv := []string{c.exe, "demo", "node", "--spec", specPath}
	// OFFSITE_DEMO_EXEC prefixes the node command, e.g. "qemu-aarch64-static -cpu max" to run
	// the demo city of an arm64 build under user-mode emulation without binfmt_misc.
	if pre := strings.Fields(os.Getenv("OFFSITE_DEMO_EXEC")); len(pre) > 0 {
		argv = append(pre, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = c.out, c.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", n.spec.GatewayID, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	n.mu.Lock()
	n.cmd, n.done = cmd, done
	n.mu.Unlock()
	c.logger.Info("demo node started", "node", n.spec.GatewayID, "role", n.spec.Role, "pid", cmd.Process.Pid)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if b, err := os.ReadFile(readyPath); err == nil {
			var r nodeReady
			if json.Unmarshal(b, &r) == nil && r.HTTP != "" {
				n.ready = r
				return nil
			}
		}
		select {
		case <-done:
			return fmt.Errorf("demo node %s exited before it was ready (see its log above)", n.spec.GatewayID)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			return fmt.Errorf("demo node %s not ready after 2 minutes", n.spec.GatewayID)
		}
	}
}

// watch restarts a node that exits while the demo runs.
func (c *demoCity) watch(ctx context.Context, n *demoNode) {
	for restarts := 0; ; restarts++ {
		n.mu.Lock()
		done := n.done
		n.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return
		}
		c.mu.Lock()
		closing := c.closing
		c.mu.Unlock()
		if closing || ctx.Err() != nil {
			return
		}
		n.mu.Lock()
		held := n.held
		n.mu.Unlock()
		if held != nil { // kept down by POST /_dev/nodes/{id}/down until /up
			select {
			case <-held:
			case <-ctx.Done():
				return
			}
		}
		c.logger.Warn("demo node exited; restarting it", "node", n.spec.GatewayID)
		time.Sleep(time.Second)
		if err := c.launch(ctx, n); err != nil {
			c.logger.Error("demo node not restarted", "node", n.spec.GatewayID, "err", err)
			return
		}
	}
}

// stop ends every node with SIGTERM, sites first, and waits for them.
func (c *demoCity) stop() {
	c.mu.Lock()
	c.closing = true
	nodes := append([]*demoNode(nil), c.nodes...)
	c.mu.Unlock()
	for i := len(nodes) - 1; i >= 0; i-- {
		n := nodes[i]
		n.mu.Lock()
		cmd, done := n.cmd, n.done
		n.mu.Unlock()
		if cmd == nil {
			continue
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			c.logger.Error("demo node did not stop in 30 s; killing it", "node", n.spec.GatewayID)
			_ = cmd.Process.Kill()
			<-done
		}
	}
}

// sessions sums the nodes' open WHEP sessions (for the browser tests).
func (c *demoCity) sessions() int {
	c.mu.Lock()
	nodes := append([]*demoNode(nil), c.nodes...)
	c.mu.Unlock()
	total := 0
	for _, n := range nodes {
		if n.ready.Dev == "" {
			continue
		}
		resp, err := http.Get(n.ready.Dev + "/_dev/sessions")
		if err != nil {
			continue
		}
		var v struct {
			WHEPSessions int `json:"whep_sessions"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
		total += v.WHEPSessions
	}
	return total
}

func displayAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if host == "" || host == "::" || host == "0.0.0.0" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func readDemoFile(path string, logger *slog.Logger) demoFile {
	var df demoFile
	b, err := os.ReadFile(path)
	if err != nil {
		return df
	}
	if err := json.Unmarshal(b, &df); err != nil {
		logger.Warn("ignoring unreadable demo.json; new credentials will be issued", "file", path, "err", err)
		return demoFile{}
	}
	return df
}

func writeDemoFile(path string, df demoFile) error {
	b, err := json.MarshalIndent(df, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

var errNodeUsage = errors.New("usage: offsite demo node --spec FILE (started by offsite demo)")
