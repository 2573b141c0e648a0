package ingest

import (
	"fmt"
	"os"
	"syscall"
)

// mapSegment reserves size bytes for f on disk (so a full disk is an error here, not a SIGBUS
// on a later store into the mapping) and maps them shared.
func mapSegment(f *os.File, size int) ([]byte, error) {
	if err := syscall.Fallocate(int(f.Fd()), 0, 0, int64(size)); err != nil {
		_ = f.Truncate(0)
		return nil, fmt.Errorf("reserve %d bytes: %w", size, err)
	}
	mem, err := syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		_ = f.Truncate(0)
		return nil, fmt.Errorf("map: %w", err)
	}
	return mem, nil
}

func unmapSegment(mem []byte) error { return syscall.Munmap(mem) }
