// Which GPUs form each parallel group, for the GPU a simulation follows and for the
// peers that run the same collective at the same time. Ranks are laid out in
// Megatron-Core's order: tensor-parallel rank fastest, then context, data, pipeline.
#pragma once

#include <vector>

namespace orrery {

struct Layout {
  int tp = 1, cp = 1, dp = 1, pp = 1;
  int gpu(int t, int c, int d, int p) const { return t + tp * (c + cp * (d + dp * p)); }
};

enum class GroupKind {
  tp,         // tensor-parallel ranks of one replica and stage
  dp,         // data-parallel ranks holding the same shard
  expert_dp,  // ranks holding the same experts: data-parallel index d = e + ep * j
  ep          // consecutive data-parallel ranks that split the experts
};

// A collective's group for the GPU with tp, cp and dp index 0 of `stage`, and the sibling
// groups (same size, same order) that run the same collective on the other GPUs.
struct GroupSet {
  std::vector<int> group;
  std::vector<std::vector<int>> siblings;
};

GroupSet groups_of(GroupKind kind, int stage, const Layout& L, int ep);
// The send/recv pair from stage `from` to stage `to` and every sibling pair.
GroupSet pipeline_pair(int from, int to, const Layout& L);

}  // namespace orrery
