package provincesim_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/events/uplink"
	"github.com/offsite-gw/offsite/events/uplink/provincesim"
)

func post(t *testing.T, url string, body string) (int, uplink.BatchResponse) {
	req, _ := http.NewRequest(http.MethodPost, url+"/offsite/v1/events:batch", bytes.NewReader([]byte(body)))
	require.NoError(t, uplink.SignRequest(req, "gw", uplink.AlgSM3, []byte("s"), time.Now(), []byte(body)))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var r uplink.BatchResponse
	_ = json.NewDecoder(resp.Body).Decode(&r)
	return resp.StatusCode, r
}

// What the receiver accepted survives its restart: the same event is then a duplicate.
func TestPersistsAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	body := `{"gateway_id":"gw","events":[{"id":"01JD0000000000000000000001","type":"a.b","occurred_at":"2026-11-27T10:15:04Z"}]}`
	h := &provincesim.Handler{Secret: []byte("s"), Dir: dir}
	require.NoError(t, h.Initialize())
	srv := httptest.NewServer(h)
	code, r := post(t, srv.URL, body)
	require.Equal(t, 200, code)
	require.Len(t, r.Accepted, 1)
	srv.Close()
	require.NoError(t, h.Close())

	h2 := &provincesim.Handler{Secret: []byte("s"), Dir: dir}
	require.NoError(t, h2.Initialize())
	defer h2.Close()
	srv2 := httptest.NewServer(h2)
	defer srv2.Close()
	require.Equal(t, 1, h2.Stats().Received)
	code, r = post(t, srv2.URL, body)
	require.Equal(t, 200, code)
	require.Equal(t, []string{"01JD0000000000000000000001"}, r.Duplicates)

	resp, err := http.Get(srv2.URL + "/offsite/v1/status")
	require.NoError(t, err)
	defer resp.Body.Close()
	var st provincesim.Stats
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
	require.Equal(t, 1, st.Received)
	require.Equal(t, 1, st.Duplicates)
}

func TestDownAndBadBatch(t *testing.T) {
	h := &provincesim.Handler{Secret: []byte("s")}
	require.NoError(t, h.Initialize())
	srv := httptest.NewServer(h)
	defer srv.Close()
	h.SetDown(true)
	code, _ := post(t, srv.URL, `{"gateway_id":"gw","events":[]}`)
	require.Equal(t, http.StatusServiceUnavailable, code)
	h.SetDown(false)
	code, _ = post(t, srv.URL, `{"gateway_id":"other","events":[]}`)
	require.Equal(t, http.StatusBadRequest, code, "gateway_id must match the signed header")
	code, _ = post(t, srv.URL, `not json`)
	require.Equal(t, http.StatusBadRequest, code)
}
