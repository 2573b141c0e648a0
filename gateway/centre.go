package main

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/events/centre"
	"github.com/offsite-gw/offsite/events/uplink"
	"github.com/offsite-gw/offsite/streams"
)

// openCentre makes this node able to be a centre: the store of enrolled site gateways, the
// receiver of their batches and inventories, and the health monitor. A node with no gateway
// enrolled is a site, and all of this stays idle.
func (g *gateway) openCentre(sealer *devices.Sealer) {
	g.gateways = &devices.GatewayStore{DB: g.db, Sealer: sealer}
	g.receiver = &centre.Receiver{Log: g.events, Gateways: g.gateways, MaxSkew: g.cfg.Centre.MaxSkew, Logger: g.log.With("component", "centre")}
	g.reg.MustRegister(g.receiver.Collectors()...)
	g.reg.MustRegister(gatewayHealth{g.gateways})
	g.evidenceFetch = &centre.EvidenceFetcher{Log: g.events, Gateways: g.gateways, Store: g.evidence, Logger: g.log.With("component", "centre-evidence")}
	g.reg.MustRegister(g.evidenceFetch.Collectors()...)
	mon := &centre.Monitor{Receiver: g.receiver, OfflineAfter: g.cfg.Centre.OfflineAfter}
	g.goBackground(func(ctx context.Context) { g.leases.Run(ctx, leaseGatewayHealth, mon.Run) })
}

// evidenceGate lets the receivers of this node's uplinks (its centre, the province) fetch the
// evidence of the events they were sent (docs/contracts.md §9); nil without such an uplink.
func (g *gateway) evidenceGate() *uplink.EvidenceGate {
	peers := g.uplinks.EvidencePeers()
	if len(peers) == 0 {
		return nil
	}
	return &uplink.EvidenceGate{GatewayID: g.cfg.GatewayID, Peers: peers}
}

// inventory is what this site reports to its centre: every site and device from the
// registry without credentials, sensors with their presence and cameras with the relay's
// state (docs/contracts.md §7).
func (g *gateway) inventory(ctx context.Context) (devices.Inventory, error) {
	var inv devices.Inventory
	if !g.started.Load() {
		return inv, uplink.ErrNotReady // the registry may still be filled (demo) before start
	}
	sites, err := g.devices.ListSites(ctx, devices.SiteFilter{})
	if err != nil {
		return inv, fmt.Errorf("inventory: %w", err)
	}
	devs, err := g.devices.ListDevices(ctx, devices.DeviceFilter{})
	if err != nil {
		return inv, fmt.Errorf("inventory: %w", err)
	}
	for i := range sites {
		sites[i].CreatedAt, sites[i].UpdatedAt = sites[i].CreatedAt.UTC(), sites[i].UpdatedAt.UTC()
	}
	inv.Sites = sites
	cams := map[string]streams.CameraStatus{}
	if g.video != nil {
		for _, st := range g.video.manager.Cameras() {
			cams[st.ID] = st
		}
	}
	inv.Devices = make([]devices.InventoryDevice, 0, len(devs))
	for _, d := range devs {
		e := devices.InventoryOf(d)
		switch d.Kind {
		case devices.KindSensor:
			if g.sensors != nil {
				if st, ok := g.sensors.presence.State(d.ID); ok {
					since := st.Since.UTC()
					e.State, e.StateSince = st.State, &since
				}
			}
		case devices.KindCamera:
			if addr := g.video.reserveAddr.Load(); addr != nil {
				e.RTSP = "rtsp://" + *addr + "/" + url.PathEscape(d.ID)
			}
			if st, ok := cams[d.ID]; ok {
				since := st.Since.UTC()
				e.State, e.StateSince = st.State, &since
				if st.State != streams.StateOnline.String() {
					e.Reason, _ = streams.ExplainReason(st.Reason)
				}
			}
		}
		inv.Devices = append(inv.Devices, e)
	}
	return inv, nil
}

// cascadeCredential lets this site's centre log in to the RTSP re-serve with the password
// derived from their shared secret (devices.CascadePassword); nil without a centre uplink.
func (g *gateway) cascadeCredential() streams.CredentialSource {
	secret := ""
	for _, u := range g.cfg.Uplinks {
		if u.Kind != uplink.KindCentre {
			continue
		}
		secret = u.Secret
		if secret == "" && u.SecretFile != "" {
			if b, err := os.ReadFile(u.SecretFile); err == nil {
				secret = strings.TrimSpace(string(b))
			}
		}
	}
	if secret == "" {
		return nil
	}
	return streams.StaticCredential{Consumer: "centre", Username: devices.CascadeUser, Password: devices.CascadePassword([]byte(secret))}
}

// childCameras are the cameras of the site gateways below this centre, as relay sources
// pulled on demand from each site's re-serve with the cascade credential.
func (g *gateway) childCameras(ctx context.Context) []streams.CameraConfig {
	if g.gateways == nil {
		return nil
	}
	cams, err := g.gateways.ChildDevices(ctx, "", devices.DeviceFilter{Kind: devices.KindCamera})
	if err != nil || len(cams) == 0 {
		return nil
	}
	gws, err := g.gateways.List(ctx)
	if err != nil {
		return nil
	}
	byID := map[string]devices.Gateway{}
	for _, gw := range gws {
		byID[gw.ID] = gw
	}
	creds := map[string]string{}
	var out []streams.CameraConfig
	for _, c := range cams {
		gw, ok := byID[c.Gateway]
		if !ok || gw.Disabled || c.RTSP == "" {
			continue
		}
		pw, ok := creds[gw.ID]
		if !ok {
			cr, err := g.gateways.Credentials(ctx, gw.ID)
			if err != nil {
				continue
			}
			pw = devices.CascadePassword(cr.Secret)
			creds[gw.ID] = pw
		}
		u, err := url.Parse(c.RTSP)
		if err != nil || u.Scheme != "rtsp" {
			continue
		}
		if h := u.Hostname(); h == "" || h == "0.0.0.0" || h == "::" {
			host, _, _ := net.SplitHostPort(gw.LastAddr)
			if host == "" {
				host = gw.LastAddr
			}
			u.Host = net.JoinHostPort(host, u.Port())
		}
		out = append(out, streams.CameraConfig{ID: c.ID, Site: c.SiteID, URL: u.String(), Username: devices.CascadeUser, Password: pw, Transport: "tcp"})
	}
	return out
}

var (
	descGatewayUp = prometheus.NewDesc("offsite_centre_gateway_up",
		"1 while an enrolled site gateway is online at this centre, 0 when offline or never heard from.", []string{"gateway"}, nil)
	descGatewayLag = prometheus.NewDesc("offsite_centre_gateway_backlog_events",
		"Events the site gateway last said it still has to send to this centre.", []string{"gateway"}, nil)
	descGatewaySeen = prometheus.NewDesc("offsite_centre_gateway_last_seen_seconds",
		"Unix time the site gateway was last heard from (0: never).", []string{"gateway"}, nil)
)

// gatewayHealth exposes the enrolled site gateways' health, read from the store at scrape
// time, so every centre instance reports the same.
type gatewayHealth struct{ store *devices.GatewayStore }

func (c gatewayHealth) Describe(ch chan<- *prometheus.Desc) {
	ch <- descGatewayUp
	ch <- descGatewayLag
	ch <- descGatewaySeen
}

func (c gatewayHealth) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	gws, err := c.store.List(ctx)
	if err != nil {
		return // the scrape shows the gateways missing; the store error is logged elsewhere
	}
	for _, gw := range gws {
		up, seen := 0.0, 0.0
		if gw.State == "online" {
			up = 1
		}
		if gw.LastSeen != nil {
			seen = float64(gw.LastSeen.Unix())
		}
		ch <- prometheus.MustNewConstMetric(descGatewayUp, prometheus.GaugeValue, up, gw.ID)
		ch <- prometheus.MustNewConstMetric(descGatewayLag, prometheus.GaugeValue, float64(gw.LagEvents), gw.ID)
		ch <- prometheus.MustNewConstMetric(descGatewaySeen, prometheus.GaugeValue, seen, gw.ID)
	}
}
