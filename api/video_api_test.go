package api_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/api"
	"github.com/offsite-gw/offsite/api/auth"
	"github.com/offsite-gw/offsite/internal/audit"
	"github.com/offsite-gw/offsite/internal/store/storetest"
	"github.com/offsite-gw/offsite/streams"
	"github.com/offsite-gw/offsite/streams/simcam"
)

// videoHarness is the API with the real video relay behind its camera routes: a simulated
// camera for cam-env-1, WHEP sessions audited the way the gateway audits them.
func videoHarness(t *testing.T) *harness {
	db := storetest.SQLite(t, testSchema...)
	h := newHarness(t, db, nil)
	h.seed()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	clip := simcam.DemoCameras()[0]
	sim := &simcam.Server{Cameras: []simcam.Camera{clip}, Logger: quiet}
	require.NoError(t, sim.Initialize())
	t.Cleanup(sim.Close)
	m := &streams.Manager{Logger: quiet}
	require.NoError(t, m.Initialize())
	t.Cleanup(m.Close)
	require.NoError(t, m.AddCamera(streams.CameraConfig{ID: "cam-env-1", URL: sim.URL(clip.Path), AlwaysOn: true}))
	al := &audit.Log{DB: db}
	w := &streams.WHEP{Manager: m, UDPListen: "127.0.0.1:0", TCPListen: "off", Logger: quiet,
		OnSession: func(se streams.SessionEvent) { _ = al.Record(context.Background(), api.ViewingAudit(se)) }}
	require.NoError(t, w.Initialize())
	t.Cleanup(w.Close)
	snap := &streams.Snapshot{Manager: m}
	require.NoError(t, snap.Initialize())
	h.video = &streams.Handler{WHEP: w, Snapshot: snap, Authorize: api.VideoViewer, MayEndAny: api.VideoMayEndAny}
	h.restart()
	h.srv.Listen = "127.0.0.1:0"
	require.NoError(t, h.srv.Start())
	t.Cleanup(func() { _ = h.srv.Shutdown(context.Background()) })
	return h
}

// offer posts a WHEP offer as token and returns the status and the session's URL.
func (h *harness) offer(t *testing.T, camera, token string) (int, string) {
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pc.Close() })
	_, err = pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly})
	require.NoError(t, err)
	o, err := pc.CreateOffer(nil)
	require.NoError(t, err)
	gathered := webrtc.GatheringCompletePromise(pc)
	require.NoError(t, pc.SetLocalDescription(o))
	<-gathered
	req, _ := http.NewRequest("POST", "http://"+h.srv.Addr()+"/api/v1/cameras/"+camera+"/whep", strings.NewReader(pc.LocalDescription().SDP))
	req.Header.Set("Content-Type", "application/sdp")
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	return res.StatusCode, res.Header.Get("Location")
}

func (h *harness) real(t *testing.T, method, path, token string) (int, string) {
	req, _ := http.NewRequest(method, "http://"+h.srv.Addr()+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// Through the API: another officer cannot end someone's viewing session (403, audited as a
// refusal), an admin can, and the audit names the admin as who ended it. Snapshot downloads
// are audited.
func TestViewingSessionsBelongToTheirViewer(t *testing.T) {
	h := videoHarness(t)
	_, alice := h.user("alice", auth.RoleOfficer, []string{deptEnv}, nil)
	_, bob := h.user("bob", auth.RoleOfficer, []string{deptEnv}, nil)

	status, loc := h.offer(t, "cam-env-1", alice)
	require.Equal(t, 201, status)
	require.NotEmpty(t, loc)

	status, body := h.real(t, "DELETE", loc, bob)
	require.Equal(t, 403, status, body)
	require.Contains(t, body, "not_your_session")
	denied := h.auditEntries(audit.Filter{Actor: "bob", Action: "access.denied"})
	require.Len(t, denied, 1)
	require.Equal(t, "DELETE "+loc, denied[0].Target)

	status, body = h.real(t, "DELETE", loc, h.admin)
	require.Equal(t, 200, status, body)
	var ends []audit.Entry
	require.Eventually(t, func() bool {
		ends = h.auditEntries(audit.Filter{Action: "camera.view.end"})
		return len(ends) == 1
	}, 10*time.Second, 50*time.Millisecond)
	require.Equal(t, "admin", ends[0].Actor, "the audit names who ended the session")
	require.Contains(t, ends[0].Detail, "viewer alice", "%+v", h.auditEntries(audit.Filter{Action: "camera.view."}))

	status, _ = h.real(t, "GET", "/api/v1/cameras/cam-env-1/snapshot.jpg", alice)
	require.Equal(t, 200, status)
	snaps := h.auditEntries(audit.Filter{Action: "camera.snapshot"})
	require.Len(t, snaps, 1)
	require.Equal(t, "alice", snaps[0].Actor)
	require.Equal(t, "ok", snaps[0].Result)
	require.True(t, func() bool {
		r, err := (&audit.Log{DB: h.db}).Verify(context.Background())
		return err == nil && r.OK()
	}())
}
