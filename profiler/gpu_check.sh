#!/usr/bin/env bash
# The profiler's GPU check: builds orrery-profile, runs the quick sweep (sized for about
# 3 minutes on one H100), prints the summary table and writes the measurement file,
# then times a real PyTorch training step of a GPT-2-size model on the same GPU and
# records one step's Kineto trace (skipped, with a message, where PyTorch is not
# installed), and fits a calibration profile from the measurements and the trace with
# `orrery calibrate`, printing its summary table. Results go to calibrate/data/, named by
# host and UTC time. Run from anywhere:  profiler/gpu_check.sh
#
# Environment: ORRERY_PROFILE_BIN (a prebuilt orrery-profile: skips the build, e.g. on a
# machine without the build dependencies), ORRERY_BIN (a prebuilt orrery for the
# calibrate step; default: built beside orrery-profile, else build/cli/orrery),
# ORRERY_GPU_BUILD_DIR (default build-gpu),
# ORRERY_CHECK_TIMEOUT (seconds for the sweep, default 300); arguments go to
# orrery-profile (e.g. --max-gpus 2).
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/gpu_build.sh"
limit=${ORRERY_CHECK_TIMEOUT:-300}
nvidia-smi --query-gpu=index,name,driver_version,clocks.max.sm,memory.total --format=csv 2>/dev/null || true

measurements=$data/measurements-$host-$stamp.yaml
echo "== quick sweep (limit ${limit} s) -> $measurements"
start=$(date +%s)
status=0
timeout "$limit" "$profile" --quick --out "$measurements" "$@" || status=$?
echo "== sweep took $(( $(date +%s) - start )) s, exit code $status"
if [[ $status -ne 0 ]]; then
  echo "gpu_check: orrery-profile failed (exit $status); see above" >&2
  exit "$status"
fi

step=$data/train-step-$host-$stamp.yaml
trace=$data/train-step-trace-$host-$stamp.json
echo "== PyTorch training step (GPT-2 124M) -> $step, one step's trace -> $trace"
if python3 -c "import torch" 2>/dev/null; then
  python3 "$root/profiler/train_step.py" --out "$step" --trace "$trace" || true
else
  echo "PyTorch step skipped: python3 cannot import torch (install PyTorch to time a real step)"
fi

# The calibration profile: orrery itself, built beside orrery-profile when that was built.
orrery=${ORRERY_BIN:-}
if [[ -z "$orrery" && -z "${ORRERY_PROFILE_BIN:-}" ]]; then
  cmake --build "$build" --target orrery --parallel >/dev/null && orrery=$build/cli/orrery
fi
[[ -z "$orrery" && -x "$root/build/cli/orrery" ]] && orrery=$root/build/cli/orrery
profile_out=$data/profile-$host-$stamp.yaml
inputs=("$measurements")
[[ -f "$trace" ]] && inputs+=("$trace")
if [[ -n "$orrery" ]]; then
  echo "== orrery calibrate ${inputs[*]} -> $profile_out (summary: one line per family)"
  "$orrery" calibrate "${inputs[@]}" -o "$profile_out" || echo "gpu_check: orrery calibrate failed; see above" >&2
else
  echo "calibrate step skipped: no orrery binary (set ORRERY_BIN)"
fi
echo "== done: results in $data"
