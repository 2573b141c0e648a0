package devices_test

import (
	"testing"
	"time"

	"github.com/offsite-gw/offsite/devices"
	"github.com/stretchr/testify/require"
)

// A site trusts the user a centre names for a pull only when it is signed with their shared
// secret, for that camera, recently.
func TestOnBehalfHeaderVerifies(t *testing.T) {
	secret := []byte("enrolment-secret-0123456789abcdef")
	now := time.Unix(1_800_000_000, 0)
	h := devices.SignOnBehalf(secret, "city-centre", "cam-1", "监控员 monitor", now)

	centre, user, err := devices.VerifyOnBehalf(secret, "cam-1", h, now.Add(time.Minute))
	require.NoError(t, err)
	require.Equal(t, "city-centre", centre)
	require.Equal(t, "监控员 monitor", user)

	_, _, err = devices.VerifyOnBehalf([]byte("another secret"), "cam-1", h, now)
	require.ErrorContains(t, err, "signature")
	_, _, err = devices.VerifyOnBehalf(secret, "cam-2", h, now)
	require.ErrorContains(t, err, "signature", "a signature for one camera does not open another")
	_, _, err = devices.VerifyOnBehalf(secret, "cam-1", h, now.Add(time.Hour))
	require.ErrorContains(t, err, "off", "an old header is not replayed")
	forged := devices.SignOnBehalf(secret, "city-centre", "cam-1", "monitor", now)
	forged = forged[:len(forged)-2] + "00"
	_, _, err = devices.VerifyOnBehalf(secret, "cam-1", forged, now)
	require.Error(t, err)
	_, _, err = devices.VerifyOnBehalf(secret, "cam-1", "centre=x&user=y&ts=abc", now)
	require.ErrorContains(t, err, "ts")
}

func FuzzVerifyOnBehalf(f *testing.F) {
	secret := []byte("s")
	now := time.Unix(1_800_000_000, 0)
	f.Add(devices.SignOnBehalf(secret, "c", "cam", "u", now))
	f.Add("centre=c&user=u&ts=1800000000&sig=00")
	f.Add("%zz")
	f.Add("")
	f.Fuzz(func(t *testing.T, v string) {
		c, u, err := devices.VerifyOnBehalf(secret, "cam", v, now)
		if err == nil && (c == "" || u == "") {
			t.Fatalf("accepted %q without centre or user", v)
		}
	})
}
