#!/usr/bin/env bash
# Video analytics benchmark: CPU per camera-second of the worker at one look per second —
# keyframe decode (720p H.264, keyframe every second), RTP depacketisation, each detector —
# and cameras per core. Builds with cgo (OpenCV 4.6 + libavcodec from Debian), makes its clip
# from opencv-doc's vtest.avi with ffmpeg (cached), bounded to three minutes.
# Prints a BENCH line; never fails on a figure.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
pkg-config --exists opencv4 || missing+=(libopencv-dev)
pkg-config --exists libavcodec || missing+=(libavcodec-dev)
[ -e /usr/share/doc/opencv-doc/examples/data/vtest.avi ] || [ -e /usr/share/doc/opencv-doc/examples/data/vtest.avi.gz ] || missing+=(opencv-doc)
command -v ffmpeg >/dev/null || missing+=(ffmpeg)
if [ ${#missing[@]} -gt 0 ]; then
	echo "bench-analytics: installing ${missing[*]}" >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >/dev/null
fi
src=/usr/share/doc/opencv-doc/examples/data/vtest.avi
if [ ! -e "$src" ]; then
	mkdir -p "${TMPDIR:-/tmp}/offsite-bench-analytics"
	gunzip -c "$src.gz" >"${TMPDIR:-/tmp}/offsite-bench-analytics/vtest.avi"
	src="${TMPDIR:-/tmp}/offsite-bench-analytics/vtest.avi"
fi
# OpenCV's own thread pool would only add scheduling noise to per-look figures.
export OPENCV_FOR_THREADS_NUM=1
exec timeout 180 env CGO_ENABLED=1 go run ./analytics/cmd/bench-analytics -src "$src" "$@"
