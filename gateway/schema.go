package main

import (
	"github.com/offsite-gw/offsite/analytics/leases"
	"github.com/offsite-gw/offsite/analytics/rules"
	"github.com/offsite-gw/offsite/api/auth"
	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/events"
	"github.com/offsite-gw/offsite/ingest"
	"github.com/offsite-gw/offsite/internal/audit"
	"github.com/offsite-gw/offsite/internal/lease"
	"github.com/offsite-gw/offsite/internal/store"
	"github.com/offsite-gw/offsite/streams"
)

// schema is every table of a node, each set kept by the folder that owns it.
var schema = []store.Migrations{devices.Migrations, auth.Migrations, audit.Migrations,
	ingest.Migrations, events.Migrations, rules.Migrations, leases.Migrations, streams.Migrations, lease.Migrations}
