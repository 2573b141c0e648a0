//go:build linux

package streams

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// batchConn is the WebRTC UDP port's socket. It holds back the packets of a video frame bound
// for one viewer until the frame's last packet (RTP marker bit) and then sends them together,
// in the writing goroutine, with one sendmsg using UDP generic segmentation offload
// (UDP_SEGMENT): one system call per frame and viewer instead of one per packet, which is most
// of the relay's CPU with many viewers. Everything else (STUN, DTLS, RTCP, audio, the last
// packet of a frame) flushes what that viewer has pending and goes at once, so the order per
// viewer is kept and nothing waits for the next frame. A frame whose marker never comes is
// sent by a flusher within flushAfter. Without GSO support in the kernel it sends datagram
// by datagram.
// destRef caches a viewer's queue for writeEncoded.
type destRef struct{ d *destQueue }

type batchConn struct {
	*net.UDPConn
	raw syscall.RawConn

	dests sync.Map // netip.AddrPort → *destQueue; read on every packet, so lock-free
	// held lists the queues that started holding a frame since the flusher last looked (a
	// queue may appear twice), so the flusher need not walk every viewer every few ms
	heldMu  sync.Mutex
	held    []*destQueue
	done    chan struct{}
	wg      sync.WaitGroup
	noGSO   atomic.Bool
	dropped atomic.Uint64
	closed  atomic.Bool
	slabs   sync.Pool // *[]byte of slabSize
}

// destQueue is one viewer's held-back datagrams, back to back in a slab taken from the pool
// for the time they are held (at most one GSO send's worth).
type destQueue struct {
	mu        sync.Mutex
	to        netip.AddrPort
	forgotten atomic.Bool // removed from dests after idleAfter
	slab      *[]byte
	sizes     []int
	// heldSince is when the first held datagram came (unix ns, 0 when nothing is held) and
	// used when the last batch started: read by the flusher without the lock.
	heldSince atomic.Int64
	used      atomic.Int64
	oob       []byte
	bufs      [][]byte
	// one sendmsg's arguments, kept with the queue so that a send allocates nothing
	iov    []unix.Iovec
	msg    unix.Msghdr
	rsa4   unix.RawSockaddrInet4
	rsa6   unix.RawSockaddrInet6
	sendFn func(fd uintptr) bool
	errno  unix.Errno
}

const (
	gsoMaxSegments  = 50 // 50 × 1200 bytes fits gsoMaxBytes; the kernel allows 64
	gsoMaxBytes     = 60000
	batchBufferSize = 1500
	flushAfter      = 10 * time.Millisecond
	idleAfter       = 30 * time.Second
	slabSize        = gsoMaxBytes
)

func newBatchConn(c *net.UDPConn) (net.PacketConn, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	b := &batchConn{UDPConn: c, raw: raw, done: make(chan struct{})}
	b.slabs.New = func() any { s := make([]byte, 0, slabSize); return &s }
	b.wg.Add(1)
	go b.flusher()
	return b, nil
}

// WriteTo sends or holds back a datagram.
func (b *batchConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, errors.New("batchConn: not a UDP address")
	}
	return b.WriteToAddrPort(p, ua.AddrPort())
}

// holdBack reports whether a datagram is an RTP packet that does not end a video frame:
// RTP version 2, not RTCP (payload types 72–76 under RFC 5761 multiplexing), marker bit clear,
// and not a static audio payload type (below 35, e.g. G.711's 0 and 8), whose packets go at once.
func holdBack(p []byte) bool {
	if len(p) < 12 || p[0]>>6 != 2 {
		return false // STUN, DTLS
	}
	if p[1]&0x80 != 0 {
		return false // marker: the frame is complete
	}
	pt := p[1] & 0x7f
	return pt >= 35 && (pt < 72 || pt > 76)
}

// WriteToAddrPort implements ice.AddrPortReaderWriter.
func (b *batchConn) WriteToAddrPort(p []byte, to netip.AddrPort) (int, error) {
	if b.closed.Load() {
		return 0, net.ErrClosed
	}
	if len(p) > batchBufferSize {
		b.flush(b.dest(to))
		return b.UDPConn.WriteToUDPAddrPort(p, to)
	}
	d := b.dest(to)
	d.mu.Lock()
	if d.slab != nil && (len(*d.slab)+len(p) > slabSize || len(d.sizes) == gsoMaxSegments) {
		b.sendLocked(d) // a frame larger than one send goes in parts
	}
	if d.slab == nil {
		now := time.Now().UnixNano()
		d.heldSince.Store(now)
		d.used.Store(now)
		d.slab = b.slabs.Get().(*[]byte)
	}
	*d.slab = append(*d.slab, p...)
	d.sizes = append(d.sizes, len(p))
	if !holdBack(p) {
		b.sendLocked(d)
	} else if len(d.sizes) == 1 {
		b.noteHeld(d)
	}
	d.mu.Unlock()
	return len(p), nil
}

// noteHeld tells the flusher that d holds a frame now.
func (b *batchConn) noteHeld(d *destQueue) {
	b.heldMu.Lock()
	b.held = append(b.held, d)
	b.heldMu.Unlock()
}

// writeEncoded is WriteToAddrPort for a datagram that e encodes straight into the held-back
// frame (direct SRTP: encrypted into the send buffer instead of a scratch buffer first).
// ref remembers the viewer's queue between calls (it is looked up again when the address
// changed or the flusher forgot the queue).
func (b *batchConn) writeEncoded(ref *destRef, to netip.AddrPort, maxLen int, e datagramEncoder) error {
	if b.closed.Load() {
		return net.ErrClosed
	}
	if maxLen > batchBufferSize {
		out, err := e.encodeDatagram(nil)
		if err != nil {
			return err
		}
		_, err = b.WriteToAddrPort(out, to)
		return err
	}
	d := ref.d
	if d == nil || d.to != to || d.forgotten.Load() {
		d = b.dest(to)
		ref.d = d
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.slab != nil && (len(*d.slab)+maxLen > slabSize || len(d.sizes) == gsoMaxSegments) {
		b.sendLocked(d)
	}
	if d.slab == nil {
		now := time.Now().UnixNano()
		d.heldSince.Store(now)
		d.used.Store(now)
		d.slab = b.slabs.Get().(*[]byte)
	}
	start := len(*d.slab)
	out, err := e.encodeDatagram((*d.slab)[start : start : start+maxLen])
	if err == nil && len(out) > maxLen {
		err = fmt.Errorf("batchConn: encoded datagram of %d bytes, more than the %d promised", len(out), maxLen)
	}
	if err != nil {
		if len(d.sizes) == 0 {
			b.sendLocked(d) // nothing held: the slab goes back to the pool
		}
		return err
	}
	if len(out) > 0 && unsafe.SliceData(out) != unsafe.SliceData((*d.slab)[start:start+1]) {
		copy((*d.slab)[start:start+len(out)], out) // encoded elsewhere after all
	}
	*d.slab = (*d.slab)[:start+len(out)]
	d.sizes = append(d.sizes, len(out))
	if !holdBack(out) {
		b.sendLocked(d)
	} else if len(d.sizes) == 1 {
		b.noteHeld(d)
	}
	return nil
}

func (b *batchConn) dest(to netip.AddrPort) *destQueue {
	if d, ok := b.dests.Load(to); ok {
		return d.(*destQueue)
	}
	d, _ := b.dests.LoadOrStore(to, newDestQueue(to))
	return d.(*destQueue)
}

func newDestQueue(to netip.AddrPort) *destQueue {
	d := &destQueue{to: to, oob: make([]byte, unix.CmsgSpace(2)), iov: make([]unix.Iovec, 0, gsoMaxSegments)}
	a := to.Addr()
	if a.Is4() || a.Is4In6() {
		d.rsa4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: a.Unmap().As4()}
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&d.rsa4.Port))[:], to.Port())
		d.msg.Name, d.msg.Namelen = (*byte)(unsafe.Pointer(&d.rsa4)), unix.SizeofSockaddrInet4
	} else {
		d.rsa6 = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: a.As16()}
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&d.rsa6.Port))[:], to.Port())
		d.msg.Name, d.msg.Namelen = (*byte)(unsafe.Pointer(&d.rsa6)), unix.SizeofSockaddrInet6
	}
	d.sendFn = func(fd uintptr) bool {
		_, _, e := unix.Syscall(unix.SYS_SENDMSG, fd, uintptr(unsafe.Pointer(&d.msg)), 0)
		d.errno = e
		return e != unix.EAGAIN
	}
	return d
}

func (b *batchConn) flush(d *destQueue) {
	d.mu.Lock()
	b.sendLocked(d)
	d.mu.Unlock()
}

// sendLocked sends what d holds; d.mu is held.
func (b *batchConn) sendLocked(d *destQueue) {
	if d.slab == nil {
		return
	}
	if len(d.sizes) > 0 {
		b.sendTo(d)
	}
	d.sizes = d.sizes[:0]
	*d.slab = (*d.slab)[:0]
	b.slabs.Put(d.slab)
	d.slab = nil
	d.heldSince.Store(0)
}

// flusher sends frames whose last packet never came, and forgets departed viewers.
func (b *batchConn) flusher() {
	defer b.wg.Done()
	tick := time.NewTicker(flushAfter / 2)
	defer tick.Stop()
	lastSweep := time.Now()
	var list []*destQueue
	for {
		select {
		case <-b.done:
			return
		case t := <-tick.C:
			now := t.UnixNano()
			b.heldMu.Lock()
			list, b.held = b.held, list[:0]
			b.heldMu.Unlock()
			for _, d := range list {
				hs := d.heldSince.Load()
				if hs == 0 {
					continue // sent since (or listed twice)
				}
				if now-hs < int64(flushAfter) {
					b.noteHeld(d) // not due yet: look again next tick
					continue
				}
				d.mu.Lock()
				if hs := d.heldSince.Load(); hs != 0 && now-hs >= int64(flushAfter) {
					b.sendLocked(d)
				}
				d.mu.Unlock()
			}
			clear(list) // do not keep departed viewers' queues alive
			if t.Sub(lastSweep) > idleAfter {
				lastSweep = t
				b.dests.Range(func(k, v any) bool {
					if d := v.(*destQueue); d.heldSince.Load() == 0 && now-d.used.Load() > int64(idleAfter) {
						if b.dests.CompareAndDelete(k, d) {
							d.forgotten.Store(true)
						}
					}
					return true
				})
			}
		}
	}
}

// Dropped counts datagrams the kernel refused to send.
func (b *batchConn) Dropped() uint64 { return b.dropped.Load() }

// ReadFromAddrPort implements ice.AddrPortReaderWriter.
func (b *batchConn) ReadFromAddrPort(p []byte) (int, netip.AddrPort, error) {
	return b.UDPConn.ReadFromUDPAddrPort(p)
}

func (b *batchConn) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	close(b.done)
	b.wg.Wait()
	return b.UDPConn.Close()
}

// sendTo sends d's datagrams in order, in GSO groups of equal-size segments (the last of a
// group may be shorter). d.mu is held.
func (b *batchConn) sendTo(d *destQueue) {
	sizes, off, slab := d.sizes, 0, *d.slab
	for i := 0; i < len(sizes); {
		seg := sizes[i]
		j, total := i, 0
		bufs := d.bufs[:0]
		for j < len(sizes) && len(bufs) < gsoMaxSegments && total+sizes[j] <= gsoMaxBytes && !b.noGSO.Load() {
			if sizes[j] > seg {
				break
			}
			bufs = append(bufs, slab[off+total:off+total+sizes[j]])
			total += sizes[j]
			j++
			if sizes[j-1] < seg {
				break // a shorter segment ends the group
			}
		}
		d.bufs = bufs[:0]
		if len(bufs) > 1 {
			if err := b.sendmsg(d, bufs, gsoOOB(d.oob, seg)); err == nil {
				i, off = j, off+total
				continue
			} else if errors.Is(err, unix.EIO) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOPROTOOPT) || errors.Is(err, unix.EOPNOTSUPP) {
				b.noGSO.Store(true) // kernel without UDP GSO: datagram by datagram from now on
			} else {
				b.dropped.Add(uint64(len(bufs))) // a send error on UDP is a lost datagram, as on any network
				i, off = j, off+total
				continue
			}
		}
		if b.sendmsg(d, append(d.bufs[:0], slab[off:off+sizes[i]]), nil) != nil {
			b.dropped.Add(1)
		}
		off += sizes[i]
		i++
	}
}

// sendmsg sends bufs as one message to d's address, with oob as control data (the GSO
// segment size) if set; d.mu is held.
func (b *batchConn) sendmsg(d *destQueue, bufs [][]byte, oob []byte) error {
	d.iov = d.iov[:0]
	for _, p := range bufs {
		v := unix.Iovec{Base: unsafe.SliceData(p)}
		v.SetLen(len(p))
		d.iov = append(d.iov, v)
	}
	d.msg.Iov = unsafe.SliceData(d.iov)
	d.msg.SetIovlen(len(d.iov))
	d.msg.Control = nil
	d.msg.SetControllen(0)
	if len(oob) > 0 {
		d.msg.Control = unsafe.SliceData(oob)
		d.msg.SetControllen(len(oob))
	}
	err := b.raw.Write(d.sendFn)
	clear(d.iov) // do not keep the slab reachable through the iovecs
	d.msg.Iov, d.msg.Control = nil, nil
	if err != nil {
		return err
	}
	if d.errno != 0 {
		return d.errno
	}
	return nil
}

func gsoOOB(oob []byte, seg int) []byte {
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level = unix.SOL_UDP
	h.Type = unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	binary.NativeEndian.PutUint16(oob[unix.CmsgLen(0):], uint16(seg))
	return oob
}
