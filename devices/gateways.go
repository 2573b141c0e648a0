package devices

import (
	"context"
	"crypto/hmac"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/emmansun/gmsm/sm3"

	"github.com/offsite-gw/offsite/internal/errs"
	"github.com/offsite-gw/offsite/internal/store"
)

// Gateway states as a centre sees its children.
const (
	GatewayUnknown = "unknown" // enrolled, never heard from
	GatewayOnline  = "online"
	GatewayOffline = "offline" // silent for longer than the centre's offline_after
)

// Gateway is a site gateway enrolled below a centre (docs/contracts.md §7) and what the centre
// knows of its health. The secret it signs with is never part of it: Enrol returns it once.
type Gateway struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	BaseURL string `json:"base_url,omitempty"`
	// Alg, if set, is the only signature algorithm accepted from this gateway; "" accepts
	// hmac-sm3 and hmac-sha256.
	Alg       string    `json:"alg,omitempty"`
	Disabled  bool      `json:"disabled"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`

	State             string     `json:"state"`
	StateSince        *time.Time `json:"state_since,omitempty"`
	LastSeen          *time.Time `json:"last_seen,omitempty"`
	LastAddr          string     `json:"last_addr,omitempty"`
	Version           string     `json:"version,omitempty"`
	InventoryRevision int64      `json:"inventory_revision"`
	InventoryAt       *time.Time `json:"inventory_at,omitempty"`
	// LagEvents is how many events the gateway last said it still has to send.
	LagEvents      int64      `json:"lag_events"`
	EventsReceived int64      `json:"events_received"`
	Refused        int64      `json:"refused"`
	LastRefusal    string     `json:"last_refusal,omitempty"`
	LastRefusalAt  *time.Time `json:"last_refusal_at,omitempty"`
	Sites          int        `json:"sites"`
	Devices        int        `json:"devices"`
}

// Inventory is what a site gateway reports of itself to its centre (PUT /offsite/v1/inventory):
// its sites and devices with their live state, never a secret.
type Inventory struct {
	GatewayID string            `json:"gateway_id"`
	Revision  int64             `json:"revision"`
	Version   string            `json:"version,omitempty"`
	Backlog   int64             `json:"backlog"`
	Sites     []Site            `json:"sites"`
	Devices   []InventoryDevice `json:"devices"`
}

// InventoryDevice is a device as a centre sees it: the registry's facts without credentials,
// plus its live state at the site.
type InventoryDevice struct {
	ID          string `json:"id"`
	SiteID      string `json:"site_id"`
	Kind        Kind   `json:"kind"`
	Name        string `json:"name"`
	Vendor      string `json:"vendor,omitempty"`
	Model       string `json:"model,omitempty"`
	Profile     string `json:"profile,omitempty"`
	Firmware    string `json:"firmware,omitempty"`
	Serial      string `json:"serial,omitempty"`
	InstalledOn string `json:"installed_on,omitempty"`
	// Gateway names the gateway the device is on; set by the centre when it lists them.
	Gateway string `json:"gateway,omitempty"`
	// State is the live state at the site: presence for sensors (online, offline, silent,
	// unknown), the relay's state for cameras (online, connecting, offline …).
	State      string     `json:"state,omitempty"`
	StateSince *time.Time `json:"state_since,omitempty"`
	Reason     string     `json:"reason,omitempty"`
	// RTSP is where a camera is re-served at the site (rtsp://host:port/id, no credentials);
	// a host of 0.0.0.0 means "the address the site connects from".
	RTSP string `json:"rtsp,omitempty"`
}

// Limits of one inventory, so one gateway cannot fill the centre's database.
const (
	MaxInventorySites   = 10000
	MaxInventoryDevices = 50000
)

// InventoryOf turns registry devices into inventory entries, dropping every credential.
func InventoryOf(d Device) InventoryDevice {
	return InventoryDevice{ID: d.ID, SiteID: d.SiteID, Kind: d.Kind, Name: d.Name, Vendor: d.Vendor, Model: d.Model,
		Profile: d.Profile, Firmware: d.Firmware, Serial: d.Serial, InstalledOn: d.InstalledOn}
}

// Validate checks an inventory from outside; the error names the first problem.
func (inv *Inventory) Validate() error {
	if err := ValidateID(inv.GatewayID); err != nil {
		return fmt.Errorf("gateway_id: %w", err)
	}
	if inv.Revision <= 0 {
		return fmt.Errorf("revision must be a positive integer")
	}
	if len(inv.Sites) > MaxInventorySites || len(inv.Devices) > MaxInventoryDevices {
		return fmt.Errorf("inventory too large: at most %d sites and %d devices", MaxInventorySites, MaxInventoryDevices)
	}
	seen := map[string]bool{}
	for i := range inv.Sites {
		s := &inv.Sites[i]
		if err := ValidateID(s.ID); err != nil {
			return fmt.Errorf("sites[%d].id: %w", i, err)
		}
		if seen[s.ID] {
			return fmt.Errorf("sites[%d].id %q appears twice", i, s.ID)
		}
		seen[s.ID] = true
		if !utf8.ValidString(s.Name+s.Department+s.RegionCode+s.Address+s.USCC) || len(s.Name) > 4*maxNameLen || len(s.Address) > 4*maxAddressLen {
			return fmt.Errorf("sites[%d]: text fields must be UTF-8 and of reasonable length", i)
		}
	}
	seenDev := map[string]bool{}
	for i := range inv.Devices {
		d := &inv.Devices[i]
		if err := ValidateID(d.ID); err != nil {
			return fmt.Errorf("devices[%d].id: %w", i, err)
		}
		if seenDev[d.ID] {
			return fmt.Errorf("devices[%d].id %q appears twice", i, d.ID)
		}
		seenDev[d.ID] = true
		if d.SiteID != "" && !seen[d.SiteID] {
			return fmt.Errorf("devices[%d] (%s): site %q is not in the inventory", i, d.ID, d.SiteID)
		}
		if !utf8.ValidString(d.Name+d.Vendor+d.Model+d.Profile+d.Firmware+d.State+d.Reason) || len(d.Name) > 4*maxNameLen || len(d.Reason) > 1000 {
			return fmt.Errorf("devices[%d]: text fields must be UTF-8 and of reasonable length", i)
		}
	}
	return nil
}

// GatewayStore keeps the gateways enrolled below a centre and their inventories.
type GatewayStore struct {
	DB *store.DB
	// Sealer encrypts the enrolment secrets (they are needed in clear to check signatures).
	Sealer *Sealer
	Now    func() time.Time
	// CredentialsTTL is how long Credentials keeps a gateway's decrypted secret in memory
	// (default 5 s; negative: read the database every time). Changes through this store take
	// effect at once; changes by another process (the CLI) within the TTL.
	CredentialsTTL time.Duration

	credMu sync.Mutex
	creds  map[string]cachedCredentials
}

type cachedCredentials struct {
	Credentials
	until time.Time
}

// forget drops a gateway's cached credentials after its secret, flags or enrolment changed.
func (s *GatewayStore) forget(id string) {
	s.credMu.Lock()
	delete(s.creds, id)
	s.credMu.Unlock()
}

func (s *GatewayStore) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func errNoGateway(id string) error {
	return errs.E(errs.KindNotFound, "gateway_not_found", "gateway %q is not enrolled", id)
}

func validateGateway(g *Gateway) error {
	var ps problems
	if p := idProblem(g.ID); p != "" {
		ps.add("id", "%s", p)
	}
	g.Name = strings.TrimSpace(g.Name)
	if g.Name == "" {
		g.Name = g.ID
	}
	ps.checkText("name", g.Name, maxNameLen, true)
	g.BaseURL = strings.TrimRight(strings.TrimSpace(g.BaseURL), "/")
	if g.BaseURL != "" {
		u, err := url.Parse(g.BaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			ps.add("base_url", "must be an http:// or https:// URL without credentials, e.g. http://10.0.3.7:8080")
		}
	}
	switch g.Alg {
	case "", "hmac-sm3", "hmac-sha256":
	default:
		ps.add("alg", "must be hmac-sm3, hmac-sha256 or empty (both)")
	}
	if len(ps) > 0 {
		return errs.E(errs.KindInvalid, "invalid_gateway", "%s", ps.String())
	}
	return nil
}

// Enrol adds a gateway. secret "" generates one; the secret is returned (show it once).
func (s *GatewayStore) Enrol(ctx context.Context, g *Gateway, secret string) (string, error) {
	if s.Sealer == nil {
		return "", errs.E(errs.KindInternal, "no_sealer", "the centre has no key to seal enrolment secrets")
	}
	if err := validateGateway(g); err != nil {
		return "", err
	}
	if secret == "" {
		secret = GenerateSecret() + GenerateSecret()
	} else if len(secret) < 16 {
		return "", errs.E(errs.KindInvalid, "weak_secret", "an enrolment secret needs at least 16 characters")
	}
	defer s.forget(g.ID)
	now := s.now()
	_, err := s.DB.Exec(ctx, `INSERT INTO gateways(id, name, base_url, alg, secret_enc, disabled, created_at, updated_at, state, state_since)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, g.ID, g.Name, g.BaseURL, g.Alg, s.Sealer.Seal(secret, "gateway:"+g.ID),
		g.Disabled, now.UnixMilli(), now.UnixMilli(), GatewayUnknown, now.UnixMilli())
	if store.IsUniqueViolation(err) {
		return "", errs.E(errs.KindConflict, "gateway_exists", "gateway %q is already enrolled", g.ID)
	}
	if err != nil {
		return "", fmt.Errorf("devices: enrol gateway: %w", err)
	}
	out, err := s.Get(ctx, g.ID)
	if err == nil {
		*g = out
	}
	return secret, err
}

// RotateSecret replaces a gateway's secret (secret "" generates one) and returns it. Requests
// signed with the old secret are refused from then on.
func (s *GatewayStore) RotateSecret(ctx context.Context, id, secret string) (string, error) {
	if secret == "" {
		secret = GenerateSecret() + GenerateSecret()
	} else if len(secret) < 16 {
		return "", errs.E(errs.KindInvalid, "weak_secret", "an enrolment secret needs at least 16 characters")
	}
	defer s.forget(id)
	res, err := s.DB.Exec(ctx, `UPDATE gateways SET secret_enc = ?, updated_at = ? WHERE id = ?`,
		s.Sealer.Seal(secret, "gateway:"+id), s.now().UnixMilli(), id)
	if err != nil {
		return "", fmt.Errorf("devices: rotate gateway secret: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return "", errNoGateway(id)
	}
	return secret, nil
}

// Update changes a gateway's name, base URL, algorithm and disabled flag.
func (s *GatewayStore) Update(ctx context.Context, g *Gateway) error {
	if err := validateGateway(g); err != nil {
		return err
	}
	defer s.forget(g.ID)
	res, err := s.DB.Exec(ctx, `UPDATE gateways SET name = ?, base_url = ?, alg = ?, disabled = ?, updated_at = ? WHERE id = ?`,
		g.Name, g.BaseURL, g.Alg, g.Disabled, s.now().UnixMilli(), g.ID)
	if err != nil {
		return fmt.Errorf("devices: update gateway: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return errNoGateway(g.ID)
	}
	out, err := s.Get(ctx, g.ID)
	if err == nil {
		*g = out
	}
	return err
}

// Delete removes a gateway and its inventory. Its events stay in the log.
func (s *GatewayStore) Delete(ctx context.Context, id string) error {
	defer s.forget(id)
	return s.DB.InTx(ctx, func(tx *store.Tx) error {
		res, err := tx.Exec(ctx, `DELETE FROM gateways WHERE id = ?`, id)
		if err != nil {
			return fmt.Errorf("devices: delete gateway: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errNoGateway(id)
		}
		for _, q := range []string{`DELETE FROM gateway_sites WHERE gateway_id = ?`, `DELETE FROM gateway_devices WHERE gateway_id = ?`,
			`DELETE FROM gateway_nonces WHERE gateway_id = ?`} {
			if _, err := tx.Exec(ctx, q, id); err != nil {
				return fmt.Errorf("devices: delete gateway inventory: %w", err)
			}
		}
		return nil
	})
}

const gatewayColumns = `id, name, base_url, alg, disabled, created_at, updated_at, state, state_since, last_seen, last_addr, version,
	inventory_revision, inventory_at, backlog, events_received, refused, last_refusal, last_refusal_at`

func msPtr(ms int64) *time.Time {
	if ms == 0 {
		return nil
	}
	t := fromMillis(ms)
	return &t
}

func scanGateway(sc interface{ Scan(...any) error }) (Gateway, error) {
	var g Gateway
	var created, updated, since, seen, invAt, refusedAt int64
	err := sc.Scan(&g.ID, &g.Name, &g.BaseURL, &g.Alg, &g.Disabled, &created, &updated, &g.State, &since, &seen, &g.LastAddr,
		&g.Version, &g.InventoryRevision, &invAt, &g.LagEvents, &g.EventsReceived, &g.Refused, &g.LastRefusal, &refusedAt)
	if err != nil {
		return g, err
	}
	g.CreatedAt, g.UpdatedAt = fromMillis(created), fromMillis(updated)
	g.StateSince, g.LastSeen, g.InventoryAt, g.LastRefusalAt = msPtr(since), msPtr(seen), msPtr(invAt), msPtr(refusedAt)
	return g, nil
}

// Get returns one enrolled gateway with its inventory counts.
func (s *GatewayStore) Get(ctx context.Context, id string) (Gateway, error) {
	g, err := scanGateway(s.DB.QueryRow(ctx, `SELECT `+gatewayColumns+` FROM gateways WHERE id = ?`, id))
	if store.IsNoRows(err) {
		return g, errNoGateway(id)
	}
	if err != nil {
		return g, fmt.Errorf("devices: read gateway: %w", err)
	}
	if err := s.DB.QueryRow(ctx, `SELECT COUNT(*) FROM gateway_sites WHERE gateway_id = ?`, id).Scan(&g.Sites); err != nil {
		return g, fmt.Errorf("devices: count gateway sites: %w", err)
	}
	if err := s.DB.QueryRow(ctx, `SELECT COUNT(*) FROM gateway_devices WHERE gateway_id = ?`, id).Scan(&g.Devices); err != nil {
		return g, fmt.Errorf("devices: count gateway devices: %w", err)
	}
	return g, nil
}

// List returns every enrolled gateway, ordered by id, with inventory counts.
func (s *GatewayStore) List(ctx context.Context) ([]Gateway, error) {
	rows, err := s.DB.Query(ctx, `SELECT `+gatewayColumns+` FROM gateways ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("devices: list gateways: %w", err)
	}
	out := []Gateway{}
	for rows.Next() {
		g, err := scanGateway(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("devices: list gateways: %w", err)
		}
		out = append(out, g)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	counts := func(table string) (map[string]int, error) {
		m := map[string]int{}
		rows, err := s.DB.Query(ctx, `SELECT gateway_id, COUNT(*) FROM `+table+` GROUP BY gateway_id`)
		if err != nil {
			return nil, fmt.Errorf("devices: count %s: %w", table, err)
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			var n int
			if err := rows.Scan(&id, &n); err != nil {
				return nil, fmt.Errorf("devices: count %s: %w", table, err)
			}
			m[id] = n
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("devices: count %s: %w", table, err)
		}
		return m, nil
	}
	sites, err := counts("gateway_sites")
	if err != nil {
		return nil, err
	}
	devs, err := counts("gateway_devices")
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].Sites, out[i].Devices = sites[out[i].ID], devs[out[i].ID]
	}
	return out, nil
}

// Count returns how many gateways are enrolled (a node with any is a centre).
func (s *GatewayStore) Count(ctx context.Context) (int, error) {
	var n int
	err := s.DB.QueryRow(ctx, `SELECT COUNT(*) FROM gateways`).Scan(&n)
	return n, err
}

// Credentials are what a centre needs to check a gateway's signature.
type Credentials struct {
	Secret   []byte
	Alg      string
	Disabled bool
}

// Credentials returns a gateway's secret in clear, for signature checks only. Found
// credentials are kept for CredentialsTTL, so a busy centre does not read and decrypt them for
// every batch.
func (s *GatewayStore) Credentials(ctx context.Context, id string) (Credentials, error) {
	ttl := s.CredentialsTTL
	if ttl == 0 {
		ttl = 5 * time.Second
	}
	now := time.Now()
	if ttl > 0 {
		s.credMu.Lock()
		c, ok := s.creds[id]
		s.credMu.Unlock()
		if ok && now.Before(c.until) {
			return c.Credentials, nil
		}
	}
	var enc, alg string
	var disabled bool
	err := s.DB.QueryRow(ctx, `SELECT secret_enc, alg, disabled FROM gateways WHERE id = ?`, id).Scan(&enc, &alg, &disabled)
	if store.IsNoRows(err) {
		return Credentials{}, errNoGateway(id)
	}
	if err != nil {
		return Credentials{}, fmt.Errorf("devices: read gateway: %w", err)
	}
	secret, err := s.Sealer.Open(enc, "gateway:"+id)
	if err != nil {
		return Credentials{}, err
	}
	c := Credentials{Secret: []byte(secret), Alg: alg, Disabled: disabled}
	if ttl > 0 {
		s.credMu.Lock()
		if s.creds == nil {
			s.creds = map[string]cachedCredentials{}
		}
		// Kept for half to all of the TTL: gateways first heard at once (a centre's start) do
		// not all expire together and read the database in one burst every TTL.
		keep := ttl - time.Duration(rand.Int64N(int64(ttl/2)+1))
		s.creds[id] = cachedCredentials{Credentials: c, until: now.Add(keep)}
		s.credMu.Unlock()
	}
	return c, nil
}

// Contact records a verified request from a gateway. It returns the state the gateway was in
// before, so the caller can announce a return (offline → online).
func (s *GatewayStore) Contact(ctx context.Context, id, addr, version string, backlog int64, events int) (prev string, err error) {
	err = s.DB.InTx(ctx, func(tx *store.Tx) error {
		prev, err = s.ContactIn(ctx, tx, id, addr, version, backlog, events)
		return err
	})
	return prev, err
}

// ContactIn is Contact inside q's transaction: a centre records the contact in the
// transaction that logs the gateway's batch, so the counters move with the events and a
// batch costs one write transaction, not two. For a gateway already online it is one
// statement.
func (s *GatewayStore) ContactIn(ctx context.Context, q Querier, id, addr, version string, backlog int64, events int) (prev string, err error) {
	now := s.now().UnixMilli()
	res, err := q.Exec(ctx, `UPDATE gateways SET last_seen = ?, last_addr = ?, events_received = events_received + ?, backlog = ?,
		version = CASE WHEN ? = '' THEN version ELSE ? END WHERE id = ? AND state = ?`,
		now, addr, events, backlog, version, version, id, GatewayOnline)
	if err != nil {
		return "", fmt.Errorf("devices: record gateway contact: %w", err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		return GatewayOnline, nil
	}
	if err := q.QueryRow(ctx, `SELECT state FROM gateways WHERE id = ?`, id).Scan(&prev); err != nil {
		if store.IsNoRows(err) {
			return "", errNoGateway(id)
		}
		return "", fmt.Errorf("devices: record gateway contact: %w", err)
	}
	qs := `UPDATE gateways SET last_seen = ?, last_addr = ?, events_received = events_received + ?, backlog = ?, state = ?, state_since = ?`
	args := []any{now, addr, events, backlog, GatewayOnline, now}
	if version != "" {
		qs += `, version = ?`
		args = append(args, version)
	}
	if _, err := q.Exec(ctx, qs+` WHERE id = ?`, append(args, id)...); err != nil {
		return "", fmt.Errorf("devices: record gateway contact: %w", err)
	}
	return prev, nil
}

// MarkOffline moves a gateway that is online and silent since before `silentSince` to
// offline. It reports whether it did (so exactly one caller announces it).
func (s *GatewayStore) MarkOffline(ctx context.Context, id string, silentSince time.Time) (bool, error) {
	now := s.now().UnixMilli()
	res, err := s.DB.Exec(ctx, `UPDATE gateways SET state = ?, state_since = ? WHERE id = ? AND state = ? AND last_seen < ?`,
		GatewayOffline, now, id, GatewayOnline, silentSince.UnixMilli())
	if err != nil {
		return false, fmt.Errorf("devices: mark gateway offline: %w", err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// Refused counts a refused request that named gateway id (if it is enrolled).
func (s *GatewayStore) Refused(ctx context.Context, id, reason string) {
	if len(reason) > 500 {
		reason = reason[:500]
	}
	_, _ = s.DB.Exec(ctx, `UPDATE gateways SET refused = refused + 1, last_refusal = ?, last_refusal_at = ? WHERE id = ?`,
		reason, s.now().UnixMilli(), id)
}

// Querier is what a store transaction and a DB have in common (to record a nonce inside the
// caller's transaction).
type Querier = querier

// UseNonce records a request nonce of gateway id inside q's transaction; it returns false if
// the nonce was used before (a replay). A replay does not abort the transaction (on
// PostgreSQL a failed statement would), so a centre can commit other gateways' batches with it.
func (s *GatewayStore) UseNonce(ctx context.Context, q Querier, id, nonce string) (bool, error) {
	res, err := q.Exec(ctx, `INSERT INTO gateway_nonces(gateway_id, nonce, at) VALUES (?, ?, ?) ON CONFLICT (gateway_id, nonce) DO NOTHING`,
		id, nonce, s.now().UnixMilli())
	if err != nil {
		return false, fmt.Errorf("devices: record nonce: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("devices: record nonce: %w", err)
	}
	return n > 0, nil
}

// PruneNonces forgets nonces older than before (requests that old are refused as stale anyway).
func (s *GatewayStore) PruneNonces(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.DB.Exec(ctx, `DELETE FROM gateway_nonces WHERE at < ?`, before.UnixMilli())
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// PutInventory stores a gateway's inventory if its revision is newer than the one kept, and
// returns the revision the centre now holds. A stale revision changes nothing.
func (s *GatewayStore) PutInventory(ctx context.Context, inv *Inventory) (int64, bool, error) {
	if err := inv.Validate(); err != nil {
		return 0, false, errs.E(errs.KindInvalid, "invalid_inventory", "%s", err.Error())
	}
	var kept int64
	stored := false
	now := s.now().UnixMilli()
	err := s.DB.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT inventory_revision FROM gateways WHERE id = ?`, inv.GatewayID).Scan(&kept); err != nil {
			if store.IsNoRows(err) {
				return errNoGateway(inv.GatewayID)
			}
			return err
		}
		if inv.Revision <= kept {
			return nil
		}
		for _, q := range []string{`DELETE FROM gateway_sites WHERE gateway_id = ?`, `DELETE FROM gateway_devices WHERE gateway_id = ?`} {
			if _, err := tx.Exec(ctx, q, inv.GatewayID); err != nil {
				return err
			}
		}
		for i := range inv.Sites {
			site := inv.Sites[i]
			body, _ := json.Marshal(site)
			if _, err := tx.Exec(ctx, `INSERT INTO gateway_sites(gateway_id, id, department, region_code, body) VALUES (?, ?, ?, ?, ?)`,
				inv.GatewayID, site.ID, site.Department, site.RegionCode, string(body)); err != nil {
				return err
			}
		}
		for i := range inv.Devices {
			d := inv.Devices[i]
			d.Gateway = ""
			body, _ := json.Marshal(d)
			if _, err := tx.Exec(ctx, `INSERT INTO gateway_devices(gateway_id, id, site_id, kind, profile, body) VALUES (?, ?, ?, ?, ?, ?)`,
				inv.GatewayID, d.ID, d.SiteID, string(d.Kind), d.Profile, string(body)); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, `UPDATE gateways SET inventory_revision = ?, inventory_at = ? WHERE id = ?`, inv.Revision, now, inv.GatewayID)
		kept, stored = inv.Revision, true
		return err
	})
	if err != nil {
		if errs.KindOf(err) != errs.KindInternal {
			return 0, false, err
		}
		return 0, false, fmt.Errorf("devices: store inventory of %s: %w", inv.GatewayID, err)
	}
	return kept, stored, nil
}

// ChildSite is a site reported by an enrolled gateway.
type ChildSite struct {
	Site
	Gateway string `json:"gateway"`
}

// ChildSites returns the sites of every enrolled gateway that the filter selects, ordered by
// gateway and id. gateway "" means all gateways.
func (s *GatewayStore) ChildSites(ctx context.Context, gateway string, f SiteFilter) ([]ChildSite, error) {
	where, args := scopeSQL(f.Scope, "s", nil, nil)
	if gateway != "" {
		where = append(where, "s.gateway_id = ?")
		args = append(args, gateway)
	}
	if f.Department != "" {
		where = append(where, "s.department = ?")
		args = append(args, f.Department)
	}
	if p := NormalizeCode(f.RegionCode); p != "" {
		where = append(where, "substr(s.region_code, 1, ?) = ?")
		args = append(args, len(p), p)
	}
	q := `SELECT s.gateway_id, s.body FROM gateway_sites s`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	rows, err := s.DB.Query(ctx, q+" ORDER BY s.gateway_id, s.id", args...)
	if err != nil {
		return nil, fmt.Errorf("devices: list child sites: %w", err)
	}
	defer rows.Close()
	out := []ChildSite{}
	for rows.Next() {
		var cs ChildSite
		var body string
		if err := rows.Scan(&cs.Gateway, &body); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(body), &cs.Site); err != nil {
			return nil, fmt.Errorf("devices: stored site of %s: %w", cs.Gateway, err)
		}
		out = append(out, cs)
	}
	return out, rows.Err()
}

// ChildDevices returns the devices of enrolled gateways whose site the filter's scope allows.
func (s *GatewayStore) ChildDevices(ctx context.Context, gateway string, f DeviceFilter) ([]InventoryDevice, error) {
	var where []string
	var args []any
	if gateway != "" {
		where, args = []string{"d.gateway_id = ?"}, []any{gateway}
	}
	where, args = deviceFilterSQL(f, where, args)
	q := `SELECT d.gateway_id, d.body, COALESCE(g.state, '') FROM gateway_devices d LEFT JOIN gateway_sites s ON s.gateway_id = d.gateway_id AND s.id = d.site_id
		LEFT JOIN gateways g ON g.id = d.gateway_id`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	rows, err := s.DB.Query(ctx, q+" ORDER BY d.gateway_id, d.id", args...)
	if err != nil {
		return nil, fmt.Errorf("devices: list child devices: %w", err)
	}
	defer rows.Close()
	out := []InventoryDevice{}
	for rows.Next() {
		var gw, body, gwState string
		if err := rows.Scan(&gw, &body, &gwState); err != nil {
			return nil, err
		}
		var d InventoryDevice
		if err := json.Unmarshal([]byte(body), &d); err != nil {
			return nil, fmt.Errorf("devices: stored device of %s: %w", gw, err)
		}
		d.Gateway = gw
		staleIfGatewayOffline(&d, gwState)
		out = append(out, d)
	}
	return out, rows.Err()
}

// ChildDevice finds a device of an enrolled gateway by id (gateway "" searches all; the first
// by gateway id wins) together with its site.
func (s *GatewayStore) ChildDevice(ctx context.Context, gateway, id string) (InventoryDevice, ChildSite, error) {
	q := `SELECT d.gateway_id, d.body, COALESCE(g.state, '') FROM gateway_devices d LEFT JOIN gateways g ON g.id = d.gateway_id WHERE d.id = ?`
	args := []any{id}
	if gateway != "" {
		q += ` AND d.gateway_id = ?`
		args = append(args, gateway)
	}
	var gw, body, gwState string
	err := s.DB.QueryRow(ctx, q+` ORDER BY d.gateway_id LIMIT 1`, args...).Scan(&gw, &body, &gwState)
	if store.IsNoRows(err) {
		return InventoryDevice{}, ChildSite{}, errNoDevice(id)
	}
	if err != nil {
		return InventoryDevice{}, ChildSite{}, fmt.Errorf("devices: read child device: %w", err)
	}
	var d InventoryDevice
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		return d, ChildSite{}, fmt.Errorf("devices: stored device of %s: %w", gw, err)
	}
	d.Gateway = gw
	staleIfGatewayOffline(&d, gwState)
	cs := ChildSite{Gateway: gw}
	if err := s.DB.QueryRow(ctx, `SELECT body FROM gateway_sites WHERE gateway_id = ? AND id = ?`, gw, d.SiteID).Scan(&body); err == nil {
		_ = json.Unmarshal([]byte(body), &cs.Site)
	}
	return d, cs, nil
}

// staleIfGatewayOffline: the live state a gateway last reported is not live once the centre
// has marked that gateway offline; its devices read offline, reason gateway_unreachable,
// until it reports again.
func staleIfGatewayOffline(d *InventoryDevice, gatewayState string) {
	if gatewayState == GatewayOffline {
		d.State, d.Reason = GatewayOffline, "gateway_unreachable"
	}
}

// CascadeUser is the RTSP username a centre logs in with at a site's re-serve (cascade).
const CascadeUser = "offsite-centre"

// CascadePassword derives the RTSP password a centre uses at the re-serve of a site gateway
// from the secret they share since enrolment: hex(HMAC-SM3(secret, purpose)). Both sides
// compute it, so no password travels in the inventory, and rotating the enrolment secret
// revokes it.
func CascadePassword(secret []byte) string {
	m := hmac.New(sm3.New, secret)
	m.Write([]byte("offsite/v1 rtsp cascade"))
	return hex.EncodeToString(m.Sum(nil))
}
