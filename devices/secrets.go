package devices

import (
	"container/list"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emmansun/gmsm/sm4"
	"golang.org/x/crypto/argon2"
	"golang.org/x/sync/singleflight"

	"github.com/offsite-gw/offsite/internal/errs"
)

// Sealed-text prefixes. The version lets a later format sit beside this one.
const (
	prefixSM4GCM = "sm4gcm:v1:"
	prefixAESGCM = "aesgcm:v1:"
)

// Sealer encrypts camera RTSP passwords at rest. The gateway must hand them to cameras, so they
// are encrypted, not hashed. With a 16-byte key it uses SM4-GCM (GB/T 32907, what government
// deployments are audited for); with a 32-byte key AES-256-GCM. Each sealed text is bound to
// the id of the device it belongs to (GCM additional data), so a ciphertext copied to another
// row does not decrypt.
type Sealer struct {
	alg   string // prefix of texts this sealer writes and can read
	aead  cipher.AEAD
	keyID string // first bytes of sha256(key), to tell keys apart in errors without leaking them
}

// NewSealer builds a Sealer from a hex key: 32 hex digits (16 bytes) for SM4-GCM, 64 hex digits
// (32 bytes) for AES-256-GCM.
func NewSealer(hexKey string) (*Sealer, error) {
	key, err := hex.DecodeString(strings.TrimSpace(hexKey))
	if err != nil {
		return nil, errs.Wrap(errs.KindInvalid, "invalid_secrets_key", err,
			"secrets key must be hex: 32 hex digits for SM4 or 64 for AES-256 (generate one with `openssl rand -hex 16`)")
	}
	var block cipher.Block
	var alg string
	switch len(key) {
	case 16:
		block, err = sm4.NewCipher(key)
		if err == nil {
			err = sm4SelfTest()
		}
		alg = prefixSM4GCM
	case 32:
		block, err = aes.NewCipher(key)
		alg = prefixAESGCM
	default:
		return nil, errs.E(errs.KindInvalid, "invalid_secrets_key",
			"secrets key is %d bytes; it must be 16 bytes (32 hex digits) for SM4 or 32 bytes (64 hex digits) for AES-256", len(key))
	}
	if err != nil {
		return nil, fmt.Errorf("devices: secrets cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("devices: secrets GCM: %w", err)
	}
	sum := sha256.Sum256(key)
	return &Sealer{alg: alg, aead: aead, keyID: hex.EncodeToString(sum[:4])}, nil
}

// sm4SelfTest checks SM4 on this machine against the worked example of GB/T 32907-2016
// (appendix A, example 1) before passwords are sealed with it. gmsm chooses its code path from
// the CPU at run time (AES-NI or NEON on most machines, the ARMv8.2 SM4E/SM4EKEY instructions
// where the CPU has them, see docs/arm64.md); a path that computed wrong would seal passwords
// that no other machine can open, so the gateway refuses to start instead.
func sm4SelfTest() error {
	key, _ := hex.DecodeString("0123456789abcdeffedcba9876543210")
	want, _ := hex.DecodeString("681edf34d206965e86b3e94f536e4246")
	return checkBlock(sm4.NewCipher, key, key, want)
}

// checkBlock encrypts plain with a block cipher made by newCipher(key), expecting want.
func checkBlock(newCipher func([]byte) (cipher.Block, error), key, plain, want []byte) error {
	b, err := newCipher(key)
	if err != nil {
		return err
	}
	got := make([]byte, len(plain))
	b.Encrypt(got, plain)
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return fmt.Errorf("self-test failed on this CPU (%s): got %x, the standard gives %x; start with DISABLE_SM4NI=1 (leaves the CPU's SM4 instructions unused) or use a 64-hex-digit AES-256 key",
			runtime.GOARCH, got, want)
	}
	return nil
}

// GenerateSealerKey returns a fresh random SM4 key in hex, for first start-up and the demo.
func GenerateSealerKey() string {
	var k [16]byte
	_, _ = rand.Read(k[:]) // crypto/rand.Read never fails (it aborts the program instead)
	return hex.EncodeToString(k[:])
}

// Algorithm names the cipher the sealer writes: "sm4-gcm" or "aes-256-gcm".
func (s *Sealer) Algorithm() string {
	if s.alg == prefixSM4GCM {
		return "sm4-gcm"
	}
	return "aes-256-gcm"
}

// Seal encrypts plain and binds it to boundTo (a device id). The result is
// "sm4gcm:v1:" or "aesgcm:v1:" followed by base64(nonce | ciphertext | tag).
func (s *Sealer) Seal(plain, boundTo string) string {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	_, _ = rand.Read(nonce)
	out := s.aead.Seal(nonce, nonce, []byte(plain), []byte(boundTo))
	return s.alg + base64.StdEncoding.EncodeToString(out)
}

// Open decrypts a text made by Seal with the same key and boundTo.
func (s *Sealer) Open(sealed, boundTo string) (string, error) {
	var alg string
	switch {
	case strings.HasPrefix(sealed, prefixSM4GCM):
		alg = prefixSM4GCM
	case strings.HasPrefix(sealed, prefixAESGCM):
		alg = prefixAESGCM
	default:
		return "", errs.E(errs.KindInternal, "secret_format_unknown",
			"stored secret of %q is not in a known format (expected sm4gcm:v1: or aesgcm:v1:)", boundTo)
	}
	if alg != s.alg {
		return "", errs.E(errs.KindInternal, "secrets_key_mismatch",
			"stored secret of %q was sealed with %s but the configured secrets key is for %s; configure the key it was sealed with",
			boundTo, algName(alg), s.Algorithm())
	}
	raw, err := base64.StdEncoding.DecodeString(sealed[len(alg):])
	if err != nil || len(raw) < s.aead.NonceSize()+s.aead.Overhead() {
		return "", errs.E(errs.KindInternal, "secret_corrupt", "stored secret of %q is damaged (bad base64 or too short)", boundTo)
	}
	n := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, raw[:n], raw[n:], []byte(boundTo))
	if err != nil {
		return "", errs.E(errs.KindInternal, "secrets_key_mismatch",
			"stored secret of %q does not decrypt with the configured secrets key (key id %s): the key changed since it was stored, or the value was altered; restore the old key or enter the password again",
			boundTo, s.keyID)
	}
	return string(plain), nil
}

func algName(prefix string) string {
	if prefix == prefixSM4GCM {
		return "sm4-gcm"
	}
	return "aes-256-gcm"
}

// secretAlphabet leaves out characters people confuse when reading a secret off a label
// (0/O, 1/l/I).
const secretAlphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

// GenerateSecret returns a random 24-character device secret (about 139 bits).
func GenerateSecret() string {
	const n = 24
	out := make([]byte, 0, n)
	var buf [32]byte
	// Rejection sampling keeps every character equally likely.
	limit := 256 - 256%len(secretAlphabet)
	for len(out) < n {
		_, _ = rand.Read(buf[:])
		for _, b := range buf {
			if int(b) < limit && len(out) < n {
				out = append(out, secretAlphabet[int(b)%len(secretAlphabet)])
			}
		}
	}
	return string(out)
}

// Argon2Params are the argon2id cost parameters for device secrets. Devices reconnect often and
// there are thousands of them, and their secrets are long random strings rather than people's
// passwords, so the cost is modest.
type Argon2Params struct {
	Time      uint32 // passes
	MemoryKiB uint32
	Threads   uint8
}

// DefaultArgon2 is t=1, m=16 MiB, p=1: about 20 ms on one core.
var DefaultArgon2 = Argon2Params{Time: 1, MemoryKiB: 16 * 1024, Threads: 1}

const (
	argonSaltLen = 16
	argonKeyLen  = 32
)

// HashSecret hashes a device secret with argon2id and returns it PHC-encoded:
// $argon2id$v=19$m=16384,t=1,p=1$SALT$HASH (unpadded standard base64).
func HashSecret(secret string, p Argon2Params) string {
	salt := make([]byte, argonSaltLen)
	_, _ = rand.Read(salt)
	sum := argon2.IDKey([]byte(secret), salt, p.Time, p.MemoryKiB, p.Threads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.MemoryKiB, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(sum))
}

// parsedHash is a decoded PHC argon2id string.
type parsedHash struct {
	p    Argon2Params
	salt []byte
	sum  []byte
}

// parseHash decodes a PHC argon2id string. Parameters are bounded so a damaged or hostile row
// cannot make one login allocate gigabytes.
func parseHash(encoded string) (parsedHash, error) {
	bad := func(why string) (parsedHash, error) {
		return parsedHash{}, errs.E(errs.KindInternal, "secret_hash_corrupt", "stored secret hash is damaged: %s", why)
	}
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return bad("not a $argon2id$ string")
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return bad("unsupported version " + parts[2])
	}
	var h parsedHash
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, _ := strings.Cut(kv, "=")
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return bad("parameter " + kv)
		}
		switch k {
		case "m":
			h.p.MemoryKiB = uint32(n)
		case "t":
			h.p.Time = uint32(n)
		case "p":
			if n > 255 {
				return bad("parameter " + kv)
			}
			h.p.Threads = uint8(n)
		default:
			return bad("unknown parameter " + k)
		}
	}
	if h.p.Time < 1 || h.p.Time > 16 || h.p.MemoryKiB < 8 || h.p.MemoryKiB > 256*1024 || h.p.Threads < 1 || h.p.Threads > 16 {
		return bad("parameters " + parts[3] + " out of range")
	}
	var err error
	if h.salt, err = base64.RawStdEncoding.DecodeString(parts[4]); err != nil || len(h.salt) < 8 {
		return bad("salt")
	}
	if h.sum, err = base64.RawStdEncoding.DecodeString(parts[5]); err != nil || len(h.sum) < 16 || len(h.sum) > 64 {
		return bad("hash")
	}
	return h, nil
}

// VerifySecret reports whether secret matches a HashSecret or HashStrongSecret string,
// comparing in constant time.
func VerifySecret(encoded, secret string) (bool, error) {
	if strings.HasPrefix(encoded, prefixSHA256) {
		return verifyFast(encoded, secret)
	}
	h, err := parseHash(encoded)
	if err != nil {
		return false, err
	}
	sum := argon2.IDKey([]byte(secret), h.salt, h.p.Time, h.p.MemoryKiB, h.p.Threads, uint32(len(h.sum)))
	return subtle.ConstantTimeCompare(sum, h.sum) == 1, nil
}

// SecretVerifier checks device secrets against their hashes. It remembers recent successful
// checks (keyed by sha256 of username, secret and hash, so a changed secret or hash misses) so
// that a reconnect storm after a network blip costs a map lookup per device instead of an
// argon2 run, and it runs at most one argon2 per CPU at a time so a flood of wrong logins
// cannot take all memory (each run takes MemoryKiB). Failures are never cached. The zero value
// is ready to use.
type SecretVerifier struct {
	// Size bounds the cache (default 4096 entries); TTL bounds how long an entry is trusted
	// (default 10 minutes).
	Size int
	TTL  time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time

	mu       sync.Mutex
	entries  map[[32]byte]*list.Element
	order    *list.List // front = most recent; values are cacheEntry
	sem      chan struct{}
	inflight singleflight.Group
	runs     int64 // argon2 computations, for tests and metrics
}

type cacheEntry struct {
	key [32]byte
	at  time.Time
}

// Verify reports whether secret is right for username with the stored hash. It returns an
// error only for a damaged hash or a cancelled context.
func (v *SecretVerifier) Verify(ctx context.Context, username, secret, encoded string) (bool, error) {
	key := cacheKey(username, secret, encoded)
	now := v.now()
	v.mu.Lock()
	v.init()
	if el, ok := v.entries[key]; ok {
		e := el.Value.(cacheEntry)
		if now.Sub(e.at) < v.ttl() {
			v.order.MoveToFront(el)
			v.mu.Unlock()
			return true, nil
		}
		v.order.Remove(el)
		delete(v.entries, key)
	}
	sem := v.sem
	v.mu.Unlock()

	// Identical checks in flight at once (a device retrying fast) share one computation. The
	// result is cached before the call ends, so a later arrival finds it in the cache.
	res, err, _ := v.inflight.Do(string(key[:]), func() (any, error) {
		// The first caller's context governs the shared wait; see the retry below.
		if err := ctx.Err(); err != nil {
			return false, err
		}
		// A check that finished between our cache lookup and this call has cached its result
		// already: it is not computed twice.
		v.mu.Lock()
		if el, ok := v.entries[key]; ok && now.Sub(el.Value.(cacheEntry).at) < v.ttl() {
			v.mu.Unlock()
			return true, nil
		}
		v.mu.Unlock()
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return false, ctx.Err()
		}
		ok, err := VerifySecret(encoded, secret)
		<-sem
		v.mu.Lock()
		defer v.mu.Unlock()
		v.runs++
		if err != nil || !ok {
			return false, err
		}
		v.entries[key] = v.order.PushFront(cacheEntry{key: key, at: now})
		for v.order.Len() > v.size() {
			last := v.order.Back()
			v.order.Remove(last)
			delete(v.entries, last.Value.(cacheEntry).key)
		}
		return true, nil
	})
	if err != nil && ctx.Err() == nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return v.Verify(ctx, username, secret, encoded) // the caller we joined gave up, we did not
	}
	if err != nil {
		return false, err
	}
	return res.(bool), nil
}

// Runs returns how many argon2 computations Verify has done.
func (v *SecretVerifier) Runs() int64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.runs
}

func (v *SecretVerifier) init() {
	if v.entries == nil {
		v.entries = make(map[[32]byte]*list.Element)
		v.order = list.New()
		v.sem = make(chan struct{}, max(1, runtime.GOMAXPROCS(0)))
	}
}

func (v *SecretVerifier) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

func (v *SecretVerifier) ttl() time.Duration {
	if v.TTL > 0 {
		return v.TTL
	}
	return 10 * time.Minute
}

func (v *SecretVerifier) size() int {
	if v.Size > 0 {
		return v.Size
	}
	return 4096
}

func cacheKey(username, secret, encoded string) [32]byte {
	h := sha256.New()
	// Lengths first, so "ab"+"c" and "a"+"bc" differ.
	fmt.Fprintf(h, "%d|%d|%d|", len(username), len(secret), len(encoded))
	h.Write([]byte(username))
	h.Write([]byte{'|'})
	h.Write([]byte(secret))
	h.Write([]byte{'|'})
	h.Write([]byte(encoded))
	var k [32]byte
	copy(k[:], h.Sum(nil))
	return k
}
