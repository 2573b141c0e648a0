package events

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/offsite-gw/offsite/events/event"
	"github.com/offsite-gw/offsite/internal/store"
)

// NotifyChannel is the PostgreSQL notification channel on which every append transaction
// announces "INSTANCE SEQ" (the newest seq it logged) to the other instances sharing the log.
const NotifyChannel = "offsite_events"

// Follow keeps this instance's ring and head up with events other instances append to a
// shared PostgreSQL log, until ctx ends: it listens on NotifyChannel and, on a notification
// from another instance (or every poll, default 2 s, should one be lost), reads the events
// after its head from the store. Live readers (SSE, uplinks, MQTT) are woken as for a local
// append. On SQLite it returns at once: one process writes the log.
func (l *Log) Follow(ctx context.Context, poll time.Duration) {
	if l.DB.Dialect != store.Postgres {
		return
	}
	if poll <= 0 {
		poll = 2 * time.Second
	}
	wake := make(chan struct{}, 1)
	signal := func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	go l.DB.Listen(ctx, NotifyChannel, time.Second, signal, func(payload string) {
		inst, seqStr, _ := strings.Cut(payload, " ")
		seq, _ := strconv.ParseInt(seqStr, 10, 64)
		if inst == l.instance {
			return
		}
		if head, _ := l.Head(); seq > head {
			signal()
		}
	})
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-t.C:
		}
		if err := l.CatchUp(ctx); err != nil && ctx.Err() == nil {
			l.Logger.Warn("events: cannot read other instances' events; retrying", "err", err)
		}
	}
}

// CatchUp reads the events committed after this instance's head (by other instances sharing
// the store) into the ring and wakes live readers. Commit order is seq order on a shared log,
// so what the store shows after the head is complete up to its newest seq.
func (l *Log) CatchUp(ctx context.Context) error {
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	head, _ := l.Head()
	var newest int64
	if err := l.DB.QueryRow(ctx, `SELECT COALESCE(MAX(seq), 0) FROM events`).Scan(&newest); err != nil {
		return fmt.Errorf("events: read log head: %w", err)
	}
	if newest <= head {
		return nil
	}
	if newest-head > int64(l.RingSize) {
		l.mu.Lock()
		l.ring, l.ringFloor, l.head = l.ring[:0], newest, newest
		close(l.changed)
		l.changed = make(chan struct{})
		l.mu.Unlock()
		return nil
	}
	rows, err := l.DB.Query(ctx, `SELECT seq, logged_at, body FROM events WHERE seq > ? AND seq <= ? ORDER BY seq`, head, newest)
	if err != nil {
		return fmt.Errorf("events: read other instances' events: %w", err)
	}
	defer rows.Close()
	var evs []event.Event
	for rows.Next() {
		e, err := scanOne(rows)
		if err != nil {
			return err
		}
		evs = append(evs, e)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("events: read other instances' events: %w", err)
	}
	if len(evs) > 0 {
		l.publish(evs)
	}
	return nil
}
