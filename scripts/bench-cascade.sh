#!/usr/bin/env bash
# make bench-cascade: a site gateway with 16 simulated 720p cameras and a centre, both real
# `offsite` processes, and 16 × 4 WebRTC viewers at the centre, all on loopback; prints the
# site's CPU and upstream, the centre's CPU per viewer, first keyframe and the centre's added
# latency, ending with a "BENCH cascade …" line. Needs ffmpeg once for the clip (shared with
# make bench-relay). Takes about 2 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v ffmpeg >/dev/null 2>&1; then
	echo "bench-cascade: installing ffmpeg (needed once for the test clip)" >&2
	apt-get update -qq && apt-get install -y ffmpeg >/dev/null
fi
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
CGO_ENABLED=0 go build -o "$dir/offsite" ./gateway
go build -o "$dir/bench-cascade" ./streams/cmd/bench-cascade
"$dir/bench-cascade" -offsite "$dir/offsite" "$@"
