// The physical parameters `orrery calibrate` fits to a user's measured runs (scenarios
// with a `measured:` block; calibrate/fit_runs.h), their plausible ranges, and how a
// profile's fitted values are put in place of the presets' (runtime half: resolve_hardware
// applies them, so `run` predicts with them). docs/calibration-format.md, "Parameters".
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "scenario/spec.h"

namespace orrery {

// A parameter fitted to measured runs, as a profile holds it.
struct RunParameter {
  std::string key;          // one of run_parameter_keys(): "cluster.gpu.gemm_efficiency.bf16", ...
  double value = 0;         // fitted
  double start = 0;         // the scenarios' value before the fit (their presets')
  double min = 0, max = 0;  // run_parameter_range(key)
  bool at_bound = false;    // value sits on min or max: the runs ask for more than the range
};

struct ParameterRange {
  double min = 0, max = 0;
};

// The parameters a scenario's prediction reads that a fit may move, in this order:
//   cluster.gpu.gemm_efficiency.D   the GEMM plateau fraction of each format D the
//                                   scenario's GEMMs run in (compute_dtype of the
//                                   precision, and attention_dtype's);
//   cluster.gpu.attention_efficiency   fused attention (training.flash_attention), or
//   cluster.gpu.cudnn_attention_efficiency for runs on cuDNN's kernel
//                                      (training.stack.attention cudnn);
//   cluster.inter_node.efficiency      NIC bus bandwidth / line rate (nodes > 1);
//   simulation.compute_slowdown        compute under a running collective.
std::vector<std::string> run_parameter_keys(const Scenario& s);

// The plausible range of `key` (the sources are in run_parameters.cpp and
// docs/calibration-format.md); none for a key that is not a run parameter.
std::optional<ParameterRange> run_parameter_range(const std::string& key);

// The value `key` has in `s` (0 when the scenario's GPU has no such figure).
double run_parameter_value(const Scenario& s, const std::string& key);

// `s` with `key` set to `value`: what a profile's parameter does to a prediction.
void set_run_parameter(Scenario& s, const std::string& key, double value);

// The profile's parameters put into the cluster the simulator runs on and into the
// compute slowdown it uses (resolve_hardware). Throws InputError (at `file`) for a key
// that is not a run parameter or a value outside its range.
void apply_run_parameters(const std::vector<RunParameter>& ps, const std::string& file,
                          ClusterSpec& c, double& compute_slowdown);

}  // namespace orrery
