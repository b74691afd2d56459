// `orrery calibrate`: reads measurement files, nccl-tests logs and Kineto traces, fits
// every family they hold enough points for, and renders the fitted profile
// (docs/calibration-format.md, "Profile").
#pragma once

#include <string>
#include <vector>

#include "calibrate/profile.h"
#include "core/env.h"

namespace orrery {

struct CalibrationInput {
  std::string path;
  std::string op_hint;  // for nccl-tests logs that do not name their program; may be empty
  // For Kineto traces: the GPUs per node of the traced job (`--gpus-per-node`), which with
  // each NCCL kernel's Process Group Ranks gives the nodes its group spans; 0: not known.
  int gpus_per_node = 0;
  // For Kineto traces: the scenario the trace was taken from (`--traced-scenario`), whose
  // optimizer step orrery sizes to give the trace's optimizer kernels their bytes; empty:
  // none, and the optimizer kernels are reported, not used.
  std::string traced_scenario = {};
};

// Reads every input (its kind told from its content) and fits every family. A family
// with too few points is refused: listed in `not_fitted` with how many points it needs
// and got. Throws InputError for a bad input, an input of no known kind, no input, or
// inputs of which nothing could be fitted.
// Inputs are read through `env`; one that cannot be opened is "cannot open the input file".
Profile calibrate(const std::vector<CalibrationInput>& inputs, Env& env = default_env());

// The profile as YAML; the same profile gives the same bytes.
std::string render_profile(const Profile& p);
// One line per fitted family with its held-out error, for the terminal.
std::string render_profile_summary(const Profile& p);

}  // namespace orrery
