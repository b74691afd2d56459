// Which GPUs form each parallel group, for the GPU a simulation follows and for the
// peers that run the same collective at the same time. Ranks are laid out in
// Megatron-Core's order: tensor-parallel rank fastest, then context, data, pipeline.
#pragma once

#include <vector>

namespace orrery {

struct Layout {
  int tp = 1, cp = 1, dp = 1, pp = 1;
  // The GPU a symmetric simulation follows in every stage: tensor, context and data
  // index 0, unless a fault singles out another GPU (simulator/step.h).
  int follow_t = 0, follow_c = 0, follow_d = 0;
  int gpu(int t, int c, int d, int p) const { return t + tp * (c + cp * (d + dp * p)); }
  // The inverse of gpu(): a GPU's tensor, context, data and pipeline indices.
  struct Coords {
    int t, c, d, p;
  };
  Coords coords(int g) const {
    return {g % tp, (g / tp) % cp, (g / (tp * cp)) % dp, g / (tp * cp * dp)};
  }
  int followed(int p) const { return gpu(follow_t, follow_c, follow_d, p); }
  // Expert layers see a stage's dp x cp ranks as one flat axis m = c + cp * d (context
  // index fastest), which Megatron-Core's expert rank generator splits as m = e + ep * j:
  // expert-parallel index e fastest, expert-data-parallel index j (see GroupKind::ep).
  int expert_gpu(int t, int m, int p) const { return gpu(t, m % cp, m / cp, p); }
  int expert_index(int c, int d) const { return c + cp * d; }
};

// Expert groups fold expert parallelism over dp x cp as Megatron-Core does
// (NVIDIA/Megatron-LM d98e8a64ddf34856e74b24714e3bedb2f5a39553,
// megatron/core/parallel_state.py, initialize_model_parallel: the expert RankGenerator
// has tp = expert_tensor_parallel_size, cp = 1, dp = world / (etp * ep * pp) and the
// order "tp-cp-ep-dp-pp", so within a stage and tensor index the dense ranks
// m = c + cp * d are split as m = e + ep * j). Expert tensor parallelism is tp
// (megatron/training/arguments.py there: expert_tensor_parallel_size defaults to
// tensor_model_parallel_size); orrery has no separate expert TP.
enum class GroupKind {
  tp,         // tensor-parallel ranks of one replica and stage
  dp,         // data-parallel ranks holding the same shard, with the context-parallel ones
  cp,         // context-parallel ranks of one replica and stage
  expert_dp,  // ranks holding the same experts: flat index m = e + ep * j, e fixed
  ep,         // ep consecutive flat indices m (context fastest) that split the experts
  dp_local,   // hybrid sharding: the data- and context-parallel ranks inside one node
              // (d / local equal, every c): they hold the same weights
  dp_cross,   // hybrid sharding: one rank per node holding the same shard (c equal,
              // d % local equal)
  // DualPipe: the dp (expert_dp) group of `stage` followed by the same group of stage
  // pp - 1 - stage, which holds the other copy of the same layers.
  dp_mirror,
  expert_dp_mirror,
  // The first and the last pipeline stage's GPUs of the same tensor, context and data
  // index, which hold the two copies of tied word embeddings (DeepSpeed's tied-module
  // group, PipelineModule._index_tied_modules in deepspeed/runtime/pipe/module.py).
  embedding
};

// A collective's group for the followed GPU of `stage` (Layout::followed; the first group
// when that GPU is in none), and the
// sibling groups (same size, same order) that run the same collective on the other GPUs.
struct GroupSet {
  std::vector<int> group;
  std::vector<std::vector<int>> siblings;
};

// `block` is the group size of the blocked kinds: ep for ep/expert_dp, the data-parallel
// ranks per node for dp_local/dp_cross.
GroupSet groups_of(GroupKind kind, int stage, const Layout& L, int block);
// The send/recv pair from stage `from` to stage `to` and every sibling pair.
GroupSet pipeline_pair(int from, int to, const Layout& L);

}  // namespace orrery
