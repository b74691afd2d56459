#!/bin/sh
# The two speed figures of a single run: a whole-process `orrery run` of GPT-3 175B on
# 1024 A100 (scenarios/gpt3-175b-a100-1024.yaml), N runs, median and spread; and the
# in-process Llama 3 405B symmetric step in three allocator states (step_after_timing),
# N processes. Prints the machine's load average first: other work on the same cores
# inflates every figure. Usage: bench/startup_timing.sh [BUILD_DIR] [N]  (build, 30)
set -eu
build=${1:-build}
n=${2:-30}
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
times=""
i=0
while [ "$i" -lt "$n" ]; do
  s=$(date +%s%N)
  "$build/cli/orrery" run scenarios/gpt3-175b-a100-1024.yaml >/dev/null
  e=$(date +%s%N)
  times="$times $(( (e - s) / 1000 ))"
  i=$((i + 1))
done
echo "$times" | tr ' ' '\n' | grep . | sort -n | awk '{v[NR]=$1} END {
  printf "orrery run GPT-3 175B/1024, %d runs: median %.1f ms, min %.1f, max %.1f\n",
         NR, v[int((NR+1)/2)]/1000, v[1]/1000, v[NR]/1000 }'
i=0
while [ "$i" -lt 5 ]; do
  "$build/bench/step_after_timing"
  i=$((i + 1))
done
