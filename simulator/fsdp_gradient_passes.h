// PyTorch FSDP's memory-bound kernels over each unit's gradient around its reduce-scatter
// (docs/model.md, "PyTorch FSDP gradient passes"; the sources are cited where they are
// computed, simulator/gradient_passes.cpp). The simulator times them on the unit's
// backward compute; --explain lists them.
#pragma once

#include <string>
#include <vector>

#include "scenario/spec.h"

namespace orrery {

struct FsdpGradientPass {
  std::string what;    // the kernel, e.g. "pre-divide by 8"
  double bytes = 0;    // bytes it moves per element of the unit's unsharded gradient
  // A dtype-converting copy (Tensor.to), timed at cluster.gpu.cast_efficiency.
  bool dtype_cast = false;
};

// The passes of the scenario's FSDP implementation, in order; empty for any other
// (DeepSpeed ZeRO-3, Megatron-FSDP) or without ZeRO-3.
std::vector<FsdpGradientPass> fsdp_gradient_passes(const Scenario& s);

}  // namespace orrery
