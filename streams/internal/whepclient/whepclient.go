// Package whepclient is a WHEP viewer made with pion, for the tests and the benchmark: it
// posts an offer, plays the answer, and checks what arrives (keyframe first, SPS/PPS in-band).
// It binds to loopback only.
package whepclient

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/logging"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
	"github.com/pion/webrtc/v4"
)

// NewAPI returns a pion API for loopback viewers (UDP, or ICE-TCP only if tcp).
func NewAPI(tcp bool) (*webrtc.API, error) {
	me := &webrtc.MediaEngine{}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"},
		PayloadType: 102,
	}, webrtc.RTPCodecTypeVideo); err != nil {
		return nil, err
	}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000, Channels: 1},
		PayloadType:        0,
	}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	lf := logging.NewDefaultLoggerFactory()
	lf.DefaultLogLevel = logging.LogLevelError
	se := webrtc.SettingEngine{LoggerFactory: lf}
	if n, err := stdnet.NewNet(); err == nil {
		se.SetNet(bigBufferNet{Net: n, gro: true})
	}
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetICETimeouts(5*time.Second, 10*time.Second, time.Second) // consent checks every second, like browsers' RTCP
	if tcp {
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeTCP4})
	} else {
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se),
		webrtc.WithInterceptorRegistry(&interceptor.Registry{})), nil
}

// Client is one viewer.
type Client struct {
	API      *webrtc.API
	Endpoint string // http://…/api/v1/cameras/{id}/whep
	Token    string
	Audio    bool // also ask for audio
	// DecodeAll keeps depacketizing after the first keyframe (tests); the benchmark stops
	// after it to spare CPU.
	DecodeAll bool
	// HeaderOnly (benchmark): after the first keyframe was decrypted and decoded, read only
	// the RTP headers (in the clear under SRTP) at the socket for frames, arrival times and
	// losses, sparing the viewer process the decryption of every packet. Linux, UDP only.
	HeaderOnly bool
	// OnFrame, if set, is called with the RTP timestamp and arrival of each complete video frame.
	OnFrame func(ts uint32, at time.Time)

	pc       *webrtc.PeerConnection
	location string
	posted   time.Time

	mu             sync.Mutex
	firstKey       time.Duration // POST → first keyframe complete
	connectedAfter time.Duration
	firstWasKey    bool
	firstHadParams bool
	gotFirst       bool
	frames         atomic.Int64
	keyframes      atomic.Int64
	packets        atomic.Int64
	audioPackets   atomic.Int64
	lost           atomic.Int64
	state          atomic.Int32
	frameCh        chan struct{}
	videoPT        uint8
	lastSR         rtcp.SenderReport
	lastSRAt       time.Time
	senderReports  int
	lastFrameTS    atomic.Uint32
	reordered      atomic.Int64  // frames whose RTP time is not after the previous frame's
	prevFrameTS    atomic.Uint64 // 1<<32 | RTP time of the last frame; 0 before the first
}

// Start posts the offer and sets the answer.
func (c *Client) Start(ctx context.Context) error {
	if c.API == nil {
		api, err := NewAPI(false)
		if err != nil {
			return err
		}
		c.API = api
	}
	c.frameCh = make(chan struct{}, 1)
	pc, err := c.API.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return err
	}
	c.pc = pc
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		return err
	}
	if c.Audio {
		if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			return err
		}
	}
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		c.state.Store(int32(s))
		if s == webrtc.PeerConnectionStateConnected {
			c.mu.Lock()
			c.connectedAfter = time.Since(c.posted)
			c.mu.Unlock()
		}
	})
	pc.OnTrack(func(tr *webrtc.TrackRemote, rcv *webrtc.RTPReceiver) {
		if tr.Kind() == webrtc.RTPCodecTypeAudio {
			go c.readAudio(tr)
			return
		}
		go c.readRTCP(rcv)
		c.videoPT = uint8(tr.PayloadType())
		go c.readVideo(tr)
	})
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return err
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return err
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return ctx.Err()
	}
	c.posted = time.Now()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.Endpoint, bytes.NewBufferString(pc.LocalDescription().SDP))
	req.Header.Set("Content-Type", "application/sdp")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return &HTTPError{Status: resp.StatusCode, Body: string(body)}
	}
	loc, err := resp.Location()
	if err != nil {
		return fmt.Errorf("no Location: %w", err)
	}
	c.location = loc.String()
	return pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(body)})
}

// HTTPError is a refused offer.
type HTTPError struct {
	Status int
	Body   string
}

func (e *HTTPError) Error() string { return fmt.Sprintf("WHEP %d: %s", e.Status, e.Body) }

func (c *Client) readAudio(tr *webrtc.TrackRemote) {
	for {
		if _, _, err := tr.ReadRTP(); err != nil {
			return
		}
		c.audioPackets.Add(1)
	}
}

func (c *Client) readVideo(tr *webrtc.TrackRemote) {
	dec := &rtph264.Decoder{}
	_ = dec.Init()
	buf := make([]byte, 1600)
	pkt := &rtp.Packet{}
	decoding := true
	var lastSeq uint16
	haveSeq := false
	for {
		n, _, err := tr.Read(buf)
		if err != nil {
			return
		}
		data := buf[:n]
		if decoding {
			data = append([]byte(nil), data...) // the decoder keeps NALUs until the frame completes
		}
		if err := pkt.Unmarshal(data); err != nil {
			continue
		}
		now := time.Now()
		c.packets.Add(1)
		if haveSeq && pkt.SequenceNumber != lastSeq+1 {
			c.lost.Add(int64(uint16(pkt.SequenceNumber - lastSeq - 1)))
		}
		lastSeq, haveSeq = pkt.SequenceNumber, true
		if !decoding {
			if pkt.Marker {
				c.frames.Add(1)
				c.frameOrder(pkt.Timestamp)
				if c.OnFrame != nil {
					c.OnFrame(pkt.Timestamp, now)
				}
			}
			continue
		}
		au, err := dec.Decode(pkt)
		if err != nil {
			continue
		}
		c.lastFrameTS.Store(pkt.Timestamp)
		c.frames.Add(1)
		c.frameOrder(pkt.Timestamp)
		if c.OnFrame != nil {
			c.OnFrame(pkt.Timestamp, now)
		}
		key, params := false, 0
		for _, nalu := range au {
			switch nalu[0] & 0x1f {
			case 5:
				key = true
			case 7, 8:
				params++
			}
		}
		c.mu.Lock()
		if !c.gotFirst {
			c.gotFirst, c.firstWasKey, c.firstHadParams = true, key, params == 2
		}
		tap := false
		if key {
			c.keyframes.Add(1)
			if c.firstKey == 0 {
				c.firstKey = now.Sub(c.posted)
			}
			if !c.DecodeAll {
				decoding = false
				tap = c.HeaderOnly
			}
		}
		c.mu.Unlock()
		if tap && c.tapHeaders(lastSeq) {
			select {
			case c.frameCh <- struct{}{}:
			default:
			}
			return // the socket takes the RTP packets from now on
		}
		select {
		case c.frameCh <- struct{}{}:
		default:
		}
	}
}

// frameOrder counts a frame that does not come after the previous one in RTP time (the relay
// must hand every viewer its frames in order).
func (c *Client) frameOrder(ts uint32) {
	if prev := c.prevFrameTS.Swap(1<<32 | uint64(ts)); prev != 0 && int32(ts-uint32(prev)) <= 0 {
		c.reordered.Add(1)
	}
}

// tapHeaders hands this viewer's RTP packets to a header reader at its socket.
func (c *Client) tapHeaders(lastSeq uint16) bool {
	ice := c.pc.SCTP().Transport().ICETransport()
	pair, err := ice.GetSelectedCandidatePair()
	if err != nil || pair == nil || pair.Local == nil {
		return false
	}
	seq := lastSeq
	return tapFor(int(pair.Local.Port), func(p []byte, at time.Time) {
		if p[1]&0x7f != c.videoPT {
			return
		}
		c.packets.Add(1)
		s := binary.BigEndian.Uint16(p[2:])
		if s != seq+1 {
			c.lost.Add(int64(uint16(s - seq - 1)))
		}
		seq = s
		if p[1]&0x80 != 0 {
			c.frames.Add(1)
			c.frameOrder(binary.BigEndian.Uint32(p[4:]))
			if c.OnFrame != nil {
				c.OnFrame(binary.BigEndian.Uint32(p[4:]), at)
			}
		}
	})
}

// readRTCP keeps the video sender's last report.
func (c *Client) readRTCP(rcv *webrtc.RTPReceiver) {
	for {
		pkts, _, err := rcv.ReadRTCP()
		if err != nil {
			return
		}
		for _, p := range pkts {
			if sr, ok := p.(*rtcp.SenderReport); ok {
				c.mu.Lock()
				c.lastSR, c.lastSRAt = *sr, time.Now()
				c.senderReports++
				c.mu.Unlock()
			}
		}
	}
}

// SenderReport returns the last RTCP sender report of the video track, when it came, and
// how many came.
func (c *Client) SenderReport() (rtcp.SenderReport, time.Time, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastSR, c.lastSRAt, c.senderReports
}

// Stats is what a viewer saw.
type Stats struct {
	Frames, Keyframes, Packets, AudioPackets int64
	Lost                                     int64 // gaps in the video sequence numbers
	Reordered                                int64 // frames not after the previous one in RTP time
	FirstFrameWasKeyframe                    bool
	FirstKeyframeHadSPSPPS                   bool
	FirstKeyframe                            time.Duration // since POST
	Connected                                time.Duration // since POST
	State                                    webrtc.PeerConnectionState
}

// LastFrameTimestamp is the RTP timestamp of the last complete video frame (DecodeAll).
func (c *Client) LastFrameTimestamp() uint32 { return c.lastFrameTS.Load() }

// Stats returns the counters.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stats{Frames: c.frames.Load(), Keyframes: c.keyframes.Load(), Packets: c.packets.Load(),
		AudioPackets: c.audioPackets.Load(), Lost: c.lost.Load(), Reordered: c.reordered.Load(), FirstFrameWasKeyframe: c.firstWasKey, FirstKeyframeHadSPSPPS: c.firstHadParams,
		FirstKeyframe: c.firstKey, Connected: c.connectedAfter, State: webrtc.PeerConnectionState(c.state.Load())}
}

// WaitFrames waits until at least n video frames arrived.
func (c *Client) WaitFrames(ctx context.Context, n int64) error {
	for c.frames.Load() < n {
		select {
		case <-ctx.Done():
			return fmt.Errorf("got %d of %d frames: %w", c.frames.Load(), n, ctx.Err())
		case <-c.frameCh:
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// Close ends the session with a WHEP DELETE (if del) and closes the peer.
// Location is the session's resource URL, resolved against Endpoint ("" before Start).
func (c *Client) Location() string {
	u, err := url.Parse(c.Endpoint)
	if err != nil || c.location == "" {
		return ""
	}
	loc, err := u.Parse(c.location)
	if err != nil {
		return ""
	}
	return loc.String()
}

func (c *Client) Close(del bool) error {
	var err error
	if del && c.location != "" {
		u, perr := url.Parse(c.Endpoint)
		if perr == nil {
			loc, _ := u.Parse(c.location)
			req, _ := http.NewRequest(http.MethodDelete, loc.String(), nil)
			if c.Token != "" {
				req.Header.Set("Authorization", "Bearer "+c.Token)
			}
			resp, derr := http.DefaultClient.Do(req)
			if derr != nil {
				err = derr
			} else {
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("DELETE: %d", resp.StatusCode)
				}
			}
		}
	}
	if c.pc != nil {
		err = errors.Join(err, c.pc.Close())
	}
	return err
}

// bigBufferNet gives each viewer socket a 1 MiB receive buffer (and UDP GRO, see groConn), so that a viewer process
// briefly starved of CPU (hundreds of viewers on two cores) loses fewer packets in the kernel.
type bigBufferNet struct {
	transport.Net
	gro bool
}

func (b bigBufferNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := b.Net.ListenUDP(network, laddr)
	if err != nil {
		return c, err
	}
	_ = c.SetReadBuffer(1 << 20)
	if b.gro {
		c = withGRO(c)
	}
	return c, nil
}

func (b bigBufferNet) ListenPacket(network, address string) (net.PacketConn, error) {
	c, err := b.Net.ListenPacket(network, address)
	if uc, ok := c.(interface{ SetReadBuffer(int) error }); err == nil && ok {
		_ = uc.SetReadBuffer(1 << 20)
	}
	return c, err
}
