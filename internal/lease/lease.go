// Package lease lets one of several instances sharing a database run a job at a time: an
// uplink's delivery, alert escalation, gateway-offline detection, presence checks, retention.
// A lease is a row naming its holder and an expiry the holder renews every TTL/3; a holder
// that stops renewing (killed, cut off from the database) loses it when it expires, and a
// waiting instance takes it over within TTL plus one poll (TTL/5). Every take and renewal is
// one conditional write on the lease's row, judged by the database's clock, so two instances
// never both hold a lease and their clocks need not agree. A nil *Keeper runs every job
// directly: a single instance (SQLite) needs no leases.
package lease

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"sync"
	"time"

	"crypto/rand"
	"encoding/hex"

	"github.com/offsite-gw/offsite/internal/store"
)

// DefaultTTL is a lease's life without renewal: with the poll of TTL/5 a dead holder's jobs
// resume elsewhere within 12 s.
const DefaultTTL = 10 * time.Second

// Keeper takes, renews and releases this instance's leases.
type Keeper struct {
	DB *store.DB
	// Holder names this instance in the lease rows (default host/pid/random, see NewHolder).
	Holder string
	TTL    time.Duration
	Logger *slog.Logger
	// OnChange, if set, is called when this instance takes or loses a lease (metrics, logs).
	OnChange func(name string, held bool)

	once sync.Once
	mu   sync.Mutex
	held map[string]bool
}

// NewHolder returns an instance name unique across restarts: host, pid and a random suffix.
func NewHolder() string {
	host, _ := os.Hostname()
	var b [3]byte
	_, _ = rand.Read(b[:])
	return host + "/" + strconv.Itoa(os.Getpid()) + "/" + hex.EncodeToString(b[:])
}

func (k *Keeper) init() {
	k.once.Do(func() {
		if k.TTL <= 0 {
			k.TTL = DefaultTTL
		}
		if k.Holder == "" {
			k.Holder = NewHolder()
		}
		if k.Logger == nil {
			k.Logger = slog.Default()
		}
		k.held = map[string]bool{}
	})
}

// nowMS is the database's clock in Unix milliseconds, as an SQL expression.
func (k *Keeper) nowMS() string {
	if k.DB.Dialect == store.Postgres {
		return `CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)`
	}
	return `CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)`
}

// TryAcquire takes the lease name if it is free, expired or already this instance's (then it
// renews it), and reports whether this instance holds it now.
func (k *Keeper) TryAcquire(ctx context.Context, name string) (bool, error) {
	k.init()
	now := k.nowMS()
	r, err := k.DB.Exec(ctx, `INSERT INTO instance_leases(name, holder, acquired_at, renewed_at, expires_at)
		VALUES (?, ?, `+now+`, `+now+`, `+now+` + ?)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, renewed_at = excluded.renewed_at,
			expires_at = excluded.expires_at,
			acquired_at = CASE WHEN instance_leases.holder = excluded.holder THEN instance_leases.acquired_at ELSE excluded.acquired_at END
		WHERE instance_leases.holder = excluded.holder OR instance_leases.expires_at < excluded.renewed_at`,
		name, k.Holder, k.TTL.Milliseconds())
	if err != nil {
		return false, fmt.Errorf("lease %s: %w", name, err)
	}
	n, err := r.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("lease %s: %w", name, err)
	}
	return n == 1, nil
}

// Release gives the lease up if this instance holds it, so another takes it at once.
func (k *Keeper) Release(ctx context.Context, name string) error {
	k.init()
	_, err := k.DB.Exec(ctx, `DELETE FROM instance_leases WHERE name = ? AND holder = ?`, name, k.Holder)
	return err
}

// Held reports whether this instance holds the lease name now (always true for a nil Keeper).
func (k *Keeper) Held(name string) bool {
	if k == nil {
		return true
	}
	k.init()
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.held[name]
}

func (k *Keeper) setHeld(name string, held bool) {
	k.mu.Lock()
	changed := k.held[name] != held
	if held {
		k.held[name] = true
	} else {
		delete(k.held, name)
	}
	k.mu.Unlock()
	if changed {
		if held {
			k.Logger.Info("lease taken: this instance runs the job", "lease", name, "holder", k.Holder)
		} else {
			k.Logger.Info("lease given up: another instance may run the job", "lease", name, "holder", k.Holder)
		}
		if k.OnChange != nil {
			k.OnChange(name, held)
		}
	}
}

// Run runs fn whenever this instance holds the lease name, until ctx ends. It polls for the
// lease every TTL/5; once held it renews it every TTL/3 and calls fn with a context that ends
// when a renewal fails or finds the lease gone (fn must then return promptly: another instance
// is about to take over). When fn returns on its own while the lease is held, it is called
// again after a poll. At the end the lease is released. A nil Keeper calls fn(ctx) once.
func (k *Keeper) Run(ctx context.Context, name string, fn func(ctx context.Context)) {
	if k == nil {
		fn(ctx)
		return
	}
	k.init()
	poll, renew := k.TTL/5, k.TTL/3
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := k.Release(rctx, name); err != nil {
			k.Logger.Warn("lease not released; it expires by itself", "lease", name, "err", err)
		}
		k.setHeld(name, false)
	}()
	for ctx.Err() == nil {
		ok, err := k.TryAcquire(ctx, name)
		if err != nil && ctx.Err() == nil {
			k.Logger.Warn("lease: cannot reach the database", "lease", name, "err", err)
		}
		if !ok {
			sleep(ctx, poll)
			continue
		}
		k.setHeld(name, true)
		jctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			fn(jctx)
		}()
		t := time.NewTicker(renew)
	held:
		for {
			select {
			case <-done:
				break held
			case <-ctx.Done():
				break held
			case <-t.C:
				ok, err := k.TryAcquire(ctx, name)
				if err != nil && ctx.Err() == nil {
					k.Logger.Warn("lease not renewed; stopping the job", "lease", name, "err", err)
				}
				if !ok {
					break held
				}
			}
		}
		t.Stop()
		cancel()
		<-done
		if ctx.Err() == nil {
			k.setHeld(name, false)
			sleep(ctx, poll)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// Lease is one row of the lease table, for status pages.
type Lease struct {
	Name       string    `json:"name"`
	Holder     string    `json:"holder"`
	AcquiredAt time.Time `json:"acquired_at"`
	RenewedAt  time.Time `json:"renewed_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	Mine       bool      `json:"mine"`
}

// List returns every lease row, by name (expired ones included: their job waits for a taker).
func (k *Keeper) List(ctx context.Context) ([]Lease, error) {
	k.init()
	rows, err := k.DB.Query(ctx, `SELECT name, holder, acquired_at, renewed_at, expires_at FROM instance_leases`)
	if err != nil {
		return nil, fmt.Errorf("lease: list: %w", err)
	}
	defer rows.Close()
	var out []Lease
	for rows.Next() {
		var l Lease
		var a, r, e int64
		if err := rows.Scan(&l.Name, &l.Holder, &a, &r, &e); err != nil {
			return nil, err
		}
		l.AcquiredAt, l.RenewedAt, l.ExpiresAt = time.UnixMilli(a).UTC(), time.UnixMilli(r).UTC(), time.UnixMilli(e).UTC()
		l.Mine = l.Holder == k.Holder
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, rows.Err()
}
