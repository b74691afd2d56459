# Sourced by gpu_check.sh and sustained_check.sh (bash, set -euo pipefail): sets root,
# build, stamp, host and data (calibrate/data/, created), points CUDACXX at
# /usr/local/cuda's nvcc when none is on PATH, and sets `profile` to ORRERY_PROFILE_BIN or
# to an orrery-profile built in ORRERY_GPU_BUILD_DIR (default build-gpu/) for the local
# GPU's architecture ("90" for 9.0; CMake's "native" where nvidia-smi cannot say).
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${ORRERY_GPU_BUILD_DIR:-$root/build-gpu}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
host=$(hostname -s 2>/dev/null || hostname)
data=$root/calibrate/data
mkdir -p "$data"

if [[ -z "${CUDACXX:-}" && -x /usr/local/cuda/bin/nvcc ]] && ! command -v nvcc >/dev/null; then
  export CUDACXX=/usr/local/cuda/bin/nvcc
fi

profile=${ORRERY_PROFILE_BIN:-}
if [[ -z "$profile" ]]; then
  arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n1 | tr -d '. ')
  generator=()
  command -v ninja >/dev/null && generator=(-G Ninja)
  echo "== building orrery-profile in $build (CUDA architecture ${arch:-native})"
  build_start=$(date +%s)
  cmake -S "$root" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DORRERY_WITH_CUDA=ON \
    -DORRERY_BUILD_TESTS=OFF -DORRERY_BUILD_BENCHMARKS=OFF \
    -DCMAKE_CUDA_ARCHITECTURES="${arch:-native}" >/dev/null
  cmake --build "$build" --target orrery-profile --parallel
  echo "== build took $(( $(date +%s) - build_start )) s"
  profile=$build/profiler/cuda/orrery-profile
fi
