#include "profiler/device.h"

namespace orrery::profiler {

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
