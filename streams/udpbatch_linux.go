//go:build linux

package streams

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// batchConn is the WebRTC UDP port's socket. Viewers' writes are queued and sent by one
// goroutine that groups the datagrams bound for the same viewer into one sendmsg with UDP
// generic segmentation offload (UDP_SEGMENT): the packets of one video frame to one viewer
// cost one system call instead of ten, which is most of the relay's CPU with many viewers.
// Without GSO support in the kernel it sends datagram by datagram.
type batchConn struct {
	*net.UDPConn
	raw syscall.RawConn

	shards  []*sendShard // a destination always uses the same shard, so its order is kept
	done    chan struct{}
	wg      sync.WaitGroup
	noGSO   atomic.Bool
	dropped atomic.Uint64
	pool    sync.Pool
	closeMu sync.Mutex
}

// sendShard is one writer goroutine with its queue; several let the kernel's per-datagram
// work (on loopback it includes the receiver's) use more than one core.
type sendShard struct {
	b       *batchConn
	mu      sync.Mutex
	drained *sync.Cond // signalled when the writer takes the queue
	queue   []outDatagram
	spare   []outDatagram
	wake    chan struct{}
}

type outDatagram struct {
	buf  *[]byte
	to   netip.AddrPort
	size int
}

const (
	batchQueueMax   = 8192 // datagrams; beyond this, writers wait (backpressure to the viewers' own queues)
	gsoMaxSegments  = 40
	gsoMaxBytes     = 60000
	batchBufferSize = 1500
)

func newBatchConn(c *net.UDPConn) (net.PacketConn, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	b := &batchConn{UDPConn: c, raw: raw, done: make(chan struct{})}
	b.pool.New = func() any { s := make([]byte, batchBufferSize); return &s }
	n := min(max(runtime.GOMAXPROCS(0), 2), 8)
	for range n {
		sh := &sendShard{b: b, wake: make(chan struct{}, 1)}
		sh.drained = sync.NewCond(&sh.mu)
		b.shards = append(b.shards, sh)
		b.wg.Add(1)
		go sh.run()
	}
	return b, nil
}

// WriteTo queues a datagram. When the queue is full it waits for the writer, so that a burst
// (a keyframe to hundreds of viewers at once) slows the viewers' sessions — whose own bounded
// queues then drop and resync per viewer — instead of losing packets here.
func (b *batchConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, errors.New("batchConn: not a UDP address")
	}
	return b.WriteToAddrPort(p, ua.AddrPort())
}

// WriteToAddrPort implements ice.AddrPortReaderWriter.
func (b *batchConn) WriteToAddrPort(p []byte, to netip.AddrPort) (int, error) {
	if len(p) > batchBufferSize {
		return b.UDPConn.WriteToUDPAddrPort(p, to)
	}
	buf := b.pool.Get().(*[]byte)
	n := copy(*buf, p)
	a16 := to.Addr().As16()
	h := uint32(to.Port()) ^ uint32(a16[12])<<8 ^ uint32(a16[13])<<16 ^ uint32(a16[14])<<24 ^ uint32(a16[15])
	sh := b.shards[h%uint32(len(b.shards))]
	sh.mu.Lock()
	for {
		select {
		case <-b.done:
			sh.mu.Unlock()
			b.pool.Put(buf)
			return 0, net.ErrClosed
		default:
		}
		if len(sh.queue) < batchQueueMax/len(b.shards) {
			break
		}
		sh.drained.Wait()
	}
	sh.queue = append(sh.queue, outDatagram{buf: buf, to: to, size: n})
	first := len(sh.queue) == 1
	sh.mu.Unlock()
	if first {
		select {
		case sh.wake <- struct{}{}:
		default:
		}
	}
	return len(p), nil
}

// Dropped counts datagrams the kernel refused to send.
func (b *batchConn) Dropped() uint64 { return b.dropped.Load() }

// ReadFromAddrPort implements ice.AddrPortReaderWriter.
func (b *batchConn) ReadFromAddrPort(p []byte) (int, netip.AddrPort, error) {
	return b.UDPConn.ReadFromUDPAddrPort(p)
}

func (b *batchConn) Close() error {
	b.closeMu.Lock()
	select {
	case <-b.done:
	default:
		close(b.done)
	}
	b.closeMu.Unlock()
	for _, sh := range b.shards {
		sh.mu.Lock()
		sh.drained.Broadcast()
		sh.mu.Unlock()
	}
	b.wg.Wait()
	return b.UDPConn.Close()
}

func (sh *sendShard) run() {
	b := sh.b
	defer b.wg.Done()
	var byDest map[netip.AddrPort][]outDatagram
	var order []netip.AddrPort
	oob := make([]byte, unix.CmsgSpace(2))
	for {
		select {
		case <-b.done:
			return
		case <-sh.wake:
		}
		sh.mu.Lock()
		batch := sh.queue
		sh.queue, sh.spare = sh.spare[:0], batch
		sh.drained.Broadcast()
		sh.mu.Unlock()
		if len(batch) == 0 {
			continue
		}
		if byDest == nil {
			byDest = make(map[netip.AddrPort][]outDatagram)
		}
		// per destination, in order; destinations in order of first appearance
		order = order[:0]
		for _, d := range batch {
			l := byDest[d.to]
			if len(l) == 0 {
				order = append(order, d.to)
			}
			byDest[d.to] = append(l, d)
		}
		for _, to := range order {
			b.sendTo(to, byDest[to], oob)
			byDest[to] = byDest[to][:0]
		}
		if len(byDest) > 1024 {
			byDest = nil // forget departed viewers
		}
		for i := range batch {
			b.pool.Put(batch[i].buf)
			batch[i] = outDatagram{}
		}
		// more may have queued while sending
		sh.mu.Lock()
		more := len(sh.queue) > 0
		sh.mu.Unlock()
		if more {
			select {
			case sh.wake <- struct{}{}:
			default:
			}
		}
	}
}

// sendTo sends one destination's datagrams, in GSO groups of equal-size segments (the last of
// a group may be shorter).
func (b *batchConn) sendTo(to netip.AddrPort, ds []outDatagram, oob []byte) {
	sa := sockaddr(to)
	var bufs [][]byte
	for i := 0; i < len(ds); {
		seg := ds[i].size
		j, total := i, 0
		bufs = bufs[:0]
		for j < len(ds) && len(bufs) < gsoMaxSegments && total+ds[j].size <= gsoMaxBytes && !b.noGSO.Load() {
			if ds[j].size > seg {
				break
			}
			bufs = append(bufs, (*ds[j].buf)[:ds[j].size])
			total += ds[j].size
			j++
			if ds[j-1].size < seg {
				break // a shorter segment ends the group
			}
		}
		if len(bufs) > 1 {
			if err := b.sendmsg(bufs, gsoOOB(oob, seg), sa); err == nil {
				i = j
				continue
			} else if errors.Is(err, unix.EIO) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOPROTOOPT) || errors.Is(err, unix.EOPNOTSUPP) {
				b.noGSO.Store(true) // kernel without UDP GSO: datagram by datagram from now on
			} else {
				b.dropped.Add(uint64(len(bufs))) // a send error on UDP is a lost datagram, as on any network
				i = j
				continue
			}
		}
		if b.sendmsg([][]byte{(*ds[i].buf)[:ds[i].size]}, nil, sa) != nil {
			b.dropped.Add(1)
		}
		i++
	}
}

func (b *batchConn) sendmsg(bufs [][]byte, oob []byte, sa unix.Sockaddr) error {
	var serr error
	err := b.raw.Write(func(fd uintptr) bool {
		_, serr = unix.SendmsgBuffers(int(fd), bufs, oob, sa, 0)
		return serr != unix.EAGAIN
	})
	if err != nil {
		return err
	}
	return serr
}

func gsoOOB(oob []byte, seg int) []byte {
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level = unix.SOL_UDP
	h.Type = unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	binary.NativeEndian.PutUint16(oob[unix.CmsgLen(0):], uint16(seg))
	return oob
}

func sockaddr(ap netip.AddrPort) unix.Sockaddr {
	a := ap.Addr()
	if a.Is4() || a.Is4In6() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: a.Unmap().As4()}
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: a.As16()}
}
