#!/bin/sh
# Usage: same_bytes.sh ORRERY SCENARIO WORKDIR [shards|mpi [pruned|no-pruned [RANKS]]]
# The CSV, JSON and table of `orrery sweep` in one process equal, byte for byte, those of
# three shards merged (orrery sweep --shard i/3, the last as 3/3 --shard-base 1, + orrery
# merge), or with `mpi`, those of `mpirun -n N orrery sweep` for each N in RANKS
# (default "2"), whose ranks take the work from rank 0's queue.
set -eu
orrery=$1 scenario=$2 dir=$3 mode=${4:-shards} pruned=${5:-pruned} ranks=${6:-2}
rm -rf "$dir" && mkdir -p "$dir"
"$orrery" sweep "$scenario" -j 1 --csv "$dir/one.csv" --json "$dir/one.json" >"$dir/one.txt"
if [ "$mode" = mpi ]; then
  root=""
  [ "$(id -u)" = 0 ] && root="--allow-run-as-root"
  for n in $ranks; do
    OMPI_MCA_rmaps_base_oversubscribe=1 mpirun $root -n "$n" "$orrery" sweep "$scenario" -j 1 \
      --csv "$dir/mpi$n.csv" --json "$dir/mpi$n.json" >"$dir/mpi$n.txt"
    cmp "$dir/one.csv" "$dir/mpi$n.csv"
    cmp "$dir/one.json" "$dir/mpi$n.json"
    cmp "$dir/one.txt" "$dir/mpi$n.txt"
    cp "$dir/mpi$n.csv" "$dir/many.csv"
    cp "$dir/mpi$n.json" "$dir/many.json"
    cp "$dir/mpi$n.txt" "$dir/many.txt"
  done
else
  for i in 0 1; do
    "$orrery" sweep "$scenario" --shard "$i/3" -o "$dir/shard$i.json" >/dev/null
  done
  # The last share as a job array numbered from 1 names it.
  "$orrery" sweep "$scenario" --shard 3/3 --shard-base 1 -o "$dir/shard2.json" >/dev/null
  "$orrery" merge "$scenario" "$dir/shard2.json" "$dir/shard0.json" "$dir/shard1.json" \
    --csv "$dir/many.csv" --json "$dir/many.json" >"$dir/many.txt"
fi
cmp "$dir/one.csv" "$dir/many.csv"
cmp "$dir/one.json" "$dir/many.json"
cmp "$dir/one.txt" "$dir/many.txt"
# Not trivially equal: some candidates were simulated, some pruned (no-pruned: a sweep
# whose per-system pass simulates every candidate the deadline leaves).
grep -q ',simulated,' "$dir/one.csv"
[ "$pruned" = no-pruned ] || grep -q ',pruned,' "$dir/one.csv"
echo "same bytes ($mode): $(wc -l <"$dir/one.csv") CSV lines"
