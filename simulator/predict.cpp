#include "simulator/predict.h"

#include <utility>

namespace orrery {

double mean_utilization(const StepResult& r) {
  double utilization = 0;
  for (const StageReport& st : r.stages) utilization += st.utilization;
  return utilization / static_cast<double>(r.stages.size());
}

Prediction predict(const Scenario& s, const SimulationOptions& options) {
  Prediction out;
  out.hardware = resolve_hardware(s);
  out.step = simulate_step(s, out.hardware, options);
  if (s.training.target) {
    out.run =
        estimate_run(s, out.step.step_time, mean_utilization(out.step), out.step.warmup_step_time);
  }
  return out;
}

}  // namespace orrery
