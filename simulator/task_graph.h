// A training step as a DAG of tasks on per-rank streams. Streams are in-order, like
// CUDA streams: a task starts when all its dependencies have finished and every earlier
// task of its stream has finished. Edges are stored as a list here and turned into a
// Boost.Graph compressed-sparse-row graph by the engine.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/collective.h"
#include "core/error.h"
#include "core/units.h"
#include "simulator/flows.h"
#include "simulator/topology.h"

namespace orrery {

// Streams of one simulated GPU. Compute kernels, tensor-parallel collectives,
// data-parallel collectives, pipeline transfers, MoE all-to-alls and ZeRO-3/FSDP
// parameter gathers each have their own, as the frameworks issue them on separate CUDA
// streams (or, for pipeline p2p, separate NCCL calls).
enum class StreamKind : std::uint8_t { compute, tp, dp, pp, ep, gather, cp };
constexpr int kStreamsPerRank = 7;
const char* to_string(StreamKind s);

enum class TaskKind : std::uint8_t {
  forward,     // forward compute
  backward,    // backward compute (selective recompute included, accounted separately)
  recompute,   // forward recomputation before a backward (full recompute)
  optimizer,   // optimizer step
  tp_comm,     // tensor-parallel collective
  ep_comm,     // expert-parallel all-to-all
  cp_comm,     // context-parallel key/value exchange
  pp_comm,     // pipeline send/receive
  dp_comm,     // data-parallel gradient reduction
  param_gather // distributed-optimizer parameter all-gather
};
const char* to_string(TaskKind k);
inline bool is_comm(TaskKind k) { return k >= TaskKind::tp_comm; }

// One flow of a planned collective, with its links (and the symmetric copies that
// share each of them).
struct PlannedFlow {
  std::vector<FlowLink> links;
  Bytes bytes;  // one copy's; none move when <= 0
};

struct PlannedPhase {
  Seconds latency;        // paid before the phase's data moves
  double rate_scale = 1;  // e.g. NVLS efficiency
  std::vector<PlannedFlow> flows;
};

struct PlannedComm {
  std::vector<PlannedPhase> phases;
  Bytes bytes;              // the collective's S, for reports
  std::string description;  // "all_reduce ring over 8 GPUs, 64.0 MiB"
  // For traces: the operation, the algorithm the plan chose (to_string of CollectiveAlgo)
  // and the GPUs of the planned group in ring order (the followed group; symmetric
  // sibling groups run alongside).
  CollectiveOp op = CollectiveOp::all_reduce;
  std::string algorithm;
  std::vector<int> gpus;
  // Bytes one run moves per link class, counting every group that runs it at once.
  std::map<LinkClass, double> traffic;
};

// A task is named by its index in TaskGraph::tasks. Where a task may be absent (no
// predecessor yet, a block that added no task), the reference is a MaybeTask.
using MaybeTask = std::optional<int>;

struct Task {
  TaskKind kind = TaskKind::forward;
  StreamKind stream = StreamKind::compute;
  int rank = 0;
  Seconds work;        // compute: duration at full speed
  Seconds selective;   // part of work that is selective recomputation
  Seconds recompute;   // part of work that is recomputed forward (full recompute)
  Seconds tp;          // part of work that is exposed tensor-parallel communication
  Seconds ep;          // part of work that is exposed expert-parallel communication
  Seconds cp;          // part of work that is exposed context-parallel communication
  Seconds offload;     // part of work spent waiting for activation offload copies
  std::optional<int> comm;        // comm tasks: index into TaskGraph::comms
  std::optional<int> label;       // index into TaskGraph::labels (trace names)
  std::optional<int> microbatch;  // the micro-batch a pipeline task belongs to
};

struct TaskGraph {
  int ranks = 0;
  std::vector<Task> tasks;
  std::vector<std::pair<int, int>> edges;  // (before, after)
  std::vector<PlannedComm> comms;
  std::vector<std::string> labels;

  int add(const Task& t) {
    tasks.push_back(t);
    return static_cast<int>(tasks.size()) - 1;
  }
  // `after` waits for `before`; no edge when either is absent. Both, when present, are
  // tasks of this graph.
  void depend(MaybeTask before, MaybeTask after) {
    if (!before || !after) return;
    ORRERY_CHECK(*before >= 0 && *after >= 0, "a dependency between tasks of the graph");
    edges.emplace_back(*before, *after);
  }
  int label(const std::string& s) {
    labels.push_back(s);
    return static_cast<int>(labels.size()) - 1;
  }
};

}  // namespace orrery
