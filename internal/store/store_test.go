package store_test

import (
	"context"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/internal/store"
	"github.com/offsite-gw/offsite/internal/store/storetest"
)

// Two owners' migrations, as two folders would keep them next to their code.
var (
	notes = store.Migrations{Owner: "notes", FS: fstest.MapFS{
		"migrations/0001_notes.sql":     {Data: []byte("CREATE TABLE notes (\n  id {{serial}},\n  at BIGINT NOT NULL,\n  body TEXT NOT NULL DEFAULT '',\n  blob {{blob}}\n);\n")},
		"migrations/0003_notes_tag.sql": {Data: []byte("ALTER TABLE notes ADD COLUMN tag TEXT NOT NULL DEFAULT '';\n")},
		"migrations/README.md":          {Data: []byte("not a migration")},
	}}
	tags = store.Migrations{Owner: "tags", FS: fstest.MapFS{
		"migrations/0002_tags.sql": {Data: []byte("CREATE TABLE IF NOT EXISTS tags (name TEXT PRIMARY KEY);\n")},
	}}
	testSchema = []store.Migrations{notes, tags}
)

func TestMigrateIsIdempotentAndVersioned(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		v, err := db.SchemaVersion(ctx)
		require.NoError(t, err)
		require.Equal(t, 3, v)
		// Running again applies nothing and fails nothing.
		require.NoError(t, db.Migrate(ctx, testSchema...))
		var n int
		require.NoError(t, db.QueryRow(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&n))
		require.Equal(t, 3, n)
		_, err = db.Exec(ctx, `INSERT INTO notes(at, tag) VALUES (1, 'x')`)
		require.NoError(t, err, "0003 ran after 0001")
		_, err = db.Exec(ctx, `INSERT INTO tags(name) VALUES ('x')`)
		require.NoError(t, err)
	})
}

// A version that an owner adds below the newest applied one (a table split out of an older
// migration, say) is still applied to an existing database.
func TestMissingLowerVersionIsApplied(t *testing.T) {
	storetest.Each(t, []store.Migrations{notes}, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		_, err := db.Exec(ctx, `INSERT INTO tags(name) VALUES ('x')`)
		require.Error(t, err, "tags is not created without its owner's migrations")
		require.NoError(t, db.Migrate(ctx, notes, tags))
		_, err = db.Exec(ctx, `INSERT INTO tags(name) VALUES ('x')`)
		require.NoError(t, err)
		var names []string
		rows, err := db.Query(ctx, `SELECT name FROM schema_migrations ORDER BY version`)
		require.NoError(t, err)
		defer rows.Close()
		for rows.Next() {
			var s string
			require.NoError(t, rows.Scan(&s))
			names = append(names, s)
		}
		require.Equal(t, []string{"notes", "tags", "notes_tag"}, names)
	})
}

func TestNewerSchemaIsRefused(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		_, err := db.Exec(ctx, `INSERT INTO schema_migrations(version, name, applied_at) VALUES (?, ?, ?)`, 9999, "future", 0)
		require.NoError(t, err)
		err = db.Migrate(ctx, testSchema...)
		require.ErrorContains(t, err, "newer than this binary")
	})
}

func TestCollectRefusesSharedVersionsAndBadNames(t *testing.T) {
	clash := store.Migrations{Owner: "clash", FS: fstest.MapFS{"migrations/0002_other.sql": {Data: []byte("SELECT 1;")}}}
	_, err := store.Collect(notes, tags, clash)
	require.ErrorContains(t, err, "tags/0002_tags.sql and clash/0002_other.sql share version 2")

	bad := store.Migrations{Owner: "bad", FS: fstest.MapFS{"migrations/first.sql": {Data: []byte("SELECT 1;")}}}
	_, err = store.Collect(bad)
	require.ErrorContains(t, err, "bad/first.sql must be named NNNN_name.sql")

	migs, err := store.Collect(tags, notes, notes) // order of owners does not matter; twice is once
	require.NoError(t, err)
	require.Len(t, migs, 3)
	require.Equal(t, []int{1, 2, 3}, []int{migs[0].Version, migs[1].Version, migs[2].Version})
	require.Equal(t, "tags", migs[1].Owner)
}

func TestRebindAndTransactions(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		_, err := db.Exec(ctx, `INSERT INTO notes(at, body) VALUES (?, '?')`, 1)
		require.NoError(t, err)
		boom := store.ErrNoRows
		err = db.InTx(ctx, func(tx *store.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO notes(at) VALUES (?)`, 2); err != nil {
				return err
			}
			return boom
		})
		require.ErrorIs(t, err, boom)
		var n int
		var body string
		require.NoError(t, db.QueryRow(ctx, `SELECT COUNT(*), MAX(body) FROM notes`).Scan(&n, &body))
		require.Equal(t, 1, n, "rolled-back insert must not be visible")
		require.Equal(t, "?", body, "a ? inside a literal is not a placeholder")
	})
}
