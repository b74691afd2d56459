// Reading a simulated timeline back: where one GPU's compute stream spent the step.
#pragma once

#include <vector>

#include "simulator/engine.h"
#include "simulator/step.h"
#include "simulator/task_graph.h"

namespace orrery {

class TimelineReader {
 public:
  TimelineReader(const TaskGraph& graph, const EngineResult& timeline);
  // Busy time by kind, and each idle gap charged to the dependency the compute waited for:
  // a transfer is exposed PP communication up to its length and bubble beyond; a gradient
  // reduction or parameter gather is exposed DP communication; a collective of a layer is
  // exposed TP or EP communication; anything else is bubble. The parts sum to `step`.
  Breakdown breakdown(int rank, Seconds step) const;
  // The same for each of `ranks` (distinct), in one pass over the graph's tasks.
  std::vector<Breakdown> breakdowns(const std::vector<int>& ranks, Seconds step) const;

 private:
  const TaskGraph& g_;
  const EngineResult& r_;
  std::vector<int> pred_start_, preds_;  // predecessors in compressed rows
};

}  // namespace orrery
