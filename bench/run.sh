#!/usr/bin/env bash
# Ingest benchmark: the same loads, in the same run, against nudge (every
# 200 committed with fsync) and against bench/baseline (same HTTP stack,
# same receivers verifying and normalizing, nothing stored); prints a
# markdown table and the nudge/baseline throughput ratio.
#
#   bench/run.sh              # 20 s per load
#   DUR=60s bench/run.sh      # longer
#   KINDS="shopify-order" RATES="1000 500" bench/run.sh
#   PAIRS=3 bench/run.sh      # 3 alternating baseline/nudge pairs at c=CONC;
#                             # the ratio reported is their median
#
# The ratio is only as steady as the shared machine: the baseline alone
# moved 4,954-5,623 orders/s between runs minutes apart, so one pair can
# be off by ±0.05; PAIRS gives the spread and a median.
# Everything listens on 127.0.0.1 only; every load is bounded by DUR.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${DUR:-20s}
CONC=${CONC:-64}
PAIRS=${PAIRS:-1}
RATES=${RATES:-"1000 250"}  # open-loop rates for shopify-order
KINDS=${KINDS:-"shopify-order shopify-checkout sendgrid-batch segment-batch"}
PORT=${PORT:-18480}
BPORT=${BPORT:-18490}
WORK=$(mktemp -d /tmp/nudge-bench.XXXXXX)
OUT=${OUT:-$WORK/results.md}
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT

echo "building into $WORK" >&2
go build -o "$WORK/nudge" ./cmd/nudge
go build -o "$WORK/loadgen" ./bench/loadgen
go build -o "$WORK/baseline" ./bench/baseline
go build -o "$WORK/diskprobe" ./bench/diskprobe
cp -r rules.d "$WORK/rules.d"

cat >"$WORK/nudge.yaml" <<YAML
listen: 127.0.0.1:$PORT
data_dir: $WORK/data
public_url: http://127.0.0.1:$PORT
admin: { token: bench-admin-token-0123456789 }
stores:
  - { id: main, platform: shopify, name: Bench, url: "https://example.com", currency: USD, webhook_secret: bench-secret }
tracking:
  write_key: bench-write-key
  allowed_origins: ["https://example.com"]
  rate_per_ip: 1000000
  rate_per_key: 1000000
email:
  provider: log
  from: { email: shop@example.com, name: Bench }
rules: ["rules.d/*.yaml"]
${EXTRA_CONFIG:-}
YAML

wait_http() { # url
  for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "server at $1 did not come up" >&2
  return 1
}

start_nudge() {
  rm -rf "$WORK/data"
  "$WORK/nudge" serve -c "$WORK/nudge.yaml" --log-level warn >>"$WORK/nudge.log" 2>&1 &
  NPID=$!
  wait_http "http://127.0.0.1:$PORT/readyz"
}
# commit_summary: the group commit over the whole nudge run, from its
# /metrics (storage.CommitStats): writes and pages per commit, mean commit.
commit_summary() {
  curl -fsS "http://127.0.0.1:$PORT/metrics" 2>/dev/null | awk '
    /^nudge_store_commits_total / {c=$2} /^nudge_store_commit_writes_total / {w=$2}
    /^nudge_store_commit_pages_total / {p=$2} /^nudge_store_commit_seconds_sum / {s=$2}
    END { if (c > 0) printf "%.1f writes, %.0f pages, %.1f ms per commit", w/c, p/c, 1000*s/c }'
}
stop_nudge() {
  COMMITS=$(commit_summary)
  RSS=$(awk '/VmHWM/ {print $2}' /proc/$NPID/status 2>/dev/null || echo 0)
  kill -TERM "$NPID"; wait "$NPID" || true
  DBSIZE=$(stat -c %s "$WORK/data/nudge.db" 2>/dev/null || echo 0)
}
start_baseline() {
  rm -rf "$WORK/bkeys"; mkdir -p "$WORK/bkeys"
  "$WORK/baseline" -listen 127.0.0.1:$BPORT -secret bench-secret -sendgrid-key-dir "$WORK/bkeys" -write-key bench-write-key >>"$WORK/baseline.log" 2>&1 &
  BPID=$!
  wait_http "http://127.0.0.1:$BPORT/healthz"
}
stop_baseline() { kill -TERM "$BPID"; wait "$BPID" || true; }

# load TARGET URL KEYDIR KIND JSONFILE MODEARGS...
load() {
  local target=$1 url=$2 keydir=$3 kind=$4 json=$5; shift 5
  "$WORK/loadgen" -label "$target" -url "$url" -secret bench-secret -write-key bench-write-key \
    -sendgrid-key-dir "$keydir" -kind "$kind" -duration "$DUR" -json "$json" "$@" | tee -a "$WORK/raw.txt" >&2
}

row() { # json file → markdown row
  python3 - "$1" "$2" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
mode = f"c={r['concurrency']}" if r['mode'] == 'closed' else f"{r['offered_rps']:.0f}/s offered"
errs = ", ".join(f"{k}×{v}" for k, v in sorted((r.get('errors') or {}).items())) or "0"
extra = sys.argv[2]
print(f"| {r['target']} | {r['kind']} | {mode} | {r['body_bytes']:,} | {r['throughput_rps']:.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['max_ms']:.1f} | {errs} (dropped {r.get('dropped', 0)}) | {extra} |")
PY
}

{
echo "Run $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $DUR per load."
echo
# Throughput and p99 follow the disk's flush speed (bench/README.md), so
# every table says what the disk under the data dir could do that day.
"$WORK/diskprobe" -dir "$WORK" -rounds 50
echo
echo "| target | kind | load | body B | 200/s | p50 ms | p99 ms | max ms | errors | nudge RSS / file; group commit |"
echo "|---|---|---|---|---|---|---|---|---|---|"
} >"$OUT"

# run_one TARGET KIND TAG MODEARGS...: one load against a fresh server,
# appended to the table; prints the throughput.
run_one() {
  local target=$1 kind=$2 tag=$3; shift 3
  local f="$WORK/$target-$kind-$tag.json" extra=""
  if [ "$target" = nudge ]; then
    start_nudge
    load nudge "http://127.0.0.1:$PORT" "$WORK/data" "$kind" "$f" "$@"
    stop_nudge
    extra="$((RSS / 1024)) MB / $((DBSIZE / 1048576)) MB; $COMMITS"
  else
    start_baseline
    load baseline "http://127.0.0.1:$BPORT" "$WORK/bkeys" "$kind" "$f" "$@"
    stop_baseline
  fi
  row "$f" "$extra" >>"$OUT"
  python3 -c "import json;print(json.load(open('$f'))['throughput_rps'])"
}

SUMMARY=()
for kind in $KINDS; do
  pairs=()
  for p in $(seq 1 "$PAIRS"); do
    # Baseline first, then nudge, each pair back to back, so both see
    # about the same machine.
    b=$(run_one baseline "$kind" "c$CONC-$p" -c "$CONC")
    n=$(run_one nudge "$kind" "c$CONC-$p" -c "$CONC")
    pairs+=("$b:$n")
  done
  SUMMARY+=("$(python3 - "$kind" "$CONC" "${pairs[@]}" <<'PY'
import statistics, sys
kind, conc, pairs = sys.argv[1], sys.argv[2], [tuple(map(float, p.split(":"))) for p in sys.argv[3:]]
ratios = [n / b if b else 0 for b, n in pairs]
med = statistics.median(ratios)
b, n = pairs[min(range(len(ratios)), key=lambda i: abs(ratios[i] - med))]
line = f"- {kind} at c={conc}: nudge {n:.0f}/s vs baseline {b:.0f}/s, ratio **{med:.2f}**"
if len(pairs) > 1:
    line += f" (median of {len(pairs)} alternating pairs: " + ", ".join(f"{r:.2f}" for r in ratios) + ")"
if kind == "shopify-order":
    line += " (target ≥ 0.70)"  # the issue's target is for orders; other kinds are reported
print(line)
PY
)")
  if [ "$kind" = shopify-order ]; then
    for r in $RATES; do
      for target in baseline nudge; do
        run_one "$target" "$kind" "rate$r" -rate "$r" -c 1000 >/dev/null
      done
    done
  fi
done

{
echo
printf '%s\n' "${SUMMARY[@]}"
} >>"$OUT"
cat "$OUT"
echo "results: $OUT (raw JSON in $WORK)" >&2
