package main_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/offsite-gw/offsite/devices"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/require"
)

// cascadeViewer is a pion WHEP viewer on loopback that counts the video RTP packets it gets.
type cascadeViewer struct {
	pc      *webrtc.PeerConnection
	packets atomic.Int64
	status  int
}

func cascadeAPI(t *testing.T) *webrtc.API {
	me := &webrtc.MediaEngine{}
	require.NoError(t, me.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"},
		PayloadType: 102,
	}, webrtc.RTPCodecTypeVideo))
	lf := logging.NewDefaultLoggerFactory()
	lf.DefaultLogLevel = logging.LogLevelError
	se := webrtc.SettingEngine{LoggerFactory: lf}
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se), webrtc.WithInterceptorRegistry(&interceptor.Registry{}))
}

// watch posts a WHEP offer for endpoint; a refused offer leaves status set and no peer.
func watch(t *testing.T, api *webrtc.API, endpoint, token string) *cascadeViewer {
	t.Helper()
	v := &cascadeViewer{}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pc.Close() })
	_, err = pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly})
	require.NoError(t, err)
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		go func() {
			for {
				if _, _, err := tr.ReadRTP(); err != nil {
					return
				}
				v.packets.Add(1)
			}
		}()
	})
	offer, err := pc.CreateOffer(nil)
	require.NoError(t, err)
	gathered := webrtc.GatheringCompletePromise(pc)
	require.NoError(t, pc.SetLocalDescription(offer))
	<-gathered
	req, _ := http.NewRequest(http.MethodPost, endpoint, bytes.NewBufferString(pc.LocalDescription().SDP))
	req.Header.Set("Content-Type", "application/sdp")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	v.status = resp.StatusCode
	if resp.StatusCode != http.StatusCreated {
		return v
	}
	v.pc = pc
	require.NoError(t, pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(body)}))
	return v
}

// metric reads one sample (name with its labels as exposed) from a node's /metrics; 0 if absent.
func metric(t *testing.T, base, name string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == name {
			v, err := strconv.ParseFloat(f[1], 64)
			require.NoError(t, err)
			return v
		}
	}
	return 0 // a counter not counted yet
}

type auditRow struct{ Actor, Action, Target, Result, Detail string }

func auditOf(t *testing.T, base, token, action string) []auditRow {
	t.Helper()
	code, b := get(t, base+"/api/v1/audit?limit=5000&action="+url.QueryEscape(action), token)
	require.Equal(t, 200, code, string(b))
	var out struct{ Entries []auditRow }
	if err := json.Unmarshal(b, &out); err != nil || out.Entries == nil {
		var rows []auditRow
		require.NoError(t, json.Unmarshal(b, &rows), string(b))
		return rows
	}
	return out.Entries
}

func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestCascadeOnePullPerCameraAndLinkTrouble runs the demo city (a centre and two site gateways
// as processes) and watches a site camera at the centre: ten viewers make one RTSP session at
// the site, which the site's metrics and audit (naming the centre and its user) show; a wrong
// credential or a forged on-behalf statement is refused at the site and counted; an officer of
// another department gets 404; killing the site gateway makes the camera's status say the site
// is unreachable, and its restart brings packets back to the viewers still watching.
func TestCascadeOnePullPerCameraAndLinkTrouble(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo city")
	}
	dir := t.TempDir()
	_, dj, out := startDemo(t, dir)
	var full struct {
		Gateways []struct {
			ID, HTTP, RTSP, Secret string
			Users                  []demoUserJSON
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "demo.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &full))
	const cam = "cam-hall-queue"
	site := full.Gateways[0]
	require.Equal(t, "demo-gw-hall", site.ID)
	siteAdmin := ""
	for _, u := range site.Users {
		if u.Username == "admin" {
			siteAdmin = login(t, site.HTTP, "admin", u.Password)
		}
	}
	require.NotEmpty(t, siteAdmin)

	centre := dj.HTTP
	admin := login(t, centre, "admin", password(dj, "admin"))
	endpoint := centre + "/api/v1/cameras/" + cam + "/whep"
	eventually(t, time.Minute, "the centre relays "+cam, func() bool {
		_, b := get(t, centre+"/api/v1/cameras/"+cam, admin)
		return strings.Contains(string(b), `"status"`) // in the centre's relay (synced every 10 s)
	})

	// Out of scope: an officer of the market department does not see the service hall's camera.
	market := login(t, centre, "officer-market", password(dj, "officer-market"))
	api := cascadeAPI(t)
	require.Equal(t, http.StatusNotFound, watch(t, api, endpoint, market).status)

	// Ten viewers at the centre, one pull at the site.
	// Four users of the centre who may watch the service hall (a user has at most 8 sessions).
	tokens := []string{admin}
	for _, u := range []string{"monitor", "officer-hall", "maintainer"} {
		tokens = append(tokens, login(t, centre, u, password(dj, u)))
	}
	var viewers []*cascadeViewer
	for i := 0; i < 10; i++ {
		v := watch(t, api, endpoint, tokens[i%len(tokens)])
		require.Equal(t, http.StatusCreated, v.status)
		viewers = append(viewers, v)
	}
	for i, v := range viewers {
		eventually(t, time.Minute, fmt.Sprintf("viewer %d gets video", i), func() bool { return v.packets.Load() > 20 })
	}
	require.Equal(t, 1.0, metric(t, site.HTTP, "offsite_rtsp_reserve_sessions"), "one RTSP session at the site for ten viewers")
	pulls := 0
	for _, e := range auditOf(t, site.HTTP, siteAdmin, "camera.pull.start") {
		if e.Target == cam {
			pulls++
			require.Equal(t, "centre:demo-centre", e.Actor)
			require.Equal(t, "ok", e.Result)
			require.Contains(t, e.Detail, "on behalf of centre user admin")
		}
	}
	require.Equal(t, 1, pulls, "the site audits one pull by the centre")
	views := 0
	for _, e := range auditOf(t, centre, admin, "camera.view.start") {
		if e.Target == cam {
			views++
		}
	}
	require.Equal(t, 10, views, "the centre audits every viewer")

	// A wrong credential is refused and counted; so is a forged statement of the viewer.
	rtspURL := strings.TrimSuffix(site.RTSP, "/") + "/" + cam
	const badLogin, badClaim = `offsite_rtsp_refused_total{reason="bad_credentials"}`, `offsite_rtsp_refused_total{reason="bad_claim"}`
	refused := metric(t, site.HTTP, badLogin)
	err = describe(rtspURL, devices.CascadeUser, "not-the-password", nil)
	require.ErrorContains(t, err, "401")
	require.Equal(t, refused+1, metric(t, site.HTTP, badLogin))
	denied := metric(t, site.HTTP, badClaim)
	forged := devices.SignOnBehalf([]byte("not the enrolment secret"), "demo-centre", cam, "admin", time.Now())
	err = describe(rtspURL, devices.CascadeUser, devices.CascadePassword([]byte(site.Secret)), map[string]string{devices.OnBehalfHeader: forged})
	require.ErrorContains(t, err, "403")
	require.Equal(t, denied+1, metric(t, site.HTTP, badClaim))
	deniedAudit := 0
	for _, e := range auditOf(t, site.HTTP, siteAdmin, "camera.pull.start") {
		if e.Target == cam && e.Result == "denied" {
			deniedAudit++
		}
	}
	require.Equal(t, 1, deniedAudit, "the forged statement is in the site's audit")
	require.Equal(t, 1.0, metric(t, site.HTTP, "offsite_rtsp_reserve_sessions"))

	// Kill the site gateway: the centre says the site is unreachable; the demo restarts it and
	// the viewers still watching get packets again, without a new offer.
	m := regexp.MustCompile(`demo node started.*node=demo-gw-hall.*pid=(\d+)`).FindAllStringSubmatch(out.String(), -1)
	require.NotEmpty(t, m, "the demo logs the site gateway's pid")
	pid, _ := strconv.Atoi(m[len(m)-1][1])
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	reasons := map[string]bool{}
	eventually(t, time.Minute, "the centre says the site gateway is unreachable", func() bool {
		_, b := get(t, centre+"/api/v1/cameras/"+cam, admin)
		var cv struct {
			ReasonCode string `json:"reason_code"`
		}
		_ = json.Unmarshal(b, &cv)
		reasons[cv.ReasonCode] = true
		return cv.ReasonCode == "gateway_unreachable"
	})
	t.Logf("reasons seen while the site was down: %v", reasons)
	counts := make([]int64, len(viewers))
	for i, v := range viewers {
		counts[i] = v.packets.Load()
	}
	for i, v := range viewers {
		eventually(t, 2*time.Minute, fmt.Sprintf("viewer %d gets video again", i), func() bool { return v.packets.Load() > counts[i]+50 })
	}
	eventually(t, time.Minute, "the camera's status is online again", func() bool {
		_, b := get(t, centre+"/api/v1/cameras/"+cam, admin)
		return !strings.Contains(string(b), "gateway_unreachable")
	})
	require.Equal(t, 1.0, metric(t, site.HTTP, "offsite_rtsp_reserve_sessions"), "the restarted site has one session again")
}

// describe asks the re-serve for a camera, as a centre would, and reports its refusal.
func describe(rawURL, user, pass string, header map[string]string) error {
	u, err := base.ParseURL(rawURL)
	if err != nil {
		return err
	}
	u.User = url.UserPassword(user, pass)
	c := &gortsplib.Client{Scheme: u.Scheme, Host: u.Host}
	if len(header) > 0 {
		c.OnRequest = func(req *base.Request) {
			for k, v := range header {
				req.Header[k] = base.HeaderValue{v}
			}
		}
	}
	if err := c.Start2(); err != nil {
		return err
	}
	defer c.Close()
	desc, _, err := c.Describe(u)
	if err != nil {
		return err
	}
	if err := c.SetupAll(desc.BaseURL, desc.Medias); err != nil {
		return err
	}
	_, err = c.Play(nil)
	return err
}
