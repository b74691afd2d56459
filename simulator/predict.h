// Everything orrery predicts for one scenario, computed once: the hardware with its
// calibration resolved, the simulated step (figures, breakdown, memory, traffic,
// timeline) and, with a training target, the whole run. `orrery run`, `validate`,
// `sweep` and every report only format a Prediction.
#pragma once

#include <optional>

#include "calibrate/compute_model.h"
#include "model/training_run.h"
#include "scenario/spec.h"
#include "simulator/step.h"

namespace orrery {

struct Prediction {
  Hardware hardware;
  StepResult step;
  // training.target set: the run at this step time, its power drawn at the mean of the
  // stages' utilizations (model/training_run.h).
  std::optional<RunEstimate> run;
};

// Throws InputError as simulate_step and estimate_run do.
Prediction predict(const Scenario& s, const SimulationOptions& options = {});

// The stages' mean utilization ((compute + recompute + optimizer) / step time).
double mean_utilization(const StepResult& r);

}  // namespace orrery
