#include "sweep/bound.h"

#include <algorithm>
#include <cstddef>
#include <map>
#include <vector>

#include "calibrate/compute_model.h"
#include "model/layer_pass.h"
#include "model/memory.h"
#include "model/pipeline.h"
#include "model/workload.h"

namespace orrery {
namespace {

// The fastest rate any op of the scenario can reach on one GPU (see sweep.h).
double fastest_rate(const Scenario& s) {
  const GpuSpec& g = s.cluster.gpu;
  double r = 0;
  if (s.cluster.calibration) {
    for (const auto& [d, peak] : g.peak) r = std::max(r, peak.value());
    return r;
  }
  // A GEMM runs at its plateau times the ramp's fraction, at most 1 in the presets; a
  // fraction above 1 would raise the bound's rate with it.
  double ramp = 1.0;
  for (const auto& [t, fraction] : g.gemm_ramp) ramp = std::max(ramp, fraction);
  for (const auto& [d, peak] : g.peak) {
    auto e = g.gemm_efficiency.find(d);
    if (e != g.gemm_efficiency.end()) r = std::max(r, peak.value() * e->second * ramp);
  }
  double peak16 = 0;
  for (Dtype d : {Dtype::fp16, Dtype::bf16}) {
    auto p = g.peak.find(d);
    if (p != g.peak.end()) peak16 = std::max(peak16, p->second.value());
  }
  // FlashAttention's rate at the run's sequence and mask (flash_shape_factor) is above the
  // preset's at long unmasked sequences (1.009 at 16k).
  // cuDNN's curve, where the stack runs it, likewise.
  const double attention = fused_attention_efficiency(s, g).value_or(0.0);
  r = std::max(r, peak16 * attention * std::max(1.0, flash_shape_factor(s)));
  // A GPU without measured fractions is refused by the simulator; the peak still bounds.
  if (r <= 0)
    for (const auto& [d, peak] : g.peak) r = std::max(r, peak.value());
  return r;
}

bool timed_by_rate(const Op& op) {
  return op.kind == OpKind::gemm || op.kind == OpKind::router || op.kind == OpKind::conv ||
         op.kind == OpKind::attention;
}

// A lower bound on one tensor-parallel collective (all-reduce, reduce-scatter or
// all-gather) of S bytes over n = tp GPUs: every GPU receives at least (n-1)/n S, through
// its NVLink port and its NIC at line rate; a group over k = ceil(n / gpus_per_node)
// nodes also brings at least (k-1)/k S into each node, through the NICs of its members
// there.
Seconds tp_collective_bound(const Scenario& s, double bytes) {
  const ParallelismSpec& p = s.parallelism;
  const ClusterSpec& c = s.cluster;
  const double n = p.tp;
  const double nic = c.nodes > 1 ? c.inter_node.nic_bandwidth.value() : 0.0;
  double t = (n - 1) / n * bytes / (c.intra_node.bandwidth.value() + nic);
  const int k = (p.tp + c.gpus_per_node - 1) / c.gpus_per_node;
  if (k > 1 && nic > 0) {
    const double members = std::min(c.gpus_per_node, std::max(1, c.inter_node.nics_per_node));
    t = std::max(t, (k - 1.0) / k * bytes / (members * nic));
  }
  return Seconds(t);
}

// The tensor-parallel collectives of passes of a layer that the next kernel waits for
// (model/layer_pass.h; none with tp_comm_overlap), counted per size in bytes. Expert- and
// context-parallel ones only add and are left out.
using TpWaits = std::map<double, int>;
void add_tp_waits(TpWaits& out, const Scenario& s, const Layer& l, LayerPass pass,
                  const MessageSizes& sizes) {
  for (const PassStep& step : layer_pass(l, pass, s, sizes)) {
    if (step.kind == PassStep::Kind::collective && step.group == CommGroup::tp && !step.overlapped)
      ++out[step.bytes];
  }
}

// Their time, each collective at its lower bound.
Seconds tp_wait_bound(const Scenario& s, const TpWaits& waits) {
  Seconds t;
  for (const auto& [bytes, n] : waits) t += n * tp_collective_bound(s, bytes);
  return t;
}

// The parameters of a part of layer `l` (all of it, or with expert parallelism its
// dense or its expert ops) that a ZeRO-3 gather moves: all of them, except under DeepSpeed's
// per-module fetch, which keeps modules under stage3_param_persistence_threshold whole on
// every rank and gathers nothing of a part with no module above it (the unlisted rest
// travels with the last gathered module; simulator/gradient_passes.cpp, gather_pieces).
double fsdp_gathered_params(const ParallelismSpec& p, const Layer& l, bool split, bool experts,
                            double params) {
  if (p.fsdp_unit != ParallelismSpec::FsdpUnit::module ||
      p.fsdp_impl != ParallelismSpec::FsdpImpl::deepspeed)
    return params;
  double persisted = 0;
  bool gathered = false;
  for (const Op& op : l.ops) {
    if (split && op.expert != experts) continue;
    if (op.params <= 0) continue;
    if (p.fsdp_keeps_whole(op.params))
      persisted += op.params;
    else
      gathered = true;
  }
  return gathered ? params - persisted : 0.0;
}

}  // namespace

// A lower bound on the step time from the compute alone (sweep.h): per pipeline rank k,
// forward and backward (with recomputation) time per micro-batch Tf_k, Tb_k at rate R,
// counting only ops timed by a rate (GEMMs, attention); memory-bound ops count 0. A rank
// runs its m micro-batches one after another: step >= m (Tf_k + Tb_k). With GPipe and
// 1F1B its first forward also waits for the forwards of ranks 0..k-1 and the last
// backward of rank 0 for the backwards of ranks k..1:
//   step >= sum_{i<k} Tf_i + m (Tf_k + Tb_k) + sum_{i<k} Tb_i.
// DualPipe: rank r runs stage r for half the micro-batches and stage p-1-r for the other.
Seconds step_time_bound(const Scenario& s) {
  const FlopRate rate(fastest_rate(s));
  const ParallelismSpec& p = s.parallelism;
  const Recompute rc = s.training.recompute;
  const Workload w = build_workload(s.model, s.training, shard_of(p));
  const auto pp = static_cast<std::size_t>(p.pp);
  const MessageSizes sizes = message_sizes(s);
  // ZeRO-3 shard group; hybrid sharding: the smaller of the two node-local counts.
  int d3 = 1;
  if (p.zero_stage >= 3) {
    const int gpn = s.cluster.gpus_per_node;
    d3 = p.sharding == ParallelismSpec::Sharding::hybrid
             ? std::min(p.zero3_group(gpn), p.node_dp(gpn))
             : p.shard_group();
  }
  // ZeRO-2: every micro-batch's dense gradients reduce-scattered over dp*cp ranks
  // (simulator/gradient_passes.cpp), in the scenario's gradient bytes unless compressed.
  const int d2 = p.zero_stage == 2 && s.training.compression.scheme == CompressionSpec::Scheme::none
                     ? p.shard_group()
                     : 1;
  const StateBytes state = state_bytes_per_param(s.training);
  std::vector<Bytes> shard_bytes(pp);
  std::vector<Seconds> tf(pp), tb(pp);
  // The FLOP part of each rank's tf + tb over a micro-batch: the compute a slow node slows.
  std::vector<Seconds> flop_time(pp);
  // (rank, chunk) of each transformer layer (model/pipeline.h).
  std::vector<std::pair<int, int>> place;
  int mtp_stage = -1;  // a multi-token-prediction stage of its own
  if (s.model.is_transformer()) {
    const PipelineLayout layout = pipeline_layout(s.model, p);
    place = layout.place_of_layers();
    mtp_stage = layout.mtp_stage;
  }
  std::size_t block = 0;
  // Interleaved: transformer FLOP time of virtual stage c < p (the first chunk of rank c).
  std::vector<Seconds> first_chunk(pp);
  for (const Layer& l : w.layers) {
    std::size_t chunk = pp;  // not a transformer layer
    std::size_t k = 0;
    if (l.kind == LayerKind::head) {
      k = pp - 1;
    } else if (l.kind == LayerKind::mtp && mtp_stage >= 0) {
      k = static_cast<std::size_t>(mtp_stage) % pp;
      chunk = static_cast<std::size_t>(mtp_stage);
    } else if (l.kind == LayerKind::transformer) {
      const auto [rank, c] = place.at(block++);
      k = static_cast<std::size_t>(rank);
      chunk = static_cast<std::size_t>(c) * pp + k;
    }
    for (const Op& op : l.ops) {
      if (!timed_by_rate(op)) continue;
      // A fused kernel computes computed_share of its FLOPs (the tiles its mask leaves);
      // FlashAttention's backward is timed as 2.5x its forward (calibrate/compute_model.h).
      const Flop fwd = op.fwd_flops * op.computed_share;
      const Flop bwd = is_op(op.name, "attn.core")
                           ? std::min(op.bwd_flops * op.computed_share, 2.5 * fwd)
                           : op.bwd_flops;
      const bool again = l.kind == LayerKind::transformer &&
                         (rc == Recompute::full || (rc == Recompute::selective &&
                                                    recomputed(op, s.training.recompute_modules)));
      tf[k] += fwd / rate;
      tb[k] += (bwd + (again ? fwd : Flop())) / rate;
      const Seconds both = (fwd + bwd + (again ? fwd : Flop())) / rate;
      flop_time[k] += both;
      if (chunk < pp) first_chunk[chunk] += both;
    }
    // ZeRO-3 / FSDP: per micro-batch, the layer's parameters gathered before its forward
    // (and again before its backward when resharded) and its gradients reduce-scattered
    // after the backward (simulator/gradient_passes.cpp, fsdp_pass), each bringing (n-1)/n
    // of its bytes into every member of a group of n: the shard group for the dense
    // parameters (and the experts without expert parallelism), the experts' own group with
    // it, and under hpZ the node's data-parallel ranks for a backward gather.
    // Megatron-FSDP's embedding and head, no units with its default ones, are gathered
    // once a step, FSDP1's root (the embedding and the head) once a micro-batch
    // (simulator/pipeline_pass.cpp, fsdp_block).
    if (d3 >= 2) {
      const bool edge = l.kind == LayerKind::embedding || l.kind == LayerKind::head;
      const bool once = p.fsdp_impl == ParallelismSpec::FsdpImpl::megatron_fsdp &&
                        p.fsdp_unit == ParallelismSpec::FsdpUnit::layer &&
                        l.kind != LayerKind::transformer;
      // torchtitan's FSDP2 under a pipeline (fsdp_pipeline_deferred): at least one
      // gather a step (with reshard_after_forward, one before each backward) and one
      // reduce-scatter a step.
      const bool deferred = fsdp_pipeline_deferred(p, s.training);
      const double per_step = 1.0 / p.microbatches();
      // The output layer's unit (with tied embeddings the embedding's) follows
      // reshard_output_after_forward (simulator/pipeline_pass.cpp, fsdp_block).
      const bool reshards = p.reshards_after_forward(in_output_unit(l, s.model.tied_embeddings));
      // Gathers a micro-batch before the forward and before the backward.
      double forward_gathers = 1.0;
      double backward_gathers = 0.0;
      if (once) {
        forward_gathers = per_step;
      } else if (deferred) {
        forward_gathers = reshards ? 0.0 : per_step;
        backward_gathers = reshards ? 1.0 : 0.0;
      } else if (!(p.fsdp1_root_unit() && edge) && reshards) {
        backward_gathers = 1.0;
      }
      const double reduces = deferred ? per_step : 1.0;
      // Gathered in fp8 (training.fp8 communication param_allgather: fp8), each gather
      // carries the layer's share of fp8 GEMM weights at 1 byte an element
      // (simulator/gradient_passes.cpp, gather; simulator/pipeline_pass.cpp,
      // dense_gather_bytes_per_param).
      const double fp8_share = s.training.fp8 && s.training.fp8->param_allgather_fp8 &&
                                       l.params() > 0
                                   ? l.fp8_weight_elems() / l.params()
                                   : 0.0;
      const double gathered_bytes = state.weight * (1.0 - fp8_share) + 1.0 * fp8_share;
      auto arriving = [](double n) { return n >= 2 ? (n - 1.0) / n : 0.0; };
      const bool split = p.ep > 1;
      for (const bool experts : {false, true}) {
        if (experts && !split) break;
        const double n = experts ? p.expert_shard_group() : d3;
        // hpZ (refused with hybrid sharding and with ep > 1): a backward gather reads the
        // node's secondary copy, sharded over its node_dp x cp ranks.
        const double n_backward =
            p.zero_hpz ? p.node_dp(s.cluster.gpus_per_node) * p.cp : n;
        const double params = !split   ? l.params()
                              : experts ? l.expert_params()
                                        : l.params() - l.expert_params();
        const double gathered = fsdp_gathered_params(p, l, split, experts, params);
        shard_bytes[k] += Bytes(arriving(n) * (forward_gathers * gathered * gathered_bytes +
                                               reduces * params * state.gradient) +
                                arriving(n_backward) * backward_gathers * gathered *
                                    gathered_bytes);
      }
    }
    // ZeRO-2: each micro-batch reduce-scatters the layer's dense gradients, bringing
    // (d-1)/d of their bytes into every member (expert gradients, over a smaller group,
    // are left out).
    if (d2 >= 2)
      shard_bytes[k] += Bytes((d2 - 1.0) / d2 * (l.params() - l.expert_params()) * state.gradient);
    // The tensor-parallel collectives the simulator issues (full recompute repeats the
    // forward's before the backward).
    TpWaits forward, backward;
    add_tp_waits(forward, s, l, LayerPass::forward, sizes);
    if (rc == Recompute::full && l.kind == LayerKind::transformer)
      add_tp_waits(backward, s, l, LayerPass::recompute, sizes);
    add_tp_waits(backward, s, l, LayerPass::backward, sizes);
    tf[k] += tp_wait_bound(s, forward);
    tb[k] += tp_wait_bound(s, backward);
  }
  const double m = p.microbatches();
  // Slow nodes (cluster.slow_nodes): the simulator reports (1 - q) T + q T_slow, T_slow the
  // step with the busiest stage's GPU computing at `speed`. Every term above bounds T_slow
  // too (slower compute shortens none of them), and T_slow is at least that stage's busy time
  // (compute, recompute, optimizer) over `speed`; the busiest stage's busy time is the
  // largest, and each rank's is at least its FLOP time at R: so T_slow >= max_k m FLOP_k / speed.
  const double q = slow_node_probability(s.cluster);
  Seconds slowest;  // max over ranks of m x FLOP time / speed; DualPipe: its two stages, m / 2 each
  auto with_slow_nodes = [&](Seconds b) {
    return q > 0 ? (1 - q) * b + q * std::max(b, slowest) : b;
  };
  Seconds bound;
  if (p.schedule == PipelineSchedule::dualpipe) {
    for (std::size_t r = 0; r < pp; ++r) {
      bound = std::max(bound, m / 2 * (tf[r] + tb[r] + tf[pp - 1 - r] + tb[pp - 1 - r]));
      slowest = std::max(slowest, m / 2 * (flop_time[r] + flop_time[pp - 1 - r]) /
                                      s.cluster.slow_nodes.speed);
    }
    return with_slow_nodes(bound);
  }
  // The chain before rank k: its first model chunk's forward waits for the first chunk of
  // ranks 0..k-1, and rank 0's last backward for the first chunk of ranks k..1. One chunk
  // per rank without interleaving; with v chunks, the transformer layers of chunk i < p
  // (on rank i) alone, a lower bound for it.
  std::vector<Seconds> chain(pp);
  if (p.schedule == PipelineSchedule::gpipe || p.schedule == PipelineSchedule::one_f_one_b) {
    for (std::size_t k = 0; k < pp; ++k) chain[k] = tf[k] + tb[k];
  } else if (p.schedule == PipelineSchedule::interleaved_1f1b) {
    chain = first_chunk;
  }
  Seconds before;  // sum_{i<k} chain_i
  const Bandwidth nic = s.cluster.nodes > 1 ? s.cluster.inter_node.nic_bandwidth : Bandwidth();
  const Bandwidth ingress = s.cluster.intra_node.bandwidth + nic;
  for (std::size_t k = 0; k < pp; ++k) {
    bound = std::max(bound, before + m * (tf[k] + tb[k]));
    // The ZeRO-3 (and ZeRO-2) traffic overlaps compute but cannot pass a GPU's links
    // faster.
    bound = std::max(bound, m * shard_bytes[k] / ingress);
    before += chain[k];
    slowest = std::max(slowest, m * flop_time[k] / s.cluster.slow_nodes.speed);
  }
  return with_slow_nodes(bound);
}

}  // namespace orrery
