#!/usr/bin/env bash
# make bench-relay: one 720p camera (~3 Mbit/s, keyframe every 4 s) relayed to 1, 10, 100 and
# 500 WebRTC viewers on loopback; prints per-N figures and "BENCH relay_n…" lines. Needs ffmpeg
# once to generate the test clip (kept in the user cache dir). Takes about 2-4 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v ffmpeg >/dev/null 2>&1; then
	echo "bench-relay: installing ffmpeg (needed once for the test clip)" >&2
	apt-get update -qq && apt-get install -y ffmpeg >/dev/null
fi
bin="$(mktemp -d)/bench-relay"
trap 'rm -rf "$(dirname "$bin")"' EXIT
go build -o "$bin" ./streams/cmd/bench-relay
exec "$bin" "$@"
