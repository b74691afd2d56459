// The measurement file that orrery-profile writes and `orrery calibrate` reads:
// docs/calibration-format.md, format version 1. Rendering is deterministic: the same
// results give the same bytes.
#pragma once

#include <string>
#include <vector>

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

struct GemmResult { GemmCase c; Summary s; };
struct MemoryBoundResult { MemoryBoundCase c; Summary s; };
struct AttentionResult { AttentionImpl impl; AttentionCase c; Summary s; };
struct LaunchResult { Summary s; };
struct CollectiveResult { CollectiveCase c; Summary s; };
struct Skipped { std::string what; std::string reason; };

struct MeasurementFile {
  RunInfo run;
  DeviceInfo device;
  std::vector<GemmResult> gemm;
  std::vector<MemoryBoundResult> memory_bound;
  std::vector<AttentionResult> attention;
  std::vector<LaunchResult> launch;
  std::vector<CollectiveResult> collectives;
  std::vector<Skipped> skipped;
};

// "1.252 ms": four significant digits in ns, us, ms or s, whichever puts the number in
// [1, 1000) (s above that).
std::string format_duration(Seconds t);
// Exact sizes: the largest of GiB, MiB, KiB that divides the count ("64 MiB"), else
// bytes ("1000 B"). Parses back to the same integer.
std::string format_size(std::int64_t bytes);
// A YAML double-quoted scalar with \ and " escaped and control characters as \xNN.
std::string yaml_quote(const std::string& s);

// The file's text, per docs/calibration-format.md.
std::string render_measurements(const MeasurementFile& f);

}  // namespace orrery::profiler
