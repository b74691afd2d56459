// Which pipeline stage holds which transformer layer.
#pragma once

#include <vector>

#include "scenario/spec.h"

namespace orrery {

// Stage (pipeline rank) of each of the model's transformer layers, in order.
// Even split: layer l is in model chunk l / (L / (p*v)), and chunk c on rank c % p
// (Megatron-LM's interleaved assignment; v = 1 gives contiguous blocks). With
// first_stage_layers / last_stage_layers the first and last ranks take those counts
// and the others split the rest evenly.
std::vector<int> stage_of_layers(const ModelSpec& m, const ParallelismSpec& p);

}  // namespace orrery
