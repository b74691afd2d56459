// The writer of the measurement file that orrery-profile writes and `orrery calibrate`
// reads (calibrate/measurements.h): docs/calibration-format.md, format version 1, whose
// records are core/measurement_file.h. Rendering is deterministic: the same records give
// the same bytes.
#pragma once

#include <string>
#include <vector>

#include "core/measurement_file.h"
#include "profiler/device.h"
#include "profiler/stats.h"

namespace orrery::profiler {

// The non-hardware half of the provenance, from the environment.
struct RunInfo {
  std::string tool;  // "orrery-profile 0.1.0"
  std::string date;  // UTC, ISO 8601: "2026-11-27T01:23:45Z"
  std::string host;
  Repetitions reps;
};

// The file's provenance: the run's half from `run`, the hardware's from `device`.
MeasurementProvenance provenance(const RunInfo& run, const DeviceInfo& device);

// "1.252 ms": four significant digits in ns, us, ms or s, whichever puts the number in
// [1, 1000) (s above that).
std::string format_duration(Seconds t);
// Exact sizes: the largest of GiB, MiB, KiB that divides the count ("64 MiB"), else
// bytes ("1000 B"). Parses back to the same integer.
std::string format_size(std::int64_t bytes);
// A YAML double-quoted scalar with \ and " escaped and control characters as \xNN.
std::string yaml_quote(const std::string& s);

// The file's text, per docs/calibration-format.md. Sizes (`bytes`) must be whole numbers;
// `file` and each record's `line` are not written.
std::string render_measurements(const MeasurementFile& f);

}  // namespace orrery::profiler
