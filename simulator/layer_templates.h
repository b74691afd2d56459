// Level 1 of the step (simulator/step.h): one pass of one layer, op by op, on the GPU of
// a stage. `append_layer` writes its tasks into any graph (the pipeline's, with
// SimulationOptions::op_level); `get` simulates it alone once and keeps the result, the
// template, which identical layers and micro-batches reuse. Private to the simulator.
#pragma once

#include <map>
#include <optional>
#include <tuple>

#include "model/workload.h"
#include "simulator/comm_planner.h"
#include "simulator/step_context.h"
#include "simulator/task_graph.h"

namespace orrery::detail {

// Kernels the host issues for `op`'s forward or backward pass (training.stack.host_overhead
// counts them; layer_templates.cpp says which).
double kernels_of(const Op& op, Pass pass, const std::optional<Fp8Spec>& fp8);

// Time attributes of a compute task beyond plain compute (at full speed).
struct Parts {
  Seconds tp, ep, cp, recompute, selective;
  Seconds offload;  // waiting for activation offload copies (training.activation_offload)
};

// One pass of a layer simulated alone: its length, the exposed communication in it, and
// the bytes its collectives move (every group of the stage counted).
struct Template {
  Seconds total;
  Parts parts;
  std::map<LinkClass, double> traffic;
};

class LayerTemplates {
 public:
  explicit LayerTemplates(const StepContext& ctx) : ctx_(ctx) {}

  // Appends the tasks of one pass of `layer` on `rank` (GPU of `stage`) through
  // `planner`, after task `after` (none: the first of its stream); returns the last task
  // (`after` when the pass has no tasks).
  MaybeTask append_layer(CommPlanner& planner, TaskGraph& g, int rank, int stage,
                         const Layer& layer, LayerPass pass, MaybeTask after, int microbatch) const;

  // The template of one pass of `layer` on `stage`'s GPU, simulated on first use.
  const Template& get(int stage, const Layer& layer, LayerPass pass);

  // zb-h1: the time of the layer's weight-gradient GEMMs, the W part of its backward.
  Seconds weight_gradient_time(const Layer& layer) const;

 private:
  const StepContext& ctx_;
  std::map<std::tuple<int, int, int, int>, Template> templates_;
};

}  // namespace orrery::detail
