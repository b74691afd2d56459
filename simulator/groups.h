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
  // parallelism.rank_order tp-cp-pp-dp: the pipeline index varies before the data index.
  bool pp_inner = false;
  int gpu(int t, int c, int d, int p) const {
    return pp_inner ? t + tp * (c + cp * (p + pp * d)) : t + tp * (c + cp * (d + dp * p));
  }
  // The inverse of gpu(): a GPU's tensor, context, data and pipeline indices.
  struct Coords {
    int t, c, d, p;
  };
  Coords coords(int g) const {
    if (pp_inner) return {g % tp, (g / tp) % cp, g / (tp * cp * pp), (g / (tp * cp)) % pp};
    return {g % tp, (g / tp) % cp, (g / (tp * cp)) % dp, g / (tp * cp * dp)};
  }
  int followed(int p) const { return gpu(follow_t, follow_c, follow_d, p); }
  // The pipeline ranks of Megatron's embedding group (embedding_group_stages,
  // simulator/step.h; StepContext sets it).
  std::vector<int> embedding_stages{};
  // The experts' tensor-parallel degree (parallelism.expert_tp; 0: tp).
  int etp = 0;
  int expert_tp() const { return etp > 0 ? etp : tp; }
  // Expert layers see a stage's ranks r = t + tp * (c + cp * d) as an expert
  // tensor-parallel index te = r % etp and a flat axis m = r / etp, which Megatron-Core's
  // expert rank generator splits as m = e + ep * j: expert-parallel index e fastest,
  // expert-data-parallel index j (see GroupKind::ep). With etp = tp, te is the tensor index
  // and m = c + cp * d; with etp = 1, m runs over the stage's ranks.
  int expert_gpu(int te, int m, int p) const { return te + expert_tp() * m + tp * cp * dp * p; }
  // The flat expert axis's length in a stage: tp * cp * dp / etp.
  int expert_ranks() const { return tp * cp * dp / expert_tp(); }
  // A GPU's expert tensor index te and flat index m (the inverse of expert_gpu in a stage).
  struct ExpertCoords {
    int te, m;
  };
  ExpertCoords expert_coords(int t, int c, int d) const {
    const int r = t + tp * (c + cp * d);
    return {r % expert_tp(), r / expert_tp()};
  }
};

// Expert groups fold expert parallelism over dp x cp as Megatron-Core does
// (NVIDIA/Megatron-LM d98e8a64ddf34856e74b24714e3bedb2f5a39553,
// megatron/core/parallel_state.py, initialize_model_parallel: the expert RankGenerator
// has tp = expert_tensor_parallel_size, cp = 1, dp = world / (etp * ep * pp) and the
// order "tp-cp-ep-dp-pp", so within a stage and tensor index the dense ranks
// m = c + cp * d are split as m = e + ep * j). Expert tensor parallelism is tp by default
// (megatron/training/arguments.py there: expert_tensor_parallel_size defaults to
// tensor_model_parallel_size) or 1 (parallelism.expert_tp), where m runs over the
// stage's tp x cp x dp ranks (Layout::expert_gpu).
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
