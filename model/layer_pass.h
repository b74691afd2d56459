// Which collectives a layer needs, attached once: one pass (forward, backward or the
// recomputed forward) of a layer as the training stack issues it, in order: runs of the
// ops' kernels and the collectives between them (kind, group, bytes per GPU, whether the
// next kernel waits for it). The simulator times the kernels and places the collectives
// (simulator/layer_templates.cpp); the sweep's lower bound reads the same collectives
// (sweep/bound.cpp), so the two cannot drift apart.
#pragma once

#include <cstdint>
#include <vector>

#include "core/collective.h"
#include "model/workload.h"
#include "scenario/spec.h"

namespace orrery {

enum class LayerPass : std::uint8_t { forward, backward, recompute };

// The groups a layer's collectives run over (Megatron-Core's process groups).
enum class CommGroup : std::uint8_t { tp, ep, cp };

// Bytes of the messages one micro-batch sends, per GPU.
struct MessageSizes {
  double activation = 2;  // bytes per activation element (the training precision's)
  double tp = 0;          // the full activation a tensor-parallel collective moves: b s/cp h
  double pp = 0;          // a pipeline send (1/tp of it with Megatron's scatter/gather)
  // A MoE all-to-all on the busiest rank, as the naive exchange sends it (top_k copies of
  // every token, model/moe_routing.h MoeLoad::busiest): towards the experts (forward
  // dispatch, backward of the combine) in dispatch_dtype, back (forward combine, backward
  // of the dispatch) in combine_dtype.
  double ep = 0, ep_back = 0;
  // The tokens each rank dispatches to the experts, before top_k copies: the micro-batch's
  // tokens on the rank (b s/cp), its sequence-parallel share when expert_tp 1 under tp > 1.
  double routed_tokens = 0;
  // HybridEP's routing-map all-gather before each dispatch that has no cached handle
  // (Megatron-Core's forward dispatch): the gathered map, ep x tokens x experts bools.
  // Zero unless the exchange is HybridEP's (ep_alltoall hierarchical, ep_backend hybridep).
  double ep_routing_map = 0;
};
MessageSizes message_sizes(const Scenario& s);

// One entry of a pass.
struct PassStep {
  enum class Kind : std::uint8_t { kernels, collective } kind = Kind::kernels;
  // kernels: `op`'s forward (forward and recompute passes) or backward kernels.
  // Backward: with `selective`, its recomputed forward is added (selective recompute);
  // `half` 1 or 2: the data- or weight-gradient GEMM of a backward split in two around a
  // sequence-parallel re-gather or an input-gradient reduction issued between them, each
  // half its own run; 0: the whole backward.
  const Op* op = nullptr;
  bool selective = false;
  std::uint8_t half = 0;
  // A run of its own that waits for the overlapped collective before the previous run
  // (the routed experts after the shared ones that ran during the dispatch).
  bool separate = false;
  // collective:
  CollectiveOp collective = CollectiveOp::all_reduce;
  CommGroup group = CommGroup::tp;
  double bytes = 0;
  bool overlapped = false;  // the next kernel run does not wait for it (a later one does)
  // An expert exchange (all_to_all over ep): at the dispatch's place (else the combine's),
  // and whether it is that exchange's forward (a recomputed one included) or its backward.
  bool dispatch_point = false;
  bool forward = true;
};

// The steps of `pass` over `layer`'s ops (reversed for the backward). Tensor-parallel
// collectives follow Megatron-LM's regions (Shoeybi et al. 2019; with sequence
// parallelism Korthikanti et al. 2022): a column-parallel GEMM's input is all-gathered
// forward (SP only) and its gradient reduce-scattered (SP) or all-reduced backward; a
// row-parallel GEMM's output is reduce-scattered (SP) or all-reduced forward and
// all-gathered backward (SP only); under SP the backward re-gathers the input for the
// weight gradient, overlapped with the data-gradient GEMM (section 4.2.2). MoE tokens
// cross ep ranks in an all-to-all each way. Context parallelism gathers the other cp
// ranks' keys and values (overlapped under ring attention) and reduce-scatters their
// gradients (under ring attention during the attention backward, as the ring returns them
// step by step; with the all-gather variant after it). With training.tp_comm_overlap every tensor-parallel collective overlaps
// the kernels after it; under sequence parallelism a column-parallel GEMM's backward
// reduce-scatter of its input gradient runs under its weight-gradient GEMM, as
// Transformer Engine's userbuffers do by default ("bulk" for qkv_wgrad and fc1_wgrad,
// initialize_ub in transformer_engine/pytorch/module/base.py, NVIDIA/TransformerEngine
// d0067d0d). Its "pipeline" forward reduce-scatter (proj_fprop, fc2_fprop: the GEMM in 4
// chunks, each chunk's reduce-scatter under the next) is not modelled: the reduce-scatter
// overlaps the kernels after the GEMM instead, since the rate of userbuffer transfers of
// a quarter message has no measurement here (NCCL's at that size would make it slower
// than the whole). Without userbuffers, training.stack.tp_dgrad_overlap places a
// column-parallel GEMM's input-gradient reduce-scatter (all-reduce without sequence
// parallelism) between its data- and weight-gradient GEMMs, overlapped, as Transformer
// Engine's and Megatron-LM's asynchronous backward issue it; off, after both.
std::vector<PassStep> layer_pass(const Layer& layer, LayerPass pass, const Scenario& s,
                                 const MessageSizes& sizes);

}  // namespace orrery
