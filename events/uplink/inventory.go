package uplink

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/internal/store"
)

// InventoryFunc returns what a site reports of itself to its centre: its sites and devices
// with their live state, and no secret. Revision, GatewayID, Version and Backlog are filled
// by the uplink.
type InventoryFunc func(ctx context.Context) (devices.Inventory, error)

// ErrNotReady is what an InventoryFunc returns while the node is still starting: the uplink
// tries again shortly, without complaint.
var ErrNotReady = errors.New("uplink: inventory not ready yet")

// InventoryStatus is what the API shows of a centre uplink's inventory reports.
type InventoryStatus struct {
	Revision  int64      `json:"revision"`
	LastSent  *time.Time `json:"last_sent,omitempty"`
	LastError string     `json:"last_error,omitempty"`
	Sites     int        `json:"sites"`
	Devices   int        `json:"devices"`
}

// inventoryCursor is the uplink_cursors row that keeps the last revision sent, so a restarted
// site continues the numbering and the centre never takes an old inventory for a new one.
func (u *Uplink) inventoryCursor() string { return "inventory:" + u.Name }

// runInventory sends the inventory on start, whenever it changes (checked every
// InventoryEvery) and every HeartbeatEvery unchanged; failures are retried with backoff.
func (u *Uplink) runInventory(ctx context.Context) {
	defer close(u.invDone)
	rev, err := u.loadInventoryRevision(ctx)
	if err != nil {
		u.Logger.Error("inventory revision unreadable; starting from 0", "err", err)
	}
	var sentHash [32]byte
	var sentAt time.Time
	attempt := 0
	for ctx.Err() == nil {
		inv, err := u.Inventory(ctx)
		if errors.Is(err, ErrNotReady) {
			u.sleep(ctx, 100*time.Millisecond)
			continue
		}
		if err != nil {
			u.invFail(err)
			u.sleep(ctx, u.backoff(attempt))
			attempt++
			continue
		}
		inv.GatewayID, inv.Version = u.GatewayID, u.Version
		inv.Revision, inv.Backlog = 0, 0
		b, _ := json.Marshal(inv)
		h := sha256.Sum256(b)
		changed := h != sentHash
		if changed || u.Now().Sub(sentAt) >= u.HeartbeatEvery {
			next := rev
			if changed {
				next = rev + 1
			}
			inv.Revision = next
			inv.Backlog = u.Status().Backlog
			held, err := u.putInventory(ctx, inv)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				u.invFail(err)
				u.sleep(ctx, u.backoff(attempt))
				attempt++
				continue
			}
			if held > next {
				// The centre holds a newer revision than ours (this site's database is older than
				// what it once sent): continue above it, and send again at once.
				u.Logger.Warn("centre holds a newer inventory revision; renumbering", "ours", next, "centre", held)
				rev = held
				sentHash = [32]byte{}
				_ = u.saveInventoryRevision(ctx, rev)
				continue
			}
			if next != rev {
				if err := u.saveInventoryRevision(ctx, next); err != nil {
					u.invFail(err)
				}
				rev = next
			}
			sentHash, sentAt, attempt = h, u.Now(), 0
			now := sentAt
			u.update(func(st *Status) {
				u.inv = InventoryStatus{Revision: rev, LastSent: &now, Sites: len(inv.Sites), Devices: len(inv.Devices)}
			})
		}
		u.sleep(ctx, u.InventoryEvery)
	}
}

func (u *Uplink) invFail(err error) {
	u.Logger.Warn("inventory not delivered to the centre; will retry", "err", err)
	u.update(func(st *Status) { u.inv.LastError = err.Error() })
}

// putInventory sends one inventory and returns the revision the centre holds afterwards.
func (u *Uplink) putInventory(ctx context.Context, inv devices.Inventory) (int64, error) {
	body, err := json.Marshal(inv)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, strings.TrimRight(u.BaseURL, "/")+"/offsite/v1/inventory", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if err := SignRequest(req, u.GatewayID, u.Alg, u.secret, u.Now(), body); err != nil {
		return 0, err
	}
	resp, err := u.Client.Do(req)
	if err != nil {
		return 0, err
	}
	rb := readBody(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("centre answered %s to the inventory: %s", resp.Status, snippet(rb))
	}
	var ans struct {
		Revision int64 `json:"revision"`
	}
	if err := json.Unmarshal(rb, &ans); err != nil {
		return 0, fmt.Errorf("centre's inventory answer is not {\"revision\"}: %s", snippet(rb))
	}
	return ans.Revision, nil
}

func (u *Uplink) loadInventoryRevision(ctx context.Context) (int64, error) {
	var rev int64
	err := u.Log.DB.QueryRow(ctx, `SELECT seq FROM uplink_cursors WHERE name = ?`, u.inventoryCursor()).Scan(&rev)
	if store.IsNoRows(err) {
		return 0, nil
	}
	return rev, err
}

func (u *Uplink) saveInventoryRevision(ctx context.Context, rev int64) error {
	_, err := u.Log.DB.Exec(ctx, `INSERT INTO uplink_cursors(name, seq, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET seq = excluded.seq, updated_at = excluded.updated_at`,
		u.inventoryCursor(), rev, u.Now().UnixMilli())
	return err
}
