#!/usr/bin/env bash
# make bench-hj212: HJ 212 ingest end to end on loopback — STATIONS simulated stations (default
# 1000), each on its own TCP connection, send CN 2011 uploads with 8 pollutants to a gateway
# process (the real HJ212Listener, pipeline with journal, SQLite metadata and telemetry).
# Paced phase: one frame a second per station (p50/p99 frame-to-stored, CPU); flood phase: as
# fast as TCP allows (frames/s stored), then the same flood to a do-nothing TCP reader for the
# ratio. Ends with BENCH lines; see ingest/cmd/bench-hj212. Bounded: about a minute.
#
# Environment: STATIONS (default 1000), PACED (default 20s), FLOOD (default 15s).
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -n 65536 2>/dev/null || true
go build -o bin/bench-hj212 ./ingest/cmd/bench-hj212
timeout 600 bin/bench-hj212 -stations "${STATIONS:-1000}" -paced "${PACED:-20s}" -flood "${FLOOD:-15s}"
