#include "profiler/device.h"

namespace orrery::profiler {

const char* to_string(GemmDtype d) {
  switch (d) {
    case GemmDtype::fp32: return "fp32";
    case GemmDtype::tf32: return "tf32";
    case GemmDtype::bf16: return "bf16";
    case GemmDtype::fp16: return "fp16";
    case GemmDtype::fp8: return "fp8";
  }
  return "?";
}

int input_bytes(GemmDtype d) {
  switch (d) {
    case GemmDtype::fp32:
    case GemmDtype::tf32: return 4;
    case GemmDtype::bf16:
    case GemmDtype::fp16: return 2;
    case GemmDtype::fp8: return 1;
  }
  return 4;
}

int output_bytes(GemmDtype d) { return d == GemmDtype::fp8 ? 2 : input_bytes(d); }

const char* to_string(MemoryKernel k) {
  switch (k) {
    case MemoryKernel::copy: return "copy";
    case MemoryKernel::elementwise: return "elementwise";
    case MemoryKernel::row_reduce: return "row_reduce";
  }
  return "?";
}

const char* to_string(AttentionImpl i) {
  return i == AttentionImpl::cudnn_fused ? "cudnn_fused" : "unfused";
}

const char* to_string(AttentionDtype d) { return d == AttentionDtype::bf16 ? "bf16" : "fp16"; }

const char* to_string(FailureKind k) {
  switch (k) {
    case FailureKind::out_of_memory: return "out of memory";
    case FailureKind::unsupported: return "unsupported";
    case FailureKind::unavailable: return "unavailable";
    case FailureKind::device_error: return "device error";
  }
  return "?";
}

}  // namespace orrery::profiler
