package events

import (
	"embed"

	"github.com/offsite-gw/offsite/internal/store"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations are the tables this folder owns (events, alarms, alerts, uplink cursors and dead letters); pass them to store.Open.
var Migrations = store.Migrations{Owner: "events", FS: migrationFiles}
