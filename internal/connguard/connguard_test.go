package connguard_test

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/internal/connguard"
)

// serve accepts on g and keeps every accepted connection until the test ends, marking it
// started when start is true.
func serve(t *testing.T, g *connguard.Listener, start bool) {
	go func() {
		for {
			c, err := g.Accept()
			if err != nil {
				return
			}
			if start {
				g.Started(c.RemoteAddr().String())
			}
			go func() { _, _ = c.Read(make([]byte, 1)); c.Close() }()
		}
	}()
}

func closedByPeer(t *testing.T, c net.Conn, within time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(within))
	_, err := c.Read(make([]byte, 1))
	ne, ok := err.(net.Error)
	return !(ok && ne.Timeout())
}

func TestHandshakeAndPerAddr(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var mu sync.Mutex
	reasons := map[string]int{}
	g := &connguard.Listener{Listener: ln, PerAddr: 2, Handshake: 300 * time.Millisecond,
		OnRefuse: func(_, r string) { mu.Lock(); reasons[r]++; mu.Unlock() }}
	defer g.Close()
	serve(t, g, false)

	a, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer a.Close()
	require.True(t, closedByPeer(t, a, 10*time.Second), "not started: closed after the handshake time")

	b1, _ := net.Dial("tcp", ln.Addr().String())
	b2, _ := net.Dial("tcp", ln.Addr().String())
	b3, _ := net.Dial("tcp", ln.Addr().String())
	defer b1.Close()
	defer b2.Close()
	defer b3.Close()
	require.True(t, closedByPeer(t, b3, 10*time.Second), "third from one address")
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return reasons[connguard.ReasonPerAddr] == 1 },
		5*time.Second, 10*time.Millisecond)
	// b1 and b2 expire too, and give their places back.
	require.True(t, closedByPeer(t, b1, 10*time.Second))
	require.True(t, closedByPeer(t, b2, 10*time.Second))
	require.Eventually(t, func() bool { return g.Open() == 0 }, 5*time.Second, 10*time.Millisecond)
}

func TestStartedConnectionStays(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	g := &connguard.Listener{Listener: ln, PerAddr: 1, Handshake: 100 * time.Millisecond}
	defer g.Close()
	serve(t, g, true)
	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	require.False(t, closedByPeer(t, c, 500*time.Millisecond), "a started connection was closed")
	require.Equal(t, 1, g.Open())
}
