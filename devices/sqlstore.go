package devices

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/offsite-gw/offsite/internal/errs"
	"github.com/offsite-gw/offsite/internal/store"
)

// SQLStore is the Store on the gateway's metadata database (SQLite or PostgreSQL). Secrets are
// write-only: a camera's RTSP password is sealed into rtsp_password_enc and a sensor's MQTT
// secret hashed into mqtt_secret_hash; reads never return either. After a successful create or
// update the passed struct has its timestamps set and its Password / Secret cleared.
type SQLStore struct {
	DB *store.DB
	// Sealer encrypts camera passwords; without it, storing a camera password fails.
	Sealer *Sealer
	// Profiles, when set, makes a device's profile have to exist and be for its kind.
	Profiles ProfileLookup
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Argon2 are the cost parameters for new MQTT secret hashes (default DefaultArgon2).
	Argon2 Argon2Params
	// Verifier checks MQTT logins; a default one is made when nil.
	Verifier *SecretVerifier

	once       sync.Once
	verifier   *SecretVerifier
	dummyHash  string // verified for unknown usernames, so they cost what a wrong secret costs
	argonParam Argon2Params
}

var _ Store = (*SQLStore)(nil)

// querier is what *store.DB and *store.Tx have in common.
type querier interface {
	Exec(ctx context.Context, q string, args ...any) (sql.Result, error)
	Query(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRow(ctx context.Context, q string, args ...any) *sql.Row
}

func (s *SQLStore) init() {
	s.once.Do(func() {
		s.verifier = s.Verifier
		if s.verifier == nil {
			s.verifier = &SecretVerifier{}
		}
		s.argonParam = s.Argon2
		if s.argonParam.Time == 0 || s.argonParam.MemoryKiB == 0 || s.argonParam.Threads == 0 {
			s.argonParam = DefaultArgon2
		}
		s.dummyHash = HashSecret(GenerateSecret(), s.argonParam)
	})
}

// now returns the current time at the millisecond precision the database keeps.
func (s *SQLStore) now() time.Time {
	t := time.Now()
	if s.Now != nil {
		t = s.Now()
	}
	return time.UnixMilli(t.UnixMilli()).UTC()
}

func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// ---- sites ----

const siteColumns = `id, name, uscc, region_code, address, latitude, longitude, department, supervision_items, created_at, updated_at`

func scanSite(sc interface{ Scan(...any) error }) (Site, error) {
	var s Site
	var lat, lon sql.NullFloat64
	var items string
	var created, updated int64
	if err := sc.Scan(&s.ID, &s.Name, &s.USCC, &s.RegionCode, &s.Address, &lat, &lon, &s.Department, &items, &created, &updated); err != nil {
		return Site{}, err
	}
	if lat.Valid && lon.Valid {
		s.Latitude, s.Longitude = &lat.Float64, &lon.Float64
	}
	s.SupervisionItems = []string{}
	if items != "" {
		if err := json.Unmarshal([]byte(items), &s.SupervisionItems); err != nil {
			return Site{}, fmt.Errorf("devices: site %s: supervision_items column: %w", s.ID, err)
		}
	}
	s.CreatedAt, s.UpdatedAt = fromMillis(created), fromMillis(updated)
	return s, nil
}

func siteArgs(s *Site) []any {
	items, _ := json.Marshal(s.SupervisionItems) // []string always marshals
	var lat, lon any
	if s.Latitude != nil && s.Longitude != nil {
		lat, lon = *s.Latitude, *s.Longitude
	}
	return []any{s.ID, s.Name, s.USCC, s.RegionCode, s.Address, lat, lon, s.Department, string(items),
		s.CreatedAt.UnixMilli(), s.UpdatedAt.UnixMilli()}
}

func insertSite(ctx context.Context, q querier, s *Site) error {
	_, err := q.Exec(ctx, `INSERT INTO sites (`+siteColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, siteArgs(s)...)
	if store.IsUniqueViolation(err) {
		return errs.E(errs.KindConflict, "site_exists", "site %q already exists; choose another id or update it", s.ID)
	}
	if err != nil {
		return fmt.Errorf("devices: insert site %s: %w", s.ID, err)
	}
	return nil
}

// updateSiteRow writes every field but created_at, which it reads back into s.
func updateSiteRow(ctx context.Context, q querier, s *Site) error {
	var created int64
	err := q.QueryRow(ctx, `SELECT created_at FROM sites WHERE id = ?`, s.ID).Scan(&created)
	if store.IsNoRows(err) {
		return errNoSite(s.ID)
	}
	if err != nil {
		return fmt.Errorf("devices: read site %s: %w", s.ID, err)
	}
	s.CreatedAt = fromMillis(created)
	a := siteArgs(s)
	_, err = q.Exec(ctx, `UPDATE sites SET name = ?, uscc = ?, region_code = ?, address = ?, latitude = ?, longitude = ?,
		department = ?, supervision_items = ?, updated_at = ? WHERE id = ?`,
		a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[10], s.ID)
	if err != nil {
		return fmt.Errorf("devices: update site %s: %w", s.ID, err)
	}
	return nil
}

func errNoSite(id string) error {
	return errs.E(errs.KindNotFound, "site_not_found", "site %q does not exist", id)
}

func errNoDevice(id string) error {
	return errs.E(errs.KindNotFound, "device_not_found", "device %q does not exist", id)
}

// CreateSite validates and stores a new site.
func (s *SQLStore) CreateSite(ctx context.Context, site *Site) error {
	if err := ValidateSite(site); err != nil {
		return err
	}
	site.CreatedAt = s.now()
	site.UpdatedAt = site.CreatedAt
	return insertSite(ctx, s.DB, site)
}

// GetSite returns one site. It does not apply a scope; callers check Scope.AllowsSite.
func (s *SQLStore) GetSite(ctx context.Context, id string) (Site, error) {
	site, err := scanSite(s.DB.QueryRow(ctx, `SELECT `+siteColumns+` FROM sites WHERE id = ?`, id))
	if store.IsNoRows(err) {
		return Site{}, errNoSite(id)
	}
	if err != nil {
		return Site{}, fmt.Errorf("devices: get site %s: %w", id, err)
	}
	return site, nil
}

// UpdateSite replaces every field of an existing site but its creation time.
func (s *SQLStore) UpdateSite(ctx context.Context, site *Site) error {
	if err := ValidateSite(site); err != nil {
		return err
	}
	site.UpdatedAt = s.now()
	return s.DB.InTx(ctx, func(tx *store.Tx) error { return updateSiteRow(ctx, tx, site) })
}

// DeleteSite removes a site that has no devices left.
func (s *SQLStore) DeleteSite(ctx context.Context, id string) error {
	return s.DB.InTx(ctx, func(tx *store.Tx) error {
		var n int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM devices WHERE site_id = ?`, id).Scan(&n); err != nil {
			return fmt.Errorf("devices: count devices of site %s: %w", id, err)
		}
		if n > 0 {
			return errs.E(errs.KindConflict, "site_has_devices",
				"site %q still has %d device(s); delete them or move them to another site first", id, n)
		}
		res, err := tx.Exec(ctx, `DELETE FROM sites WHERE id = ?`, id)
		if store.IsForeignKeyViolation(err) {
			return errs.E(errs.KindConflict, "site_has_devices", "site %q still has devices; delete or move them first", id)
		}
		if err != nil {
			return fmt.Errorf("devices: delete site %s: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errNoSite(id)
		}
		return nil
	})
}

// ListSites returns the sites the filter selects, ordered by id.
func (s *SQLStore) ListSites(ctx context.Context, f SiteFilter) ([]Site, error) {
	where, args := scopeSQL(f.Scope, "s", nil, nil)
	if f.Department != "" {
		where = append(where, "s.department = ?")
		args = append(args, f.Department)
	}
	if p := NormalizeCode(f.RegionCode); p != "" {
		where = append(where, "substr(s.region_code, 1, ?) = ?")
		args = append(args, len(p), p)
	}
	q := `SELECT ` + prefixColumns("s", siteColumns) + ` FROM sites s`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	rows, err := s.DB.Query(ctx, q+" ORDER BY s.id", args...)
	if err != nil {
		return nil, fmt.Errorf("devices: list sites: %w", err)
	}
	defer rows.Close()
	out := []Site{}
	for rows.Next() {
		site, err := scanSite(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, site)
	}
	return out, rows.Err()
}

func prefixColumns(alias, cols string) string {
	parts := strings.Split(cols, ",")
	for i, p := range parts {
		parts[i] = alias + "." + strings.TrimSpace(p)
	}
	return strings.Join(parts, ", ")
}

// ---- devices ----

const deviceColumns = `id, site_id, kind, name, vendor, model, profile, firmware, serial, installed_on, stream, rtsp_password_enc, mqtt_username, mqtt_secret_hash, created_at, updated_at, hj212_mn, hj212_pw_hash`

// deviceRow is a device as stored, with its secret columns.
type deviceRow struct {
	Device
	passwordEnc string
	secretHash  string
	pwHash      string // HJ 212 PW
}

func scanDevice(sc interface{ Scan(...any) error }) (deviceRow, error) {
	var r deviceRow
	var stream string
	var mqttUser, mn sql.NullString
	var created, updated int64
	if err := sc.Scan(&r.ID, &r.SiteID, &r.Kind, &r.Name, &r.Vendor, &r.Model, &r.Profile, &r.Firmware, &r.Serial,
		&r.InstalledOn, &stream, &r.passwordEnc, &mqttUser, &r.secretHash, &created, &updated, &mn, &r.pwHash); err != nil {
		return deviceRow{}, err
	}
	if stream != "" {
		r.Stream = &StreamSettings{}
		if err := json.Unmarshal([]byte(stream), r.Stream); err != nil {
			return deviceRow{}, fmt.Errorf("devices: device %s: stream column: %w", r.ID, err)
		}
		r.Stream.Password = ""
		r.Stream.HasPassword = r.passwordEnc != ""
	}
	if mqttUser.Valid {
		r.MQTT = &MQTTCredentials{Username: mqttUser.String}
	}
	if mn.Valid {
		r.HJ212 = &HJ212Credentials{MN: mn.String}
	}
	r.CreatedAt, r.UpdatedAt = fromMillis(created), fromMillis(updated)
	return r, nil
}

// deviceArgs are the values for deviceColumns; secrets come from the row, never the Device.
func deviceArgs(r *deviceRow) []any {
	var stream string
	if r.Stream != nil {
		st := *r.Stream
		st.Password, st.HasPassword = "", false
		b, _ := json.Marshal(st) // plain struct of strings and ints
		stream = string(b)
	}
	var user any
	if r.MQTT != nil {
		user = r.MQTT.Username
	}
	var mn any
	if r.HJ212 != nil {
		mn = r.HJ212.MN
	}
	return []any{r.ID, r.SiteID, string(r.Kind), r.Name, r.Vendor, r.Model, r.Profile, r.Firmware, r.Serial,
		r.InstalledOn, stream, r.passwordEnc, user, r.secretHash, r.CreatedAt.UnixMilli(), r.UpdatedAt.UnixMilli(), mn, r.pwHash}
}

// checkDevice validates d and its profile.
func (s *SQLStore) checkDevice(d *Device) error {
	if err := ValidateDevice(d); err != nil {
		return err
	}
	if r := profileProblem(d, s.Profiles); r != "" {
		return errs.E(errs.KindInvalid, "unknown_profile", "device %q: profile: %s", d.ID, r)
	}
	return nil
}

// sealedSecrets holds what a write will store for a device's secrets, computed outside the
// transaction because argon2 is slow and SQLite has one writer.
type sealedSecrets struct {
	passwordEnc string // "" = keep (update) / none (create)
	secretHash  string
	pwHash      string
}

func (s *SQLStore) seal(d *Device) (sealedSecrets, error) {
	s.init()
	var out sealedSecrets
	if d.Stream != nil && d.Stream.Password != "" {
		if s.Sealer == nil {
			return out, errs.E(errs.KindUnavailable, "secrets_key_missing",
				"cannot store the camera password of %q: no secrets key is configured (devices.secrets_key)", d.ID)
		}
		out.passwordEnc = s.Sealer.Seal(d.Stream.Password, d.ID)
	}
	if d.MQTT != nil && d.MQTT.Secret != "" {
		if StrongSecret(d.MQTT.Secret) {
			out.secretHash = HashStrongSecret(d.MQTT.Secret)
		} else {
			out.secretHash = HashSecret(d.MQTT.Secret, s.argonParam)
		}
	}
	if d.HJ212 != nil && d.HJ212.PW != "" {
		out.pwHash = HashSecret(d.HJ212.PW, s.argonParam)
	}
	return out, nil
}

// writeDevice inserts d, or updates it when old is not nil, inside tx.
func writeDevice(ctx context.Context, q querier, d *Device, sec sealedSecrets, old *deviceRow) error {
	var exists int
	err := q.QueryRow(ctx, `SELECT 1 FROM sites WHERE id = ?`, d.SiteID).Scan(&exists)
	if store.IsNoRows(err) {
		return errs.E(errs.KindInvalid, "unknown_site", "device %q: site %q does not exist; create the site first", d.ID, d.SiteID)
	}
	if err != nil {
		return fmt.Errorf("devices: check site %s: %w", d.SiteID, err)
	}
	row := deviceRow{Device: *d, passwordEnc: sec.passwordEnc, secretHash: sec.secretHash, pwHash: sec.pwHash}
	if old != nil {
		row.CreatedAt = old.CreatedAt
		// An empty password or secret on update keeps the stored one.
		if d.Stream == nil {
			row.passwordEnc = ""
		} else if row.passwordEnc == "" {
			row.passwordEnc = old.passwordEnc
		}
		if d.MQTT == nil {
			row.secretHash = ""
		} else if row.secretHash == "" {
			row.secretHash = old.secretHash
		}
		if d.HJ212 == nil {
			row.pwHash = ""
		} else if row.pwHash == "" && old.HJ212 != nil && old.HJ212.MN == d.HJ212.MN {
			row.pwHash = old.pwHash
		}
	}
	if d.HJ212 != nil && row.pwHash == "" {
		return errs.E(errs.KindInvalid, "hj212_pw_required",
			"device %q: hj212.pw is required for a new HJ 212 station (the PW its data logger sends)", d.ID)
	}
	if d.MQTT != nil && row.secretHash == "" {
		return errs.E(errs.KindInvalid, "mqtt_secret_required",
			"device %q: mqtt.secret is required for a new MQTT login (generate one, e.g. 24 random characters)", d.ID)
	}
	a := deviceArgs(&row)
	if old == nil {
		_, err = q.Exec(ctx, `INSERT INTO devices (`+deviceColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, a...)
	} else {
		_, err = q.Exec(ctx, `UPDATE devices SET site_id = ?, kind = ?, name = ?, vendor = ?, model = ?, profile = ?, firmware = ?,
			serial = ?, installed_on = ?, stream = ?, rtsp_password_enc = ?, mqtt_username = ?, mqtt_secret_hash = ?, updated_at = ?,
			hj212_mn = ?, hj212_pw_hash = ?
			WHERE id = ?`, append(a[1:14:14], a[15], a[16], a[17], d.ID)...)
	}
	if err != nil {
		return deviceWriteError(d, err)
	}
	d.CreatedAt, d.UpdatedAt = row.CreatedAt, row.UpdatedAt
	return nil
}

func deviceWriteError(d *Device, err error) error {
	switch {
	case store.IsUniqueViolation(err) && strings.Contains(err.Error(), "hj212_mn"):
		return errs.E(errs.KindConflict, "hj212_mn_taken", "device %q: HJ 212 MN %q is already used by another device", d.ID, d.HJ212.MN)
	case store.IsUniqueViolation(err) && strings.Contains(err.Error(), "mqtt_username"):
		return errs.E(errs.KindConflict, "mqtt_username_taken", "device %q: MQTT username %q is already used by another device", d.ID, d.MQTT.Username)
	case store.IsUniqueViolation(err):
		return errs.E(errs.KindConflict, "device_exists", "device %q already exists; choose another id or update it", d.ID)
	case store.IsForeignKeyViolation(err):
		return errs.E(errs.KindInvalid, "unknown_site", "device %q: site %q does not exist; create the site first", d.ID, d.SiteID)
	}
	return fmt.Errorf("devices: write device %s: %w", d.ID, err)
}

func getDeviceRow(ctx context.Context, q querier, id string) (*deviceRow, error) {
	r, err := scanDevice(q.QueryRow(ctx, `SELECT `+deviceColumns+` FROM devices WHERE id = ?`, id))
	if store.IsNoRows(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("devices: get device %s: %w", id, err)
	}
	return &r, nil
}

// forgetSecrets clears the write-only fields after a write, and says what is stored.
func forgetSecrets(d *Device, hasPassword bool) {
	if d.Stream != nil {
		d.Stream.Password = ""
		d.Stream.HasPassword = hasPassword
	}
	if d.MQTT != nil {
		d.MQTT.Secret = ""
	}
	if d.HJ212 != nil {
		d.HJ212.PW = ""
	}
}

// CreateDevice validates and stores a new device; its site must exist.
func (s *SQLStore) CreateDevice(ctx context.Context, d *Device) error {
	if err := s.checkDevice(d); err != nil {
		return err
	}
	sec, err := s.seal(d)
	if err != nil {
		return err
	}
	d.CreatedAt = s.now()
	d.UpdatedAt = d.CreatedAt
	err = s.DB.InTx(ctx, func(tx *store.Tx) error {
		if old, err := getDeviceRow(ctx, tx, d.ID); err != nil {
			return err
		} else if old != nil {
			return errs.E(errs.KindConflict, "device_exists", "device %q already exists; choose another id or update it", d.ID)
		}
		return writeDevice(ctx, tx, d, sec, nil)
	})
	if err != nil {
		return err
	}
	forgetSecrets(d, sec.passwordEnc != "")
	return nil
}

// GetDevice returns one device without its secrets. It does not apply a scope.
func (s *SQLStore) GetDevice(ctx context.Context, id string) (Device, error) {
	r, err := getDeviceRow(ctx, s.DB, id)
	if err != nil {
		return Device{}, err
	}
	if r == nil {
		return Device{}, errNoDevice(id)
	}
	return r.Device, nil
}

// UpdateDevice replaces every field of an existing device but its creation time. An empty
// Stream.Password or MQTT.Secret keeps the stored one; a nil Stream or MQTT removes it.
func (s *SQLStore) UpdateDevice(ctx context.Context, d *Device) error {
	if err := s.checkDevice(d); err != nil {
		return err
	}
	sec, err := s.seal(d)
	if err != nil {
		return err
	}
	d.UpdatedAt = s.now()
	var hasPassword bool
	err = s.DB.InTx(ctx, func(tx *store.Tx) error {
		old, err := getDeviceRow(ctx, tx, d.ID)
		if err != nil {
			return err
		}
		if old == nil {
			return errNoDevice(d.ID)
		}
		hasPassword = d.Stream != nil && (sec.passwordEnc != "" || old.passwordEnc != "")
		return writeDevice(ctx, tx, d, sec, old)
	})
	if err != nil {
		return err
	}
	forgetSecrets(d, hasPassword)
	return nil
}

// DeleteDevice removes a device and its maintenance log.
func (s *SQLStore) DeleteDevice(ctx context.Context, id string) error {
	res, err := s.DB.Exec(ctx, `DELETE FROM devices WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("devices: delete device %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return errNoDevice(id)
	}
	return nil
}

// deviceFilterSQL is the WHERE conditions of a DeviceFilter on devices aliased d whose sites are
// aliased s: the registry's own (ListDevices) and those site gateways reported (ChildDevices).
func deviceFilterSQL(f DeviceFilter, where []string, args []any) ([]string, []any) {
	where, args = scopeSQL(f.Scope, "s", where, args)
	if f.SiteID != "" {
		where = append(where, "d.site_id = ?")
		args = append(args, f.SiteID)
	}
	if f.Kind != "" {
		where = append(where, "d.kind = ?")
		args = append(args, string(f.Kind))
	}
	if f.Profile != "" {
		where = append(where, "d.profile = ?")
		args = append(args, f.Profile)
	}
	return where, args
}

// ListDevices returns the devices the filter selects, ordered by id. The scope applies through
// each device's site.
func (s *SQLStore) ListDevices(ctx context.Context, f DeviceFilter) ([]Device, error) {
	where, args := deviceFilterSQL(f, nil, nil)
	q := `SELECT ` + prefixColumns("d", deviceColumns) + ` FROM devices d JOIN sites s ON s.id = d.site_id`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	rows, err := s.DB.Query(ctx, q+" ORDER BY d.id", args...)
	if err != nil {
		return nil, fmt.Errorf("devices: list devices: %w", err)
	}
	defer rows.Close()
	out := []Device{}
	for rows.Next() {
		r, err := scanDevice(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r.Device)
	}
	return out, rows.Err()
}

// ---- import ----

// Import creates or updates the given sites and devices in one transaction: all or nothing.
// Devices may refer to sites in the batch or already stored. Secrets left empty keep the stored
// ones, so a file exported (without secrets) and imported again changes no credential.
func (s *SQLStore) Import(ctx context.Context, sites []Site, devs []Device) error {
	var bad []string
	seenSite := map[string]bool{}
	for i := range sites {
		if err := ValidateSite(&sites[i]); err != nil {
			bad = append(bad, err.Error())
		} else if seenSite[sites[i].ID] {
			bad = append(bad, fmt.Sprintf("site %q is listed twice", sites[i].ID))
		}
		seenSite[sites[i].ID] = true
	}
	seenDev := map[string]bool{}
	for i := range devs {
		if err := s.checkDevice(&devs[i]); err != nil {
			bad = append(bad, err.Error())
		} else if seenDev[devs[i].ID] {
			bad = append(bad, fmt.Sprintf("device %q is listed twice", devs[i].ID))
		}
		seenDev[devs[i].ID] = true
	}
	if len(bad) > 0 {
		return errs.E(errs.KindInvalid, "import_invalid", "nothing was imported; %d problem(s): %s", len(bad), joinFirst(bad, 20))
	}
	secs := make([]sealedSecrets, len(devs))
	for i := range devs {
		if i%64 == 0 && ctx.Err() != nil {
			return importCancelled(ctx.Err())
		}
		var err error
		if secs[i], err = s.seal(&devs[i]); err != nil {
			return err
		}
	}
	now := s.now()
	hasPassword := make([]bool, len(devs))
	err := s.DB.InTx(ctx, func(tx *store.Tx) error {
		for i := range sites {
			st := &sites[i]
			st.UpdatedAt = now
			err := updateSiteRow(ctx, tx, st)
			if errs.Is(err, errs.KindNotFound) {
				st.CreatedAt = now
				err = insertSite(ctx, tx, st)
			}
			if err != nil {
				return err
			}
		}
		for i := range devs {
			d := &devs[i]
			old, err := getDeviceRow(ctx, tx, d.ID)
			if err != nil {
				return err
			}
			d.CreatedAt, d.UpdatedAt = now, now
			if err := writeDevice(ctx, tx, d, secs[i], old); err != nil {
				return err
			}
			hasPassword[i] = d.Stream != nil && (secs[i].passwordEnc != "" || (old != nil && old.passwordEnc != ""))
		}
		return nil
	})
	if err != nil {
		if ctx.Err() != nil {
			return importCancelled(ctx.Err())
		}
		var e *errs.Error
		if errors.As(err, &e) {
			return &errs.Error{Kind: e.Kind, Code: e.Code, Message: "nothing was imported: " + e.Message, Err: e.Err}
		}
		return fmt.Errorf("devices: import (nothing was imported): %w", err)
	}
	for i := range devs {
		forgetSecrets(&devs[i], hasPassword[i])
	}
	return nil
}

// importCancelled is the error of an import stopped by its context (the caller went away, or
// the gateway is shutting down): the transaction was rolled back.
func importCancelled(err error) error {
	return errs.Wrap(errs.KindUnavailable, "import_cancelled", err, "the import was cancelled (the gateway is shutting down or the request ended); nothing was imported")
}

func joinFirst(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, "; ")
	}
	return strings.Join(items[:n], "; ") + fmt.Sprintf("; and %d more", len(items)-n)
}

// ---- maintenance ----

// AddMaintenance appends an entry to a device's maintenance log and sets its ID (and At, when
// zero).
func (s *SQLStore) AddMaintenance(ctx context.Context, e *MaintenanceEntry) error {
	e.Actor = strings.TrimSpace(e.Actor)
	e.Kind = strings.ToLower(strings.TrimSpace(e.Kind))
	e.Note = strings.TrimSpace(e.Note)
	var ps problems
	if e.DeviceID == "" {
		ps.add("device_id", "is required")
	}
	ps.checkText("actor", e.Actor, maxTextLen, true)
	known := false
	for _, k := range MaintenanceKinds {
		known = known || k == e.Kind
	}
	if !known {
		ps.add("kind", "%q is not one of %s", e.Kind, strings.Join(MaintenanceKinds, ", "))
	}
	if !utf8.ValidString(e.Note) || utf8.RuneCountInString(e.Note) > 4000 {
		ps.add("note", "must be UTF-8 text of at most 4000 characters")
	}
	if len(ps) > 0 {
		return errs.E(errs.KindInvalid, "invalid_maintenance", "maintenance entry: %s", ps)
	}
	if e.At.IsZero() {
		e.At = s.now()
	} else {
		e.At = time.UnixMilli(e.At.UnixMilli()).UTC()
	}
	err := s.DB.QueryRow(ctx, `INSERT INTO maintenance (device_id, at, actor, kind, note) VALUES (?, ?, ?, ?, ?) RETURNING id`,
		e.DeviceID, e.At.UnixMilli(), e.Actor, e.Kind, e.Note).Scan(&e.ID)
	if store.IsForeignKeyViolation(err) {
		return errNoDevice(e.DeviceID)
	}
	if err != nil {
		return fmt.Errorf("devices: add maintenance for %s: %w", e.DeviceID, err)
	}
	return nil
}

// ListMaintenance returns a device's maintenance log, newest first.
func (s *SQLStore) ListMaintenance(ctx context.Context, deviceID string) ([]MaintenanceEntry, error) {
	var one int
	err := s.DB.QueryRow(ctx, `SELECT 1 FROM devices WHERE id = ?`, deviceID).Scan(&one)
	if store.IsNoRows(err) {
		return nil, errNoDevice(deviceID)
	}
	if err != nil {
		return nil, fmt.Errorf("devices: list maintenance of %s: %w", deviceID, err)
	}
	rows, err := s.DB.Query(ctx, `SELECT id, device_id, at, actor, kind, note FROM maintenance WHERE device_id = ? ORDER BY at DESC, id DESC`, deviceID)
	if err != nil {
		return nil, fmt.Errorf("devices: list maintenance of %s: %w", deviceID, err)
	}
	defer rows.Close()
	out := []MaintenanceEntry{}
	for rows.Next() {
		var e MaintenanceEntry
		var at int64
		if err := rows.Scan(&e.ID, &e.DeviceID, &at, &e.Actor, &e.Kind, &e.Note); err != nil {
			return nil, fmt.Errorf("devices: list maintenance of %s: %w", deviceID, err)
		}
		e.At = fromMillis(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

// ---- secrets ----

// CameraPassword returns the decrypted RTSP password of a camera ("" if none is stored).
func (s *SQLStore) CameraPassword(ctx context.Context, deviceID string) (string, error) {
	r, err := getDeviceRow(ctx, s.DB, deviceID)
	if err != nil {
		return "", err
	}
	if r == nil {
		return "", errNoDevice(deviceID)
	}
	if r.passwordEnc == "" {
		return "", nil
	}
	if s.Sealer == nil {
		return "", errs.E(errs.KindUnavailable, "secrets_key_missing",
			"cannot read the camera password of %q: no secrets key is configured (devices.secrets_key)", deviceID)
	}
	return s.Sealer.Open(r.passwordEnc, deviceID)
}

// CheckMQTT verifies a device's broker login and returns the device. An unknown username and a
// wrong secret give the same KindUnauthorized error and cost the same time.
func (s *SQLStore) CheckMQTT(ctx context.Context, username, secret string) (Device, error) {
	s.init()
	refused := errs.E(errs.KindUnauthorized, "mqtt_login_refused", "MQTT login refused: unknown username or wrong secret")
	if username == "" || secret == "" {
		return Device{}, refused
	}
	r, err := scanDevice(s.DB.QueryRow(ctx, `SELECT `+deviceColumns+` FROM devices WHERE mqtt_username = ?`, username))
	if store.IsNoRows(err) {
		if _, err := s.verifier.Verify(ctx, username, secret, s.dummyHash); err != nil {
			return Device{}, err
		}
		return Device{}, refused
	}
	if err != nil {
		return Device{}, fmt.Errorf("devices: check MQTT login %s: %w", username, err)
	}
	if r.secretHash == "" {
		return Device{}, refused
	}
	ok, err := s.verifier.Verify(ctx, username, secret, r.secretHash)
	if err != nil && ctx.Err() != nil {
		return Device{}, ctx.Err()
	}
	if err != nil {
		return Device{}, errs.Wrap(errs.KindInternal, "secret_hash_corrupt", err, "MQTT login of device %q cannot be checked", r.ID)
	}
	if !ok {
		return Device{}, refused
	}
	return r.Device, nil
}

// CheckHJ212 verifies an HJ 212 station's MN and PW (docs/contracts.md §8) and returns its
// device. An unknown MN and a wrong PW give the same KindUnauthorized error and cost the same
// time; good pairs are cached by the verifier, so a station sending every 30 s costs one hash.
func (s *SQLStore) CheckHJ212(ctx context.Context, mn, pw string) (Device, error) {
	s.init()
	refused := errs.E(errs.KindUnauthorized, "hj212_login_refused", "HJ 212 station refused: unknown MN or wrong PW")
	if mn == "" || pw == "" {
		return Device{}, refused
	}
	r, err := scanDevice(s.DB.QueryRow(ctx, `SELECT `+deviceColumns+` FROM devices WHERE hj212_mn = ?`, mn))
	if store.IsNoRows(err) {
		if _, err := s.verifier.Verify(ctx, "hj212:"+mn, pw, s.dummyHash); err != nil {
			return Device{}, err
		}
		return Device{}, refused
	}
	if err != nil {
		return Device{}, fmt.Errorf("devices: check HJ 212 station %s: %w", mn, err)
	}
	if r.pwHash == "" {
		return Device{}, refused
	}
	ok, err := s.verifier.Verify(ctx, "hj212:"+mn, pw, r.pwHash)
	if err != nil && ctx.Err() != nil {
		return Device{}, ctx.Err()
	}
	if err != nil {
		return Device{}, errs.Wrap(errs.KindInternal, "secret_hash_corrupt", err, "HJ 212 password of device %q cannot be checked", r.ID)
	}
	if !ok {
		return Device{}, refused
	}
	return r.Device, nil
}
