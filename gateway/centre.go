package main

import (
	"context"
	"fmt"

	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/events/centre"
	"github.com/offsite-gw/offsite/streams"
)

// openCentre makes this node able to be a centre: the store of enrolled site gateways, the
// receiver of their batches and inventories, and the health monitor. A node with no gateway
// enrolled is a site, and all of this stays idle.
func (g *gateway) openCentre(sealer *devices.Sealer) {
	g.gateways = &devices.GatewayStore{DB: g.db, Sealer: sealer}
	g.receiver = &centre.Receiver{Log: g.events, Gateways: g.gateways, MaxSkew: g.cfg.Centre.MaxSkew, Logger: g.log.With("component", "centre")}
	g.reg.MustRegister(g.receiver.Collectors()...)
	mon := &centre.Monitor{Receiver: g.receiver, OfflineAfter: g.cfg.Centre.OfflineAfter}
	g.goBackground(mon.Run)
}

// inventory is what this site reports to its centre: every site and device from the
// registry without credentials, sensors with their presence and cameras with the relay's
// state (docs/contracts.md §7).
func (g *gateway) inventory(ctx context.Context) (devices.Inventory, error) {
	var inv devices.Inventory
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
