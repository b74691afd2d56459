#include "model/moe_routing.h"

#include <algorithm>
#include <cmath>
#include <map>
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

double miss_probability(const std::vector<int>& overlap, int groups, int chosen, int group_size,
                        int k) {
  ORRERY_CHECK(chosen >= 1 && chosen <= groups && group_size >= 1, "routing groups");
  // The groups holding some of the bin's experts, by how many they hold: few distinct
  // counts (a whole group, or the partial ones at the bin's ends).
  std::map<int, int> kinds;
  for (int o : overlap)
    if (o > 0) kinds[o] += 1;
  const std::vector<std::pair<int, int>> classes(kinds.begin(), kinds.end());
  int m = 0;
  for (const auto& [o, n] : classes) m += n;
  const double candidates = static_cast<double>(chosen) * group_size;
  const double all = log_choose(groups, chosen);
  double miss = 0;
  // Choose j_c groups of each class: C(n_c, j_c) ways, x = sum j_c o_c of the bin's
  // experts among the candidates, the other chosen - j among the groups that hold none.
  std::vector<int> pick(classes.size(), 0);
  for (;;) {
    int j = 0, x = 0;
    double log_ways = 0;
    for (size_t c = 0; c < classes.size(); ++c) {
      j += pick[c];
      x += pick[c] * classes[c].first;
      log_ways += log_choose(classes[c].second, pick[c]);
    }
    const int rest = groups - m, others = chosen - j;
    if (others >= 0 && others <= rest) {
      // None of the k picks among `candidates` lands on the x bin experts.
      double none = 1;
      for (int i = 0; i < k && none > 0; ++i)
        none *= std::max(0.0, candidates - x - i) / (candidates - i);
      miss += std::exp(log_ways + log_choose(rest, others) - all) * none;
    }
    size_t c = 0;
    while (c < classes.size() && pick[c] == classes[c].second) pick[c++] = 0;
    if (c == classes.size()) break;
    pick[c] += 1;
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
  int groups = 1, chosen = 1, group_size = experts;
  bool by_node = false;
  if (moe.router_groups > 0) {
    groups = moe.router_groups;
    chosen = moe.router_group_topk;
    group_size = experts / groups;
  } else if (moe.node_limit > 0) {
    const int limit = std::max(moe.node_limit, (k + per_node - 1) / per_node);
    if (limit < nodes) {
      groups = nodes;
      chosen = limit;
      group_size = per_node;
      by_node = true;
    }
  }
  auto group_of = [&](int e) {
    return by_node ? node_of_rank[static_cast<size_t>(e / per_rank)] : e / group_size;
  };
  // The chance a token needs a bin, from the experts the bin's ranks hold.
  auto share = [&](const std::vector<int>& ranks) {
    std::map<int, int> hit;
    for (int r : ranks)
      for (int e = r * per_rank; e < (r + 1) * per_rank; ++e) hit[group_of(e)] += 1;
    std::vector<int> overlap;
    for (const auto& [g, n] : hit) overlap.push_back(n);
    return 1.0 - miss_probability(overlap, groups, chosen, group_size, k);
  };
  ExpertRouting out;
  std::vector<std::vector<int>> on_node(static_cast<size_t>(nodes));
  for (int r = 0; r < ep; ++r) {
    out.rank_share.push_back(share({r}));
    on_node[static_cast<size_t>(node_of_rank[static_cast<size_t>(r)])].push_back(r);
  }
  for (const std::vector<int>& ranks : on_node) out.node_share.push_back(share(ranks));
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

bool megatron_alltoall_dispatcher(StackSpec::Preset stack, ParallelismSpec::Alltoall exchange) {
  return (stack == StackSpec::Preset::megatron_core || stack == StackSpec::Preset::nemo) &&
         exchange != ParallelismSpec::Alltoall::hierarchical;
}

MoeHostSync moe_host_sync(const MoeSpec& moe, ParallelismSpec::Alltoall exchange) {
  if (moe.capacity_factor && moe.pad_to_capacity) return MoeHostSync::none;
  if (exchange == ParallelismSpec::Alltoall::hierarchical) return MoeHostSync::exposed;
  return moe.capacity_factor ? MoeHostSync::exposed : MoeHostSync::hidden;
}

FlexExchangeKernels flex_exchange_kernels(ParallelismSpec::EpBackend backend, int nodes) {
  const double multinode = nodes > 1 ? 1.0 : 0.0;
  FlexExchangeKernels k;
  if (backend == ParallelismSpec::EpBackend::hybridep) {
    // HybridEP (deepseek-ai/DeepEP branch hybrid-ep at 94a9f8f6) as Megatron-Core calls it
    // (fused_a2a.py at d98e8a64: HybridEPDispatch/HybridEPCombine, fuse_permute_dispatch
    // False by default, moe_permute_fusion_into_hybridep, transformer_config.py line 904).
    // Every exchange kernel comes with update_expected_value_kernel and a device_sync_kernel
    // before it and a device_sync_kernel after it (csrc/hybrid_ep/backend/
    // hybrid_ep_backend.cuh lines 5718, 5725, 5740 for the dispatch, 5839, 5846, 5861 for
    // the combine: DEVICE_SIDE_SYNC is true by default, config.cuh lines 422 and 431, and
    // the first device_sync_kernel is launched when permute fusion is off), and across
    // nodes an rdma_sync_kernel after it (lines 5745, 5867).
    const ExchangeKernels exchange{2, 1 + multinode, false, false};
    // The forward dispatch passes no handle, so dispatch_with_permute first runs the
    // metadata preprocessing (deep_ep/hybrid_ep_buffer.py lines 358-379): after the routing
    // map's all-gather (its own collective, model/layer_pass.cpp), a cudaMemsetAsync of the
    // scan's state and the scan kernel (hybrid_ep_backend.cuh lines 5634, 5643) and
    // pad_tokens_per_expert (csrc/hybrid_ep/executor/executor.cu line 160, its kernel
    // csrc/hybrid_ep/extension/permute.cu line 60), then the stream synchronisation
    // (executor.cu line 167: the wait moe_host_sync charges). Across nodes
    // dispatch_preprocess copies the tokens and their probabilities into the RDMA buffer
    // (executor.cu lines 188 and 206, cudaMemcpyAsync device to device).
    k.dispatch = exchange;
    k.dispatch.before += 3 + 2 * multinode;
    k.dispatch.staging = k.dispatch.staging_probs = nodes > 1;
    // The forward combine (combine_with_unpermute, no probabilities): the unpermute kernel
    // (executor.cu line 411; moe.unpermute) and the exchange's own.
    k.combine = exchange;
    // The combine's backward is dispatch_with_permute with the cached handle and no
    // probabilities: no preprocessing, the token copy across nodes (forward_dispatch_api
    // false, executor.cu lines 188-208), the permute kernel (line 346; moe.unpermute's
    // backward). The dispatch's backward is combine_with_unpermute with the probability
    // gradients: the same kernels as the forward combine.
    k.combine_bwd = exchange;
    k.combine_bwd.before += multinode;
    k.combine_bwd.staging = nodes > 1;
    k.dispatch_bwd = exchange;
    return k;
  }
  // DeepEP's normal kernels (deepseek-ai/DeepEP main at dd758caf: deep_ep/buffers/legacy.py,
  // csrc/legacy/buffer.hpp) as fused_a2a.py's FusedDispatch/FusedCombine call them. The
  // forward dispatch: _DeepepManager.setup_metadata's torch.topk, which turns the routing
  // map into indices (token_dispatcher.py line 1300; one kernel counted, PyTorch may add a
  // sort), get_dispatch_layout (buffer.hpp line 370, csrc/kernels/legacy/layout.cu line
  // 139), notify_dispatch (buffer.hpp line 1053, csrc/kernels/legacy/internode.cu line 384;
  // intranode.cu line 147 inside one node), then the host spins on the received counts
  // (buffer.hpp lines 1086-1107: the wait moe_host_sync charges) before the dispatch
  // kernel. Every other exchange issues one notification kernel before its own: the
  // combine's cached_notify (buffer.hpp line 1330, internode.cu line 1525;
  // cached_notify_combine, intranode.cu line 685), and the cached dispatch of the combine's
  // backward the same (buffer.hpp line 1020; cached_notify_dispatch, intranode.cu line 203).
  k.dispatch.before = 3;
  k.combine.before = k.combine_bwd.before = k.dispatch_bwd.before = 1;
  // After the dispatch Megatron-Core turns the received top-k indices into a routing map
  // with _DeepepManager._indices_to_multihot (token_dispatcher.py lines 1349-1365; the fused
  // version needs --enable-experimental, line 1425, which no Megatron-Bridge recipe sets),
  // at least one kernel a PyTorch call: two torch.zeros, the mask (indices != -1), the
  // masked indices (nonzero and the gather), torch.arange, mask.sum, repeat_interleave,
  // the index_put of ones, the masked probabilities (nonzero and the gather), their
  // index_put and .bool(): 13. Three of them read a size back to the host: boolean-mask
  // indexing twice (nonzero) and repeat_interleave with tensor repeats and no output_size
  // (PyTorch's documentation: output_size "will avoid stream synchronization").
  k.dispatch.after = 13;
  k.dispatch.waits = 3;
  return k;
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

double expert_time_scale(const MoeSpec& moe) {
  const MoeLoad load = moe_load(moe);
  return load.busiest / load.executed;
}

}  // namespace orrery
