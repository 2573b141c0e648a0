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
