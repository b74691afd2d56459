#!/bin/sh
# The streaming sweep at three sizes and across MPI ranks: candidates per second and peak
# resident memory (GNU time's maximum RSS) of the GPT-3 175B sweep
# (scenarios/sweep-gpt3-175b-a100-1024.yaml) widened over node counts and global batches.
# The load average is printed with each run: other work on the same cores inflates the
# wall time, not the user time.
# Usage: bench/sweep_scale.sh [BUILD_DIR] [SIZES] [RANKS] [SHARD]
#   SIZES: any of 1e5 1e6 1e7 (default "1e5 1e6"; "" for none), each run with --csv of
#          every candidate on 2 threads. 1e7 (11,768,484 candidates; minutes to hours on 2 cores) runs as the share
#          SHARD (default 0/64) with -o, after a --dry-run of the whole.
#   RANKS: MPI rank counts for the 1e5 sweep, 1 thread each, no --csv (whose pass runs on
#          rank 0 alone), the ranks taking work from rank 0's queue (default "1 2 4";
#          oversubscribed is fine)
set -eu
build=${1:-build}
sizes=${2-"1e5 1e6"}
ranks=${3-"1 2 4"}
shard=${4:-0/64}
orrery="$build/cli/orrery"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# The shipped sweep with `nodes` and `global_batch` added to its sweep section.
widen() {  # widen NODES BATCHES FILE
  sed "s/^sweep:$/sweep:\n  nodes: [$1]\n  global_batch: [$2]/" \
    scenarios/sweep-gpt3-175b-a100-1024.yaml >"$3"
}
seq_list() { seq -s ', ' "$@"; }
widen "64, 128, 256, 512" "1536" "$out/1e5.yaml"                              # 106,344
widen "64, 96, 128, 192, 256" "768, 1536, 2304, 3072" "$out/1e6.yaml"         # 954,228
widen "$(seq_list 16 16 640)" "$(seq_list 256 256 2560)" "$out/1e7.yaml"      # 40 x 10

run() {  # run LABEL CANDIDATES COMMAND...
  label=$1 n=$2
  shift 2
  load=$(cut -d' ' -f1 /proc/loadavg)
  /usr/bin/time -f "%e %U %M" -o "$out/time" "$@" >"$out/table.txt"
  set -- $(cat "$out/time")
  echo "$label: $n candidates, wall $1 s, user $2 s, $(echo "$n $1 $2" | awk '{printf "%.0f candidates/s wall, %.0f per processor-second", $1/$2, $1/$3}'), peak RSS $(($3 / 1024)) MiB, load $load on $(nproc) cores"
}
count() { "$orrery" sweep "$1" --dry-run | awk '/^candidates/ {print $2}'; }

for size in $sizes; do
  n=$(count "$out/$size.yaml")
  if [ "$size" = 1e7 ]; then
    run "$size, --dry-run (walks every candidate, screens 2,000)" "$n" \
      "$orrery" sweep "$out/$size.yaml" --dry-run
    cat "$out/table.txt"
    share=$("$orrery" sweep "$out/$size.yaml" --dry-run --shard "$shard" |
      sed -n 's/.*(\([0-9]*\) in this share.*/\1/p')
    run "$size, --shard $shard, 2 threads" "$share" \
      "$orrery" sweep "$out/$size.yaml" -j 2 --no-progress --shard "$shard" -o "$out/shard.json"
  else
    run "$size, 2 threads, --csv" "$n" \
      "$orrery" sweep "$out/$size.yaml" -j 2 --no-progress --csv "$out/all.csv"
  fi
done
if command -v mpirun >/dev/null; then
  root=""
  [ "$(id -u)" = 0 ] && root="--allow-run-as-root"
  export OMPI_MCA_rmaps_base_oversubscribe=1
  n=$(count "$out/1e5.yaml")
  for r in $ranks; do
    # Peak RSS is the largest rank's (GNU time follows mpirun's children).
    run "1e5, MPI $r ranks x 1 thread" "$n" \
      mpirun $root -n "$r" "$orrery" sweep "$out/1e5.yaml" -j 1 --no-progress
  done
fi
