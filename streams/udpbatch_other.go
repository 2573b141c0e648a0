//go:build !linux

package streams

import "net"

func newBatchConn(c *net.UDPConn) (net.PacketConn, error) { return c, nil }

// destRef is the Linux batchConn's cached queue of a viewer; unused elsewhere.
type destRef struct{}
