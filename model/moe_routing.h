// Where an MoE layer's tokens go: the chance that one token needs a given
// expert-parallel rank or node, with uniform routing (every allowed expert equally
// likely, top_k of them without replacement) under the group or node limit. These set the
// bytes of the deduplicated exchange (one copy per destination node over the NICs, one
// per destination GPU over NVLink; simulator/collectives.h, plan_expert_exchange) and the
// expected distinct nodes per token (docs/model.md, "MoE routing and exchange").
#pragma once

#include <vector>

#include "scenario/spec.h"

namespace orrery {

struct ExpertRouting {
  std::vector<double> rank_share;  // per ep rank: P(a token has an expert there)
  std::vector<double> node_share;  // per node of the group: P(a token has an expert there)
  double distinct_ranks() const;   // expected destination ranks per token
  double distinct_nodes() const;   // expected destination nodes per token
};

// Rank r of the ep group holds experts [r E/ep, (r+1) E/ep) (Megatron-Core's contiguous
// placement) and sits on node node_of_rank[r] (0 .. N-1, every node holding the same
// number of ranks).
ExpertRouting expert_routing(const MoeSpec& moe, const std::vector<int>& node_of_rank);

// The chance that a token picks none of the experts of one bin (a rank's or a node's):
// the experts lie in `groups` groups of `group_size`, `overlap` the counts of the bin's
// experts in the groups that hold some, the token chooses `chosen` groups uniformly and
// then k experts uniformly among those groups' experts, without replacement.
double miss_probability(const std::vector<int>& overlap, int groups, int chosen, int group_size,
                        int k);

// Tokens an MoE layer executes and exchanges, as multiples of the mean T k (T tokens per
// rank, top_k copies). The load of the experts spreads evenly from (2 - L) to L times the
// mean, L = load_imbalance (the busiest rank's share; an assumption: only the maximum is
// given); a capacity factor cf caps every expert at cf times the mean and drops the tokens
// over it (Megatron-Core apply_router_token_dropping), pad_to_capacity fills every expert
// up to it.
struct MoeLoad {
  double dropped = 0;   // mean share of the T k assignments dropped over the capacity
  double executed = 1;  // rows the mean rank's expert GEMMs run (padding included)
  double busiest = 1;   // rows the busiest rank receives and computes
};
MoeLoad moe_load(const MoeSpec& moe);
// How much longer the busiest rank's expert ops take than the workload's (which hold the
// mean rank's executed rows): busiest / executed.
double expert_time_scale(const MoeSpec& moe);

// Where the host waits for the GPU in an MoE layer's forward (Megatron-Core token
// dispatchers, megatron/core/transformer/moe/token_dispatcher.py at NVIDIA/Megatron-LM
// d98e8a64). The expert batch sizes are needed on the host (the exchange's split sizes,
// the size of the buffers, Transformer Engine GroupedLinear's m_splits list) unless a
// capacity factor pads every expert to its capacity, which the host computes itself
// (drop_and_pad: MoEAlltoAllTokenDispatcher.preprocess fills the counts with
// torch.full, _HybridEPManager.setup_metadata the permuted size): then no wait.
//  none:    pad_to_capacity with a capacity factor.
//  hidden:  the all-to-all dispatcher (ep_alltoall direct or auto): the counts are copied
//           to the host on a side stream right after routing (cuda_dtoh_point
//           "before_permutation_1") and the host waits only at cuda_sync_point
//           "before_ep_alltoall" (ep > 1) or "before_finish", after it has issued the
//           permutation, which runs meanwhile; with a capacity factor and no padding the
//           wait is "before_permutation_1", before anything is issued (exposed).
//  exposed: the flex dispatcher (ep_alltoall hierarchical: DeepEP, HybridEP) dropless:
//           the received counts come back from the dispatch's own kernels and the host
//           allocates the permuted buffer from them (_HybridEPManager.dispatch,
//           num_permuted_tokens None: "CPU sync in dispatch"), with nothing else queued:
//           HybridEP's cudaStreamSynchronize after its metadata kernels
//           (csrc/hybrid_ep/executor/executor.cu line 167 at deepseek-ai/DeepEP 94a9f8f6,
//           non_blocking False as fused_a2a.py passes it then), DeepEP's spin on the
//           counts notify_dispatch writes to mapped host memory (csrc/legacy/buffer.hpp
//           lines 1086-1107 at dd758caf).
enum class MoeHostSync { none, hidden, exposed };
MoeHostSync moe_host_sync(const MoeSpec& moe, ParallelismSpec::Alltoall exchange);

// The kernels the flex dispatcher's library issues around one exchange (ep_alltoall
// hierarchical), beyond the exchange kernel itself (timed as the collective) and the
// permutation and unpermutation (moe.permute, moe.unpermute): what the host issues in the
// run before the exchange and in the run after it (docs/model.md, "The flex dispatcher's
// own kernels"; sources beside each count in moe_routing.cpp). `staging` is a copy of the
// exchanged tokens (and, with `staging_probs`, of the fp32 routing probabilities) into the
// library's registered buffer, one of the `before` kernels.
// `waits`: host synchronisations after the exchange, among the `after` kernels (each the
// GPU idle for a count's copy to the host and the host's next issue, as moe_host_sync).
struct ExchangeKernels {
  double before = 0, after = 0;
  bool staging = false, staging_probs = false;
  int waits = 0;
};
// The four exchanges of an MoE layer as Megatron-Core's MoEFlexTokenDispatcher runs them
// (megatron/core/transformer/moe/fused_a2a.py and token_dispatcher.py at NVIDIA/Megatron-LM
// d98e8a64): the forward dispatch and combine, and in the backward the combine's backward
// (a dispatch of the gradients, towards the experts) and the dispatch's backward (a
// combine). `nodes`: the nodes the expert-parallel group spans (HybridEP's num_of_nodes,
// DeepEP's RDMA ranks): more than one adds HybridEP's staging copies and RDMA flag kernel.
struct FlexExchangeKernels {
  ExchangeKernels dispatch, combine;          // forward
  ExchangeKernels combine_bwd, dispatch_bwd;  // backward
  // The exchange at the dispatch's place (ep_dispatch) or the combine's, in the forward
  // or as its backward.
  const ExchangeKernels& of(bool dispatch_point, bool forward) const {
    return forward ? (dispatch_point ? dispatch : combine)
                   : (dispatch_point ? dispatch_bwd : combine_bwd);
  }
};
FlexExchangeKernels flex_exchange_kernels(ParallelismSpec::EpBackend backend, int nodes);

// Whether Megatron-Core's all-to-all token dispatcher runs the exchange (stack presets
// megatron-core and nemo, ep_alltoall not hierarchical): with more than one local expert
// it sorts the received rows by expert and restores rank order before the combine
// (model/transformer.cpp, add_moe).
bool megatron_alltoall_dispatcher(StackSpec::Preset stack, ParallelismSpec::Alltoall exchange);

// Bytes of one token's hidden state on the wire in `w` (fp8: one byte an element and a
// 4-byte scale per 1x128 tile, DeepSeek-V3 report 3.3.2 and DeepEP's fp8 dispatch).
double wire_bytes(MoeSpec::Wire w, double hidden);

}  // namespace orrery
