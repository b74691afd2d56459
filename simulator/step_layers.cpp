#include <fmt/format.h>

#include <cmath>
#include <utility>

#include "simulator/step_builder.h"

namespace orrery::detail {

StepBuilder::StepBuilder(const Scenario& s, const SimulationOptions& opt)
    : StepBuilder(s, opt, calibrate_scenario(s)) {}

StepBuilder::StepBuilder(const Scenario& s, const SimulationOptions& opt, Calibrated c)
    : s_(s), p_(s.parallelism), opt_(opt), topo_(c.cluster), model_(std::move(c.model)) {
  L_ = {p_.tp, p_.cp, p_.dp, p_.pp};
  // Failed NICs hold for the whole step: routes go around them (Topology::fail_nic). The
  // symmetric step then follows the GPU behind the first one, whose groups are the
  // slowest, so that the step waits for them as the real synchronous step would.
  bool followed = false;
  for (const FaultSpec& f : s.faults) {
    if (f.kind != FaultSpec::Kind::failed_link || f.link != FaultSpec::Link::nic) continue;
    topo_.fail_nic(f.node, f.nic);
    if (followed) continue;
    followed = true;
    const Layout::Coords at = L_.coords(topo_.gpu_of_nic(f.node, f.nic));
    L_.follow_t = at.t;
    L_.follow_c = at.c;
    L_.follow_d = at.d;
  }
  work_ = build_workload(s.model, s.training, shard_of(p_));
  for (int i = 0; i < topo_.link_count(); ++i) capacity_.push_back(topo_.link(i).capacity.value());
  act_bytes_ = activation_bytes(s.training.precision);
  const double tokens = static_cast<double>(p_.microbatch) * s.model.seq_len / p_.cp;
  const double h = static_cast<double>(s.model.hidden);
  tp_bytes_ = tokens * h * act_bytes_;  // the full activation a TP collective moves
  pp_bytes_ = tokens * h * act_bytes_;
  if (p_.pipeline_engine == PipelineEngine::megatron) pp_bytes_ /= p_.tp;  // scatter/gather
  if (s.model.moe) {
    // Dispatched tokens: top_k copies, padded to the capacity factor; the busiest rank
    // sends and computes load_imbalance times the mean.
    const MoeSpec& moe = *s.model.moe;
    ep_bytes_ = tokens * moe.top_k * moe.capacity_factor.value_or(1.0) * h * act_bytes_ *
                moe.load_imbalance;
    expert_time_scale_ = moe.load_imbalance;
  }
  local_dp_ = p_.node_dp(s.cluster.gpus_per_node);
  engine_options_.compute_slowdown = s.simulation.compute_slowdown;
  engine_options_.comm_slowdown = s.simulation.comm_slowdown;
}

// --- communication plans ------------------------------------------------------
std::map<LinkClass, double> StepBuilder::group_traffic(
    const CommPlan& plan, const std::vector<std::vector<int>>& siblings, bool nvls) const {
  // Symmetric groups move the same bytes per link class: the plan's times the groups.
  // Routes around a failed NIC break that symmetry, so each sibling is then planned
  // (with the plan's algorithm) and counted on its own routes.
  if (!topo_.any_nic_failed())
    return traffic(plan, topo_, static_cast<double>(siblings.size() + 1));
  std::map<LinkClass, double> out = traffic(plan, topo_, 1.0);
  for (const std::vector<int>& g : siblings) {
    const CommPlan p = plan_collective(plan.op, g, plan.bytes, topo_, nvls, plan.algo);
    for (const auto& [cls, bytes] : traffic(p, topo_, 1.0)) out[cls] += bytes;
  }
  return out;
}

int StepBuilder::comm_index(TaskGraph& g, std::map<std::tuple<int, int, int, double>, int>& cache,
                            CollectiveOp op, GroupKind kind, int stage, double bytes) {
  const auto key = std::make_tuple(static_cast<int>(op), static_cast<int>(kind), stage, bytes);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  const int block = kind == GroupKind::dp_local || kind == GroupKind::dp_cross ? local_dp_ : p_.ep;
  const GroupSet gs = groups_of(kind, stage, L_, block);
  CollectiveAlgo algo = CollectiveAlgo::automatic;
  if (kind == GroupKind::ep && p_.ep_alltoall == ParallelismSpec::Alltoall::direct)
    algo = CollectiveAlgo::direct;
  if (kind == GroupKind::ep && p_.ep_alltoall == ParallelismSpec::Alltoall::hierarchical)
    algo = CollectiveAlgo::hierarchical;
  const CommPlan plan =
      plan_collective(op, gs.group, bytes, topo_, s_.cluster.intra_node.nvls, algo);
  // A DualPipe mirror group spans two stages whose links carry different pipeline
  // traffic, so its transfers are not equivalent by symmetry: one flow each.
  const bool mirror = kind == GroupKind::dp_mirror || kind == GroupKind::expert_dp_mirror;
  PlannedComm placed = place(plan, topo_, gs.siblings, !opt_.full && !mirror);
  placed.description += fmt::format(", {:.2f} MiB", bytes / 1048576.0);
  placed.traffic = group_traffic(plan, gs.siblings, s_.cluster.intra_node.nvls);
  g.comms.push_back(std::move(placed));
  const int index = static_cast<int>(g.comms.size()) - 1;
  cache.emplace(key, index);
  return index;
}

int StepBuilder::pp_comm_index(TaskGraph& g, int from, int to) {
  const auto key = std::make_pair(from, to);
  auto it = pp_cache_.find(key);
  if (it != pp_cache_.end()) return it->second;
  const GroupSet gs = pipeline_pair(from, to, L_);
  const CommPlan plan = plan_collective(CollectiveOp::send_recv, gs.group, pp_bytes_, topo_, false);
  PlannedComm placed = place(plan, topo_, gs.siblings, !opt_.full);
  placed.description =
      fmt::format("send_recv stage {} -> {}, {:.2f} MiB", from, to, pp_bytes_ / 1048576.0);
  placed.traffic = group_traffic(plan, gs.siblings, false);
  g.comms.push_back(std::move(placed));
  const int index = static_cast<int>(g.comms.size()) - 1;
  pp_cache_.emplace(key, index);
  return index;
}

// The collective that a comm point turns into for a pass; none when it is a no-op.
bool StepBuilder::comm_for(CommPoint cp, bool forward, CollectiveOp& op, GroupKind& kind,
                           double& bytes, bool fp8_input) const {
  const bool sp = p_.sequence_parallel;
  switch (cp) {
    case CommPoint::none:
      return false;
    case CommPoint::tp_gather:  // column-parallel input: AG (SP) fwd; RS or AR of grads bwd
      if (p_.tp == 1) return false;
      if (forward && !sp) return false;
      op = forward ? CollectiveOp::all_gather
                   : (sp ? CollectiveOp::reduce_scatter : CollectiveOp::all_reduce);
      kind = GroupKind::tp;
      bytes = tp_bytes_;
      // The all-gather of an fp8 GEMM's input moves its fp8 cast (TE's fp8 all-gather
      // with sequence parallelism); the gradient's reduction stays 16-bit.
      if (forward && fp8_input) bytes = tp_bytes_ / act_bytes_;
      return true;
    case CommPoint::tp_reduce:  // row-parallel output: RS (SP) or AR fwd; AG (SP) bwd
      if (p_.tp == 1) return false;
      if (!forward && !sp) return false;
      op = forward ? (sp ? CollectiveOp::reduce_scatter : CollectiveOp::all_reduce)
                   : CollectiveOp::all_gather;
      kind = GroupKind::tp;
      bytes = tp_bytes_;
      return true;
    case CommPoint::ep_dispatch:
    case CommPoint::ep_combine:
      if (p_.ep == 1) return false;
      op = CollectiveOp::all_to_all;
      kind = GroupKind::ep;
      bytes = ep_bytes_;
      return true;
    case CommPoint::cp_kv:  // handled by append_layer, which knows the op's K/V size
      return false;
  }
  return false;
}

// --- one layer, op by op --------------------------------------------------------
// Appends the tasks of one pass of `layer` on `rank` (GPU of `stage`), after task
// `after`; returns the last task. Accumulates compute seconds into `parts`.
int StepBuilder::append_layer(TaskGraph& g, std::map<std::tuple<int, int, int, double>, int>& cache,
                              int rank, int stage, const Layer& layer, PassKind pass, int after,
                              int microbatch) {
  struct Item {
    bool comm = false;
    bool overlap = false;  // a collective the next compute does not wait for
    double work = 0, selective = 0;
    CollectiveOp op = CollectiveOp::all_reduce;
    GroupKind kind = GroupKind::tp;
    double bytes = 0;
  };
  std::vector<Item> items;
  auto add_compute = [&](double t, double sel, bool separate = false) {
    if (separate || items.empty() || items.back().comm) items.push_back({});
    items.back().work += t;
    items.back().selective += sel;
  };
  const bool fp8_gathers = s_.training.precision == Precision::fp8 && s_.training.fp8 &&
                           s_.training.fp8->tp_allgather_fp8;
  auto add_comm = [&](CommPoint cp, bool forward, bool overlap = false,
                      const Op* op = nullptr) {
    Item it;
    const bool fp8_input = fp8_gathers && op && !op->high_precision &&
                           (op->kind == OpKind::gemm || op->kind == OpKind::router);
    if (!comm_for(cp, forward, it.op, it.kind, it.bytes, fp8_input)) return;
    it.comm = true;
    it.overlap = overlap || (s_.training.tp_comm_overlap && it.kind == GroupKind::tp);
    items.push_back(it);
  };
  const bool forward = pass != PassKind::backward;
  // Context parallelism: keys and values of the other cp ranks. Ring attention passes
  // them in cp - 1 steps while attention computes (an all-gather's traffic, overlapped);
  // the all-gather variant waits for them. Backward passes them again and returns their
  // gradients (a reduce-scatter).
  const bool ring = p_.cp_comm == ParallelismSpec::CpComm::ring;
  auto add_cp = [&](const Op& op, CollectiveOp collective) {
    if (p_.cp == 1 || op.kv_elems <= 0) return;
    Item it;
    it.comm = true;
    it.overlap = ring;
    it.op = collective;
    it.kind = GroupKind::cp;
    it.bytes = op.kv_elems * act_bytes_ * p_.cp;  // the gathered K and V
    items.push_back(it);
  };
  if (forward) {
    for (const Op& op : layer.ops) {
      if (op.comm_before == CommPoint::cp_kv) add_cp(op, CollectiveOp::all_gather);
      add_comm(op.comm_before, true, false, &op);
      add_compute(
          model_->op_time(op, Pass::forward).value() * (op.expert ? expert_time_scale_ : 1.0), 0);
      add_comm(op.comm_after, true);
    }
  } else {
    const bool selective = s_.training.recompute == Recompute::selective;
    for (auto it = layer.ops.rbegin(); it != layer.ops.rend(); ++it) {
      add_comm(it->comm_after, false);
      const double sel =
          selective && it->selective ? model_->op_time(*it, Pass::forward).value() : 0;
      const double bwd =
          model_->op_time(*it, Pass::backward).value() * (it->expert ? expert_time_scale_ : 1.0);
      if (it->comm_before == CommPoint::cp_kv) add_cp(*it, CollectiveOp::all_gather);
      const bool regather =
          it->comm_before == CommPoint::tp_gather && p_.sequence_parallel && p_.tp > 1;
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
  }
  const TaskKind compute_kind = pass == PassKind::forward    ? TaskKind::forward
                                : pass == PassKind::backward ? TaskKind::backward
                                                             : TaskKind::recompute;
  int prev = after;
  // An overlapped collective: the compute right after it does not wait for it; any
  // later task does.
  int pending = -1;
  bool skipped_one = false;
  auto add_task = [&](Task t) {
    const int id = g.add(t);
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
      t.comm = comm_index(g, cache, it.op, it.kind, stage, it.bytes);
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
    const int id = g.add(t);
    g.depend(prev, id);
    g.depend(pending, id);
    prev = id;
  }
  return prev;
}

// Level 1: one pass of one layer kind on the stage's GPU, simulated alone.
const StepBuilder::Template& StepBuilder::layer_template(int stage, const Layer& layer,
                                                         PassKind pass) {
  // Identical layers give identical templates; the TP/EP groups of all stages have the
  // same shape when they sit inside one node, so the stage only matters otherwise. The
  // rows of a CNN's layer table differ from one another (op, channels, size), so each is
  // its own template, keyed by its place in the workload.
  const int stage_key = groups_inside_node() ? 0 : stage;
  const int row =
      layer.kind == LayerKind::cnn ? static_cast<int>(&layer - work_.layers.data()) : -1;
  const auto key = std::make_tuple(stage_key, layer_signature(layer), static_cast<int>(pass), row);
  auto it = templates_.find(key);
  if (it != templates_.end()) return it->second;
  TaskGraph g;
  g.ranks = 1;
  std::map<std::tuple<int, int, int, double>, int> cache;
  append_layer(g, cache, 0, stage, layer, pass, -1, 0);
  const EngineResult r = run_engine(g, capacity_, engine_options_);
  Template tpl;
  tpl.total = r.end_s;
  double compute = 0;
  for (size_t i = 0; i < g.tasks.size(); ++i) {
    const Task& t = g.tasks[i];
    if (!is_comm(t.kind)) {
      compute += r.timing[i].end - r.timing[i].start;
      tpl.parts.selective += t.selective_s;
    } else {
      for (const auto& [cls, b] : g.comms[t.comm].traffic) tpl.traffic[cls] += b;
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

double StepBuilder::weight_gradient_time(const Layer& layer) const {
  // A GEMM's backward is two GEMMs of equal size; the weight-gradient one is half.
  double t = 0;
  for (const Op& op : layer.ops) {
    if (op.kind == OpKind::gemm || op.kind == OpKind::router || op.kind == OpKind::conv) {
      t += model_->op_time(op, Pass::backward).value() / 2 * (op.expert ? expert_time_scale_ : 1.0);
    }
  }
  return t;
}

bool StepBuilder::groups_inside_node() const {
  const int g = s_.cluster.gpus_per_node;
  return p_.tp <= g && g % p_.tp == 0 && (p_.ep == 1 || p_.tp * p_.ep <= g);
}

int StepBuilder::layer_signature(const Layer& l) {
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

}  // namespace orrery::detail
