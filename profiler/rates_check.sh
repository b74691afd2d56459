#!/usr/bin/env bash
# The PyTorch-side measurements the first lease (calibrate/data/h200-20261204) left open,
# in one call, for the next GPU lease; no build (PyTorch only):
#   1. attention (FlashAttention-2, cuDNN, the memory-efficient kernel; full, causal,
#      dropout and grouped-query variants) after SUSTAINED_S seconds of back-to-back load
#      per case, each row with the SM clock and power sampled while it was timed: do the
#      attention kernels lose to the power limit what the GEMMs do (0.80 -> 0.68 of peak
#      for bf16 8192^3 on the H200)? The presets' attention rates are short-run figures.
#   2. GPT-2's vocabulary GEMMs at alignments 1, 2, 4 and 8 elements, with the host's
#      launch time out of the timing: cluster.gpu.unaligned_gemm_efficiency and the even
#      but unaligned cases orrery times as aligned (docs/model.md, "GEMMs with an odd
#      dimension").
#   3. Qwen3-30B-A3B's expert GEMMs again, short, now without the launch time in them.
#   4. The host time per PyTorch op on this machine's CPU.
# About 42 attention cases x (SUSTAINED_S + 0.5 s) plus half a minute: under 3 minutes
# with SUSTAINED_S=3 on an H100 or H200. Without PyTorch or a GPU each script says why
# and exits 0.
#
#   profiler/rates_check.sh [OUT_DIR]     # default calibrate/data/<host>-<UTC date>
#
# Environment: SUSTAINED_S (seconds of load per attention case, default 3), REPS
# (repetitions, default 20).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-calibrate/data/$(hostname -s)-$(date -u +%Y%m%d)}
sustained=${SUSTAINED_S:-3}
reps=${REPS:-20}
if ! python3 -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
  echo "rates_check.sh: skipped: python3 has no PyTorch that sees a CUDA GPU" >&2
  exit 0
fi
mkdir -p "$out"
python3 profiler/kernel_rates.py --only attention,alignment --sustained "$sustained" \
  --repetitions "$reps" --warmup 5 --out "$out/kernel-rates-sustained.yaml"
python3 profiler/kernel_rates.py --only experts --repetitions "$reps" --warmup 5 \
  --out "$out/kernel-rates-experts.yaml"
python3 profiler/host_time.py | tee "$out/host-time-per-op.txt"
ls -l "$out"
