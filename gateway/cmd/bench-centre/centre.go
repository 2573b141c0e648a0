package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/offsite-gw/offsite/internal/benchkit"
)

// startCentre starts `offsite serve` as the centre the simulated sites post to, in its own
// data directory with every listener on loopback: the chosen store (dsn "" = SQLite in dir,
// postgres://… = PostgreSQL), SQLite telemetry, the embedded broker and the relay on ports
// nobody uses, logs at info as in production. The caller stops it, also when Start failed.
func startCentre(ctx context.Context, bin, dir, dsn string, lg *slog.Logger) (*benchkit.Proc, error) {
	httpAddr, err := benchkit.FreePort()
	if err != nil {
		return nil, err
	}
	mqttAddr, err := benchkit.FreePort()
	if err != nil {
		return nil, err
	}
	c := &benchkit.Proc{Name: "centre", Bin: bin, DataDir: dir, Logger: lg, HTTP: "http://" + httpAddr,
		ReadyWithin: 90 * time.Second, Config: fmt.Sprintf(`gateway_id: bench-centre
data_dir: %q
log: {level: info, format: text}
http: {listen: %q}
store: {dsn: %q}
ingest:
  broker: {listen: %q}
  telemetry: {backend: sqlite}
streams:
  rtsp: {listen: "127.0.0.1:0"}
  webrtc: {udp_listen: "127.0.0.1:0", tcp_listen: "127.0.0.1:0"}
`, dir, httpAddr, dsn, mqttAddr)}
	return c, c.Start(ctx)
}
