//go:build !linux

package whepclient

import (
	"time"

	"github.com/pion/transport/v5"
)

func tapFor(int, func([]byte, time.Time)) bool { return false }

func withGRO(c transport.UDPConn) transport.UDPConn { return c }
