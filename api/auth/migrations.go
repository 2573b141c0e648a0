package auth

import (
	"embed"

	"github.com/offsite-gw/offsite/internal/store"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations are the tables this folder owns (users and session tokens); pass them to store.Open.
var Migrations = store.Migrations{Owner: "api/auth", FS: migrationFiles}
