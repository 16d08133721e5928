#!/usr/bin/env bash
# Reproduces the insights figures of bench/README.md (section Insights):
# the BG/NBD and Gamma-Gamma fits on CDNOW_sample.txt and precision /
# recall / hit-rate@10 of the recommendations on Online Retail against a
# popularity baseline. Extra arguments go to the program (-json, -k,
# -window, -half-life, -beta, -split).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
data="${NUDGE_DATA:-$root/../shared/data}"
cd "$root"
exec go run ./bench/insights -data "$data" "$@"
