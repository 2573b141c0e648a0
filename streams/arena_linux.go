package streams

import "syscall"

// newArena maps size bytes outside the Go heap for a pre-roll: its pages count once in RSS,
// not twice (the garbage collector lets the heap grow to twice what is live), and the
// collector never scans them.
func newArena(size int) ([]byte, func()) {
	b, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		b := make([]byte, size)
		return b, func() {}
	}
	return b, func() { _ = syscall.Munmap(b) }
}
