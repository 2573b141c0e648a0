package uplink

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emmansun/gmsm/sm3"
)

// Signature algorithms (docs/contracts.md §6).
const (
	AlgSM3    = "hmac-sm3"
	AlgSHA256 = "hmac-sha256"
)

// Header names of a signed batch.
const (
	HeaderGateway   = "X-Offsite-Gateway"
	HeaderTimestamp = "X-Offsite-Timestamp"
	HeaderNonce     = "X-Offsite-Nonce"
	HeaderSignature = "X-Offsite-Signature"
	// HeaderBacklog and HeaderVersion are what a site tells its centre besides the signature
	// (events still to send after this batch, and its version), for the centre's health view.
	HeaderBacklog = "X-Offsite-Backlog"
	HeaderVersion = "X-Offsite-Version"
)

// Verification failures; receivers answer 401 for all of them.
var (
	ErrMissingHeader = errors.New("uplink: signature headers missing")
	ErrBadSignature  = errors.New("uplink: signature does not match")
	ErrAlgorithm     = errors.New("uplink: signature algorithm not accepted")
	ErrSkew          = errors.New("uplink: timestamp outside the allowed window")
	ErrReplay        = errors.New("uplink: nonce already used")
)

func hashFor(alg string) (func() hash.Hash, error) {
	switch alg {
	case AlgSM3:
		return sm3.New, nil
	case AlgSHA256:
		return sha256.New, nil
	}
	return nil, fmt.Errorf("%w: %q (use %s or %s)", ErrAlgorithm, alg, AlgSM3, AlgSHA256)
}

// StringToSign is timestamp + "\n" + nonce + "\n" + hex(sha256(body)).
func StringToSign(timestamp, nonce string, body []byte) []byte {
	sum := sha256.Sum256(body)
	return []byte(timestamp + "\n" + nonce + "\n" + hex.EncodeToString(sum[:]))
}

// Sign returns the X-Offsite-Signature value "ALG=HEX".
func Sign(alg string, secret []byte, timestamp, nonce string, body []byte) (string, error) {
	h, err := hashFor(alg)
	if err != nil {
		return "", err
	}
	m := hmac.New(h, secret)
	m.Write(StringToSign(timestamp, nonce, body))
	return alg + "=" + hex.EncodeToString(m.Sum(nil)), nil
}

// SignRequest sets the four X-Offsite headers on req for body.
func SignRequest(req *http.Request, gatewayID, alg string, secret []byte, now time.Time, body []byte) error {
	ts := strconv.FormatInt(now.UnixMilli(), 10)
	var nb [16]byte
	_, _ = rand.Read(nb[:])
	nonce := hex.EncodeToString(nb[:])
	sig, err := Sign(alg, secret, ts, nonce, body)
	if err != nil {
		return err
	}
	req.Header.Set(HeaderGateway, gatewayID)
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderNonce, nonce)
	req.Header.Set(HeaderSignature, sig)
	return nil
}

// ParseSignature splits "ALG=HEX" into the algorithm and the MAC bytes.
func ParseSignature(v string) (alg string, mac []byte, err error) {
	alg, hx, ok := strings.Cut(strings.TrimSpace(v), "=")
	if !ok || alg == "" {
		return "", nil, fmt.Errorf("%w: want ALG=HEX", ErrBadSignature)
	}
	alg = strings.ToLower(alg)
	if _, err := hashFor(alg); err != nil {
		return "", nil, err
	}
	if len(hx) != 64 {
		return "", nil, fmt.Errorf("%w: MAC must be 64 hex digits", ErrBadSignature)
	}
	mac, err = hex.DecodeString(hx)
	if err != nil {
		return "", nil, fmt.Errorf("%w: MAC is not hex", ErrBadSignature)
	}
	return alg, mac, nil
}

// Verify checks a signed batch: headers present, algorithm accepted (alg "" accepts both),
// timestamp within maxSkew of now and the MAC over body. It does not check nonce replay; a
// receiver keeps a NonceCache for that (or uses Verifier).
func Verify(secret []byte, alg string, h http.Header, body []byte, now time.Time, maxSkew time.Duration) error {
	ts, nonce, sig := h.Get(HeaderTimestamp), h.Get(HeaderNonce), h.Get(HeaderSignature)
	if ts == "" || nonce == "" || sig == "" || h.Get(HeaderGateway) == "" {
		return ErrMissingHeader
	}
	if len(nonce) > 128 {
		return fmt.Errorf("%w: nonce too long", ErrBadSignature)
	}
	gotAlg, mac, err := ParseSignature(sig)
	if err != nil {
		return err
	}
	if alg != "" && gotAlg != alg {
		return fmt.Errorf("%w: got %s, want %s", ErrAlgorithm, gotAlg, alg)
	}
	ms, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: timestamp is not unix milliseconds", ErrSkew)
	}
	if maxSkew > 0 {
		d := now.Sub(time.UnixMilli(ms))
		if d > maxSkew || d < -maxSkew {
			return fmt.Errorf("%w: %s off", ErrSkew, d.Round(time.Millisecond))
		}
	}
	hf, _ := hashFor(gotAlg)
	m := hmac.New(hf, secret)
	m.Write(StringToSign(ts, nonce, body))
	if !hmac.Equal(m.Sum(nil), mac) {
		return ErrBadSignature
	}
	return nil
}

// NonceCache remembers nonces seen within a window so a captured batch cannot be replayed.
type NonceCache struct {
	// TTL should be at least twice the allowed skew.
	TTL time.Duration
	// Max bounds memory; when full, new nonces are refused until old ones expire.
	Max int

	mu     sync.Mutex
	seen   map[string]time.Time
	pruned time.Time
}

// Use records nonce at now; it returns false if it was seen within TTL or the cache is full.
func (c *NonceCache) Use(nonce string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seen = map[string]time.Time{}
	}
	if c.Max <= 0 {
		c.Max = 1 << 20
	}
	if now.Sub(c.pruned) > c.TTL/4 || len(c.seen) >= c.Max {
		for n, t := range c.seen {
			if now.Sub(t) > c.TTL {
				delete(c.seen, n)
			}
		}
		c.pruned = now
	}
	if t, ok := c.seen[nonce]; ok && now.Sub(t) <= c.TTL {
		return false
	}
	if len(c.seen) >= c.Max {
		return false
	}
	c.seen[nonce] = now
	return true
}

// Verifier is Verify plus replay refusal, for receivers.
type Verifier struct {
	Secret  []byte
	Alg     string        // "" accepts both algorithms
	MaxSkew time.Duration // default 5 minutes
	nonces  NonceCache
	once    sync.Once
}

// Verify checks the request's signature, skew and nonce.
func (v *Verifier) Verify(h http.Header, body []byte, now time.Time) error {
	v.once.Do(func() {
		if v.MaxSkew <= 0 {
			v.MaxSkew = 5 * time.Minute
		}
		v.nonces.TTL = 2 * v.MaxSkew
	})
	if err := Verify(v.Secret, v.Alg, h, body, now, v.MaxSkew); err != nil {
		return err
	}
	if !v.nonces.Use(h.Get(HeaderNonce), now) {
		return ErrReplay
	}
	return nil
}
