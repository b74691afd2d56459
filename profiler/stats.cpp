#include "profiler/stats.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace orrery::profiler {

Seconds quantile(std::vector<Seconds> samples, double q) {
  ORRERY_CHECK(!samples.empty(), "quantile of no samples");
  ORRERY_CHECK(q >= 0.0 && q <= 1.0, "quantile outside [0, 1]");
  std::sort(samples.begin(), samples.end());
  const double pos = q * static_cast<double>(samples.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(pos));
  const std::size_t hi = std::min(lo + 1, samples.size() - 1);
  const double frac = pos - static_cast<double>(lo);
  return samples[lo] + (samples[hi] - samples[lo]) * frac;
}

TimingStats summarize(const std::vector<Seconds>& samples) {
  return {quantile(samples, 0.5), quantile(samples, 0.1), quantile(samples, 0.9)};
}

}  // namespace orrery::profiler
