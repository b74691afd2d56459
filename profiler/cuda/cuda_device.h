// The real Device: CUPTI-timed cuBLASLt GEMMs, the profiler's kernels, unfused
// attention (cuBLASLt GEMM, softmax kernel, cuBLASLt GEMM) and NCCL collectives over
// the first k local GPUs of this process (ncclCommInitAll).
#pragma once

#include <memory>

#include "profiler/device.h"

namespace orrery::profiler::cuda {

// Throws DeviceUnavailable when there is no GPU or CUDA, CUPTI or cuBLASLt cannot start.
std::unique_ptr<Device> open_cuda_device();

}  // namespace orrery::profiler::cuda
