package streams

import (
	"embed"

	"github.com/offsite-gw/offsite/internal/store"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations are the tables this folder owns (the RTSP re-serve's consumers); pass them to
// store.Open.
var Migrations = store.Migrations{Owner: "streams", FS: migrationFiles}
