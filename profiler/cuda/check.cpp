#include "profiler/cuda/check.h"

#include <fmt/format.h>

namespace orrery::profiler::cuda {

void check(cudaError_t e, const std::string& what) {
  if (e == cudaSuccess) return;
  // A failed allocation sets the runtime's last error; clear it so later calls do not
  // report it again. Sticky errors (a crashed kernel) stay and fail everything after.
  (void)cudaGetLastError();
  const FailureKind kind =
      e == cudaErrorMemoryAllocation ? FailureKind::out_of_memory : FailureKind::device_error;
  throw CallFailed{{kind, fmt::format("{}: {} ({})", what, cudaGetErrorName(e),
                                      cudaGetErrorString(e))}};
}

void check(cublasStatus_t s, const std::string& what) {
  if (s == CUBLAS_STATUS_SUCCESS) return;
  FailureKind kind = FailureKind::device_error;
  if (s == CUBLAS_STATUS_ALLOC_FAILED) kind = FailureKind::out_of_memory;
  if (s == CUBLAS_STATUS_NOT_SUPPORTED || s == CUBLAS_STATUS_ARCH_MISMATCH)
    kind = FailureKind::unsupported;
  throw CallFailed{{kind, fmt::format("{}: cuBLAS status {}", what, static_cast<int>(s))}};
}

void check(CUptiResult r, const std::string& what) {
  if (r == CUPTI_SUCCESS) return;
  const char* text = nullptr;
  if (cuptiGetResultString(r, &text) != CUPTI_SUCCESS || text == nullptr) text = "unknown";
  throw CallFailed{{FailureKind::device_error, fmt::format("{}: {}", what, text)}};
}

void check(ncclResult_t r, const std::string& what, FailureKind kind) {
  if (r == ncclSuccess) return;
  throw CallFailed{{kind, fmt::format("{}: {}", what, ncclGetErrorString(r))}};
}

}  // namespace orrery::profiler::cuda
