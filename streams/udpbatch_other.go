//go:build !linux

package streams

import "net"

func newBatchConn(c *net.UDPConn) (net.PacketConn, error) { return c, nil }
