// Package storetest gives tests a fresh, migrated database on every backend the machine has:
// always SQLite, and PostgreSQL when OFFSITE_TEST_PG_DSN names a server (make test starts one).
// Under CI (CI=true) a missing PostgreSQL is a failure, not a skip.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/offsite-gw/offsite/internal/store"
)

// EnvPG names the environment variable holding the admin DSN of the test PostgreSQL.
const EnvPG = "OFFSITE_TEST_PG_DSN"

// Backend is a named way to get a fresh database.
type Backend struct {
	Name string
	Open func(t testing.TB, sets ...store.Migrations) *store.DB
}

// Backends returns SQLite and, when available, PostgreSQL.
func Backends(t testing.TB) []Backend {
	bs := []Backend{{Name: "sqlite", Open: SQLite}}
	if os.Getenv(EnvPG) != "" {
		bs = append(bs, Backend{Name: "postgres", Open: Postgres})
	} else if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not set: make test starts PostgreSQL and sets it", EnvPG)
	} else {
		t.Logf("%s not set: PostgreSQL backend not tested (make test sets it)", EnvPG)
	}
	return bs
}

// Each runs fn as a subtest against a fresh database of every backend, migrated with sets.
func Each(t *testing.T, sets []store.Migrations, fn func(t *testing.T, db *store.DB)) {
	for _, b := range Backends(t) {
		t.Run(b.Name, func(t *testing.T) { fn(t, b.Open(t, sets...)) })
	}
}

// SQLite opens an SQLite database in a temporary directory, migrated with sets.
func SQLite(t testing.TB, sets ...store.Migrations) *store.DB {
	t.Helper()
	dir := t.TempDir()
	db, err := store.Open(context.Background(), "sqlite:"+filepath.Join(dir, "test.db"), dir, sets...)
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// Postgres creates a new database on the test server, migrates it with sets and drops it
// afterwards.
func Postgres(t testing.TB, sets ...store.Migrations) *store.DB {
	t.Helper()
	dsn := PostgresDSN(t)
	db, err := store.Open(context.Background(), dsn, "", sets...)
	if err != nil {
		t.Fatalf("open postgres %s: %v", dsn, err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// PostgresDSN creates a new, empty database on the test server and returns its DSN, for tests
// that open it more than once (several instances sharing one database) or hand it to a child
// process. The database is dropped afterwards, connections still open included.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	admin := os.Getenv(EnvPG)
	if admin == "" {
		t.Skipf("%s not set", EnvPG)
	}
	ctx := context.Background()
	adb, err := store.OpenNoMigrate(admin)
	if err != nil {
		t.Fatalf("connect admin postgres: %v", err)
	}
	defer adb.Close()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "offsite_test_" + hex.EncodeToString(b[:])
	if _, err := adb.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("parse %s: %v", EnvPG, err)
	}
	u.Path = "/" + name
	t.Cleanup(func() {
		if a, err := store.OpenNoMigrate(admin); err == nil {
			_, _ = a.ExecContext(context.Background(), fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", name))
			_ = a.Close()
		}
	})
	return u.String()
}
