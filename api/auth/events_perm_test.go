package auth_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/api/auth"
)

// The event, alert, evidence and uplink rows of the role matrix (api/README.md).
func TestAllowedEvents(t *testing.T) {
	want := map[auth.Permission][]auth.Role{
		auth.PermEventsRead:    {auth.RoleAdmin, auth.RoleMaintainer, auth.RoleOfficer, auth.RoleViewer},
		auth.PermEventsWrite:   {auth.RoleAdmin, auth.RoleService},
		auth.PermAlertsAct:     {auth.RoleAdmin, auth.RoleOfficer},
		auth.PermEvidenceWrite: {auth.RoleAdmin, auth.RoleOfficer, auth.RoleService},
		auth.PermUplinksRead:   {auth.RoleAdmin, auth.RoleMaintainer},
		auth.PermUplinksManage: {auth.RoleAdmin},
	}
	for p, roles := range want {
		for _, r := range auth.Roles() {
			allowed := false
			for _, w := range roles {
				allowed = allowed || w == r
			}
			require.Equal(t, allowed, auth.Allowed(r, p), "%s %s", r, p)
		}
	}
}
