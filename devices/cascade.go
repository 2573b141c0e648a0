package devices

import (
	"crypto/hmac"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/emmansun/gmsm/sm3"
)

// OnBehalfHeader is the RTSP request header in which a centre's pull from a site's re-serve
// names the centre and the centre user whose viewing opened it (cascade; docs/contracts.md §7).
// Its value is URL-encoded: centre=ID&user=NAME&ts=UNIX&sig=HEX, where sig is
// hex(HMAC-SM3(key, "centre|camera|user|ts")) and key = HMAC-SM3(enrolment secret,
// "offsite/v1 rtsp on-behalf"), so only a holder of the enrolment secret can state it.
const OnBehalfHeader = "X-Offsite-On-Behalf"

// OnBehalfMaxSkew is how far a stated time may be from the site's clock.
const OnBehalfMaxSkew = 5 * time.Minute

func onBehalfSig(secret []byte, centre, camera, user string, ts int64) string {
	k := hmac.New(sm3.New, secret)
	k.Write([]byte("offsite/v1 rtsp on-behalf"))
	m := hmac.New(sm3.New, k.Sum(nil))
	fmt.Fprintf(m, "%s|%s|%s|%d", centre, camera, user, ts)
	return hex.EncodeToString(m.Sum(nil))
}

// SignOnBehalf is the OnBehalfHeader value of a centre's pull of camera for user at now.
func SignOnBehalf(secret []byte, centre, camera, user string, now time.Time) string {
	ts := now.Unix()
	v := url.Values{}
	v.Set("centre", centre)
	v.Set("user", user)
	v.Set("ts", strconv.FormatInt(ts, 10))
	v.Set("sig", onBehalfSig(secret, centre, camera, user, ts))
	return v.Encode()
}

// VerifyOnBehalf checks an OnBehalfHeader value for camera against the shared secret and
// returns the centre and user it names. A value that does not parse, is signed with another
// secret or for another camera, or is older than OnBehalfMaxSkew is an error.
func VerifyOnBehalf(secret []byte, camera, value string, now time.Time) (centre, user string, err error) {
	if len(value) > 2048 {
		return "", "", errors.New("on-behalf header too long")
	}
	v, err := url.ParseQuery(value)
	if err != nil {
		return "", "", fmt.Errorf("on-behalf header: %w", err)
	}
	centre, user = v.Get("centre"), v.Get("user")
	ts, err := strconv.ParseInt(v.Get("ts"), 10, 64)
	if err != nil {
		return "", "", errors.New("on-behalf header: ts is not a number")
	}
	if centre == "" || user == "" {
		return "", "", errors.New("on-behalf header: centre and user are required")
	}
	if d := now.Sub(time.Unix(ts, 0)); d > OnBehalfMaxSkew || d < -OnBehalfMaxSkew {
		return "", "", fmt.Errorf("on-behalf header: time %d is %s off", ts, d.Round(time.Second))
	}
	want := onBehalfSig(secret, centre, camera, user, ts)
	if !hmac.Equal([]byte(want), []byte(v.Get("sig"))) {
		return "", "", errors.New("on-behalf header: signature does not verify")
	}
	return centre, user, nil
}
