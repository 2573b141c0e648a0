package ingest_test

import (
	"encoding/binary"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/ingest"
)

type changes struct {
	mu  sync.Mutex
	all []ingest.PresenceChange
}

func (c *changes) add(x ingest.PresenceChange) { c.mu.Lock(); c.all = append(c.all, x); c.mu.Unlock() }

func (c *changes) last(device string) (ingest.PresenceChange, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out ingest.PresenceChange
	n := 0
	for _, x := range c.all {
		if x.Device == device {
			out = x
			n++
		}
	}
	return out, n
}

// TestPresence: offline after silence, online on data, offline on the status topic (will),
// and a device imported later is watched as soon as the directory reloads.
func TestPresence(t *testing.T) {
	devs := sensorFleet()
	tel := openSQLiteTelemetry(t)
	s := newStack(t, devs, tel)
	var ch changes
	// gas-detector heartbeat is 2m; dust 5m. Factor scales them to a fraction of a second.
	p := &ingest.Presence{Directory: s.dir, Factor: 0.004, Tick: 20 * time.Millisecond, OnChange: ch.add, Logger: quietLogger()}
	require.NoError(t, p.Initialize())
	t.Cleanup(p.Close)
	pipe := &ingest.Pipeline{Directory: s.dir, Sink: tel, Quarantine: s.quar, Presence: p, Logger: quietLogger()}
	require.NoError(t, pipe.Initialize())
	t.Cleanup(pipe.Close)

	// Never sent anything: offline after one heartbeat (5m × 0.004 = 1.2s).
	st, ok := p.State("dust-1")
	require.True(t, ok)
	require.Equal(t, ingest.StateUnknown, st.State)
	require.Eventually(t, func() bool { c, _ := ch.last("dust-1"); return !c.Online && c.Device == "dust-1" }, 5*time.Second, 10*time.Millisecond)

	// Data: online again, with an event.
	pipe.Submit(ingest.Message{Topic: "offsite/site-1/dust-1/up", Payload: dustPayload(time.Now(), 40)})
	require.Eventually(t, func() bool { c, _ := ch.last("dust-1"); return c.Online }, 5*time.Second, 10*time.Millisecond)
	st, _ = p.State("dust-1")
	require.Equal(t, ingest.StateOnline, st.State)

	// The will / status topic says offline: offline at once, not after the heartbeat — the
	// reason says which (a generous deadline: the reason, not the clock, tells the two apart).
	p.Seen("dust-1", time.Now())
	pipe.Submit(ingest.Message{Topic: "offsite/site-1/dust-1/status", Payload: []byte("offline")})
	require.Eventually(t, func() bool {
		c, _ := ch.last("dust-1")
		return !c.Online && c.Reason != "" && c.Reason[:6] == "status"
	}, 5*time.Second, 5*time.Millisecond)

	// Bulk import: a new device is watched once the directory reloads, and goes offline.
	devs.add("site-3", "gas-9", "gas-detector")
	require.NoError(t, s.dir.Refresh(t.Context()))
	require.Eventually(t, func() bool { _, ok := p.State("gas-9"); return ok }, 2*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { c, _ := ch.last("gas-9"); return c.Device == "gas-9" && !c.Online }, 5*time.Second, 10*time.Millisecond)
	_, n := ch.last("gas-9")
	require.Equal(t, 1, n, "one offline event, not one per tick")
}

// TestWillMarksOffline: a device that vanishes without DISCONNECT has its will (status topic
// "offline") sent by the embedded broker, and presence turns it offline at once.
func TestWillMarksOffline(t *testing.T) {
	devs := sensorFleet()
	tel := openSQLiteTelemetry(t)
	s := newStack(t, devs, tel)
	var ch changes
	s.presence.OnChange = ch.add
	b := startBroker(t, s, "127.0.0.1:0")
	c, err := deviceClient(t, "tcp://"+b.Addr(), "dust-1", "secret-dust-1")
	require.NoError(t, err)
	require.NoError(t, publish(t, c, "offsite/site-1/dust-1/up", dustPayload(time.Now(), 40)))
	require.Eventually(t, func() bool { st, _ := s.presence.State("dust-1"); return st.State == ingest.StateOnline }, 5*time.Second, 10*time.Millisecond)
	c.Disconnect(0) // paho's own session ends cleanly: no will; the raw client below dies

	conn, err := net.Dial("tcp", b.Addr())
	require.NoError(t, err)
	_, err = conn.Write(connectWithWill("raw-dust-1", "dust-1", "secret-dust-1", "offsite/site-1/dust-1/status", "offline"))
	require.NoError(t, err)
	ack := make([]byte, 4)
	_, err = io.ReadFull(conn, ack)
	require.NoError(t, err)
	require.Equal(t, byte(0), ack[3], "CONNACK accepted")
	require.NoError(t, conn.Close()) // vanish without DISCONNECT

	require.Eventually(t, func() bool {
		c, _ := ch.last("dust-1")
		return !c.Online && strings.HasPrefix(c.Reason, "status topic")
	}, 5*time.Second, 10*time.Millisecond)
}

// connectWithWill encodes an MQTT 3.1.1 CONNECT with credentials and a retained QoS 1 will.
func connectWithWill(clientID, user, pass, willTopic, willMsg string) []byte {
	str := func(b []byte, s string) []byte { return append(binary.BigEndian.AppendUint16(b, uint16(len(s))), s...) }
	var vh []byte
	vh = str(vh, "MQTT")
	vh = append(vh, 4, 0x80|0x40|0x20|0x08|0x04|0x02, 0, 60)
	vh = str(vh, clientID)
	vh = str(vh, willTopic)
	vh = str(vh, willMsg)
	vh = str(vh, user)
	vh = str(vh, pass)
	out := []byte{0x10}
	for n := len(vh); ; {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		out = append(out, d)
		if n == 0 {
			break
		}
	}
	return append(out, vh...)
}

// TestBrokerStopSendsNoOfflineWill (issue 16 item 4): stopping the gateway closes the
// embedded broker, which drops every device connection; the devices did nothing wrong, so
// their wills do not turn them offline (no device.offline from our own Ctrl-C).
func TestBrokerStopSendsNoOfflineWill(t *testing.T) {
	devs := sensorFleet()
	tel := openSQLiteTelemetry(t)
	s := newStack(t, devs, tel)
	var ch changes
	s.presence.OnChange = ch.add
	b := startBroker(t, s, "127.0.0.1:0")
	conn, err := net.Dial("tcp", b.Addr())
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.Write(connectWithWill("raw-dust-1", "dust-1", "secret-dust-1", "offsite/site-1/dust-1/status", "offline"))
	require.NoError(t, err)
	ack := make([]byte, 4)
	_, err = io.ReadFull(conn, ack)
	require.NoError(t, err)
	require.Equal(t, byte(0), ack[3], "CONNACK accepted")
	s.presence.Seen("dust-1", time.Now())
	require.Equal(t, ingest.StateOnline, func() string { st, _ := s.presence.State("dust-1"); return st.State }())

	b.Close()
	s.pipe.Close() // processes whatever the broker handed over while closing
	st, _ := s.presence.State("dust-1")
	require.Equal(t, ingest.StateOnline, st.State, "reason: %s", st.Reason)
	_, n := ch.last("dust-1")
	require.Zero(t, n)
}
