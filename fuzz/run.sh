#!/usr/bin/env bash
# Runs every fuzz target for SECONDS from its committed corpus (fuzz/corpus/<target>/),
# never writing into the corpus: new inputs go to a scratch folder under the build
# directory. A crash leaves its input as BUILD_DIR/fuzz-crashes/<target>/crash-* and
# fails the run. Prints each target's execution count.
# Usage: fuzz/run.sh BUILD_DIR [SECONDS]   (default 60)
set -euo pipefail
build=$1
seconds=${2:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
status=0
for target in scenario calibration nccl_tests kineto simulate; do
  scratch=$build/fuzz-scratch/$target
  crashes=$build/fuzz-crashes/$target
  rm -rf "$scratch"
  mkdir -p "$scratch" "$crashes"
  log=$build/fuzz-$target.log
  echo "+ ${target}_fuzz for ${seconds} s"
  corpus=$root/fuzz/corpus/$target
  [ "$target" = simulate ] && corpus=$root/fuzz/corpus/scenario  # the scenarios, simulated
  if ! "$build/fuzz/${target}_fuzz" -max_total_time="$seconds" -timeout=60 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$crashes/" "$scratch" "$corpus" \
      >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "error: ${target}_fuzz failed; the input is in $crashes/" >&2
    status=1
  fi
  echo "  $target: $(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{print $2}') executions"
done
exit $status
