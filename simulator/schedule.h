// Pipeline schedules: the order in which one stage runs its forward and backward blocks
// (a model chunk for one micro-batch). Bubbles are not computed here: they come out of
// the dependencies between stages when the engine runs these orders.
#pragma once

#include <vector>

#include "scenario/spec.h"

namespace orrery {

struct Block {
  bool forward = true;
  int chunk = 0;  // model chunk (virtual stage) on this pipeline rank
  int microbatch = 0;
  // zb-h1 splits a backward in two: `forward = false, weight = false` is then the
  // input-gradient pass (B) alone and `weight = true` the weight-gradient pass (W).
  bool weight = false;
};

// GPipe: every forward, then every backward (last micro-batch first). 1F1B (Narayanan
// et al. 2021, PipeDream-Flush): p - stage - 1 warm-up forwards, then one forward and one
// backward alternately, then the remaining backwards. Interleaved 1F1B: Megatron-LM's
// order over the v chunks of each rank. ZB-H1 (Qi et al. 2023, section 2.1): 1F1B's F
// and B order, stage i running the W of micro-batch j after the B of micro-batch j + i,
// the deferred W's filling the cool-down.
std::vector<Block> pipeline_order(const ParallelismSpec& p, int stage);

}  // namespace orrery
