// Maps a Kineto trace's GPU kernels to the op classes the simulation times
// (calibrate/profile.h, MeasuredKernel; docs/calibration-format.md, "Measured kernels").
// Offline half of calibrate/.
#pragma once

#include <vector>

#include "calibrate/kineto.h"
#include "calibrate/profile.h"

namespace orrery {

// The trace's kernels that can be classified and sized, grouped into measured entries
// (median over calls); kernels with no class or no size (no CPU op with Input Dims, no
// collective metadata) are left out. Ordered by class, then first appearance.
std::vector<MeasuredKernel> measured_kernels(const KinetoTrace& t);

}  // namespace orrery
