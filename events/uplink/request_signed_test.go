package uplink_test

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/events/uplink"
)

// A signed request with a body (a centre forwarding a recording to its site): the signature
// binds the method, the path and the body, and is good once.
func TestRequestSignedBindsPathAndBody(t *testing.T) {
	secret := []byte("enrolment-secret")
	gate := &uplink.EvidenceGate{GatewayID: "gw-site", Peers: []uplink.EvidencePeer{{Name: "centre", Kind: uplink.KindCentre, Secret: secret}}}
	now := time.Now()
	path := "/offsite/v1/cameras/cam-1/recordings"
	body := []byte(`{"minutes":1,"reason":"r","user":"u","centre":"c"}`)
	sign := func(signed []byte) http.Header {
		req, _ := http.NewRequest(http.MethodPost, "http://site"+path, nil)
		require.NoError(t, uplink.SignRequest(req, "gw-site", uplink.AlgSM3, secret, now, signed))
		return req.Header
	}
	h := sign(uplink.RequestSigned(http.MethodPost, path, body))
	for name, other := range map[string][]byte{
		"another body":   uplink.RequestSigned(http.MethodPost, path, []byte(`{"minutes":30}`)),
		"another camera": uplink.RequestSigned(http.MethodPost, "/offsite/v1/cameras/cam-2/recordings", body),
		"another method": uplink.RequestSigned(http.MethodGet, path, nil),
	} {
		_, err := gate.VerifySigned(h, other, now)
		require.True(t, errors.Is(err, uplink.ErrBadSignature), "%s: %v", name, err)
	}
	p, err := gate.VerifySigned(h, uplink.RequestSigned(http.MethodPost, path, body), now)
	require.NoError(t, err)
	require.Equal(t, uplink.KindCentre, p.Kind)
	_, err = gate.VerifySigned(h, uplink.RequestSigned(http.MethodPost, path, body), now)
	require.ErrorIs(t, err, uplink.ErrReplay)
	require.Equal(t, uplink.FetchSigned(http.MethodGet, path), uplink.RequestSigned(http.MethodGet, path, nil), "without a body it is the fetch's")
}
