#!/usr/bin/env bash
# Runs every Go fuzz target (func FuzzXxx in a _test.go file) for a short time each
# (FUZZTIME, default 3s), so make test exercises the parsers of outside input beyond their
# seed corpus. A target that finds a crash fails the run; Go writes the input to
# testdata/fuzz/FuzzXxx/ in its package, where it becomes a seed for the next run.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-3s}
fail=0
n=0
while IFS=: read -r file name; do
  pkg=./$(dirname "$file")
  n=$((n + 1))
  if ! out=$(go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg" 2>&1); then
    echo "FAIL $pkg $name"
    echo "$out" | tail -20
    fail=1
  else
    echo "ok   $pkg $name"
  fi
done < <(git ls-files '*_test.go' | xargs grep -oE '^func Fuzz[A-Za-z0-9_]+' | sed 's/func //')
echo "fuzzed $n targets for $fuzztime each"
exit $fail
