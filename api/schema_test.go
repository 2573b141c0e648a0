package api_test

import (
	"github.com/offsite-gw/offsite/analytics/leases"
	"github.com/offsite-gw/offsite/analytics/rules"
	"github.com/offsite-gw/offsite/api/auth"
	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/events"
	"github.com/offsite-gw/offsite/ingest"
	"github.com/offsite-gw/offsite/internal/audit"
	"github.com/offsite-gw/offsite/internal/store"
	"github.com/offsite-gw/offsite/streams"
)

// testSchema is every table these tests touch, from the folders that own them.
var testSchema = []store.Migrations{devices.Migrations, auth.Migrations, audit.Migrations, events.Migrations, ingest.Migrations, leases.Migrations, rules.Migrations, streams.Migrations}
