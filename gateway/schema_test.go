package main

import (
	"context"
	"os"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/internal/store"
	"github.com/offsite-gw/offsite/internal/store/storetest"
)

// A database made before each folder kept its own migrations had users, tokens and audit
// created by version 1. Opening it with today's sets applies the split-out versions 2 and 3
// as no-ops, keeps every row, and ends at the newest version.
func TestDatabaseFromBeforeTheMigrationSplitOpens(t *testing.T) {
	old, err := os.ReadFile("testdata/0001_foundation_before_split.sql")
	require.NoError(t, err)
	before := store.Migrations{Owner: "store (before the split)", FS: fstest.MapFS{"migrations/0001_foundation.sql": {Data: old}}}
	storetest.Each(t, []store.Migrations{before}, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		_, err := db.Exec(ctx, `INSERT INTO users(id, username, password_hash, role, created_at, updated_at) VALUES ('u1', 'admin', 'x', 'admin', 1, 1)`)
		require.NoError(t, err)
		_, err = db.Exec(ctx, `INSERT INTO audit(at, action, result) VALUES (1, 'login', 'ok')`)
		require.NoError(t, err)

		require.NoError(t, db.Migrate(ctx, schema...))

		var users, audits int
		require.NoError(t, db.QueryRow(ctx, `SELECT COUNT(*) FROM users`).Scan(&users))
		require.NoError(t, db.QueryRow(ctx, `SELECT COUNT(*) FROM audit`).Scan(&audits))
		require.Equal(t, 1, users)
		require.Equal(t, 1, audits)
		migs, err := store.Collect(schema...)
		require.NoError(t, err)
		v, err := db.SchemaVersion(ctx)
		require.NoError(t, err)
		require.Equal(t, migs[len(migs)-1].Version, v)
		var applied int
		require.NoError(t, db.QueryRow(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&applied))
		require.Equal(t, len(migs), applied, "every version recorded once")
	})
}
