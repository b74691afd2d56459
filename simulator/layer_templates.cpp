#include "simulator/layer_templates.h"

#include <algorithm>
#include <optional>
#include <vector>

#include "model/moe_routing.h"

namespace orrery::detail {
namespace {

// One kernel run or one collective of a layer's pass, before it becomes a task.
struct Item {
  bool comm = false;
  bool overlap = false;  // a collective the next compute does not wait for
  Seconds work, selective;
  double kernels = 0;  // kernels the host issues for this run (training.stack.host_overhead)
  Seconds sync;        // the GPU idle at a host synchronisation before this run's kernels
  CollectiveOp op = CollectiveOp::all_reduce;
  GroupKind kind = GroupKind::tp;
  Bytes bytes;
};

GroupKind group_kind(CommGroup g) {
  switch (g) {
    case CommGroup::tp:
      return GroupKind::tp;
    case CommGroup::ep:
      return GroupKind::ep;
    case CommGroup::cp:
      return GroupKind::cp;
  }
  return GroupKind::tp;
}

}  // namespace

// Kernels the host issues for `op`'s forward (or backward) pass: one per op, a GEMM's
// backward two (data and weight gradients), one more for separate auxiliary kernels (FP8
// casts, ring attention's merges). An unfused chain is one op per kernel already
// (model/transformer.cpp); the norm's row-statistics op counts one.
// A grouped GEMM of g experts (Transformer Engine GroupedLinear, which Megatron-Core's
// TEGroupedMLP runs) issues one cuBLASLt GEMM per expert, spread over several streams
// (general_grouped_gemm: transformer_engine/pytorch/module/grouped_linear.py at
// NVIDIA/TransformerEngine d0067d0d; "multi-stream calls to cuBLASLt" in TE issue 1386):
// g GEMMs forward, 2 g backward. Its input (forward) and output gradient (backward) are
// quantized split by split (split_quantize, transformer_engine/pytorch/csrc/extensions/
// cast.cpp at d0067d0d): one fused multi_cast_transpose kernel for all of them only when
// every quantizer is a delayed-scaling one (multi_tensor_quantize_impl: "Currently only
// have fused kernel for FP8 delayed scaling"); otherwise one quantization per expert.
// A current-scaling quantization is 4 kernels, an ungrouped GEMM's as well
// (Float8CurrentScalingQuantizer::quantize_impl, csrc/quantizer.cpp: nvte_compute_amax,
// whose launch_amax_kernel zeroes the amax in a kernel of its own before the amax kernel,
// common/recipe/current_scaling.cu; nvte_compute_scale_from_amax; nvte_quantize_v2).
// Other auxiliary work keeps one kernel an op.
double kernels_of(const Op& op, Pass pass, const std::optional<Fp8Spec>& fp8) {
  const bool fwd = pass == Pass::forward;
  const bool gemm = op.kind == OpKind::gemm || op.kind == OpKind::router || op.kind == OpKind::conv;
  const bool aux = (fwd ? op.aux_fwd_bytes : op.aux_bwd_bytes).value() > 0;
  const double g = gemm ? std::max(1, op.gemm_groups) : 1;
  const bool current = fp8 && fp8->scaling == Fp8Spec::Scaling::current;
  double aux_kernels = aux ? (gemm && current ? 4 : 1) : 0;
  if (aux && g > 1 && !(fp8 && fp8->scaling == Fp8Spec::Scaling::delayed)) {
    aux_kernels = g * (current ? 4 : 1);
  }
  return (gemm ? (fwd ? 1 : 2) * g : op.launches) + aux_kernels;
}

namespace {

// The nodes the expert-parallel group of `stage` spans (the flex dispatcher's
// libraries add kernels across nodes: model/moe_routing.h, flex_exchange_kernels).
int ep_group_nodes(const StepContext& ctx, int stage) {
  return ctx.topo.nodes_spanned(groups_of(GroupKind::ep, stage, ctx.L, ctx.p.ep).group);
}

// The items of one pass of `layer` (model/layer_pass.h) timed on the compute model:
// adjacent kernel runs merged into one compute item (the halves of a split backward
// start one each), each collective its own. Eager PyTorch issues each kernel from the
// host, so a compute item takes at least its kernels x training.stack.host_overhead: the
// GPU idles when its kernels are shorter than the host's time to issue them. The host is
// taken to start each run with nothing queued (it waits on nothing across a collective
// in reality, so this is the pessimistic end; per-GPU work that is large hides it).
std::vector<Item> layer_items(const StepContext& ctx, const Layer& layer, LayerPass pass,
                              int stage) {
  const ComputeModel& model = *ctx.model;
  const double expert_scale = ctx.expert_time_scale;
  const Seconds host = ctx.s.training.stack.host_overhead;
  const std::optional<Fp8Spec>& fp8 = ctx.s.training.fp8;
  // An MoE layer's forward waits on the host once (model/moe_routing.h, moe_host_sync);
  // the backward reuses the sizes the forward read.
  const MoeHostSync sync = layer.moe && ctx.s.model.moe && pass != LayerPass::backward
                               ? moe_host_sync(*ctx.s.model.moe, ctx.s.parallelism.ep_alltoall)
                               : MoeHostSync::none;
  Seconds copy, permute;
  bool synced = false;
  if (sync != MoeHostSync::none) {
    // The copy of the counts (an int64 for each expert) to the host.
    Op counts;
    counts.kind = OpKind::elementwise;
    counts.fwd_read = counts.fwd_written = Bytes(8.0 * ctx.s.model.moe->experts);
    copy = model.op_time(counts, Pass::forward);
  }
  std::vector<Item> items;
  bool after_half = false;  // the last backward kernels were a weight-gradient half
  auto add_compute = [&](Seconds t, Seconds sel, bool separate, double kernels) {
    if (separate || items.empty() || items.back().comm) items.push_back({});
    items.back().work += t;
    items.back().selective += sel;
    items.back().kernels += kernels;
  };
  // The flex dispatcher's own kernels around each expert exchange (model/moe_routing.h,
  // flex_exchange_kernels): those before it join the run before it (a run of their own
  // after HybridEP's routing-map all-gather), those after it the next run, with the host
  // waits among them. Each is timed on the kernel floor, a staging copy at its bytes.
  const bool flex = layer.moe && ctx.s.model.moe && ctx.p.ep > 1 &&
                    ctx.p.ep_alltoall == ParallelismSpec::Alltoall::hierarchical;
  FlexExchangeKernels flex_kernels;
  Seconds kernel_floor, staging, staging_probs;
  if (flex) {
    flex_kernels = flex_exchange_kernels(ctx.p.ep_backend, ep_group_nodes(ctx, stage));
    Op none;
    none.kind = OpKind::elementwise;
    kernel_floor = model.op_time(none, Pass::forward);
    // The tokens each rank dispatches (model/layer_pass.h, MessageSizes), in 16 bits
    // (Megatron-Core sends no fp8 through HybridEP: fused_a2a.py line 402), and their
    // fp32 probabilities over every expert.
    const double tokens = ctx.bytes.routed_tokens;
    Op stage_copy;
    stage_copy.kind = OpKind::elementwise;
    stage_copy.fwd_read = stage_copy.fwd_written = Bytes(tokens * ctx.s.model.hidden * 2.0);
    staging = model.op_time(stage_copy, Pass::forward);
    stage_copy.fwd_read = stage_copy.fwd_written = Bytes(tokens * ctx.s.model.moe->experts * 4.0);
    staging_probs = model.op_time(stage_copy, Pass::forward);
  }
  auto gpu_time = [&](const ExchangeKernels& k, double kernels, bool before) {
    double copies = 0;
    Seconds t;
    if (before && k.staging) {
      t += staging;
      ++copies;
    }
    if (before && k.staging_probs) {
      t += staging_probs;
      ++copies;
    }
    return t + kernel_floor * (kernels - copies);
  };
  double after_kernels = 0;  // the last exchange's kernels after it, for the next run
  Seconds after_time, after_sync;
  auto take_after = [&] {
    items.back().kernels += after_kernels;
    items.back().work += after_time;
    items.back().sync += after_sync;
    after_kernels = 0;
    after_time = after_sync = Seconds(0);
  };
  for (const PassStep& step : layer_pass(layer, pass, ctx.s, ctx.bytes)) {
    if (step.kind == PassStep::Kind::collective) {
      if (flex && step.group == CommGroup::ep && step.collective == CollectiveOp::all_to_all) {
        const ExchangeKernels& k = flex_kernels.of(step.dispatch_point, step.forward);
        if (k.before > 0 || after_kernels > 0) {
          if (items.empty() || items.back().comm) items.push_back({});
          if (after_kernels > 0) take_after();
          items.back().kernels += k.before;
          items.back().work += gpu_time(k, k.before, true);
        }
        after_kernels = k.after;
        after_time = gpu_time(k, k.after, false);
        // Each wait: the size's copy to the host on the kernel floor and the host's issue
        // of the next kernel, the GPU idle meanwhile (as moe_host_sync's).
        after_sync = (kernel_floor + host) * static_cast<double>(k.waits);
      }
      Item it;
      it.comm = true;
      it.overlap = step.overlapped;
      it.op = step.collective;
      it.kind = group_kind(step.group);
      it.bytes = Bytes(step.bytes);
      items.push_back(it);
      continue;
    }
    const Op& op = *step.op;
    const double scale = op.expert ? expert_scale : 1.0;
    const double fwd_kernels = kernels_of(op, Pass::forward, fp8);
    if (pass != LayerPass::backward) {
      add_compute(model.op_time(op, Pass::forward) * scale, Seconds(0), step.separate, fwd_kernels);
      if (after_kernels > 0) take_after();
      if (sync == MoeHostSync::hidden && is_op(op.name, "moe.permute"))
        permute = model.op_time(op, Pass::forward);
      if (op.expert && !synced && sync != MoeHostSync::none) {
        // The host's wait for the expert batch sizes (model/moe_routing.h), once a
        // forward, before the experts' first run: the counts' copy to the host (a kernel
        // on the floor) and the host's issue of the next kernel, the GPU idle meanwhile;
        // the all-to-all dispatcher's wait overlaps the permutation it issued before.
        const double gap =
            (copy + host).value() - (sync == MoeHostSync::hidden ? permute.value() : 0.0);
        items.back().sync += Seconds(std::max(0.0, gap));
        synced = true;
      }
      continue;
    }
    const Seconds sel = step.selective ? model.op_time(op, Pass::forward) : Seconds(0);
    const double sel_kernels = step.selective ? fwd_kernels : 0;
    const Seconds bwd = model.op_time(op, Pass::backward) * scale;
    const double bwd_kernels = kernels_of(op, Pass::backward, fp8);
    // A backward split around a sequence-parallel re-gather or an input-gradient reduction:
    // the two GEMMs take half each (simulator/step.h). The weight-gradient GEMM is a run of
    // its own (it waits for a re-gather the data-gradient GEMM did not), and so is what
    // follows it: the next op waits for a reduction issued between the two GEMMs, as
    // Transformer Engine's backward waits for it before it returns (linear.py lines
    // 1350-1352 at NVIDIA/TransformerEngine d0067d0d).
    const bool split = after_half;
    after_half = step.half == 2;
    if (step.half == 1) {
      add_compute(bwd / 2 + sel, sel, step.separate || split, bwd_kernels / 2 + sel_kernels);
    } else if (step.half == 2) {
      add_compute(bwd / 2, Seconds(0), true, bwd_kernels / 2);
    } else {
      add_compute(bwd + sel, sel, step.separate || split, bwd_kernels + sel_kernels);
    }
    if (after_kernels > 0) take_after();
  }
  if (after_kernels > 0) {
    items.push_back({});
    take_after();
  }
  if (host.value() > 0) {
    for (Item& it : items) {
      if (!it.comm) it.work = std::max(it.work, host * it.kernels);
    }
  }
  for (Item& it : items) it.work += it.sync;
  return items;
}

int layer_signature(const Layer& l) {
  switch (l.kind) {
    case LayerKind::embedding:
      return 0;
    case LayerKind::head:
      return 1;
    case LayerKind::cnn:
      return 2;
    case LayerKind::mtp:
      return 8;
    case LayerKind::transformer:
      // A layer the fp8 recipe keeps in bf16 (training.fp8.bf16_layers) times differently.
      if (l.high_precision) return l.moe ? 7 : 6;
      return l.moe ? 4 : 3;
  }
  return 5;
}

}  // namespace

MaybeTask LayerTemplates::append_layer(CommPlanner& planner, TaskGraph& g, int rank, int stage,
                                       const Layer& layer, LayerPass pass, MaybeTask after,
                                       int microbatch) const {
  const std::vector<Item> items = layer_items(ctx_, layer, pass, stage);
  const TaskKind compute_kind = pass == LayerPass::forward    ? TaskKind::forward
                                : pass == LayerPass::backward ? TaskKind::backward
                                                              : TaskKind::recompute;
  MaybeTask prev = after;
  // An overlapped collective: the compute right after it does not wait for it; any
  // later task does. A collective issued after it waits for it, and a later overlapped
  // one does not discharge it: a weight-gradient GEMM waits for its input's re-gather
  // though the input gradient's reduction, issued after the data-gradient GEMM, runs
  // under it.
  struct Pending {
    int id;
    bool skipped;  // a compute has run without waiting for it
  };
  std::vector<Pending> pending;
  auto add_task = [&](Task t) {
    const int id = planner.issue(t);
    g.depend(prev, id);
    const bool comm = is_comm(t.kind);
    for (const Pending& p : pending) {
      if (comm || p.skipped) g.depend(p.id, id);
    }
    if (!comm) {
      // This compute waited for the skipped ones and skips the others.
      std::erase_if(pending, [](const Pending& p) { return p.skipped; });
      for (Pending& p : pending) p.skipped = true;
    }
    return id;
  };
  for (const Item& it : items) {
    Task t;
    t.rank = rank;
    t.microbatch = microbatch;
    if (it.comm) {
      t.kind = it.kind == GroupKind::ep   ? TaskKind::ep_comm
               : it.kind == GroupKind::cp ? TaskKind::cp_comm
                                          : TaskKind::tp_comm;
      t.stream = it.kind == GroupKind::ep   ? StreamKind::ep
                 : it.kind == GroupKind::cp ? StreamKind::cp
                                            : StreamKind::tp;
      t.comm = planner.group(it.op, it.kind, stage, it.bytes);
      const int id = add_task(t);
      if (it.overlap) {
        pending.push_back({id, false});
        continue;  // `prev` stays the compute before it
      }
      // Every task after this one waits for it, and it for the ones pending.
      pending.clear();
      prev = id;
    } else {
      t.kind = compute_kind;
      t.stream = StreamKind::compute;
      t.work = it.work;
      t.selective = it.selective;
      prev = add_task(t);
    }
  }
  if (!pending.empty()) {
    // A trailing overlapped collective still finishes before the layer ends.
    Task t;
    t.rank = rank;
    t.kind = compute_kind;
    t.stream = StreamKind::compute;
    const int id = planner.issue(t);
    g.depend(prev, id);
    for (const Pending& p : pending) g.depend(p.id, id);
    prev = id;
  }
  return prev;
}

const Template& LayerTemplates::get(int stage, const Layer& layer, LayerPass pass) {
  // Identical layers give identical templates; the TP/EP groups of all stages have the
  // same shape when they sit inside one node, so the stage only matters otherwise. The
  // rows of a CNN's layer table differ from one another (op, channels, size), so each is
  // its own template, keyed by its place in the workload.
  const int stage_key = ctx_.groups_inside_node() ? 0 : stage;
  const int row =
      layer.kind == LayerKind::cnn ? static_cast<int>(&layer - ctx_.work.layers.data()) : -1;
  const auto key = std::make_tuple(stage_key, layer_signature(layer), static_cast<int>(pass), row);
  auto it = templates_.find(key);
  if (it != templates_.end()) return it->second;
  TaskGraph g;
  g.ranks = 1;
  CommPlanner planner(ctx_, g);
  append_layer(planner, g, 0, stage, layer, pass, std::nullopt, 0);
  const EngineResult r = run_engine(g, ctx_.capacity, ctx_.engine);
  Template tpl;
  tpl.total = r.end;
  tpl.traffic = planner.traffic();
  double compute = 0;
  for (size_t i = 0; i < g.tasks.size(); ++i) {
    const Task& t = g.tasks[i];
    if (!is_comm(t.kind)) {
      compute += r.timing[i].duration().value();
      tpl.parts.selective += t.selective;
    }
  }
  // The pass's idle time on the compute stream is the collectives it waited for.
  const double exposed = std::max(0.0, r.end.value() - compute);
  double tp_time = 0, ep_time = 0, cp_time = 0;
  for (size_t i = 0; i < g.tasks.size(); ++i) {
    const double d = r.timing[i].duration().value();
    if (g.tasks[i].kind == TaskKind::tp_comm) tp_time += d;
    if (g.tasks[i].kind == TaskKind::ep_comm) ep_time += d;
    if (g.tasks[i].kind == TaskKind::cp_comm) cp_time += d;
  }
  // Exposure is shared among the kinds in proportion to their busy time.
  const double comm_time = tp_time + ep_time + cp_time;
  if (comm_time > 0) {
    tpl.parts.tp = Seconds(exposed * tp_time / comm_time);
    tpl.parts.ep = Seconds(exposed * ep_time / comm_time);
    tpl.parts.cp = Seconds(exposed * cp_time / comm_time);
  }
  if (pass == LayerPass::recompute) tpl.parts.recompute = Seconds(compute);
  return templates_.emplace(key, std::move(tpl)).first->second;
}

Seconds LayerTemplates::weight_gradient_time(const Layer& layer) const {
  // A GEMM's backward is two GEMMs of equal size; the weight-gradient one is half.
  Seconds t;
  for (const Op& op : layer.ops) {
    if (op.kind == OpKind::gemm || op.kind == OpKind::router || op.kind == OpKind::conv) {
      t += ctx_.model->op_time(op, Pass::backward) / 2 * (op.expert ? ctx_.expert_time_scale : 1.0);
    }
  }
  return t;
}

}  // namespace orrery::detail
