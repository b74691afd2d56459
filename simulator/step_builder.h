// The builder behind simulate_step (simulator/step.h): level-1 layer templates
// (step_layers.cpp) and the level-2 pipeline (step.cpp). Private to the simulator.
#pragma once

#include <map>
#include <memory>
#include <tuple>
#include <utility>
#include <vector>

#include "calibrate/compute_model.h"
#include "model/workload.h"
#include "simulator/collectives.h"
#include "simulator/groups.h"
#include "simulator/step.h"

namespace orrery::detail {

// Time attributes of a compute task beyond plain compute (seconds at full speed).
struct Parts {
  double tp = 0, ep = 0, cp = 0, recompute = 0, selective = 0;
};

class StepBuilder {
 public:
  StepBuilder(const Scenario& s, const SimulationOptions& opt);

  StepResult run();

 private:
  StepBuilder(const Scenario& s, const SimulationOptions& opt, Calibrated calibration);

  struct Template {
    double total = 0;
    Parts parts;
    std::map<LinkClass, double> traffic;
  };
  enum class PassKind { forward, backward, recompute };

  // --- communication plans ------------------------------------------------------
  int comm_index(TaskGraph& g, std::map<std::tuple<int, int, int, double>, int>& cache,
                 CollectiveOp op, GroupKind kind, int stage, double bytes);

  int pp_comm_index(TaskGraph& g, int from, int to);
  // Bytes per link class that `plan` and its sibling groups move together.
  std::map<LinkClass, double> group_traffic(const CommPlan& plan,
                                            const std::vector<std::vector<int>>& siblings,
                                            bool nvls) const;

  // The collective that a comm point turns into for a pass; none when it is a no-op.
  // `fp8_input`: the op is a GEMM whose input the fp8 recipe all-gathers in fp8
  // (training.fp8.communication.tp_allgather), 1 byte an element.
  bool comm_for(CommPoint cp, bool forward, CollectiveOp& op, GroupKind& kind, double& bytes,
                bool fp8_input = false) const;

  // --- one layer, op by op --------------------------------------------------------
  // Appends the tasks of one pass of `layer` on `rank` (GPU of `stage`), after task
  // `after`; returns the last task. Accumulates compute seconds into `parts`.
  int append_layer(TaskGraph& g, std::map<std::tuple<int, int, int, double>, int>& cache, int rank,
                   int stage, const Layer& layer, PassKind pass, int after, int microbatch);

  // Level 1: one pass of one layer kind on the stage's GPU, simulated alone.
  const Template& layer_template(int stage, const Layer& layer, PassKind pass);

  bool groups_inside_node() const;

  // zb-h1: seconds of the layer's weight-gradient GEMMs, the W part of its backward.
  double weight_gradient_time(const Layer& layer) const;

  static int layer_signature(const Layer& l);

  // --- level 2 ----------------------------------------------------------------------
  void build_pipeline(TaskGraph& g);
  // The scenario's faults as engine changes on the simulated ranks and topology links
  // (after build_pipeline, which maps ranks to stages). Stages, nodes and GPUs were
  // range-checked with the scenario; throws InputError for a leaf the fabric lacks.
  std::vector<EngineChange> fault_changes() const;

  // DualPipe's overlapped forward-backward pair (DeepSeek-V3 report, section 3.2.1): the
  // MoE all-to-all of each side (tasks forward.first..second, backward.first..second)
  // runs under the other side's compute, hidden up to that compute's length; the compute
  // covering it runs slower by the engine's compute_slowdown. Tensor- and
  // context-parallel exposure is kept (DeepSeek-V3 trains without either).
  void overlap_pair(TaskGraph& g, std::pair<int, int> forward, std::pair<int, int> backward) const;

  const Scenario& s_;
  const ParallelismSpec& p_;
  SimulationOptions opt_;
  Topology topo_;
  std::unique_ptr<ComputeModel> model_;
  Layout L_;
  Workload work_;
  std::vector<double> capacity_;
  EngineOptions engine_options_;
  double act_bytes_ = 2, tp_bytes_ = 0, pp_bytes_ = 0, ep_bytes_ = 0;
  int local_dp_ = 1;  // data-parallel ranks inside one node (hybrid sharding)
  double expert_time_scale_ = 1.0;  // MoE load imbalance on the busiest rank
  std::map<std::tuple<int, int, int, int>, Template> templates_;
  std::map<std::pair<int, int>, int> pp_cache_;
  std::vector<int> optimizer_task_;
  std::vector<int> stage_of_rank_;
  std::map<LinkClass, double> traffic_;
};

}  // namespace orrery::detail
