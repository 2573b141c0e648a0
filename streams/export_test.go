package streams

import "github.com/pion/webrtc/v4"

// MoveToICETCPForTest tells every live session with a direct writer that its viewer's selected
// ICE pair moved to ICE-TCP, as the ICE agent would; it returns how many sessions it told.
func MoveToICETCPForTest(w *WHEP) int {
	w.mu.Lock()
	var ss []*whepSession
	for _, s := range w.sessions {
		if s.direct != nil {
			ss = append(ss, s)
		}
	}
	w.mu.Unlock()
	tcp := &webrtc.ICECandidatePair{
		Local:  &webrtc.ICECandidate{Protocol: webrtc.ICEProtocolTCP, Address: "127.0.0.1", Port: 9},
		Remote: &webrtc.ICECandidate{Protocol: webrtc.ICEProtocolTCP, Address: "127.0.0.1", Port: 9},
	}
	for _, s := range ss {
		s.pairChanged(tcp)
	}
	return len(ss)
}

// SetInitialSeqForTest makes every new session's tracks start at sequence number seq (so a
// test can have them wrap early); it returns a function that restores random starts.
func SetInitialSeqForTest(seq uint16) (restore func()) {
	old := initialSeq
	initialSeq = func() uint16 { return seq }
	return func() { initialSeq = old }
}

// MoofDurationForTest is moofDuration, for its fuzz test.
var MoofDurationForTest = moofDuration
