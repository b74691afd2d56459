// The compact table orrery-profile prints on stdout after a sweep: the best rate seen
// per GEMM type, memory-bound kernel and collective, and the launch floor.
#pragma once

#include <string>

#include "profiler/measurements.h"

namespace orrery::profiler {

// Rates use each entry's median time:
//  GEMM TFLOP/s = 2 m n k / median;  memory GB/s = bytes / median (1 GB = 1e9 B);
//  attention TFLOP/s = 4 b h s^2 d / median forward, 8 b h s^2 d backward (its four
//  GEMMs), halved when causal (the masked half is not counted); collective bus GB/s = bytes * busbw_factor(op, gpus) / median.
std::string render_summary(const MeasurementFile& f);

}  // namespace orrery::profiler
