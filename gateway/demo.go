package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/offsite-gw/offsite/api/auth"
	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/events/uplink"
	"github.com/offsite-gw/offsite/events/uplink/provincesim"
	"github.com/offsite-gw/offsite/gateway/config"
	"github.com/offsite-gw/offsite/ingest/sim"
	"github.com/offsite-gw/offsite/internal/errs"
	"github.com/offsite-gw/offsite/streams/simcam"
)

// demoFile is what `offsite demo` writes to DIR/demo.json (docs/contracts.md §2). It is also how a
// second run with the same --data finds the credentials it handed out before.
type demoFile struct {
	HTTP     string       `json:"http"`
	RTSP     string       `json:"rtsp,omitempty"`
	MQTT     string       `json:"mqtt,omitempty"`
	HJ212    string       `json:"hj212,omitempty"` // tcp://host:port of the HJ 212 listener (§8)
	Users    []demoUser   `json:"users"`
	Cameras  []demoCamera `json:"cameras"`
	Sensors  []demoSensor `json:"sensors"`
	Province *demoLink    `json:"province,omitempty"`
	// DevCameraControl takes a simulated camera off line and back (POST, {id} and
	// {action} = down|up), for the browser tests and for trying the wall's offline tiles.
	DevCameraControl string `json:"dev_camera_control,omitempty"`
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
	WHEP    string `json:"whep"`
	RTSP    string `json:"rtsp,omitempty"`
}

type demoSensor struct {
	ID           string   `json:"id"`
	Site         string   `json:"site"`
	Name         string   `json:"name"`
	Profile      string   `json:"profile"`
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

func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data", "./demo-data", "directory for the demo's database, keys and demo.json; reused on the next run")
	httpAddr := fs.String("http", "127.0.0.1:8080", "HTTP listen address (API, dashboard, WHEP)")
	provinceURL := fs.String("province-url", "", "deliver the province uplink here instead of the local receiver")
	rtspAddr := fs.String("rtsp", "127.0.0.1:8554", "RTSP re-serve listen address")
	webrtcAddr := fs.String("webrtc", "127.0.0.1:8189", "WebRTC (ICE) UDP and TCP listen address")
	mqttAddr := fs.String("mqtt", "127.0.0.1:1883", "embedded MQTT broker listen address")
	hj212Addr := fs.String("hj212", "127.0.0.1:9212", "HJ 212-2017 listener address (online monitoring stations)")
	worker := fs.String("analytics", "auto", "video analytics worker binary: auto (offsite-analytics beside this binary or on PATH), a path, or off")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("demo takes no arguments, got %q", fs.Args())}
	}
	cfg := config.Default()
	cfg.GatewayID = "demo-gw-01"
	cfg.DataDir = *dataDir
	cfg.HTTP.Listen = *httpAddr
	cfg.Ingest.Broker.Listen = *mqttAddr
	cfg.Streams.RTSP.Listen = *rtspAddr
	cfg.Streams.WebRTC.UDPListen = *webrtcAddr
	cfg.Streams.WebRTC.TCPListen = *webrtcAddr
	configureHJ212Demo(&cfg, *hj212Addr)
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := os.MkdirAll(*dataDir, 0o750); err != nil {
		return err
	}
	demoPath := filepath.Join(*dataDir, "demo.json")
	prev := readDemoFile(demoPath, logger)

	// The province link: a local receiver that checks signatures and de-duplicates, unless
	// --province-url names a real (or another) receiver. The secret survives restarts.
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
		srv := &provincesim.Server{Addr: "127.0.0.1:0", Handler: recv}
		if err := srv.Start(); err != nil {
			return fmt.Errorf("province receiver: %w", err)
		}
		defer srv.Stop()
		province.URL = srv.URL()
	}
	cfg.Uplinks = []uplink.Config{{Name: "province", BaseURL: province.URL, Alg: province.Alg, Secret: province.Secret}}

	// Simulated cameras: short H.264 clips with SPS/PPS only in the SDP, like many real
	// cameras; one reboots every few minutes, one loses its clerk, one goes black.
	cams := &simcam.Server{Listen: "127.0.0.1:0", Username: "admin", Password: devices.GenerateSecret(),
		Cameras: append(simcam.DemoCameras(), simcam.AnalyticsDemoCameras()...), Logger: logger.With("component", "simcam")}
	if err := cams.Initialize(); err != nil {
		return fmt.Errorf("simulated cameras: %w", err)
	}
	defer cams.Close()

	g, err := openGateway(ctx, cfg, logger, nil)
	if err != nil {
		return err
	}
	df, err := seedDemo(ctx, g, prev, cams)
	if err != nil {
		g.stop()
		return fmt.Errorf("demo fixtures: %w", err)
	}
	if err := seedHJ212Demo(ctx, g, prev, &df); err != nil {
		g.stop()
		return fmt.Errorf("demo fixtures: %w", err)
	}
	if err := g.video.sync(ctx); err != nil {
		g.stop()
		return err
	}
	if err := g.start(); err != nil {
		g.stop()
		return err
	}
	base := "http://" + displayAddr(g.api.Addr())
	df.HTTP = base
	df.RTSP = "rtsp://" + displayAddr(g.video.reserve.Addr())
	df.MQTT = "tcp://" + displayAddr(g.sensors.broker.Addr())
	// Simulated sensors: one per sensor device, each logging in with its own credentials,
	// with daily patterns, noise, excursions over the rule limits, and one going silent.
	fleet := &sim.Fleet{BrokerURL: df.MQTT, Interval: 5 * time.Second, Logger: logger.With("component", "sim-sensors")}
	for i, sn := range df.Sensors {
		if sn.Protocol == "hj212" {
			continue // simulated below, over HJ 212
		}
		p, _ := g.profiles.Get(sn.Profile)
		fleet.Sensors = append(fleet.Sensors, sim.Sensor{Device: sn.ID, Site: sn.Site, Profile: p,
			Username: sn.MQTTUsername, Password: sn.MQTTPassword, Silent: i == 0})
	}
	if err := fleet.Initialize(); err != nil {
		g.stop()
		return fmt.Errorf("simulated sensors: %w", err)
	}
	defer fleet.Close()
	stopHJ212, err := startHJ212Demo(g, &df, logger)
	if err != nil {
		g.stop()
		return fmt.Errorf("simulated HJ 212 station: %w", err)
	}
	defer stopHJ212()
	df.Province = &province
	for i := range df.Cameras {
		df.Cameras[i].RTSP = g.video.rtspURL(df.Cameras[i].ID)
	}
	if ctl, err := startDevControl(g, cams, df, logger); err != nil {
		logger.Warn("camera control for tests not started", "err", err)
	} else {
		df.DevCameraControl = ctl
	}
	stopWorker, err := startWorker(*worker, base, df, logger, stderr)
	if err != nil {
		logger.Warn("video analytics worker not started", "reason", err)
	}
	for i := range df.Cameras {
		df.Cameras[i].WHEP = base + "/api/v1/cameras/" + df.Cameras[i].ID + "/whep"
	}
	if err := writeDemoFile(demoPath, df); err != nil {
		g.stop()
		return err
	}
	fmt.Fprintf(stdout, "\nOffsite demo is running.\n\n  Dashboard: %s/\n  API:       %s/api/v1/openapi.json\n", base, base)
	for _, u := range df.Users {
		fmt.Fprintf(stdout, "  Login:     %-10s %s  (%s)\n", u.Username, u.Password, u.Role)
	}
	fmt.Fprintf(stdout, "  Details:   %s\n\nPress Ctrl-C to stop; run again with the same --data to resume.\n\n", demoPath)
	<-ctx.Done()
	logger.Info("stopping demo")
	if stopWorker != nil {
		stopWorker() // first, so it releases its leases while the gateway still answers
	}
	fleet.Close()
	return g.stop()
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

// seedDemo makes sure the demo's sites, devices and users exist with known credentials,
// reusing those of an earlier run (prev) so a resumed demo keeps its logins.
func seedDemo(ctx context.Context, g *gateway, prev demoFile, cams *simcam.Server) (demoFile, error) {
	var df demoFile
	for i := range demoSites {
		s := demoSites[i]
		if _, err := g.devices.GetSite(ctx, s.ID); err == nil {
			continue
		} else if !errs.Is(err, errs.KindNotFound) {
			return df, err
		}
		if err := g.devices.CreateSite(ctx, &s); err != nil {
			return df, fmt.Errorf("site %s: %w", s.ID, err)
		}
	}

	prevSensor := map[string]demoSensor{}
	for _, s := range prev.Sensors {
		prevSensor[s.ID] = s
	}
	for _, spec := range demoDevices {
		d := devices.Device{ID: spec.id, SiteID: spec.site, Kind: spec.kind, Name: spec.name, Vendor: spec.vendor,
			Model: spec.model, Profile: spec.profile, Firmware: spec.firmware, Serial: "SN-" + strings.ToUpper(spec.id), InstalledOn: "2026-03-01"}
		p, ok := g.profiles.Get(spec.profile)
		if !ok {
			return df, fmt.Errorf("device %s: profile %q is not built in", spec.id, spec.profile)
		}
		secret := prevSensor[spec.id].MQTTPassword
		switch spec.kind {
		case devices.KindCamera:
			d.Stream = &devices.StreamSettings{URL: cams.URL(spec.sim), Username: cams.Username, Password: cams.Password, Transport: "tcp"}
		case devices.KindSensor:
			if secret == "" {
				secret = devices.GenerateSecret()
			}
			d.MQTT = &devices.MQTTCredentials{Username: spec.id, Secret: secret}
		}
		existing, err := g.devices.GetDevice(ctx, spec.id)
		switch {
		case err == nil:
			if spec.kind == devices.KindCamera {
				// The simulated cameras listen on a new port and password each run.
				existing.Stream = d.Stream
				if err := g.devices.UpdateDevice(ctx, &existing); err != nil {
					return df, fmt.Errorf("device %s: %w", spec.id, err)
				}
			}
			if spec.kind == devices.KindSensor && prevSensor[spec.id].MQTTPassword == "" {
				// demo.json was lost: issue a new secret so the simulator can log in.
				existing.MQTT = d.MQTT
				if err := g.devices.UpdateDevice(ctx, &existing); err != nil {
					return df, fmt.Errorf("device %s: %w", spec.id, err)
				}
			}
		case errs.Is(err, errs.KindNotFound):
			if err := g.devices.CreateDevice(ctx, &d); err != nil {
				return df, fmt.Errorf("device %s: %w", spec.id, err)
			}
		default:
			return df, err
		}
		if spec.kind == devices.KindCamera {
			if err := demoAnalyticsSettings(ctx, g, spec); err != nil {
				return df, err
			}
		}
		switch spec.kind {
		case devices.KindCamera:
			df.Cameras = append(df.Cameras, demoCamera{ID: spec.id, Site: spec.site, Name: spec.name, Profile: spec.profile})
		case devices.KindSensor:
			var metrics []string
			for _, m := range p.Metrics {
				metrics = append(metrics, m.Name)
			}
			topic := ""
			if p.MQTT != nil {
				topic = strings.NewReplacer("{site}", spec.site, "{device}", spec.id).Replace(p.MQTT.Up)
			}
			df.Sensors = append(df.Sensors, demoSensor{ID: spec.id, Site: spec.site, Name: spec.name, Profile: spec.profile,
				Topic: topic, MQTTUsername: spec.id, MQTTPassword: secret, Metrics: metrics})
		}
	}

	prevUser := map[string]demoUser{}
	for _, u := range prev.Users {
		prevUser[u.Username] = u
	}
	wanted := []demoUser{
		{Username: "admin", Role: "admin"},
		{Username: "officer", Role: "officer", Departments: []string{"市住房和城乡建设局"}},
		{Username: "maintainer", Role: "maintainer"},
		{Username: "analytics", Role: "service"},
	}
	for _, w := range wanted {
		pw := prevUser[w.Username].Password
		fresh := pw == ""
		if fresh {
			pw = auth.GeneratePassword()
		}
		u, err := g.auth.GetUserByUsername(ctx, w.Username)
		switch {
		case err == nil:
			if fresh {
				if err := g.auth.SetPassword(ctx, u.ID, pw); err != nil {
					return df, fmt.Errorf("user %s: %w", w.Username, err)
				}
			}
		case errs.Is(err, errs.KindNotFound):
			nu := auth.User{Username: w.Username, Role: auth.Role(w.Role), Departments: w.Departments}
			if _, err := g.auth.CreateUser(ctx, nu, pw); err != nil {
				return df, fmt.Errorf("user %s: %w", w.Username, err)
			}
		default:
			return df, err
		}
		w.Password = pw
		df.Users = append(df.Users, w)
	}
	return df, nil
}
