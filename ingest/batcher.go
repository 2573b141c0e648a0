package ingest

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// batcher is the in-memory buffer in front of a telemetry writer: Write appends under a
// mutex and returns at once; one writer goroutine takes batches.
type batcher struct {
	mu      sync.Mutex
	pending []Reading
	notify  chan struct{}
	size    int // batch size that wakes the writer

	accepted atomic.Int64 // readings ever accepted
	handled  atomic.Int64 // readings stored, spooled or dropped
}

func newBatcher(size int) *batcher {
	return &batcher{notify: make(chan struct{}, 1), size: size}
}

// add appends rs and reports the pending count after it.
func (b *batcher) add(rs []Reading) int {
	b.mu.Lock()
	b.pending = append(b.pending, rs...)
	n := len(b.pending)
	b.accepted.Add(int64(len(rs)))
	b.mu.Unlock()
	if n >= b.size {
		select {
		case b.notify <- struct{}{}:
		default:
		}
	}
	return n
}

// take removes up to n readings, oldest first.
func (b *batcher) take(n int) []Reading {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.pending) == 0 {
		return nil
	}
	if n >= len(b.pending) {
		out := b.pending
		b.pending = make([]Reading, 0, min(cap(out), 4*b.size))
		return out
	}
	out := make([]Reading, n)
	copy(out, b.pending[:n])
	rest := copy(b.pending, b.pending[n:])
	clear(b.pending[rest:])
	b.pending = b.pending[:rest]
	return out
}

func (b *batcher) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.pending)
}

// wait blocks until handled reaches what was accepted when wait was called.
func (b *batcher) wait(ctx context.Context) error {
	target := b.accepted.Load()
	for b.handled.Load() < target {
		select {
		case b.notify <- struct{}{}:
		default:
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}
