#!/bin/sh
# Issue 21's widened sweep: the shipped GPT-3 175B sweep
# (scenarios/sweep-gpt3-175b-a100-1024.yaml) with `nodes` at 40 sizes (16, 32, ..., 640),
# `global_batch` at 20 values (256, 512, ..., 5120) and `precision: [fp16, bf16]` added to
# its sweep section (54,279,432 candidates). Prints the peak RSS and candidates per second
# of --dry-run and of one share (--shard SHARD, default 0/64), and with `full` runs the
# whole sweep in one process (hours on 2 cores).
# Usage: bench/sweep_widened.sh [BUILD_DIR] [SHARD] [full]
set -eu
build=${1:-build}
shard=${2:-0/64}
full=${3:-}
orrery="$build/cli/orrery"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
sed "s/^sweep:$/sweep:\n  nodes: [$(seq -s ', ' 16 16 640)]\n  global_batch: [$(seq -s ', ' 256 256 5120)]\n  precision: [fp16, bf16]/" \
  scenarios/sweep-gpt3-175b-a100-1024.yaml >"$out/widened.yaml"

run() {  # run LABEL CANDIDATES COMMAND...
  label=$1 n=$2
  shift 2
  load=$(cut -d' ' -f1 /proc/loadavg)
  /usr/bin/time -f "%e %U %M" -o "$out/time" "$@" >"$out/table.txt"
  set -- $(cat "$out/time")
  echo "$label: $n candidates, wall $1 s, user $2 s, $(echo "$n $1 $2" | awk '{printf "%.0f candidates/s wall, %.0f per processor-second", $1/$2, $1/$3}'), peak RSS $(($3 / 1024)) MiB, load $load on $(nproc) cores"
}
n=$("$orrery" sweep "$out/widened.yaml" --dry-run | awk '/^candidates/ {print $2}')
run "--dry-run" "$n" "$orrery" sweep "$out/widened.yaml" --dry-run
cat "$out/table.txt"
share=$("$orrery" sweep "$out/widened.yaml" --dry-run --shard "$shard" |
  sed -n 's/.*(\([0-9]*\) in this share.*/\1/p')
run "--shard $shard, 2 threads" "$share" \
  "$orrery" sweep "$out/widened.yaml" -j 2 --no-progress --shard "$shard" -o "$out/shard.json"
cat "$out/table.txt"
if [ "$full" = full ]; then
  run "whole sweep, 2 threads" "$n" "$orrery" sweep "$out/widened.yaml" -j 2 --no-progress
  head -3 "$out/table.txt"
fi
