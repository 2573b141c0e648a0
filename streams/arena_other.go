//go:build !linux

package streams

// newArena allocates a pre-roll's bytes (on the heap where mmap is not used).
func newArena(size int) ([]byte, func()) {
	return make([]byte, size), func() {}
}
