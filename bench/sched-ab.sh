#!/usr/bin/env bash
# Scheduler dispatch benchmark, A against B: bench/sched built from a base
# revision and from the working tree, run alternately in the same minutes,
# so a change is judged against the disk and CPU of the same moment (this
# machine's disk flushed 70 random pages in 2.0 ms at one point of an hour
# and 4.8 ms at another, which moved steps/s by a third).
#
#   bench/sched-ab.sh                    # HEAD~1 against the working tree, 3 pairs of 40,000 steps
#   BASE=ec46a85 PAIRS=5 bench/sched-ab.sh
#   N=20000 ARGS=-returning bench/sched-ab.sh
#   HARNESS=tree BASE=dd9c2e0 bench/sched-ab.sh   # the base built with the tree's bench/sched
#                                                # (for figures an older harness did not print)
#
# Prints each run's steps/s (and, where the binary reports it, its process
# CPU per step), then the medians of each side and their ratios, and the
# disk's flush times before and after.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${BASE:-HEAD~1}
PAIRS=${PAIRS:-3}
N=${N:-40000}
ARGS=${ARGS:-}
WORK=$(mktemp -d /tmp/nudge-sched-ab.XXXXXX)
trap 'git worktree remove --force "$WORK/base" >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT

git worktree add --detach "$WORK/base" "$BASE" >/dev/null 2>&1
if [ "${HARNESS:-}" = tree ]; then
  rm -rf "$WORK/base/bench/sched"
  cp -r bench/sched "$WORK/base/bench/sched"
fi
(cd "$WORK/base" && go build -o "$WORK/sched-base" ./bench/sched)
go build -o "$WORK/sched-tree" ./bench/sched
go build -o "$WORK/diskprobe" ./bench/diskprobe

probe() { "$WORK/diskprobe" -dir "$WORK" 2>&1 | tail -1; }
run() { # binary side -> "steps/s cpu-µs/step" (cpu "-" when not reported)
  local out r c
  out=$("$1" -n "$N" $ARGS 2>&1)
  r=$(sed -n 's/.* = \([0-9]*\) steps\/s$/\1/p' <<<"$out")
  c=$(sed -n 's/.*process CPU: \([0-9]*\) µs per step.*/\1/p' <<<"$out")
  echo "$r" >>"$WORK/$2.txt"
  [ -n "$c" ] && echo "$c" >>"$WORK/$2.cpu"
  echo "$r ${c:--}"
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

echo "base $(git rev-parse --short "$BASE") against the working tree; $PAIRS pairs of $N steps $ARGS"
probe
: >"$WORK/base.txt"
: >"$WORK/tree.txt"
: >"$WORK/base.cpu"
: >"$WORK/tree.cpu"
for i in $(seq 1 "$PAIRS"); do
  read -r b bc < <(run "$WORK/sched-base" base)
  read -r t tc < <(run "$WORK/sched-tree" tree)
  echo "pair $i: base $b steps/s ($bc cpu-µs/step), tree $t steps/s ($tc cpu-µs/step)"
done
probe
mb=$(median <"$WORK/base.txt")
mt=$(median <"$WORK/tree.txt")
echo "median: base $mb steps/s, tree $mt steps/s, ratio $(awk -v a="$mt" -v b="$mb" 'BEGIN {printf "%.2f", a/b}')"
if [ -s "$WORK/base.cpu" ] && [ -s "$WORK/tree.cpu" ]; then
  cb=$(median <"$WORK/base.cpu")
  ct=$(median <"$WORK/tree.cpu")
  echo "median CPU per step: base $cb µs, tree $ct µs, ratio $(awk -v a="$ct" -v b="$cb" 'BEGIN {printf "%.2f", a/b}')"
fi
