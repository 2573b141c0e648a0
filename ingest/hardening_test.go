package ingest_test

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/ingest"
)

func needMosquittoClients(t *testing.T) {
	if _, err := exec.LookPath("mosquitto_pub"); err != nil {
		needed(t, "mosquitto_pub (apt-get install mosquitto-clients)")
	}
}

func brokerPort(b *ingest.Broker) string {
	_, port, _ := net.SplitHostPort(b.Addr())
	return port
}

// rawConnect sends an MQTT 3.1.1 CONNECT with a will over a plain socket and returns the
// socket and the CONNACK's return code (or an error if the broker closed without one).
func rawConnect(t *testing.T, addr, clientID, user, pass, willTopic string) (net.Conn, byte, error) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 4,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 30, ClientIdentifier: clientID,
			UsernameFlag: true, Username: []byte(user), PasswordFlag: true, Password: []byte(pass),
			WillFlag: willTopic != "", WillTopic: willTopic, WillPayload: []byte("offline"), WillRetain: true, WillQos: 1}}
	var buf bytes.Buffer
	require.NoError(t, pk.ConnectEncode(&buf))
	_, err = c.Write(buf.Bytes())
	require.NoError(t, err)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	ack := make([]byte, 4)
	if _, err := io.ReadFull(c, ack); err != nil {
		return c, 0, err
	}
	_ = c.SetReadDeadline(time.Time{})
	return c, ack[3], nil
}

// TestWillOnForeignTopicRefused: a device may leave a will only on its own status topic. A
// will on another device's status topic (retained, so it would speak for that device) is
// refused at CONNECT and counted; the device's own will still works and is handed to ingest.
func TestWillOnForeignTopicRefused(t *testing.T) {
	needMosquittoClients(t)
	devs := sensorFleet()
	s := newStack(t, devs, openSQLiteTelemetry(t))
	b := startBroker(t, s, "127.0.0.1:0")

	// As the review did it: mosquitto_pub with --will-topic on gen-1's status topic.
	out, err := exec.Command("mosquitto_pub", "-h", "127.0.0.1", "-p", brokerPort(b), "-V", "mqttv311", "-i", "attacker",
		"-u", "dust-1", "-P", "secret-dust-1", "--will-topic", "offsite/site-1/gen-1/status", "--will-payload", "offline",
		"--will-retain", "--will-qos", "1", "-t", "offsite/site-1/dust-1/up", "-m", "x").CombinedOutput()
	require.Error(t, err, "mosquitto_pub with a foreign will was let in: %s", out)

	// The same with a socket that drops without DISCONNECT, so an accepted will would be sent.
	c, code, err := rawConnect(t, b.Addr(), "attacker-2", "dust-1", "secret-dust-1", "offsite/site-1/gen-1/status")
	if err == nil {
		require.NotEqual(t, byte(0), code, "CONNECT with a foreign will accepted")
	}
	c.Close()
	require.Eventually(t, func() bool { return b.Refused("will_denied") == 2 }, 10*time.Second, 20*time.Millisecond,
		"will_denied = %v", b.Refused("will_denied"))
	time.Sleep(200 * time.Millisecond) // a will, had it been accepted, is sent at once on the drop
	require.Empty(t, b.Server().Topics.Messages("offsite/site-1/gen-1/status"), "a foreign will was retained")

	// The device's own status topic is fine: connected, and its will arrives when it drops.
	c, code, err = rawConnect(t, b.Addr(), "dust-own", "dust-1", "secret-dust-1", "offsite/site-1/dust-1/status")
	require.NoError(t, err)
	require.Equal(t, byte(0), code)
	c.Close()
	require.Eventually(t, func() bool { return len(b.Server().Topics.Messages("offsite/site-1/dust-1/status")) == 1 },
		10*time.Second, 20*time.Millisecond, "own will not retained")
	require.Equal(t, float64(2), b.Refused("will_denied"))
}

// TestDeviceRateLimit: a device flooding its topic is held to the rate limit multiple × its
// profile's normal rate; the rest is dropped, counted for that device and reported once, and
// another device's reading still arrives.
func TestDeviceRateLimit(t *testing.T) {
	needMosquittoClients(t)
	devs := sensorFleet()
	tel := openSQLiteTelemetry(t)
	s := newStack(t, devs, tel)
	var (
		mu      sync.Mutex
		reports []ingest.RateLimitReport
	)
	b := &ingest.Broker{Listen: "127.0.0.1:0", Auth: s.devs, Directory: s.dir, Pipeline: s.pipe, Logger: quietLogger(),
		ConnectRate: 1000, ConnectBurst: 1000, RateMultiple: 10, RateBurst: 20,
		OnRateLimited: func(r ingest.RateLimitReport) { mu.Lock(); reports = append(reports, r); mu.Unlock() }}
	require.NoError(t, b.Initialize())
	t.Cleanup(b.Close)

	// 2,000 messages from dust-1 (normal: one a minute) as fast as mosquitto_pub sends them.
	const n = 2000
	var lines strings.Builder
	base := time.Now().Add(-time.Hour)
	for i := range n {
		lines.Write(dustPayload(base.Add(time.Duration(i)*time.Second), float64(i%100)))
		lines.WriteByte('\n')
	}
	cmd := exec.Command("mosquitto_pub", "-h", "127.0.0.1", "-p", brokerPort(b), "-i", "flood", "-u", "dust-1", "-P", "secret-dust-1",
		"-t", "offsite/site-1/dust-1/up", "-q", "1", "-l")
	cmd.Stdin = strings.NewReader(lines.String())
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))

	// A normal sensor's reading still arrives.
	gen, err := oneShotClient(t, "tcp://"+b.Addr(), "gen-ok", "gen-1", "secret-gen-1")
	require.NoError(t, err)
	require.NoError(t, publish(t, gen, "offsite/site-1/gen-1/up", []byte(`{"values": {"temperature": 21.5}}`)))
	waitFor(t, 20*time.Second, func() (bool, string) {
		s.flush(t, tel)
		for _, r := range mustLatest(t, tel, "gen-1") {
			if r.Metric == "temperature" && r.Value == 21.5 {
				return true, ""
			}
		}
		return false, "gen-1 reading not stored"
	})

	dropped := b.RateDropped("dust-1")
	st := s.pipe.Stats()
	t.Logf("dropped %v, submitted %d", dropped, st.Submitted)
	// At most the burst plus what the rate (10 a minute) refills while mosquitto_pub sends.
	require.GreaterOrEqual(t, dropped, float64(n-100), "dust-1 flood not limited")
	require.Equal(t, float64(0), b.RateDropped("gen-1"))
	require.LessOrEqual(t, st.Submitted, int64(n)-int64(dropped)+1)
	require.Equal(t, dropped, b.Refused(ingest.RefusedDeviceRate))

	stats := b.RateLimited()
	require.Len(t, stats, 1)
	require.Equal(t, "dust-1", stats[0].Device)
	require.Equal(t, "site-1", stats[0].Site)
	require.Equal(t, int64(dropped), stats[0].Dropped)
	require.InDelta(t, 10.0/60, stats[0].Limit, 1e-9)
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(reports) == 1 }, 5*time.Second, 20*time.Millisecond)
	mu.Lock()
	require.Equal(t, "dust-1", reports[0].Device)
	require.Equal(t, time.Minute, reports[0].Interval)
	mu.Unlock()
}

// TestIdleAndExcessConnectionsClosed: a socket that never sends CONNECT is closed after the
// handshake timeout; sockets over the per-address bound are closed at once; both are counted
// and a real device still connects and publishes.
func TestIdleAndExcessConnectionsClosed(t *testing.T) {
	devs := sensorFleet()
	tel := openSQLiteTelemetry(t)
	s := newStack(t, devs, tel)
	b := &ingest.Broker{Listen: "127.0.0.1:0", Auth: s.devs, Directory: s.dir, Pipeline: s.pipe, Logger: quietLogger(),
		ConnectRate: 1000, ConnectBurst: 1000, HandshakeTimeout: 500 * time.Millisecond, MaxConnsPerAddr: 4}
	require.NoError(t, b.Initialize())
	t.Cleanup(b.Close)

	closedByServer := func(c net.Conn, within time.Duration) error {
		_ = c.SetReadDeadline(time.Now().Add(within))
		_, err := c.Read(make([]byte, 1))
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			return fmt.Errorf("still open after %s", within)
		}
		return nil
	}
	idle, err := net.Dial("tcp", b.Addr())
	require.NoError(t, err)
	defer idle.Close()
	require.NoError(t, closedByServer(idle, 15*time.Second), "a socket that never sent CONNECT")
	require.Eventually(t, func() bool { return b.Refused(ingest.RefusedIdle) >= 1 }, 5*time.Second, 20*time.Millisecond)
	// A device that sent its CONNECT stays past the handshake timeout.
	early, err := oneShotClient(t, "tcp://"+b.Addr(), "dust-early", "dust-1", "secret-dust-1")
	require.NoError(t, err)
	time.Sleep(1500 * time.Millisecond) // three handshake timeouts
	require.True(t, early.IsConnected())
	require.NoError(t, publish(t, early, "offsite/site-1/dust-1/up", dustPayload(time.Now().Add(-time.Minute), 41)))
	require.Equal(t, float64(1), b.Refused(ingest.RefusedIdle))

	// Four open sockets from 127.0.0.1 (each sending the start of a CONNECT every so often
	// would not help: the timer stops only at a whole CONNECT); the fifth is closed at once.
	b2 := &ingest.Broker{Listen: "127.0.0.1:0", Auth: s.devs, Directory: s.dir, Pipeline: s.pipe, Logger: quietLogger(),
		ConnectRate: 1000, ConnectBurst: 1000, HandshakeTimeout: time.Minute, MaxConnsPerAddr: 4}
	require.NoError(t, b2.Initialize())
	t.Cleanup(b2.Close)
	var held []net.Conn
	for range 4 {
		c, err := net.Dial("tcp", b2.Addr())
		require.NoError(t, err)
		held = append(held, c)
	}
	extra, err := net.Dial("tcp", b2.Addr())
	require.NoError(t, err)
	defer extra.Close()
	require.NoError(t, closedByServer(extra, 15*time.Second), "the fifth socket from one address")
	require.Equal(t, float64(1), b2.Refused(ingest.RefusedConnLimit))
	for _, c := range held {
		c.Close()
	}
	// Places are given back: a device connects and its reading arrives.
	var dust interface{ IsConnected() bool }
	require.Eventually(t, func() bool {
		c, err := oneShotClient(t, "tcp://"+b2.Addr(), "dust-ok", "dust-1", "secret-dust-1")
		if err != nil {
			return false
		}
		dust = c
		return publish(t, c, "offsite/site-1/dust-1/up", dustPayload(time.Now(), 42)) == nil
	}, 15*time.Second, 100*time.Millisecond)
	require.True(t, dust.IsConnected())
	waitFor(t, 20*time.Second, func() (bool, string) {
		s.flush(t, tel)
		for _, r := range mustLatest(t, tel, "dust-1") {
			if r.Metric == "pm10" && r.Value == 42 {
				return true, ""
			}
		}
		return false, "dust-1 reading not stored"
	})
}

// TestBrokerLogWithoutPayload: refused publishes are logged by the gateway with the reason,
// never with their payload; mochi's lines go through the gateway's structured logger.
func TestBrokerLogWithoutPayload(t *testing.T) {
	var mu sync.Mutex
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), &slog.HandlerOptions{Level: slog.LevelInfo}))
	devs := sensorFleet()
	s := newStack(t, devs, openSQLiteTelemetry(t))
	b := &ingest.Broker{Listen: "127.0.0.1:0", Auth: s.devs, Directory: s.dir, Pipeline: s.pipe, Logger: logger,
		ConnectRate: 1000, ConnectBurst: 1000}
	require.NoError(t, b.Initialize())
	t.Cleanup(b.Close)

	marker := "PAYLOAD-MARKER-"
	big := []byte(strings.Repeat(marker, 200<<10/len(marker)))
	for i := range 3 {
		c, err := oneShotClient(t, "tcp://"+b.Addr(), "refused-"+strconv.Itoa(i), "dust-1", "secret-dust-1")
		require.NoError(t, err)
		_ = publish(t, c, "offsite/site-1/gen-1/up", big)
		c.Disconnect(50)
	}
	require.Eventually(t, func() bool { return b.Refused(ingest.RefusedPublishACL) == 3 }, 10*time.Second, 20*time.Millisecond)
	// A socket that sends garbage instead of CONNECT.
	g, err := net.Dial("tcp", b.Addr())
	require.NoError(t, err)
	_, _ = g.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
	_, _ = g.Read(make([]byte, 1))
	g.Close()
	time.Sleep(200 * time.Millisecond)

	mu.Lock()
	logged := buf.String()
	mu.Unlock()
	require.NotContains(t, logged, marker, "payload in the log")
	require.Less(t, len(logged), 20<<10, "log grew by %d bytes", len(logged))
	require.Contains(t, logged, `"reason":"publish_denied"`)
	for _, line := range strings.Split(strings.TrimSpace(logged), "\n") {
		require.NotContains(t, line, `"msg":""`, "an empty log line from the broker library")
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
