#include "model/layer_pass.h"

#include "model/moe_routing.h"

namespace orrery {
namespace {

// The collective a comm point turns into for a pass, appended to `out`; nothing when it
// is a no-op there. `fp8_input`: the op is a GEMM whose input the fp8 recipe all-gathers
// in fp8 (training.fp8.communication.tp_allgather), 1 byte an element.
void add_comm(std::vector<PassStep>& out, const Scenario& s, const MessageSizes& sizes,
              CommPoint cp, bool forward, bool overlap, bool fp8_input) {
  const ParallelismSpec& p = s.parallelism;
  const bool sp = p.sequence_parallel;
  PassStep step;
  step.kind = PassStep::Kind::collective;
  switch (cp) {
    case CommPoint::none:
    case CommPoint::cp_kv:  // add_cp, which knows the op's K/V size
      return;
    case CommPoint::tp_gather:  // column-parallel input: AG (SP) fwd; RS or AR of grads bwd
      if (p.tp == 1 || (forward && !sp)) return;
      step.collective = forward ? CollectiveOp::all_gather
                                : (sp ? CollectiveOp::reduce_scatter : CollectiveOp::all_reduce);
      step.group = CommGroup::tp;
      step.bytes = sizes.tp;
      // The all-gather of an fp8 GEMM's input moves its fp8 cast (TE's fp8 all-gather
      // with sequence parallelism); the gradient's reduction stays 16-bit.
      if (forward && fp8_input) step.bytes = sizes.tp / sizes.activation;
      break;
    case CommPoint::tp_reduce:  // row-parallel output: RS (SP) or AR fwd; AG (SP) bwd
      if (p.tp == 1 || (!forward && !sp)) return;
      step.collective = forward ? (sp ? CollectiveOp::reduce_scatter : CollectiveOp::all_reduce)
                                : CollectiveOp::all_gather;
      step.group = CommGroup::tp;
      step.bytes = sizes.tp;
      break;
    case CommPoint::ep_dispatch:
    case CommPoint::ep_combine:
      if (p.ep == 1) return;
      if (cp == CommPoint::ep_dispatch && forward && sizes.ep_routing_map > 0) {
        // HybridEP's metadata preprocessing: an NCCL all-gather of the routing map on the
        // current stream, which the dispatch kernel waits for (see message_sizes).
        PassStep gather;
        gather.kind = PassStep::Kind::collective;
        gather.collective = CollectiveOp::all_gather;
        gather.group = CommGroup::ep;
        gather.bytes = sizes.ep_routing_map;
        out.push_back(gather);
      }
      step.collective = CollectiveOp::all_to_all;
      step.group = CommGroup::ep;
      step.dispatch_point = cp == CommPoint::ep_dispatch;
      step.forward = forward;
      // Towards the experts: the forward dispatch and the combine's backward.
      step.bytes = (cp == CommPoint::ep_dispatch) == forward ? sizes.ep : sizes.ep_back;
      break;
  }
  step.overlapped = overlap || (s.training.tp_comm_overlap && step.group == CommGroup::tp);
  out.push_back(step);
}

// Context parallelism: keys and values of the other cp ranks. Ring attention passes them
// in cp - 1 steps while attention computes (an all-gather's traffic, overlapped); the
// all-gather variant waits for them. Backward passes them again and returns their
// gradients (a reduce-scatter).
void add_cp(std::vector<PassStep>& out, const Scenario& s, const MessageSizes& sizes, const Op& op,
            CollectiveOp collective) {
  const ParallelismSpec& p = s.parallelism;
  if (p.cp == 1 || op.kv_elems <= 0) return;
  PassStep step;
  step.kind = PassStep::Kind::collective;
  step.overlapped = p.cp_comm == ParallelismSpec::CpComm::ring;
  step.collective = collective;
  step.group = CommGroup::cp;
  step.bytes = op.kv_elems * sizes.activation * p.cp;  // the gathered K and V
  out.push_back(step);
}

PassStep kernels(const Op& op, bool selective = false, std::uint8_t half = 0) {
  PassStep step;
  step.op = &op;
  step.selective = selective;
  step.half = half;
  return step;
}

}  // namespace

MessageSizes message_sizes(const Scenario& s) {
  const ParallelismSpec& p = s.parallelism;
  MessageSizes out;
  out.activation = activation_bytes(s.training.precision);
  const double tokens = static_cast<double>(p.microbatch) * s.model.seq_len / p.cp;
  const double h = static_cast<double>(s.model.hidden);
  out.tp = tokens * h * out.activation;
  out.pp = tokens * h * out.activation;
  // Both engines send 1/tp of the activation per GPU: Megatron-LM scatters and gathers it;
  // DeepSpeed's PipelineEngine partitions the activation and its gradient over the
  // model-parallel (tensor-parallel) group whenever tp > 1 (PartitionedTensor; engine.py
  // is_pipe_partitioned / is_grad_partitioned, _exec_forward_pass, _exec_send_grads,
  // microsoft/DeepSpeed 56c522386878; its slice group is the model axis of
  // PipeModelDataParallelTopology, which Megatron-DeepSpeed builds with num_mp = tp,
  // bigscience-workshop/Megatron-DeepSpeed megatron/model/gpt_model.py at 8387ae17).
  out.pp /= p.tp;
  if (s.model.moe) {
    const MoeSpec& moe = *s.model.moe;
    const MoeSpec::Wire act = out.activation > 2 ? MoeSpec::Wire::fp32 : MoeSpec::Wire::bf16;
    // With expert_tp 1 under tp > 1 each rank dispatches its sequence-parallel share.
    const double routed = p.experts_split_tokens() ? tokens / p.tp : tokens;
    out.routed_tokens = routed;
    const double rows = routed * moe.top_k * moe_load(moe).busiest;
    out.ep = rows * wire_bytes(moe.dispatch_dtype.value_or(act), h);
    out.ep_back = rows * wire_bytes(moe.combine_dtype.value_or(act), h);
    // Megatron-Core's HybridEP forward dispatch passes no handle (HybridEPDispatch.forward
    // in megatron/core/transformer/moe/fused_a2a.py at NVIDIA/Megatron-LM d98e8a64 calls
    // dispatch_with_permute without one; only the combine and the backward reuse it), so
    // HybridEPBuffer.dispatch_with_permute runs metadata_preprocessing every forward
    // dispatch (deep_ep/hybrid_ep_buffer.py at deepseek-ai/DeepEP 94a9f8f6, branch
    // hybrid-ep), whose first step is torch.distributed.all_gather_into_tensor of the
    // rank's bool routing map, tokens x experts, over the EP group (Executor::
    // allgather_routing_map, csrc/hybrid_ep/executor/executor.cu at 94a9f8f6: NCCL
    // whenever the group spans nodes or the custom all-gather is off, its default). The
    // README's "Kernel Only" and "Torch API" figures both pass a cached handle
    // (tests/test_hybrid_ep.py at 94a9f8f6), so neither holds it.
    if (p.ep > 1 && p.ep_alltoall == ParallelismSpec::Alltoall::hierarchical &&
        p.ep_backend == ParallelismSpec::EpBackend::hybridep) {
      out.ep_routing_map = static_cast<double>(p.ep) * routed * moe.experts;
    }
  }
  return out;
}

std::vector<PassStep> layer_pass(const Layer& layer, LayerPass pass, const Scenario& s,
                                 const MessageSizes& sizes) {
  const ParallelismSpec& p = s.parallelism;
  // A recipe exists only under precision fp8 (TrainingSpec::fp8).
  const bool fp8_gathers = s.training.fp8 && s.training.fp8->tp_allgather_fp8;
  auto fp8_input = [&](const Op& op) {
    return fp8_gathers && !op.high_precision &&
           (op.kind == OpKind::gemm || op.kind == OpKind::router);
  };
  // Transformer Engine's userbuffer overlap (tp_comm_overlap under sequence parallelism).
  const bool ub = s.training.tp_comm_overlap && p.sequence_parallel && p.tp > 1;
  std::vector<PassStep> out;
  if (pass != LayerPass::backward) {
    // A dispatch after an op (not before the experts) is --moe-shared-expert-overlap's:
    // the shared experts after it run while it is in flight, the routed experts wait.
    bool dispatching = false;
    for (const Op& op : layer.ops) {
      if (op.comm_before == CommPoint::cp_kv) add_cp(out, s, sizes, op, CollectiveOp::all_gather);
      add_comm(out, s, sizes, op.comm_before, true, false, fp8_input(op));
      out.push_back(kernels(op));
      if (dispatching && op.expert) {
        out.back().separate = true;
        dispatching = false;
      }
      const bool overlapped = op.comm_after == CommPoint::ep_dispatch && p.ep > 1;
      add_comm(out, s, sizes, op.comm_after, true, overlapped, false);
      dispatching = dispatching || overlapped;
    }
    return out;
  }
  const unsigned modules =
      s.training.recompute == Recompute::selective ? s.training.recompute_modules : 0u;
  // Shared-expert overlap backward: the gradients go back (the dispatch's backward) as
  // soon as the routed experts' backward is done, while the shared experts' backward runs;
  // the permutation's backward waits for them.
  bool overlap = false;
  const Op* first_expert = nullptr;  // the routed experts' first op
  for (const Op& op : layer.ops) {
    overlap = overlap || op.comm_after == CommPoint::ep_dispatch;
    if (op.expert && !first_expert) first_expert = &op;
  }
  overlap = overlap && p.ep > 1;
  bool returning = false;
  for (auto it = layer.ops.rbegin(); it != layer.ops.rend(); ++it) {
    const Op& op = *it;
    const bool again = recomputed(op, modules);
    if (again) {
      // A recomputed module's forward exchanges run again with it (a checkpointed dense
      // MLP's tensor-parallel gather and reduction, an MoE layer's dispatch and combine).
      add_comm(out, s, sizes, op.comm_before, true, false, fp8_input(op));
      add_comm(out, s, sizes, op.comm_after, true, false, false);
    }
    if (overlap && op.comm_after == CommPoint::ep_dispatch) {
      // Issued already, after the routed experts.
    } else {
      add_comm(out, s, sizes, op.comm_after, false, false, false);
    }
    if (op.comm_before == CommPoint::cp_kv) {
      add_cp(out, s, sizes, op, CollectiveOp::all_gather);
      // Ring attention returns the key and value gradients along the same ring, during
      // the backward's steps: Transformer Engine's AttnFuncWithCPAndKVP2P.backward sends
      // each step's accumulated dK and dV with the next step's keys and values and waits
      // for them only after that step's kernel (the last step sends dK and dV alone;
      // transformer_engine/pytorch/attention/dot_product_attention/context_parallel.py at
      // NVIDIA/TransformerEngine d0067d0d). So their reduce-scatter runs under the
      // attention backward, not after it; the all-gather variant reduces after it.
      if (p.cp_comm == ParallelismSpec::CpComm::ring) {
        add_cp(out, s, sizes, op, CollectiveOp::reduce_scatter);
      }
    }
    // The input gradient's reduction issued under the weight-gradient GEMM rather than
    // after it: Transformer Engine's userbuffer "bulk" overlap, and without userbuffers
    // the asynchronous reduce-scatter or all-reduce of Transformer Engine's and
    // Megatron-LM's column-parallel backward (training.stack.tp_dgrad_overlap).
    // Not under ZB-H1, whose B blocks defer the weight-gradient GEMMs the reduction would
    // run under (simulator/pipeline_pass.cpp): there it follows both GEMMs in the template.
    const bool column = op.kind == OpKind::gemm && op.comm_before == CommPoint::tp_gather &&
                        p.tp > 1 && !op.dgrad_reduced_by_gather;
    const bool bulk = column && (ub || s.training.stack.tp_dgrad_overlap) &&
                      p.schedule != PipelineSchedule::zero_bubble_h1;
    // The weight gradient's input re-gathered (sequence parallelism), overlapped with the
    // data-gradient GEMM.
    const bool regather = op.comm_before == CommPoint::tp_gather && p.sequence_parallel && p.tp > 1;
    if (regather) add_comm(out, s, sizes, CommPoint::tp_gather, true, true, fp8_input(op));
    if (regather || bulk) {
      // The data-gradient GEMM, then (bulk) its reduction issued, the weight-gradient GEMM.
      out.push_back(kernels(op, again, 1));
      if (bulk) add_comm(out, s, sizes, op.comm_before, false, true, false);
      out.push_back(kernels(op, false, 2));
    } else {
      out.push_back(kernels(op, again));
    }
    if (returning && op.comm_after == CommPoint::ep_dispatch) {
      out.back().separate = true;
      returning = false;
    }
    if (overlap && &op == first_expert) {
      add_comm(out, s, sizes, CommPoint::ep_dispatch, false, true, false);
      returning = true;
    }
    if (!bulk) add_comm(out, s, sizes, op.comm_before, false, false, false);
    if (op.comm_before == CommPoint::cp_kv && p.cp_comm != ParallelismSpec::CpComm::ring) {
      add_cp(out, s, sizes, op, CollectiveOp::reduce_scatter);
    }
  }
  return out;
}

}  // namespace orrery
