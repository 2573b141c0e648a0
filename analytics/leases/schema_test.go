package leases_test

import (
	"github.com/offsite-gw/offsite/analytics/leases"
	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/internal/store"
)

// testSchema is every table these tests touch, from the folders that own them.
var testSchema = []store.Migrations{devices.Migrations, leases.Migrations}
