#!/usr/bin/env bash
# Install what the build, the demo or the tests need and the machine lacks. Safe to run
# repeatedly; installs nothing that is already there. Debian 12 packages (apt) and npm only.
#   scripts/deps.sh demo|test
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-test}

apt_missing=()
need_cmd() { command -v "$1" >/dev/null 2>&1 || apt_missing+=("$2"); }
need_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed" || apt_missing+=("$1"); }

need_cmd ffmpeg ffmpeg
need_cmd ffprobe ffmpeg
# The video analytics worker (cgo): OpenCV and libavcodec headers.
need_pkg libopencv-dev
need_pkg libavcodec-dev
need_pkg pkg-config
# The demo's tour (README) reads demo.json with jq and publishes a reading with mosquitto_pub.
need_cmd jq jq
need_cmd mosquitto_pub mosquitto-clients
if [ "$what" = test ]; then
  need_pkg postgresql
  need_cmd mosquitto mosquitto
  need_cmd chromium chromium
  need_pkg fonts-noto-cjk
  need_pkg opencv-doc   # vtest.avi, the scene of walking people the detector tests use
  need_cmd node nodejs
  need_cmd npm npm
  # Runs the linux/arm64 gateway under user-mode emulation (scripts/arm64-smoke.sh).
  need_cmd qemu-aarch64-static qemu-user-static
fi

if [ ${#apt_missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "deps: missing Debian packages: ${apt_missing[*]} (run as root, or apt-get install them)" >&2
    exit 1
  fi
  echo "deps: apt-get install ${apt_missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "${apt_missing[@]}" >&2 \
    || { apt-get update -q >&2 && apt-get install -y -q --no-install-recommends "${apt_missing[@]}" >&2; }
fi

# npm packages from lock files, only where a lock file exists and node_modules is stale.
if [ "$what" = test ]; then
  for lock in $(git ls-files '*package-lock.json' 2>/dev/null || true); do
    dir=$(dirname "$lock")
    if [ ! -d "$dir/node_modules" ] || [ "$lock" -nt "$dir/node_modules/.package-lock.json" ]; then
      echo "deps: npm ci in $dir" >&2
      (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
    fi
  done
fi

# Go tools, pinned, built once into a cache shared by clones (CI makes a fresh clone each
# run) and linked into ./bin.
if [ "$what" = test ]; then
  tools="${XDG_CACHE_HOME:-$HOME/.cache}/offsite/tools"
  mkdir -p "$tools" bin
  if [ ! -x "$tools/staticcheck" ]; then
    echo "deps: go install staticcheck" >&2
    GOBIN="$tools" go install honnef.co/go/tools/cmd/staticcheck@v0.8.2 >&2
  fi
  # A real InfluxDB 1.8 (v2 write API and Flux) for the telemetry tests; about 2 minutes once.
  if [ ! -x "$tools/influxd" ]; then
    echo "deps: go install influxd 1.8.10 (takes a few minutes, once)" >&2
    GOBIN="$tools" GOFLAGS=-mod=mod go install github.com/influxdata/influxdb/cmd/influxd@v1.8.10 >&2
  fi
  ln -sf "$tools/staticcheck" bin/staticcheck
  ln -sf "$tools/influxd" bin/influxd
fi
