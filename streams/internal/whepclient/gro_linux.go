//go:build linux

package whepclient

import (
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/transport/v5"
	"golang.org/x/sys/unix"
)

// groConn receives with UDP generic receive offload: a burst the relay sent to this viewer as
// one GSO datagram train arrives as one buffer that is split here. On loopback the kernel
// would otherwise cut the train into datagrams in the sender's system call, charging the
// viewers' receive work to the relay; with GRO each side pays for its own work, as with a
// network card between them.
type groConn struct {
	transport.UDPConn
	udp     *net.UDPConn
	buf     []byte
	oob     []byte
	pending []byte
	seg     int
	from    netip.AddrPort
	// tap, when set, takes the RTP packets (not RTCP, STUN or DTLS) instead of pion: their
	// headers are in the clear, so a viewer can count frames and losses without decrypting.
	tap atomic.Pointer[func(rtp []byte, at time.Time)]
}

// conns are the viewers' sockets by local port, for tapFor.
var conns sync.Map

// tapFor makes the socket bound to local port hand its RTP packets to fn from now on.
func tapFor(port int, fn func(rtp []byte, at time.Time)) bool {
	v, ok := conns.Load(port)
	if !ok {
		return false
	}
	v.(*groConn).tap.Store(&fn)
	return true
}

func (g *groConn) Close() error {
	if a, ok := g.udp.LocalAddr().(*net.UDPAddr); ok {
		conns.CompareAndDelete(a.Port, g)
	}
	return g.UDPConn.Close()
}

func withGRO(c transport.UDPConn) transport.UDPConn {
	udp, ok := c.(*net.UDPConn)
	if !ok {
		return c
	}
	raw, err := udp.SyscallConn()
	if err != nil {
		return c
	}
	var serr error
	if err := raw.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_GRO, 1) }); err != nil || serr != nil {
		return c
	}
	g := &groConn{UDPConn: c, udp: udp, buf: make([]byte, 65536), oob: make([]byte, unix.CmsgSpace(4))}
	if a, ok := udp.LocalAddr().(*net.UDPAddr); ok {
		conns.Store(a.Port, g)
	}
	return g
}

// isRTP: RTP version 2 and not an RTCP payload type (RFC 5761).
func isRTP(p []byte) bool {
	return len(p) >= 12 && p[0]>>6 == 2 && (p[1]&0x7f < 72 || p[1]&0x7f > 76)
}

// ReadFromAddrPort returns the next datagram (ice.AddrPortReaderWriter).
func (g *groConn) ReadFromAddrPort(p []byte) (int, netip.AddrPort, error) {
	for {
		n, from, err := g.next(p)
		if err != nil {
			return n, from, err
		}
		if tap := g.tap.Load(); tap != nil && isRTP(p[:n]) {
			(*tap)(p[:n], time.Now())
			continue
		}
		return n, from, nil
	}
}

func (g *groConn) next(p []byte) (int, netip.AddrPort, error) {
	if len(g.pending) == 0 {
		n, oobn, _, from, err := g.udp.ReadMsgUDPAddrPort(g.buf, g.oob)
		if err != nil {
			return 0, from, err
		}
		g.pending, g.seg, g.from = g.buf[:n], n, from
		if msgs, err := unix.ParseSocketControlMessage(g.oob[:oobn]); err == nil {
			for _, m := range msgs {
				if m.Header.Level == unix.SOL_UDP && m.Header.Type == unix.UDP_GRO && len(m.Data) >= 2 {
					if len(m.Data) >= 4 {
						g.seg = int(binary.NativeEndian.Uint32(m.Data))
					} else {
						g.seg = int(binary.NativeEndian.Uint16(m.Data))
					}
				}
			}
		}
		if g.seg <= 0 {
			g.seg = n
		}
	}
	k := min(g.seg, len(g.pending))
	n := copy(p, g.pending[:k])
	g.pending = g.pending[k:]
	return n, g.from, nil
}

// WriteToAddrPort sends one datagram (ice.AddrPortReaderWriter).
func (g *groConn) WriteToAddrPort(p []byte, to netip.AddrPort) (int, error) {
	return g.udp.WriteToUDPAddrPort(p, to)
}

func (g *groConn) ReadFrom(p []byte) (int, net.Addr, error) {
	n, from, err := g.ReadFromAddrPort(p)
	if err != nil {
		return n, nil, err
	}
	return n, net.UDPAddrFromAddrPort(from), nil
}
