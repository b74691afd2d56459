#include "simulator/rank_set.h"

namespace orrery::detail {

RankSet::RankSet(const Layout& L, const ParallelismSpec& p, bool full, int gpus, int local_dp)
    : L_(L), ep_(p.ep), pp_(p.pp), local_dp_(local_dp), full_(full) {
  if (full) {
    for (int gpu = 0; gpu < gpus; ++gpu) {
      const Layout::Coords at = L.coords(gpu);
      ranks_.push_back({at.t, at.c, at.d, at.p});
    }
  } else {
    for (int st = 0; st < p.pp; ++st) ranks_.push_back({L.follow_t, L.follow_c, L.follow_d, st});
  }
}

int RankSet::rank_of(int t, int c, int d, int stage) const {
  return full_ ? L_.gpu(t, c, d, stage) : stage;
}

int RankSet::gpu(std::size_t r) const {
  const RankId& id = ranks_[r];
  return L_.gpu(id.t, id.c, id.d, id.s);
}

std::vector<int> RankSet::stages() const {
  std::vector<int> out;
  for (const RankId& id : ranks_) out.push_back(id.s);
  return out;
}

std::vector<int> RankSet::dp_members(std::size_t r, bool expert) const {
  std::vector<int> members;
  if (!full_) {
    members.push_back(static_cast<int>(r));
    return members;
  }
  const RankId& id = ranks_[r];
  if (expert) {
    // The ranks of the same expert tensor index and flat index modulo ep
    // (GroupKind::expert_dp).
    const Layout::ExpertCoords at = L_.expert_coords(id.t, id.c, id.d);
    for (int m = at.m % ep_; m < L_.expert_ranks(); m += ep_) {
      const Layout::Coords g = L_.coords(L_.expert_gpu(at.te, m, id.s));
      members.push_back(rank_of(g.t, g.c, g.d, id.s));
    }
  } else {  // dp x cp, as the symmetric group (simulator/groups.h)
    for (int d = 0; d < L_.dp; ++d)
      for (int c = 0; c < L_.cp; ++c) members.push_back(rank_of(id.t, c, d, id.s));
  }
  return members;
}

std::vector<int> RankSet::local_members(std::size_t r) const {
  std::vector<int> members;
  if (!full_) {
    members.push_back(static_cast<int>(r));
    return members;
  }
  const RankId& id = ranks_[r];
  const int first = (id.d / local_dp_) * local_dp_;
  for (int d = first; d < first + local_dp_; ++d)
    for (int c = 0; c < L_.cp; ++c) members.push_back(rank_of(id.t, c, d, id.s));
  return members;
}

std::vector<int> RankSet::shard_members(std::size_t r, GroupKind shard_kind) const {
  return shard_kind == GroupKind::dp ? dp_members(r, false) : local_members(r);
}

std::vector<int> RankSet::embedding_members(std::size_t r, const std::vector<int>& stages) const {
  const RankId& id = ranks_[r];
  std::vector<int> out;
  for (int st : stages) out.push_back(rank_of(id.t, id.c, id.d, st));
  return out;
}

std::size_t RankSet::mirror_of(std::size_t r) const {
  const RankId& id = ranks_[r];
  return static_cast<std::size_t>(rank_of(id.t, id.c, id.d, pp_ - 1 - id.s));
}

std::vector<int> RankSet::reduce_members(std::size_t r, bool expert, bool dual) const {
  std::vector<int> members = dp_members(r, expert);
  if (dual) {
    const std::vector<int> mirror = dp_members(mirror_of(r), expert);
    members.insert(members.end(), mirror.begin(), mirror.end());
  }
  return members;
}

}  // namespace orrery::detail
