package lease

import (
	"embed"

	"github.com/offsite-gw/offsite/internal/store"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations are the tables this folder owns (instance leases); pass them to store.Open.
var Migrations = store.Migrations{Owner: "internal/lease", FS: migrationFiles}
