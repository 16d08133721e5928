#!/usr/bin/env bash
# Runs every Fuzz* target of the module for a while each:
#   scripts/fuzz.sh 5000x   (CI: a number of inputs per target)
#   scripts/fuzz.sh 2m      (make fuzz: a duration per target)
# A run that ends with Go's "context deadline exceeded" but wrote no
# failing input is the fuzzing engine stopping a slow worker at the time
# limit, not a finding; it is retried once. Any real failure (a crasher
# written to testdata/fuzz) fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
budget=${1:-2m}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    echo "fuzz $pkg $f ($budget)"
    for try in 1 2; do
      if go test "$pkg" -run '^$' -fuzz "^${f}\$" -fuzztime "$budget" >"$log" 2>&1; then
        break
      fi
      if [ "$try" = 1 ] && grep -q "context deadline exceeded" "$log" && ! grep -q "Failing input written" "$log"; then
        echo "  (engine stopped at the time limit without a finding; retrying once)"
        continue
      fi
      cat "$log"
      exit 1
    done
  done
done
