package store_test

import (
	"context"
	"testing"

	"github.com/offsite-gw/offsite/gateway/store"
	"github.com/offsite-gw/offsite/gateway/store/storetest"
	"github.com/stretchr/testify/require"
)

func TestMigrateIsIdempotentAndVersioned(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		migs, err := store.Migrations()
		require.NoError(t, err)
		require.NotEmpty(t, migs)
		v, err := db.SchemaVersion(ctx)
		require.NoError(t, err)
		require.Equal(t, migs[len(migs)-1].Version, v)
		// Running again applies nothing and fails nothing.
		require.NoError(t, db.Migrate(ctx))
		var n int
		require.NoError(t, db.QueryRow(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&n))
		require.Equal(t, len(migs), n)
	})
}

func TestNewerSchemaIsRefused(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		_, err := db.Exec(ctx, `INSERT INTO schema_migrations(version, name, applied_at) VALUES (?, ?, ?)`, 9999, "future", 0)
		require.NoError(t, err)
		err = db.Migrate(ctx)
		require.ErrorContains(t, err, "newer than this binary")
	})
}

func TestRebindAndTransactions(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		_, err := db.Exec(ctx, `INSERT INTO audit(at, action, result, detail) VALUES (?, ?, ?, '?')`, 1, "a", "ok")
		require.NoError(t, err)
		boom := store.ErrNoRows
		err = db.InTx(ctx, func(tx *store.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO audit(at, action, result) VALUES (?, ?, ?)`, 2, "b", "ok"); err != nil {
				return err
			}
			return boom
		})
		require.ErrorIs(t, err, boom)
		var n int
		var detail string
		require.NoError(t, db.QueryRow(ctx, `SELECT COUNT(*), MAX(detail) FROM audit`).Scan(&n, &detail))
		require.Equal(t, 1, n, "rolled-back insert must not be visible")
		require.Equal(t, "?", detail, "a ? inside a literal is not a placeholder")
	})
}
