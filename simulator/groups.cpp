#include "simulator/groups.h"

#include <algorithm>
#include <cstddef>

namespace orrery {

namespace {

// The group holding GPU `followed` (else the first) and the others as its siblings, in
// their order.
GroupSet split_followed(std::vector<std::vector<int>> all, int followed) {
  GroupSet out;
  std::size_t own = 0;
  for (std::size_t i = 0; i < all.size(); ++i)
    if (std::find(all[i].begin(), all[i].end(), followed) != all[i].end()) {
      own = i;
      break;
    }
  for (std::size_t i = 0; i < all.size(); ++i) {
    if (i == own) {
      out.group = std::move(all[i]);
    } else {
      out.siblings.push_back(std::move(all[i]));
    }
  }
  return out;
}

}  // namespace

GroupSet groups_of(GroupKind kind, int stage, const Layout& L, int block) {
  const int ep = block;
  if (kind == GroupKind::dp_mirror || kind == GroupKind::expert_dp_mirror) {
    const GroupKind one = kind == GroupKind::dp_mirror ? GroupKind::dp : GroupKind::expert_dp;
    GroupSet out = groups_of(one, stage, L, block);
    const GroupSet mirror = groups_of(one, L.pp - 1 - stage, L, block);
    out.group.insert(out.group.end(), mirror.group.begin(), mirror.group.end());
    for (std::size_t i = 0; i < out.siblings.size(); ++i)
      out.siblings[i].insert(out.siblings[i].end(), mirror.siblings[i].begin(),
                             mirror.siblings[i].end());
    return out;
  }
  std::vector<std::vector<int>> all;
  switch (kind) {
    case GroupKind::tp:
      for (int d = 0; d < L.dp; ++d)
        for (int c = 0; c < L.cp; ++c) {
          std::vector<int> g;
          for (int t = 0; t < L.tp; ++t) g.push_back(L.gpu(t, c, d, stage));
          all.push_back(std::move(g));
        }
      break;
    case GroupKind::dp:  // gradients are reduced over dp x cp (Megatron-Core)
      for (int t = 0; t < L.tp; ++t) {
        std::vector<int> g;
        for (int d = 0; d < L.dp; ++d)
          for (int c = 0; c < L.cp; ++c) g.push_back(L.gpu(t, c, d, stage));
        all.push_back(std::move(g));
      }
      break;
    case GroupKind::cp:
      for (int t = 0; t < L.tp; ++t)
        for (int d = 0; d < L.dp; ++d) {
          std::vector<int> g;
          for (int c = 0; c < L.cp; ++c) g.push_back(L.gpu(t, c, d, stage));
          all.push_back(std::move(g));
        }
      break;
    case GroupKind::expert_dp:  // ranks holding the same experts: m = e + ep * j
      for (int t = 0; t < L.expert_tp(); ++t)
        for (int e = 0; e < ep; ++e) {
          std::vector<int> g;
          for (int m = e; m < L.expert_ranks(); m += ep) g.push_back(L.expert_gpu(t, m, stage));
          all.push_back(std::move(g));
        }
      break;
    case GroupKind::ep:  // ep consecutive flat expert indices (Layout::expert_gpu) split the experts
      for (int t = 0; t < L.expert_tp(); ++t)
        for (int j = 0; j < L.expert_ranks() / ep; ++j) {
          std::vector<int> g;
          for (int e = 0; e < ep; ++e) g.push_back(L.expert_gpu(t, j * ep + e, stage));
          all.push_back(std::move(g));
        }
      break;
    case GroupKind::dp_local:  // the node's ranks holding the same weights: its d's, every c
      for (int t = 0; t < L.tp; ++t)
        for (int j = 0; j < L.dp / block; ++j) {
          std::vector<int> g;
          for (int e = 0; e < block; ++e)
            for (int c = 0; c < L.cp; ++c) g.push_back(L.gpu(t, c, j * block + e, stage));
          all.push_back(std::move(g));
        }
      break;
    case GroupKind::dp_cross:  // one rank per node holding the same shard: same c, d % block
      for (int t = 0; t < L.tp; ++t)
        for (int e = 0; e < block; ++e)
          for (int c = 0; c < L.cp; ++c) {
            std::vector<int> g;
            for (int d = e; d < L.dp; d += block) g.push_back(L.gpu(t, c, d, stage));
            all.push_back(std::move(g));
          }
      break;
    case GroupKind::embedding:  // the embedding group's stages, same t, c, d
      for (int d = 0; d < L.dp; ++d)
        for (int c = 0; c < L.cp; ++c)
          for (int t = 0; t < L.tp; ++t) {
            std::vector<int> g;
            for (int st : L.embedding_stages) g.push_back(L.gpu(t, c, d, st));
            all.push_back(std::move(g));
          }
      return split_followed(std::move(all), L.followed(0));
    case GroupKind::dp_mirror:
    case GroupKind::expert_dp_mirror:
      break;  // built from dp / expert_dp above
  }
  return split_followed(std::move(all), L.followed(stage));
}

GroupSet pipeline_pair(int from, int to, const Layout& L) {
  std::vector<std::vector<int>> all;
  for (int d = 0; d < L.dp; ++d)
    for (int c = 0; c < L.cp; ++c)
      for (int t = 0; t < L.tp; ++t) all.push_back({L.gpu(t, c, d, from), L.gpu(t, c, d, to)});
  return split_followed(std::move(all), L.followed(from));
}

}  // namespace orrery
