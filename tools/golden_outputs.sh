#!/usr/bin/env bash
# Writes every output orrery produces for the shipped inputs into OUT_DIR, one file per
# command (stdout, stderr and the exit code, plus any file the command writes), so that
# a change meant to keep behaviour can be proved byte for byte:
#
#   tools/golden_outputs.sh build /tmp/before      # on the old commit
#   tools/golden_outputs.sh build /tmp/after       # on the new one
#   diff -r /tmp/before /tmp/after                 # empty: no output changed
#
# Inputs: scenarios/ (and validation/), the scenario fuzz corpus,
# the docs' example files under tests/, the bad-input files of tests/cli/errors/, the
# ~220 broken scenarios tools/bad_input_cases.py writes (`check`, and `sweep` for the
# sweep ones) and two sweeps written here that swing every axis. Each
# scenario runs `check` (table, JSON), `run` (table, JSON, CSV, --explain, --trace) and,
# when it has fewer than 2,048 GPUs, `run --full`; sweeps run with their CSV, JSON, best
# scenario and HTML report. Usage: tools/golden_outputs.sh [BUILD_DIR] OUT_DIR
set -uo pipefail
cd "$(dirname "$0")/.."
build=${2:+$1}
build=${build:-build}
out=${2:-${1:?usage: tools/golden_outputs.sh [BUILD_DIR] OUT_DIR}}
case "$build" in /*) orrery="$build/cli/orrery" ;; *) orrery="$PWD/$build/cli/orrery" ;; esac
[ -x "$orrery" ] || { echo "error: no $orrery" >&2; exit 2; }
mkdir -p "$out"
out=$(cd "$out" && pwd)
tmp=$(mktemp -d)  # files the commands write, moved into $out after each
inputs=$(mktemp -d)  # inputs written here
trap 'rm -rf "$tmp" "$inputs"' EXIT

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

scenarios=$(ls scenarios/*.yaml scenarios/validation/*.yaml \
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
# Broken scenarios of every section (tools/bad_input_cases.py) and sweeps over every axis.
python3 tools/bad_input_cases.py "$inputs"
for f in "$inputs"/*.yaml; do
  record "bad_$(basename "$f" .yaml).check" check "$f"
done
for n in s_ok s_range s_constraints_ok s_gpu_ok s_mb_vp_gb s_empty s_unknown meas_ok; do
  record "bad_$n.sweep" sweep --no-progress -j 2 "$inputs/$n.yaml"
done
cat >"$inputs/all-axes.yaml" <<'YAML'
name: every axis
cluster: {preset: dgx-h100, nodes: 2}
model: {preset: narayanan-1.7b}
parallelism: {tp: 2, pp: 2, microbatch: 1, global_batch: 32, schedule: 1f1b}
training: {precision: fp8, fp8: {scaling: delayed}, target: {tokens: 1e9}}
cost: {usd_per_gpu_hour: 2.0}
sweep:
  gpu: [h100-sxm5-80gb, a100-sxm4-80gb]
  nodes: [1, 2]
  precision: [bf16, fp8]
  compression: [none, fp16]
  global_batch: [16, 32]
  tp: [1, 2]
  pp: [1, 2]
  vp: auto
  microbatch: auto
  zero_stage: [0, 1]
  recompute: [none, selective]
  objectives: [step_time, cost]
YAML
cat >"$inputs/dp-axis.yaml" <<'YAML'
name: dp axis
cluster: {preset: dgx-a100, nodes: 1}
model: {preset: narayanan-1.7b}
parallelism: {tp: 2, pp: 1, dp: 4, microbatch: 1, global_batch: 16}
training: {precision: bf16}
sweep: {dp: [2, 4], tp: [1, 2, 4], microbatch: [1, 2]}
YAML
for n in all-axes dp-axis; do
  record "$n.sweep" sweep --no-progress -j 2 --csv "$tmp/c.csv" --json "$tmp/c.json" \
    --best "$tmp/best.yaml" "$inputs/$n.yaml"
done
record validate validate scenarios/validation
record validate-json validate --format json scenarios/validation
record validate-csv validate --format csv scenarios/validation
record presets presets
record calibrate calibrate tests/calibrate/data/nd-h100-v5_all_reduce_perf.log \
  tests/calibrate/data/nd-h100-v5_gemm_fp8.yaml -o "$tmp/profile.yaml"
# Paths in messages are the same in both trees (relative); the temporary folders are not.
grep -rl -e "$tmp" -e "$inputs" "$out" 2>/dev/null | xargs -r sed -i -e "s#$tmp#TMP#g" -e "s#$inputs#IN#g"
echo "$(ls "$out" | wc -l) files in $out"
