package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"

	"github.com/offsite-gw/offsite/internal/errs"
)

// Argon2Params are the argon2id cost parameters used for new password hashes. Verification
// always uses the parameters stored in the hash, so changing them only affects new hashes (and
// old hashes are upgraded at the next successful login).
type Argon2Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes
	Threads uint8
	SaltLen uint32
	KeyLen  uint32
}

// DefaultArgon2 returns the OWASP Password Storage Cheat Sheet minimum for argon2id:
// m=19 MiB, t=2, p=1.
func DefaultArgon2() Argon2Params {
	return Argon2Params{Memory: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}
}

func (p Argon2Params) orDefault() Argon2Params {
	if p.Memory == 0 || p.Time == 0 || p.Threads == 0 {
		return DefaultArgon2()
	}
	if p.SaltLen == 0 {
		p.SaltLen = 16
	}
	if p.KeyLen == 0 {
		p.KeyLen = 32
	}
	return p
}

var b64 = base64.RawStdEncoding

// HashPassword returns an argon2id hash of password in PHC string format:
// $argon2id$v=19$m=19456,t=2,p=1$SALT$HASH.
func HashPassword(p Argon2Params, password string) string {
	p = p.orDefault()
	salt := make([]byte, p.SaltLen)
	_, _ = rand.Read(salt) // crypto/rand.Read never fails on supported platforms
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// ParseHash decodes a PHC argon2id string. Parameters are bounded so that a tampered row in
// the users table cannot make a login allocate gigabytes.
func ParseHash(phc string) (p Argon2Params, salt, key []byte, err error) {
	parts := strings.Split(phc, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return p, nil, nil, errors.New("not an argon2id PHC string")
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return p, nil, nil, fmt.Errorf("unsupported argon2 version %q", parts[2])
	}
	var m, t, par uint64
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return p, nil, nil, fmt.Errorf("bad parameter %q", kv)
		}
		n, perr := strconv.ParseUint(v, 10, 32)
		if perr != nil {
			return p, nil, nil, fmt.Errorf("bad parameter %q", kv)
		}
		switch k {
		case "m":
			m = n
		case "t":
			t = n
		case "p":
			par = n
		default:
			return p, nil, nil, fmt.Errorf("unknown parameter %q", k)
		}
	}
	if m < 8 || m > 1<<20 || t < 1 || t > 64 || par < 1 || par > 64 || m < 8*par {
		return p, nil, nil, fmt.Errorf("argon2 parameters out of range: m=%d t=%d p=%d", m, t, par)
	}
	salt, err = b64.DecodeString(parts[4])
	if err != nil || len(salt) < 8 || len(salt) > 64 {
		return p, nil, nil, errors.New("bad salt")
	}
	key, err = b64.DecodeString(parts[5])
	if err != nil || len(key) < 16 || len(key) > 128 {
		return p, nil, nil, errors.New("bad hash")
	}
	p = Argon2Params{Memory: uint32(m), Time: uint32(t), Threads: uint8(par), SaltLen: uint32(len(salt)), KeyLen: uint32(len(key))}
	return p, salt, key, nil
}

// VerifyPassword reports whether password matches the PHC hash, in constant time with
// respect to the password.
func VerifyPassword(phc, password string) (bool, error) {
	p, salt, key, err := ParseHash(phc)
	if err != nil {
		return false, err
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	return subtle.ConstantTimeCompare(got, key) == 1, nil
}

// MinPasswordLen and MaxPasswordLen bound passwords (in characters).
const (
	MinPasswordLen = 10
	MaxPasswordLen = 256
)

// CheckPassword enforces the password policy: at least MinPasswordLen characters, at least
// three of the four classes (lower case, upper case, digits, other), and not containing the
// username. The error is KindInvalid with code weak_password and says what is missing.
func CheckPassword(username, password string) error {
	n := utf8.RuneCountInString(password)
	if !utf8.ValidString(password) {
		return errs.E(errs.KindInvalid, "weak_password", "password must be valid UTF-8")
	}
	if n < MinPasswordLen {
		return errs.E(errs.KindInvalid, "weak_password", "password must have at least %d characters", MinPasswordLen)
	}
	if n > MaxPasswordLen {
		return errs.E(errs.KindInvalid, "weak_password", "password must have at most %d characters", MaxPasswordLen)
	}
	var lower, upper, digit, other int
	for _, r := range password {
		switch {
		case unicode.IsLower(r):
			lower = 1
		case unicode.IsUpper(r):
			upper = 1
		case unicode.IsDigit(r):
			digit = 1
		default:
			other = 1
		}
	}
	if lower+upper+digit+other < 3 {
		return errs.E(errs.KindInvalid, "weak_password",
			"password must mix at least three of: lower-case letters, upper-case letters, digits, other characters")
	}
	if u := strings.TrimSpace(strings.ToLower(username)); len(u) >= 3 && strings.Contains(strings.ToLower(password), u) {
		return errs.E(errs.KindInvalid, "weak_password", "password must not contain the username")
	}
	return nil
}

// GeneratePassword returns a random 20-character password (about 120 bits) containing all
// four character classes. The alphabet leaves out look-alikes (0 O 1 l I) so it can be read
// off a terminal.
func GeneratePassword() string {
	const (
		lower  = "abcdefghijkmnopqrstuvwxyz"
		upper  = "ABCDEFGHJKLMNPQRSTUVWXYZ"
		digits = "23456789"
		other  = "-_.!@#%+="
		all    = lower + upper + digits + other
	)
	for {
		buf := make([]byte, 20)
		idx := make([]byte, 20)
		_, _ = rand.Read(idx)
		for i := range buf {
			// 256 % 66 bias is negligible for a 20-character password (>110 bits).
			buf[i] = all[int(idx[i])%len(all)]
		}
		s := string(buf)
		if strings.ContainsAny(s, lower) && strings.ContainsAny(s, upper) &&
			strings.ContainsAny(s, digits) && strings.ContainsAny(s, other) {
			return s
		}
	}
}
