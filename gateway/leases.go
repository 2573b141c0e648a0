package main

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/offsite-gw/offsite/internal/lease"
	"github.com/offsite-gw/offsite/internal/store"
)

// Leases of the jobs that run on one centre instance at a time (uplinks have "uplink/NAME").
const (
	leaseEscalation    = "alerts/escalation"
	leaseRetention     = "evidence/retention"
	leaseGatewayHealth = "centre/gateway-health"
	leasePresence      = "ingest/presence"
)

// openLeases makes this node one of possibly several instances sharing its PostgreSQL: the
// uplinks and background jobs each run on the instance holding their lease, which another
// takes over within 15 s if this one dies. offsite_lease_held shows who holds what (no series
// on SQLite, where one instance runs everything).
func (g *gateway) openLeases() {
	held := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "offsite_lease_held",
		Help: "1 while this instance holds the lease (runs the job or uplink), 0 otherwise."}, []string{"lease"})
	g.reg.MustRegister(held)
	if g.db.Dialect != store.Postgres {
		return
	}
	g.leases = &lease.Keeper{DB: g.db, Holder: lease.NewHolder(), Logger: g.log.With("component", "lease"),
		OnChange: func(name string, h bool) {
			v := 0.0
			if h {
				v = 1
			}
			held.WithLabelValues(name).Set(v)
		}}
	for _, name := range []string{leaseEscalation, leaseRetention, leaseGatewayHealth, leasePresence} {
		held.WithLabelValues(name).Set(0)
	}
	// Presence checks run on every instance that has sensors; only the holder reports changes.
	g.goBackground(func(ctx context.Context) {
		g.leases.Run(ctx, leasePresence, func(ctx context.Context) { <-ctx.Done() })
	})
	g.log.Info("shared PostgreSQL: uplinks and background jobs run under leases", "instance", g.leases.Holder)
}
