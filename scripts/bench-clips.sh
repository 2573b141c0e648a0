#!/usr/bin/env bash
# make bench-clips: 32 simulated cameras (720p, ~2 Mbit/s, keyframe every 2 s) pulled by the
# relay, first without clips, then with a 10 s pre-roll on every camera and one event per
# camera per minute (20 s post-roll), each clip stored by sha256; prints the CPU and RSS clips
# add per camera, MP4 bytes written per second and event → stored clip, and a "BENCH clips"
# line. Needs ffmpeg once for the test clip (kept in the user cache dir). About 4-5 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v ffmpeg >/dev/null 2>&1; then
	echo "bench-clips: installing ffmpeg (needed once for the test clip)" >&2
	apt-get update -qq && apt-get install -y ffmpeg >/dev/null
fi
bin="$(mktemp -d)/bench-clips"
trap 'rm -rf "$(dirname "$bin")"' EXIT
go build -o "$bin" ./gateway/cmd/bench-clips
exec "$bin" "$@"
