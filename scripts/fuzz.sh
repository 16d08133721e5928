#!/usr/bin/env bash
# Runs every Fuzz* target for a while each: `scripts/fuzz.sh 5s` in CI,
# `make fuzz` (default 2m each) for a longer session.
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${1:-2m}
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    echo "fuzz $pkg $f ($dur)"
    go test "$pkg" -run '^$' -fuzz "^${f}\$" -fuzztime "$dur" >/tmp/fuzz.$$.log 2>&1 || { cat /tmp/fuzz.$$.log; exit 1; }
  done
done
rm -f /tmp/fuzz.$$.log
