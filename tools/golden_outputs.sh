#!/usr/bin/env bash
# Writes every output orrery produces for the shipped inputs into OUT_DIR, one file per
# command (stdout, stderr and the exit code, plus any file the command writes), so that
# a change meant to keep behaviour can be proved byte for byte:
#
#   tools/golden_outputs.sh build /tmp/before      # on the old commit
#   tools/golden_outputs.sh build /tmp/after       # on the new one
#   diff -r /tmp/before /tmp/after                 # empty: no output changed
#
# Inputs: scenarios/ (and validation/, validation-candidates/), the scenario fuzz corpus,
# the docs' example files under tests/, the bad-input files of tests/cli/errors/. Each
# scenario runs `check` (table, JSON), `run` (table, JSON, CSV, --explain, --trace) and,
# when it has fewer than 2,048 GPUs, `run --full`; sweeps run with their CSV, JSON, best
# scenario and HTML report. Usage: tools/golden_outputs.sh [BUILD_DIR] OUT_DIR
set -uo pipefail
cd "$(dirname "$0")/.."
build=${2:+$1}
build=${build:-build}
out=${2:-${1:?usage: tools/golden_outputs.sh [BUILD_DIR] OUT_DIR}}
orrery="$PWD/$build/cli/orrery"
[ -x "$orrery" ] || { echo "error: no $orrery" >&2; exit 2; }
mkdir -p "$out"
out=$(cd "$out" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# record NAME ARGS...: runs orrery ARGS and keeps stdout, stderr and the exit code; the
# files it wrote under $tmp are moved beside them.
record() {
  local name=$1
  shift
  "$orrery" "$@" >"$out/$name.out" 2>"$out/$name.err"
  echo $? >"$out/$name.rc"
  for f in "$tmp"/*; do
    [ -e "$f" ] && mv "$f" "$out/$name.$(basename "$f")"
  done
}

scenarios=$(ls scenarios/*.yaml scenarios/validation/*.yaml scenarios/validation-candidates/*.yaml \
  fuzz/corpus/scenario/*.yaml tests/sweep/data/*.yaml tests/cli/errors/*.yaml | sort -u)
for s in $scenarios; do
  n=$(echo "$s" | tr '/' '_')
  record "$n.check" check "$s"
  record "$n.check-json" check --format json "$s"
  record "$n.run" run --trace "$tmp/trace.json" "$s"
  record "$n.run-json" run --format json "$s"
  record "$n.run-csv" run --format csv "$s"
  record "$n.run-explain" run --explain "$s"
  gpus=$(grep -o '"gpus": *[0-9]*' "$out/$n.check-json.out" 2>/dev/null | head -1 | grep -o '[0-9]*$')
  if [ -n "$gpus" ] && [ "$gpus" -lt 2048 ]; then
    record "$n.run-full" run --full "$s"
  fi
  if grep -q '^sweep:' "$s"; then
    record "$n.sweep" sweep --no-progress -j 2 --csv "$tmp/c.csv" --json "$tmp/c.json" \
      --best "$tmp/best.yaml" "$s"
    if [ -e "$out/$n.sweep.c.json" ]; then
      record "$n.report" report "$out/$n.sweep.c.json" -o "$tmp/report.html"
    fi
  fi
done
record validate validate scenarios/validation
record validate-json validate --format json scenarios/validation
record validate-csv validate --format csv scenarios/validation
record validate-candidates validate scenarios/validation-candidates
record presets presets
record calibrate calibrate tests/calibrate/data/nd-h100-v5_all_reduce_perf.log \
  tests/calibrate/data/nd-h100-v5_gemm_fp8.yaml -o "$tmp/profile.yaml"
# Paths in messages are the same in both trees (relative); the temporary folder is not.
grep -rl "$tmp" "$out" 2>/dev/null | xargs -r sed -i "s#$tmp#TMP#g"
echo "$(ls "$out" | wc -l) files in $out"
