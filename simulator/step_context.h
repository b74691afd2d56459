// What one simulated step is built from, fixed before the first task is added: the
// scenario, the topology (with failed NICs routed around), the compute model, the rank
// layout, the workload and the sizes of the messages the split sends. Private to the
// simulator; the passes (simulator/step_passes.h) read it and never change it.
#pragma once

#include <memory>
#include <vector>

#include "calibrate/compute_model.h"
#include "model/layer_pass.h"
#include "model/workload.h"
#include "scenario/spec.h"
#include "simulator/engine.h"
#include "simulator/groups.h"
#include "simulator/step.h"
#include "simulator/topology.h"

namespace orrery::detail {

struct StepContext {
  // `work`: the scenario's workload on one rank (build_workload with shard_of); it
  // outlives the context.
  StepContext(const Scenario& s, const SimulationOptions& opt, const Hardware& hardware,
              const Workload& work);

  const Scenario& s;
  const ParallelismSpec& p;
  SimulationOptions opt;
  Topology topo;
  std::shared_ptr<const ComputeModel> model;
  Layout L;  // with the GPU the symmetric step follows
  const Workload& work;
  std::vector<Bandwidth> capacity;  // per topology link
  EngineOptions engine;
  MessageSizes bytes;              // model/layer_pass.h
  int local_dp = 1;                // data-parallel ranks inside one node (hybrid sharding)
  double expert_time_scale = 1.0;  // MoE load imbalance on the busiest rank
  bool dual = false;               // DualPipe: two chunks per rank, mirrored stages
  bool gradient_sync = true;       // false: local SGD's steps between averagings

  // Whether the tensor- and expert-parallel groups of every stage sit inside one node
  // (then their layer templates do not depend on the stage).
  bool groups_inside_node() const;
};

}  // namespace orrery::detail
