//go:build !linux

package streams

import "net"

func newBatchConn(c *net.UDPConn) (net.PacketConn, error) { return c, nil }

// destRef is the Linux batchConn's cached queue of a viewer; unused elsewhere.
type destRef struct{}

// sendBatch is the Linux batchConn's deferred sends of a fan-out group; elsewhere every
// datagram goes at once.
type sendBatch struct{}

func (*sendBatch) full() bool { return false }
func (*sendBatch) flush()     {}
