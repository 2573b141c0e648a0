package api_test

import (
	"strings"
	"testing"

	"github.com/offsite-gw/offsite/api/auth"
	"github.com/offsite-gw/offsite/internal/store"
	"github.com/offsite-gw/offsite/internal/store/storetest"
	"github.com/stretchr/testify/require"
)

// A user's wall layout is kept at the gateway: it survives a restart, is their own (another
// user does not see or overwrite it), and bad documents are refused without losing the last.
func TestWallLayoutKeptPerUser(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		h := newHarness(t, db, nil)
		_, monitor := h.user("monitor", auth.RoleViewer, nil, nil)
		_, other := h.user("monitor-2", auth.RoleViewer, nil, nil)

		r := h.do("GET", "/api/v1/auth/me/preferences/wall", monitor, nil)
		require.Equal(t, 200, r.status)
		require.JSONEq(t, `{}`, string(r.body))

		layout := map[string]any{"layout": 9, "tiles": []string{"cam-a", "", "cam-b"}}
		r = h.do("PUT", "/api/v1/auth/me/preferences/wall", monitor, layout)
		require.Equal(t, 204, r.status, string(r.body))
		r = h.do("PUT", "/api/v1/auth/me/preferences/wall", other, map[string]any{"layout": 1, "tiles": []string{"cam-z"}})
		require.Equal(t, 204, r.status, string(r.body))

		h.restart()
		r = h.do("GET", "/api/v1/auth/me/preferences/wall", monitor, nil)
		require.Equal(t, 200, r.status)
		require.JSONEq(t, `{"layout": 9, "tiles": ["cam-a", "", "cam-b"]}`, string(r.body))
		r = h.do("GET", "/api/v1/auth/me/preferences/wall", other, nil)
		require.JSONEq(t, `{"layout": 1, "tiles": ["cam-z"]}`, string(r.body))

		r = h.do("PUT", "/api/v1/auth/me/preferences/wall", monitor, map[string]any{"pad": strings.Repeat("x", auth.MaxPreferenceBytes)})
		require.Equal(t, 400, r.status)
		require.Equal(t, "preference_too_large", r.errCode(t))
		r = h.do("PUT", "/api/v1/auth/me/preferences/Bad%20Name", monitor, layout)
		require.Equal(t, 400, r.status)
		require.Equal(t, "invalid_preference", r.errCode(t))
		r = h.do("GET", "/api/v1/auth/me/preferences/wall", monitor, nil)
		require.JSONEq(t, `{"layout": 9, "tiles": ["cam-a", "", "cam-b"]}`, string(r.body), "a refused document loses nothing")
		require.Equal(t, 401, h.do("GET", "/api/v1/auth/me/preferences/wall", "", nil).status)
	})
}
