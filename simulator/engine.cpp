#include "simulator/engine.h"

#include <boost/graph/compressed_sparse_row_graph.hpp>
#include <boost/graph/topological_sort.hpp>

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <iterator>
#include <optional>
#include <queue>

#include "core/error.h"

namespace orrery {

const char* to_string(StreamKind s) {
  switch (s) {
    case StreamKind::compute: return "compute";
    case StreamKind::tp: return "tp";
    case StreamKind::dp: return "dp";
    case StreamKind::pp: return "pp";
    case StreamKind::ep: return "ep";
    case StreamKind::gather: return "gather";
    case StreamKind::cp: return "cp";
  }
  return "?";
}

const char* to_string(TaskKind k) {
  switch (k) {
    case TaskKind::forward: return "forward";
    case TaskKind::backward: return "backward";
    case TaskKind::recompute: return "recompute";
    case TaskKind::optimizer: return "optimizer";
    case TaskKind::tp_comm: return "tp_comm";
    case TaskKind::ep_comm: return "ep_comm";
    case TaskKind::cp_comm: return "cp_comm";
    case TaskKind::pp_comm: return "pp_comm";
    case TaskKind::dp_comm: return "dp_comm";
    case TaskKind::param_gather: return "param_gather";
  }
  return "?";
}

namespace {

enum EventClass : int { kFlow = 0, kLatency = 1, kCompute = 2, kChange = 3 };

struct Event {
  double t;
  int cls;
  std::uint64_t seq;
  int task;              // -1 for network events
  std::uint64_t version; // task version, or network version
};

struct Later {
  bool operator()(const Event& a, const Event& b) const {
    if (a.t != b.t) return a.t > b.t;
    if (a.cls != b.cls) return a.cls > b.cls;
    return a.seq > b.seq;
  }
};

// Internally tasks are renumbered so that the ones that run at about the same time sit
// next to each other in memory: by their position in their stream, then by stream (rank
// by rank). A full step on 16,384 GPUs holds millions of tasks whose ranks advance in
// step, numbered rank after rank by the builder; visited in event order, nearly every
// access to a task's state was then a cache and TLB miss. Only memory order changes:
// out-edges keep their order, events their (time, class, sequence) order, so every
// result is the same to the bit.
class Engine {
 public:
  Engine(const TaskGraph& g, const std::vector<Bandwidth>& capacity, const EngineOptions& opt)
      : g_(g), opt_(opt), net_(compact_links(g, capacity)) {
    const int n = static_cast<int>(g.tasks.size());
    renumber();
    std::vector<std::pair<Index, Index>> edges;
    edges.reserve(g.edges.size());
    for (const auto& [a, b] : g.edges) {
      edges.emplace_back(static_cast<Index>(internal_[a]), static_cast<Index>(internal_[b]));
      ++state_[internal_[b]].deps;
    }
    csr_ = Csr(boost::edges_are_unsorted_multi_pass, edges.begin(), edges.end(),
               static_cast<Index>(n));
    edges.clear();
    edges.shrink_to_fit();
    internal_.clear();  // only the edges needed it
    internal_.shrink_to_fit();
    // A cycle is a bug in the step builder, not bad input.
    std::vector<Csr::vertex_descriptor> order;
    try {
      boost::topological_sort(csr_, std::back_inserter(order));
    } catch (const boost::not_a_dag&) {
      ORRERY_CHECK(false, "the task graph has a cycle");
    }
    running_compute_.assign(g.ranks, std::nullopt);
    comm_active_.assign(g.ranks, 0);
    factor_.assign(g.ranks, 1.0);
    base_capacity_ = local_capacity_;
    for (size_t i = 0; i < opt_.changes.size(); ++i) {
      const EngineChange& c = opt_.changes[i];
      ORRERY_CHECK(c.factor >= 0 && c.t.value() >= 0,
                   "fault changes have a time and a factor >= 0");
      ORRERY_CHECK(!c.rank || *c.rank < g.ranks, "a fault on a simulated rank");
      if (c.t.value() <= 0) {
        apply(i);
      } else {
        queue_.push({c.t.value(), kChange, seq_++, -2, static_cast<std::uint64_t>(i)});
      }
    }
  }

  EngineResult run() {
    for (size_t s = 0; s < streams_.size(); ++s) try_start(static_cast<int>(s));
    flush_network();
    std::size_t events = 0;
    while (!queue_.empty()) {
      const Event ev = queue_.top();
      queue_.pop();
      if (ev.cls != kChange &&
          (ev.task < 0 ? ev.version != net_.version() : ev.version != state_[ev.task].version))
        continue;
      ++events;
      now_ = ev.t;
      net_.advance(now_);
      switch (ev.cls) {
        case kFlow: on_flows(); break;
        case kLatency: start_flows(ev.task); break;
        case kCompute: finish(ev.task); break;
        case kChange: apply(static_cast<size_t>(ev.version)); break;
      }
      if (queue_.empty() || queue_.top().t > now_) flush_network();
    }
    // What only the run needed goes before the result's per-task timing is made, which
    // would otherwise be the step's peak memory on top of it (a sweep simulates long
    // pipelines on several threads at once: docs/simulator.md, "Memory").
    std::vector<Info>().swap(info_);
    std::vector<CommState>().swap(comm_);
    std::vector<Stream>().swap(streams_);
    csr_ = Csr();
    EngineResult r;
    r.timing.resize(state_.size());
    double last_end = 0;
    for (size_t t = 0; t < state_.size(); ++t) {
      const State& st = state_[t];
      TaskTiming& timing = r.timing[static_cast<size_t>(original_[t])];
      if (st.started) timing.start = Seconds(st.start);
      if (!st.ended) {
        r.stalled = true;
        continue;
      }
      timing.end = Seconds(st.end);
      last_end = std::max(last_end, st.end);
    }
    // Only a fault may stop the step; otherwise an unfinished task is a builder bug.
    bool can_stall = false;
    for (const EngineChange& c : opt_.changes) can_stall = can_stall || c.factor == 0;
    for (size_t t = 0; t < r.timing.size() && !can_stall; ++t) {
      ORRERY_CHECK(r.timing[t].end.has_value(),
                   fmt::format("deadlock: task {} ({} on rank {}) never ran", t,
                               to_string(g_.tasks[t].kind), g_.tasks[t].rank));
    }
    std::sort(stretched_.begin(), stretched_.end(),
              [](const auto& a, const auto& b) { return a.task < b.task; });
    r.fault_stretch = std::move(stretched_);
    // Fault changes after the last task do not lengthen the step.
    r.end = Seconds(r.stalled ? now_ : last_end);
    r.events = events;
    return r;
  }

 private:
  // Vertex and edge indices of the dependency graph: 32 bits hold any graph that fits in
  // memory here, at half the size of std::size_t.
  using Index = std::uint32_t;
  using Csr =
      boost::compressed_sparse_row_graph<boost::directedS, boost::no_property, boost::no_property,
                                         boost::no_property, Index, Index>;

  struct Stream {
    std::vector<int> order;  // internal task ids
    size_t head = 0;
    bool busy = false;
  };
  // What the engine reads of a task (internal id), copied from the graph.
  struct Info {
    double work = 0;  // seconds at full speed
    // The share of work that is the GPU computing, not waiting for communication folded into
    // the task (Task::tp, ep, cp, offload): a fault's speed factor slows only this share.
    double compute_share = 1;
    int rank = 0;
    int comm = -1;   // index into the graph's comms; -1 for compute
    int stream = 0;  // index into streams_
    int slot = -1;   // communication tasks: index into comm_; -1 for compute
  };
  // A task's state as the run goes (internal id), half a cache line.
  struct State {
    double start = 0, end = 0;
    std::uint64_t version = 0;
    int deps = 0;
    bool started = false, ended = false;
  };
  // The compute task a rank runs now (at most one: its compute stream is in order).
  struct Running {
    double remaining = 0, rate = 1, last = 0;
    // The fault's part of `rate` (fault_rate), and the time faults have added to the task so
    // far: a stretch of dt at fault part a > 0 does in dt what a dt takes at full speed; at
    // a = 0 (a stopped GPU) the whole dt is stopped time.
    double fault = 1, stretch = 0, stopped = 0;
    void advance(double now) {
      if (fault > 0) {
        stretch += (now - last) * (1.0 - fault);
      } else {
        stopped += now - last;
      }
      last = now;
    }
  };
  // A communication task's progress, by slot (in the graph's task order).
  struct CommState {
    int task = 0;  // internal id
    int phase = 0, flows_left = 0;
    std::vector<int> flows;  // its flows now running
  };

  // Internal ids: tasks by their position in their stream, then by stream index.
  void renumber() {
    const size_t n = g_.tasks.size();
    streams_.resize(static_cast<size_t>(g_.ranks) * kStreamsPerRank);
    std::vector<int> position(n);
    std::vector<int> stream_of(n);
    std::vector<int> slot_of(n, -1);
    comm_.reserve(static_cast<size_t>(
        std::count_if(g_.tasks.begin(), g_.tasks.end(), [](const Task& k) { return is_comm(k.kind); })));
    size_t longest = 0;
    for (size_t t = 0; t < n; ++t) {
      const Task& k = g_.tasks[t];
      if (is_comm(k.kind)) {
        slot_of[t] = static_cast<int>(comm_.size());
        comm_.emplace_back();
      }
      const int s = k.rank * kStreamsPerRank + static_cast<int>(k.stream);
      stream_of[t] = s;
      std::vector<int>& order = streams_[static_cast<size_t>(s)].order;
      position[t] = static_cast<int>(order.size());
      order.push_back(static_cast<int>(t));  // original ids for now
      longest = std::max(longest, order.size());
    }
    // Counting sort by position; within a position, streams in index order.
    std::vector<int> start(longest + 1, 0);
    for (size_t t = 0; t < n; ++t) ++start[static_cast<size_t>(position[t]) + 1];
    for (size_t k = 1; k <= longest; ++k) start[k] += start[k - 1];
    original_.assign(n, 0);
    internal_.assign(n, 0);
    for (Stream& st : streams_) {
      for (size_t k = 0; k < st.order.size(); ++k) {
        const int t = st.order[k];
        const int id = start[k]++;
        original_[static_cast<size_t>(id)] = t;
        internal_[static_cast<size_t>(t)] = id;
        st.order[k] = id;
      }
    }
    info_.resize(n);
    for (size_t id = 0; id < n; ++id) {
      const size_t t = static_cast<size_t>(original_[id]);
      const Task& k = g_.tasks[t];
      Info& in = info_[id];
      in.work = k.work.value();
      const double waits = (k.tp + k.ep + k.cp + k.offload).value();
      if (in.work > 0 && waits > 0) in.compute_share = std::max(0.0, in.work - waits) / in.work;
      in.rank = k.rank;
      in.comm = k.comm ? *k.comm : -1;
      in.stream = stream_of[t];
      in.slot = slot_of[t];
      if (in.slot >= 0) comm_[static_cast<size_t>(in.slot)].task = static_cast<int>(id);
    }
    running_.assign(static_cast<size_t>(g_.ranks), Running{});
    state_.assign(n, State{});
  }

  void push(double t, int cls, int task, std::uint64_t version) {
    queue_.push({std::max(t, now_), cls, seq_++, task, version});
  }

  // Flows started or ended: the next flow completion is computed once all events of the
  // current instant are done (many symmetric flows start together; one recomputation).
  void schedule_network() { network_changed_ = true; }

  void flush_network() {
    if (!network_changed_) return;
    network_changed_ = false;
    const double t = net_.next_completion();
    if (std::isfinite(t)) push(t, kFlow, -1, net_.version());
  }

  void try_start(int s) {
    Stream& st = streams_[s];
    if (st.busy || st.head >= st.order.size()) return;
    const int t = st.order[st.head];
    if (state_[t].deps > 0) return;
    st.busy = true;
    start(t);
  }

  // Task t's speed on its rank under faults: a factor f stretches its computing share c to
  // c / f and leaves the communication it waits for as long as it was, so the work goes at
  // 1 / (c / f + 1 - c); a stopped rank (f = 0) does not go at all.
  double fault_rate(int rank, int t) const {
    const double f = factor_[rank];
    const double c = info_[static_cast<size_t>(t)].compute_share;
    return f == 1.0 || c == 1.0 ? f : f == 0.0 ? 0.0 : 1.0 / (c / f + (1.0 - c));
  }

  double interference(int rank) const {
    return comm_active_[rank] > 0 ? 1.0 - opt_.compute_slowdown : 1.0;
  }

  // A fault's change takes effect now: a rank's compute speed or a link's capacity.
  void apply(size_t i) {
    const EngineChange& c = opt_.changes[i];
    if (c.rank) {
      factor_[*c.rank] = c.factor;
      update_compute_rate(*c.rank);
    }
    if (const std::optional<int> local = change_link_[i]) {
      net_.set_capacity(*local, base_capacity_[*local] * c.factor);
      schedule_network();
    }
  }

  double flow_scale(int rank) const {
    return running_compute_[rank] ? 1.0 - opt_.comm_slowdown : 1.0;
  }

  void start(int t) {
    const Info& k = info_[t];
    State& st = state_[t];
    st.start = now_;
    st.started = true;
    if (k.slot < 0) {
      running_compute_[k.rank] = t;
      Running& run = running_[static_cast<size_t>(k.rank)];
      run.remaining = k.work;
      run.fault = fault_rate(k.rank, t);
      run.rate = run.fault * interference(k.rank);
      run.last = now_;
      run.stretch = 0;
      run.stopped = 0;
      ++st.version;
      if (run.rate > 0) push(now_ + run.remaining / run.rate, kCompute, t, st.version);
      if (opt_.comm_slowdown > 0) rescale_flows(k.rank);
      return;
    }
    if (comm_active_[k.rank]++ == 0) update_compute_rate(k.rank);
    comm_[static_cast<size_t>(k.slot)].phase = 0;
    start_phase(t);
  }

  void start_phase(int t) {
    const PlannedComm& c = g_.comms[static_cast<size_t>(info_[t].comm)];
    const CommState& cs = comm_[static_cast<size_t>(info_[t].slot)];
    if (cs.phase >= static_cast<int>(c.phases.size())) {
      finish(t);
      return;
    }
    const PlannedPhase& ph = c.phases[cs.phase];
    if (ph.latency.value() > 0) {
      push(now_ + ph.latency.value(), kLatency, t, ++state_[t].version);
    } else {
      start_flows(t);
    }
  }

  void start_flows(int t) {
    const Info& k = info_[t];
    CommState& cs = comm_[static_cast<size_t>(k.slot)];
    const PlannedPhase& ph = g_.comms[static_cast<size_t>(k.comm)].phases[cs.phase];
    const std::vector<std::vector<FlowLink>>& local = local_links_[k.comm][cs.phase];
    cs.flows.clear();
    int started = 0;
    for (size_t i = 0; i < ph.flows.size(); ++i) {
      if (ph.flows[i].bytes.value() <= 0) continue;
      cs.flows.push_back(
          net_.start(local[i], ph.flows[i].bytes.value(), t, ph.rate_scale * flow_scale(k.rank)));
      ++started;
    }
    cs.flows_left = started;
    if (started == 0) {
      ++cs.phase;
      start_phase(t);
      return;
    }
    schedule_network();
  }

  void on_flows() {
    finished_.clear();
    net_.collect_finished(finished_);
    for (int t : finished_) {
      CommState& cs = comm_[static_cast<size_t>(info_[t].slot)];
      if (--cs.flows_left == 0) {
        cs.flows.clear();
        ++cs.phase;
        start_phase(t);
      }
    }
    schedule_network();
  }

  void update_compute_rate(int rank) {
    if (!running_compute_[rank]) return;
    const int t = *running_compute_[rank];
    State& st = state_[t];
    Running& run = running_[static_cast<size_t>(rank)];
    run.remaining -= (now_ - run.last) * run.rate;
    run.remaining = std::max(0.0, run.remaining);
    run.advance(now_);
    run.fault = fault_rate(rank, t);
    run.rate = run.fault * interference(rank);
    ++st.version;
    if (run.rate > 0) push(now_ + run.remaining / run.rate, kCompute, t, st.version);
  }

  void rescale_flows(int rank) {
    bool changed = false;
    // In the graph's task order (slots are numbered in it).
    for (const CommState& cs : comm_) {
      const Info& k = info_[static_cast<size_t>(cs.task)];
      if (cs.flows.empty() || k.rank != rank) continue;
      const PlannedPhase& ph = g_.comms[static_cast<size_t>(k.comm)].phases[cs.phase];
      for (int f : cs.flows) net_.set_scale(f, ph.rate_scale * flow_scale(rank));
      changed = true;
    }
    if (changed) schedule_network();
  }

  void finish(int t) {
    const Info& k = info_[t];
    State& st = state_[t];
    st.end = now_;
    st.ended = true;
    ++st.version;  // drop any stale event of this task
    if (k.slot < 0) {
      running_compute_[k.rank].reset();
      Running& run = running_[static_cast<size_t>(k.rank)];
      run.advance(now_);
      if (run.stretch > 0 || run.stopped > 0) {
        stretched_.push_back({static_cast<std::size_t>(original_[static_cast<size_t>(t)]),
                              Seconds(run.stretch), Seconds(run.stopped)});
      }
      if (opt_.comm_slowdown > 0) rescale_flows(k.rank);
    } else if (--comm_active_[k.rank] == 0) {
      update_compute_rate(k.rank);
    }
    const int s = k.stream;
    streams_[s].busy = false;
    ++streams_[s].head;
    auto [begin, end] = boost::out_edges(static_cast<Csr::vertex_descriptor>(t), csr_);
    for (auto e = begin; e != end; ++e) {
      const int next = static_cast<int>(boost::target(*e, csr_));
      if (--state_[next].deps == 0) try_start(info_[next].stream);
    }
    try_start(s);
  }

  // The flow network only holds the links this graph's collectives cross, renumbered
  // densely, so a small graph on a large cluster stays small.
  std::vector<double> compact_links(const TaskGraph& g, const std::vector<Bandwidth>& capacity) {
    std::vector<int>& local_of = link_index();
    if (local_of.size() < capacity.size()) local_of.resize(capacity.size(), kNotCrossed);
    // However this ends, the entries written go back to unset.
    struct Reset {
      std::vector<int>& index;
      const std::vector<int>& written;
      ~Reset() {
        for (int link : written) index[static_cast<size_t>(link)] = kNotCrossed;
      }
    } reset{local_of, global_of_};
    std::vector<double> local_capacity;
    local_links_.resize(g.comms.size());
    for (size_t c = 0; c < g.comms.size(); ++c) {
      for (const PlannedPhase& ph : g.comms[c].phases) {
        std::vector<std::vector<FlowLink>> flows;
        for (const PlannedFlow& f : ph.flows) {
          std::vector<FlowLink> links = f.links;
          for (FlowLink& l : links) {
            ORRERY_CHECK(l.link >= 0 && static_cast<size_t>(l.link) < capacity.size(),
                         "flow on a link of the topology");
            if (local_of[l.link] == kNotCrossed) {
              local_of[l.link] = static_cast<int>(global_of_.size());
              global_of_.push_back(l.link);
              local_capacity.push_back(capacity[l.link].value());
            }
            l.link = local_of[l.link];
          }
          flows.push_back(std::move(links));
        }
        local_links_[c].push_back(std::move(flows));
      }
    }
    // Each fault change's link in the flow network (none when this graph does not cross it).
    for (const EngineChange& c : opt_.changes) {
      const bool crossed = c.link && *c.link >= 0 &&
                           static_cast<size_t>(*c.link) < local_of.size() &&
                           local_of[*c.link] != kNotCrossed;
      change_link_.push_back(crossed ? std::optional<int>(local_of[*c.link]) : std::nullopt);
    }
    local_capacity_ = local_capacity;
    return local_capacity;
  }

  const TaskGraph& g_;
  EngineOptions opt_;
  std::vector<int> global_of_;  // local link id -> topology link id
  // Topology link id -> local id, or kNotCrossed: a dense int array over every link of
  // the largest cluster this thread simulated, kept all-unset between runs (each run
  // resets the entries it wrote), so that a run, a layer template's too, allocates and
  // clears nothing of the cluster's size: on 16,384 GPUs that was 256 KiB mapped afresh
  // and its pages faulted in per run, more or less often with the allocator's state. An
  // optional<int> would double it.
  static constexpr int kNotCrossed = -1;
  static std::vector<int>& link_index() {
    thread_local std::vector<int> index;
    return index;
  }
  std::vector<std::optional<int>> change_link_;  // per fault change: its local link
  std::vector<double> local_capacity_, base_capacity_;
  std::vector<double> factor_;  // per rank: compute speed under faults
  std::vector<std::vector<std::vector<std::vector<FlowLink>>>> local_links_;  // comm, phase, flow
  FlowNetwork net_;
  Csr csr_;
  std::priority_queue<Event, std::vector<Event>, Later> queue_;
  std::uint64_t seq_ = 0;
  double now_ = 0;
  std::vector<Stream> streams_;
  std::vector<int> original_, internal_;  // internal id -> graph task, and back (construction)
  std::vector<Info> info_;
  std::vector<State> state_;
  std::vector<Running> running_;            // per rank
  std::vector<CommState> comm_;             // per communication task
  std::vector<MaybeTask> running_compute_;  // per rank, its compute task now running
  std::vector<int> comm_active_;
  std::vector<int> finished_;
  std::vector<EngineResult::FaultStretch> stretched_;  // compute tasks a fault slowed or stopped
  bool network_changed_ = false;
};

}  // namespace

EngineResult run_engine(const TaskGraph& graph, const std::vector<Bandwidth>& link_capacity,
                        const EngineOptions& options) {
  Engine e(graph, link_capacity, options);
  return e.run();
}

}  // namespace orrery
