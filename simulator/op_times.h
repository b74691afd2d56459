// `orrery run --explain`'s op-by-op table: every op of one micro-batch on one GPU as the
// simulator times it, alone on the GPU, with the kernels the host issues for it.
#pragma once

#include <string>
#include <vector>

#include "calibrate/compute_model.h"
#include "model/workload.h"
#include "scenario/spec.h"

namespace orrery {

struct OpPassTimes {
  std::string name;
  OpKind kind = OpKind::gemm;
  // ComputeModel::op_time, an expert op's at the busiest rank's load (as the simulator's
  // layer templates take it).
  Seconds fwd, bwd;
  double fwd_kernels = 0, bwd_kernels = 0;  // issued by the host (layer_templates.h)
  // The forward's FLOPs the kernels execute (fwd_flops x computed_share) and the bytes its
  // kernels move (read, written and auxiliary kernels'), an expert op's at the busiest
  // rank's load as its time; the rates shown divide by fwd.
  Flop fwd_flops;
  Bytes fwd_bytes;
};

// A run of consecutive layers whose ops take the same times (the model's 48 alike
// transformer layers are one group): `first` and `last` name the ends.
struct LayerGroupTimes {
  std::string first, last;
  int count = 0;
  std::vector<OpPassTimes> ops;  // of one layer
  Seconds fwd, bwd;         // one layer's sums
};

struct OpTimes {
  std::vector<LayerGroupTimes> groups;  // in forward order
  Seconds fwd, bwd;                     // every layer of the model at this shard, summed
};

// Every layer of the scenario's per-GPU workload (build_workload with shard_of: every
// pipeline stage's layers), timed on `model`. Throws what build_workload throws.
OpTimes op_times(const Scenario& s, const ComputeModel& model);

}  // namespace orrery
