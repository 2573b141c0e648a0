package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/offsite-gw/offsite/internal/benchkit"
)

// gatewayProc is `offsite serve` running as a child process in its own data directory, every
// listener on loopback.
type gatewayProc struct {
	*benchkit.Proc
	MQTT string // tcp://127.0.0.1:PORT
}

// startGateway starts a gateway with SQLite store and telemetry and the embedded broker,
// everything on 127.0.0.1, rules.cooldown set to cooldown (how soon one alarm may activate
// again after it cleared). The connect rate is raised because every simulated device connects
// from the same address at once.
func startGateway(ctx context.Context, bin, dir string, cooldown time.Duration, lg *slog.Logger) (*gatewayProc, error) {
	httpAddr, err := benchkit.FreePort()
	if err != nil {
		return nil, err
	}
	mqttAddr, err := benchkit.FreePort()
	if err != nil {
		return nil, err
	}
	g := &gatewayProc{MQTT: "tcp://" + mqttAddr, Proc: &benchkit.Proc{Name: "gateway", Bin: bin, DataDir: dir, Logger: lg,
		HTTP: "http://" + httpAddr, Config: fmt.Sprintf(`gateway_id: bench-gw-01
data_dir: %q
log: {level: info, format: text}
http: {listen: %q}
store: {dsn: ""}
ingest:
  broker: {listen: %q, connect_rate: 1000, connect_burst: 1000}
  telemetry: {backend: sqlite}
streams:
  rtsp: {listen: "127.0.0.1:0"}
  webrtc: {udp_listen: "127.0.0.1:0", tcp_listen: "127.0.0.1:0"}
rules:
  cooldown: %s
`, dir, httpAddr, mqttAddr, cooldown)}}
	return g, g.Start(ctx)
}
