package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/offsite-gw/offsite/api/auth"
	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/events/uplink"
	"github.com/offsite-gw/offsite/gateway/config"
	"github.com/offsite-gw/offsite/internal/errs"
)

// nodeSpec is what `offsite demo` hands one node of the demo city (DIR/NODE/node.json).
type nodeSpec struct {
	Role      string          `json:"role"` // centre | site
	GatewayID string          `json:"gateway_id"`
	Name      string          `json:"name,omitempty"`
	DataDir   string          `json:"data_dir"`
	Listen    nodeListen      `json:"listen"`
	Uplinks   []uplink.Config `json:"uplinks"`
	Users     []demoUser      `json:"users"`
	// Enrol: the site gateways a centre has below it, with the secrets they sign with.
	Enrol []nodeEnrolment `json:"enrol,omitempty"`
	// Sites: the demo sites (and their devices) a site gateway serves.
	Sites        []string     `json:"sites,omitempty"`
	Sensors      []demoSensor `json:"sensors,omitempty"` // of the last run: their MQTT secrets
	Cameras      nodeCameras  `json:"cameras"`
	CentreSecret string       `json:"centre_secret,omitempty"`
	// HJ212 is the HJ 212 listen address of the site gateway that serves the plant.
	HJ212 string `json:"hj212,omitempty"`
}

type nodeListen struct {
	HTTP   string `json:"http"`
	RTSP   string `json:"rtsp"`
	MQTT   string `json:"mqtt"`
	WebRTC string `json:"webrtc"`
}

type nodeEnrolment struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Secret string `json:"secret"`
}

// nodeCameras are the simulated cameras' URLs by path, and their login.
type nodeCameras struct {
	URLs     map[string]string `json:"urls"`
	Username string            `json:"username"`
	Password string            `json:"password"`
}

// nodeReady is what a node writes (DIR/NODE/ready.json) once it serves.
type nodeReady struct {
	PID     int          `json:"pid"`
	HTTP    string       `json:"http"`
	RTSP    string       `json:"rtsp"`
	MQTT    string       `json:"mqtt"`
	WebRTC  string       `json:"webrtc"`
	HJ212   string       `json:"hj212,omitempty"`
	Dev     string       `json:"dev,omitempty"`
	Users   []demoUser   `json:"users"`
	Cameras []demoCamera `json:"cameras"`
	Sensors []demoSensor `json:"sensors"`
}

// cmdDemoNode runs one node of the demo city until SIGTERM: `offsite serve` with the demo's
// sites, devices, users and enrolments seeded.
func cmdDemoNode(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo node", flag.ContinueOnError)
	fs.SetOutput(stderr)
	specPath := fs.String("spec", "", "node.json written by offsite demo")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *specPath == "" {
		return usageError{errNodeUsage.Error()}
	}
	b, err := os.ReadFile(*specPath)
	if err != nil {
		return err
	}
	var spec nodeSpec
	if err := json.Unmarshal(b, &spec); err != nil {
		return fmt.Errorf("%s: %w", *specPath, err)
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", spec.GatewayID)
	cfg := config.Default()
	cfg.GatewayID = spec.GatewayID
	cfg.DataDir = spec.DataDir
	cfg.HTTP.Listen = spec.Listen.HTTP
	cfg.Ingest.Broker.Listen = spec.Listen.MQTT
	cfg.Streams.RTSP.Listen = spec.Listen.RTSP
	cfg.Streams.WebRTC.UDPListen = spec.Listen.WebRTC
	cfg.Streams.WebRTC.TCPListen = spec.Listen.WebRTC
	cfg.Uplinks = spec.Uplinks
	// The demo shows a silent site within a minute rather than two.
	cfg.Centre.OfflineAfter = time.Minute
	if spec.HJ212 != "" {
		configureHJ212Demo(&cfg, spec.HJ212)
	}
	if spec.Role != "centre" {
		configureClipsDemo(&cfg)
	}
	if err := os.MkdirAll(spec.DataDir, 0o750); err != nil {
		return err
	}
	g, err := openGateway(ctx, cfg, logger, nil)
	if err != nil {
		return err
	}
	ready, err := seedDemo(ctx, g, spec)
	if err != nil {
		g.stop()
		return fmt.Errorf("demo fixtures of %s: %w", spec.GatewayID, err)
	}
	if err := g.video.sync(ctx); err != nil {
		g.stop()
		return err
	}
	if err := g.start(); err != nil {
		g.stop()
		return err
	}
	ready.PID = os.Getpid()
	ready.HTTP = displayAddr(g.api.Addr())
	ready.RTSP = displayAddr(g.video.reserve.Addr())
	ready.MQTT = displayAddr(g.sensors.broker.Addr())
	ready.WebRTC = spec.Listen.WebRTC
	if addr := g.sensors.hj212Addr(); addr != "" {
		ready.HJ212 = displayAddr(addr)
	}
	for i := range ready.Cameras {
		ready.Cameras[i].RTSP = g.video.rtspURL(ready.Cameras[i].ID)
	}
	if dev, err := startNodeDev(g); err == nil {
		ready.Dev = dev
	}
	rb, _ := json.MarshalIndent(ready, "", "  ")
	readyPath := filepath.Join(spec.DataDir, "ready.json")
	if err := os.WriteFile(readyPath+".tmp", rb, 0o600); err != nil {
		g.stop()
		return err
	}
	if err := os.Rename(readyPath+".tmp", readyPath); err != nil {
		g.stop()
		return err
	}
	logger.Info("demo node serving", "role", spec.Role, "http", ready.HTTP)
	<-ctx.Done()
	return g.stop()
}

// startNodeDev serves the number of open WHEP sessions on a loopback port (demo only).
func startNodeDev(g *gateway) (string, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_dev/sessions", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]int{"whep_sessions": g.video.whep.Sessions()})
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln) //nolint:errcheck
	g.onStop("demo dev endpoint", func(ctx context.Context) error { return srv.Shutdown(ctx) })
	return "http://" + ln.Addr().String(), nil
}

// The demo's supervised objects: a service hall, a construction site and a farmers' market
// with a cold store and restaurant kitchens, all in 红旗区, 新乡市 (410702).
var demoSites = []devices.Site{
	{ID: "hq-service-hall", Name: "红旗区政务服务中心", USCC: "124107000053845121", RegionCode: "410702",
		Address: "河南省新乡市红旗区人民东路 100 号", Department: "市政务服务和大数据管理局", SupervisionItems: []string{"410702-ZWFW-001"}},
	{ID: "hq-construction-07", Name: "新乡市红旗区 7 号地块建设工地", USCC: "91410702MA45RJ0T7G", RegionCode: "410702",
		Address: "河南省新乡市红旗区向阳路与新二街交叉口", Department: "市住房和城乡建设局", SupervisionItems: []string{"410702-ZJ-YC-003", "410702-ZJ-ZS-004"}},
	{ID: "hq-market-02", Name: "红旗区农贸市场（冷链与餐饮）", USCC: "91410702MA9FQ2K35U", RegionCode: "410702",
		Address: "河南省新乡市红旗区健康路 66 号", Department: "市市场监督管理局", SupervisionItems: []string{"410702-SC-LL-011", "410702-SC-CY-012"}},
}

type demoDeviceSpec struct {
	id, site, name, profile, vendor, model, firmware string
	kind                                             devices.Kind
	sim                                              string // simulated camera path
}

var demoDevices = []demoDeviceSpec{
	{"cam-hall-counter", "hq-service-hall", "服务窗口 1 号", "hikvision-ipc", "Hikvision", "DS-2CD3T47WDV3-L", "V5.7.3", devices.KindCamera, "counter-empties"},
	{"cam-hall-queue", "hq-service-hall", "取号排队区", "dahua-ipc", "Dahua", "DH-IPC-HFW2433M", "V2.820.0000000.25.R", devices.KindCamera, "waiting-area"},
	{"cam-hall-entrance", "hq-service-hall", "大厅入口", "hikvision-ipc", "Hikvision", "DS-2CD2T47G2-L", "V5.7.3", devices.KindCamera, "hall-entrance"},
	{"cam-site-gate", "hq-construction-07", "工地大门与冲洗平台", "hikvision-ipc", "Hikvision", "DS-2CD2T47G2-L", "V5.7.3", devices.KindCamera, "back-office"},
	{"cam-market-kitchen", "hq-market-02", "明厨亮灶 后厨", "generic-rtsp", "Uniview", "IPC2124LE", "1.0", devices.KindCamera, "service-window"},
	{"cam-market-coldstore", "hq-market-02", "冷库门口", "dahua-ipc", "Dahua", "DH-IPC-HFW2433M", "V2.820.0000000.25.R", devices.KindCamera, "goes-black"},

	{"dust-07-a", "hq-construction-07", "扬尘监测 东侧", "dust-noise-monitor", "Sailhero", "SH-YC01", "V2.2.4", devices.KindSensor, ""},
	{"dust-07-b", "hq-construction-07", "扬尘监测 西侧", "dust-noise-monitor", "Sailhero", "SH-YC01", "V2.2.4", devices.KindSensor, ""},
	{"dust-07-c", "hq-construction-07", "扬尘监测 塔吊", "dust-noise-monitor", "Sailhero", "SH-YC01", "V2.0.3", devices.KindSensor, ""},
	{"elevator-07-1", "hq-construction-07", "施工升降机 1 号", "elevator-monitor", "Inovance", "EMU-100", "2.4.1", devices.KindSensor, ""},
	{"cold-02-a", "hq-market-02", "冷库 A", "coldchain-logger", "Elitech", "RCW-800", "2.1.0", devices.KindSensor, ""},
	{"cold-02-b", "hq-market-02", "冷库 B", "coldchain-logger", "Elitech", "RCW-800", "2.1.0", devices.KindSensor, ""},
	{"cold-02-truck", "hq-market-02", "冷藏车 豫G·C1234", "coldchain-logger", "Elitech", "RCW-800", "2.1.0", devices.KindSensor, ""},
	{"gas-02-kitchen", "hq-market-02", "后厨 可燃气体", "gas-detector", "Hanwei", "BS01", "V2.0.3", devices.KindSensor, ""},
	{"gas-02-stall", "hq-market-02", "熟食档口 可燃气体", "gas-detector", "Hanwei", "BS01", "V2.0.3", devices.KindSensor, ""},
	{"fume-02-a", "hq-market-02", "油烟监测 1 号店", "kitchen-fume-monitor", "Sdl", "SDL-YY01", "V4.1.2", devices.KindSensor, ""},
	{"fume-02-b", "hq-market-02", "油烟监测 2 号店", "kitchen-fume-monitor", "Sdl", "SDL-YY01", "V4.1.2", devices.KindSensor, ""},
	{"env-hall-1", "hq-service-hall", "大厅 温湿度与人流", "generic-json", "Offsite", "generic", "1.0", devices.KindSensor, ""},
	{"elevator-hall-1", "hq-service-hall", "大厅 客梯 1 号", "elevator-monitor", "Inovance", "EMU-100", "2.4.1", devices.KindSensor, ""},
}

// seedDemo makes sure a node's demo sites, devices, users and enrolments exist with known
// credentials, reusing those of an earlier run so a resumed demo keeps its logins.
func seedDemo(ctx context.Context, g *gateway, spec nodeSpec) (nodeReady, error) {
	var ready nodeReady
	mine := map[string]bool{}
	for _, id := range spec.Sites {
		mine[id] = true
	}
	for i := range demoSites {
		s := demoSites[i]
		if !mine[s.ID] {
			continue
		}
		if _, err := g.devices.GetSite(ctx, s.ID); err == nil {
			continue
		} else if !errs.Is(err, errs.KindNotFound) {
			return ready, err
		}
		if err := g.devices.CreateSite(ctx, &s); err != nil {
			return ready, fmt.Errorf("site %s: %w", s.ID, err)
		}
	}

	prevSensor := map[string]demoSensor{}
	for _, s := range spec.Sensors {
		prevSensor[s.ID] = s
	}
	for _, d := range demoDevices {
		if !mine[d.site] {
			continue
		}
		if err := seedDemoDevice(ctx, g, spec, d, prevSensor[d.id].MQTTPassword, &ready); err != nil {
			return ready, err
		}
	}

	if mine[demoHJ212Site.ID] {
		if err := seedHJ212Demo(ctx, g, spec, &ready); err != nil {
			return ready, err
		}
	}

	for _, w := range spec.Users {
		pw := w.Password
		fresh := pw == ""
		if fresh {
			pw = auth.GeneratePassword()
		}
		u, err := g.auth.GetUserByUsername(ctx, w.Username)
		switch {
		case err == nil:
			if fresh {
				if err := g.auth.SetPassword(ctx, u.ID, pw); err != nil {
					return ready, fmt.Errorf("user %s: %w", w.Username, err)
				}
			}
		case errs.Is(err, errs.KindNotFound):
			nu := auth.User{Username: w.Username, Role: auth.Role(w.Role), Departments: w.Departments}
			if _, err := g.auth.CreateUser(ctx, nu, pw); err != nil {
				return ready, fmt.Errorf("user %s: %w", w.Username, err)
			}
		default:
			return ready, err
		}
		w.Password = pw
		ready.Users = append(ready.Users, w)
	}

	for _, e := range spec.Enrol {
		gw := devices.Gateway{ID: e.ID, Name: e.Name}
		_, err := g.gateways.Enrol(ctx, &gw, e.Secret)
		if errs.Is(err, errs.KindConflict) {
			_, err = g.gateways.RotateSecret(ctx, e.ID, e.Secret)
		}
		if err != nil {
			return ready, fmt.Errorf("enrol %s: %w", e.ID, err)
		}
	}
	return ready, nil
}

func seedDemoDevice(ctx context.Context, g *gateway, spec nodeSpec, dd demoDeviceSpec, secret string, ready *nodeReady) error {
	d := devices.Device{ID: dd.id, SiteID: dd.site, Kind: dd.kind, Name: dd.name, Vendor: dd.vendor,
		Model: dd.model, Profile: dd.profile, Firmware: dd.firmware, Serial: "SN-" + strings.ToUpper(dd.id), InstalledOn: "2026-03-01"}
	p, ok := g.profiles.Get(dd.profile)
	if !ok {
		return fmt.Errorf("device %s: profile %q is not built in", dd.id, dd.profile)
	}
	fresh := secret == ""
	switch dd.kind {
	case devices.KindCamera:
		d.Stream = &devices.StreamSettings{URL: spec.Cameras.URLs[dd.sim], Username: spec.Cameras.Username, Password: spec.Cameras.Password, Transport: "tcp"}
	case devices.KindSensor:
		if fresh {
			secret = devices.GenerateSecret()
		}
		d.MQTT = &devices.MQTTCredentials{Username: dd.id, Secret: secret}
	}
	existing, err := g.devices.GetDevice(ctx, dd.id)
	switch {
	case err == nil:
		// The simulated cameras listen on a new port and password each run; a sensor whose
		// secret was lost with demo.json gets a new one so the simulator can log in.
		if dd.kind == devices.KindCamera || (dd.kind == devices.KindSensor && fresh) {
			existing.Stream, existing.MQTT = d.Stream, d.MQTT
			if err := g.devices.UpdateDevice(ctx, &existing); err != nil {
				return fmt.Errorf("device %s: %w", dd.id, err)
			}
		}
	case errs.Is(err, errs.KindNotFound):
		if err := g.devices.CreateDevice(ctx, &d); err != nil {
			return fmt.Errorf("device %s: %w", dd.id, err)
		}
	default:
		return err
	}
	switch dd.kind {
	case devices.KindCamera:
		if err := demoAnalyticsSettings(ctx, g, dd); err != nil {
			return err
		}
		ready.Cameras = append(ready.Cameras, demoCamera{ID: dd.id, Site: dd.site, Name: dd.name, Profile: dd.profile, Scenario: demoCameraScenario[dd.sim]})
	case devices.KindSensor:
		var metrics []string
		for _, m := range p.Metrics {
			metrics = append(metrics, m.Name)
		}
		topic := ""
		if p.MQTT != nil {
			topic = strings.NewReplacer("{site}", dd.site, "{device}", dd.id).Replace(p.MQTT.Up)
		}
		ready.Sensors = append(ready.Sensors, demoSensor{ID: dd.id, Site: dd.site, Name: dd.name, Profile: dd.profile,
			Topic: topic, MQTTUsername: dd.id, MQTTPassword: secret, Metrics: metrics})
	}
	return nil
}

// configureClipsDemo gives every camera of a demo site clips (docs/contracts.md §9): the cold
// store's tamper alert and the service window's staff-absent alert carry the clip of the
// moment, and the kitchen's gas detector gets the kitchen camera's clip.
//
// The demo's detectors confirm a covered lens after 10 s and an empty counter after 20 s, and
// their events carry the time of confirmation: a 25 s pre-roll reaches back to the moment the
// lens was covered or the clerk left (the demo's clips are 200 kbit/s: 25 s fit in the 3 MiB).
func configureClipsDemo(cfg *config.Config) {
	cfg.Clips.Enabled = true
	cfg.Clips.PreRoll = 25 * time.Second
	cfg.Clips.Links = []config.ClipLink{{Device: "gas-02-kitchen", Cameras: []string{"cam-market-kitchen"}}}
}
