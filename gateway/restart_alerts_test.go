package main_test

import (
	"encoding/json"
	"net/url"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestDemoRestartOpensNoAlert (issue 16): stopping the demo with SIGTERM and starting it again
// is our own doing, not the devices': no device goes offline or silent for it, at the stop or
// after the start, and so no alert opens for it.
func TestDemoRestartOpensNoAlert(t *testing.T) {
	dir := t.TempDir()
	cmd, first, out := startDemo(t, dir)
	admin := login(t, first.HTTP, "admin", password(first, "admin"))
	waitSensorsOnline(t, first, admin, out)

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		require.NoErrorf(t, err, "demo exit:\n%s", out.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("demo did not stop within 60s of SIGTERM:\n%s", out.String())
	}

	_, second, out := startDemo(t, dir)
	admin = login(t, second.HTTP, "admin", password(second, "admin"))
	waitSensorsOnline(t, second, admin, out)

	// What the stop or the start might have raised: nothing of it is in the log.
	q := url.Values{"type": {"device.offline,sensor.silent,video.signal_lost"}, "limit": {"5000"}}
	code, body := get(t, second.HTTP+"/api/v1/events?"+q.Encode(), admin)
	require.Equal(t, 200, code, string(body))
	var page struct {
		Events []struct{ Type, Message string }
	}
	require.NoError(t, json.Unmarshal(body, &page))
	require.Empty(t, page.Events, "a restart is no device's outage")
	code, body = get(t, second.HTTP+"/api/v1/alerts?limit=5000", admin)
	require.Equal(t, 200, code)
	var alerts struct {
		Alerts []struct{ Type, Message string }
	}
	require.NoError(t, json.Unmarshal(body, &alerts))
	for _, a := range alerts.Alerts {
		require.NotContains(t, []string{"device.offline", "sensor.silent", "video.signal_lost"}, a.Type, "alert %s", a.Message)
	}

	// Every event message the demo produced over both runs reads in Chinese: no English
	// phrase (units such as %LEL aside).
	code, body = get(t, second.HTTP+"/api/v1/events?limit=5000", admin)
	require.Equal(t, 200, code)
	require.NoError(t, json.Unmarshal(body, &page))
	require.NotEmpty(t, page.Events)
	for _, e := range page.Events {
		for _, w := range englishWord.FindAllString(e.Message, -1) {
			if !unitWords[w] {
				t.Errorf("%s: message %q contains the English %q", e.Type, e.Message, w)
			}
		}
	}
}

var (
	englishWord = regexp.MustCompile(`[A-Za-z]{3,}`)
	unitWords   = map[string]bool{"LEL": true, "TSP": true}
)

// waitSensorsOnline waits until presence reports every demo sensor online (the simulated
// sensors have (re)connected and sent data).
func waitSensorsOnline(t *testing.T, dj demoJSON, token string, out *syncBuffer) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var waiting []string
		for _, s := range dj.Sensors {
			code, body := get(t, dj.HTTP+"/api/v1/devices/"+s.ID+"/presence", token)
			var p struct{ State string }
			if code != 200 || json.Unmarshal(body, &p) != nil || p.State != "online" {
				waiting = append(waiting, s.ID+"="+p.State)
			}
		}
		if len(waiting) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("sensors not online: %s\n%s", strings.Join(waiting, ", "), out.String())
		}
		time.Sleep(500 * time.Millisecond)
	}
}
