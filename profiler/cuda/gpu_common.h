// Pieces the single-process and the MPI devices share. Private to the CUDA backend.
#pragma once

#include <cstdint>

#include "profiler/cuda/kernels.h"
#include "profiler/device.h"

namespace orrery::profiler::cuda {

// Provenance of local GPU `device` (which becomes the current device). Throws CallFailed.
DeviceInfo describe_gpu(int device, int gpu_count);

// Fills `bytes` of the current device's memory with pseudo-random values of format `t`,
// one of kGemmDtypes, and waits for it. Throws CallFailed.
void fill_buffer(char* data, std::int64_t bytes, Dtype t, std::uint32_t seed = 0);

}  // namespace orrery::profiler::cuda
