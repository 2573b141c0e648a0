package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/offsite-gw/offsite/analytics/rules"
	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/gateway/config"
	hjsim "github.com/offsite-gw/offsite/ingest/hj212/sim"
	"github.com/offsite-gw/offsite/internal/errs"
)

// The demo's HJ 212 part (docs/contracts.md §8): a wastewater treatment plant under
// 市生态环境局 whose outlet station speaks HJ 212-2017 to the gateway's listener, its permit
// limit for COD (stricter than the profile's GB 18918 default), an officer of the department,
// and the simulated station.
var demoHJ212Site = devices.Site{ID: "hq-wwtp-01", Name: "新乡市红旗区污水处理厂", USCC: "91410702MA46WW2T3H", RegionCode: "410702",
	Address: "河南省新乡市红旗区东干道与卫河交叉口东南", Department: "市生态环境局", SupervisionItems: []string{"410702-STHJ-PW-021"}}

const (
	demoHJ212Device = "ww-hq-01-outlet"
	demoHJ212MN     = "41070200000001W0000001"
	// demoPermitCOD is the plant's permit (排污许可证) limit for COD at the outlet, mg/L.
	demoPermitCOD = 40.0
)

// configureHJ212Demo turns the listener on and sets the plant's permit limit as a site-level
// override of the profile's cod-limit rule.
func configureHJ212Demo(cfg *config.Config, listen string) {
	cfg.Ingest.HJ212.Listen = listen
	limit := demoPermitCOD
	cfg.Rules.Overrides = append(cfg.Rules.Overrides, rules.Override{Site: demoHJ212Site.ID, Rule: "cod-limit", Value: &limit,
		Message: fmt.Sprintf("污水处理厂总排口 COD 超过排污许可证限值 %g mg/L，请核查生化处理段运行并现场采样", limit)})
}

// seedHJ212Demo makes sure the plant and its outlet station exist on the site gateway that
// serves it, reusing the PW of an earlier run, and adds the station to ready. The officer of
// 市生态环境局 who gets its alerts is a centre user (demoCentreUsers).
func seedHJ212Demo(ctx context.Context, g *gateway, spec nodeSpec, ready *nodeReady) error {
	s := demoHJ212Site
	if _, err := g.devices.GetSite(ctx, s.ID); errs.Is(err, errs.KindNotFound) {
		if err := g.devices.CreateSite(ctx, &s); err != nil {
			return fmt.Errorf("site %s: %w", s.ID, err)
		}
	} else if err != nil {
		return err
	}
	pw := ""
	for _, sn := range spec.Sensors {
		if sn.ID == demoHJ212Device {
			pw = sn.PW
		}
	}
	d := devices.Device{ID: demoHJ212Device, SiteID: s.ID, Kind: devices.KindSensor, Name: "总排口 废水在线监测站",
		Vendor: "聚光科技", Model: "CODmax+NH3-N+pH", Profile: "hj212-wastewater", Firmware: "V3.2.1", Serial: "SN-WW-HQ-01",
		InstalledOn: "2026-03-01", HJ212: &devices.HJ212Credentials{MN: demoHJ212MN, PW: pw}}
	if pw == "" {
		d.HJ212.PW = fmt.Sprintf("%06d", time.Now().UnixNano()%1000000) // a 6-digit PW, as stations use
	}
	pwSent := d.HJ212.PW
	existing, err := g.devices.GetDevice(ctx, d.ID)
	switch {
	case errs.Is(err, errs.KindNotFound):
		if err := g.devices.CreateDevice(ctx, &d); err != nil {
			return fmt.Errorf("device %s: %w", d.ID, err)
		}
	case err != nil:
		return err
	case pw == "":
		// demo.json was lost: issue a new PW so the simulator can send.
		existing.HJ212 = d.HJ212
		if err := g.devices.UpdateDevice(ctx, &existing); err != nil {
			return fmt.Errorf("device %s: %w", d.ID, err)
		}
	}
	if err := g.sensors.dir.Refresh(ctx); err != nil {
		return err
	}
	p, _ := g.profiles.Get(d.Profile)
	var metrics []string
	for _, m := range p.Metrics {
		metrics = append(metrics, m.Name)
	}
	ready.Sensors = append(ready.Sensors, demoSensor{ID: d.ID, Site: s.ID, Name: d.Name, Profile: d.Profile, Protocol: "hj212",
		MN: demoHJ212MN, PW: pwSent, Metrics: metrics})
	return nil
}

// startHJ212Demo starts the simulated station against the listener of the site gateway that
// serves the plant: real-time data every 30 s, minute data every minute, COD over the permit
// limit for 3 minutes every 20 (from 2 minutes after start), a device fault (D) for 2 minutes
// every hour (from 6 minutes) and maintenance (M) for 5 minutes every hour (from 10 minutes).
// It returns the stop function.
func startHJ212Demo(ready nodeReady, logger *slog.Logger) (func(), error) {
	var pw string
	for _, sn := range ready.Sensors {
		if sn.ID == demoHJ212Device {
			pw = sn.PW
		}
	}
	st := &hjsim.Station{Addr: ready.HJ212, MN: demoHJ212MN, PW: pw, ST: "32", Pollutants: hjsim.Wastewater(),
		Excursion:   hjsim.Period{Offset: 2 * time.Minute, For: 3 * time.Minute, Every: 20 * time.Minute},
		Fault:       hjsim.Period{Offset: 6 * time.Minute, For: 2 * time.Minute, Every: time.Hour},
		Maintenance: hjsim.Period{Offset: 10 * time.Minute, For: 5 * time.Minute, Every: time.Hour},
		Logger:      logger.With("component", "sim-hj212")}
	if err := st.Initialize(); err != nil {
		return nil, err
	}
	return st.Close, nil
}
