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
};

// GPipe: every forward, then every backward (last micro-batch first). 1F1B (Narayanan
// et al. 2021, PipeDream-Flush): p - stage - 1 warm-up forwards, then one forward and one
// backward alternately, then the remaining backwards. Interleaved 1F1B: Megatron-LM's
// order over the v chunks of each rank.
std::vector<Block> pipeline_order(const ParallelismSpec& p, int stage);

}  // namespace orrery
