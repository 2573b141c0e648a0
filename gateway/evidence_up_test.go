package main_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/events/uplink"
	"github.com/offsite-gw/offsite/events/uplink/provincesim"
)

// testJPEG is a real JPEG picture, different for each seed.
func testJPEG(t *testing.T, seed int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 64, 48))
	for y := 0; y < 48; y++ {
		for x := 0; x < 64; x++ {
			img.Set(x, y, color.RGBA{uint8(x * 4), uint8(y * 5), uint8(seed * 37), 255})
		}
	}
	var b bytes.Buffer
	require.NoError(t, jpeg.Encode(&b, img, nil))
	return b.Bytes()
}

// testMP4 is an H.264 (baseline, faststart) MP4 made by ffmpeg, as a clip would be.
func testMP4(t *testing.T, seconds int) []byte {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not installed")
	}
	p := filepath.Join(t.TempDir(), "clip.mp4")
	out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
		"testsrc=size=320x240:rate=25", "-t", fmt.Sprint(seconds), "-c:v", "libx264", "-profile:v", "baseline",
		"-pix_fmt", "yuv420p", "-g", "25", "-movflags", "+faststart", p).CombinedOutput()
	require.NoError(t, err, string(out))
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	return b
}

// testHEVC is an H.265 MP4 (hvc1) made by ffmpeg.
func testHEVC(t *testing.T) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "clip265.mp4")
	out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
		"-t", "3", "-c:v", "libx265", "-x265-params", "log-level=error", "-pix_fmt", "yuv420p", "-tag:v", "hvc1", "-movflags", "+faststart", p).CombinedOutput()
	if err != nil {
		t.Skipf("ffmpeg cannot encode H.265 here: %v %s", err, out)
	}
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	return b
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func evidencePath(dataDir, sum, ext string) string {
	return filepath.Join(dataDir, "evidence", sum[0:2], sum[2:4], sum+ext)
}

func fetchRaw(t *testing.T, url, token string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// An event with evidence at a site travels to the centre and the province; the centre
// fetches the file from the site when first opened, the province fetches it through the
// centre, and each gets bytes with the event's sha256. A file changed at the site is refused
// at the centre, counted, and nothing of it is kept there or handed to the province.
func TestEvidenceFollowsTheEventUpward(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the demo city")
	}
	p := startProvince(t, "province-secret-"+ulid.Make().String())
	dir, dj, out := startCity(t, p)
	centre := dj.HTTP
	siteURL, siteUsers := siteOf(t, dj, "demo-gw-city")
	siteDir := filepath.Join(dir, "demo-gw-city")
	centreDir := filepath.Join(dir, "centre")
	svc := login(t, siteURL, "analytics", userPassword(siteUsers, "analytics"))
	admin := login(t, centre, "admin", password(dj, "admin"))
	camera := ""
	for _, c := range dj.Cameras {
		if c.Gateway == "demo-gw-city" {
			camera = c.ID
			break
		}
	}
	require.NotEmpty(t, camera)

	// Evidence at the site: a snapshot uploaded as the analytics worker does, and an H.264
	// clip put into the site's store as the clip writer does (content-addressed files).
	pic, pic2, clip := testJPEG(t, 1), testJPEG(t, 2), testMP4(t, 3)
	up := func(b []byte) string {
		req, _ := http.NewRequest("POST", siteURL+"/api/v1/evidence", bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+svc)
		req.Header.Set("Content-Type", "image/jpeg")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		require.Equal(t, 201, resp.StatusCode, string(body))
		var r struct{ SHA256, URL string }
		require.NoError(t, json.Unmarshal(body, &r))
		require.Equal(t, sha(b), r.SHA256)
		return r.URL
	}
	picURL, pic2URL := up(pic), up(pic2)
	clipSum := sha(clip)
	require.NoError(t, os.MkdirAll(filepath.Dir(evidencePath(siteDir, clipSum, ".mp4")), 0o750))
	require.NoError(t, os.WriteFile(evidencePath(siteDir, clipSum, ".mp4"), clip, 0o640))
	clipURL := "/api/v1/evidence/" + clipSum[0:2] + "/" + clipSum[2:4] + "/" + clipSum + ".mp4"

	logEvent := func(evidence string) string {
		body := fmt.Sprintf(`{"type":"video.tamper","severity":"major","occurred_at":%q,"device":{"id":%q},"message":"摄像机遮挡（证据上行测试）","evidence":[%s]}`,
			time.Now().UTC().Format(time.RFC3339Nano), camera, evidence)
		code, b := post(t, siteURL+"/api/v1/events", svc, body)
		require.Equal(t, 201, code, string(b))
		var e struct{ ID string }
		require.NoError(t, json.Unmarshal(b, &e))
		return e.ID
	}
	ev1 := logEvent(fmt.Sprintf(`{"kind":"snapshot","url":%q,"sha256":%q},{"kind":"clip","url":%q,"sha256":%q}`, picURL, sha(pic), clipURL, clipSum))
	ev2 := logEvent(fmt.Sprintf(`{"kind":"snapshot","url":%q,"sha256":%q}`, pic2URL, sha(pic2)))

	// Both events reach the centre (naming the site) and the province.
	require.Eventually(t, func() bool {
		evs := p.events()
		return evs[ev1] != nil && evs[ev2] != nil
	}, 90*time.Second, 250*time.Millisecond, "the province receives the site's events through the centre\n%s", out)
	require.Equal(t, "demo-gw-city", p.events()[ev1]["gateway_id"])
	require.NoFileExists(t, evidencePath(centreDir, sha(pic), ".jpg"), "the centre has no copy before anyone opens it")

	// The province fetches the clip through the centre, which fetches it from the site first.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	got, ctype, err := p.handler.FetchEvidence(ctx, centre, "demo-centre", clipSum)
	require.NoError(t, err)
	require.Equal(t, clipSum, sha(got), "the province gets the clip's bytes")
	require.Equal(t, "video/mp4", ctype)
	require.FileExists(t, evidencePath(centreDir, clipSum, ".mp4"), "the centre kept its copy")

	// A user at the centre opens the snapshot: fetched from the site on first open, then
	// served from the centre's copy.
	resp, b := fetchRaw(t, centre+picURL, admin, nil)
	require.Equal(t, 200, resp.StatusCode, string(b))
	require.Equal(t, sha(pic), sha(b))
	require.FileExists(t, evidencePath(centreDir, sha(pic), ".jpg"))
	require.Equal(t, float64(2), metric(t, centre, `offsite_centre_evidence_fetches_total{outcome="ok"}`))
	resp, b = fetchRaw(t, centre+picURL, admin, nil)
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, sha(pic), sha(b))
	require.Equal(t, float64(2), metric(t, centre, `offsite_centre_evidence_fetches_total{outcome="ok"}`), "the second open is served from the copy")

	// The browser's <video> reads the clip in ranges; ?download=1 is an attachment.
	resp, b = fetchRaw(t, centre+clipURL, admin, map[string]string{"Range": "bytes=100-1099"})
	require.Equal(t, 206, resp.StatusCode, string(b))
	require.Equal(t, clip[100:1100], b)
	require.Equal(t, fmt.Sprintf("bytes 100-1099/%d", len(clip)), resp.Header.Get("Content-Range"))
	resp, b = fetchRaw(t, centre+clipURL+"?download=1", admin, nil)
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, clipSum, sha(b))
	require.Contains(t, resp.Header.Get("Content-Disposition"), "attachment")
	require.Contains(t, resp.Header.Get("Content-Disposition"), clipSum)
	rows := auditOf(t, centre, admin, "evidence.download")
	require.NotEmpty(t, rows, "the download is audited")
	rows = auditOf(t, centre, admin, "evidence.view")
	require.NotEmpty(t, rows, "the inline views are audited")
	// Each fetch is audited where it is served: at the centre for the province, at the site for
	// the centre.
	byActor := func(rows []auditRow, actor, target string) bool {
		for _, r := range rows {
			if r.Actor == actor && r.Target == target && r.Result == "ok" {
				return true
			}
		}
		return false
	}
	require.True(t, byActor(auditOf(t, centre, admin, "evidence.download"), "uplink:province", clipSum), "the province's fetch is audited at the centre")
	siteAdmin := login(t, siteURL, "admin", userPassword(siteUsers, "admin"))
	siteRows := auditOf(t, siteURL, siteAdmin, "evidence.download")
	require.True(t, byActor(siteRows, "uplink:centre", clipSum), "the centre's fetch is audited at the site: %+v", siteRows)
	require.True(t, byActor(siteRows, "uplink:centre", sha(pic)), "%+v", siteRows)

	// Someone changes the second picture at the site: the centre refuses the copy, says so,
	// counts it and keeps nothing; the province gets nothing either.
	require.NoError(t, os.WriteFile(evidencePath(siteDir, sha(pic2), ".jpg"), testJPEG(t, 3), 0o640))
	resp, b = fetchRaw(t, centre+pic2URL, admin, nil)
	require.Equal(t, 503, resp.StatusCode, string(b))
	require.Contains(t, string(b), "evidence_hash_mismatch")
	require.Contains(t, string(b), "demo-gw-city")
	require.Equal(t, float64(1), metric(t, centre, `offsite_centre_evidence_fetches_total{outcome="hash_mismatch"}`))
	require.NoFileExists(t, evidencePath(centreDir, sha(pic2), ".jpg"))
	tmp, _ := os.ReadDir(filepath.Join(centreDir, "evidence", "tmp"))
	require.Empty(t, tmp, "no partial copy is left behind")
	_, _, err = p.handler.FetchEvidence(ctx, centre, "demo-centre", sha(pic2))
	var se *uplink.FetchStatusError
	require.True(t, errors.As(err, &se), "%v", err)
	require.Equal(t, 503, se.Status)
	require.Equal(t, float64(2), metric(t, centre, `offsite_centre_evidence_fetches_total{outcome="hash_mismatch"}`))

	// A fetch signed with another secret is refused; so is one of a file no event carries.
	wrong := &provincesim.Handler{Secret: []byte("not-the-province-secret")}
	require.NoError(t, wrong.Initialize())
	_, _, err = wrong.FetchEvidence(ctx, centre, "demo-centre", clipSum)
	require.True(t, errors.As(err, &se), "%v", err)
	require.Equal(t, 401, se.Status)
	_, _, err = p.handler.FetchEvidence(ctx, centre, "demo-centre", sha([]byte("nothing")))
	require.True(t, errors.As(err, &se), "%v", err)
	require.Equal(t, 404, se.Status)
	require.True(t, strings.Contains(se.Body, "evidence_not_found"), se.Body)

	// The site also recorded the camera around ev1 (video.tamper is a type with clips in the
	// demo): its clip, cut from the pre-roll and post-roll, is announced by an evidence.added
	// that reaches the province with the clip's sha256, and the province's fetch of that file
	// through the centre returns bytes with that hash.
	var added map[string]any
	require.Eventually(t, func() bool {
		for _, e := range p.events() {
			if e["type"] == "evidence.added" && e["ref_event_id"] == ev1 {
				added = e
				return true
			}
		}
		return false
	}, 3*time.Minute, 500*time.Millisecond, "no evidence.added for %s reached the province\n%s", ev1, out)
	require.Equal(t, "demo-gw-city", added["gateway_id"])
	evs, _ := added["evidence"].([]any)
	require.Len(t, evs, 1)
	entry, _ := evs[0].(map[string]any)
	require.Equal(t, "clip", entry["kind"])
	require.Equal(t, camera, entry["camera_id"])
	recorded, _ := entry["sha256"].(string)
	require.Len(t, recorded, 64)
	fctx, fcancel := context.WithTimeout(context.Background(), time.Minute)
	defer fcancel()
	got, ctype, err = p.handler.FetchEvidence(fctx, centre, "demo-centre", recorded)
	require.NoError(t, err)
	require.Equal(t, recorded, sha(got), "the province gets the recorded clip's bytes through the centre")
	require.Equal(t, "video/mp4", ctype)
}

// An H.264 clip of a site's event, announced by evidence.added, plays in Chromium in the alert
// detail at the centre (which fetches it from the site when the player asks for it), and the
// wall tile's 取证录像 dialog works or says the gateway lacks the API.
func TestClipPlaysInBrowserAtCentre(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the demo city and Chromium")
	}
	harness := browserHarness(t)
	p := startProvince(t, "province-secret-"+ulid.Make().String())
	dir, dj, out := startCity(t, p)
	centre := dj.HTTP
	siteURL, siteUsers := siteOf(t, dj, "demo-gw-city")
	svc := login(t, siteURL, "analytics", userPassword(siteUsers, "analytics"))
	admin := login(t, centre, "admin", password(dj, "admin"))
	camera := ""
	for _, c := range dj.Cameras {
		if c.Gateway == "demo-gw-city" {
			camera = c.ID
			break
		}
	}
	require.NotEmpty(t, camera)

	// The event at the site raises an alert at the centre; its clip follows as evidence.added.
	at := time.Now().UTC()
	body := fmt.Sprintf(`{"type":"video.tamper","severity":"major","state":"active","alarm_key":"%s/clip-browsertest","occurred_at":%q,"device":{"id":%q},"message":"摄像机遮挡（录像测试）"}`,
		camera, at.Format(time.RFC3339Nano), camera)
	code, b := post(t, siteURL+"/api/v1/events", svc, body)
	require.Equal(t, 201, code, string(b))
	var ev struct{ ID string }
	require.NoError(t, json.Unmarshal(b, &ev))
	clip := testMP4(t, 8)
	sum := sha(clip)
	require.NoError(t, os.MkdirAll(filepath.Dir(evidencePath(filepath.Join(dir, "demo-gw-city"), sum, ".mp4")), 0o750))
	require.NoError(t, os.WriteFile(evidencePath(filepath.Join(dir, "demo-gw-city"), sum, ".mp4"), clip, 0o640))
	url := "/api/v1/evidence/" + sum[0:2] + "/" + sum[2:4] + "/" + sum + ".mp4"
	ts := func(d time.Duration) string { return at.Add(d).Format(time.RFC3339Nano) }
	body = fmt.Sprintf(`{"type":"evidence.added","severity":"info","occurred_at":%q,"device":{"id":%q},"ref_event_id":%q,"message":"证据录像已生成",
		"evidence":[{"kind":"clip","url":%q,"sha256":%q,"mime":"video/mp4","codec":"h264","camera_id":%q,"start":%q,"end":%q,"event_at":%q,"complete":true}]}`,
		ts(6*time.Second), camera, ev.ID, url, sum, camera, ts(-2*time.Second), ts(6*time.Second), ts(0))
	code, b = post(t, siteURL+"/api/v1/events", svc, body)
	require.Equal(t, 201, code, string(b))
	// An H.265 clip of the same event (another camera's, say): offered as a download.
	hevc := testHEVC(t)
	hsum := sha(hevc)
	require.NoError(t, os.MkdirAll(filepath.Dir(evidencePath(filepath.Join(dir, "demo-gw-city"), hsum, ".mp4")), 0o750))
	require.NoError(t, os.WriteFile(evidencePath(filepath.Join(dir, "demo-gw-city"), hsum, ".mp4"), hevc, 0o640))
	hurl := "/api/v1/evidence/" + hsum[0:2] + "/" + hsum[2:4] + "/" + hsum + ".mp4"
	body = fmt.Sprintf(`{"type":"evidence.added","severity":"info","occurred_at":%q,"device":{"id":%q},"ref_event_id":%q,"message":"证据录像已生成",
		"evidence":[{"kind":"clip","url":%q,"sha256":%q,"mime":"video/mp4","codec":"h265","camera_id":%q,"start":%q,"end":%q,"event_at":%q,"complete":true}]}`,
		ts(7*time.Second), camera, ev.ID, hurl, hsum, camera, ts(-2*time.Second), ts(6*time.Second), ts(0))
	code, b = post(t, siteURL+"/api/v1/events", svc, body)
	require.Equal(t, 201, code, string(b))

	require.Eventually(t, func() bool {
		id := alertForEvent(t, centre, admin, ev.ID)
		if id == "" {
			return false
		}
		_, d := get(t, centre+"/api/v1/alerts/"+id, admin)
		return strings.Contains(string(d), sum) && strings.Contains(string(d), hsum)
	}, 90*time.Second, 500*time.Millisecond, "the centre's alert lists the clip\n%s", out)

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "run.mjs", centre, filepath.Join(dir, "demo.json"))
	cmd.Dir = harness
	artifacts := os.Getenv("OFFSITE_TEST_ARTIFACTS")
	if artifacts == "" {
		artifacts = t.TempDir()
	}
	cmd.Env = append(os.Environ(), "OFFSITE_TEST_STRICT=1", "OFFSITE_TEST_ONLY=clip,recording", "OFFSITE_TEST_ARTIFACTS="+filepath.Join(artifacts, "screens"))
	res, err := cmd.CombinedOutput()
	t.Logf("browser scenarios:\n%s", res)
	require.NoError(t, err, "browser scenarios failed")
	require.Contains(t, string(res), "PASS clip")
	require.Contains(t, string(res), "the H.265 clip is a download saying why")
	views := auditOf(t, centre, admin, "evidence.view")
	played := false
	for _, r := range views {
		played = played || r.Target == sum+".mp4" && r.Result == "ok"
	}
	require.True(t, played, "the play is audited at the centre: %+v", views)
}

// alertForEvent is the id of the alert at base that event eventID raised, "" while there is
// none (among the newest 200).
func alertForEvent(t *testing.T, base, token, eventID string) string {
	t.Helper()
	code, b := get(t, base+"/api/v1/alerts?limit=200", token)
	var l struct {
		Alerts []struct {
			ID      string
			EventID string `json:"event_id"`
		}
	}
	if code != 200 || json.Unmarshal(b, &l) != nil {
		return ""
	}
	for _, a := range l.Alerts {
		if a.EventID == eventID {
			return a.ID
		}
	}
	return ""
}
