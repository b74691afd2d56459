// Turning CUDA, cuBLASLt, CUPTI and NCCL return codes into profiler Failures. Inside
// the backend a failed call throws CallFailed; each Device method catches it at its
// boundary and returns the Failure, so one failed case never ends the sweep.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>
#include <cupti.h>
#include <nccl.h>

#include <string>

#include "profiler/device.h"

namespace orrery::profiler::cuda {

struct CallFailed {
  Failure failure;
};

// `what` names the call ("cudaMalloc(1 GiB)"). Out-of-memory codes become
// FailureKind::out_of_memory, the rest device_error.
void check(cudaError_t e, const std::string& what);
void check(cublasStatus_t s, const std::string& what);
void check(CUptiResult r, const std::string& what);
// NCCL failures are `kind` (unavailable while creating communicators, device_error
// after).
void check(ncclResult_t r, const std::string& what, FailureKind kind = FailureKind::device_error);

}  // namespace orrery::profiler::cuda
