package main_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// The repository's profile folder validates as the README says (the shipped ones are in
// builtin/), and an export without the gateway's configuration says what it needs instead of
// creating a data folder and printing an empty sheet.
func TestCLIAsTheReadmeSays(t *testing.T) {
	code, stdout, stderr := run(t, nil, "profiles", "validate", "../firmware-profiles")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "all profiles valid")

	dir := filepath.Join(t.TempDir(), "not-here")
	code, stdout, stderr = run(t, []string{"OFFSITE_DATA_DIR=" + dir}, "devices", "export")
	require.NotEqual(t, 0, code)
	require.Empty(t, stdout, "no empty sheet")
	require.Contains(t, stderr, "--config")
	_, err := os.Stat(dir)
	require.True(t, os.IsNotExist(err), "the data folder was created")
}
