#!/usr/bin/env bash
# Event path benchmark: events/s durably logged on SQLite, delivered to a local provincesim
# receiver over loopback, and Append → live subscriber latency under 1,000 events/s.
# Bounded to two minutes. Prints BENCH lines; never fails on a figure.
set -euo pipefail
cd "$(dirname "$0")/.."
exec timeout 120 go run ./gateway/events/cmd/bench-events "$@"
