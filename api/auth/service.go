package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/offsite-gw/offsite/internal/audit"
	"github.com/offsite-gw/offsite/internal/errs"
	"github.com/offsite-gw/offsite/internal/store"
)

// Defaults for the zero fields of Service.
const (
	DefaultTokenTTL     = 12 * time.Hour
	DefaultLockoutAfter = 5
	DefaultLockoutFor   = 15 * time.Minute
	DefaultIPBurst      = 20
	DefaultIPEvery      = 3 * time.Second
)

// Service keeps users and tokens in the store and checks logins. Fill the fields, then use it
// from any number of goroutines; do not copy it after first use.
type Service struct {
	DB     *store.DB
	Audit  *audit.Log   // logins, logouts and EnsureAdmin are recorded here; may be nil in tools
	Logger *slog.Logger // may be nil

	// TokenTTL is how long a token from Login is valid (default 12 h).
	TokenTTL time.Duration
	// LockoutAfter failed logins of one account from one client address within LockoutFor
	// lock that account for that address for LockoutFor (defaults 5 and 15 min); the rightful
	// user at another address still logs in. Failures are counted from the audit log (the
	// attempts are recorded there anyway), so a restart does not reset them and every gateway
	// on one database sees the same; without Audit there is no lock-out. A successful login
	// from the address, an admin's Unlock or a password reset ends the lock.
	LockoutAfter int
	LockoutFor   time.Duration
	// Each client IP may try IPBurst logins at once and one more every IPEvery (defaults 20
	// and 3 s). This bucket is in memory only.
	IPBurst int
	IPEvery time.Duration
	// Argon2 sets the cost of new password hashes; zero means DefaultArgon2.
	Argon2 Argon2Params
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	dummyOnce sync.Once
	dummyHash string

	mu      sync.Mutex
	buckets map[string]*bucket // per client IP
}

// bucket is a token bucket: tokens refill at one per IPEvery up to IPBurst.
type bucket struct {
	tokens float64
	last   time.Time
}

const maxTracked = 8192 // bound on in-memory buckets

var (
	errInvalidCredentials = errs.E(errs.KindUnauthorized, "invalid_credentials", "wrong username or password")
	errInvalidToken       = errs.E(errs.KindUnauthorized, "invalid_token", "the token is invalid or was revoked; log in again")
	errTokenExpired       = errs.E(errs.KindUnauthorized, "token_expired", "the token has expired; log in again")
)

type retryAfterError time.Duration

func (e retryAfterError) Error() string { return "retry after " + time.Duration(e).String() }

// RetryAfter returns how long a caller must wait after a KindLocked error from Login, or 0.
func RetryAfter(err error) time.Duration {
	var r retryAfterError
	if errors.As(err, &r) {
		return time.Duration(r)
	}
	return 0
}

func lockedErr(code, format string, wait time.Duration) error {
	wait = wait.Round(time.Second)
	if wait < time.Second {
		wait = time.Second
	}
	return errs.Wrap(errs.KindLocked, code, retryAfterError(wait), format, wait)
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Service) tokenTTL() time.Duration {
	if s.TokenTTL > 0 {
		return s.TokenTTL
	}
	return DefaultTokenTTL
}

func (s *Service) lockoutAfter() int {
	if s.LockoutAfter > 0 {
		return s.LockoutAfter
	}
	return DefaultLockoutAfter
}

func (s *Service) lockoutFor() time.Duration {
	if s.LockoutFor > 0 {
		return s.LockoutFor
	}
	return DefaultLockoutFor
}

func (s *Service) record(ctx context.Context, e audit.Entry) {
	if s.Audit == nil {
		return
	}
	if e.At.IsZero() {
		e.At = s.now()
	}
	_ = s.Audit.Record(ctx, e) // Record logs its own failures
}

func (s *Service) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// allowIP takes one login attempt from ip's bucket, or says how long to wait.
func (s *Service) allowIP(ip string, now time.Time) (bool, time.Duration) {
	burst, every := float64(s.IPBurst), s.IPEvery
	if burst <= 0 {
		burst = DefaultIPBurst
	}
	if every <= 0 {
		every = DefaultIPEvery
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.buckets == nil {
		s.buckets = map[string]*bucket{}
	}
	b := s.buckets[ip]
	if b == nil {
		if len(s.buckets) >= maxTracked {
			full := time.Duration(burst) * every
			for k, v := range s.buckets {
				if now.Sub(v.last) >= full {
					delete(s.buckets, k)
				}
			}
		}
		b = &bucket{tokens: burst, last: now}
		s.buckets[ip] = b
	}
	if el := now.Sub(b.last); el > 0 {
		b.tokens = min(burst, b.tokens+float64(el)/float64(every))
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) * float64(every))
}

// recentFailures are the failed logins of name from ip that can still count towards a lock
// (newest first): within two lock-out periods, after the last success, unlock or reset.
func (s *Service) recentFailures(ctx context.Context, name, ip string, now time.Time) ([]time.Time, error) {
	if s.Audit == nil {
		return nil, nil
	}
	fails, err := s.Audit.RecentFailedLogins(ctx, name, ip, now.Add(-2*s.lockoutFor()), s.lockoutAfter())
	if err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "store_unavailable", err, "cannot check the login now")
	}
	return fails, nil
}

// lockedUntil is the end of the lock that failures (newest first) impose: LockoutFor after
// the newest one when it completed LockoutAfter failures within LockoutFor. Attempts while
// locked are not failures, so a lock ends on time, and a failure after it starts a new count.
func (s *Service) lockedUntil(fails []time.Time) time.Time {
	n := s.lockoutAfter()
	if len(fails) < n || fails[0].Sub(fails[n-1]) > s.lockoutFor() {
		return time.Time{}
	}
	return fails[0].Add(s.lockoutFor())
}

// Unlock ends every login lock-out of user id (all addresses) and its password-change lock,
// and audits it as user.unlock by actor.
func (s *Service) Unlock(ctx context.Context, id string, actor audit.Entry) (User, error) {
	u, err := s.GetUser(ctx, id)
	if err != nil {
		return u, err
	}
	if _, err := s.DB.Exec(ctx, `UPDATE users SET failed_logins = 0, locked_until = 0 WHERE id = ?`, id); err != nil {
		return u, fmt.Errorf("auth: unlock: %w", err)
	}
	actor.Action, actor.Target, actor.Result = "user.unlock", auditName(u.Username), "ok"
	if s.Audit == nil {
		return u, nil
	}
	if actor.At.IsZero() {
		actor.At = s.now()
	}
	if err := s.Audit.Record(ctx, actor); err != nil {
		return u, errs.Wrap(errs.KindUnavailable, "store_unavailable", err, "the unlock could not be recorded; try again")
	}
	u.LockedUntil = nil
	return u, nil
}

// dummy is a hash checked for unknown usernames so that they take as long as known ones.
func (s *Service) dummy() string {
	s.dummyOnce.Do(func() { s.dummyHash = HashPassword(s.Argon2, GeneratePassword()) })
	return s.dummyHash
}

// maxUsernameAudit bounds what a login attempt writes to the audit log.
const maxUsernameAudit = 64

func auditName(s string) string {
	if len(s) > maxUsernameAudit {
		return s[:maxUsernameAudit] + "…"
	}
	return s
}

// Login checks username and password and returns a new token valid until expires. An unknown
// username and a wrong password give the same error (KindUnauthorized, invalid_credentials).
// After LockoutAfter failures from one ip within LockoutFor the account is locked for that ip
// for LockoutFor (KindLocked, account_locked; other addresses are not affected); too many
// attempts from one ip, whatever the account, give KindLocked, too_many_attempts. Use
// RetryAfter on a KindLocked error for the wait. Every attempt is audited with ip.
func (s *Service) Login(ctx context.Context, username, password, ip string) (string, time.Time, User, error) {
	now := s.now()
	name := NormalizeUsername(username)
	entry := audit.Entry{At: now, Actor: auditName(name), Action: "auth.login", IP: ip}

	if ok, wait := s.allowIP(ip, now); !ok {
		entry.Result, entry.Detail = "throttled", "too many attempts from this address"
		s.record(ctx, entry)
		return "", time.Time{}, User{}, lockedErr("too_many_attempts", "too many login attempts from this address; try again in %s", wait)
	}
	if len(password) > 4*MaxPasswordLen {
		// Longer than any password the policy admits: wrong by definition. Checking "" keeps
		// the cost (and the failure count) of an ordinary wrong password.
		password = ""
	}

	// Locked for this address? Known and unknown usernames lock alike, so the lock-out does
	// not tell an attacker which usernames are real.
	fails, err := s.recentFailures(ctx, entry.Actor, ip, now)
	if err != nil {
		return "", time.Time{}, User{}, err
	}
	if until := s.lockedUntil(fails); now.Before(until) {
		entry.Result, entry.Detail = "locked", "locked for this address"
		s.record(ctx, entry)
		return "", time.Time{}, User{}, lockedErr("account_locked", "too many failed logins for this account from your address; try again in %s", until.Sub(now))
	}
	// fail records a failed attempt and says whether it locks the account for this address.
	fail := func(detail string) error {
		entry.Result, entry.Detail = "failed", detail
		if until := s.lockedUntil(append([]time.Time{now}, fails...)); now.Before(until) {
			entry.Detail += "; locked for " + s.lockoutFor().String() + " for this address"
		}
		s.record(ctx, entry)
		return errInvalidCredentials
	}

	row, err := s.loadUser(ctx, `username = ?`, name)
	if errs.Is(err, errs.KindNotFound) {
		_, _ = VerifyPassword(s.dummy(), password)
		return "", time.Time{}, User{}, fail("unknown user")
	}
	if err != nil {
		return "", time.Time{}, User{}, err
	}
	u := row.User
	entry.Role = string(u.Role)
	ok, verr := VerifyPassword(row.hash, password)
	if verr != nil {
		s.logger().Error("stored password hash unreadable", "user", u.Username, "err", verr)
	}
	if !ok {
		return "", time.Time{}, User{}, fail("wrong password")
	}
	if u.Disabled {
		entry.Result, entry.Detail = "denied", "account disabled"
		s.record(ctx, entry)
		return "", time.Time{}, User{}, errs.E(errs.KindForbidden, "account_disabled", "this account is disabled; ask an administrator")
	}
	if row.failed != 0 || row.lockedUntil != 0 {
		if _, err := s.DB.Exec(ctx, `UPDATE users SET failed_logins = 0, locked_until = 0 WHERE id = ?`, u.ID); err != nil {
			return "", time.Time{}, User{}, fmt.Errorf("auth: reset failed logins: %w", err)
		}
		u.LockedUntil = nil
	}
	s.upgradeHash(ctx, u.ID, row.hash, password)

	token, expires, err := s.issueToken(ctx, u.ID, ip, now)
	if err != nil {
		return "", time.Time{}, User{}, err
	}
	entry.Result = "ok"
	s.record(ctx, entry)
	return token, expires, u, nil
}

// recordFailure counts a failed password and locks the account when the count reaches
// LockoutAfter. The increment is one statement, so concurrent failures are all counted.
func (s *Service) recordFailure(ctx context.Context, userID string, now time.Time) (locked bool, err error) {
	err = s.DB.InTx(ctx, func(tx *store.Tx) error {
		var n int
		if err := tx.QueryRow(ctx, `UPDATE users SET failed_logins = failed_logins + 1 WHERE id = ? RETURNING failed_logins`, userID).Scan(&n); err != nil {
			return fmt.Errorf("auth: count failed login: %w", err)
		}
		if n < s.lockoutAfter() {
			return nil
		}
		locked = true
		_, err := tx.Exec(ctx, `UPDATE users SET failed_logins = 0, locked_until = ? WHERE id = ?`, now.Add(s.lockoutFor()).UnixMilli(), userID)
		return err
	})
	return locked, err
}

// upgradeHash rehashes a correct password whose stored hash uses other parameters than the
// configured ones. Best effort: a failure only means the upgrade is tried next time.
func (s *Service) upgradeHash(ctx context.Context, userID, phc, password string) {
	p, _, _, err := ParseHash(phc)
	if err != nil || p == s.Argon2.orDefault() {
		return
	}
	if _, err := s.DB.Exec(ctx, `UPDATE users SET password_hash = ? WHERE id = ? AND password_hash = ?`,
		HashPassword(s.Argon2, password), userID, phc); err != nil {
		s.logger().Warn("password hash upgrade failed", "user_id", userID, "err", err)
	}
}

// HashToken is how a token is stored: hex sha256. The token itself is never stored.
func HashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

func (s *Service) issueToken(ctx context.Context, userID, ip string, now time.Time) (string, time.Time, error) {
	var raw [32]byte
	_, _ = rand.Read(raw[:])
	token := base64.RawURLEncoding.EncodeToString(raw[:])
	expires := now.Add(s.tokenTTL()).Truncate(time.Millisecond)
	if _, err := s.DB.Exec(ctx, `INSERT INTO tokens(hash, user_id, created_at, expires_at, ip) VALUES (?, ?, ?, ?, ?)`,
		HashToken(token), userID, now.UnixMilli(), expires.UnixMilli(), ip); err != nil {
		return "", time.Time{}, fmt.Errorf("auth: store token: %w", err)
	}
	// Expired tokens are useless; sweep them while we are writing anyway.
	if _, err := s.DB.Exec(ctx, `DELETE FROM tokens WHERE expires_at <= ?`, now.UnixMilli()); err != nil {
		s.logger().Warn("sweeping expired tokens failed", "err", err)
	}
	return token, expires, nil
}

// maxTokenLen rejects garbage before it reaches the database; real tokens are 43 characters.
const maxTokenLen = 128

// Authenticate returns the user a token belongs to, as the user is now (role changes and
// disabling take effect on the next request). Errors are KindUnauthorized: invalid_token,
// token_expired.
func (s *Service) Authenticate(ctx context.Context, token string) (User, error) {
	u, _, err := s.authenticate(ctx, token)
	return u, err
}

func (s *Service) authenticate(ctx context.Context, token string) (User, time.Time, error) {
	if token == "" || len(token) > maxTokenLen {
		return User{}, time.Time{}, errInvalidToken
	}
	hash := HashToken(token)
	var expires int64
	var userID string
	err := s.DB.QueryRow(ctx, `SELECT user_id, expires_at FROM tokens WHERE hash = ?`, hash).Scan(&userID, &expires)
	if store.IsNoRows(err) {
		return User{}, time.Time{}, errInvalidToken
	}
	if err != nil {
		return User{}, time.Time{}, errs.Wrap(errs.KindUnavailable, "store_unavailable", err, "cannot check the token now")
	}
	if s.now().UnixMilli() >= expires {
		_, _ = s.DB.Exec(ctx, `DELETE FROM tokens WHERE hash = ?`, hash)
		return User{}, time.Time{}, errTokenExpired
	}
	row, err := s.loadUser(ctx, `id = ?`, userID)
	if errs.Is(err, errs.KindNotFound) {
		return User{}, time.Time{}, errInvalidToken
	}
	if err != nil {
		return User{}, time.Time{}, err
	}
	if row.Disabled {
		return User{}, time.Time{}, errs.E(errs.KindUnauthorized, "account_disabled", "this account is disabled; ask an administrator")
	}
	return row.User, time.UnixMilli(expires), nil
}

// Logout revokes token. Logging out with an unknown or expired token is not an error.
func (s *Service) Logout(ctx context.Context, token, ip string) error {
	u, _, err := s.authenticate(ctx, token)
	if _, derr := s.DB.Exec(ctx, `DELETE FROM tokens WHERE hash = ?`, HashToken(token)); derr != nil {
		return fmt.Errorf("auth: revoke token: %w", derr)
	}
	if err == nil {
		s.record(ctx, audit.Entry{Actor: u.Username, Role: string(u.Role), Action: "auth.logout", IP: ip, Result: "ok"})
	}
	return nil
}

// userRow is a users row with the columns User does not expose.
type userRow struct {
	User
	hash        string
	failed      int
	lockedUntil int64
}

const userColumns = `id, username, display_name, password_hash, role, departments, regions, disabled, failed_logins, locked_until, created_at, updated_at`

type scanner interface{ Scan(dest ...any) error }

func scanUser(sc scanner, now time.Time) (userRow, error) {
	var r userRow
	var deps, regs string
	var created, updated int64
	if err := sc.Scan(&r.ID, &r.Username, &r.DisplayName, &r.hash, &r.Role, &deps, &regs, &r.Disabled,
		&r.failed, &r.lockedUntil, &created, &updated); err != nil {
		return r, err
	}
	if err := json.Unmarshal([]byte(deps), &r.Departments); err != nil {
		return r, fmt.Errorf("auth: user %s: departments: %w", r.Username, err)
	}
	if err := json.Unmarshal([]byte(regs), &r.Regions); err != nil {
		return r, fmt.Errorf("auth: user %s: regions: %w", r.Username, err)
	}
	if r.Departments == nil {
		r.Departments = []string{}
	}
	if r.Regions == nil {
		r.Regions = []string{}
	}
	r.CreatedAt, r.UpdatedAt = time.UnixMilli(created).UTC(), time.UnixMilli(updated).UTC()
	if r.lockedUntil > now.UnixMilli() {
		t := time.UnixMilli(r.lockedUntil).UTC()
		r.LockedUntil = &t
	}
	return r, nil
}

func (s *Service) loadUser(ctx context.Context, where string, arg any) (userRow, error) {
	r, err := scanUser(s.DB.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE `+where, arg), s.now())
	if store.IsNoRows(err) {
		return r, errs.E(errs.KindNotFound, "user_not_found", "no such user")
	}
	if err != nil {
		return r, fmt.Errorf("auth: load user: %w", err)
	}
	return r, nil
}
