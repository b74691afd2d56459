// orrery-profile's command line as a library function, so that flags, exit codes and
// error paths are tested with a fake device and a fake environment. main() only picks
// the real device factory and environment.
//
// Exit codes: 0 the file was written (skipped cases are data, not errors);
//             2 bad command line (the message names the flag and the value);
//             3 no device to measure (no GPU, no driver, CUDA failed to start);
//             1 the output file cannot be written (checked before the sweep, when its
//               directory is missing or read-only, and again at the end), or an
//               internal error.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "profiler/device.h"
#include "profiler/plan.h"

namespace orrery::profiler {

inline constexpr int kExitOk = 0;
inline constexpr int kExitInternal = 1;
inline constexpr int kExitBadInput = 2;
inline constexpr int kExitNoDevice = 3;

struct CliOptions {
  std::string out = "orrery-measurements.yaml";
  bool quick = false;
  bool quiet = false;
  bool help = false;
  bool version = false;
  bool mpi = false;                // collectives across every rank of an MPI job
  bool dry_run = false;            // print the plan, touch no GPU
  std::optional<int> warmup;       // default 5, 3 with --quick
  std::optional<int> repetitions;  // default 20, 10 with --quick
  std::optional<int> max_gpus;
  std::set<Section> sections{std::begin(kAllSections), std::end(kAllSections)};
  std::set<Dtype> dtypes{std::begin(kGemmDtypes), std::end(kGemmDtypes)};
  std::set<Fp8Accumulation> fp8_accumulation{Fp8Accumulation::split};
  std::optional<std::vector<LinearShape>> gemm_shapes;  // --gemm-shapes
  std::optional<int> sustained;                         // --sustained, seconds

  Repetitions reps() const;
};

// Throws InputError (file "command line", key = the flag, value = what was given).
CliOptions parse_cli(const std::vector<std::string>& args);
std::string usage();

// What the program needs from the machine besides the GPU.
class Environment {
 public:
  virtual ~Environment() = default;
  virtual std::string utc_now_iso8601() = 0;  // "2026-11-27T01:23:45Z"
  virtual std::string hostname() = 0;
  virtual bool stderr_is_terminal() = 0;
};
std::unique_ptr<Environment> system_environment();

// Opens the device the options ask for (an MPI device with --mpi); throws
// DeviceUnavailable when there is none, InputError when the options ask for what this
// build cannot do (--mpi without MPI).
using DeviceFactory = std::function<std::unique_ptr<Device>(const CliOptions&)>;

inline constexpr const char* kToolVersion = "0.1.0";

// The whole program: parse, open the device, plan, sweep, write, summarise. Writes the
// summary table to `out`, progress and messages to `err`; returns the exit code.
int profile_main(const std::vector<std::string>& args, const DeviceFactory& open_device,
                 Environment& env, std::ostream& out, std::ostream& err);

}  // namespace orrery::profiler
