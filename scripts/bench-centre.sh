#!/usr/bin/env bash
# make bench-centre: 100 simulated site gateways posting signed event batches to one centre
# (the real bin/offsite), once on SQLite and once on a throw-away PostgreSQL started here
# (scripts/pg.sh, on a free loopback port, stopped and removed at the end). Per store: events/s
# stored with every site posting back to back, then p99 from an event's creation at a site to
# the officer's SSE frame at the centre at 1,000 events/s; the centre's CPU and RSS per phase.
# Ends with "BENCH centre store=…" lines (gateway/cmd/bench-centre). About 3–4 minutes.
# Arguments go to the program (e.g. -gateways 50 -throughput-for 10s -keep).
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d /tmp/offsite-bench-centre.XXXXXX)
chmod 755 "$work"
cleanup() {
  scripts/pg.sh stop "$work/pg" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 - <<'PY' 2>/dev/null || echo $(( 20000 + RANDOM % 20000 ))
import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])
PY
}

mkdir -p bin
CGO_ENABLED=0 go build -o bin/offsite ./gateway
go build -o "$work/bench-centre" ./gateway/cmd/bench-centre
dsn=$(scripts/pg.sh start "$work/pg" "$(free_port)")
timeout 420 "$work/bench-centre" -bin bin/offsite -pg-dsn "$dsn" "$@"
