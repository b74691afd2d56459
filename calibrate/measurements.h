// The inputs `orrery calibrate` reads, as plain structs: the measurement file written by
// orrery-profile (docs/calibration-format.md, "Measurement file"), nccl-tests logs and
// PyTorch profiler / Kineto Chrome traces. Each reader throws InputError naming the
// file, the line (or key) and the bad value; none of them keeps a parser type in its
// interface.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/env.h"
#include "core/measurement_file.h"
#include "core/units.h"

namespace orrery {

// Reads a measurement file (format orrery-measurements, version 1; the records of
// core/measurement_file.h, as profiler/measurements.h writes them). `file` names the
// text in messages and is kept in the result; each record's `line` is set.
MeasurementFile read_measurement_text(const std::string& text, const std::string& file);
// The file at `path` read through `env`; "cannot open the measurement file" when it
// cannot be opened.
MeasurementFile read_measurement_file(const std::string& path, Env& env = default_env());

}  // namespace orrery
