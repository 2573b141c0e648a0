#!/usr/bin/env bash
# The floor plan of docs/architecture.md, checked from the code's own imports: nothing imports a
# floor above its own, only api/ speaks HTTP through fiber, the video worker links no database,
# and the event record is a leaf. Prints every breach and exits 1 if there is one.
set -euo pipefail
cd "$(dirname "$0")/.."
mod=$(go list -m)

# floor of a package path relative to the module: higher may import lower, never the reverse.
floor() {
  case "$1" in
    gateway|gateway/*) echo 4 ;;
    api|api/*) echo 3 ;;
    events|events/*|analytics|analytics/*|ingest|ingest/*|streams|streams/*) echo 2 ;;
    devices|devices/*|firmware-profiles|firmware-profiles/*) echo 1 ;;
    internal|internal/*) echo 0 ;;
    *) echo 9 ;;
  esac
}

bad=0
breach() { echo "floor plan: $*"; bad=1; }

while read -r pkg imports; do
  rel=${pkg#"$mod"}; rel=${rel#/}
  [ -z "$rel" ] && continue
  f=$(floor "$rel")
  for imp in $imports; do
    case "$imp" in
      "$mod"/*)
        irel=${imp#"$mod"/}
        fi=$(floor "$irel")
        case "$irel" in gateway|gateway/*)
          case "$rel" in gateway|gateway/*) ;; *) breach "$rel imports $irel (only the process imports gateway/)";; esac ;;
        esac
        if [ "$fi" -gt "$f" ] && [ "$f" != 9 ]; then breach "$rel (floor $f) imports $irel (floor $fi)"; fi
        ;;
      github.com/gofiber/*)
        case "$rel" in api|api/*) ;; *) breach "$rel imports $imp (only api/ speaks HTTP through fiber)";; esac ;;
    esac
  done
done < <(go list -f '{{.ImportPath}} {{join .Imports " "}}' ./...)

# The event record is a leaf: the standard library only.
for imp in $(go list -f '{{join .Imports " "}}' ./events/event); do
  case "$imp" in *.*/*) breach "events/event imports $imp (it must stay a dependency-free leaf)";; esac
done

# The video worker links no database driver and no WebRTC stack.
for dep in $(CGO_ENABLED=1 go list -deps ./analytics/cmd/offsite-analytics); do
  case "$dep" in
    github.com/jackc/pgx*|modernc.org/sqlite*|github.com/pion/webrtc*) breach "offsite-analytics links $dep";;
  esac
done

# Nothing reaches into a dependency's unexported state by reflection.
for f in $(git ls-files 'streams/*.go' | grep -v '_test\.go$'); do
  if grep -q '^\s*"reflect"' "$f"; then breach "$f imports reflect"; fi
done

if [ "$bad" = 0 ]; then echo "floor plan: ok ($(go list ./... | wc -l) packages)"; fi
exit $bad
