package api_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/api"
	"github.com/offsite-gw/offsite/api/auth"
	"github.com/offsite-gw/offsite/internal/audit"
	"github.com/offsite-gw/offsite/internal/store"
	"github.com/offsite-gw/offsite/internal/store/storetest"
)

func TestLogin(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		h := newHarness(t, db, nil)

		r := h.do("POST", "/api/v1/auth/login", "", map[string]string{"username": "Admin", "password": h.adminPW})
		require.Equal(t, 200, r.status, string(r.body))
		var lr api.LoginResponse
		r.json(t, &lr)
		require.Len(t, lr.Token, 43, "32 random bytes, base64url")
		require.Equal(t, h.clock.Now().Add(auth.DefaultTokenTTL), lr.ExpiresAt)
		require.Equal(t, "admin", lr.User.Username)
		require.Equal(t, auth.RoleAdmin, lr.User.Role)
		require.NotContains(t, string(r.body), "argon2", "no password hash in answers")

		// Only the token's hash is stored.
		var n int
		require.NoError(t, db.QueryRow(context.Background(), `SELECT COUNT(*) FROM tokens WHERE hash = ?`, lr.Token).Scan(&n))
		require.Zero(t, n)
		require.NoError(t, db.QueryRow(context.Background(), `SELECT COUNT(*) FROM tokens WHERE hash = ?`, auth.HashToken(lr.Token)).Scan(&n))
		require.Equal(t, 1, n)

		me := h.do("GET", "/api/v1/auth/me", lr.Token, nil)
		require.Equal(t, 200, me.status)
		require.Contains(t, string(me.body), `"username":"admin"`)

		// Unknown user and wrong password answer identically.
		wrong := h.do("POST", "/api/v1/auth/login", "", map[string]string{"username": "admin", "password": "Wrong-password-1"})
		unknown := h.do("POST", "/api/v1/auth/login", "", map[string]string{"username": "nobody", "password": "Wrong-password-1"})
		require.Equal(t, 401, wrong.status)
		require.Equal(t, 401, unknown.status)
		var we, ue api.ErrorBody
		wrong.json(t, &we)
		unknown.json(t, &ue)
		require.Equal(t, "invalid_credentials", we.Error.Code)
		require.Equal(t, we.Error.Code, ue.Error.Code)
		require.Equal(t, we.Error.Message, ue.Error.Message)

		// Logins are audited with IP and result; passwords never.
		logins := h.auditEntries(audit.Filter{Action: "auth.login"})
		results := map[string]int{}
		for _, e := range logins {
			results[e.Result]++
			require.NotEmpty(t, e.IP)
			require.NotContains(t, e.Detail, "Wrong-password")
		}
		require.Equal(t, 2, results["ok"])
		require.Equal(t, 2, results["failed"])

		// Logout revokes the token.
		require.Equal(t, 204, h.do("POST", "/api/v1/auth/logout", lr.Token, nil).status)
		r = h.do("GET", "/api/v1/auth/me", lr.Token, nil)
		require.Equal(t, 401, r.status)
		require.Equal(t, "invalid_token", r.errCode(t))
		require.Len(t, h.auditEntries(audit.Filter{Action: "auth.logout"}), 1)
	})
}

// Wrong passwords lock an account only for the address they came from: the rightful user at
// another address still logs in (the review locked the admin out from anywhere). The lock
// survives a restart, an admin can end it, and unknown usernames lock alike.
func TestLockoutPerAccountAndAddress(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		tune := func(s *auth.Service) { s.LockoutAfter, s.LockoutFor = 3, 10*time.Minute }
		h := newHarness(t, db, tune)
		opsID, _ := h.user("ops", auth.RoleMaintainer, nil, nil)
		pw := userPassword
		from := func(ip string) []string { return []string{"X-Forwarded-For", ip} }
		h.restartTrusting()
		attacker, home := from("203.0.113.9"), from("10.1.2.3")
		login := func(user, pass string, ip []string) resp {
			return h.do("POST", "/api/v1/auth/login", "", map[string]string{"username": user, "password": pass}, ip...)
		}
		for range 3 {
			require.Equal(t, 401, login("ops", "Not-the-password-1", attacker).status)
		}
		r := login("ops", pw, attacker)
		require.Equal(t, 429, r.status, "the right password does not open the account from the attacking address")
		require.Equal(t, "account_locked", r.errCode(t))
		require.Equal(t, "600", r.header.Get("Retry-After"))

		r = login("ops", pw, home)
		require.Equal(t, 200, r.status, "the rightful user at another address is not locked out: %s", r.body)
		// Nor is the admin, whose name the attacker may try too.
		for range 4 {
			login("admin", "Not-the-password-1", attacker)
		}
		require.Equal(t, 429, login("admin", h.adminPW, attacker).status)
		require.Equal(t, 200, login("admin", h.adminPW, home).status)

		// The lock is kept in the database (the audit log): a restarted gateway keeps it.
		h.restartTrusting()
		require.Equal(t, 429, login("ops", pw, attacker).status)

		// An admin ends it.
		admin := h.login("admin", h.adminPW)
		r = h.do("POST", "/api/v1/users/"+opsID+"/unlock", admin, nil)
		require.Equal(t, 200, r.status, string(r.body))
		require.Equal(t, 200, login("ops", pw, attacker).status)
		unlocks := h.auditEntries(audit.Filter{Action: "user.unlock"})
		require.Len(t, unlocks, 1)
		require.Equal(t, "admin", unlocks[0].Actor)
		require.Equal(t, "ops", unlocks[0].Target)
		_, viewer := h.user("kanban", auth.RoleViewer, nil, nil)
		require.Equal(t, 403, h.do("POST", "/api/v1/users/"+opsID+"/unlock", viewer, nil).status)

		// Time ends a lock too, and a failure after it starts a new count.
		for range 3 {
			login("ops", "Not-the-password-1", attacker)
		}
		require.Equal(t, 429, login("ops", pw, attacker).status)
		h.clock.Advance(10*time.Minute + time.Second)
		require.Equal(t, 401, login("ops", "Not-the-password-1", attacker).status)
		require.Equal(t, 200, login("ops", pw, attacker).status)

		// Unknown usernames lock the same way, so the lock does not reveal which names exist.
		for range 3 {
			require.Equal(t, 401, login("ghost", "Not-the-password-1", attacker).status)
		}
		r = login("ghost", "Not-the-password-1", attacker)
		require.Equal(t, 429, r.status)
		require.Equal(t, "account_locked", r.errCode(t))
	})
}

func TestLoginThrottledPerIP(t *testing.T) {
	h := newHarness(t, storetest.SQLite(t, testSchema...), func(s *auth.Service) { s.IPBurst, s.IPEvery = 3, time.Minute })
	// newHarness used one attempt for the admin login.
	bad := map[string]string{"username": "x", "password": "Not-the-password-1"}
	require.Equal(t, 401, h.do("POST", "/api/v1/auth/login", "", bad).status)
	require.Equal(t, 401, h.do("POST", "/api/v1/auth/login", "", bad).status)
	r := h.do("POST", "/api/v1/auth/login", "", map[string]string{"username": "admin", "password": h.adminPW})
	require.Equal(t, 429, r.status)
	require.Equal(t, "too_many_attempts", r.errCode(t))
	require.Equal(t, "60", r.header.Get("Retry-After"))
	h.clock.Advance(time.Minute)
	require.NotEmpty(t, h.login("admin", h.adminPW))
}

func TestTokenExpiry(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		h := newHarness(t, db, func(s *auth.Service) { s.TokenTTL = time.Hour })
		require.Equal(t, 200, h.do("GET", "/api/v1/auth/me", h.admin, nil).status)
		h.clock.Advance(59 * time.Minute)
		require.Equal(t, 200, h.do("GET", "/api/v1/auth/me", h.admin, nil).status)
		h.clock.Advance(time.Minute)
		r := h.do("GET", "/api/v1/auth/me", h.admin, nil)
		require.Equal(t, 401, r.status)
		require.Equal(t, "token_expired", r.errCode(t))
	})
}

func TestUnauthenticated(t *testing.T) {
	h := newHarness(t, storetest.SQLite(t, testSchema...), nil)
	for _, path := range []string{"/api/v1/sites", "/api/v1/devices", "/api/v1/users", "/api/v1/audit", "/api/v1/auth/me", "/api/v1/openapi.json", "/api/v1/no-such-route"} {
		r := h.do("GET", path, "", nil)
		require.Equal(t, 401, r.status, path)
		require.Equal(t, "unauthenticated", r.errCode(t), path)
	}
	r := h.do("GET", "/api/v1/sites", "not-a-token", nil)
	require.Equal(t, 401, r.status)
	require.Equal(t, "invalid_token", r.errCode(t))
	r = h.do("GET", "/api/v1/sites", "", nil, "Authorization", "Basic YWRtaW46YWRtaW4=")
	require.Equal(t, 401, r.status)

	// ?token= works for GET (img, EventSource) but not for changes.
	require.Equal(t, 200, h.do("GET", "/api/v1/sites?token="+h.admin, "", nil).status)
	r = h.do("POST", "/api/v1/sites?token="+h.admin, "", map[string]any{"id": "x", "name": "x"})
	require.Equal(t, 401, r.status)
	require.NotContains(t, h.logs.String(), h.admin, "tokens never reach the log")

	r = h.do("GET", "/api/v1/no-such-route", h.admin, nil)
	require.Equal(t, 404, r.status)
	require.Equal(t, "not_found", r.errCode(t))
}

func TestRoles(t *testing.T) {
	h := newHarness(t, storetest.SQLite(t, testSchema...), nil)
	h.seed()
	_, officer := h.user("officer1", auth.RoleOfficer, []string{deptEnv}, nil)
	_, viewer := h.user("viewer1", auth.RoleViewer, nil, nil)
	_, maint := h.user("maint1", auth.RoleMaintainer, nil, nil)
	_, service := h.user("worker1", auth.RoleService, nil, nil)

	site := map[string]any{"id": "site-new", "name": "新站点", "uscc": uscc("91410702MA44A1B2E"), "region_code": "410702", "department": deptEnv}
	for _, tc := range []struct {
		token, method, path string
		body                any
		want                int
	}{
		{officer, "GET", "/api/v1/users", nil, 403},
		{officer, "POST", "/api/v1/users", map[string]any{"username": "x", "role": "admin"}, 403},
		{officer, "GET", "/api/v1/audit", nil, 403},
		{officer, "POST", "/api/v1/sites", site, 403},
		{officer, "DELETE", "/api/v1/devices/cam-env-1", nil, 403},
		{officer, "GET", "/api/v1/sites", nil, 200},
		{officer, "GET", "/api/v1/devices", nil, 200},
		{officer, "GET", "/api/v1/profiles", nil, 200},
		{officer, "GET", "/api/v1/devices/export", nil, 403},
		{viewer, "GET", "/api/v1/users", nil, 403},
		{viewer, "POST", "/api/v1/devices/cam-env-1/maintenance", map[string]any{"kind": "note"}, 403},
		{viewer, "GET", "/api/v1/devices/cam-env-1/maintenance", nil, 200},
		{maint, "GET", "/api/v1/users", nil, 403},
		{maint, "GET", "/api/v1/audit", nil, 403},
		{maint, "POST", "/api/v1/sites", site, 201},
		{maint, "POST", "/api/v1/devices/cam-env-1/maintenance", map[string]any{"kind": "inspect", "note": "镜头清洁"}, 201},
		{maint, "GET", "/api/v1/devices/export", nil, 200},
		{service, "GET", "/api/v1/sites", nil, 403},
		{service, "GET", "/api/v1/devices", nil, 200},
		{service, "GET", "/api/v1/profiles/test-cam", nil, 200},
		{service, "PUT", "/api/v1/devices/cam-env-1", map[string]any{"site_id": "site-env", "kind": "camera"}, 403},
		{h.admin, "GET", "/api/v1/audit", nil, 200},
	} {
		r := h.do(tc.method, tc.path, tc.token, tc.body)
		require.Equal(t, tc.want, r.status, "%s %s: %s", tc.method, tc.path, r.body)
		if tc.want == 403 {
			require.Equal(t, "forbidden", r.errCode(t))
		}
	}
	denied := h.auditEntries(audit.Filter{Action: "access.denied"})
	require.NotEmpty(t, denied)
	require.Equal(t, "denied", denied[0].Result)
}

func TestUsersCRUD(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		h := newHarness(t, db, nil)
		adminUser, err := h.auth.GetUserByUsername(context.Background(), "admin")
		require.NoError(t, err)

		// Create without a password: one is generated and shown once.
		r := h.do("POST", "/api/v1/users", h.admin, map[string]any{
			"username": "Zhang.San", "display_name": "张三", "role": "officer",
			"departments": []string{deptEnv}, "regions": []string{"4107"},
		})
		require.Equal(t, 201, r.status, string(r.body))
		var created struct {
			auth.User
			GeneratedPassword string `json:"generated_password"`
		}
		r.json(t, &created)
		require.Equal(t, "zhang.san", created.Username)
		require.Equal(t, []string{deptEnv}, created.Departments)
		require.NotEmpty(t, created.GeneratedPassword)
		require.Equal(t, "/api/v1/users/"+created.ID, r.header.Get("Location"))
		tok := h.login("zhang.san", created.GeneratedPassword)

		// Duplicates, bad roles, weak passwords.
		r = h.do("POST", "/api/v1/users", h.admin, map[string]any{"username": "zhang.san", "role": "viewer"})
		require.Equal(t, 409, r.status)
		require.Equal(t, "username_taken", r.errCode(t))
		r = h.do("POST", "/api/v1/users", h.admin, map[string]any{"username": "li", "role": "root"})
		require.Equal(t, 400, r.status)
		require.Equal(t, "invalid_role", r.errCode(t))
		r = h.do("POST", "/api/v1/users", h.admin, map[string]any{"username": "li", "role": "viewer", "password": "password"})
		require.Equal(t, 400, r.status)
		require.Equal(t, "weak_password", r.errCode(t))
		r = h.do("POST", "/api/v1/users", h.admin, map[string]any{"username": "li", "role": "viewer", "regions": []string{"henan"}})
		require.Equal(t, 400, r.status)
		require.Equal(t, "invalid_scope", r.errCode(t))

		// Read, update (role change applies to the existing token at once), list.
		r = h.do("GET", "/api/v1/users/"+created.ID, h.admin, nil)
		require.Equal(t, 200, r.status)
		r = h.do("PUT", "/api/v1/users/"+created.ID, h.admin, map[string]any{"display_name": "张三丰", "role": "viewer", "regions": []string{"410702"}})
		require.Equal(t, 200, r.status, string(r.body))
		var upd auth.User
		r.json(t, &upd)
		require.Equal(t, "张三丰", upd.DisplayName)
		require.Equal(t, auth.RoleViewer, upd.Role)
		require.Empty(t, upd.Departments)
		var me auth.User
		h.do("GET", "/api/v1/auth/me", tok, nil).json(t, &me)
		require.Equal(t, auth.RoleViewer, me.Role)
		r = h.do("PUT", "/api/v1/users/"+created.ID, h.admin, map[string]any{"username": "other", "role": "viewer"})
		require.Equal(t, 400, r.status)
		require.Equal(t, "username_immutable", r.errCode(t))

		// Own password: needs the old one; then the old sessions are gone.
		r = h.do("PUT", "/api/v1/users/"+created.ID+"/password", tok, map[string]any{"password": "New-Password-77"})
		require.Equal(t, 400, r.status)
		r = h.do("PUT", "/api/v1/users/"+created.ID+"/password", tok, map[string]any{"password": "New-Password-77", "old_password": "Wrong-Password-1"})
		require.Equal(t, 403, r.status)
		require.Equal(t, "wrong_password", r.errCode(t))
		r = h.do("PUT", "/api/v1/users/"+created.ID+"/password", tok, map[string]any{"password": "New-Password-77", "old_password": created.GeneratedPassword})
		require.Equal(t, 204, r.status, string(r.body))
		require.Equal(t, 401, h.do("GET", "/api/v1/auth/me", tok, nil).status)
		tok = h.login("zhang.san", "New-Password-77")
		// …but not anybody else's.
		r = h.do("PUT", "/api/v1/users/"+adminUser.ID+"/password", tok, map[string]any{"password": "Hijack-Password-1"})
		require.Equal(t, 403, r.status)
		// Admin sets it without the old one.
		r = h.do("PUT", "/api/v1/users/"+created.ID+"/password", h.admin, map[string]any{"password": "Admin-Set-Pass-9"})
		require.Equal(t, 204, r.status, string(r.body))
		h.login("zhang.san", "Admin-Set-Pass-9")

		// Disable: tokens stop working, login is refused.
		tok = h.login("zhang.san", "Admin-Set-Pass-9")
		r = h.do("PUT", "/api/v1/users/"+created.ID, h.admin, map[string]any{"role": "viewer", "disabled": true})
		require.Equal(t, 200, r.status, string(r.body))
		require.Equal(t, 401, h.do("GET", "/api/v1/auth/me", tok, nil).status)
		r = h.do("POST", "/api/v1/auth/login", "", map[string]string{"username": "zhang.san", "password": "Admin-Set-Pass-9"})
		require.Equal(t, 403, r.status)
		require.Equal(t, "account_disabled", r.errCode(t))

		// The last admin stays.
		r = h.do("PUT", "/api/v1/users/"+adminUser.ID, h.admin, map[string]any{"role": "viewer"})
		require.Equal(t, 409, r.status)
		require.Equal(t, "last_admin", r.errCode(t))
		r = h.do("DELETE", "/api/v1/users/"+adminUser.ID, h.admin, nil)
		require.Equal(t, 409, r.status)

		var list struct{ Users []auth.User }
		h.do("GET", "/api/v1/users", h.admin, nil).json(t, &list)
		require.Len(t, list.Users, 2)

		require.Equal(t, 204, h.do("DELETE", "/api/v1/users/"+created.ID, h.admin, nil).status)
		require.Equal(t, 404, h.do("GET", "/api/v1/users/"+created.ID, h.admin, nil).status)
		require.Equal(t, 404, h.do("DELETE", "/api/v1/users/"+created.ID, h.admin, nil).status)

		// Every change is audited with who, what, target, IP and result.
		want := map[string]bool{"user.create": false, "user.update": false, "user.password": false, "user.delete": false}
		for _, e := range h.auditEntries(audit.Filter{Action: "user."}) {
			if _, ok := want[e.Action]; ok && e.Actor == "admin" && e.Target == "zhang.san" && e.Result == "ok" {
				require.NotEmpty(t, e.IP)
				want[e.Action] = true
			}
		}
		for a, seen := range want {
			require.True(t, seen, a)
		}
		// And no password is in the audit log.
		for _, e := range h.auditEntries(audit.Filter{Limit: 5000}) {
			require.NotContains(t, e.Detail, "New-Password-77")
			require.NotContains(t, e.Detail, created.GeneratedPassword)
		}
	})
}

func TestEnsureAdminOnlyOnce(t *testing.T) {
	h := newHarness(t, storetest.SQLite(t, testSchema...), nil)
	pw, created, err := h.auth.EnsureAdmin(context.Background())
	require.NoError(t, err)
	require.False(t, created)
	require.Empty(t, pw)
	require.Len(t, h.adminPW, 20)
	require.False(t, strings.Contains(h.logs.String(), h.adminPW), "the first password is returned, not logged")
	es := h.auditEntries(audit.Filter{Action: "user.create", Actor: "system"})
	require.Len(t, es, 1)
}
