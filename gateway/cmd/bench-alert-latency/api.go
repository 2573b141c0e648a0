package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/offsite-gw/offsite/internal/benchkit"
)

// apiClient calls the gateway's HTTP API as one user.
type apiClient = benchkit.Client

// fleet is what the benchmark registers: one site of gas detectors (the alarm path) and one
// construction site of dust monitors (the background).
type fleet struct {
	Gas, Background []sensor
}

type sensor struct {
	ID, Site, Topic, Username, Secret string
}

func newFleet(gas, background int) fleet {
	var f fleet
	mk := func(site, prefix string, i int) sensor {
		id := fmt.Sprintf("%s-%03d", prefix, i)
		return sensor{ID: id, Site: site, Topic: "offsite/" + site + "/" + id + "/up", Username: id,
			Secret: "bench-secret-" + id + "-7Qx2"}
	}
	for i := range gas {
		f.Gas = append(f.Gas, mk("bench-kitchen", "gas", i))
	}
	for i := range background {
		f.Background = append(f.Background, mk("bench-construction", "dust", i))
	}
	return f
}

// csv is the device sheet (devices/README.md) that registers the fleet in one import.
func (f fleet) csv() []byte {
	var b bytes.Buffer
	b.WriteString("site_id,site_name,region_code,department,supervision_items,device_id,kind,name,profile,firmware,mqtt_username,mqtt_secret\n")
	for _, s := range f.Gas {
		fmt.Fprintf(&b, "%s,基准测试 美食城后厨,410702,市应急管理局,410702-YJ-RQ-001,%s,sensor,可燃气体探测器 %s,gas-detector,V2.0.1,%s,%s\n",
			s.Site, s.ID, s.ID, s.Username, s.Secret)
	}
	for _, s := range f.Background {
		fmt.Fprintf(&b, "%s,基准测试 建筑工地,410702,市住房和城乡建设局,410702-ZJ-YC-001,%s,sensor,扬尘噪声监测仪 %s,dust-noise-monitor,V3.0.1,%s,%s\n",
			s.Site, s.ID, s.ID, s.Username, s.Secret)
	}
	return b.Bytes()
}

// register imports the fleet and creates the officer who watches the event stream; it
// returns the officer's client.
func register(ctx context.Context, admin *apiClient, f fleet) (*apiClient, error) {
	var res struct{ Sites, Devices int }
	if err := admin.Do(ctx, http.MethodPost, "/api/v1/devices/import", "text/csv", f.csv(), &res); err != nil {
		return nil, fmt.Errorf("import devices: %w", err)
	}
	if res.Devices != len(f.Gas)+len(f.Background) {
		return nil, fmt.Errorf("import devices: %d imported, want %d", res.Devices, len(f.Gas)+len(f.Background))
	}
	var u struct {
		GeneratedPassword string `json:"generated_password"`
	}
	if err := admin.JSON(ctx, http.MethodPost, "/api/v1/users", map[string]any{"username": "bench-officer", "display_name": "基准测试 值班员",
		"role": "officer", "departments": []string{"市应急管理局"}}, &u); err != nil {
		return nil, fmt.Errorf("create officer: %w", err)
	}
	return benchkit.Login(ctx, admin.Base, admin.HTTP, "bench-officer", u.GeneratedPassword)
}

// waitRouted waits until the broker accepts the device's login: the gateway's topic directory
// reloads devices every few seconds, and until then it refuses them.
func waitRouted(ctx context.Context, broker string, s sensor, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		cl, err := connect(broker, s)
		if err == nil {
			cl.Disconnect(50)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the broker still refuses %s after %s: %w", s.ID, limit, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
