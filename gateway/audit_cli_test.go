package main_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite"
)

// `offsite audit verify` passes on an untouched log (the CLI's own imports are audited) and
// exits 1 naming the first record changed behind its back.
func TestAuditVerifyCLI(t *testing.T) {
	dir := t.TempDir()
	env := []string{"OFFSITE_DATA_DIR=" + dir}
	code, stdout, stderr := run(t, env, "audit", "verify")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "chain intact")

	// Write a few records through the CLI's own audit: a failed import is audited.
	p := filepath.Join(dir, "bad.csv")
	require.NoError(t, os.WriteFile(p, []byte("site_id\nx\n"), 0o644))
	for range 3 {
		code, _, _ = run(t, env, "devices", "import", p)
		require.Equal(t, 1, code)
	}
	code, stdout, stderr = run(t, env, "audit", "verify")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "3 record(s) checked")

	db, err := sql.Open("sqlite", filepath.Join(dir, "offsite.db"))
	require.NoError(t, err)
	defer db.Close()
	var second int64
	require.NoError(t, db.QueryRow(`SELECT id FROM audit ORDER BY id LIMIT 1 OFFSET 1`).Scan(&second))
	_, err = db.ExecContext(context.Background(), `UPDATE audit SET actor = 'someone-else' WHERE id = ?`, second)
	require.NoError(t, err)
	code, _, stderr = run(t, env, "audit", "verify")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "audit chain broken at record")
	require.Contains(t, stderr, "someone-else")
}
