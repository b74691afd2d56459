#!/bin/sh
# Times the exhaustive GPT-3 175B sweep (scenarios/sweep-gpt3-175b-a100-1024.yaml) with
# two threads: wall and CPU seconds, the load average the machine had (other work on
# the same cores inflates the wall time), and the sweep's own counts.
# Usage: bench/sweep_timing.sh [BUILD_DIR]   (default: build)
set -eu
build=${1:-build}
out=$(mktemp -d)
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
/usr/bin/time -f "wall %e s, user %U s, system %S s" \
  "$build/cli/orrery" sweep scenarios/sweep-gpt3-175b-a100-1024.yaml -j 2 --no-progress \
  --csv "$out/all.csv" >"$out/table.txt"
grep -E '^(candidates|as written|best|Megatron)' "$out/table.txt"
echo "CSV rows by status:"
tail -n +2 "$out/all.csv" | cut -d, -f2 | sort | uniq -c
rm -rf "$out"
