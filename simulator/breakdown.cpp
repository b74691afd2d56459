#include "simulator/breakdown.h"

#include <algorithm>

#include "core/error.h"

namespace orrery {

TimelineReader::TimelineReader(const TaskGraph& graph, const EngineResult& timeline)
    : g_(graph), r_(timeline), pred_start_(graph.tasks.size() + 1, 0), preds_(graph.edges.size()) {
  for (const auto& [a, c] : graph.edges) ++pred_start_[c + 1];
  for (size_t i = 0; i < graph.tasks.size(); ++i) pred_start_[i + 1] += pred_start_[i];
  std::vector<int> fill(pred_start_.begin(), pred_start_.end() - 1);
  for (const auto& [a, c] : graph.edges) preds_[fill[c]++] = a;
}

Breakdown TimelineReader::breakdown(int rank, Seconds step) const {
  return breakdowns({rank}, step).front();
}

std::vector<Breakdown> TimelineReader::breakdowns(const std::vector<int>& ranks,
                                                  Seconds step) const {
  const TaskGraph& g = g_;
  const EngineResult& r = r_;
  ORRERY_CHECK(!r.stalled, "a stalled timeline has no breakdown");
  // Each rank's running state; tasks are visited in graph order, as one rank's alone would
  // be, so every sum is taken in the same order as for that rank by itself.
  struct Reading {
    Breakdown b;
    double prev_end = 0, comm_end = 0;
  };
  std::vector<Reading> reading(ranks.size());
  std::vector<int> slot(static_cast<size_t>(g.ranks), -1);
  for (size_t k = 0; k < ranks.size(); ++k) {
    int& s = slot[static_cast<size_t>(ranks[k])];
    ORRERY_CHECK(s < 0, "breakdowns of distinct ranks");
    s = static_cast<int>(k);
  }
  size_t stretched = 0;  // cursor into r.fault_stretch, in task order
  for (size_t i = 0; i < g.tasks.size(); ++i) {
    const Task& t = g.tasks[i];
    const int at = slot[static_cast<size_t>(t.rank)];
    if (at < 0) continue;
    Reading& rd = reading[static_cast<size_t>(at)];
    // What a tail after the last kernel waits for: gradient reductions, parameter gathers.
    if (t.kind == TaskKind::dp_comm || t.kind == TaskKind::param_gather)
      rd.comm_end = std::max(rd.comm_end, r.timing[i].end->value());
    if (t.stream != StreamKind::compute) continue;
    Breakdown& b = rd.b;
    // Every task finished: a stalled step has no breakdown (step.cpp).
    const double start = r.timing[i].start->value(), end = r.timing[i].end->value();
    const double gap = start - rd.prev_end;
    if (gap > 0) {
      MaybeTask blocker;  // the predecessor that finished last
      for (int k = pred_start_[i]; k < pred_start_[i + 1]; ++k) {
        const int pd = preds_[k];
        if (!blocker || *r.timing[pd].end > *r.timing[*blocker].end) blocker = pd;
      }
      const TaskKind k = blocker ? g.tasks[*blocker].kind : TaskKind::forward;
      if (blocker && k == TaskKind::pp_comm) {
        const double d = r.timing[*blocker].duration().value();
        b.pp_exposed += Seconds(std::min(gap, d));
        b.bubble += Seconds(gap - std::min(gap, d));
      } else if (blocker && (k == TaskKind::dp_comm || k == TaskKind::param_gather)) {
        b.dp_exposed += Seconds(gap);
      } else if (blocker && k == TaskKind::tp_comm) {
        b.tp_exposed += Seconds(gap);
      } else if (blocker && k == TaskKind::cp_comm) {
        b.cp_exposed += Seconds(gap);
      } else if (blocker && k == TaskKind::ep_comm) {
        b.ep_exposed += Seconds(gap);
      } else {
        b.bubble += Seconds(gap);
      }
    }
    double d = end - start;
    // The time a fault's speed factor added (EngineResult::fault_stretch) is what the GPU was
    // computing, the time a factor of 0 stopped it is idle; the rest is the task as at full
    // speed, its folded waits in proportion.
    while (stretched < r.fault_stretch.size() && r.fault_stretch[stretched].task < i) ++stretched;
    const bool hit = stretched < r.fault_stretch.size() && r.fault_stretch[stretched].task == i;
    const double extra = hit ? r.fault_stretch[stretched].added.value() : 0.0;
    const double stopped = hit ? r.fault_stretch[stretched].stopped.value() : 0.0;
    if (stopped > 0) {
      b.bubble += Seconds(stopped);
      d -= stopped;
    }
    const double scale = t.work.value() > 0 ? (d - extra) / t.work.value() : 0;
    if (t.kind == TaskKind::pp_comm) {  // a blocking transfer on the compute stream
      b.pp_exposed += Seconds(d);
    } else if (t.kind == TaskKind::optimizer) {
      b.optimizer += Seconds(d);
    } else {
      const double tp = t.tp.value() * scale, ep = t.ep.value() * scale,
                   cp = t.cp.value() * scale, off = t.offload.value() * scale;
      double rec = (t.kind == TaskKind::recompute ? d : t.recompute.value() * scale) +
                   t.selective.value() * scale;
      if (extra > 0 && t.kind != TaskKind::recompute) {
        // The added time splits as the computing does, recomputation and the rest.
        const double computing = (t.work - t.tp - t.ep - t.cp - t.offload).value();
        if (computing > 0) rec += extra * (t.recompute + t.selective).value() / computing;
      }
      b.tp_exposed += Seconds(tp);
      b.ep_exposed += Seconds(ep);
      b.cp_exposed += Seconds(cp);
      b.offload_exposed += Seconds(off);
      b.recompute += Seconds(std::min(rec, d - tp - ep - cp - off));
      b.compute += Seconds(std::max(0.0, d - tp - ep - cp - off - rec));
    }
    rd.prev_end = end;
  }
  std::vector<Breakdown> out;
  out.reserve(ranks.size());
  for (Reading& rd : reading) {
    // After the last kernel: waiting for gradient reduction / parameter gathers, or others.
    const double tail = step.value() - rd.prev_end;
    if (tail > 0) {
      const double dp = std::clamp(rd.comm_end - rd.prev_end, 0.0, tail);
      rd.b.dp_exposed += Seconds(dp);
      rd.b.bubble += Seconds(tail - dp);
    }
    out.push_back(rd.b);
  }
  return out;
}

}  // namespace orrery
