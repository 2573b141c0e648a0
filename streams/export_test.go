package streams

// LoseDirectPathForTest makes every live session's direct SRTP path unwritable, as when the
// viewer's selected ICE pair moves to ICE-TCP; it returns how many sessions it touched.
func LoseDirectPathForTest(w *WHEP) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, s := range w.sessions {
		if s.direct != nil {
			s.direct.dst.Store(nil)
			n++
		}
	}
	return n
}

// RestoreDirectPathForTest points every live session with a direct writer back at its
// selected ICE pair, as when the viewer's pair moves back to UDP; it returns how many.
func RestoreDirectPathForTest(w *WHEP) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, s := range w.sessions {
		if s.direct == nil {
			continue
		}
		if p, err := s.ice.GetSelectedCandidatePair(); err == nil && p != nil {
			s.direct.setPair(p)
			n++
		}
	}
	return n
}

// SetInitialSeqForTest makes every new session's tracks start at sequence number seq (so a
// test can have them wrap early); it returns a function that restores random starts.
func SetInitialSeqForTest(seq uint16) (restore func()) {
	old := initialSeq
	initialSeq = func() uint16 { return seq }
	return func() { initialSeq = old }
}
