// A fitted profile (docs/calibration-format.md, "Profile"): the families `orrery
// calibrate` fitted and where its inputs came from, and the reader the simulator's
// compute model uses to load one (runtime half of calibrate/; calibrate/calibrate.h
// writes profiles).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "calibrate/families.h"
#include "calibrate/run_parameters.h"
#include "core/env.h"
#include "core/units.h"

namespace orrery {

// Where each input came from, as the profile records it.
struct InputProvenance {
  std::string file;
  std::string kind;  // measurements, nccl-tests, kineto
  std::string gpu;   // as the input names it, or empty
  std::string detail;  // tool, date, versions; nccl-tests: op, ranks and nodes per run
};

// Per-op kernel time from a Kineto trace: the kernels one CPU op launched, summed per
// call, grouped by op name, input shapes and types.
struct OpTime {
  std::string op;      // "aten::mm", or the kernel name when no CPU op is linked
  std::string shapes;  // "[[4096, 4096], [4096, 4096]]", or empty
  std::string types;   // "[c10::BFloat16, c10::BFloat16]", or empty
  int calls = 0;
  Seconds median, min, max;
};

struct Profile {
  std::vector<InputProvenance> inputs;
  std::vector<CollectiveFit> collectives;  // by op, gpus, nodes
  std::vector<GemmFit> gemm;               // by dtype
  std::vector<MemoryFit> memory;           // by kernel
  std::optional<LaunchFit> launch;
  std::vector<OpTime> op_times;            // by op, shapes, types
  std::vector<std::string> not_fitted;     // families read but not fitted, and why
  // Fitted to measured runs (orrery calibrate with scenario inputs), applied over the
  // presets' figures by resolve_hardware; in run_parameter_keys() order.
  std::vector<RunParameter> parameters;
};

// Reads a profile written by render_profile (strictly: unknown keys are errors). Figures
// come back as written, to six significant digits.
Profile read_profile_text(const std::string& text, const std::string& file);
// The file at `path` read through `env`; "cannot open the calibration profile" when it
// cannot be opened.
Profile read_profile_file(const std::string& path, Env& env = default_env());

}  // namespace orrery
