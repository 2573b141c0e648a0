package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestDemoKeepsServingAfterHostileInput throws what the security review threw at the running
// demo — a will on another device's topic, a flood from one sensor, a 200 KB publish on a
// foreign topic, sockets that never speak on the MQTT and RTSP ports, guessed RTSP logins —
// and checks that the gateway still answers /healthz, that another sensor's readings keep
// arriving, and that maintainers see the flooding sensor.
func TestDemoKeepsServingAfterHostileInput(t *testing.T) {
	if _, err := exec.LookPath("mosquitto_pub"); err != nil {
		t.Skip("mosquitto_pub not installed (apt-get install mosquitto-clients)")
	}
	dir := t.TempDir()
	_, dj, out := startDemo(t, dir)
	var full struct {
		RTSP, MQTT string
		Cameras    []struct{ ID, RTSP string }
	}
	b, err := os.ReadFile(dir + "/demo.json")
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &full))
	mq, err := url.Parse(full.MQTT)
	require.NoError(t, err)
	rt, err := url.Parse(full.RTSP)
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(dj.Sensors), 2)
	flooder, other := dj.Sensors[0], dj.Sensors[1]
	statusOf := func(up string) string { return strings.TrimSuffix(up, "/up") + "/status" }
	pub := func(stdin string, args ...string) error {
		cmd := exec.Command("mosquitto_pub", append([]string{"-h", mq.Hostname(), "-p", mq.Port(), "-V", "mqttv311"}, args...)...)
		if stdin != "" {
			cmd.Stdin = strings.NewReader(stdin)
		}
		o, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%w: %s", err, o)
		}
		return nil
	}

	// Sockets that never speak, on both ports.
	for range 5 {
		for _, addr := range []string{mq.Host, rt.Host} {
			c, err := net.Dial("tcp", addr)
			require.NoError(t, err)
			defer c.Close()
		}
	}
	// A will on the other sensor's status topic: refused.
	require.Error(t, pub("", "-i", "hostile-will", "-u", flooder.MQTTUsername, "-P", flooder.MQTTPassword,
		"--will-topic", statusOf(other.Topic), "--will-payload", "offline", "--will-retain", "-t", flooder.Topic, "-m", "{}"))
	// 200 KB on the other sensor's topic: refused by the ACL.
	_ = pub("", "-i", "hostile-big", "-u", flooder.MQTTUsername, "-P", flooder.MQTTPassword, "-q", "1",
		"-t", other.Topic, "-m", strings.Repeat("x", 200<<10))
	// 3,000 messages from one sensor as fast as they go.
	require.NoError(t, pub(strings.Repeat(`{"flood": 1}`+"\n", 3000), "-i", "hostile-flood", "-u", flooder.MQTTUsername,
		"-P", flooder.MQTTPassword, "-q", "1", "-t", flooder.Topic, "-l"))
	// Guessed RTSP logins.
	if ffprobe, err := exec.LookPath("ffprobe"); err == nil && len(full.Cameras) > 0 {
		for i := range 6 {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			err := exec.CommandContext(ctx, ffprobe, "-v", "error", "-rtsp_transport", "tcp",
				fmt.Sprintf("rtsp://offsite:guess%d@%s/%s", i, rt.Host, full.Cameras[0].ID)).Run()
			cancel()
			require.Error(t, err)
		}
	}

	// Still serving: /healthz, and the other sensor's readings keep arriving.
	after := time.Now()
	code, body := get(t, dj.HTTP+"/healthz", "")
	require.Equal(t, 200, code, string(body))
	admin := login(t, dj.HTTP, "admin", password(dj, "admin"))
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, body := get(t, dj.HTTP+"/api/v1/devices/"+other.ID+"/readings/latest", admin)
		require.Equal(t, 200, code, string(body))
		var latest struct {
			Readings []struct {
				ReceiveTime time.Time `json:"receive_time"`
			}
		}
		require.NoError(t, json.Unmarshal(body, &latest))
		fresh := false
		for _, r := range latest.Readings {
			fresh = fresh || r.ReceiveTime.After(after)
		}
		if fresh {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no reading from %s after the hostile input:\n%s", other.ID, out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Maintainers see the flooding sensor, in the API and as an event.
	code, body = get(t, dj.HTTP+"/api/v1/ingest/rate-limited", admin)
	require.Equal(t, 200, code, string(body))
	require.Contains(t, string(body), `"device":"`+flooder.ID+`"`)
	require.Eventually(t, func() bool {
		code, body := get(t, dj.HTTP+"/api/v1/events?type=device.rate_limited", admin)
		return code == 200 && strings.Contains(string(body), flooder.ID)
	}, 30*time.Second, 200*time.Millisecond, "no device.rate_limited event")
	// The refused publish's payload is not in the log.
	require.NotContains(t, out.String(), strings.Repeat("x", 1000))
	require.NotContains(t, out.String(), "ice WARNING")
	require.NotContains(t, out.String(), "pc WARNING")
}
