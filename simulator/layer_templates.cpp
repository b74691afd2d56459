#include "simulator/layer_templates.h"

#include <algorithm>
#include <vector>

namespace orrery::detail {
namespace {

// The collective that a comm point turns into for a pass; none when it is a no-op.
// `fp8_input`: the op is a GEMM whose input the fp8 recipe all-gathers in fp8
// (training.fp8.communication.tp_allgather), 1 byte an element.
bool comm_for(const StepContext& ctx, CommPoint cp, bool forward, CollectiveOp& op,
              GroupKind& kind, double& bytes, bool fp8_input) {
  const ParallelismSpec& p = ctx.p;
  const bool sp = p.sequence_parallel;
  switch (cp) {
    case CommPoint::none:
      return false;
    case CommPoint::tp_gather:  // column-parallel input: AG (SP) fwd; RS or AR of grads bwd
      if (p.tp == 1) return false;
      if (forward && !sp) return false;
      op = forward ? CollectiveOp::all_gather
                   : (sp ? CollectiveOp::reduce_scatter : CollectiveOp::all_reduce);
      kind = GroupKind::tp;
      bytes = ctx.bytes.tp;
      // The all-gather of an fp8 GEMM's input moves its fp8 cast (TE's fp8 all-gather
      // with sequence parallelism); the gradient's reduction stays 16-bit.
      if (forward && fp8_input) bytes = ctx.bytes.tp / ctx.bytes.activation;
      return true;
    case CommPoint::tp_reduce:  // row-parallel output: RS (SP) or AR fwd; AG (SP) bwd
      if (p.tp == 1) return false;
      if (!forward && !sp) return false;
      op = forward ? (sp ? CollectiveOp::reduce_scatter : CollectiveOp::all_reduce)
                   : CollectiveOp::all_gather;
      kind = GroupKind::tp;
      bytes = ctx.bytes.tp;
      return true;
    case CommPoint::ep_dispatch:
    case CommPoint::ep_combine:
      if (p.ep == 1) return false;
      op = CollectiveOp::all_to_all;
      kind = GroupKind::ep;
      bytes = ctx.bytes.ep;
      return true;
    case CommPoint::cp_kv:  // handled by append_layer, which knows the op's K/V size
      return false;
  }
  return false;
}

// One kernel run or one collective of a layer's pass, before it becomes a task.
struct Item {
  bool comm = false;
  bool overlap = false;  // a collective the next compute does not wait for
  double work = 0, selective = 0;
  CollectiveOp op = CollectiveOp::all_reduce;
  GroupKind kind = GroupKind::tp;
  double bytes = 0;
};

// The items of one pass of `layer`, in issue order: adjacent kernels merged into one
// compute item, each collective its own.
std::vector<Item> layer_items(const StepContext& ctx, const Layer& layer, PassKind pass) {
  const Scenario& s = ctx.s;
  const ParallelismSpec& p = ctx.p;
  const ComputeModel& model = *ctx.model;
  const double expert_scale = ctx.expert_time_scale;
  std::vector<Item> items;
  auto add_compute = [&](double t, double sel, bool separate = false) {
    if (separate || items.empty() || items.back().comm) items.push_back({});
    items.back().work += t;
    items.back().selective += sel;
  };
  const bool fp8_gathers = s.training.fp8 && s.training.fp8->tp_allgather_fp8;
  auto add_comm = [&](CommPoint cp, bool forward, bool overlap = false,
                      const Op* op = nullptr) {
    Item it;
    const bool fp8_input = fp8_gathers && op && !op->high_precision &&
                           (op->kind == OpKind::gemm || op->kind == OpKind::router);
    if (!comm_for(ctx, cp, forward, it.op, it.kind, it.bytes, fp8_input)) return;
    it.comm = true;
    it.overlap = overlap || (s.training.tp_comm_overlap && it.kind == GroupKind::tp);
    items.push_back(it);
  };
  const bool forward = pass != PassKind::backward;
  // Context parallelism: keys and values of the other cp ranks. Ring attention passes
  // them in cp - 1 steps while attention computes (an all-gather's traffic, overlapped);
  // the all-gather variant waits for them. Backward passes them again and returns their
  // gradients (a reduce-scatter).
  const bool ring = p.cp_comm == ParallelismSpec::CpComm::ring;
  auto add_cp = [&](const Op& op, CollectiveOp collective) {
    if (p.cp == 1 || op.kv_elems <= 0) return;
    Item it;
    it.comm = true;
    it.overlap = ring;
    it.op = collective;
    it.kind = GroupKind::cp;
    it.bytes = op.kv_elems * ctx.bytes.activation * p.cp;  // the gathered K and V
    items.push_back(it);
  };
  if (forward) {
    for (const Op& op : layer.ops) {
      if (op.comm_before == CommPoint::cp_kv) add_cp(op, CollectiveOp::all_gather);
      add_comm(op.comm_before, true, false, &op);
      add_compute(model.op_time(op, Pass::forward).value() * (op.expert ? expert_scale : 1.0), 0);
      add_comm(op.comm_after, true);
    }
    return items;
  }
  const bool selective = s.training.recompute == Recompute::selective;
  for (auto it = layer.ops.rbegin(); it != layer.ops.rend(); ++it) {
    add_comm(it->comm_after, false);
    const double sel = selective && it->selective ? model.op_time(*it, Pass::forward).value() : 0;
    const double bwd =
        model.op_time(*it, Pass::backward).value() * (it->expert ? expert_scale : 1.0);
    if (it->comm_before == CommPoint::cp_kv) add_cp(*it, CollectiveOp::all_gather);
    const bool regather =
        it->comm_before == CommPoint::tp_gather && p.sequence_parallel && p.tp > 1;
    if (regather) {
      // Sequence parallelism keeps this GEMM's input sharded: Megatron-LM gathers it
      // again for the weight gradient, overlapped with the data-gradient GEMM
      // (Korthikanti et al. 2022, section 4.2.2). The two GEMMs take half each.
      add_comm(CommPoint::tp_gather, true, true, &*it);
      add_compute(bwd / 2 + sel, sel, true);
      add_compute(bwd / 2, 0, true);
    } else {
      add_compute(bwd + sel, sel);
    }
    add_comm(it->comm_before, false);
    if (it->comm_before == CommPoint::cp_kv) add_cp(*it, CollectiveOp::reduce_scatter);
  }
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
    case LayerKind::transformer:
      // A layer the fp8 recipe keeps in bf16 (training.fp8.bf16_layers) times differently.
      if (l.high_precision) return l.moe ? 7 : 6;
      return l.moe ? 4 : 3;
  }
  return 5;
}

}  // namespace

int LayerTemplates::append_layer(CommPlanner& planner, TaskGraph& g, int rank, int stage,
                                 const Layer& layer, PassKind pass, int after,
                                 int microbatch) const {
  const std::vector<Item> items = layer_items(ctx_, layer, pass);
  const TaskKind compute_kind = pass == PassKind::forward    ? TaskKind::forward
                                : pass == PassKind::backward ? TaskKind::backward
                                                             : TaskKind::recompute;
  int prev = after;
  // An overlapped collective: the compute right after it does not wait for it; any
  // later task does.
  int pending = -1;
  bool skipped_one = false;
  auto add_task = [&](Task t) {
    const int id = planner.issue(t);
    g.depend(prev, id);
    if (pending >= 0 && (is_comm(t.kind) || skipped_one)) {
      g.depend(pending, id);
      pending = -1;
    } else if (pending >= 0) {
      skipped_one = true;
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
        pending = id;
        skipped_one = false;
        continue;  // `prev` stays the compute before it
      }
      prev = id;
    } else {
      t.kind = compute_kind;
      t.stream = StreamKind::compute;
      t.work_s = it.work;
      t.selective_s = it.selective;
      prev = add_task(t);
    }
  }
  if (pending >= 0) {
    // A trailing overlapped collective still finishes before the layer ends.
    Task t;
    t.rank = rank;
    t.kind = compute_kind;
    t.stream = StreamKind::compute;
    const int id = planner.issue(t);
    g.depend(prev, id);
    g.depend(pending, id);
    prev = id;
  }
  return prev;
}

const Template& LayerTemplates::get(int stage, const Layer& layer, PassKind pass) {
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
  append_layer(planner, g, 0, stage, layer, pass, -1, 0);
  const EngineResult r = run_engine(g, ctx_.capacity, ctx_.engine);
  Template tpl;
  tpl.total = r.end_s;
  tpl.traffic = planner.traffic();
  double compute = 0;
  for (size_t i = 0; i < g.tasks.size(); ++i) {
    const Task& t = g.tasks[i];
    if (!is_comm(t.kind)) {
      compute += r.timing[i].end - r.timing[i].start;
      tpl.parts.selective += t.selective_s;
    }
  }
  // The pass's idle time on the compute stream is the collectives it waited for.
  const double exposed = std::max(0.0, r.end_s - compute);
  double tp_time = 0, ep_time = 0, cp_time = 0;
  for (size_t i = 0; i < g.tasks.size(); ++i) {
    const double d = r.timing[i].end - r.timing[i].start;
    if (g.tasks[i].kind == TaskKind::tp_comm) tp_time += d;
    if (g.tasks[i].kind == TaskKind::ep_comm) ep_time += d;
    if (g.tasks[i].kind == TaskKind::cp_comm) cp_time += d;
  }
  // Exposure is shared among the kinds in proportion to their busy time.
  const double comm_time = tp_time + ep_time + cp_time;
  if (comm_time > 0) {
    tpl.parts.tp = exposed * tp_time / comm_time;
    tpl.parts.ep = exposed * ep_time / comm_time;
    tpl.parts.cp = exposed * cp_time / comm_time;
  }
  if (pass == PassKind::recompute) tpl.parts.recompute = compute;
  return templates_.emplace(key, std::move(tpl)).first->second;
}

double LayerTemplates::weight_gradient_time(const Layer& layer) const {
  // A GEMM's backward is two GEMMs of equal size; the weight-gradient one is half.
  double t = 0;
  for (const Op& op : layer.ops) {
    if (op.kind == OpKind::gemm || op.kind == OpKind::router || op.kind == OpKind::conv) {
      t += ctx_.model->op_time(op, Pass::backward).value() / 2 *
           (op.expert ? ctx_.expert_time_scale : 1.0);
    }
  }
  return t;
}

}  // namespace orrery::detail
