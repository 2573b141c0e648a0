package audit

import (
	"embed"

	"github.com/offsite-gw/offsite/internal/store"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations are the tables this folder owns (the audit log); pass them to store.Open.
var Migrations = store.Migrations{Owner: "internal/audit", FS: migrationFiles}
