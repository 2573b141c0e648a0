package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"

	"github.com/offsite-gw/offsite/analytics/lease"
	"github.com/offsite-gw/offsite/streams/rtsppull"
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
	// The RTP callback only hands keyframes over; the looker drops a keyframe if it is still
	// busy with the last one, so a slow look never backs up RTSP. The pull puts SPS and PPS in
	// front of every keyframe, so each one decodes on its own.
	keyframes := make(chan [][]byte, 1)
	sess := &rtsppull.Session{
		URL:         p.Assignment.RTSPURL,
		Transport:   "tcp",
		ReadTimeout: 10 * time.Second,
		Logger:      p.logger().With("camera", p.Assignment.CameraID),
		OnAccessUnit: func(au [][]byte, _ int64, _ time.Time) {
			if !h264.IsRandomAccess(au) {
				return
			}
			select {
			case keyframes <- au:
			default:
			}
		},
	}
	if err := sess.Initialize(ctx); err != nil {
		if errors.Is(err, rtsppull.ErrUnsupportedCodec) {
			return fmt.Errorf("%w (analytics reads H.264 only)", err)
		}
		return err
	}
	defer sess.Close()
	waitErr := make(chan error, 1)
	go func() { waitErr <- sess.Wait() }()
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-waitErr:
			return err
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
