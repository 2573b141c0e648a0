package auth_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/api/auth"
	"github.com/offsite-gw/offsite/internal/audit"
	"github.com/offsite-gw/offsite/internal/errs"
	"github.com/offsite-gw/offsite/internal/store"
	"github.com/offsite-gw/offsite/internal/store/storetest"
)

var cheap = auth.Argon2Params{Memory: 1024, Time: 1, Threads: 1}

// Concurrent wrong passwords are all counted: a burst cannot slip past the lock-out.
func TestConcurrentFailuresLock(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s := &auth.Service{DB: db, Audit: &audit.Log{DB: db}, Argon2: cheap, LockoutAfter: 5, IPBurst: 100}
		_, err := s.CreateUser(ctx, auth.User{Username: "ops", Role: auth.RoleMaintainer}, "Right-Password-1")
		require.NoError(t, err)
		var wg sync.WaitGroup
		for range 5 {
			wg.Go(func() {
				_, _, _, err := s.Login(ctx, "ops", "Wrong-Password-1", "10.0.0.1")
				assert.Equal(t, "invalid_credentials", errs.CodeOf(err))
			})
		}
		wg.Wait()
		_, _, _, err = s.Login(ctx, "ops", "Right-Password-1", "10.0.0.1")
		require.Equal(t, "account_locked", errs.CodeOf(err))
		require.Greater(t, auth.RetryAfter(err), 14*time.Minute)
		_, _, _, err = s.Login(ctx, "ops", "Right-Password-1", "10.0.0.2")
		require.NoError(t, err, "another address is not locked")
	})
}

// A hash made with older parameters is upgraded at the next successful login.
func TestHashUpgradedOnLogin(t *testing.T) {
	db := storetest.SQLite(t, testSchema...)
	ctx := context.Background()
	old := &auth.Service{DB: db, Argon2: auth.Argon2Params{Memory: 512, Time: 1, Threads: 1}}
	_, err := old.CreateUser(ctx, auth.User{Username: "ops", Role: auth.RoleViewer}, "Right-Password-1")
	require.NoError(t, err)
	s := &auth.Service{DB: db, Argon2: cheap}
	_, _, _, err = s.Login(ctx, "ops", "Right-Password-1", "10.0.0.1")
	require.NoError(t, err)
	var hash string
	require.NoError(t, db.QueryRow(ctx, `SELECT password_hash FROM users WHERE username = ?`, "ops").Scan(&hash))
	require.Contains(t, hash, "m=1024,t=1,p=1")
	_, _, _, err = s.Login(ctx, "ops", "Right-Password-1", "10.0.0.1")
	require.NoError(t, err)
}

func TestAllowed(t *testing.T) {
	require.True(t, auth.Allowed(auth.RoleAdmin, auth.PermUsersManage))
	require.False(t, auth.Allowed(auth.RoleMaintainer, auth.PermUsersManage))
	require.True(t, auth.Allowed(auth.RoleMaintainer, auth.PermDevicesWrite))
	require.False(t, auth.Allowed(auth.RoleOfficer, auth.PermSitesWrite))
	require.False(t, auth.Allowed(auth.RoleService, auth.PermSitesRead))
	require.True(t, auth.Allowed(auth.RoleService, auth.PermDevicesRead))
	require.False(t, auth.Allowed(auth.Role("root"), auth.PermProfilesRead))

	u := auth.User{Role: auth.RoleOfficer, Departments: []string{"市生态环境局"}, Regions: []string{"4107"}}
	require.Equal(t, []string{"市生态环境局"}, u.Scope().Departments)
	u.Role = auth.RoleMaintainer
	require.True(t, u.Scope().Unlimited(), "only officers and viewers are scoped")
}
