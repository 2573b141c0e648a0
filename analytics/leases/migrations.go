package leases

import (
	"embed"

	"github.com/offsite-gw/offsite/internal/store"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations are the tables this folder owns (camera leases, workers and per-camera analytics settings); pass them to store.Open.
var Migrations = store.Migrations{Owner: "analytics/leases", FS: migrationFiles}
