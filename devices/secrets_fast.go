package devices

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"strings"

	"github.com/offsite-gw/offsite/internal/errs"
)

// A slow password hash (argon2id) protects secrets a person could guess. A secret the gateway
// generated (GenerateSecret: 24 random characters, about 139 bits) cannot be guessed however
// fast each try is, so it is stored as a salted SHA-256 instead: that makes importing 20,000
// sensors a matter of seconds instead of minutes, and a login a microsecond.

// prefixSHA256 starts a fast hash: $sha256$SALT$SUM (unpadded standard base64).
const prefixSHA256 = "$sha256$"

// StrongSecret reports whether secret looks machine-generated and long enough to need no
// slow hash: at least 20 characters, at least 12 of them different, and no run of repeats.
// GenerateSecret's output always qualifies in practice; people's passwords rarely do, and
// those keep argon2id.
func StrongSecret(secret string) bool {
	if len(secret) < 20 || len(secret) > 256 {
		return false
	}
	distinct := map[rune]bool{}
	for _, r := range secret {
		distinct[r] = true
	}
	return len(distinct) >= 12
}

// HashStrongSecret hashes a secret that StrongSecret accepts with salted SHA-256.
func HashStrongSecret(secret string) string {
	salt := make([]byte, argonSaltLen)
	_, _ = rand.Read(salt)
	sum := sha256Salted(salt, secret)
	b64 := base64.RawStdEncoding
	return prefixSHA256 + b64.EncodeToString(salt) + "$" + b64.EncodeToString(sum)
}

func sha256Salted(salt []byte, secret string) []byte {
	h := sha256.New()
	h.Write(salt)
	h.Write([]byte(secret))
	return h.Sum(nil)
}

// verifyFast checks a $sha256$ hash. Only strong secrets were stored this way, so a secret
// that is not strong cannot match.
func verifyFast(encoded, secret string) (bool, error) {
	rest := strings.TrimPrefix(encoded, prefixSHA256)
	saltB64, sumB64, ok := strings.Cut(rest, "$")
	b64 := base64.RawStdEncoding
	salt, err1 := b64.DecodeString(saltB64)
	sum, err2 := b64.DecodeString(sumB64)
	if !ok || err1 != nil || err2 != nil || len(salt) < 8 || len(sum) != sha256.Size {
		return false, errs.E(errs.KindInternal, "secret_hash_corrupt", "stored secret hash is damaged: bad $sha256$ string")
	}
	return subtle.ConstantTimeCompare(sha256Salted(salt, secret), sum) == 1, nil
}
