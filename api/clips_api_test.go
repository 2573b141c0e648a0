package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/api"
	"github.com/offsite-gw/offsite/api/auth"
	"github.com/offsite-gw/offsite/internal/audit"
	"github.com/offsite-gw/offsite/internal/store"
	"github.com/offsite-gw/offsite/internal/store/storetest"
)

// h264Clip is a real H.264 MP4 (baseline, faststart) made by ffmpeg.
func h264Clip(t *testing.T) []byte {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not installed")
	}
	p := filepath.Join(t.TempDir(), "clip.mp4")
	out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
		"-t", "2", "-c:v", "libx264", "-profile:v", "baseline", "-pix_fmt", "yuv420p", "-movflags", "+faststart", p).CombinedOutput()
	require.NoError(t, err, string(out))
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	return b
}

// evidenceAdded is an evidence.added event as the clip writer logs it (docs/contracts.md §9).
func evidenceAdded(id, ref, sum, url string, eventAt time.Time) json.RawMessage {
	ts := func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
	b, _ := json.Marshal(map[string]any{"id": id, "type": "evidence.added", "severity": "info", "occurred_at": ts(eventAt.Add(20 * time.Second)),
		"gateway_id": "gw-test", "site": map[string]any{"id": "site-house", "region_code": "410704"}, "department": deptHouse,
		"device": map[string]any{"id": "cam-house-1"}, "message": "证据录像已生成", "ref_event_id": ref,
		"evidence": []map[string]any{{"kind": "clip", "url": url, "sha256": sum, "mime": "video/mp4", "codec": "h264", "camera_id": "cam-house-1",
			"start": ts(eventAt.Add(-10 * time.Second)), "end": ts(eventAt.Add(20 * time.Second)), "event_at": ts(eventAt), "complete": true}}})
	return b
}

// A clip announced by evidence.added is part of its alert's detail (clips), visible to whoever
// may see the event it is of and to nobody else, served in byte ranges for <video>, and each
// view and download is audited once.
func TestAlertClipsScopeRangeAndAudit(t *testing.T) {
	clip := h264Clip(t)
	storetest.Each(t, testSchema, func(t *testing.T, db *store.DB) {
		h := newEventsHarness(t, db, nil)
		require.Equal(t, 201, h.do("POST", "/api/v1/events", h.service, houseEvent("扬尘超标")).status)
		var alerts struct {
			Alerts []struct {
				ID      string
				EventID string `json:"event_id"`
			}
		}
		h.do("GET", "/api/v1/alerts", h.house, nil).json(t, &alerts)
		require.Len(t, alerts.Alerts, 1)
		al := alerts.Alerts[0]

		sum, url, err := h.evidence.Put(bytes.NewReader(clip), ".mp4")
		require.NoError(t, err)
		other, otherURL, err := h.evidence.Put(bytes.NewReader(append([]byte{0}, clip...)), ".mp4")
		require.NoError(t, err)
		at := time.Now().Add(-time.Minute)
		ctx := context.Background()
		rec, err := h.log.AppendReceived(ctx, "gw-test", []json.RawMessage{
			evidenceAdded("01JF0000000000000000000001", al.EventID, sum, url, at),
			evidenceAdded("01JF0000000000000000000002", "01JF0000000000000000000099", other, otherURL, at), // of another event
		}, nil, nil)
		require.NoError(t, err)
		require.Len(t, rec.Accepted, 2, "%+v", rec)

		// The alert detail lists the clip with what the player needs, and not the other one.
		var detail struct {
			Clips []struct {
				Kind, URL, SHA256, MIME, Codec string
				EventAt                        time.Time `json:"event_at"`
				Start                          time.Time
				RefEventID                     string `json:"ref_event_id"`
			}
		}
		r := h.do("GET", "/api/v1/alerts/"+al.ID, h.house, nil)
		require.Equal(t, 200, r.status, string(r.body))
		r.json(t, &detail)
		require.Len(t, detail.Clips, 1, string(r.body))
		c := detail.Clips[0]
		require.Equal(t, "clip", c.Kind)
		require.Equal(t, sum, c.SHA256)
		require.Equal(t, url, c.URL)
		require.Equal(t, "h264", c.Codec)
		require.Equal(t, al.EventID, c.RefEventID)
		require.Equal(t, 10*time.Second, c.EventAt.Sub(c.Start), "the event moment is 10 s into the clip")

		// Scope: the clip is the event's; another department and a maintainer do not see it,
		// nor does anyone see the clip of an event that is not in the log.
		_, maint := h.user("weihu", auth.RoleMaintainer, nil, nil)
		require.Equal(t, 404, h.do("GET", url, h.env, nil).status)
		require.Equal(t, 404, h.do("GET", url, maint, nil).status)
		require.Equal(t, 404, h.do("GET", otherURL, h.house, nil).status)

		// Whole file, ranges as a <video> asks for them, and an unsatisfiable one.
		r = h.do("GET", url, h.house, nil)
		require.Equal(t, 200, r.status)
		require.Equal(t, clip, r.body)
		require.Equal(t, "bytes", r.header.Get("Accept-Ranges"))
		r = h.do("GET", url, h.house, nil, "Range", "bytes=0-")
		require.Equal(t, 206, r.status)
		require.Equal(t, clip, r.body)
		r = h.do("GET", url, h.house, nil, "Range", "bytes=1000-1999")
		require.Equal(t, 206, r.status)
		require.Equal(t, clip[1000:2000], r.body)
		require.Equal(t, fmt.Sprintf("bytes 1000-1999/%d", len(clip)), r.header.Get("Content-Range"))
		r = h.do("GET", url, h.house, nil, "Range", "bytes=-500")
		require.Equal(t, 206, r.status)
		require.Equal(t, clip[len(clip)-500:], r.body)
		r = h.do("GET", url, h.house, nil, "Range", "bytes="+strconv.Itoa(len(clip))+"-")
		require.Equal(t, 416, r.status)
		require.Equal(t, fmt.Sprintf("bytes */%d", len(clip)), r.header.Get("Content-Range"))

		// Download: an attachment named with the sha256.
		r = h.do("GET", url+"?download=1", h.house, nil)
		require.Equal(t, 200, r.status)
		require.Equal(t, clip, r.body)
		require.Equal(t, `attachment; filename="evidence-`+sum+`.mp4"`, r.header.Get("Content-Disposition"))

		// Audit: the views that began at byte 0 (whole, 0-), not the later ranges; the
		// download; every refusal.
		views := h.auditEntries(audit.Filter{Action: "evidence.view"})
		count := map[string]int{}
		for _, e := range views {
			count[e.Target+" "+e.Actor+" "+e.Result]++
		}
		require.Equal(t, 2, count[sum+".mp4 zhujian ok"], "%+v", views)
		require.Equal(t, 1, count[sum+".mp4 huanbao failed"], "%+v", views)
		require.Equal(t, 1, count[sum+".mp4 weihu failed"], "%+v", views)
		require.Equal(t, 1, count[sum+".mp4 zhujian failed"], "the unsatisfiable range: %+v", views)
		dl := h.auditEntries(audit.Filter{Action: "evidence.download"})
		require.Len(t, dl, 1)
		require.Equal(t, "zhujian", dl[0].Actor)
		require.Equal(t, sum+".mp4", dl[0].Target)
	})
}

func TestParseByteRange(t *testing.T) {
	for _, c := range []struct {
		h             string
		size          int64
		start, n      int64
		partial, fail bool
	}{
		{"", 100, 0, 100, false, false},
		{"bytes=0-", 100, 0, 100, true, false},
		{"bytes=0-0", 100, 0, 1, true, false},
		{"bytes=10-19", 100, 10, 10, true, false},
		{"bytes=90-200", 100, 90, 10, true, false},
		{"bytes=-30", 100, 70, 30, true, false},
		{"bytes=-300", 100, 0, 100, true, false},
		{"bytes=100-", 100, 0, 0, false, true},
		{"bytes=-0", 100, 0, 0, false, true},
		{"bytes=0-1,5-6", 100, 0, 100, false, false}, // several ranges: the whole file
		{"bytes=20-10", 100, 0, 100, false, false},   // bad syntax is ignored
		{"items=0-5", 100, 0, 100, false, false},
		{"bytes=a-b", 100, 0, 100, false, false},
		{"bytes=0-", 0, 0, 0, false, true},
	} {
		start, n, partial, err := api.ParseByteRange(c.h, c.size)
		require.Equal(t, c.fail, err != nil, c.h)
		if !c.fail {
			require.Equal(t, []any{c.start, c.n, c.partial}, []any{start, n, partial}, c.h)
		}
	}
}

func FuzzParseByteRange(f *testing.F) {
	for _, s := range []string{"bytes=0-", "bytes=-5", "bytes=3-9", "bytes=9-3", "bytes=0-1,2-3", "bytes= 1 - 2", "bytes=-", "bytes=99999999999999999999-"} {
		f.Add(s, int64(100))
	}
	f.Fuzz(func(t *testing.T, h string, size int64) {
		if size < 0 {
			size = -size
		}
		if size < 0 {
			return
		}
		start, n, partial, err := api.ParseByteRange(h, size)
		if err != nil {
			return
		}
		if start < 0 || n < 0 || start+n > size {
			t.Fatalf("%q of %d: start %d n %d outside the file", h, size, start, n)
		}
		if !partial && (start != 0 || n != size) {
			t.Fatalf("%q of %d: not partial but %d+%d", h, size, start, n)
		}
	})
}
