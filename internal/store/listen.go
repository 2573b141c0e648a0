package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
)

// Notify sends a PostgreSQL notification on channel inside tx; listeners get it when tx
// commits, and never if it rolls back. On SQLite (one process) it does nothing.
func (tx *Tx) Notify(ctx context.Context, channel, payload string) error {
	if tx.db.Dialect != Postgres {
		return nil
	}
	_, err := tx.Exec(ctx, `SELECT pg_notify(?, ?)`, channel, payload)
	return err
}

// Listen receives the PostgreSQL notifications of channel on a connection of its own until
// ctx ends, calling onNotify with each payload. onConnect runs each time the listening
// connection is (re-)established, before any notification on it: notifications sent while
// it was down are lost, so that is where a listener catches up. A lost connection is retried
// every retry (default 1 s). On SQLite Listen returns at once: there is no other process.
func (db *DB) Listen(ctx context.Context, channel string, retry time.Duration, onConnect func(), onNotify func(payload string)) {
	if db.Dialect != Postgres {
		return
	}
	if retry <= 0 {
		retry = time.Second
	}
	for ctx.Err() == nil {
		err := db.listenOnce(ctx, channel, onConnect, onNotify)
		if ctx.Err() != nil {
			return
		}
		_ = err // the caller's fallback poll covers the gap; retried below
		t := time.NewTimer(retry)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}

func (db *DB) listenOnce(ctx context.Context, channel string, onConnect func(), onNotify func(string)) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("store: listen: driver connection is %T, not pgx", dc)
		}
		pc := sc.Conn()
		if _, err := pc.Exec(ctx, `LISTEN "`+channel+`"`); err != nil {
			return driver.ErrBadConn
		}
		if onConnect != nil {
			onConnect()
		}
		for {
			n, err := pc.WaitForNotification(ctx)
			if err != nil {
				// The connection is left mid-wait (or broken): never give it back to the pool.
				return errors.Join(driver.ErrBadConn, err)
			}
			onNotify(n.Payload)
		}
	})
}
