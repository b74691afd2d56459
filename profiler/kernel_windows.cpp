#include "profiler/kernel_windows.h"

#include <fmt/format.h>

#include <algorithm>
#include <climits>

namespace orrery::profiler {

std::variant<std::vector<Seconds>, std::string> window_durations(
    const std::vector<KernelRecord>& records, const std::vector<std::uint64_t>& marks) {
  const std::size_t reps = marks.size() < 2 ? 0 : marks.size() - 1;
  std::vector<std::uint64_t> first(reps, UINT64_MAX), last(reps, 0);
  for (const KernelRecord& r : records) {
    if (r.end_ns <= r.start_ns) continue;
    const auto it = std::upper_bound(marks.begin(), marks.end(), r.start_ns);
    if (it == marks.begin() || it == marks.end()) continue;
    const auto i = static_cast<std::size_t>(it - marks.begin()) - 1;
    first[i] = std::min(first[i], r.start_ns);
    last[i] = std::max(last[i], r.end_ns);
  }
  std::vector<Seconds> out;
  for (std::size_t i = 0; i < reps; ++i) {
    if (first[i] == UINT64_MAX)
      return fmt::format("no kernel activity record for repetition {} of {}", i + 1, reps);
    out.emplace_back(static_cast<double>(last[i] - first[i]) * 1e-9);
  }
  return out;
}

}  // namespace orrery::profiler
