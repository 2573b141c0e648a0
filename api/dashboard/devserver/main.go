// Command devserver serves the embedded dashboard with canned answers for the /api/v1
// endpoints (docs/contracts.md §3), a live SSE stream, an embedded MQTT broker that turns readings
// over a limit into alerts, and real WHEP video from ffmpeg-generated H.264 — so the dashboard
// can be developed and screenshotted without the rest of the gateway. It is a development
// tool, not used by the real tests.
//
//	go run ./api/dashboard/devserver [-http 127.0.0.1:8090] [-mqtt 127.0.0.1:18830] [-demo demo.json]
//	go run ./api/dashboard/devserver -proxy http://127.0.0.1:8080   # the UI in front of a real gateway
//
// Logins: admin/admin, officer/officer (市生态环境局 only), maintainer/maintainer.
// Dev controls: POST /_dev/cameras/{id}/down and /up take a camera off and back on line.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/offsite-gw/offsite/api/dashboard"
)

func main() {
	httpAddr := flag.String("http", "127.0.0.1:8090", "HTTP listen address")
	mqttAddr := flag.String("mqtt", "127.0.0.1:18830", "MQTT listen address (embedded broker)")
	demoPath := flag.String("demo", "", "write a demo.json (docs/contracts.md §2 shape) here for the browser harness")
	proxy := flag.String("proxy", "", "instead of canned answers, pass /api/ and /healthz to this gateway (e.g. http://127.0.0.1:8080)")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	st := newState()
	video, err := newVideo(ctx, st, log)
	if err != nil {
		log.Warn("video disabled", "err", err)
	}
	st.video = video
	broker, err := startBroker(*mqttAddr, st, log)
	if err != nil {
		log.Error("mqtt", "err", err)
		os.Exit(1)
	}
	defer broker.Close()
	go st.background(ctx)

	mux := http.NewServeMux()
	if *proxy != "" {
		target, err := url.Parse(*proxy)
		if err != nil {
			log.Error("proxy", "err", err)
			os.Exit(1)
		}
		rp := httputil.NewSingleHostReverseProxy(target)
		rp.FlushInterval = -1 // SSE
		mux.Handle("/api/", rp)
		mux.Handle("/healthz", rp)
	} else {
		st.routes(mux)
	}
	mux.Handle("/", dashboard.Handler())
	ln, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		log.Error("listen", "err", err)
		os.Exit(1)
	}
	base := "http://" + ln.Addr().String()
	if *demoPath != "" {
		if err := writeDemo(*demoPath, base, "tcp://"+*mqttAddr, st); err != nil {
			log.Error("demo.json", "err", err)
		}
	}
	srv := &http.Server{Handler: logRequests(mux, log), ReadHeaderTimeout: 10 * time.Second}
	go func() { <-ctx.Done(); _ = srv.Close() }()
	fmt.Printf("devserver: dashboard %s/  (admin/admin, officer/officer)  mqtt %s\n", base, *mqttAddr)
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		log.Error("serve", "err", err)
	}
}

func logRequests(h http.Handler, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/") && os.Getenv("DEVSERVER_QUIET") == "" {
			log.Debug("request", "method", r.Method, "path", r.URL.Path)
		}
		h.ServeHTTP(w, r)
	})
}

func writeDemo(path, base, mqttURL string, st *state) error {
	type user struct {
		Username    string   `json:"username"`
		Password    string   `json:"password"`
		Role        string   `json:"role"`
		Departments []string `json:"departments,omitempty"`
	}
	type sensor struct {
		ID           string   `json:"id"`
		Site         string   `json:"site"`
		Profile      string   `json:"profile"`
		Topic        string   `json:"topic"`
		MQTTUsername string   `json:"mqtt_username"`
		MQTTPassword string   `json:"mqtt_password"`
		Metrics      []string `json:"metrics"`
	}
	out := struct {
		HTTP             string              `json:"http"`
		MQTT             string              `json:"mqtt"`
		Users            []user              `json:"users"`
		Cameras          []map[string]string `json:"cameras"`
		Sensors          []sensor            `json:"sensors"`
		DevCameraControl string              `json:"dev_camera_control"`
	}{HTTP: base, MQTT: mqttURL, DevCameraControl: base + "/_dev/cameras/{id}/{action}"}
	for _, u := range st.users {
		out.Users = append(out.Users, user{u.Username, u.Password, u.Role, u.Departments})
	}
	for _, d := range st.devices {
		switch d.Kind {
		case "camera":
			out.Cameras = append(out.Cameras, map[string]string{"id": d.ID, "site": d.SiteID, "name": d.Name, "whep": base + "/api/v1/cameras/" + d.ID + "/whep"})
		case "sensor":
			out.Sensors = append(out.Sensors, sensor{d.ID, d.SiteID, d.Profile, "offsite/" + d.SiteID + "/" + d.ID + "/up", d.ID, "secret-" + d.ID, []string{"pm10", "noise"}})
		}
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}
