package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/pion/rtp"

	"github.com/offsite-gw/offsite/analytics/lease"
)

// Pipeline analyses one camera: it reads the gateway's RTSP re-serve over TCP, keeps only
// the keyframes (IDR access units), decodes at most one per LookEvery and runs the detectors
// on it. The RTP packets in between are depacketised and dropped without decoding.
type Pipeline struct {
	Assignment lease.Assignment
	// LookEvery is the least time between two looks (default 1 s): with a keyframe every
	// 1-2 s that is one look per keyframe.
	LookEvery time.Duration
	// Sink receives raised and cleared alarms, in order. It must not block for long.
	Sink   func(a lease.Assignment, s Signal)
	Logger *slog.Logger

	// Stats (read after Run returns, or racy-but-harmless for logs).
	Looks   int64
	Timings Timings
	Decode  time.Duration
}

func (p *Pipeline) logger() *slog.Logger {
	if p.Logger == nil {
		return slog.Default()
	}
	return p.Logger
}

// Run reads the camera until ctx ends, reconnecting with backoff. The analyzer (and so the
// alarm state) lives across reconnects.
func (p *Pipeline) Run(ctx context.Context) {
	if p.LookEvery <= 0 {
		p.LookEvery = time.Second
	}
	a := &Analyzer{CameraID: p.Assignment.CameraID, Settings: p.Assignment.Settings}
	a.Seed(p.Assignment.ActiveAlarms)
	defer a.Close()
	dec, err := NewKeyframeDecoder()
	if err != nil {
		p.logger().Error("analytics pipeline cannot decode", "camera", p.Assignment.CameraID, "err", err)
		return
	}
	defer dec.Close()
	backoff := time.Second
	for ctx.Err() == nil {
		start := time.Now()
		err := p.session(ctx, a, dec)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > 30*time.Second {
			backoff = time.Second
		}
		p.logger().Warn("analytics stream ended; reconnecting", "camera", p.Assignment.CameraID, "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

func (p *Pipeline) session(ctx context.Context, a *Analyzer, dec *KeyframeDecoder) error {
	u, err := base.ParseURL(p.Assignment.RTSPURL)
	if err != nil {
		return fmt.Errorf("rtsp url: %w", err)
	}
	transport := gortsplib.TransportTCP
	c := &gortsplib.Client{Scheme: u.Scheme, Host: u.Host, Transport: &transport, ReadTimeout: 10 * time.Second, WriteTimeout: 5 * time.Second}
	if err := c.Start2(); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, c.Close)
	defer stop()
	desc, _, err := c.Describe(u)
	if err != nil {
		return fmt.Errorf("describe %s: %w", redact(u), err)
	}
	var h264f *format.H264
	medi := desc.FindFormat(&h264f)
	if medi == nil {
		return errors.New("the stream has no H.264 video (analytics reads H.264 only)")
	}
	if _, err := c.Setup(desc.BaseURL, medi, 0, 0); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	sps, pps := h264f.SafeParams()
	dec.SetParams(sps, pps)
	rtpDec, err := h264f.CreateDecoder()
	if err != nil {
		return err
	}
	// The RTP callback only depacketises and hands keyframes over; the looker drops a
	// keyframe if it is still busy with the last one, so a slow look never backs up RTSP.
	keyframes := make(chan [][]byte, 1)
	c.OnPacketRTP(medi, h264f, func(pkt *rtp.Packet) {
		au, err := rtpDec.Decode(pkt)
		if err != nil {
			if !errors.Is(err, rtph264.ErrMorePacketsNeeded) && !errors.Is(err, rtph264.ErrNonStartingPacketAndNoPrevious) {
				p.logger().Debug("h264 depacketize", "camera", p.Assignment.CameraID, "err", err)
			}
			return
		}
		if !h264.IsRandomAccess(au) {
			return
		}
		select {
		case keyframes <- au:
		default:
		}
	})
	if _, err := c.Play(nil); err != nil {
		return fmt.Errorf("play: %w", err)
	}
	waitErr := make(chan error, 1)
	go func() { waitErr <- c.Wait() }()
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-waitErr:
			return fmt.Errorf("stream lost: %w", err)
		case au := <-keyframes:
			now := time.Now()
			if now.Sub(last) < p.LookEvery-100*time.Millisecond {
				continue
			}
			last = now
			t0 := time.Now()
			pic, err := dec.Decode(au)
			p.Decode += time.Since(t0)
			if err != nil {
				p.logger().Debug("keyframe not decoded", "camera", p.Assignment.CameraID, "err", err)
				continue
			}
			sigs, err := a.Analyze(now, pic)
			if err != nil {
				p.logger().Warn("analyze", "camera", p.Assignment.CameraID, "err", err)
				continue
			}
			p.Looks++
			p.Timings = a.Timings
			for _, s := range sigs {
				if p.Sink != nil {
					p.Sink(p.Assignment, s)
				}
			}
		}
	}
}

func redact(u *base.URL) string {
	c := *(*url.URL)(u)
	c.User = nil
	return c.String()
}
