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

// A kernel time from a Kineto trace mapped to an op class the simulation times
// (docs/calibration-format.md, "Measured kernels"); calibrate/kernel_classes.h maps them.
//   gemm        aten::mm / addmm / linear: dtype and m, n, k from the op's Input Dims;
//   attention   flash / SDPA kernels: dtype and the full s x S product's FLOPs
//               4 b h s s_kv d from scaled_dot_product_*'s query and key, forward or backward;
//   norm, softmax, elementwise   by kernel name; bytes = the op's inputs + one output
//               the size of its first input;
//   collective  NCCL kernels: the collective, its group size and message size (In msg
//               nelems x the dtype's size), as Kineto copies them onto the kernel, and the
//               nodes the group spans where its ranks and the GPUs per node are known.
// One entry per (class, pass, dtype, shape, op, kernel): `time` the median over its calls of
// the summed kernels of one call.
struct MeasuredKernel {
  std::string cls;            // gemm, attention, norm, softmax, elementwise, collective
  std::string pass;           // attention: forward or backward; empty otherwise
  std::string file;           // the trace
  std::string kernel;         // the first kernel's name
  std::string op;             // the launching CPU op, or empty
  std::string gpu;            // the trace's device name, or empty
  Dtype dtype = Dtype::bf16;  // gemm, attention
  GemmShape shape;            // gemm
  double flops = 0;           // gemm 2mnk; attention the full product
  double bytes = 0;           // norm, softmax, elementwise: moved; collective: message size
  CollectiveOp collective = CollectiveOp::all_reduce;
  int ranks = 0;  // collective: group size
  // collective: the nodes the group spans (group_nodes, calibrate/kernel_classes.h), from the
  // trace's Process Group Ranks and `orrery calibrate --gpus-per-node`; 0 when not known, and
  // then the entry is kept but not used by the simulation.
  int nodes = 0;
  int calls = 0;
  Seconds time;
  // Not in the file: set when the profile is projected onto another GPU (project_profile,
  // calibrate/profile_model.h): "x 0.698 (HBM 3.35 / 4.8 TB/s)".
  std::string projection;
};

struct Profile {
  std::vector<InputProvenance> inputs;
  std::vector<CollectiveFit> collectives;  // by op, gpus, nodes
  std::vector<GemmFit> gemm;               // by dtype
  std::vector<MemoryFit> memory;           // by kernel
  std::optional<LaunchFit> launch;
  std::vector<OpTime> op_times;            // by op, shapes, types
  std::vector<MeasuredKernel> measured;    // by class, then as the trace listed them
  std::vector<std::string> not_fitted;     // families read but not fitted, and why
  // Not in the file: set by project_profile (calibrate/profile_model.h) when the profile
  // was measured on another GPU than the scenario's. What was projected and how, one line
  // each, and the half-width it adds to the prediction band (a fraction of step time).
  std::vector<std::string> projected;
  double projection_half_width = 0;
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
