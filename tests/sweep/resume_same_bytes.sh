#!/bin/sh
# Usage: resume_same_bytes.sh ORRERY SCENARIO WORKDIR [RANKS]
# `orrery sweep --checkpoint FILE` records its results; a run interrupted after half of
# them (the checkpoint cut to its first half) and resumed with --resume writes the CSV,
# JSON and table of an uninterrupted run byte for byte, and simulates only the rest. With
# RANKS the resumed run is `mpirun -n RANKS orrery sweep`, whose rank 0 reads and writes
# the checkpoint as one process does.
set -eu
orrery=$1 scenario=$2 dir=$3 ranks=${4:-}
rm -rf "$dir" && mkdir -p "$dir"
"$orrery" sweep "$scenario" -j 1 --csv "$dir/one.csv" --json "$dir/one.json" \
  --checkpoint "$dir/whole.ckpt" >"$dir/one.txt"
python3 - "$dir/whole.ckpt" "$dir/half.ckpt" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
j["results"] = j["results"][: len(j["results"]) // 2]
open(sys.argv[2], "w").write(json.dumps(j) + "\n")
PY
cp "$dir/half.ckpt" "$dir/resumed.ckpt"
launch=""
if [ -n "$ranks" ]; then
  launch="mpirun -n $ranks"
  [ "$(id -u)" = 0 ] && launch="$launch --allow-run-as-root"
  export OMPI_MCA_rmaps_base_oversubscribe=1
fi
$launch "$orrery" sweep "$scenario" -j 2 --csv "$dir/many.csv" --json "$dir/many.json" \
  --checkpoint "$dir/resumed.ckpt" --resume >"$dir/many.txt"
cmp "$dir/one.csv" "$dir/many.csv"
cmp "$dir/one.json" "$dir/many.json"
cmp "$dir/one.txt" "$dir/many.txt"
# The resumed run's checkpoint holds every result again.
cmp "$dir/whole.ckpt" "$dir/resumed.ckpt"
grep -q ',simulated,' "$dir/one.csv"
echo "resumed: same bytes, $(wc -l <"$dir/one.csv") CSV lines"
