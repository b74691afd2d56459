#!/usr/bin/env bash
# The sustained-GEMM check: separates the two suspects behind orrery's H100 optimism
# (docs/simulator.md, "Validation", last paragraph): fp8 GEMMs with split accumulation
# (what Transformer Engine runs its dgrad and wgrad with) against fast accumulation (what
# the Azure sweep behind the FP8 plateau set), and the GEMM rate under sustained load
# (clocks at the power limit) against a short run; and it measures the bf16 fraction the
# presets assume. Builds orrery-profile for the local GPU (as gpu_check.sh), then times
# 8192^3 and GPT-3 175B's layer GEMMs at TP 4 (below) in bf16, fp8 fast and fp8 split,
# each run back to back for SUSTAINED_S seconds before its timed repetitions, and prints
# a table: shape, layer, type, TFLOP/s, fraction of the datasheet peak, SM clock.
# 27 cases x 12 s of load plus set-up: about 6 minutes; with the build, under 8 on one
# H100 (SUSTAINED_S=3: 85 s on one H200). The measurement file goes to calibrate/data/.
#
#   profiler/sustained_check.sh              # build, measure, print the table
#   profiler/sustained_check.sh --table FILE # only the table of an existing file
#
# Environment: ORRERY_PROFILE_BIN (a prebuilt orrery-profile: skips the build),
# ORRERY_GPU_BUILD_DIR (default build-gpu), SUSTAINED_S (seconds of load per case,
# default 12), ORRERY_CHECK_TIMEOUT (seconds for the measurement, default 420);
# PEAK_BF16 / PEAK_FP8 (TFLOP/s) for a GPU the table below does not know.
set -euo pipefail

# GPT-3 175B (scenario/presets/models.yaml: hidden 12288, 96 heads, ffn 49152, sequence
# 2048) at TP 4, one sequence per micro-batch: m = T = 2048 tokens. Forward Y = X W is
# m = T, n = out, k = in; dgrad m = T, n = in, k = out; wgrad m = in, n = out, k = T.
# qkv: in 12288, out 3 x 12288 / 4 = 9216; proj: in 12288 / 4 = 3072, out 12288;
# fc1: in 12288, out 49152 / 4 = 12288; fc2: in 12288, out 12288, so fc1 and fc2 share
# their forward and dgrad shape (2048 x 12288 x 12288) and their wgrad shape. The same
# list as profiler/plan.h's preset_gemm_shapes("gpt3-175b", 4, true) without the logits
# (tests/profiler/scripts_test.cpp holds the two together).
gpt3_shapes=2048x9216x12288,2048x12288x9216,12288x9216x2048,2048x12288x3072,2048x3072x12288,3072x12288x2048,2048x12288x12288,12288x12288x2048
shapes=8192x8192x8192,$gpt3_shapes

# The table of a measurement file (format: docs/calibration-format.md).
table() {
  awk -v peak_bf16="${PEAK_BF16:-}" -v peak_fp8="${PEAK_FP8:-}" '
    function seconds(v,   n, u) {
      n = v + 0; u = v; sub(/^[^ ]+ /, "", u)
      if (u == "ns") return n * 1e-9
      if (u == "us") return n * 1e-6
      if (u == "ms") return n * 1e-3
      if (u == "min") return n * 60
      return n
    }
    BEGIN {
      layer["8192x8192x8192"] = "square"
      layer["2048x9216x12288"] = "qkv fwd";   layer["2048x12288x9216"] = "qkv dgrad"
      layer["12288x9216x2048"] = "qkv wgrad"; layer["2048x12288x3072"] = "proj fwd"
      layer["2048x3072x12288"] = "proj dgrad"; layer["3072x12288x2048"] = "proj wgrad"
      layer["2048x12288x12288"] = "fc1/fc2 fwd+dgrad"; layer["12288x12288x2048"] = "fc1/fc2 wgrad"
    }
    /^  gpu: / { gpu = $0; sub(/^  gpu: /, "", gpu); gsub(/"/, "", gpu) }
    /^  sm_clock_mhz: / { max_clock = $2 + 0 }
    /^gemm:/ { in_gemm = 1; next }
    /^[a-z_]+:/ { in_gemm = 0 }
    /^skipped:/ { in_skipped = 1; next }
    in_skipped && /^  - / { skipped[++ns] = $0 }
    in_gemm && /^  - \{/ {
      line = $0; sub(/^  - \{/, "", line); sub(/\}$/, "", line)
      delete f; n = split(line, parts, ", ")
      for (i = 1; i <= n; ++i) { kv = parts[i]; k = kv; sub(/: .*/, "", k); v = kv; sub(/^[^:]+: /, "", v); f[k] = v }
      rows[++nr] = f["m"] "x" f["n"] "x" f["k"] SUBSEP f["dtype"] (f["accumulation"] != "" ? " " f["accumulation"] : "") \
        SUBSEP seconds(f["median"]) SUBSEP (f["sm_clock_mhz"] != "" ? f["sm_clock_mhz"] : "-") \
        SUBSEP 2.0 * f["m"] * f["n"] * f["k"] SUBSEP f["dtype"] SUBSEP (f["sustained"] != "" ? f["sustained"] : "-")
    }
    END {
      # Dense peaks, NVIDIA H100 / H200 Tensor Core GPU datasheets, SXM columns (as
      # scenario/presets/gpus.yaml): BF16 989.4, FP8 1979 TFLOP/s.
      if (peak_bf16 == "" && (gpu ~ /H100 80GB HBM3|H100 SXM|H200/)) { peak_bf16 = 989.4; peak_fp8 = 1979 }
      printf "GPU: %s (max SM clock %s MHz); peaks bf16 %s, fp8 %s TFLOP/s\n", gpu, max_clock, \
        (peak_bf16 == "" ? "unknown" : peak_bf16), (peak_fp8 == "" ? "unknown" : peak_fp8)
      printf "%-18s %-18s %-10s %-8s %9s %8s %7s %8s\n", "shape (m x n x k)", "layer", "type", "load", "TFLOP/s", "of peak", "SM MHz", "of max"
      for (r = 1; r <= nr; ++r) {
        split(rows[r], c, SUBSEP)
        tf = c[5] / c[3] / 1e12
        peak = (c[6] == "fp8") ? peak_fp8 : (c[6] == "bf16" ? peak_bf16 : "")
        printf "%-18s %-18s %-10s %-8s %9.1f %8s %7s %8s\n", c[1], (c[1] in layer ? layer[c[1]] : "-"), c[2], c[7], tf, \
          (peak == "" ? "-" : sprintf("%.3f", tf / peak)), c[4], \
          (c[4] == "-" || max_clock == 0 ? "-" : sprintf("%.3f", c[4] / max_clock))
      }
      for (s = 1; s <= ns; ++s) print "skipped:" substr(skipped[s], 4)
    }' "$1"
}

if [[ "${1:-}" == "--table" ]]; then
  [[ $# -eq 2 ]] || { echo "usage: $0 --table MEASUREMENT_FILE" >&2; exit 2; }
  table "$2"
  exit 0
fi

source "$(dirname "${BASH_SOURCE[0]}")/gpu_build.sh"
limit=${ORRERY_CHECK_TIMEOUT:-420}
load=${SUSTAINED_S:-12}
nvidia-smi --query-gpu=index,name,driver_version,clocks.max.sm,power.limit,temperature.gpu --format=csv 2>/dev/null || true

measurements=$data/sustained-$host-$stamp.yaml
echo "== 27 GEMMs, ${load} s of load each (limit ${limit} s) -> $measurements"
start=$(date +%s)
status=0
timeout "$limit" "$profile" --only gemm --dtypes bf16,fp8 --fp8-accumulation both \
  --gemm-shapes "$shapes" --sustained "$load" --warmup 5 --repetitions 50 \
  --out "$measurements" "$@" || status=$?
echo "== measurement took $(( $(date +%s) - start )) s, exit code $status"
if [[ $status -ne 0 ]]; then
  echo "sustained_check: orrery-profile failed (exit $status); see above" >&2
  exit "$status"
fi
nvidia-smi --query-gpu=clocks.sm,power.draw,temperature.gpu,clocks_throttle_reasons.active --format=csv 2>/dev/null || true
table "$measurements"
echo "== done: $measurements"
