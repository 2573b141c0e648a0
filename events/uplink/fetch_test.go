package uplink_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/events"
	"github.com/offsite-gw/offsite/events/uplink"
)

// A node serving evidence to its uplinks' receivers: the gate accepts a fetch signed with one
// uplink's secret for this node and path, and refuses another secret, another node, another
// file's path, a replay and a stale request; Fetch keeps bytes only when they hash right.
func TestEvidenceFetchSignedAndChecked(t *testing.T) {
	file := []byte("a clip's bytes")
	s := sha256.Sum256(file)
	sum := hex.EncodeToString(s[:])
	tampered := false
	gate := &uplink.EvidenceGate{GatewayID: "gw-site", Peers: []uplink.EvidencePeer{
		{Name: "centre", Alg: uplink.AlgSM3, Secret: []byte("centre-secret")},
		{Name: "province", Alg: uplink.AlgSHA256, Secret: []byte("province-secret"), Filter: events.Filter{Types: []string{"alert."}}},
	}}
	var peers []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := gate.Verify(r.Header, r.Method, r.URL.Path, time.Now())
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		got, err := uplink.ParseEvidencePath(r.URL.Path)
		if err != nil || got != sum {
			http.NotFound(w, r)
			return
		}
		peers = append(peers, p.Name)
		w.Header().Set("Content-Type", "video/mp4")
		if tampered {
			_, _ = w.Write(append([]byte{'x'}, file[1:]...))
			return
		}
		_, _ = w.Write(file)
	}))
	defer srv.Close()
	ctx := context.Background()
	fetch := func(gw, alg, secret string) ([]byte, error) {
		var b bytes.Buffer
		_, _, err := uplink.Fetch{BaseURL: srv.URL, GatewayID: gw, Alg: alg, Secret: []byte(secret)}.Get(ctx, sum, &b)
		return b.Bytes(), err
	}
	b, err := fetch("gw-site", uplink.AlgSM3, "centre-secret")
	require.NoError(t, err)
	require.Equal(t, file, b)
	_, err = fetch("gw-site", uplink.AlgSHA256, "province-secret")
	require.NoError(t, err)
	require.Equal(t, []string{"centre", "province"}, peers)

	var se *uplink.FetchStatusError
	for _, c := range []struct{ gw, alg, secret string }{
		{"gw-site", uplink.AlgSM3, "wrong"},
		{"gw-other", uplink.AlgSM3, "centre-secret"},
		{"gw-site", uplink.AlgSHA256, "centre-secret"}, // the centre's uplink is SM3 only
	} {
		_, err = fetch(c.gw, c.alg, c.secret)
		require.True(t, errors.As(err, &se), "%+v: %v", c, err)
		require.Equal(t, 401, se.Status, "%+v", c)
	}

	// A signature is good for its path only, once, and for a while.
	h := http.Header{}
	path := uplink.EvidencePath + sum
	require.NoError(t, uplink.SignRequest(&http.Request{Header: h}, "gw-site", uplink.AlgSM3, []byte("centre-secret"), time.Now(), uplink.FetchSigned("GET", path)))
	_, err = gate.Verify(h, "GET", uplink.EvidencePath+"0000000000000000000000000000000000000000000000000000000000000000", time.Now())
	require.ErrorIs(t, err, uplink.ErrBadSignature)
	_, err = gate.Verify(h, "GET", path, time.Now())
	require.NoError(t, err)
	_, err = gate.Verify(h, "GET", path, time.Now())
	require.ErrorIs(t, err, uplink.ErrReplay)
	h2 := http.Header{}
	require.NoError(t, uplink.SignRequest(&http.Request{Header: h2}, "gw-site", uplink.AlgSM3, []byte("centre-secret"), time.Now().Add(-time.Hour), uplink.FetchSigned("GET", path)))
	_, err = gate.Verify(h2, "GET", path, time.Now())
	require.ErrorIs(t, err, uplink.ErrSkew)

	// Bytes that do not hash to the sha256 asked for are an error.
	tampered = true
	_, err = fetch("gw-site", uplink.AlgSM3, "centre-secret")
	require.ErrorIs(t, err, uplink.ErrEvidenceMismatch)
}

func FuzzEvidencePath(f *testing.F) {
	for _, s := range []string{uplink.EvidencePath + "ab", uplink.EvidencePath + "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		uplink.EvidencePath + "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855", "/offsite/v1/evidence/../../etc/passwd", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		sum, err := uplink.ParseEvidencePath(p)
		if err != nil {
			return
		}
		if len(sum) != 64 || uplink.EvidencePath+sum != p {
			t.Fatalf("%q parsed as %q", p, sum)
		}
		for _, c := range sum {
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				t.Fatalf("%q parsed as %q", p, sum)
			}
		}
	})
}

func FuzzEvidenceGate(f *testing.F) {
	f.Add("gw-site", "1", "abc", "hmac-sm3=00")
	f.Add("", "", "", "")
	f.Add("gw-site", "99999999999999999999", "n", "hmac-sha256=zz")
	gate := &uplink.EvidenceGate{GatewayID: "gw-site", Peers: []uplink.EvidencePeer{{Name: "c", Secret: []byte("s")}}}
	f.Fuzz(func(t *testing.T, gw, ts, nonce, sig string) {
		h := http.Header{}
		h.Set(uplink.HeaderGateway, gw)
		h.Set(uplink.HeaderTimestamp, ts)
		h.Set(uplink.HeaderNonce, nonce)
		h.Set(uplink.HeaderSignature, sig)
		if _, err := gate.Verify(h, "GET", uplink.EvidencePath+"x", time.Now()); err == nil {
			t.Fatalf("forged headers accepted: %v", h)
		}
	})
}
