package config_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/events"
	"github.com/offsite-gw/offsite/gateway/config"
)

// events.alerts.types routes alert types and is checked at load (issue 16).
func TestAlertTypesConfig(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "offsite.yml")
	require.NoError(t, os.WriteFile(p, []byte("events:\n  alerts:\n    types:\n      video.tamper: {route: officers}\n      device.: {route: maintainers, close_on_clear: true}\n"), 0o600))
	cfg, err := config.Load(p, nil)
	require.NoError(t, err)
	require.Equal(t, map[string]events.TypePolicy{"video.tamper": {Route: "officers"}, "device.": {Route: "maintainers", CloseOnClear: true}},
		cfg.Events.Alerts.Types)

	require.NoError(t, os.WriteFile(p, []byte("events:\n  alerts:\n    types:\n      video.tamper: {route: everyone}\n"), 0o600))
	_, err = config.Load(p, nil)
	require.ErrorContains(t, err, "must be maintainers, officers or all")
}
