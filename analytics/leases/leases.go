// Package leases shares the cameras among video analytics workers (offsite-analytics) and keeps
// each camera's analytics settings in the store. It runs in the gateway: workers ask over the
// HTTP API for leases, renew them every few seconds, and a lease that is not renewed expires,
// so a dead worker's cameras go to a live one within TTL plus one renewal period. A camera is
// leased to at most one worker at a time: every claim is a conditional write on the camera's
// row. What goes over the wire (grants, assignments, settings) is package analytics/lease,
// which the worker links without this package's database drivers.
package leases

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"time"

	"github.com/offsite-gw/offsite/analytics/lease"
	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/internal/errs"
	"github.com/offsite-gw/offsite/internal/store"
)

// CameraLister lists the cameras (devices.Store does).
type CameraLister interface {
	ListDevices(ctx context.Context, f devices.DeviceFilter) ([]devices.Device, error)
}

// Service hands out camera leases and keeps analytics settings.
type Service struct {
	DB      *store.DB
	Cameras CameraLister
	// RTSPURL returns the re-serve URL, with credentials, a worker reads cameraID from
	// (e.g. rtsp://user:pass@127.0.0.1:8554/ID).
	RTSPURL func(cameraID string) string
	// TTL of a lease (default 15 s); RenewEvery is what workers are told (default TTL/3).
	TTL        time.Duration
	RenewEvery time.Duration
	Now        func() time.Time
	Logger     *slog.Logger
}

func (s *Service) ttl() time.Duration {
	if s.TTL <= 0 {
		return lease.DefaultTTL
	}
	return s.TTL
}

func (s *Service) renewEvery() time.Duration {
	if s.RenewEvery > 0 {
		return s.RenewEvery
	}
	return s.ttl() / 3
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Service) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.Default()
	}
	return s.Logger
}

func checkWorker(workerID string, capacity int) error {
	if workerID == "" || len(workerID) > 128 {
		return errs.E(errs.KindInvalid, "invalid_worker", "worker_id must be 1-128 characters")
	}
	if capacity < 0 || capacity > 10000 {
		return errs.E(errs.KindInvalid, "invalid_worker", "capacity %d must be 0-10000", capacity)
	}
	return nil
}

// Acquire is a worker's heartbeat: it renews the worker's leases, gives up those above its
// fair share (so a newly started worker gets some), claims free or expired cameras up to the
// share, and returns every camera the worker now holds. Call it every RenewEvery.
func (s *Service) Acquire(ctx context.Context, workerID string, capacity int) (lease.Grant, error) {
	if err := checkWorker(workerID, capacity); err != nil {
		return lease.Grant{}, err
	}
	cams, err := s.cameras(ctx)
	if err != nil {
		return lease.Grant{}, err
	}
	now := s.now()
	nowMS, expMS := now.UnixMilli(), now.Add(s.ttl()).UnixMilli()
	g := lease.Grant{WorkerID: workerID, TTLMillis: s.ttl().Milliseconds(), RenewMillis: s.renewEvery().Milliseconds(), TotalCameras: len(cams)}
	byID := make(map[string]devices.Device, len(cams))
	ids := make([]string, 0, len(cams))
	for _, c := range cams {
		byID[c.ID] = c
		ids = append(ids, c.ID)
	}
	var held []string
	err = s.DB.InTx(ctx, func(tx *store.Tx) error {
		held = held[:0]
		if err := upsertWorker(ctx, tx, s.DB.Dialect, workerID, capacity, nowMS, expMS); err != nil {
			return err
		}
		caps, err := liveCapacities(ctx, tx, nowMS)
		if err != nil {
			return err
		}
		g.LiveWorkers = len(caps)
		target := fairShare(caps, workerID, len(cams))
		if _, err := tx.Exec(ctx, `UPDATE analytics_leases SET renewed_at = ?, expires_at = ? WHERE worker_id = ?`, nowMS, expMS, workerID); err != nil {
			return fmt.Errorf("lease: renew: %w", err)
		}
		mine, err := leasedBy(ctx, tx, workerID)
		if err != nil {
			return err
		}
		var drop []string
		for _, id := range mine {
			if _, ok := byID[id]; ok && len(held) < target {
				held = append(held, id)
			} else {
				drop = append(drop, id)
			}
		}
		for _, id := range drop {
			if _, err := tx.Exec(ctx, `DELETE FROM analytics_leases WHERE camera_id = ? AND worker_id = ?`, id, workerID); err != nil {
				return fmt.Errorf("lease: release: %w", err)
			}
		}
		if len(held) >= target {
			return nil
		}
		taken, err := unavailable(ctx, tx, nowMS)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if len(held) >= target {
				break
			}
			if taken[id] || byID[id].ID == "" {
				continue
			}
			ok, err := claim(ctx, tx, id, workerID, nowMS, expMS)
			if err != nil {
				return err
			}
			if ok {
				held = append(held, id)
			}
		}
		return nil
	})
	if err != nil {
		return lease.Grant{}, err
	}
	// Cameras nobody can take: total minus what all live workers may hold.
	sort.Strings(held)
	g.Assignments = make([]lease.Assignment, 0, len(held))
	for _, id := range held {
		c := byID[id]
		set, err := s.Settings(ctx, id)
		if err != nil {
			return lease.Grant{}, err
		}
		a := lease.Assignment{CameraID: id, SiteID: c.SiteID, Name: c.Name, Settings: set, ExpiresAt: time.UnixMilli(expMS).UTC()}
		if s.RTSPURL != nil {
			a.RTSPURL = s.RTSPURL(id)
		}
		a.ActiveAlarms = s.activeAlarms(ctx, id)
		g.Assignments = append(g.Assignments, a)
	}
	g.Unassigned = s.unassigned(ctx, len(cams), nowMS)
	return g, nil
}

func (s *Service) unassigned(ctx context.Context, total int, nowMS int64) int {
	var n int
	if err := s.DB.QueryRow(ctx, `SELECT COUNT(*) FROM analytics_leases WHERE expires_at > ?`, nowMS).Scan(&n); err != nil {
		return 0
	}
	if total-n < 0 {
		return 0
	}
	return total - n
}

// cameras lists the cameras that analytics should watch (not disabled), sorted by id.
func (s *Service) cameras(ctx context.Context) ([]devices.Device, error) {
	if s.Cameras == nil {
		return nil, errors.New("lease: Service.Cameras is not set")
	}
	all, err := s.Cameras.ListDevices(ctx, devices.DeviceFilter{Kind: devices.KindCamera})
	if err != nil {
		return nil, fmt.Errorf("lease: list cameras: %w", err)
	}
	disabled, err := s.disabledCameras(ctx)
	if err != nil {
		return nil, err
	}
	out := all[:0:0]
	for _, d := range all {
		if d.Kind == devices.KindCamera && !disabled[d.ID] {
			out = append(out, d)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// fairShare splits n cameras over the live workers by water-filling their capacities, so a
// small worker takes what it can and the rest is spread evenly. Order is by worker id so every
// worker computes the same split.
func fairShare(caps map[string]int, me string, n int) int {
	type wc struct {
		id  string
		cap int
	}
	ws := make([]wc, 0, len(caps))
	for id, c := range caps {
		ws = append(ws, wc{id, c})
	}
	sort.Slice(ws, func(i, j int) bool {
		if ws[i].cap != ws[j].cap {
			return ws[i].cap < ws[j].cap
		}
		return ws[i].id < ws[j].id
	})
	remaining := n
	for i, w := range ws {
		left := len(ws) - i
		share := int(math.Ceil(float64(remaining) / float64(left)))
		if share > w.cap {
			share = w.cap
		}
		if w.id == me {
			return share
		}
		remaining -= share
		if remaining < 0 {
			remaining = 0
		}
	}
	return 0
}

func upsertWorker(ctx context.Context, tx *store.Tx, _ store.Dialect, id string, capacity int, nowMS, expMS int64) error {
	_, err := tx.Exec(ctx, `INSERT INTO analytics_workers(worker_id, capacity, seen_at, expires_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (worker_id) DO UPDATE SET capacity = excluded.capacity, seen_at = excluded.seen_at, expires_at = excluded.expires_at`,
		id, capacity, nowMS, expMS)
	if err != nil {
		return fmt.Errorf("lease: worker heartbeat: %w", err)
	}
	return nil
}

func liveCapacities(ctx context.Context, tx *store.Tx, nowMS int64) (map[string]int, error) {
	rows, err := tx.Query(ctx, `SELECT worker_id, capacity FROM analytics_workers WHERE expires_at > ?`, nowMS)
	if err != nil {
		return nil, fmt.Errorf("lease: live workers: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var id string
		var c int
		if err := rows.Scan(&id, &c); err != nil {
			return nil, err
		}
		out[id] = c
	}
	return out, rows.Err()
}

func leasedBy(ctx context.Context, tx *store.Tx, workerID string) ([]string, error) {
	rows, err := tx.Query(ctx, `SELECT camera_id FROM analytics_leases WHERE worker_id = ? ORDER BY camera_id`, workerID)
	if err != nil {
		return nil, fmt.Errorf("lease: list leases: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

func unavailable(ctx context.Context, tx *store.Tx, nowMS int64) (map[string]bool, error) {
	rows, err := tx.Query(ctx, `SELECT camera_id FROM analytics_leases WHERE expires_at > ?`, nowMS)
	if err != nil {
		return nil, fmt.Errorf("lease: list leases: %w", err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out[id] = true
	}
	return out, rows.Err()
}

// claim takes cameraID for workerID unless a live lease of another worker holds it. The
// conditional upsert is what guarantees one worker per camera, also between gateways sharing a
// PostgreSQL database.
func claim(ctx context.Context, tx *store.Tx, cameraID, workerID string, nowMS, expMS int64) (bool, error) {
	res, err := tx.Exec(ctx, `INSERT INTO analytics_leases(camera_id, worker_id, acquired_at, renewed_at, expires_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (camera_id) DO UPDATE SET worker_id = excluded.worker_id, acquired_at = excluded.acquired_at,
			renewed_at = excluded.renewed_at, expires_at = excluded.expires_at
		WHERE analytics_leases.expires_at <= ? OR analytics_leases.worker_id = excluded.worker_id`,
		cameraID, workerID, nowMS, nowMS, expMS, nowMS)
	if err != nil {
		return false, fmt.Errorf("lease: claim %s: %w", cameraID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, err
	}
	return n == 1, nil
}

// Renew extends the worker's leases on cameraIDs and returns those it still holds; a camera
// missing from the answer was taken over (the worker was too late) and must be dropped.
func (s *Service) Renew(ctx context.Context, workerID string, cameraIDs []string) ([]string, time.Time, error) {
	if err := checkWorker(workerID, 0); err != nil {
		return nil, time.Time{}, err
	}
	now := s.now()
	nowMS, expMS := now.UnixMilli(), now.Add(s.ttl()).UnixMilli()
	want := map[string]bool{}
	for _, id := range cameraIDs {
		want[id] = true
	}
	var held []string
	err := s.DB.InTx(ctx, func(tx *store.Tx) error {
		held = held[:0]
		if _, err := tx.Exec(ctx, `UPDATE analytics_workers SET seen_at = ?, expires_at = ? WHERE worker_id = ?`, nowMS, expMS, workerID); err != nil {
			return fmt.Errorf("lease: worker heartbeat: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE analytics_leases SET renewed_at = ?, expires_at = ? WHERE worker_id = ?`, nowMS, expMS, workerID); err != nil {
			return fmt.Errorf("lease: renew: %w", err)
		}
		mine, err := leasedBy(ctx, tx, workerID)
		if err != nil {
			return err
		}
		for _, id := range mine {
			if want[id] {
				held = append(held, id)
			}
		}
		return nil
	})
	return held, time.UnixMilli(expMS).UTC(), err
}

// Release ends the worker's leases on cameraIDs, or all of them and the worker's membership
// when cameraIDs is empty (a clean shutdown), so the cameras move at once.
func (s *Service) Release(ctx context.Context, workerID string, cameraIDs []string) error {
	if err := checkWorker(workerID, 0); err != nil {
		return err
	}
	return s.DB.InTx(ctx, func(tx *store.Tx) error {
		if len(cameraIDs) == 0 {
			if _, err := tx.Exec(ctx, `DELETE FROM analytics_leases WHERE worker_id = ?`, workerID); err != nil {
				return fmt.Errorf("lease: release: %w", err)
			}
			if _, err := tx.Exec(ctx, `DELETE FROM analytics_workers WHERE worker_id = ?`, workerID); err != nil {
				return fmt.Errorf("lease: release: %w", err)
			}
			return nil
		}
		for _, id := range cameraIDs {
			if _, err := tx.Exec(ctx, `DELETE FROM analytics_leases WHERE camera_id = ? AND worker_id = ?`, id, workerID); err != nil {
				return fmt.Errorf("lease: release: %w", err)
			}
		}
		return nil
	})
}

// Leases lists every lease, live or expired.
func (s *Service) Leases(ctx context.Context) ([]lease.Lease, error) {
	rows, err := s.DB.Query(ctx, `SELECT camera_id, worker_id, expires_at FROM analytics_leases ORDER BY camera_id`)
	if err != nil {
		return nil, fmt.Errorf("lease: list: %w", err)
	}
	defer rows.Close()
	now := s.now().UnixMilli()
	var out []lease.Lease
	for rows.Next() {
		var l lease.Lease
		var exp int64
		if err := rows.Scan(&l.CameraID, &l.WorkerID, &exp); err != nil {
			return nil, err
		}
		l.ExpiresAt, l.Live = time.UnixMilli(exp).UTC(), exp > now
		out = append(out, l)
	}
	return out, rows.Err()
}

// Settings returns a camera's analytics settings (lease.DefaultSettings when none are stored).
func (s *Service) Settings(ctx context.Context, cameraID string) (lease.CameraSettings, error) {
	var raw string
	err := s.DB.QueryRow(ctx, `SELECT settings FROM analytics_camera_settings WHERE camera_id = ?`, cameraID).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		return lease.DefaultSettings(), nil
	}
	if err != nil {
		return lease.CameraSettings{}, fmt.Errorf("lease: settings of %s: %w", cameraID, err)
	}
	set, err := lease.ParseSettings([]byte(raw))
	if err != nil {
		s.logger().Warn("stored analytics settings invalid, using defaults", "camera", cameraID, "err", err)
		return lease.DefaultSettings(), nil
	}
	return set, nil
}

// PutSettings validates and stores a camera's settings. Workers pick them up at their next
// Acquire (within RenewEvery).
func (s *Service) PutSettings(ctx context.Context, cameraID string, set lease.CameraSettings, actor string) error {
	set.Defaults()
	if err := set.Validate(); err != nil {
		return err
	}
	if cameraID == "" || len(cameraID) > 128 {
		return errs.E(errs.KindInvalid, "invalid_camera", "camera id must be 1-128 characters")
	}
	b, err := json.Marshal(set)
	if err != nil {
		return err
	}
	_, err = s.DB.Exec(ctx, `INSERT INTO analytics_camera_settings(camera_id, settings, updated_at, updated_by) VALUES (?, ?, ?, ?)
		ON CONFLICT (camera_id) DO UPDATE SET settings = excluded.settings, updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
		cameraID, string(b), s.now().UnixMilli(), actor)
	if err != nil {
		return fmt.Errorf("lease: store settings of %s: %w", cameraID, err)
	}
	return nil
}

func (s *Service) disabledCameras(ctx context.Context) (map[string]bool, error) {
	rows, err := s.DB.Query(ctx, `SELECT camera_id, settings FROM analytics_camera_settings`)
	if err != nil {
		return nil, fmt.Errorf("lease: settings: %w", err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var id, raw string
		if err := rows.Scan(&id, &raw); err != nil {
			return nil, err
		}
		if set, err := lease.ParseSettings([]byte(raw)); err == nil && set.Disabled {
			out[id] = true
		}
	}
	return out, rows.Err()
}

// activeAlarms lists the camera's active alarm keys (camera/detector[/zone]) from the event
// log's alarms table; none when the table is not there.
func (s *Service) activeAlarms(ctx context.Context, cameraID string) []string {
	rows, err := s.DB.Query(ctx, `SELECT alarm_key FROM alarms WHERE state = 'active' AND alarm_key LIKE ? ORDER BY alarm_key`, likePrefix(cameraID)+"/%")
	if err != nil {
		return nil
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var k string
		if rows.Scan(&k) == nil {
			out = append(out, k)
		}
	}
	return out
}

func likePrefix(s string) string {
	// Camera ids are plain ([A-Za-z0-9_-]); a % or _ would only widen the match, and keys
	// are checked by the worker against its own detectors.
	return s
}
