package audit_test

import (
	"github.com/offsite-gw/offsite/internal/audit"
	"github.com/offsite-gw/offsite/internal/store"
)

// testSchema is every table these tests touch, from the folders that own them.
var testSchema = []store.Migrations{audit.Migrations}
