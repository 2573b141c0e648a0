#!/usr/bin/env bash
# make bench-hj212: HJ 212 ingest end to end on loopback — STATIONS simulated stations (default
# 1000), each on its own TCP connection, send CN 2011 uploads with 8 pollutants to a gateway
# process (the real HJ212Listener, pipeline with journal, SQLite metadata and telemetry).
# Phases: paced (one frame a second per station: p50/p99 frame-to-stored, CPU); offered (RATE
# frames a second per station, default 8: frames/s stored and the ratio to a do-nothing TCP
# reader under the same load, the last line BENCH hj212); flood (as fast as TCP allows: the
# gateway's capacity, BENCH hj212-flood). Bounded: about two minutes.
#
# Environment: STATIONS (default 1000), RATE (default 8), PACED (default 20s), OFFERED (default
# 15s), FLOOD (default 15s).
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -n 65536 2>/dev/null || true
go build -o bin/bench-hj212 ./ingest/cmd/bench-hj212
timeout 600 bin/bench-hj212 -stations "${STATIONS:-1000}" -rate "${RATE:-8}" -paced "${PACED:-20s}" \
	-offered "${OFFERED:-15s}" -flood "${FLOOD:-15s}"
