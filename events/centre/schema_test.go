package centre_test

import (
	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/events"
	"github.com/offsite-gw/offsite/internal/store"
)

// testSchema is every table these tests touch, from the folders that own them.
var testSchema = []store.Migrations{devices.Migrations, events.Migrations}
