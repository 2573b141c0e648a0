// Package store opens the node's metadata database — an SQLite file (pure-Go driver, WAL) by
// default or PostgreSQL (pgx v5) by DSN — and runs the versioned migrations that each owning
// folder keeps next to its code (devices/migrations, events/migrations, …) on either. Domain
// packages keep their own SQL and run it through DB, which hides the two differences that
// matter: placeholder syntax and a few column types. It imports no domain package.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	_ "modernc.org/sqlite"             // registers "sqlite"
)

// Dialect names the SQL backend behind a DB.
type Dialect string

const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// DB is a database handle that knows its dialect.
type DB struct {
	*sql.DB
	Dialect Dialect
	// Location is a human-readable description of where the data lives (file path or
	// host/database), never containing a password.
	Location string
}

// Open connects to dsn and applies the migrations of sets (see Migrate).
//
// dsn forms: "" (SQLite file offsite.db in dataDir), "sqlite:PATH" or a path ending in .db
// (SQLite file), "postgres://…" or "postgresql://…" (PostgreSQL).
func Open(ctx context.Context, dsn, dataDir string, sets ...Migrations) (*DB, error) {
	db, err := open(dsn, dataDir)
	if err != nil {
		return nil, err
	}
	pingCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := db.PingContext(pingCtx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("store: connect to %s: %w", db.Location, err)
	}
	if err := db.Migrate(ctx, sets...); err != nil {
		_ = db.Close()
		return nil, err
	}
	return db, nil
}

func open(dsn, dataDir string) (*DB, error) {
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		sdb, err := sql.Open("pgx", dsn)
		if err != nil {
			return nil, fmt.Errorf("store: postgres dsn: %w", err)
		}
		sdb.SetMaxOpenConns(16)
		// Keep what a burst opened: with fewer idle than open, every burst (a centre's
		// hundred sites re-reading their credentials at once) closed the extra connections
		// and the next one paid a new server process and re-prepared statements for each.
		sdb.SetMaxIdleConns(16)
		sdb.SetConnMaxIdleTime(5 * time.Minute)
		return &DB{DB: sdb, Dialect: Postgres, Location: redactDSN(dsn)}, nil
	default:
		path := strings.TrimPrefix(dsn, "sqlite:")
		if path == "" {
			if dataDir == "" {
				dataDir = "."
			}
			path = filepath.Join(dataDir, "offsite.db")
		}
		if dir := filepath.Dir(path); dir != "" {
			if err := os.MkdirAll(dir, 0o750); err != nil {
				return nil, fmt.Errorf("store: create data directory %s: %w", dir, err)
			}
		}
		// _txlock=immediate takes the write lock when a transaction starts, so two writers
		// wait on busy_timeout instead of failing with SQLITE_BUSY on lock upgrade.
		q := "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)" +
			"&_pragma=synchronous(NORMAL)&_txlock=immediate"
		sdb, err := sql.Open("sqlite", "file:"+path+q)
		if err != nil {
			return nil, fmt.Errorf("store: sqlite %s: %w", path, err)
		}
		// One writer at a time is SQLite's model; a small pool still lets readers proceed in WAL.
		sdb.SetMaxOpenConns(8)
		return &DB{DB: sdb, Dialect: SQLite, Location: path}, nil
	}
}

func redactDSN(dsn string) string {
	at := strings.LastIndex(dsn, "@")
	scheme := strings.Index(dsn, "://")
	if at < 0 || scheme < 0 || at < scheme {
		return dsn
	}
	userinfo := dsn[scheme+3 : at]
	if i := strings.Index(userinfo, ":"); i >= 0 {
		userinfo = userinfo[:i] + ":***"
	}
	return dsn[:scheme+3] + userinfo + dsn[at:]
}

// Rebind rewrites ? placeholders to $1, $2 … for PostgreSQL. Queries are written with ?.
// A ? inside a quoted string literal is left alone.
func (db *DB) Rebind(q string) string {
	if db.Dialect != Postgres {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 8)
	n := 0
	inQuote := false
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case c == '\'':
			inQuote = !inQuote
			b.WriteByte(c)
		case c == '?' && !inQuote:
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// Exec runs a statement written with ? placeholders.
func (db *DB) Exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return db.ExecContext(ctx, db.Rebind(q), args...)
}

// Query runs a query written with ? placeholders.
func (db *DB) Query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return db.QueryContext(ctx, db.Rebind(q), args...)
}

// QueryRow runs a single-row query written with ? placeholders.
func (db *DB) QueryRow(ctx context.Context, q string, args ...any) *sql.Row {
	return db.QueryRowContext(ctx, db.Rebind(q), args...)
}

// Tx is a transaction that rebinds placeholders like DB.
type Tx struct {
	*sql.Tx
	db *DB
}

// Exec runs a statement written with ? placeholders inside the transaction.
func (tx *Tx) Exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return tx.ExecContext(ctx, tx.db.Rebind(q), args...)
}

// Query runs a query written with ? placeholders inside the transaction.
func (tx *Tx) Query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return tx.QueryContext(ctx, tx.db.Rebind(q), args...)
}

// QueryRow runs a single-row query written with ? placeholders inside the transaction.
func (tx *Tx) QueryRow(ctx context.Context, q string, args ...any) *sql.Row {
	return tx.QueryRowContext(ctx, tx.db.Rebind(q), args...)
}

// InTx runs fn in a transaction, committing if fn returns nil and rolling back otherwise.
func (db *DB) InTx(ctx context.Context, fn func(tx *Tx) error) error {
	stx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	tx := &Tx{Tx: stx, db: db}
	if err := fn(tx); err != nil {
		_ = stx.Rollback()
		return err
	}
	if err := stx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	return nil
}

// IsUniqueViolation reports whether err is a unique or primary-key constraint failure.
func IsUniqueViolation(err error) bool {
	if err == nil {
		return false
	}
	s := err.Error()
	return strings.Contains(s, "UNIQUE constraint failed") || // sqlite
		strings.Contains(s, "SQLSTATE 23505") // postgres unique_violation
}

// IsForeignKeyViolation reports whether err is a foreign-key constraint failure.
func IsForeignKeyViolation(err error) bool {
	if err == nil {
		return false
	}
	s := err.Error()
	return strings.Contains(s, "FOREIGN KEY constraint failed") || strings.Contains(s, "SQLSTATE 23503")
}

// Migrations are the schema steps one folder owns, kept next to its code as files named
// NNNN_name.sql in Dir of FS (an embed.FS of its migrations/ folder). Versions are one
// sequence across every owner, so two owners never share a number.
type Migrations struct {
	Owner string // the folder that owns the tables, for error messages ("devices", "events")
	FS    fs.FS
	Dir   string // default "migrations"
}

// Migration is one versioned schema step.
type Migration struct {
	Version int
	Name    string
	Owner   string
	SQL     string // with dialect tokens, see expand
}

// Collect reads the migrations of every set, in version order. Two files with one version, or
// a file not named NNNN_name.sql, are refused.
func Collect(sets ...Migrations) ([]Migration, error) {
	var out []Migration
	seen := map[int]string{}
	for _, set := range sets {
		dir := set.Dir
		if dir == "" {
			dir = "migrations"
		}
		entries, err := fs.ReadDir(set.FS, dir)
		if err != nil {
			return nil, fmt.Errorf("store: migrations of %s: %w", set.Owner, err)
		}
		for _, e := range entries {
			name := e.Name()
			if !strings.HasSuffix(name, ".sql") {
				continue
			}
			num, rest, ok := strings.Cut(strings.TrimSuffix(name, ".sql"), "_")
			v, err := strconv.Atoi(num)
			if !ok || err != nil || v <= 0 {
				return nil, fmt.Errorf("store: migration file %s/%s must be named NNNN_name.sql", set.Owner, name)
			}
			where := set.Owner + "/" + name
			if prev, dup := seen[v]; dup {
				if prev == where {
					continue // the same set passed twice
				}
				return nil, fmt.Errorf("store: migrations %s and %s share version %d", prev, where, v)
			}
			seen[v] = where
			b, err := fs.ReadFile(set.FS, path.Join(dir, name))
			if err != nil {
				return nil, err
			}
			out = append(out, Migration{Version: v, Name: rest, Owner: set.Owner, SQL: string(b)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// expand replaces the dialect tokens used in migration files:
//
//	{{serial}}  an auto-incrementing 64-bit integer primary key
//	{{blob}}    a byte string column
func (db *DB) expand(s string) string {
	var r *strings.Replacer
	if db.Dialect == Postgres {
		r = strings.NewReplacer("{{serial}}", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", "{{blob}}", "BYTEA")
	} else {
		r = strings.NewReplacer("{{serial}}", "INTEGER PRIMARY KEY AUTOINCREMENT", "{{blob}}", "BLOB")
	}
	return r.Replace(s)
}

// SchemaVersion returns the newest applied migration version (0 for an empty database).
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	var v sql.NullInt64
	err := db.QueryRow(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&v)
	if err != nil {
		return 0, err
	}
	return int(v.Int64), nil
}

// Migrate applies every migration of sets that the database has not applied yet, in version
// order, each in its own transaction. A database that has applied a version newer than any
// this binary knows is refused (it was written by a newer offsite). On PostgreSQL an advisory
// lock keeps two gateways from migrating at once.
func (db *DB) Migrate(ctx context.Context, sets ...Migrations) error {
	migs, err := Collect(sets...)
	if err != nil {
		return err
	}
	if _, err := db.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("store: create schema_migrations: %w", err)
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if db.Dialect == Postgres {
		if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock(7304110)`); err != nil {
			return fmt.Errorf("store: migration lock: %w", err)
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(7304110)`) //nolint:errcheck
	}
	applied := map[int]bool{}
	rows, err := conn.QueryContext(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return fmt.Errorf("store: read schema version: %w", err)
	}
	var cur sql.NullInt64
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			_ = rows.Close()
			return fmt.Errorf("store: read schema version: %w", err)
		}
		applied[int(v)] = true
		if v > cur.Int64 {
			cur.Int64 = v
		}
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("store: read schema version: %w", err)
	}
	last := 0
	if len(migs) > 0 {
		last = migs[len(migs)-1].Version
	}
	if int(cur.Int64) > last {
		return fmt.Errorf("store: database %s is at schema version %d, newer than this binary knows (%d); run a newer offsite", db.Location, cur.Int64, last)
	}
	for _, m := range migs {
		if applied[m.Version] {
			continue
		}
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		for _, stmt := range splitStatements(db.expand(m.SQL)) {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				_ = tx.Rollback()
				return fmt.Errorf("store: migration %s/%04d_%s: %w\n%s", m.Owner, m.Version, m.Name, err, stmt)
			}
		}
		if _, err := tx.ExecContext(ctx, db.Rebind(`INSERT INTO schema_migrations(version, name, applied_at) VALUES (?, ?, ?)`),
			m.Version, m.Name, time.Now().UnixMilli()); err != nil {
			_ = tx.Rollback()
			return fmt.Errorf("store: record migration %d: %w", m.Version, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("store: commit migration %d: %w", m.Version, err)
		}
	}
	return nil
}

// splitStatements splits a migration file on semicolons that end a line. Migration files keep
// one statement per ;-terminated block and no semicolons inside string literals.
func splitStatements(s string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(s, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(trimmed, ";") {
			if st := strings.TrimSpace(cur.String()); st != ";" {
				out = append(out, st)
			}
			cur.Reset()
		}
	}
	if st := strings.TrimSpace(cur.String()); st != "" {
		out = append(out, st)
	}
	return out
}

// ErrNoRows is sql.ErrNoRows, re-exported so callers need not import database/sql.
var ErrNoRows = sql.ErrNoRows

// IsNoRows reports whether err is sql.ErrNoRows.
func IsNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }

// OpenNoMigrate connects without touching the schema (for tools and test harnesses).
func OpenNoMigrate(dsn string) (*DB, error) { return open(dsn, "") }
