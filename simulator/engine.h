// The discrete-event engine: runs a TaskGraph on its streams and the network and
// returns when every task started and finished.
//
// Events are totally ordered by (time, class, sequence number), so a run is the same
// to the bit every time: classes are, in order, flow completions (class 0), latency
// phases ending (class 1), compute kernels ending (class 2). Each pop costs O(log n).
//
// Concurrency on one GPU (the interference model): while a collective of rank r is in
// progress, a compute kernel of rank r runs at (1 - compute_slowdown) of its speed,
// because communication kernels occupy SMs (DeepSeek-V3 report, section 3.2.2: 20 of an
// H800's 132 SMs saturate InfiniBand and NVLink, so 0.15). While a compute kernel runs,
// rank r's flows run at (1 - comm_slowdown) of their fair share.
#pragma once

#include <cstddef>
#include <optional>
#include <utility>
#include <vector>

#include "simulator/task_graph.h"

namespace orrery {

// A modelled fault's effect from time t on: rank `rank`'s compute runs at `factor` of its
// speed, and/or topology link `link` carries `factor` of its capacity (either may be
// absent). A factor of 0 stops the rank or the link; the step then stalls
// (EngineResult::stalled). A link the graph's flows never cross is ignored.
struct EngineChange {
  Seconds t;                 // from the start of the step, >= 0
  std::optional<int> rank;   // a simulated rank of the graph
  std::optional<int> link;   // a topology link id
  double factor = 1.0;       // fraction of full speed or capacity, >= 0
};

struct EngineOptions {
  double compute_slowdown = 0.0;
  double comm_slowdown = 0.0;
  std::vector<EngineChange> changes;  // in any order
};

// When a task ran, from the start of the step. Both are set for every task unless a fault
// stopped a rank or a link (EngineResult::stalled): a task it held back never started (no
// start, no end), one it caught running never finished (start only).
struct TaskTiming {
  std::optional<Seconds> start;
  std::optional<Seconds> end;  // set only after start, and then >= *start
  // end - start; only for a finished task.
  Seconds duration() const { return *end - *start; }
};

struct EngineResult {
  std::vector<TaskTiming> timing;  // per task
  Seconds end;                     // when the last task finished
  std::size_t events = 0;
  // A fault stopped a rank or a link: tasks that never finished have no end (TaskTiming),
  // and `end` is when the last event happened.
  bool stalled = false;
  // The compute tasks a fault's speed factor slowed, in task order: the time a factor
  // between 0 and 1 added (the GPU computing slowly), the time a factor of 0 stopped it (a
  // failed node inside a fault window), and the rest of the duration the task at full speed
  // (its computing and the communication it waits for). The breakdown charges the added time
  // to what the GPU was computing and the stopped time to idle (TimelineReader).
  struct FaultStretch {
    std::size_t task = 0;
    Seconds added, stopped;
  };
  std::vector<FaultStretch> fault_stretch;
};

// `link_capacity`: per topology link id, the links the graph's flows cross.
EngineResult run_engine(const TaskGraph& graph, const std::vector<Bandwidth>& link_capacity,
                        const EngineOptions& options);

}  // namespace orrery
