//go:build !linux

package whepclient

import "github.com/pion/transport/v5"

func withGRO(c transport.UDPConn) transport.UDPConn { return c }
