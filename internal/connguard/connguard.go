// Package connguard guards a TCP listener against connections that take a place and do
// nothing: at most PerAddr open connections per remote IP, and a connection whose peer has
// not started speaking the protocol (an MQTT CONNECT, an RTSP request) within Handshake is
// closed. The protocol server says when a connection has started with Started.
package connguard

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Refusal reasons passed to OnRefuse.
const (
	ReasonPerAddr = "conn_limit"     // the address already had PerAddr connections open
	ReasonIdle    = "handshake_idle" // nothing started within Handshake
)

// Listener wraps a net.Listener. Fill the fields before the first Accept.
type Listener struct {
	net.Listener
	// PerAddr bounds open connections per remote IP (0: no bound). A connection over the
	// bound is closed as soon as it is accepted.
	PerAddr int
	// Handshake is how long a connection may stay open before Started is called for it
	// (0: no limit).
	Handshake time.Duration
	// OnRefuse is told of every connection closed by the guard (remote address, reason).
	OnRefuse func(remote, reason string)

	mu     sync.Mutex
	perIP  map[string]int
	byAddr map[string]*conn
	closes int64 // Close calls, also repeated ones (see Sync)
}

// conn states
const (
	pending int32 = iota
	started
	expired
)

type conn struct {
	net.Conn
	l      *Listener
	host   string
	remote string
	state  atomic.Int32
	once   sync.Once

	tmu   sync.Mutex // the timer may fire before Accept has stored it
	timer *time.Timer
}

func (g *conn) stopTimer() {
	g.tmu.Lock()
	if g.timer != nil {
		g.timer.Stop()
	}
	g.tmu.Unlock()
}

// Accept returns the next connection the guard lets through.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		remote := c.RemoteAddr().String()
		host, _, err := net.SplitHostPort(remote)
		if err != nil {
			host = remote
		}
		l.mu.Lock()
		if l.perIP == nil {
			l.perIP = map[string]int{}
			l.byAddr = map[string]*conn{}
		}
		if l.PerAddr > 0 && l.perIP[host] >= l.PerAddr {
			l.mu.Unlock()
			// Counted before the peer can see the close, so a count read after it is exact.
			l.refuse(remote, ReasonPerAddr)
			_ = c.Close()
			continue
		}
		l.perIP[host]++
		g := &conn{Conn: c, l: l, host: host, remote: remote}
		l.byAddr[remote] = g
		l.mu.Unlock()
		if l.Handshake > 0 {
			g.tmu.Lock()
			g.timer = time.AfterFunc(l.Handshake, g.expire)
			g.tmu.Unlock()
		} else {
			g.state.Store(started)
		}
		return g, nil
	}
}

// Started tells the guard that the connection from remote (its RemoteAddr().String()) has
// begun speaking the protocol: the handshake timer stops. Unknown addresses are ignored.
func (l *Listener) Started(remote string) {
	l.mu.Lock()
	g := l.byAddr[remote]
	l.mu.Unlock()
	if g != nil && g.state.CompareAndSwap(pending, started) {
		g.stopTimer()
	}
}

// Open returns the number of connections the guard holds open (for tests and metrics).
func (l *Listener) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.byAddr)
}

func (l *Listener) refuse(remote, reason string) {
	if l.OnRefuse != nil {
		l.OnRefuse(remote, reason)
	}
}

func (g *conn) expire() {
	if g.state.CompareAndSwap(pending, expired) {
		g.l.refuse(g.remote, ReasonIdle)
		_ = g.Close()
	}
}

// Close closes the connection and gives its place back.
func (g *conn) Close() error {
	g.once.Do(func() {
		g.stopTimer()
		g.l.mu.Lock()
		if g.l.perIP[g.host]--; g.l.perIP[g.host] <= 0 {
			delete(g.l.perIP, g.host)
		}
		if g.l.byAddr[g.remote] == g {
			delete(g.l.byAddr, g.remote)
		}
		g.l.mu.Unlock()
	})
	// Every call passes the listener's lock, also the server's own close of a connection the
	// guard closed first, so Sync orders all that a server did before it with what follows.
	g.l.mu.Lock()
	g.l.closes++
	g.l.mu.Unlock()
	return g.Conn.Close()
}

// Sync returns after taking the listener's lock: whatever the protocol server did with a
// connection before closing it (e.g. mochi's connection WaitGroup.Add) happens before what
// the caller does next (the server's shutdown, which waits on that group). Call it before
// stopping the server.
func (l *Listener) Sync() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closes
}
