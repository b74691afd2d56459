// Kernel durations from CUPTI activity records (CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL,
// which does not serialize kernels). One CuptiTimer per process: CUPTI's buffer
// callbacks are global.
//
// Repetitions are told apart by time (profiler/kernel_windows.h): the caller
// synchronizes after each repetition and marks the CUPTI clock between them. CUPTI
// normalizes every device's timestamps to one clock in one process, so a collective's
// window spans all its ranks.
#pragma once

#include <cstdint>
#include <mutex>
#include <vector>

#include "profiler/device.h"
#include "profiler/kernel_windows.h"

namespace orrery::profiler::cuda {

class CuptiTimer {
 public:
  // Registers the callbacks and enables kernel activity. Throws CallFailed.
  CuptiTimer();
  ~CuptiTimer();
  CuptiTimer(const CuptiTimer&) = delete;
  CuptiTimer& operator=(const CuptiTimer&) = delete;

  // Flushes and drops every record so far (after warm-up).
  void discard();
  // The CUPTI clock now, in ns: the clock of activity timestamps.
  std::uint64_t mark() const;
  // Flushes and returns one duration per window [marks[i], marks[i+1]). Throws
  // CallFailed (device_error) when a window has no kernel or records were dropped.
  std::vector<Seconds> durations(const std::vector<std::uint64_t>& marks);

 private:
  std::vector<KernelRecord> flush();
};

}  // namespace orrery::profiler::cuda
