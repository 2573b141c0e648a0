package streams

import (
	"errors"
	"reflect"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"
)

// A session that sent packets on the direct path and then has to go on through pion (its
// viewer's selected pair moved to ICE-TCP) must have pion seal the next packet with the
// rollover counter the viewer now expects. pion's SRTP context would start that SSRC at
// counter 0, and once the session's sequence numbers have wrapped the viewer would fail to
// authenticate every packet after the switch: a black tile that never recovers. pion's
// Context has SetROC for exactly this hand-over, but pion/webrtc keeps its SRTP session
// unexported, so the relay reaches it by reflection. The layout is checked field by field and
// type by type; a pion that no longer matches makes this an error (the session then ends with
// that reason, and TestWHEPDirectSRTP fails) rather than a stream that silently stops.

var errPionLayout = errors.New("pion/webrtc's SRTP session is not where the relay expects it (pion upgraded?)")

// setPionROC makes pion's outbound SRTP context seal the next packet of ssrc with rollover
// counter roc.
func setPionROC(t *webrtc.DTLSTransport, ssrc, roc uint32) error {
	if t == nil {
		return errPionLayout
	}
	f := reflect.ValueOf(t).Elem().FieldByName("srtpSession")
	if !f.IsValid() || f.Type() != reflect.TypeFor[atomic.Value]() {
		return errPionLayout
	}
	sess, _ := (*atomic.Value)(unsafe.Pointer(f.UnsafeAddr())).Load().(*srtp.SessionSRTP)
	if sess == nil {
		return errors.New("pion's SRTP session has not started")
	}
	sv := reflect.ValueOf(sess).Elem()
	mu, ctx := sv.FieldByName("localContextMutex"), sv.FieldByName("localContext")
	if !mu.IsValid() || mu.Type() != reflect.TypeFor[sync.Mutex]() ||
		!ctx.IsValid() || ctx.Type() != reflect.TypeFor[*srtp.Context]() {
		return errPionLayout
	}
	lock := (*sync.Mutex)(unsafe.Pointer(mu.UnsafeAddr()))
	ctxp := (**srtp.Context)(unsafe.Pointer(ctx.UnsafeAddr()))
	lock.Lock()
	defer lock.Unlock()
	if *ctxp == nil {
		return errors.New("pion's SRTP session has no outbound context")
	}
	(*ctxp).SetROC(ssrc, roc)
	return nil
}
