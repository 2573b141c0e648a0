package audit_test

import (
	"context"
	"testing"
	"time"

	"github.com/offsite-gw/offsite/internal/audit"
	"github.com/offsite-gw/offsite/internal/store"
	"github.com/offsite-gw/offsite/internal/store/storetest"
	"github.com/stretchr/testify/require"
)

func TestRecordAndFilter(t *testing.T) {
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		l := &audit.Log{DB: db}
		t0 := time.Now().Add(-time.Hour)
		require.NoError(t, l.Record(ctx, audit.Entry{At: t0, Actor: "admin", Action: "auth.login", IP: "10.1.1.1"}))
		require.NoError(t, l.Record(ctx, audit.Entry{Actor: "admin", Action: "site.create", Target: "s1"}))
		require.NoError(t, l.Record(ctx, audit.Entry{Actor: "bob", Action: "auth.login", Result: "denied"}))

		all, err := l.List(ctx, audit.Filter{})
		require.NoError(t, err)
		require.Len(t, all, 3)
		require.Equal(t, "bob", all[0].Actor, "newest first")
		require.Equal(t, "denied", all[0].Result)

		logins, err := l.List(ctx, audit.Filter{Action: "auth."})
		require.NoError(t, err)
		require.Len(t, logins, 2)

		admin, err := l.List(ctx, audit.Filter{Actor: "admin", From: t0.Add(time.Minute)})
		require.NoError(t, err)
		require.Len(t, admin, 1)
		require.Equal(t, "site.create", admin[0].Action)
	})
}
