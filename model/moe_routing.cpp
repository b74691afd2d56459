#include "model/moe_routing.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"

namespace orrery {
namespace {

double log_choose(double n, double r) {
  return std::lgamma(n + 1) - std::lgamma(r + 1) - std::lgamma(n - r + 1);
}

}  // namespace

double ExpertRouting::distinct_ranks() const {
  return std::accumulate(rank_share.begin(), rank_share.end(), 0.0);
}

double ExpertRouting::distinct_nodes() const {
  return std::accumulate(node_share.begin(), node_share.end(), 0.0);
}

double miss_probability(const std::vector<int>& overlap, int chosen, int group_size, int k) {
  const int groups = static_cast<int>(overlap.size());
  ORRERY_CHECK(chosen >= 1 && chosen <= groups && group_size >= 1, "routing groups");
  std::vector<int> hit;  // the groups that hold some of the bin's experts
  for (int o : overlap)
    if (o > 0) hit.push_back(o);
  const int m = static_cast<int>(hit.size());
  const int most = std::accumulate(hit.begin(), hit.end(), 0);
  // ways[j][x]: subsets of j of the hit groups holding x of the bin's experts together.
  std::vector<std::vector<double>> ways(static_cast<size_t>(m) + 1,
                                        std::vector<double>(static_cast<size_t>(most) + 1, 0.0));
  ways[0][0] = 1;
  for (int o : hit)
    for (int j = m; j >= 1; --j)
      for (int x = most; x >= o; --x) ways[j][x] += ways[j - 1][x - o];
  const double candidates = static_cast<double>(chosen) * group_size;
  double miss = 0;
  for (int j = 0; j <= m; ++j) {
    // Exactly these j of the hit groups chosen, the other chosen - j among the rest.
    const int rest = groups - m, others = chosen - j;
    if (others < 0 || others > rest) continue;
    const double w = std::exp(log_choose(rest, others) - log_choose(groups, chosen));
    for (int x = 0; x <= most; ++x) {
      if (ways[j][x] == 0) continue;
      // None of the k picks among `candidates` lands on the x bin experts.
      double none = 1;
      for (int i = 0; i < k && none > 0; ++i)
        none *= std::max(0.0, candidates - x - i) / (candidates - i);
      miss += ways[j][x] * w * none;
    }
  }
  return miss;
}

ExpertRouting expert_routing(const MoeSpec& moe, const std::vector<int>& node_of_rank) {
  const int ep = static_cast<int>(node_of_rank.size());
  const int experts = moe.experts, k = moe.top_k;
  ORRERY_CHECK(ep >= 1 && experts % ep == 0, "experts split evenly over the ep ranks");
  const int per_rank = experts / ep;
  const int nodes = *std::max_element(node_of_rank.begin(), node_of_rank.end()) + 1;
  const int per_node = experts / nodes;
  // The groups a token chooses among: Megatron-Core's router groups (contiguous experts),
  // or for the node limit the nodes themselves; a node limit that leaves fewer than top_k
  // experts is raised to the nodes top_k needs, and one of N or more is no limit.
  std::vector<int> group_of(static_cast<size_t>(experts), 0);
  int groups = 1, chosen = 1, group_size = experts;
  if (moe.router_groups > 0) {
    groups = moe.router_groups;
    chosen = moe.router_group_topk;
    group_size = experts / groups;
    for (int e = 0; e < experts; ++e) group_of[static_cast<size_t>(e)] = e / group_size;
  } else if (moe.node_limit > 0) {
    const int limit = std::max(moe.node_limit, (k + per_node - 1) / per_node);
    if (limit < nodes) {
      groups = nodes;
      chosen = limit;
      group_size = per_node;
      for (int e = 0; e < experts; ++e)
        group_of[static_cast<size_t>(e)] = node_of_rank[static_cast<size_t>(e / per_rank)];
    }
  }
  auto share = [&](auto in_bin) {
    std::vector<int> overlap(static_cast<size_t>(groups), 0);
    for (int e = 0; e < experts; ++e)
      if (in_bin(e)) overlap[static_cast<size_t>(group_of[static_cast<size_t>(e)])] += 1;
    return 1.0 - miss_probability(overlap, chosen, group_size, k);
  };
  ExpertRouting out;
  for (int r = 0; r < ep; ++r)
    out.rank_share.push_back(share([&](int e) { return e / per_rank == r; }));
  for (int n = 0; n < nodes; ++n)
    out.node_share.push_back(
        share([&](int e) { return node_of_rank[static_cast<size_t>(e / per_rank)] == n; }));
  return out;
}

MoeLoad moe_load(const MoeSpec& moe) {
  const double L = moe.load_imbalance;
  MoeLoad out;
  out.busiest = L;
  if (!moe.capacity_factor) return out;
  const double cf = *moe.capacity_factor;
  // E[max(0, x - cf)] for x uniform on [2 - L, L] (all at 1 when L = 1).
  const double lo = 2.0 - L, hi = L;
  if (cf <= lo) {
    out.dropped = 1.0 - cf;
  } else if (cf < hi) {
    out.dropped = (hi - cf) * (hi - cf) / (2.0 * (hi - lo));
  }
  out.executed = moe.pad_to_capacity ? cf : 1.0 - out.dropped;
  out.busiest = moe.pad_to_capacity ? cf : std::min(L, cf);
  return out;
}

double wire_bytes(MoeSpec::Wire w, double hidden) {
  switch (w) {
    case MoeSpec::Wire::fp8:
      return hidden + 4.0 * std::ceil(hidden / 128.0);
    case MoeSpec::Wire::bf16:
      return 2.0 * hidden;
    case MoeSpec::Wire::fp32:
      return 4.0 * hidden;
  }
  return 2.0 * hidden;
}

}  // namespace orrery
