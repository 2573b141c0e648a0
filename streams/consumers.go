package streams

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"regexp"
	"sync"
	"time"

	"github.com/offsite-gw/offsite/internal/errs"
	"github.com/offsite-gw/offsite/internal/store"
)

// RTSPRealm is the Digest realm of the re-serve; a stored HA1 is bound to it.
const RTSPRealm = "offsite"

// DigestHA1 returns hex MD5(user:realm:secret), the stored form of a re-serve login: all a
// Digest (RFC 2617, MD5) check needs, without the secret itself.
func DigestHA1(user, secret string) string {
	sum := md5.Sum([]byte(user + ":" + RTSPRealm + ":" + secret))
	return hex.EncodeToString(sum[:])
}

// RTSPCredential is one consumer's login as the re-serve checks it.
type RTSPCredential struct {
	// Consumer names who logs in (for logs, audit and revocation).
	Consumer string
	// HA1 is DigestHA1(username, secret).
	HA1 string
}

// CredentialSource finds the credential of a Digest user name; ok is false for a name it
// does not know (or a revoked one). The re-serve asks its sources in order, so more kinds of
// consumer (a centre's credential derived from its enrolment secret) are one more source.
type CredentialSource interface {
	RTSPCredential(ctx context.Context, username string) (cred RTSPCredential, ok bool, err error)
}

// StaticCredential is one fixed login: the configured streams.rtsp username and password,
// which the demo and the analytics workers' leases use.
type StaticCredential struct {
	Consumer, Username, Password string
}

// RTSPCredential implements CredentialSource.
func (s StaticCredential) RTSPCredential(_ context.Context, username string) (RTSPCredential, bool, error) {
	if s.Username == "" || username != s.Username {
		return RTSPCredential{}, false, nil
	}
	c := s.Consumer
	if c == "" {
		c = s.Username
	}
	return RTSPCredential{Consumer: c, HA1: DigestHA1(s.Username, s.Password)}, true, nil
}

// Consumer is one re-serve consumer (its Digest user name is Name).
type Consumer struct {
	Name      string     `json:"name"`
	Note      string     `json:"note,omitempty"`
	CreatedBy string     `json:"created_by,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

var consumerName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// ConsumerStore keeps the re-serve's consumers (table streams_rtsp_consumers, migration 0011)
// and is a CredentialSource over them. Lookups are cached for CacheFor; a revocation through
// Revoke takes effect at once and is handed to OnRevoke (the re-serve closes the consumer's
// connections).
type ConsumerStore struct {
	DB *store.DB
	// Reserved are names no consumer may take (the configured static login).
	Reserved []string
	// CacheFor is how long a lookup is remembered (default 5s; a revocation by another
	// process takes at most this long).
	CacheFor time.Duration
	OnRevoke func(name string)
	Now      func() time.Time

	mu    sync.Mutex
	cache map[string]cachedCred
}

type cachedCred struct {
	cred    RTSPCredential
	ok      bool
	expires time.Time
}

func (s *ConsumerStore) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Create adds a consumer and returns its secret, which is not kept and cannot be shown again.
func (s *ConsumerStore) Create(ctx context.Context, name, note, by string) (Consumer, string, error) {
	if !consumerName.MatchString(name) {
		return Consumer{}, "", errs.E(errs.KindInvalid, "bad_consumer_name",
			"a consumer name is 1 to 63 of a-z, 0-9, '.', '_', '-', starting with a letter or digit (e.g. analytics-1, recorder-site-3)")
	}
	for _, r := range s.Reserved {
		if r == name {
			return Consumer{}, "", errs.E(errs.KindConflict, "consumer_exists", "%q is the configured re-serve login (streams.rtsp.username)", name)
		}
	}
	if len(note) > 500 {
		return Consumer{}, "", errs.E(errs.KindInvalid, "bad_note", "a note is at most 500 bytes")
	}
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return Consumer{}, "", err
	}
	secret := base64.RawURLEncoding.EncodeToString(raw) // safe in rtsp://user:secret@host URLs
	now := s.now()
	_, err := s.DB.Exec(ctx, `INSERT INTO streams_rtsp_consumers (name, ha1, note, created_by, created_at, revoked_at) VALUES (?, ?, ?, ?, ?, 0)`,
		name, DigestHA1(name, secret), note, by, now.UnixMilli())
	if store.IsUniqueViolation(err) {
		return Consumer{}, "", errs.E(errs.KindConflict, "consumer_exists", "a consumer %q exists already (revoked ones keep their name)", name)
	}
	if err != nil {
		return Consumer{}, "", err
	}
	s.forget(name)
	return Consumer{Name: name, Note: note, CreatedBy: by, CreatedAt: time.UnixMilli(now.UnixMilli())}, secret, nil
}

// List returns every consumer, revoked ones included, by name.
func (s *ConsumerStore) List(ctx context.Context) ([]Consumer, error) {
	rows, err := s.DB.Query(ctx, `SELECT name, note, created_by, created_at, revoked_at FROM streams_rtsp_consumers ORDER BY name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Consumer{}
	for rows.Next() {
		var c Consumer
		var created, revoked int64
		if err := rows.Scan(&c.Name, &c.Note, &c.CreatedBy, &created, &revoked); err != nil {
			return nil, err
		}
		c.CreatedAt = time.UnixMilli(created)
		if revoked != 0 {
			t := time.UnixMilli(revoked)
			c.RevokedAt = &t
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// Revoke ends a consumer's login for good; its open connections are closed through OnRevoke.
func (s *ConsumerStore) Revoke(ctx context.Context, name string) (Consumer, error) {
	res, err := s.DB.Exec(ctx, `UPDATE streams_rtsp_consumers SET revoked_at = ? WHERE name = ? AND revoked_at = 0`, s.now().UnixMilli(), name)
	if err != nil {
		return Consumer{}, err
	}
	s.forget(name)
	n, _ := res.RowsAffected()
	all, err := s.List(ctx)
	if err != nil {
		return Consumer{}, err
	}
	for _, c := range all {
		if c.Name == name {
			if n > 0 && s.OnRevoke != nil {
				s.OnRevoke(name)
			}
			return c, nil
		}
	}
	return Consumer{}, errs.E(errs.KindNotFound, "consumer_not_found", "no RTSP consumer %q", name)
}

// RTSPCredential implements CredentialSource.
func (s *ConsumerStore) RTSPCredential(ctx context.Context, username string) (RTSPCredential, bool, error) {
	if !consumerName.MatchString(username) {
		return RTSPCredential{}, false, nil
	}
	now := s.now()
	s.mu.Lock()
	if c, ok := s.cache[username]; ok && now.Before(c.expires) {
		s.mu.Unlock()
		return c.cred, c.ok, nil
	}
	s.mu.Unlock()
	var ha1 string
	err := s.DB.QueryRow(ctx, `SELECT ha1 FROM streams_rtsp_consumers WHERE name = ? AND revoked_at = 0`, username).Scan(&ha1)
	if err != nil && !store.IsNoRows(err) {
		return RTSPCredential{}, false, err
	}
	c := cachedCred{ok: err == nil, cred: RTSPCredential{Consumer: username, HA1: ha1}}
	ttl := s.CacheFor
	if ttl <= 0 {
		ttl = 5 * time.Second
	}
	c.expires = now.Add(ttl)
	s.mu.Lock()
	if s.cache == nil || len(s.cache) > 10000 {
		s.cache = map[string]cachedCred{}
	}
	s.cache[username] = c
	s.mu.Unlock()
	return c.cred, c.ok, nil
}

func (s *ConsumerStore) forget(name string) {
	s.mu.Lock()
	delete(s.cache, name)
	s.mu.Unlock()
}
