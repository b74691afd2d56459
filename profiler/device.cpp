#include "profiler/device.h"

namespace orrery::profiler {

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
