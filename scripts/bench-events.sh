#!/usr/bin/env bash
# make bench-events: the event path on this machine, in two parts. Prints BENCH lines; never
# fails on a figure, only when a part cannot run.
#
# 1. events/cmd/bench-events (in-process, about two minutes at most): events/s durably
#    logged on SQLite, delivered to a local provincesim receiver over loopback, and Append →
#    live subscriber latency under 1,000 events/s.
# 2. gateway/cmd/bench-alert-latency (the real bin/offsite as a child process, about 1.5
#    minutes): MQTT reading that crosses a threshold → sensor.threshold and alert.opened on an
#    officer's SSE stream, under a background of 1,000 readings/s; p50/p99/max and lost.
#
# Arguments go to part 1. Environment for part 2: ALERT_FOR (measurement, default 60s),
# ALERT_BACKGROUND (background messages/s, default 1000), ALERT_EVERY (one crossing this
# often, default 200ms), ALERT_ARGS (more flags, e.g. "-keep").
set -euo pipefail
cd "$(dirname "$0")/.."

timeout 120 go run ./events/cmd/bench-events "$@"

mkdir -p bin
CGO_ENABLED=0 go build -o bin/offsite ./gateway
go build -o bin/bench-alert-latency ./gateway/cmd/bench-alert-latency
# shellcheck disable=SC2086 # ALERT_ARGS is a list of flags
timeout 240 bin/bench-alert-latency -bin bin/offsite -for "${ALERT_FOR:-60s}" \
	-background "${ALERT_BACKGROUND:-1000}" -every "${ALERT_EVERY:-200ms}" ${ALERT_ARGS:-}
