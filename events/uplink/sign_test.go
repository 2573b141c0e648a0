package uplink_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emmansun/gmsm/sm3"
	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/events/uplink"
	"github.com/offsite-gw/offsite/events/uplink/provincesim"
)

// The gateway's signature equals an HMAC-SM3 computed here independently from gmsm's sm3.
func TestSignatureIndependentSM3(t *testing.T) {
	body := []byte(`{"gateway_id":"gw","events":[]}`)
	secret := []byte("province-secret")
	req := httptest.NewRequest(http.MethodPost, "/offsite/v1/events:batch", bytes.NewReader(body))
	now := time.UnixMilli(1795000000123)
	require.NoError(t, uplink.SignRequest(req, "gw", uplink.AlgSM3, secret, now, body))

	ts, nonce := req.Header.Get("X-Offsite-Timestamp"), req.Header.Get("X-Offsite-Nonce")
	require.Equal(t, "1795000000123", ts)
	require.Len(t, nonce, 32)
	bodySum := sha256.Sum256(body)
	m := hmac.New(sm3.New, secret)
	m.Write([]byte(ts + "\n" + nonce + "\n" + hex.EncodeToString(bodySum[:])))
	require.Equal(t, "hmac-sm3="+hex.EncodeToString(m.Sum(nil)), req.Header.Get("X-Offsite-Signature"))

	// And HMAC-SHA256 as the option.
	sig, err := uplink.Sign(uplink.AlgSHA256, secret, ts, nonce, body)
	require.NoError(t, err)
	m2 := hmac.New(sha256.New, secret)
	m2.Write([]byte(ts + "\n" + nonce + "\n" + hex.EncodeToString(bodySum[:])))
	require.Equal(t, "hmac-sha256="+hex.EncodeToString(m2.Sum(nil)), sig)

	require.NoError(t, uplink.Verify(secret, "", req.Header, body, now.Add(time.Second), time.Minute))
	require.ErrorIs(t, uplink.Verify([]byte("wrong"), "", req.Header, body, now, time.Minute), uplink.ErrBadSignature)
	require.ErrorIs(t, uplink.Verify(secret, "", req.Header, append(body, ' '), now, time.Minute), uplink.ErrBadSignature)
	require.ErrorIs(t, uplink.Verify(secret, uplink.AlgSHA256, req.Header, body, now, time.Minute), uplink.ErrAlgorithm)
	require.ErrorIs(t, uplink.Verify(secret, "", req.Header, body, now.Add(10*time.Minute), time.Minute), uplink.ErrSkew)
}

func postSigned(t *testing.T, url string, secret []byte, now time.Time, body []byte, mutate func(*http.Request)) *http.Response {
	req, err := http.NewRequest(http.MethodPost, url+"/offsite/v1/events:batch", bytes.NewReader(body))
	require.NoError(t, err)
	require.NoError(t, uplink.SignRequest(req, "gw", uplink.AlgSM3, secret, now, body))
	if mutate != nil {
		mutate(req)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp
}

// The demo receiver refuses a wrong secret, a stale timestamp and a replayed nonce, and
// accepts nothing from such requests.
func TestProvinceSimRefusesBadSignatures(t *testing.T) {
	h := &provincesim.Handler{Secret: []byte("right"), MaxSkew: time.Minute}
	require.NoError(t, h.Initialize())
	srv := httptest.NewServer(h)
	defer srv.Close()
	body := []byte(`{"gateway_id":"gw","events":[{"id":"01JD0000000000000000000000","type":"a.b","occurred_at":"2026-11-27T10:15:04.123Z"}]}`)

	resp := postSigned(t, srv.URL, []byte("wrong"), time.Now(), body, nil)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	resp = postSigned(t, srv.URL, []byte("right"), time.Now().Add(-time.Hour), body, nil)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	resp = postSigned(t, srv.URL, []byte("right"), time.Now(), body, func(r *http.Request) { r.Header.Del("X-Offsite-Signature") })
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	require.Zero(t, h.Stats().Received)

	var replay http.Header
	resp = postSigned(t, srv.URL, []byte("right"), time.Now(), body, func(r *http.Request) { replay = r.Header.Clone() })
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, 1, h.Stats().Received)
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/offsite/v1/events:batch", bytes.NewReader(body))
	req.Header = replay
	resp2, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp2.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp2.StatusCode)
	require.Equal(t, 4, h.Stats().Refused)
}

func TestProvinceSimValidatesAndDeduplicates(t *testing.T) {
	h := &provincesim.Handler{Secret: []byte("s")}
	require.NoError(t, h.Initialize())
	srv := httptest.NewServer(h)
	defer srv.Close()
	ev := func(id, msg string) string {
		return `{"id":"` + id + `","type":"a.b","occurred_at":"2026-11-27T10:15:04.123Z","message":"` + msg + `"}`
	}
	post := func(evs ...string) uplink.BatchResponse {
		body := []byte(`{"gateway_id":"gw","events":[` + strings.Join(evs, ",") + `]}`)
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/offsite/v1/events:batch", bytes.NewReader(body))
		require.NoError(t, uplink.SignRequest(req, "gw", uplink.AlgSHA256, []byte("s"), time.Now(), body))
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, 200, resp.StatusCode)
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		r, err := uplink.ParseBatchResponse(b.Bytes())
		require.NoError(t, err)
		return r
	}
	a, b := "01JD0000000000000000000001", "01JD0000000000000000000002"
	r := post(ev(a, "x"), `{"id":"`+b+`","type":"a.b"}`, `{"type":"a.b"}`)
	require.Equal(t, []string{a}, r.Accepted)
	require.Len(t, r.Rejected, 2)
	require.Equal(t, "missing_occurred_at", r.Rejected[0].Reason)
	require.Equal(t, "missing_id", r.Rejected[1].Reason)
	r = post(ev(a, "x"), ev(b, "y"))
	require.Equal(t, []string{a}, r.Duplicates)
	require.Equal(t, []string{b}, r.Accepted)
	r = post(ev(a, "changed"))
	require.Equal(t, []uplink.Rejection{{ID: a, Reason: "conflicting_content"}}, r.Rejected)
}

func FuzzVerifySignature(f *testing.F) {
	f.Add("hmac-sm3=00", "1795000000123", "abcd", []byte("{}"))
	f.Add("hmac-sha256="+strings.Repeat("ab", 32), "1", "n", []byte(""))
	f.Add("=", "x", "", []byte(nil))
	f.Fuzz(func(t *testing.T, sig, ts, nonce string, body []byte) {
		h := http.Header{}
		h.Set("X-Offsite-Gateway", "gw")
		h.Set("X-Offsite-Timestamp", ts)
		h.Set("X-Offsite-Nonce", nonce)
		h.Set("X-Offsite-Signature", sig)
		now := time.UnixMilli(1795000000123)
		// Random input never verifies, and never panics.
		if err := uplink.Verify([]byte("secret"), "", h, body, now, time.Hour); err == nil {
			ms, _ := strconv.ParseInt(ts, 10, 64)
			alg := strings.ToLower(strings.TrimSpace(strings.SplitN(sig, "=", 2)[0]))
			good, _ := uplink.Sign(alg, []byte("secret"), ts, nonce, body)
			require.True(t, strings.EqualFold(good, strings.TrimSpace(sig)), "verified a wrong signature %q (ts %d)", sig, ms)
		}
		_, _, _ = uplink.ParseSignature(sig)
	})
}

func FuzzBatchResponse(f *testing.F) {
	f.Add([]byte(`{"accepted":["a"],"duplicates":["b"],"rejected":[{"id":"c","reason":"x"}]}`))
	f.Add([]byte(`{"accepted":null}`))
	f.Add([]byte(`[1,2]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := uplink.ParseBatchResponse(body)
		if err != nil {
			return
		}
		ids := []string{"a", "b", "c", "d"}
		done, rej, missing := r.Outcome(ids)
		require.Equal(t, len(ids), done+len(rej)+len(missing))
	})
}
