#include "model/pipeline.h"

#include "core/error.h"

namespace orrery {

std::vector<int> stage_of_layers(const ModelSpec& m, const ParallelismSpec& p) {
  std::vector<int> stage(m.layers, 0);
  if (p.first_stage_layers || p.last_stage_layers) {
    const int first = p.first_stage_layers.value_or(-1);
    const int last = p.last_stage_layers.value_or(-1);
    const int middle_stages = p.pp - (first >= 0 ? 1 : 0) - (last >= 0 ? 1 : 0);
    const int rest = m.layers - std::max(first, 0) - std::max(last, 0);
    ORRERY_CHECK(middle_stages > 0 && rest % middle_stages == 0, "validated uneven split");
    const int per = rest / middle_stages;
    const int first_middle = first >= 0 ? 1 : 0;
    for (int l = 0; l < m.layers; ++l) {
      if (l < std::max(first, 0)) {
        stage[l] = 0;
      } else if (l >= m.layers - std::max(last, 0)) {
        stage[l] = p.pp - 1;
      } else {
        stage[l] = first_middle + (l - std::max(first, 0)) / per;
      }
    }
    return stage;
  }
  const int per_chunk = m.layers / (p.pp * p.virtual_pipeline_stages);
  ORRERY_CHECK(per_chunk > 0, "validated even split");
  for (int l = 0; l < m.layers; ++l) stage[l] = (l / per_chunk) % p.pp;
  return stage;
}

}  // namespace orrery
