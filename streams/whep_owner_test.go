package streams_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/internal/errs"
	"github.com/offsite-gw/offsite/streams"
	"github.com/offsite-gw/offsite/streams/internal/whepclient"
	"github.com/offsite-gw/offsite/streams/simcam"
)

// people are the tokens of the owned-session tests and who they are.
var people = map[string]string{"tok-alice": "alice", "tok-bob": "bob", "tok-root": "root"}

// ownedRelay is a relay whose handler knows several users; root may end any session.
func ownedRelay(t *testing.T, tuneWHEP func(w *streams.WHEP)) (*relay, string) {
	t.Helper()
	sim := startSim(t, &simcam.Server{Cameras: []simcam.Camera{{Path: "c", Clip: demoClip(t, "waiting-area")}}})
	r := newRelayWHEP(t, nil, tuneWHEP)
	require.NoError(t, r.m.AddCamera(streams.CameraConfig{ID: "cam", URL: sim.URL("c"), AlwaysOn: true}))
	cam, _ := r.m.Camera("cam")
	waitFor(t, 10*time.Second, "camera online", func() bool { return cam.Status().State == "online" })
	token := func(req *http.Request) string { return strings.TrimPrefix(req.Header.Get("Authorization"), "Bearer ") }
	h := &streams.Handler{WHEP: r.whep,
		Authorize: func(req *http.Request, _ string) (string, error) {
			if u, ok := people[token(req)]; ok {
				return u, nil
			}
			return "", errs.E(errs.KindUnauthorized, "unauthorized", "log in first")
		},
		MayEndAny: func(req *http.Request) bool { return people[token(req)] == "root" }}
	require.NoError(t, h.Initialize())
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return r, srv.URL + "/api/v1/cameras/cam/whep"
}

func watch(t *testing.T, endpoint, token string) (*whepclient.Client, error) {
	c := &whepclient.Client{Endpoint: endpoint, Token: token}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	err := c.Start(ctx)
	t.Cleanup(func() { _ = c.Close(false) })
	return c, err
}

func deleteSession(t *testing.T, loc, token string) (int, string) {
	req, _ := http.NewRequest(http.MethodDelete, loc, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// Another user cannot end someone's viewing session; the viewer and an administrator can, and
// the end event names who ended it.
func TestWHEPOnlyOwnerOrAdminEndsSession(t *testing.T) {
	r, endpoint := ownedRelay(t, nil)
	alice, err := watch(t, endpoint, "tok-alice")
	require.NoError(t, err)

	status, body := deleteSession(t, alice.Location(), "tok-bob")
	require.Equal(t, 403, status, body)
	require.Contains(t, body, "not_your_session")
	require.Equal(t, 1, r.whep.Sessions(), "bob's DELETE must not end alice's session")

	status, body = deleteSession(t, alice.Location(), "tok-root")
	require.Equal(t, 200, status, body)
	waitFor(t, 5*time.Second, "session end", func() bool { return r.whep.Sessions() == 0 })

	again, err := watch(t, endpoint, "tok-alice")
	require.NoError(t, err)
	status, body = deleteSession(t, again.Location(), "tok-alice")
	require.Equal(t, 200, status, body)
	waitFor(t, 5*time.Second, "session end", func() bool { return r.whep.Sessions() == 0 })

	var ends []streams.SessionEvent
	for _, e := range r.sessions.all() {
		if e.Kind == "end" {
			ends = append(ends, e)
		}
	}
	require.Len(t, ends, 2)
	require.Equal(t, "alice", ends[0].User)
	require.Equal(t, "root", ends[0].EndedBy)
	require.Equal(t, "ended by root", ends[0].Reason)
	require.Equal(t, "alice", ends[1].EndedBy)
}

// One user and one camera have at most so many sessions, also under a burst of offers; the
// rest are 429, and a closed session frees its place.
func TestWHEPSessionCapsPerUserAndCamera(t *testing.T) {
	r, endpoint := ownedRelay(t, func(w *streams.WHEP) { w.MaxSessionsPerUser, w.MaxSessionsPerCamera = 2, 3 })

	var ok, limited atomic.Int32
	var wg sync.WaitGroup
	var mu sync.Mutex
	var mine []*whepclient.Client
	for i := 0; i < 12; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := watch(t, endpoint, "tok-alice")
			switch {
			case err == nil:
				ok.Add(1)
				mu.Lock()
				mine = append(mine, c)
				mu.Unlock()
			case isHTTPStatus(err, 429) && strings.Contains(err.Error(), "too_many_sessions_user"):
				limited.Add(1)
			default:
				t.Errorf("offer: %v", err)
			}
		}()
	}
	wg.Wait()
	require.EqualValues(t, 2, ok.Load(), "per-user cap under a burst")
	require.EqualValues(t, 10, limited.Load())

	_, err := watch(t, endpoint, "tok-bob")
	require.NoError(t, err)
	_, err = watch(t, endpoint, "tok-bob")
	require.True(t, isHTTPStatus(err, 429), "%v", err)
	require.Contains(t, err.Error(), "too_many_sessions_camera")

	require.NoError(t, mine[0].Close(true))
	waitFor(t, 5*time.Second, "a place to free", func() bool { return r.whep.Sessions() == 2 })
	_, err = watch(t, endpoint, "tok-bob")
	require.NoError(t, err, "a closed session frees its place")
}
