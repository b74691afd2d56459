#include "report/trace.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <set>
#include <utility>
#include <vector>

#include "simulator/topology.h"

namespace orrery {
namespace {

using ordered_json = nlohmann::ordered_json;

double us(Seconds t) { return t.value() * 1e6; }

// The most GPUs a slice lists of its group; larger groups list their first this many.
constexpr std::size_t kListedGpus = 16;

// The parallelism a communication task belongs to, as its slice names it.
const char* parallelism_of(TaskKind k) {
  switch (k) {
    case TaskKind::tp_comm:
      return "tp";
    case TaskKind::ep_comm:
      return "ep";
    case TaskKind::cp_comm:
      return "cp";
    case TaskKind::pp_comm:
      return "pp";
    case TaskKind::dp_comm:
      return "dp";
    case TaskKind::param_gather:
      return "dp (parameter gather)";
    default:
      return "";
  }
}

// The links a collective's flows cross, in id order.
std::vector<int> links_of(const PlannedComm& c) {
  std::set<int> links;
  for (const PlannedPhase& ph : c.phases)
    for (const PlannedFlow& f : ph.flows)
      for (const FlowLink& l : f.links) links.insert(l.link);
  return {links.begin(), links.end()};
}

// One counter sample: the utilisation of every link class from `t` on.
struct Sample {
  double t_us;
  std::map<LinkClass, double> percent;
};

// Link utilisation per class over time: each collective's bytes per class (every group
// that runs it counted, PlannedComm::traffic) spread evenly over its slice, summed, over
// the class's capacity in one direction summed over the cluster (a transfer counts once
// per class it crosses, as in StepResult::bytes_by_link_class).
std::vector<Sample> utilisation(const Scenario& s, const StepResult& r) {
  const TaskGraph& g = r.graph;
  const Topology topo(s.cluster);
  std::map<LinkClass, double> capacity;
  for (int l = 0; l < topo.link_count(); ++l) {
    const LinkInfo& info = topo.link(l);
    if (info.up) capacity[info.cls] += info.capacity.value();
  }
  // Rate changes (time in us, class, bytes/s), in time order; a stable sort keeps the
  // sums in task order, so the same step gives the same values.
  struct Change {
    double t;
    LinkClass cls;
    double rate;
  };
  std::vector<Change> change{{0.0, LinkClass::nvlink, 0.0}};
  for (size_t i = 0; i < g.tasks.size(); ++i) {
    const Task& t = g.tasks[i];
    const TaskTiming& tm = r.timeline.timing[i];
    if (!t.comm || !tm.end) continue;
    const double d = tm.duration().value();
    if (d <= 0) continue;
    for (const auto& [cls, bytes] : g.comms[static_cast<size_t>(*t.comm)].traffic) {
      change.push_back({us(*tm.start), cls, bytes / d});
      change.push_back({us(*tm.end), cls, -bytes / d});
    }
  }
  std::stable_sort(change.begin(), change.end(),
                   [](const Change& a, const Change& b) { return a.t < b.t; });
  // A sample per change time, holding the classes whose value changed (all at time 0).
  std::vector<Sample> out;
  std::map<LinkClass, double> rate, shown;
  for (size_t i = 0; i < change.size();) {
    const double t = change[i].t;
    for (; i < change.size() && change[i].t == t; ++i) rate[change[i].cls] += change[i].rate;
    Sample sample{t, {}};
    for (const auto& [cls, cap] : capacity) {
      // Sums of opposite terms leave rounding residue; below a millionth of a percent is 0.
      double p = cap > 0 ? 100.0 * rate[cls] / cap : 0.0;
      if (std::abs(p) < 1e-6) p = 0.0;
      const auto it = shown.find(cls);
      if (it != shown.end() && it->second == p) continue;
      shown[cls] = p;
      sample.percent[cls] = p;
    }
    if (!sample.percent.empty()) out.push_back(std::move(sample));
  }
  return out;
}

// The trace of `r`, next to the step time the prediction printed; `blended`: that step
// blends in a second run with a slow node (cluster.slow_nodes), which `r` does not show.
Trace render(const Scenario& s, const StepResult& r, bool op_level, const TraceOptions& options,
             Seconds predicted, bool blended) {
  const TaskGraph& g = r.graph;
  Trace out;
  out.op_level = op_level;
  ordered_json events = ordered_json::array();
  const int link_pid = g.ranks;  // processes 0..ranks-1 are the simulated GPUs
  for (int rank = 0; rank < g.ranks; ++rank) {
    const size_t k = static_cast<size_t>(rank);
    const int stage = k < r.stage_of_rank.size() ? r.stage_of_rank[k] : rank;
    const int gpu = k < r.gpu_of_rank.size() ? r.gpu_of_rank[k] : rank;
    events.push_back({{"ph", "M"},
                      {"name", "process_name"},
                      {"pid", rank},
                      {"args", {{"name", fmt::format("GPU {} (stage {})", gpu, stage)}}}});
    events.push_back({{"ph", "M"},
                      {"name", "process_sort_index"},
                      {"pid", rank},
                      {"args", {{"sort_index", rank}}}});
    for (int st = 0; st < kStreamsPerRank; ++st) {
      events.push_back({{"ph", "M"},
                        {"name", "thread_name"},
                        {"pid", rank},
                        {"tid", st},
                        {"args", {{"name", to_string(static_cast<StreamKind>(st))}}}});
    }
  }
  events.push_back(
      {{"ph", "M"}, {"name", "process_name"}, {"pid", link_pid}, {"args", {{"name", "links"}}}});

  // Slices in order of start (ties by task), so that a trace the cap cuts short holds the
  // whole step up to the cut.
  std::vector<size_t> order;
  for (size_t i = 0; i < g.tasks.size(); ++i)
    if (r.timeline.timing[i].end) order.push_back(i);  // unfinished: a fault stalled the step
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return r.timeline.timing[a].start->value() < r.timeline.timing[b].start->value();
  });
  const std::vector<Sample> samples = utilisation(s, r);
  std::vector<std::vector<int>> comm_links(g.comms.size());
  for (size_t c = 0; c < g.comms.size(); ++c) comm_links[c] = links_of(g.comms[c]);

  // The events the whole step needs: per task its slice and one per link it crosses, a
  // name for each link, a sample per class per counter change.
  std::size_t total = events.size();
  for (const Sample& sm : samples) total += sm.percent.size();
  std::set<int> all_links;
  for (size_t i : order) {
    ++total;
    if (const auto& c = g.tasks[i].comm) {
      total += comm_links[static_cast<size_t>(*c)].size();
      all_links.insert(comm_links[static_cast<size_t>(*c)].begin(),
                       comm_links[static_cast<size_t>(*c)].end());
    }
  }
  total += all_links.size();

  std::set<int> named;
  size_t next_sample = 0;
  auto emit_samples_until = [&](double t_us) {
    for (; next_sample < samples.size() && samples[next_sample].t_us <= t_us; ++next_sample) {
      const Sample& sm = samples[next_sample];
      if (events.size() + sm.percent.size() > options.max_events) return false;
      for (const auto& [cls, p] : sm.percent) {
        events.push_back({{"ph", "C"},
                          {"name", fmt::format("{} utilisation (%)", to_string(cls))},
                          {"pid", link_pid},
                          {"ts", sm.t_us},
                          {"args", {{"utilisation", p}}}});
      }
    }
    return true;
  };
  std::optional<double> cut;
  for (size_t i : order) {
    const Task& t = g.tasks[i];
    const TaskTiming& tm = r.timeline.timing[i];
    const std::vector<int> none;
    const std::vector<int>& links = t.comm ? comm_links[static_cast<size_t>(*t.comm)] : none;
    std::size_t needed = 1 + links.size();
    for (int l : links) needed += named.count(l) ? 0 : 1;
    if (!emit_samples_until(us(*tm.start)) || events.size() + needed > options.max_events) {
      cut = us(*tm.start);
      break;
    }
    ordered_json args = {{"task", i}};
    std::string name;
    if (t.comm) {
      const PlannedComm& c = g.comms[static_cast<size_t>(*t.comm)];
      name = fmt::format("{} {}", parallelism_of(t.kind), to_string(c.op));
      args["parallelism"] = parallelism_of(t.kind);
      args["collective"] = to_string(c.op);
      args["algorithm"] = c.algorithm;
      args["bytes"] = c.bytes.value();
      args["group_size"] = c.gpus.size();
      // A group of thousands (FSDP over dp x cp) would make every slice kilobytes long.
      if (c.gpus.size() <= kListedGpus) {
        args["group_gpus"] = c.gpus;
      } else {
        args["group_first_gpus"] =
            std::vector<int>(c.gpus.begin(), c.gpus.begin() + static_cast<long>(kListedGpus));
      }
      args["description"] = c.description;
    } else {
      name = to_string(t.kind);
      args["work_us"] = us(t.work);
      // A block's exposed collectives, timed inside its layers' templates.
      if (!op_level) {
        if (t.tp.value() > 0) args["exposed_tp_us"] = us(t.tp);
        if (t.ep.value() > 0) args["exposed_ep_us"] = us(t.ep);
        if (t.cp.value() > 0) args["exposed_cp_us"] = us(t.cp);
        if (t.recompute.value() > 0) args["recompute_us"] = us(t.recompute);
      }
    }
    if (t.microbatch) {
      name += fmt::format(" mb{}", *t.microbatch);
      args["microbatch"] = *t.microbatch;
    }
    events.push_back({{"ph", "X"},
                      {"name", name},
                      {"pid", t.rank},
                      {"tid", static_cast<int>(t.stream)},
                      {"ts", us(*tm.start)},
                      {"dur", us(tm.duration())},
                      {"args", args}});
    for (int l : links) {
      if (named.insert(l).second) {
        const LinkInfo& info = r.links.at(l);
        const char* who = info.cls == LinkClass::nvlink ? "GPU"
                          : info.cls == LinkClass::nic  ? "NIC"
                                                        : "leaf";
        events.push_back({{"ph", "M"},
                          {"name", "thread_name"},
                          {"pid", link_pid},
                          {"tid", l},
                          {"args",
                           {{"name", fmt::format("{} {} {} {}", to_string(info.cls),
                                                 info.up ? "up" : "down", who, info.owner)}}}});
      }
      events.push_back({{"ph", "X"},
                        {"name", name},
                        {"pid", link_pid},
                        {"tid", l},
                        {"ts", us(*tm.start)},
                        {"dur", us(tm.duration())}});
    }
  }
  if (!cut && !emit_samples_until(us(r.step_time))) cut = samples[next_sample].t_us;
  // With slow nodes the step time blends a second run the timeline does not show: the
  // trace's step is its own timeline's end (docs/simulator.md, "Slow nodes").
  ordered_json other = {{"compute", op_level ? "per op" : "per block"},
                        {"step_time_us", us(r.slow_nodes ? r.timeline.end : r.step_time)},
                        {"predicted_step_time_us", us(predicted)}};
  if (blended) {
    other["slow_nodes"] =
        "the timeline is the step with no slow node; predicted_step_time_us blends in the step "
        "with one (cluster.slow_nodes)";
  }
  if (cut) {
    out.note = fmt::format(
        "the trace stops at {:.3f} ms of the {:.3f} ms step: the step needs {} trace events, "
        "more than the cap of {}",
        *cut / 1e3, r.step_time.value() * 1e3, total, options.max_events);
    other["truncated"] = *out.note;
  }
  out.events = events.size();
  ordered_json j = {{"traceEvents", std::move(events)},
                    {"displayTimeUnit", "ms"},
                    {"otherData", std::move(other)}};
  out.json = j.dump() + "\n";
  return out;
}

}  // namespace

Trace render_trace(const Scenario& s, const Prediction& prediction, bool full,
                   const TraceOptions& options) {
  const Seconds predicted = prediction.step.step_time;
  // Op-level mode would issue every tensor-parallel rank's copy of a collective whose
  // plan already holds its sibling groups' flows under --full, so --full keeps blocks.
  const bool blended = prediction.step.slow_nodes.has_value();
  if (full || !op_level_supported(s))
    return render(s, prediction.step, false, options, predicted, blended);
  SimulationOptions opt;
  opt.op_level = true;
  // The op-level timeline without the slow-node term's second run, which it would not show.
  Scenario none = s;
  none.cluster.slow_nodes.fraction = 0;
  return render(s, simulate_step(none, prediction.hardware, opt), true, options, predicted,
                blended);
}

Trace render_trace(const Scenario& s, const StepResult& r, bool op_level,
                   const TraceOptions& options) {
  return render(s, r, op_level, options, r.step_time, r.slow_nodes.has_value());
}

}  // namespace orrery
