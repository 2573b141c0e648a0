package devices

import (
	"embed"

	"github.com/offsite-gw/offsite/internal/store"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations are the tables this folder owns (sites, devices and maintenance records); pass them to store.Open.
var Migrations = store.Migrations{Owner: "devices", FS: migrationFiles}
