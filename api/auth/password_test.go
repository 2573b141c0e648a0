package auth_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/api/auth"
	"github.com/offsite-gw/offsite/internal/errs"
)

func TestHashDefaultParams(t *testing.T) {
	start := time.Now()
	h := auth.HashPassword(auth.Argon2Params{}, "Correct-Horse-9")
	t.Logf("argon2id default params: %s", time.Since(start))
	require.True(t, strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$"), h)
	ok, err := auth.VerifyPassword(h, "Correct-Horse-9")
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = auth.VerifyPassword(h, "Correct-Horse-8")
	require.NoError(t, err)
	require.False(t, ok)
	// Two hashes of one password differ (random salt).
	require.NotEqual(t, h, auth.HashPassword(auth.Argon2Params{}, "Correct-Horse-9"))
}

func TestPasswordPolicy(t *testing.T) {
	for _, tc := range []struct {
		user, pw string
		ok       bool
	}{
		{"alice", "short1A!", false},
		{"alice", "alllowercaseletters", false},
		{"alice", "lowercase and 123", true},
		{"alice", "Lower-and-Upper", true},
		{"alice", "ALICE-is-123-ok", false}, // contains username
		{"alice", "密码很长很长的密码Ab1", true},
		{"alice", strings.Repeat("aA1", 100), false},
	} {
		err := auth.CheckPassword(tc.user, tc.pw)
		if tc.ok {
			require.NoError(t, err, tc.pw)
		} else {
			require.Error(t, err, tc.pw)
			require.Equal(t, "weak_password", errs.CodeOf(err))
		}
	}
	for range 50 {
		p := auth.GeneratePassword()
		require.Len(t, p, 20)
		require.NoError(t, auth.CheckPassword("admin", p))
	}
}

func TestParseHashRejectsHugeParams(t *testing.T) {
	_, _, _, err := auth.ParseHash("$argon2id$v=19$m=4194304,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2g")
	require.Error(t, err)
}

func FuzzParseHash(f *testing.F) {
	f.Add(auth.HashPassword(auth.Argon2Params{Memory: 64, Time: 1, Threads: 1}, "Correct-Horse-9"))
	f.Add("$argon2id$v=19$m=19456,t=2,p=1$$")
	f.Add("$argon2i$v=19$m=1,t=1,p=1$a$b")
	f.Fuzz(func(t *testing.T, s string) {
		p, salt, key, err := auth.ParseHash(s)
		if err != nil {
			return
		}
		require.LessOrEqual(t, p.Memory, uint32(1<<20))
		require.NotEmpty(t, salt)
		require.NotEmpty(t, key)
	})
}
