// Summary statistics of timed repetitions.
#pragma once

#include <vector>

#include "core/measurement_file.h"
#include "core/units.h"

namespace orrery::profiler {

// The q-quantile (0 <= q <= 1) of `samples` by linear interpolation between the two
// nearest order statistics at position q*(n-1) (numpy's default, Hyndman & Fan type 7).
// `samples` must not be empty.
Seconds quantile(std::vector<Seconds> samples, double q);
// Median, 10th and 90th percentile, each by quantile().
TimingStats summarize(const std::vector<Seconds>& samples);

}  // namespace orrery::profiler
