// Fitting the hardware families (calibrate/families.h) from measured samples, each with
// its leave-one-out held-out error: the fit is redone without each measured point in
// turn and the left-out point predicted. A family with too few points to fit and hold
// one out is refused (InputError saying how many it needs and how many it got).
// The offline half of calibrate/: `orrery calibrate` uses it, the simulator never does.
#pragma once

#include <string>
#include <vector>

#include "calibrate/families.h"
#include "core/collective.h"
#include "core/number_format.h"
#include "core/units.h"

namespace orrery {

struct HeldOutSummary {
  double max_abs = 0, mean_abs = 0;  // fractions (0.05 = 5 %)
  int points = 0;
};
HeldOutSummary summarize(const std::vector<double>& errors);

struct CollectiveSample {
  Bytes size;
  Seconds time;
  std::string source;  // file:line
};
// CollectiveFit: alpha and beta by least squares in relative time error, the curve
// through the points. Several samples at one size are combined by their median. Needs 3
// distinct sizes.
CollectiveFit fit_collective(CollectiveOp op, int gpus, int nodes,
                             const std::vector<CollectiveSample>& samples);

// GemmFit's roofs. The memory roof W is fitted from the points that size alone cannot
// explain (more than 10 % slower than a GEMM of no more FLOPs): the largest rate / I among
// them; those within 10 % of it are memory-bound (no such point: no memory roof). The
// other points give the compute roof P(F): their rates made non-decreasing in F by
// isotonic regression (pool adjacent violators), interpolated linearly in log F, flat
// beyond the measured FLOPs. Repeated shapes are merged by their median time. Needs 3
// shapes.
struct GemmSample {
  GemmShape shape;
  Seconds time;
  std::string source;
};
GemmFit fit_gemm(Dtype dtype, const std::vector<GemmSample>& samples);

// MemoryFit: alpha and bandwidth by least squares in relative time error. Needs 3
// distinct sizes.
MemoryFit fit_memory(const std::string& kernel, const std::vector<CollectiveSample>& samples);

// LaunchFit: the median of the measured empty-kernel medians. Needs 2.
LaunchFit fit_launch(const std::vector<CollectiveSample>& samples);

}  // namespace orrery
