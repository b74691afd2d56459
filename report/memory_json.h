// The JSON form of a memory breakdown, shared by `check` and `run` (the
// `memory_per_gpu_bytes` object). Private to the report component.
#pragma once

#include <nlohmann/json.hpp>

#include "model/memory.h"

namespace orrery::detail {

inline nlohmann::ordered_json memory_json(const MemoryBreakdown& m) {
  return {{"weights", m.weights.value()},     {"gradients", m.gradients.value()},
          {"optimizer", m.optimizer.value()}, {"activations", m.activations.value()},
          {"other", m.other.value()},         {"total", m.total().value()}};
}

}  // namespace orrery::detail
