// Whole-model figures of one training step: parameter counts and FLOPs under the
// conventions of model/workload.h.
#pragma once

#include "core/units.h"
#include "model/memory.h"
#include "model/workload.h"
#include "scenario/spec.h"

namespace orrery {

struct StepFigures {
  double params_total = 0;        // every parameter once (tied embeddings once)
  double params_active = 0;       // touched per token: MoE counts top_k + shared experts
  double tokens_per_step = 0;     // global_batch * seq_len (images per step for CNNs)
  // Model FLOPs: forward and backward matmul FLOPs of one step, no recomputation and no
  // capacity padding (the MFU convention; Narayanan et al. 2021 eq. 3 without its
  // recompute term). Hardware FLOPs add recomputed forward passes and padding.
  Flop model_flops;
  Flop hardware_flops;
  Flop model_flops_per_gpu;
  Flop hardware_flops_per_gpu;
  MemoryReport memory;
};

StepFigures analyse_step(const Scenario& s);
// The same with the scenario's workload on one rank (build_workload with shard_of), when
// the caller has it: the memory is estimated from it.
StepFigures analyse_step(const Scenario& s, const Workload& sharded);
// The same with estimate_memory's `verdict_only` (a sweep's screening).
StepFigures analyse_step(const Scenario& s, bool memory_verdict_only);

}  // namespace orrery
