#!/usr/bin/env bash
# Peak RSS of `nudge serve` holding a large history: fills a data dir with
# RECORDS records over PROFILES profiles (bench/memory), then serves it,
# drives webhooks (bench/loadgen) and profile reads for DUR, and reports
# the server's peak RSS (VmHWM) with the file size, and the largest
# RssAnon (heap, stacks) and RssFile (pages of the memory-mapped store)
# seen by sampling /proc/PID/status every 0.2 s.
#
#   bench/memory.sh                          # 1,000,000 records, 100,000 profiles
#   RECORDS=200000 PROFILES=20000 bench/memory.sh
#   DATA=/tmp/big/data bench/memory.sh       # reuse a filled dir
#   KEEP=1 bench/memory.sh                   # keep the work dir (nudge.log, rss.tsv)
set -euo pipefail
cd "$(dirname "$0")/.."
RECORDS=${RECORDS:-1000000}
PROFILES=${PROFILES:-100000}
DUR=${DUR:-20s}
PORT=${PORT:-18580}
DATA=${DATA:-}
WORK=$(mktemp -d /tmp/nudge-mem.XXXXXX)
# The work dir goes at exit unless it holds the filled data (printed, for
# DATA=... next time) or KEEP is set.
trap 'kill $(jobs -p) 2>/dev/null || true; [ -n "${KEEP:-}" ] || [ "$DATA" = "$WORK/data" ] || rm -rf "$WORK"' EXIT
# status FIELD...: fields of one read of /proc/$NPID/status, in KB.
status() { awk -v want="$*" 'BEGIN { n = split(want, w, " ") } { v[$1] = $2 } END { for (i = 1; i <= n; i++) printf "%s ", v[w[i] ":"] }' /proc/$NPID/status 2>/dev/null; }
go build -o "$WORK/nudge" ./cmd/nudge
go build -o "$WORK/loadgen" ./bench/loadgen
go build -o "$WORK/fill" ./bench/memory
if [ -z "$DATA" ]; then
  DATA=$WORK/data
  /usr/bin/time -f "fill: peak RSS %M KB, %e s" "$WORK/fill" -dir "$DATA" -records "$RECORDS" -profiles "$PROFILES"
fi
cp -r rules.d "$WORK/rules.d"
cat >"$WORK/nudge.yaml" <<YAML
listen: 127.0.0.1:$PORT
data_dir: $DATA
admin: { token: mem-bench-token-0123456789 }
stores:
  - { id: main, platform: shopify, name: Bench, url: "https://example.com", currency: USD, webhook_secret: bench-secret }
tracking: { write_key: bench-write-key }
email:
  provider: log
  from: { email: shop@example.com, name: Bench }
rules: ["rules.d/*.yaml"]
YAML
"$WORK/nudge" serve -c "$WORK/nudge.yaml" --log-level warn >"$WORK/nudge.log" 2>&1 &
NPID=$!
# Sample the split from the start: VmHWM has no per-kind peak.
( while kill -0 $NPID 2>/dev/null; do echo "$SECONDS $(status VmRSS RssAnon RssFile VmHWM)"; sleep 0.2; done >"$WORK/rss.tsv" ) &
for _ in $(seq 1 300); do curl -fsS -o /dev/null "http://127.0.0.1:$PORT/readyz" 2>/dev/null && break; sleep 0.2; done
read -r RSS0 ANON0 FILE0 <<<"$(status VmRSS RssAnon RssFile)"
echo "serving; RSS after start: $((RSS0 / 1024)) MB (RssAnon $((ANON0 / 1024)) MB, RssFile $((FILE0 / 1024)) MB)" >&2
"$WORK/loadgen" -url "http://127.0.0.1:$PORT" -secret bench-secret -kind shopify-order -c 16 -duration "$DUR" -label nudge-1M &
LPID=$!
end=$((SECONDS + ${DUR%s}))
n=0
while [ $SECONDS -lt $end ]; do
  p=$(( (n * 7919) % PROFILES ))
  curl -fsS -o /dev/null -H "Authorization: Bearer mem-bench-token-0123456789" "http://127.0.0.1:$PORT/api/v1/profiles/m$p@example.com" || true
  n=$((n + 1))
done
wait $LPID || true
read -r HWM RSS ANON FILE <<<"$(status VmHWM VmRSS RssAnon RssFile)"
kill -TERM $NPID; wait $NPID || true
read -r MAXANON MAXFILE <<<"$(awk 'NF >= 4 { if ($3 > a) a = $3; if ($4 > f) f = $4 } END { print a + 0, f + 0 }' "$WORK/rss.tsv")"
SIZE=$(stat -c %s "$DATA/nudge.db")
echo "nudge serve on $RECORDS records / $PROFILES profiles: peak RSS $((HWM / 1024)) MB (now $((RSS / 1024)) MB: RssAnon $((ANON / 1024)) MB, RssFile $((FILE / 1024)) MB; sampled peaks RssAnon $((MAXANON / 1024)) MB, RssFile $((MAXFILE / 1024)) MB), file $((SIZE >> 20)) MB, $n profile reads (target: peak RSS ≤ 250 MB; load $(cut -d' ' -f1-3 /proc/loadavg))"
[ -z "${KEEP:-}" ] || echo "work dir: $WORK" >&2
[ "$DATA" != "$WORK/data" ] || echo "filled data dir kept: DATA=$DATA" >&2
