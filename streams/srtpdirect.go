package streams

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/pion/dtls/v3"
	"github.com/pion/dtls/v3/pkg/crypto/prf"
	"github.com/pion/dtls/v3/pkg/protocol/extension"
	"github.com/pion/dtls/v3/pkg/protocol/handshake"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"
)

// Direct SRTP: a session's media packets are encrypted by the session itself and handed
// straight to the WebRTC UDP port, addressed to the viewer's selected ICE candidate, instead of
// passing through pion's track, SRTP session, mux endpoint and ICE candidate layers (locks, a
// clock read and several interface calls per packet, about a fifth of the relay's CPU with
// hundreds of viewers). Only the media path changes: ICE checks, DTLS, RTCP (sender reports,
// the viewers' receiver reports) and a viewer over ICE-TCP stay with pion.
//
// pion does not hand out a session's SRTP keys, so the session derives them as pion does
// (RFC 5764 §4.2: the TLS exporter with label "EXTRACTOR-dtls_srtp") from what the DTLS
// handshake hands to public hooks: the master secret and client random through the key-log
// writer, the server random, cipher suite and SRTP profile from the ServerHello, which the
// relay sends because it answers as the DTLS server. The secrets stay in the session's memory,
// are wiped once the keys are derived, and are never written anywhere. If anything is missing
// (an unusual role, suite or profile), or the viewer's pair is not on the relay's UDP port
// when it connects (ICE-TCP), the session uses pion's path instead.
//
// Either way a session has one SRTP sender for its whole life: the direct path or pion's, never
// both one after the other. Moving a stream between them would mean handing its SRTP state
// (the rollover counter) to pion, whose SRTP session is not reachable through its API. So a
// direct session whose pair moves off the UDP port ends ("ICE path changed"); its player
// reconnects and starts at once from the cached keyframe. A pion session whose pair moves to
// UDP stays with pion, which can send there too.

// dtlsSecrets collects one session's handshake secrets; it is the session's DTLS key-log
// writer and ServerHello hook.
type dtlsSecrets struct {
	mu           sync.Mutex
	clientRandom []byte
	masterSecret []byte
	serverRandom []byte
	suite        uint16
	profile      srtp.ProtectionProfile
}

// Write takes a key-log line, "CLIENT_RANDOM <client random hex> <master secret hex>\n"
// (NSS key log format, written once per handshake).
func (d *dtlsSecrets) Write(p []byte) (int, error) {
	f := bytes.Fields(p)
	if len(f) != 3 || string(f[0]) != "CLIENT_RANDOM" {
		return len(p), nil
	}
	cr, err1 := hex.DecodeString(string(f[1]))
	ms, err2 := hex.DecodeString(string(f[2]))
	if err1 != nil || err2 != nil {
		return len(p), nil
	}
	d.mu.Lock()
	wipe(d.masterSecret)
	d.clientRandom, d.masterSecret = cr, ms
	d.mu.Unlock()
	return len(p), nil
}

// serverHello records what the relay's ServerHello chose and sends it unchanged.
func (d *dtlsSecrets) serverHello(m handshake.MessageServerHello) handshake.Message {
	r := m.Random.MarshalFixed()
	d.mu.Lock()
	d.serverRandom = r[:]
	d.suite, d.profile = 0, 0
	if m.CipherSuiteID != nil {
		d.suite = *m.CipherSuiteID
	}
	for _, e := range m.Extensions {
		if u, ok := e.(*extension.UseSRTP); ok && len(u.ProtectionProfiles) == 1 {
			d.profile = srtp.ProtectionProfile(u.ProtectionProfiles[0])
		}
	}
	d.mu.Unlock()
	return &m
}

// prfHash is the PRF hash of the cipher suites pion's DTLS can negotiate (TLS 1.2: SHA-256
// unless the suite names SHA-384).
func prfHash(suite uint16) func() hash.Hash {
	switch dtls.CipherSuiteID(suite) {
	case dtls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, dtls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384:
		return sha512.New384
	case dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, dtls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		dtls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, dtls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		dtls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, dtls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
		dtls.TLS_ECDHE_ECDSA_WITH_AES_128_CCM, dtls.TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8:
		return sha256.New
	}
	return nil
}

// ExportKeyingMaterial is the TLS 1.2 exporter (RFC 5705) of the captured handshake.
func (d *dtlsSecrets) ExportKeyingMaterial(label string, context []byte, length int) ([]byte, error) {
	if len(context) != 0 {
		return nil, errors.New("direct srtp: exporter context not supported")
	}
	h := prfHash(d.suite)
	if h == nil {
		return nil, fmt.Errorf("direct srtp: cipher suite %#04x not known", d.suite)
	}
	seed := make([]byte, 0, len(label)+len(d.clientRandom)+len(d.serverRandom))
	seed = append(append(append(seed, label...), d.clientRandom...), d.serverRandom...)
	return prf.PHash(d.masterSecret, seed, length, h)
}

// sealer derives the relay's outbound SRTP keys and wipes the secrets.
func (d *dtlsSecrets) sealer() (rtpSealer, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	defer func() { wipe(d.masterSecret); d.masterSecret = nil }()
	if len(d.masterSecret) == 0 || len(d.clientRandom) != handshake.RandomLength || len(d.serverRandom) != handshake.RandomLength {
		return nil, errors.New("direct srtp: handshake secrets not seen (the relay was not the DTLS server)")
	}
	switch d.profile {
	case srtp.ProtectionProfileAeadAes128Gcm, srtp.ProtectionProfileAeadAes256Gcm,
		srtp.ProtectionProfileAes128CmHmacSha1_80, srtp.ProtectionProfileAes128CmHmacSha1_32:
	default:
		return nil, fmt.Errorf("direct srtp: SRTP profile %#04x not supported", uint16(d.profile))
	}
	cfg := srtp.Config{Profile: d.profile}
	if err := cfg.ExtractSessionKeysFromDTLS(d, false); err != nil {
		return nil, err
	}
	defer wipe(cfg.Keys.LocalMasterKey)
	defer wipe(cfg.Keys.RemoteMasterKey)
	if d.profile == srtp.ProtectionProfileAeadAes128Gcm || d.profile == srtp.ProtectionProfileAeadAes256Gcm {
		return newGCMSealer(cfg.Keys.LocalMasterKey, cfg.Keys.LocalMasterSalt)
	}
	ctx, err := srtp.CreateContext(cfg.Keys.LocalMasterKey, cfg.Keys.LocalMasterSalt, d.profile)
	if err != nil {
		return nil, err
	}
	return &contextSealer{ctx: ctx}, nil
}

func wipe(b []byte) {
	for i := range b {
		b[i] = 0
	}
}

// boundTrack is pion's static RTP track that also remembers what pion bound it to (SSRC and
// payload type), which the direct path writes into its packets.
type boundTrack struct {
	*webrtc.TrackLocalStaticRTP
	ssrc  atomic.Uint32
	pt    atomic.Uint32
	bound atomic.Bool
}

func newBoundTrack(c webrtc.RTPCodecCapability, id, streamID string) (*boundTrack, error) {
	t, err := webrtc.NewTrackLocalStaticRTP(c, id, streamID)
	if err != nil {
		return nil, err
	}
	return &boundTrack{TrackLocalStaticRTP: t}, nil
}

// Bind implements webrtc.TrackLocal.
func (t *boundTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	c, err := t.TrackLocalStaticRTP.Bind(ctx)
	if err == nil {
		t.ssrc.Store(uint32(ctx.SSRC()))
		t.pt.Store(uint32(c.PayloadType))
		t.bound.Store(true)
	}
	return c, err
}

// addrPortWriter is the WebRTC UDP port (batchConn or *net.UDPConn).
type addrPortWriter interface {
	WriteToAddrPort(p []byte, to netip.AddrPort) (int, error)
}

// directWriter encrypts and sends one session's media packets (session goroutine or its
// fan-out group, under the session's sendMu), except dst and owns, which the ICE agent's
// callback reads and updates when the selected candidate pair changes.
type directWriter struct {
	sealer rtpSealer
	conn   addrPortWriter
	dst    atomic.Pointer[netip.AddrPort] // nil: no UDP pair on the relay's port selected
	// owns: the session's media are sealed here for the rest of its life. From then on a pair
	// the writer cannot reach ends the session: the viewer's SRTP state (the rollover counter
	// above all) lives in this sealer, and pion's context, which has never sealed a packet of
	// these streams, cannot take over.
	owns atomic.Bool
	enc  []byte
	ref  destRef // the UDP port's queue for dst
	hdr  rtp.Header
	// the packet being written
	pkt  *rtp.Packet
	ssrc uint32
	pt   uint8
	idx  uint64 // SRTP packet index: rollover counter << 16 | sequence number
}

// errPathChanged: the viewer's selected ICE pair left the relay's UDP port (e.g. for ICE-TCP)
// while the session sealed its media itself; the session ends and the player reconnects.
var errPathChanged = errors.New("ICE path changed: the viewer's selected candidate pair left the relay's UDP port")

// setPair points the writer at a newly selected candidate pair and reports whether the writer
// can reach it: a UDP pair on the relay's port can be; anything else (ICE-TCP) only by pion.
func (d *directWriter) setPair(p *webrtc.ICECandidatePair) bool {
	if p == nil || p.Local == nil || p.Remote == nil || p.Local.Protocol != webrtc.ICEProtocolUDP {
		d.dst.Store(nil)
		return false
	}
	ip, err := netip.ParseAddr(p.Remote.Address)
	if err != nil {
		d.dst.Store(nil) // an unresolved name; only pion knows where it goes
		return false
	}
	ap := netip.AddrPortFrom(ip.Unmap(), p.Remote.Port)
	d.dst.Store(&ap)
	return true
}

// write sends p with the given SSRC, payload type and SRTP packet index (whose low 16 bits
// are the sequence number); errPathChanged when no directly writable pair is selected.
func (d *directWriter) write(p *rtp.Packet, ssrc uint32, pt uint8, idx uint64) (err error) {
	dst := d.dst.Load()
	if dst == nil {
		return errPathChanged
	}
	d.pkt, d.ssrc, d.pt, d.idx = p, ssrc, pt, idx
	defer func() { d.pkt = nil }()
	// the datagram: header, payload and at most a 16-byte tag (AES-GCM; HMAC-SHA1-80 adds 10)
	maxLen := p.Header.MarshalSize() + len(p.Payload) + srtpMaxTag
	if ew, ok := d.conn.(encodingWriter); ok {
		err = ew.writeEncoded(&d.ref, *dst, maxLen, d)
	} else {
		var out []byte
		if out, err = d.encodeDatagram(d.enc[:0]); err == nil {
			d.enc = out[:0]
			_, err = d.conn.WriteToAddrPort(out, *dst)
		}
	}
	if errors.Is(err, net.ErrClosed) {
		err = nil // the relay is shutting down; the session ends with it
	}
	return err
}

const srtpMaxTag = 16

// encodeDatagram writes the SRTP packet of d.pkt into dst (in place when dst has room).
func (d *directWriter) encodeDatagram(dst []byte) ([]byte, error) {
	d.hdr = d.pkt.Header // a field, not a local: a header passed by pointer would escape per packet
	h := &d.hdr
	h.SSRC, h.PayloadType, h.SequenceNumber = d.ssrc, d.pt, uint16(d.idx)
	h.Padding, h.PaddingSize = false, 0 // the payload is copied without the camera's padding
	return d.sealer.seal(dst, h, d.pkt.Payload, uint32(d.idx>>16))
}

// encodingWriter is a UDP port that lets a datagram be encoded straight into its send buffer
// (batchConn on Linux), saving a copy per packet and viewer.
type encodingWriter interface {
	writeEncoded(ref *destRef, to netip.AddrPort, maxLen int, e datagramEncoder) error
}

// datagramEncoder writes one datagram into dst, whose capacity is at least the maxLen given to
// writeEncoded, and returns it.
type datagramEncoder interface {
	encodeDatagram(dst []byte) ([]byte, error)
}
