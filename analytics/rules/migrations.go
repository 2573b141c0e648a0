package rules

import (
	"embed"

	"github.com/offsite-gw/offsite/internal/store"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations are the tables this folder owns (the rules' evaluation state); pass them to store.Open.
var Migrations = store.Migrations{Owner: "analytics/rules", FS: migrationFiles}
