// `orrery calibrate` on the user's own runs: scenarios with a `measured:` block (a typed
// value or a Megatron-LM log's median). The few uncertain physical parameters the
// prediction reads (calibrate/run_parameters.h) are fitted, each within its range, by
// least squares on log(predicted / measured) over the runs, re-running the prediction;
// each run's leave-one-run-out error says how well the fit predicts a run it did not see.
// One value per parameter for every run: never a per-run factor.
// docs/calibration-format.md, "Calibrating on measured runs".
#pragma once

#include <string>
#include <vector>

#include "calibrate/profile.h"
#include "scenario/spec.h"

namespace orrery {

struct RunFitCase {
  std::string file, name;
  Metric metric = Metric::step_time_s;
  double measured = 0;
  double before = 0;     // predicted with the scenarios' (presets') values
  double predicted = 0;  // predicted with the fitted values
  double held_out = 0;   // predicted with the values fitted to the other runs
};

struct RunFit {
  std::vector<RunParameter> parameters;  // fitted, in run_parameter_keys() order
  std::vector<std::string> not_fitted;   // candidate parameters left as they were, and why
  std::vector<RunFitCase> runs;          // in input order
  int evaluations = 0;                   // predictions run (all runs of one evaluation: 1)
  // The profile to write: the scenarios' own profile (cluster.calibration), if any, with
  // the parameters and one provenance input per run.
  Profile profile;
};

// Fits the runs. `only`: the parameter keys to fit (empty: every key of
// run_parameter_keys() of any run whose change moves some prediction). Throws InputError
// (naming the file) for a run without a measured block, runs on different GPUs or naming
// different profiles, a profile that already holds fitted parameters, a key in `only`
// that is not a parameter of the runs, and fewer runs than parameters + 1 (each
// leave-one-run-out fit needs as many runs as parameters).
RunFit fit_runs(const std::vector<Scenario>& runs, const std::vector<std::string>& only = {});

// The terminal table: each parameter (fitted value, start, range, whether it hit a bound),
// each run (measured, predicted before and after, error, leave-one-run-out prediction and
// error) and the mean |error| of both.
std::string render_run_fit(const RunFit& f);

// Whether an input file's text is a scenario (a top-level cluster:, model: or name: key)
// rather than one of calibrate()'s measurement inputs.
bool looks_like_scenario(const std::string& text);

}  // namespace orrery
