#!/usr/bin/env bash
# Peak RSS of `nudge serve` holding a large history: fills a data dir with
# RECORDS records over PROFILES profiles (bench/memory), then serves it,
# drives webhooks (bench/loadgen) and profile reads for DUR, and reports
# the server's peak RSS (VmHWM) with the file size.
#
#   bench/memory.sh                          # 1,000,000 records, 100,000 profiles
#   RECORDS=200000 PROFILES=20000 bench/memory.sh
#   DATA=/tmp/big/data bench/memory.sh       # reuse a filled dir
set -euo pipefail
cd "$(dirname "$0")/.."
RECORDS=${RECORDS:-1000000}
PROFILES=${PROFILES:-100000}
DUR=${DUR:-20s}
PORT=${PORT:-18580}
WORK=$(mktemp -d /tmp/nudge-mem.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
go build -o "$WORK/nudge" ./cmd/nudge
go build -o "$WORK/loadgen" ./bench/loadgen
go build -o "$WORK/fill" ./bench/memory
if [ -z "${DATA:-}" ]; then
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
for _ in $(seq 1 300); do curl -fsS -o /dev/null "http://127.0.0.1:$PORT/readyz" 2>/dev/null && break; sleep 0.2; done
echo "serving; RSS after start: $(awk '/VmRSS/ {print $2}' /proc/$NPID/status) KB" >&2
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
HWM=$(awk '/VmHWM/ {print $2}' /proc/$NPID/status)
RSS=$(awk '/VmRSS/ {print $2}' /proc/$NPID/status)
kill -TERM $NPID; wait $NPID || true
SIZE=$(stat -c %s "$DATA/nudge.db")
echo "nudge serve on $RECORDS records / $PROFILES profiles: peak RSS $((HWM / 1024)) MB (now $((RSS / 1024)) MB), file $((SIZE >> 20)) MB, $n profile reads (target: peak RSS ≤ 250 MB)"
