// Runs a plan on a Device: every case timed, summarised, or recorded as skipped with
// the reason. Never throws for a failed measurement; a failure is data.
#pragma once

#include "profiler/device.h"
#include "profiler/measurements.h"
#include "profiler/plan.h"
#include "profiler/progress.h"

namespace orrery::profiler {

// One-line descriptions used in `skipped` and in progress lines:
// "gemm bf16 m=8192 n=8192 k=8192", "all_reduce gpus=8 bytes=64 MiB", ...
std::string describe(const GemmCase& c);
std::string describe(const MemoryBoundCase& c);
std::string describe(const AttentionCase& c);
std::string describe(const CollectiveCase& c);

// Fills f's record lists and `skipped` (f.file and f.provenance are left as given).
// Rules: a GEMM type the device does not support is one skipped entry for the type; a
// case whose timings fail is one skipped entry with the failure's kind and message; an
// `unavailable` collective failure skips the rest of that group size's collectives with
// the same reason; a device that returns a count of timings other than reps.timed is a
// device_error for that case.
void run_sweep(Device& device, const Plan& plan, Repetitions reps, Progress& progress,
               MeasurementFile& f);

}  // namespace orrery::profiler
