//go:build linux

package streams

import (
	"encoding/binary"
	"errors"
	"net"
	"testing"
	"time"
)

func rtpPacket(seq uint16, pt byte, marker bool, size int) []byte {
	p := make([]byte, size)
	p[0] = 0x80
	p[1] = pt
	if marker {
		p[1] |= 0x80
	}
	binary.BigEndian.PutUint16(p[2:], seq)
	return p
}

// recvAll reads datagrams until none arrives for quiet.
func recvAll(t *testing.T, c *net.UDPConn, quiet time.Duration) [][]byte {
	t.Helper()
	var got [][]byte
	buf := make([]byte, 2048)
	for {
		_ = c.SetReadDeadline(time.Now().Add(quiet))
		n, _, err := c.ReadFromUDP(buf)
		if err != nil {
			return got
		}
		got = append(got, append([]byte(nil), buf[:n]...))
	}
}

// batchPair returns a receiving socket and a batchConn to send to it, both on loopback.
func batchPair(t *testing.T) (*net.UDPConn, net.PacketConn) {
	t.Helper()
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rx.Close() })
	uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	pc, err := newBatchConn(uc)
	if err != nil {
		t.Fatal(err)
	}
	return rx, pc
}

// A viewer gets a video frame's packets when the frame is complete, all of them, in order,
// each as its own datagram of its own size; control traffic and audio are never held back;
// a frame without a last packet still leaves within the flush delay.
func TestBatchConnSendsFramesWholeAndInOrder(t *testing.T) {
	rx, pc := batchPair(t)
	to := rx.LocalAddr()

	// a frame of 45 packets (more than one GSO group), the last two shorter
	for i := range 44 {
		size := 1200
		if i == 43 {
			size = 700
		}
		if _, err := pc.WriteTo(rtpPacket(uint16(i), 102, false, size), to); err != nil {
			t.Fatal(err)
		}
	}
	if got := recvAll(t, rx, 3*time.Millisecond); len(got) != 0 {
		t.Fatalf("%d packets left before the frame was complete", len(got))
	}
	if _, err := pc.WriteTo(rtpPacket(44, 102, true, 300), to); err != nil {
		t.Fatal(err)
	}
	got := recvAll(t, rx, 50*time.Millisecond)
	if len(got) != 45 {
		t.Fatalf("got %d packets of the frame, want 45", len(got))
	}
	for i, p := range got {
		want := 1200
		switch i {
		case 43:
			want = 700
		case 44:
			want = 300
		}
		if seq := binary.BigEndian.Uint16(p[2:]); int(seq) != i || len(p) != want {
			t.Fatalf("packet %d: seq %d size %d, want seq %d size %d", i, seq, len(p), i, want)
		}
	}

	// STUN (first byte 0) and G.711 audio (payload type 0) go at once and push out what
	// was held before them, in order
	_, _ = pc.WriteTo(rtpPacket(100, 102, false, 1000), to)
	_, _ = pc.WriteTo(rtpPacket(101, 0, false, 172), to)
	got = recvAll(t, rx, 3*time.Millisecond)
	if len(got) != 2 || binary.BigEndian.Uint16(got[0][2:]) != 100 || binary.BigEndian.Uint16(got[1][2:]) != 101 {
		t.Fatalf("audio did not flush the held video packet in order: %d packets", len(got))
	}
	stun := make([]byte, 20)
	stun[1] = 0x01
	_, _ = pc.WriteTo(stun, to)
	if got = recvAll(t, rx, 3*time.Millisecond); len(got) != 1 {
		t.Fatalf("STUN held back: got %d", len(got))
	}

	// a frame whose marker never comes
	for i := range 3 {
		_, _ = pc.WriteTo(rtpPacket(uint16(200+i), 102, false, 1200), to)
	}
	start := time.Now()
	got = recvAll(t, rx, 100*time.Millisecond)
	if len(got) != 3 {
		t.Fatalf("unfinished frame: got %d of 3 packets", len(got))
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("unfinished frame left after %v", d)
	}

	if err := pc.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := pc.WriteTo(rtpPacket(1, 102, true, 100), to); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
}

func TestHoldBack(t *testing.T) {
	for _, c := range []struct {
		name string
		p    []byte
		want bool
	}{
		{"video middle", rtpPacket(1, 102, false, 100), true},
		{"video last", rtpPacket(1, 102, true, 100), false},
		{"pcmu", rtpPacket(1, 0, false, 100), false},
		{"pcma", rtpPacket(1, 8, false, 100), false},
		{"rtcp sender report", append([]byte{0x80, 200}, make([]byte, 26)...), false},
		{"stun", append([]byte{0x00, 0x01}, make([]byte, 18)...), false},
		{"dtls", append([]byte{22, 0xfe}, make([]byte, 20)...), false},
		{"short", []byte{0x80, 102}, false},
	} {
		if got := holdBack(c.p); got != c.want {
			t.Errorf("%s: holdBack = %v, want %v", c.name, got, c.want)
		}
	}
}

// encodeFunc adapts a function to datagramEncoder.
type encodeFunc func(dst []byte) ([]byte, error)

func (f encodeFunc) encodeDatagram(dst []byte) ([]byte, error) { return f(dst) }

// Datagrams encoded straight into the held-back frame (direct SRTP) are held and sent like
// written ones, in order with them; an encoder that fails or writes more than it promised
// gets an error and leaves nothing half-held.
func TestBatchConnWriteEncoded(t *testing.T) {
	rx, pc := batchPair(t)
	defer pc.Close()
	bc := pc.(*batchConn)
	var err error
	to := rx.LocalAddr().(*net.UDPAddr).AddrPort()
	var ref destRef
	encode := func(p []byte) encodeFunc {
		return func(dst []byte) ([]byte, error) { return append(dst, p...), nil }
	}

	if err := bc.writeEncoded(&ref, to, 1216, encodeFunc(func([]byte) ([]byte, error) { return nil, errors.New("no key") })); err == nil {
		t.Fatal("an encoder error must be returned")
	}
	if err := bc.writeEncoded(&ref, to, 100, encode(rtpPacket(0, 102, false, 200))); err == nil {
		t.Fatal("a datagram longer than promised must be refused")
	}
	for i := range 20 {
		p := rtpPacket(uint16(i), 102, i == 19, 1200)
		if i%2 == 0 {
			err = bc.writeEncoded(&ref, to, len(p)+16, encode(p))
		} else {
			_, err = bc.WriteToAddrPort(p, to)
		}
		if err != nil {
			t.Fatal(err)
		}
		if i == 18 {
			if got := recvAll(t, rx, 3*time.Millisecond); len(got) != 0 {
				t.Fatalf("%d packets left before the frame was complete", len(got))
			}
		}
	}
	got := recvAll(t, rx, 50*time.Millisecond)
	if len(got) != 20 {
		t.Fatalf("got %d packets of the frame, want 20", len(got))
	}
	for i, p := range got {
		if seq := binary.BigEndian.Uint16(p[2:]); int(seq) != i || len(p) != 1200 {
			t.Fatalf("packet %d: seq %d, %d bytes", i, seq, len(p))
		}
	}
}

// Viewers on IPv6 get their frames the same way.
func TestBatchConnIPv6(t *testing.T) {
	rx, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Skip("no IPv6 loopback:", err)
	}
	defer rx.Close()
	uc, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Fatal(err)
	}
	pc, err := newBatchConn(uc)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	for i := range 3 {
		if _, err := pc.WriteTo(rtpPacket(uint16(i), 102, i == 2, 1200), rx.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	got := recvAll(t, rx, 50*time.Millisecond)
	if len(got) != 3 {
		t.Fatalf("got %d packets of the frame, want 3", len(got))
	}
}
