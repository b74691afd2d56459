#include "simulator/comm_planner.h"

#include <fmt/format.h>

#include <optional>
#include <utility>

namespace orrery::detail {

std::map<LinkClass, double> CommPlanner::group_traffic(
    const CommPlan& plan, const std::vector<std::vector<int>>& siblings, bool nvls) const {
  // Symmetric groups move the same bytes per link class: the plan's times the groups.
  // Routes around a failed NIC break that symmetry, so each sibling is then planned
  // (with the plan's algorithm) and counted on its own routes.
  const Topology& topo = ctx_.topo;
  if (!topo.any_nic_failed())
    return orrery::traffic(plan, topo, static_cast<double>(siblings.size() + 1));
  std::map<LinkClass, double> out = orrery::traffic(plan, topo, 1.0);
  for (const std::vector<int>& g : siblings) {
    const CommPlan p =
        plan.op == CollectiveOp::all_to_all && plan.algo == CollectiveAlgo::hierarchical &&
                ctx_.s.model.moe
            ? plan_expert_exchange(g, plan.bytes, *ctx_.s.model.moe, topo, ctx_.p.ep_backend)
            : plan_collective(plan.op, g, plan.bytes, topo, nvls, plan.algo);
    for (const auto& [cls, bytes] : orrery::traffic(p, topo, 1.0)) out[cls] += bytes;
  }
  return out;
}

void CommPlanner::measured(const std::vector<int>& group, CollectiveOp op, Bytes bytes, bool nccl,
                           PlannedComm& placed) const {
  const std::optional<Seconds> t = ctx_.model->collective_time(
      op, static_cast<int>(group.size()), ctx_.topo.nodes_spanned(group), bytes);
  if (!t) return;
  // The measured kernel time holds the collective's latency, its protocol and algorithm
  // and the contention of the groups that ran beside it in the trace: one phase of that
  // length moving no flows (the traffic tally still counts the plan's bytes), plus the
  // per-collective host overhead NCCL-costed collectives pay (apply_nccl_cost).
  PlannedPhase ph;
  ph.latency = *t + (nccl ? ctx_.p.fsdp_host_overhead : Seconds(0.0));
  placed.phases = {ph};
  placed.algorithm = "measured";
  placed.description += ", measured";
}

int CommPlanner::push(PlannedComm placed) {
  g_.comms.push_back(std::move(placed));
  return static_cast<int>(g_.comms.size()) - 1;
}

int CommPlanner::group(CollectiveOp op, GroupKind kind, int stage, Bytes bytes, bool nccl) {
  const auto key =
      std::make_tuple(static_cast<int>(op), static_cast<int>(kind), stage, bytes.value(), nccl);
  auto it = groups_.find(key);
  if (it != groups_.end()) return it->second;
  const ParallelismSpec& p = ctx_.p;
  const int block =
      kind == GroupKind::dp_local || kind == GroupKind::dp_cross ? ctx_.local_dp : p.ep;
  const GroupSet gs = groups_of(kind, stage, ctx_.L, block);
  CollectiveAlgo algo = CollectiveAlgo::automatic;
  // ep_alltoall picks the exchange's algorithm; the EP group's other collective (HybridEP's
  // routing-map all-gather, model/layer_pass.cpp) is NCCL's and planned as any other.
  const bool exchange = kind == GroupKind::ep && op == CollectiveOp::all_to_all;
  if (exchange && p.ep_alltoall == ParallelismSpec::Alltoall::direct) algo = CollectiveAlgo::direct;
  if (exchange && p.ep_alltoall == ParallelismSpec::Alltoall::hierarchical)
    algo = CollectiveAlgo::hierarchical;
  const bool nvls = ctx_.s.cluster.intra_node.nvls;
  CommPlan plan;
  if (kind == GroupKind::ep && op == CollectiveOp::all_to_all && ctx_.s.model.moe) {
    // The naive exchange (every token to each of its experts) or the deduplicated one (one
    // copy per destination node and GPU); automatic: the faster on an idle network.
    const MoeSpec& moe = *ctx_.s.model.moe;
    if (algo == CollectiveAlgo::hierarchical) {
      plan = plan_expert_exchange(gs.group, bytes, moe, ctx_.topo, p.ep_backend);
    } else {
      plan = plan_collective(op, gs.group, bytes, ctx_.topo, nvls, CollectiveAlgo::direct);
      if (algo == CollectiveAlgo::automatic) {
        CommPlan two = plan_expert_exchange(gs.group, bytes, moe, ctx_.topo, p.ep_backend);
        if (estimate(two, ctx_.topo).value() < estimate(plan, ctx_.topo).value())
          plan = std::move(two);
      }
    }
  } else {
    plan = plan_collective(op, gs.group, bytes, ctx_.topo, nvls, algo, nccl);
  }
  if (nccl) apply_nccl_cost(plan, ctx_.topo, ctx_.p.fsdp_host_overhead);
  // A DualPipe mirror group spans two stages whose links carry different pipeline
  // traffic, so its transfers are not equivalent by symmetry: one flow each.
  // So does the tied-embedding group of the first and the last stage.
  const bool mirror = kind == GroupKind::dp_mirror || kind == GroupKind::expert_dp_mirror ||
                      kind == GroupKind::embedding;
  PlannedComm placed = place(plan, ctx_.topo, gs.siblings, !ctx_.opt.full && !mirror);
  placed.description += fmt::format(", {:.2f} MiB", bytes.value() / 1048576.0);
  measured(gs.group, op, bytes, nccl, placed);
  placed.traffic = group_traffic(plan, gs.siblings, nvls);
  const int index = push(std::move(placed));
  groups_.emplace(key, index);
  return index;
}

int CommPlanner::stage_pair(int from, int to, Bytes bytes) {
  const auto key = std::make_tuple(from, to, bytes.value());
  auto it = stage_pairs_.find(key);
  if (it != stage_pairs_.end()) return it->second;
  const GroupSet gs = pipeline_pair(from, to, ctx_.L);
  const CommPlan plan = plan_collective(CollectiveOp::send_recv, gs.group, bytes, ctx_.topo, false);
  PlannedComm placed = place(plan, ctx_.topo, gs.siblings, !ctx_.opt.full);
  placed.description =
      fmt::format("send_recv stage {} -> {}, {:.2f} MiB", from, to, bytes.value() / 1048576.0);
  // A profile's measured SendRecv entry of these two GPUs' node span times the transfer.
  measured(gs.group, CollectiveOp::send_recv, bytes, false, placed);
  placed.traffic = group_traffic(plan, gs.siblings, false);
  const int index = push(std::move(placed));
  stage_pairs_.emplace(key, index);
  return index;
}

int CommPlanner::gpu_pair(int from_gpu, int to_gpu, Bytes bytes) {
  const auto key = std::make_tuple(from_gpu, to_gpu, bytes.value());
  auto it = gpu_pairs_.find(key);
  if (it != gpu_pairs_.end()) return it->second;
  const CommPlan plan =
      plan_collective(CollectiveOp::send_recv, {from_gpu, to_gpu}, bytes, ctx_.topo, false);
  PlannedComm placed = place(plan, ctx_.topo);
  placed.description = fmt::format("send_recv GPU {} -> {}", from_gpu, to_gpu);
  measured({from_gpu, to_gpu}, CollectiveOp::send_recv, bytes, false, placed);
  placed.traffic = orrery::traffic(plan, ctx_.topo, 1.0);
  const int index = push(std::move(placed));
  gpu_pairs_.emplace(key, index);
  return index;
}

int CommPlanner::issue(const Task& t) {
  const int id = g_.add(t);
  if (t.comm) tally(g_.comms[static_cast<size_t>(*t.comm)].traffic);
  return id;
}

int CommPlanner::collective(const RankSet& ranks, TaskKind kind, CollectiveOp op, GroupKind group,
                            const std::vector<int>& members, const std::vector<int>& after,
                            Bytes bytes, StreamKind stream, bool nccl) {
  Task t;
  t.kind = kind;
  t.stream = stream;
  t.rank = members.front();
  if (ranks.full()) {
    std::vector<int> gpus;
    gpus.reserve(members.size());
    for (int mr : members) gpus.push_back(ranks.gpu(static_cast<size_t>(mr)));
    // The plan depends on nothing else (the topology and options are the step's), so a
    // group's repeated collective of the same size reuses it.
    auto key = std::make_tuple(static_cast<int>(op), std::move(gpus), bytes.value(), nccl);
    auto it = full_groups_.find(key);
    if (it == full_groups_.end()) {
      const std::vector<int>& ring = std::get<1>(key);
      CommPlan plan = plan_collective(op, ring, bytes, ctx_.topo, ctx_.s.cluster.intra_node.nvls,
                                      CollectiveAlgo::automatic, nccl);
      if (nccl) apply_nccl_cost(plan, ctx_.topo, ctx_.p.fsdp_host_overhead);
      PlannedComm placed = place(plan, ctx_.topo);
      placed.description += fmt::format(", {:.2f} MiB", bytes.value() / 1048576.0);
      measured(ring, op, bytes, nccl, placed);
      placed.traffic = orrery::traffic(plan, ctx_.topo, 1.0);
      it = full_groups_.emplace(std::move(key), push(std::move(placed))).first;
    }
    t.comm = it->second;
  } else {
    t.comm = this->group(op, group, ranks[static_cast<size_t>(members.front())].s, bytes, nccl);
  }
  const int task = issue(t);
  for (int a : after) g_.depend(a, task);
  return task;
}

void CommPlanner::tally(const std::map<LinkClass, double>& traffic) {
  for (const auto& [cls, bytes] : traffic) traffic_[cls] += bytes;
}

}  // namespace orrery::detail
