// Turning kernel activity records into per-repetition durations. The CUDA backend
// synchronizes after each repetition and marks the profiler clock between them;
// repetition i is the window [marks[i], marks[i+1]), and a kernel belongs to the window
// that holds its start (its start is certain to follow the mark; its end, converted
// from the GPU clock, could land a hair past the next one). A repetition lasts from the
// earliest start to the latest end of its kernels, over every GPU.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "core/units.h"

namespace orrery::profiler {

struct KernelRecord {
  std::uint64_t start_ns = 0, end_ns = 0;  // CUPTI timestamps
  std::uint32_t device = 0;
};

// One duration per window, or a message naming the first window without a kernel.
// Records with end <= start (incomplete) and records outside every window are ignored.
std::variant<std::vector<Seconds>, std::string> window_durations(
    const std::vector<KernelRecord>& records, const std::vector<std::uint64_t>& marks);

}  // namespace orrery::profiler
