package streams

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"

	"github.com/offsite-gw/offsite/streams/rtsppull"
)

// State is where a camera's pull stands.
type State int

const (
	StateIdle       State = iota // on-demand camera nobody watches: not pulled
	StateConnecting              // RTSP handshake in progress
	StateOnline                  // packets arrive
	StateStalled                 // connected, but no packets for StallTimeout
	StateOffline                 // connection failed or lost; retrying with backoff
)

func (s State) String() string {
	switch s {
	case StateIdle:
		return "idle"
	case StateConnecting:
		return "connecting"
	case StateOnline:
		return "online"
	case StateStalled:
		return "stalled"
	case StateOffline:
		return "offline"
	}
	return "unknown"
}

// EventType maps a state change to the event type the gateway logs: "video.signal_lost" when
// a camera that was online stalls or drops, "device.online" when it comes (back) online, ""
// otherwise.
func EventType(prev, next State) string {
	switch {
	case prev == StateOnline && (next == StateStalled || next == StateOffline):
		return "video.signal_lost"
	case next == StateOnline && prev != StateOnline:
		return "device.online"
	}
	return ""
}

// ErrCodec is wrapped by errors about streams the relay cannot show in a browser. It is the
// pull's own sentinel, so errors.Is matches either way.
var ErrCodec = rtsppull.ErrUnsupportedCodec

// Source pulls one camera over RTSP (gortsplib) into a Hub and keeps doing so: it reconnects
// with capped exponential backoff (also when the first connect fails), and moves through
// connecting → online → stalled → offline.
type Source struct {
	Camera    string
	URL       string // rtsp://host:port/path; user info in the URL is used if Username is empty
	Username  string
	Password  string
	Transport string // "tcp" (default) or "udp"
	Hub       *Hub
	// H265 pulls an H.265 camera for its clips instead of refusing it (CameraConfig.H265).
	H265 bool

	StallTimeout   time.Duration // no packets for this long: stalled (default 5 s)
	OfflineTimeout time.Duration // no packets for this long: drop the session, offline (default 15 s)
	BackoffMin     time.Duration // first retry delay (default 1 s)
	BackoffMax     time.Duration // retry delay cap (default 30 s)
	// OnState is called on every state change, from the source's goroutine.
	OnState func(camera string, st State, reason string)
	// Header, if set, is called before each RTSP session for headers to add to its requests.
	Header func() map[string]string
	Logger *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	state    State
	reason   string
	since    time.Time
	problem  error
	packetIn atomic.Uint64
}

// Initialize starts pulling.
func (s *Source) Initialize() error {
	if s.Hub == nil {
		return fmt.Errorf("source %s: no hub", s.Camera)
	}
	if err := s.validate(); err != nil {
		return fmt.Errorf("source %s: %w", s.Camera, err)
	}
	if s.StallTimeout <= 0 {
		s.StallTimeout = 5 * time.Second
	}
	if s.OfflineTimeout <= s.StallTimeout {
		s.OfflineTimeout = 3 * s.StallTimeout
	}
	if s.BackoffMin <= 0 {
		s.BackoffMin = time.Second
	}
	if s.BackoffMax < s.BackoffMin {
		s.BackoffMax = 30 * time.Second
		if s.BackoffMax < s.BackoffMin {
			s.BackoffMax = s.BackoffMin
		}
	}
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	s.state, s.since = StateIdle, time.Now()
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.run()
	return nil
}

// Close stops pulling and waits for the session to end.
func (s *Source) Close() {
	s.cancel()
	s.wg.Wait()
}

// State returns the current state, why, and since when.
func (s *Source) State() (State, string, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state, s.reason, s.since
}

// Problem returns the codec problem found at the last connect (wraps ErrCodec), or nil.
func (s *Source) Problem() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.problem
}

// PacketsIn counts RTP packets received from the camera.
func (s *Source) PacketsIn() uint64 { return s.packetIn.Load() }

func (s *Source) setState(st State, reason string) {
	s.mu.Lock()
	if s.state == st && s.reason == reason {
		s.mu.Unlock()
		return
	}
	s.state, s.reason, s.since = st, reason, time.Now()
	s.mu.Unlock()
	s.Logger.Info("camera state", "camera", s.Camera, "state", st.String(), "reason", reason)
	if s.OnState != nil {
		s.OnState(s.Camera, st, reason)
	}
}

func (s *Source) run() {
	defer s.wg.Done()
	backoff := s.BackoffMin
	for {
		s.setState(StateConnecting, "")
		started := time.Now()
		wasOnline, err := s.session()
		if s.ctx.Err() != nil {
			return
		}
		reason := "camera closed the stream"
		if err != nil {
			reason = err.Error()
		}
		if wasOnline && time.Since(started) > s.BackoffMax {
			backoff = s.BackoffMin
		} else if wasOnline {
			backoff = s.BackoffMin
		}
		s.setState(StateOffline, fmt.Sprintf("%s; retrying in %s", reason, backoff))
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff *= 2
		if backoff > s.BackoffMax {
			backoff = s.BackoffMax
		}
	}
}

// session runs one RTSP session until it fails, stalls for OfflineTimeout, or the source closes.
func (s *Source) session() (wasOnline bool, err error) {
	h265 := false // the camera sends H.265 (accepted with H265): units go to clips only
	sess := &rtsppull.Session{
		H265:      s.H265,
		URL:       s.URL,
		Username:  s.Username,
		Password:  s.Password,
		Transport: s.Transport,
		// the stall ticker below ends the session at OfflineTimeout; this is a backstop
		ReadTimeout: s.OfflineTimeout,
		Audio:       true,
		Header:      s.header(),
		Logger:      s.Logger.With("camera", s.Camera),
		OnTracks: func(tr rtsppull.Tracks) {
			if tr.Codec == "H265" {
				h265 = true
				s.Hub.SetFormat(Format{Codec: "H265", SPS: tr.SPS, PPS: tr.PPS, Width: tr.Width, Height: tr.Height})
				return
			}
			f := Format{Codec: "H264", SPS: tr.SPS, PPS: tr.PPS, Width: tr.Width, Height: tr.Height}
			if tr.Audio != nil {
				f.Audio = &AudioFormat{MULaw: tr.Audio.MULaw, PayloadType: tr.Audio.PayloadType(), SampleRate: 8000, Channels: 1}
			}
			s.Hub.SetFormat(f)
		},
		OnVideoRTP: func(*rtp.Packet, int64, bool, time.Time) {
			s.packetIn.Add(1)
		},
		OnAccessUnit: func(au [][]byte, pts int64, received time.Time) {
			if h265 {
				s.Hub.WriteVideoH265(au, pts, received)
				return
			}
			s.Hub.WriteVideo(au, pts, received)
		},
		OnAudioRTP: s.Hub.WriteAudio,
	}
	err = sess.Initialize(s.ctx)
	var cerr *rtsppull.CodecError
	switch {
	case errors.As(err, &cerr):
		perr := codecProblem(cerr.Codec)
		s.mu.Lock()
		s.problem = perr
		s.mu.Unlock()
		s.Hub.SetFormat(Format{Codec: cerr.Codec})
		return false, perr
	case err != nil:
		return false, err
	}
	defer sess.Close()
	s.mu.Lock()
	s.problem = nil
	if h265 {
		// pulled for clips; still not something a browser can play
		s.problem = codecProblem("H265")
	}
	s.mu.Unlock()
	playAt := time.Now()

	waitErr := make(chan error, 1)
	go func() { waitErr <- sess.Wait() }()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-waitErr:
			return wasOnline, err
		case <-tick.C:
			last := sess.LastPacket()
			var silent time.Duration
			if last.IsZero() {
				silent = time.Since(playAt)
			} else {
				silent = time.Since(last)
			}
			switch {
			case silent >= s.OfflineTimeout:
				return wasOnline, fmt.Errorf("no packets for %s", s.OfflineTimeout)
			case silent >= s.StallTimeout:
				s.setState(StateStalled, fmt.Sprintf("no packets for %s", s.StallTimeout))
			case !last.IsZero():
				wasOnline = true
				s.setState(StateOnline, "")
			}
		}
	}
}

// codecProblem says, in words a person can act on, why a camera cannot be relayed.
func codecProblem(codec string) error {
	switch codec {
	case "H265":
		return fmt.Errorf("%w: the camera sends H.265; H.265 cannot play in browsers over WebRTC; "+
			"choose the H.264 sub-stream (or set the camera's encoder to H.264)", ErrCodec)
	case "none":
		return fmt.Errorf("%w: the camera offers no video track", ErrCodec)
	default:
		return fmt.Errorf("%w: the camera sends %s; set the camera's encoder to H.264", ErrCodec, codec)
	}
}

// ErrBFrames is the status of an H.264 stream with B-frames.
var ErrBFrames = fmt.Errorf("%w: the camera's H.264 stream uses B-frames, which WebRTC players show "+
	"out of order; set the encoder profile to baseline (or B-frames to 0), or choose the sub-stream", ErrCodec)

func (s *Source) validate() error {
	return rtsppull.Validate(s.URL, s.Transport)
}

func (s *Source) header() map[string]string {
	if s.Header == nil {
		return nil
	}
	return s.Header()
}
