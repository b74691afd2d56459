#!/bin/sh
# The streaming sweep at three sizes and across MPI ranks: candidates per second and peak
# resident memory (GNU time's maximum RSS) of the GPT-3 175B sweep
# (scenarios/sweep-gpt3-175b-a100-1024.yaml) widened over node counts and global batches,
# with the CSV of every candidate written. The load average is printed with each run:
# other work on the same cores inflates the wall time, not the user time.
# Usage: bench/sweep_scale.sh [BUILD_DIR] [SIZES] [RANKS]
#   SIZES: any of 1e5 1e6 1e7 (default "1e5 1e6"; 1e7 takes about an hour on 2 cores)
#   RANKS: MPI rank counts for the 1e5 sweep (default "1 2 4"; oversubscribed is fine)
set -eu
build=${1:-build}
sizes=${2:-"1e5 1e6"}
ranks=${3:-"1 2 4"}
orrery="$build/cli/orrery"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# The shipped sweep with `nodes` and `global_batch` added to its sweep section.
widen() {  # widen NODES BATCHES FILE
  sed "s/^sweep:$/sweep:\n  nodes: [$1]\n  global_batch: [$2]/" \
    scenarios/sweep-gpt3-175b-a100-1024.yaml >"$3"
}
seq_list() { seq -s ', ' "$@"; }
widen "64, 128, 256, 512" "1536" "$out/1e5.yaml"
widen "64, 96, 128, 192, 256" "768, 1536, 2304, 3072" "$out/1e6.yaml"
widen "$(seq_list 16 16 640)" "$(seq_list 256 256 1280)" "$out/1e7.yaml"

run() {  # run LABEL COMMAND...
  label=$1
  shift
  load=$(cut -d' ' -f1 /proc/loadavg)
  /usr/bin/time -f "%e %U %M" -o "$out/time" "$@" >"$out/table.txt"
  set -- $(cat "$out/time")
  n=$(grep -E '^candidates' "$out/table.txt" | awk '{print $2}')
  echo "$label: $n candidates, wall $1 s, user $2 s, $(echo "$n $1" | awk '{printf "%.0f", $1/$2}') candidates/s wall, peak RSS $(($3 / 1024)) MiB, load $load on $(nproc) cores"
}

for size in $sizes; do
  run "$size, 2 threads" "$orrery" sweep "$out/$size.yaml" -j 2 --no-progress --csv "$out/all.csv"
done
if command -v mpirun >/dev/null; then
  root=""
  [ "$(id -u)" = 0 ] && root="--allow-run-as-root"
  export OMPI_MCA_rmaps_base_oversubscribe=1
  for n in $ranks; do
    # Peak RSS is the largest rank's (GNU time follows mpirun's children).
    run "1e5, MPI $n ranks x 1 thread" \
      mpirun $root -n "$n" "$orrery" sweep "$out/1e5.yaml" -j 1 --no-progress --csv "$out/all.csv"
  done
fi
