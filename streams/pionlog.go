package streams

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/logging"
)

// pionLog routes pion's loggers (ice, pc, dtls, srtp, …) into the gateway's slog logger, so no
// "pc WARNING …" line is written beside the structured log. Levels are the gateway's view: an
// error inside pion concerns one viewer's session (warn); pion's warnings are what ordinary
// viewers cause (a closed tab, a lost candidate) and the relay logs each session's start and
// end with its reason, so they are debug. Messages are cut to maxPionMsg bytes.
type pionLog struct{ l *slog.Logger }

const maxPionMsg = 512

func (f pionLog) NewLogger(scope string) logging.LeveledLogger {
	return pionScope{l: f.l.With("component", "webrtc", "scope", scope)}
}

type pionScope struct{ l *slog.Logger }

func (p pionScope) log(level slog.Level, msg string) {
	ctx := context.Background()
	if !p.l.Enabled(ctx, level) {
		return
	}
	if len(msg) > maxPionMsg {
		msg = msg[:maxPionMsg] + "…"
	}
	p.l.Log(ctx, level, msg)
}

func (p pionScope) logf(level slog.Level, format string, args ...any) {
	if !p.l.Enabled(context.Background(), level) {
		return
	}
	p.log(level, fmt.Sprintf(format, args...))
}

func (p pionScope) Trace(msg string)                  {}
func (p pionScope) Tracef(format string, args ...any) {}
func (p pionScope) Debug(msg string)                  { p.log(slog.LevelDebug, msg) }
func (p pionScope) Debugf(format string, args ...any) { p.logf(slog.LevelDebug, format, args...) }
func (p pionScope) Info(msg string)                   { p.log(slog.LevelDebug, msg) }
func (p pionScope) Infof(format string, args ...any)  { p.logf(slog.LevelDebug, format, args...) }
func (p pionScope) Warn(msg string)                   { p.log(slog.LevelDebug, msg) }
func (p pionScope) Warnf(format string, args ...any)  { p.logf(slog.LevelDebug, format, args...) }
func (p pionScope) Error(msg string)                  { p.log(slog.LevelWarn, msg) }
func (p pionScope) Errorf(format string, args ...any) { p.logf(slog.LevelWarn, format, args...) }
