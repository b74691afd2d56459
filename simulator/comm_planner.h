// The communication of one task graph: plans each collective once (cached by what makes
// it distinct), places it on the topology, and keeps the one tally of bytes per link
// class that the graph's tasks move. Every task of a graph is added through `issue`, so
// the tally cannot miss a transfer or count one twice. Private to the simulator.
#pragma once

#include <map>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "simulator/collectives.h"
#include "simulator/groups.h"
#include "simulator/rank_set.h"
#include "simulator/step_context.h"
#include "simulator/task_graph.h"

namespace orrery::detail {

class CommPlanner {
 public:
  CommPlanner(const StepContext& ctx, TaskGraph& g) : ctx_(ctx), g_(g) {}

  // `op` of `bytes` over the `kind` group of the followed GPU of `stage`, its sibling
  // groups running alongside as weighted copies (symmetric) or unweighted (full mode, in
  // which they are simulated). Returns the index into the graph's comms.
  // `nccl`: cost the collective as NCCL's tuning model does plus the per-collective host
  // overhead (apply_nccl_cost; the ZeRO-3 / FSDP gathers and reduce-scatters).
  int group(CollectiveOp op, GroupKind kind, int stage, Bytes bytes, bool nccl = false);
  // A pipeline send of `bytes` a GPU from stage `from` to `to` (every sibling pair
  // alongside): one micro-batch's activation (MessageSizes::pp) or a multiple of it, or
  // the shape tensor Megatron-Core exchanges first under mtp_standalone
  // (simulator/pipeline_pass.cpp).
  int stage_pair(int from, int to, Bytes bytes);
  // Full mode: the same send between two GPUs.
  int gpu_pair(int from_gpu, int to_gpu, Bytes bytes);

  // Adds `t` to the graph; a communication task's bytes go into the tally.
  int issue(const Task& t);
  // A collective over `members` (simulated ranks of one stage): one task on the first
  // member's `stream` that waits for every task of `after`. Symmetric: the stage's group
  // plan; full: a plan over exactly the members' GPUs.
  int collective(const RankSet& ranks, TaskKind kind, CollectiveOp op, GroupKind group,
                 const std::vector<int>& members, const std::vector<int>& after, Bytes bytes,
                 StreamKind stream = StreamKind::dp, bool nccl = false);
  // Bytes a task moves that are not one of this graph's comms (a layer template's
  // collectives, counted once per use).
  void tally(const std::map<LinkClass, double>& traffic);
  const std::map<LinkClass, double>& traffic() const { return traffic_; }

 private:
  // Bytes per link class that `plan` and its sibling groups move together.
  std::map<LinkClass, double> group_traffic(const CommPlan& plan,
                                            const std::vector<std::vector<int>>& siblings,
                                            bool nvls) const;
  int push(PlannedComm placed);
  // When the compute model holds a measured time for `op` of `bytes` over `group` (its size
  // and the nodes it spans; ComputeModel::collective_time), `placed` becomes one phase of
  // that time with no flows.
  void measured(const std::vector<int>& group, CollectiveOp op, Bytes bytes, bool nccl,
                PlannedComm& placed) const;

  const StepContext& ctx_;
  TaskGraph& g_;
  std::map<std::tuple<int, int, int, double, bool>, int> groups_;  // (op, kind, stage, bytes, nccl)
  std::map<std::tuple<int, int, double>, int> stage_pairs_, gpu_pairs_;
  // Full mode: a collective's plan by (op, GPUs in ring order, bytes, nccl). A shard
  // group gathers the same unit's bytes in every micro-batch; re-planning and re-placing
  // each of them (2048 flows per gather on 16,384 GPUs) held a copy per collective.
  std::map<std::tuple<int, std::vector<int>, double, bool>, int> full_groups_;
  std::map<LinkClass, double> traffic_;
};

}  // namespace orrery::detail
