// The GPUs a step simulates and the groups they form. Symmetric: one rank per pipeline
// stage, the followed GPU (Layout::followed), standing for its tensor-, context- and
// data-parallel peers, each group of which is then that rank alone (its peers run as
// weighted copies, simulator/collectives.h `place`). Full: every GPU is a rank, in GPU
// order, and groups list every member. Private to the simulator.
#pragma once

#include <cstddef>
#include <vector>

#include "scenario/spec.h"
#include "simulator/groups.h"

namespace orrery::detail {

struct RankId {
  int t, c, d, s;  // tensor, context, data-parallel index and pipeline stage
};

class RankSet {
 public:
  // `local_dp`: data-parallel ranks per node (hybrid sharding's shard group).
  RankSet(const Layout& L, const ParallelismSpec& p, bool full, int gpus, int local_dp);

  std::size_t size() const { return ranks_.size(); }
  const RankId& operator[](std::size_t r) const { return ranks_[r]; }
  bool full() const { return full_; }
  // The simulated rank at these indices (symmetric: the stage's rank).
  int rank_of(int t, int c, int d, int stage) const;
  // The GPU rank r stands for.
  int gpu(std::size_t r) const;
  // Each rank's pipeline stage, in rank order.
  std::vector<int> stages() const;

  // The data-parallel group of rank r: dense gradients over dp x cp (as the symmetric
  // GroupKind::dp), expert gradients over the ranks holding the same experts.
  std::vector<int> dp_members(std::size_t r, bool expert) const;
  // The data- and context-parallel ranks of rank r's node, which hold the same weights
  // (hybrid sharding's shard group, hpZ's group).
  std::vector<int> local_members(std::size_t r) const;
  // The ranks that shard ZeRO-3 / FSDP state with rank r: every data-parallel rank, or
  // with hybrid sharding those of its node (`shard_kind` dp or dp_local).
  std::vector<int> shard_members(std::size_t r, GroupKind shard_kind) const;
  // The ranks holding copies of the word embedding that rank r's tensor, context and data
  // index sees: its ranks at the pipeline ranks `stages` (embedding_group_stages;
  // GroupKind::embedding).
  std::vector<int> embedding_members(std::size_t r, const std::vector<int>& stages) const;
  // DualPipe: the rank holding the other copy of rank r's chunk-0 layers.
  std::size_t mirror_of(std::size_t r) const;
  // The ranks a gradient of rank r is reduced over: its data-parallel group and, under
  // DualPipe, the mirror's.
  std::vector<int> reduce_members(std::size_t r, bool expert, bool dual) const;

 private:
  Layout L_;
  int ep_ = 1, pp_ = 1, local_dp_ = 1;
  bool full_ = false;
  std::vector<RankId> ranks_;
};

}  // namespace orrery::detail
