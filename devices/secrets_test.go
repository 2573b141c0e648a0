package devices_test

import (
	"context"
	"crypto/aes"
	"encoding/hex"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emmansun/gmsm/sm4"
	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/internal/errs"
)

const (
	sm4Key = "0123456789abcdeffedcba9876543210"
	aesKey = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
)

func TestSealerRoundTrip(t *testing.T) {
	for _, c := range []struct{ key, prefix, alg string }{
		{sm4Key, "sm4gcm:v1:", "sm4-gcm"},
		{aesKey, "aesgcm:v1:", "aes-256-gcm"},
	} {
		t.Run(c.alg, func(t *testing.T) {
			s, err := devices.NewSealer(c.key)
			require.NoError(t, err)
			require.Equal(t, c.alg, s.Algorithm())
			for _, plain := range []string{"", "Hik12345!", "密码中文", strings.Repeat("x", 256)} {
				sealed := s.Seal(plain, "cam-01")
				require.True(t, strings.HasPrefix(sealed, c.prefix), sealed)
				if plain != "" {
					require.NotContains(t, sealed, plain)
				}
				got, err := s.Open(sealed, "cam-01")
				require.NoError(t, err)
				require.Equal(t, plain, got)
			}
			require.NotEqual(t, s.Seal("same", "cam-01"), s.Seal("same", "cam-01"), "fresh nonce each time")

			// Bound to the device: a ciphertext copied to another row does not open.
			_, err = s.Open(s.Seal("pw", "cam-01"), "cam-02")
			require.Error(t, err)
			require.Equal(t, "secrets_key_mismatch", errs.CodeOf(err))
		})
	}
}

func TestSealerWrongKey(t *testing.T) {
	a, err := devices.NewSealer(sm4Key)
	require.NoError(t, err)
	b, err := devices.NewSealer(devices.GenerateSealerKey())
	require.NoError(t, err)
	_, err = b.Open(a.Seal("Hik12345!", "cam-01"), "cam-01")
	require.Error(t, err)
	require.Equal(t, "secrets_key_mismatch", errs.CodeOf(err))
	require.Contains(t, err.Error(), "does not decrypt with the configured secrets key")

	aes, err := devices.NewSealer(aesKey)
	require.NoError(t, err)
	_, err = aes.Open(a.Seal("x", "cam-01"), "cam-01")
	require.ErrorContains(t, err, "sealed with sm4-gcm but the configured secrets key is for aes-256-gcm")

	_, err = a.Open("plain-text", "cam-01")
	require.Equal(t, "secret_format_unknown", errs.CodeOf(err))
	_, err = a.Open("sm4gcm:v1:!!!", "cam-01")
	require.Equal(t, "secret_corrupt", errs.CodeOf(err))
	sealed := a.Seal("Hik12345!", "cam-01")
	tampered := sealed[:len(sealed)-2] + "AA"
	if tampered == sealed {
		tampered = sealed[:len(sealed)-2] + "BB"
	}
	_, err = a.Open(tampered, "cam-01")
	require.Error(t, err)
}

func TestNewSealerBadKey(t *testing.T) {
	for _, k := range []string{"", "xyz", "0011", strings.Repeat("ab", 24)} {
		_, err := devices.NewSealer(k)
		require.Error(t, err, k)
		require.Equal(t, "invalid_secrets_key", errs.CodeOf(err))
	}
}

func TestGenerateSecret(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		s := devices.GenerateSecret()
		require.Len(t, s, 24)
		require.False(t, seen[s])
		seen[s] = true
		require.NotContains(t, s, "0")
		require.NotContains(t, s, "O")
		require.NotContains(t, s, "l")
	}
}

var cheap = devices.Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1}

func TestHashSecret(t *testing.T) {
	h := devices.HashSecret("s3cret-s3cret-s3cret", devices.DefaultArgon2)
	require.Regexp(t, `^\$argon2id\$v=19\$m=16384,t=1,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`, h)
	ok, err := devices.VerifySecret(h, "s3cret-s3cret-s3cret")
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = devices.VerifySecret(h, "s3cret-s3cret-s3creT")
	require.NoError(t, err)
	require.False(t, ok)
	require.NotEqual(t, h, devices.HashSecret("s3cret-s3cret-s3cret", devices.DefaultArgon2), "salted")

	for _, bad := range []string{"", "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=16$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", // would allocate 95 GiB
		"$argon2id$v=19$m=64,t=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=64,t=1,p=1$!!$aGFzaGhhc2hoYXNoaGFzaA"} {
		_, err := devices.VerifySecret(bad, "x")
		require.Error(t, err, bad)
		require.Equal(t, "secret_hash_corrupt", errs.CodeOf(err))
	}
}

func TestSecretVerifierCache(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1_700_000_000, 0)
	var mu sync.Mutex
	v := &devices.SecretVerifier{Size: 2, TTL: time.Minute, Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }}
	h1 := devices.HashSecret("secret-one-secret", cheap)
	h2 := devices.HashSecret("secret-two-secret", cheap)
	h3 := devices.HashSecret("secret-three-secret", cheap)

	// A reconnect storm: many concurrent logins of the same device cost one argon2.
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := v.Verify(ctx, "u1", "secret-one-secret", h1)
			require.NoError(t, err)
			require.True(t, ok)
		}()
	}
	wg.Wait()
	require.EqualValues(t, 1, v.Runs())

	// And once cached, none.
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := v.Verify(ctx, "u1", "secret-one-secret", h1)
			require.NoError(t, err)
			require.True(t, ok)
		}()
	}
	wg.Wait()
	require.EqualValues(t, 1, v.Runs())

	// Failures are not cached.
	for i := 0; i < 2; i++ {
		ok, err := v.Verify(ctx, "u1", "wrong-wrong-wrong", h1)
		require.NoError(t, err)
		require.False(t, ok)
	}
	require.EqualValues(t, 3, v.Runs())

	// A different username with the same secret and hash is not a cache hit.
	ok, _ := v.Verify(ctx, "u2", "secret-one-secret", h1)
	require.True(t, ok)
	require.EqualValues(t, 4, v.Runs())

	// Bounded: a third entry pushes out the least recently used (u1).
	_, _ = v.Verify(ctx, "u2", "secret-two-secret", h2)
	_, _ = v.Verify(ctx, "u3", "secret-three-secret", h3)
	require.EqualValues(t, 6, v.Runs())
	_, _ = v.Verify(ctx, "u1", "secret-one-secret", h1)
	require.EqualValues(t, 7, v.Runs(), "evicted entry is computed again")
	_, _ = v.Verify(ctx, "u1", "secret-one-secret", h1)
	require.EqualValues(t, 7, v.Runs())

	// Entries expire.
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	_, _ = v.Verify(ctx, "u1", "secret-one-secret", h1)
	require.EqualValues(t, 8, v.Runs())
}

func TestSecretVerifierCancelled(t *testing.T) {
	v := &devices.SecretVerifier{}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := v.Verify(ctx, "u1", "secret-one-secret", devices.HashSecret("secret-one-secret", cheap))
	require.ErrorIs(t, err, context.Canceled)
	require.Zero(t, v.Runs())
}

// The sealer checks SM4 against the standard's worked example before it seals anything: a
// cipher that gives another answer (here AES under the SM4 example) is refused with a message
// saying what to do.
func TestSealerSelfTest(t *testing.T) {
	key, _ := hex.DecodeString("0123456789abcdeffedcba9876543210")
	want, _ := hex.DecodeString("681edf34d206965e86b3e94f536e4246") // GB/T 32907-2016 appendix A
	require.NoError(t, devices.CheckBlock(sm4.NewCipher, key, key, want))
	err := devices.CheckBlock(aes.NewCipher, key, key, want)
	require.ErrorContains(t, err, "self-test failed")
	require.ErrorContains(t, err, "DISABLE_SM4NI=1")
}

// A password sealed on one machine opens on another: this text was sealed on linux/amd64 and
// must open wherever the database moves (make test runs this package on emulated arm64 CPUs
// with and without the SM4 instructions, scripts/arm64-smoke.sh).
// sealedOnAMD64 is "Hik12345!海康" sealed for "cam-hall-01" with sm4Key by this package on
// linux/amd64 (gmsm v0.44.0, AES-NI path).
const sealedOnAMD64 = "sm4gcm:v1:nQSozi7N7fKlSMV/BqQ8tTXYhe7PqBZyR32KhF2I8+zWwczLSjEVkudCBw=="

func TestSealerOpensTextSealedElsewhere(t *testing.T) {
	s, err := devices.NewSealer(sm4Key)
	require.NoError(t, err)
	got, err := s.Open(sealedOnAMD64, "cam-hall-01")
	require.NoError(t, err)
	require.Equal(t, "Hik12345!海康", got)
}
