#include "sweep/sweep.h"

#include <fmt/format.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <limits>
#include <map>
#include <new>
#include <thread>

#include "model/analysis.h"
#include "model/training_run.h"
#include "simulator/predict.h"
#include "sweep/axes.h"
#include "sweep/bound.h"
#include "sweep/output.h"
#include "sweep/space.h"

namespace orrery {
namespace {

// Candidates decided per wave. Fixed (never the thread count) so that the thresholds,
// and with them every output, are the same however the work is spread.
constexpr std::size_t kWave = 16;

constexpr double kInf = std::numeric_limits<double>::infinity();

// Runs fn(i) for i in [0, n) on `threads` threads; fn writes only its own slot.
template <class Fn>
void parallel_for(std::size_t n, int threads, Fn fn) {
  const std::size_t t = std::min<std::size_t>(n, static_cast<std::size_t>(std::max(1, threads)));
  if (t <= 1) {
    for (std::size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  std::atomic<std::size_t> next{0};
  std::vector<std::thread> pool;
  for (std::size_t k = 0; k < t; ++k) {
    pool.emplace_back([&] {
      for (std::size_t i = next++; i < n; i = next++) fn(i);
    });
  }
  for (auto& th : pool) th.join();
}

// The objectives' values for a step time; utilisation 0 gives the lower bound. Ranked by
// the pessimistic end, each is scaled by the band's measured / predicted step time at its
// slow end: step time and time to train are proportional to the step time, and cost too
// (GPU-hours at a price); energy is scaled at the predicted draw, an upper end since the
// draw falls with utilisation.
std::vector<double> objective_values(const SweepSpec& w, const CandidateResult& c,
                                     const Figures& f) {
  const double k = w.rank_by == RankBy::pessimistic && c.band ? c.band->slow() : 1.0;
  std::vector<double> out;
  for (Objective o : w.objectives) {
    switch (o) {
      case Objective::step_time: out.push_back(k * f.step_time.value()); break;
      case Objective::time_to_train:
        out.push_back(f.time_to_train ? k * f.time_to_train->value() : kInf);
        break;
      case Objective::cost: out.push_back(f.cost_usd ? k * *f.cost_usd : kInf); break;
      case Objective::energy: out.push_back(f.energy_kwh ? k * *f.energy_kwh : kInf); break;
      case Objective::tco:
        out.push_back(f.tco_usd ? k * *f.tco_usd : kInf);
        break;
    }
  }
  return out;
}

// The whole-run objectives from a run estimate.
void set_run(Figures& f, const RunEstimate& e) {
  f.time_to_train = e.time;
  if (e.usd) f.cost_usd = *e.usd;
  f.energy_kwh = e.energy_kwh;
  if (e.tco) f.tco_usd = e.tco->run_usd;
  f.peak_power_w = e.peak_power.value();
  if (e.goodput) {
    f.wall_time = e.goodput->wall_time;
    f.goodput = e.goodput->goodput;
    f.expected_failures = e.goodput->interruptions;
  }
}

// The bound's whole run: at the bound's step time with zero utilisation (idle draw).
void add_bound_run(const Scenario& s, Figures& f) {
  if (s.training.target) set_run(f, estimate_run(s, f.step_time, 0.0, std::nullopt));
}

Figures simulate(const Scenario& s) {
  const Prediction p = predict(s);
  const StepResult& r = p.step;
  Figures f;
  f.step_time = r.step_time;
  f.breakdown = r.stages.at(static_cast<std::size_t>(r.critical_stage)).breakdown;
  f.tokens_per_s = r.tokens_per_s;
  f.mfu = r.mfu;
  f.hfu = r.hfu;
  if (p.run) set_run(f, *p.run);
  return f;
}

const std::vector<Residual>& table_of(const SweepOptions& o) {
  return o.residuals ? *o.residuals : shipped_residuals();
}

// The band and the region flags known before simulation (report/band.h).
void assess(const Scenario& s, const std::vector<Residual>& table, CandidateResult& c) {
  c.band = band_for(family_of(s), table);
  c.outside =
      region_flags(s, c.memory->used.value() / c.memory->capacity.value(), std::nullopt, table);
  c.precision = to_string(s.training.precision);
}

// Once simulated: the MFU flag, first as region_flags orders it (none when the GPU
// generation has no case at all: that flag says more).
void add_mfu_flag(const std::vector<Residual>& table, CandidateResult& c) {
  if (!c.band || !c.figures) return;
  for (const RegionFlag& f : c.outside)
    if (f.code == "gpu" || f.code == "mfu") return;
  if (auto f =
          mfu_flag(c.band->family, c.precision, c.figures->mfu, c.figures->hfu, table)) {
    c.outside.insert(c.outside.begin(), *f);
  }
}

std::string reason_of(const InputError& e) {
  return e.key().empty() ? e.why() : e.key() + ": " + e.why();
}

bool over_budget(const SweepSpec& w, const Figures& f) {
  return (w.max_cost_usd && f.cost_usd && *f.cost_usd > *w.max_cost_usd) ||
         (w.max_tco_usd && f.tco_usd && *f.tco_usd > *w.max_tco_usd);
}

bool over_deadline(const SweepSpec& w, const Figures& f) {
  return w.max_time_to_train && f.time_to_train && *f.time_to_train > *w.max_time_to_train;
}

// The constraints on a simulated (or bounded) run: the budgets, then the deadline.
std::optional<Status> run_constraint(const SweepSpec& w, const Figures& f) {
  if (over_budget(w, f)) return Status::over_budget;
  if (over_deadline(w, f)) return Status::over_deadline;
  return std::nullopt;
}

// Phase 1 for one candidate: validation, constraints, memory and bounds. Status `pruned`
// when it is left to the decisions (until simulated).
// `verdict_only`: a candidate that cannot fit may leave the caching allocator's waste out
// of its memory figure (estimate_memory), for the decisions, which use no figure of it;
// only where memory filters (sweep.fits_memory) and nothing keeps the candidate.
CandidateResult screen_one(const SweepInput& in, const Assignment& a, int index,
                           const std::vector<Residual>& table, bool verdict_only = false) {
  const SweepSpec& w = in.spec;
  CandidateResult c;
  c.index = index;
  c.a = a;
  Scenario s;
  try {
    s = candidate_scenario(in, c.a);
  } catch (const InputError& e) {
    c.status = Status::invalid;
    c.reason = reason_of(e);
    return c;
  }
  c.gpus = s.cluster.gpus();
  c.dp = s.parallelism.dp;
  c.gpu_name = s.cluster.gpu.name;
  c.system = s.cluster.preset;
  c.a.global_batch = s.parallelism.global_batch;  // rounded with global_batch_tokens
  if (w.max_gpus && c.gpus > *w.max_gpus) {
    c.status = Status::over_gpus;
    return c;
  }
  if (w.max_nodes && s.cluster.nodes > *w.max_nodes) {
    c.status = Status::over_nodes;
    return c;
  }
  if (w.max_power && peak_facility_power(s) > *w.max_power) {
    c.status = Status::over_power;
    return c;
  }
  StepFigures f;
  try {
    f = analyse_step(s, verdict_only && w.fits_memory);
  } catch (const InputError& e) {
    c.status = Status::invalid;
    c.reason = reason_of(e);
    return c;
  }
  c.memory = MemoryUse{f.memory.worst().memory.total(), f.memory.capacity};
  assess(s, table, c);
  if (w.fits_memory && !f.memory.fits) {
    c.status = Status::out_of_memory;
    return c;
  }
  Figures lb;
  lb.step_time = step_time_bound(s);
  add_bound_run(s, lb);
  c.bound = objective_values(w, c, lb);
  if (auto why = run_constraint(w, lb)) {
    c.status = *why;
    return c;
  }
  c.status = Status::pruned;  // until simulated
  return c;
}

// Candidates screened per chunk: what memory holds of them at once.
constexpr std::size_t kChunk = 2048;

// Screens the candidates with index % shards == shard, chunk by chunk in index order, and
// hands each chunk's results, in index order, to `take`.
template <class Take>
void screen_chunks(const SweepInput& in, const std::vector<Residual>& table, int threads,
                   int shard, int shards, const SweepOptions* progress_of, std::size_t share,
                   bool verdict_only, Take take) {
  detail::CandidateSpace space(in);
  std::vector<Assignment> as;
  std::vector<int> indices;
  std::vector<std::uint16_t> positions;
  std::vector<CandidateResult> out;
  std::size_t done = 0;
  while (space.valid()) {
    as.clear();
    indices.clear();
    positions.clear();
    while (space.valid() && as.size() < kChunk) {
      if (space.index() % shards == shard) {
        as.push_back(space.current());
        indices.push_back(static_cast<int>(space.index()));
        space.position(positions);
      }
      space.next();
    }
    out.assign(as.size(), CandidateResult{});
    parallel_for(as.size(), threads,
                 [&](std::size_t i) {
                   out[i] = screen_one(in, as[i], indices[i], table, verdict_only);
                 });
    take(out, positions, space.levels());
    done += as.size();
    if (progress_of && progress_of->progress) progress_of->progress("screened", done, share);
  }
}

// The k-th smallest of `values` (1-based), or infinity when there are fewer.
double kth(std::vector<double> values, int k) {
  if (values.size() < static_cast<std::size_t>(k)) return kInf;
  std::nth_element(values.begin(), values.begin() + (k - 1), values.end());
  return values[static_cast<std::size_t>(k - 1)];
}

bool dominates(const std::vector<double>& a, const std::vector<double>& b) {
  bool strict = false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i] > b[i]) return false;
    strict = strict || a[i] < b[i];
  }
  return strict;
}

// What the decisions keep of a candidate left to them (status `pruned` after screening):
// its index, bounds, position in the space (to rebuild it) and system, in flat arrays.
struct OpenSet {
  std::size_t objectives = 1, levels = 0;
  std::vector<int> index;
  std::vector<double> bound;               // `objectives` per candidate
  std::vector<std::uint16_t> position;     // `levels` per candidate
  std::vector<int> nodes;
  std::vector<std::uint32_t> group;        // into Groups::keys
  std::size_t size() const { return index.size(); }
  double bound0(std::size_t e) const { return bound[e * objectives]; }
  std::vector<double> bounds(std::size_t e) const {
    return {bound.begin() + static_cast<std::ptrdiff_t>(e * objectives),
            bound.begin() + static_cast<std::ptrdiff_t>((e + 1) * objectives)};
  }
};

// The systems (cluster preset, GPU) in the order of their first valid candidate.
struct Groups {
  std::map<std::pair<std::string, std::string>, std::uint32_t> id;
  std::vector<std::pair<std::string, std::string>> keys;
  std::uint32_t of(const CandidateResult& c) { return of(c.system, c.gpu_name); }
  std::uint32_t of(const std::string& system, const std::string& gpu) {
    auto [it, fresh] =
        id.emplace(std::make_pair(system, gpu), static_cast<std::uint32_t>(keys.size()));
    if (fresh) keys.push_back(it->first);
    return it->second;
  }
};

// The work queue's tasks and replies as bytes (the processes of one job run the same
// build on one kind of machine).
struct Packer {
  std::string out;
  template <class T>
  void put(const T& v) {
    out.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  void put_string(const std::string& t) {
    put(static_cast<std::uint32_t>(t.size()));
    out += t;
  }
};

struct Unpacker {
  const std::string& in;
  std::size_t at = 0;
  template <class T>
  T get() {
    ORRERY_CHECK(at + sizeof(T) <= in.size(), "short work queue message");
    T v;
    std::memcpy(&v, in.data() + at, sizeof v);
    at += sizeof v;
    return v;
  }
  std::string get_string() {
    const auto n = get<std::uint32_t>();
    ORRERY_CHECK(at + n <= in.size(), "short work queue message");
    std::string t = in.substr(at, n);
    at += n;
    return t;
  }
};

// Candidates per screening task of the work queue: small enough that the processes'
// shares even out (a task screens in about 25 ms on one thread at ~10,000 candidates/s,
// docs/simulator.md), large enough that a message per task costs nothing beside it.
constexpr std::int64_t kTask = 256;

// A screening task's reply: the chunk's counts by status, candidate 0's reason when the
// chunk holds it, the systems in the order of their first valid candidate, and what the
// decisions keep of each open candidate (OpenSet's fields; its system as a place in that
// list).
std::string pack_screened(const std::vector<CandidateResult>& chunk,
                          const std::vector<std::uint16_t>& pos, std::size_t levels) {
  std::array<std::uint64_t, 10> counts{};
  bool has_first = false;
  std::string first;
  Groups local;
  Packer open;
  std::uint32_t opened = 0;
  for (std::size_t i = 0; i < chunk.size(); ++i) {
    const CandidateResult& c = chunk[i];
    ++counts[static_cast<std::size_t>(c.status)];
    if (*c.index == 0) {
      has_first = true;
      first = c.reason;
    }
    if (c.status == Status::invalid) continue;
    const std::uint32_t g = local.of(c);
    if (c.status != Status::pruned) continue;
    ++opened;
    open.put(static_cast<std::int32_t>(*c.index));
    for (double b : c.bound) open.put(b);
    for (std::size_t l = 0; l < levels; ++l) open.put(pos[i * levels + l]);
    open.put(static_cast<std::int32_t>(c.a.nodes));
    open.put(g);
  }
  Packer p;
  p.put(counts);
  p.put(static_cast<std::uint8_t>(has_first));
  p.put_string(first);
  p.put(static_cast<std::uint32_t>(local.keys.size()));
  for (const auto& [system, gpu] : local.keys) {
    p.put_string(system);
    p.put_string(gpu);
  }
  p.put(opened);
  return p.out + open.out;
}

// A simulation task's figures (status simulated or unsupported), as the evaluation in
// run_phases makes them: the candidate screened again (its resolved global batch), then
// simulated.
CandidateResult simulate_one(const SweepInput& in, const Assignment& a, int index,
                             const std::vector<Residual>& table) {
  const CandidateResult c = screen_one(in, a, index, table);
  CandidateResult out;
  out.index = index;
  try {
    out.figures = simulate(candidate_scenario(in, c.a));
    out.status = Status::simulated;
  } catch (const InputError& e) {
    out.status = Status::unsupported;
    out.reason = reason_of(e);
  }
  return out;
}

// Phase 2: the waves over the open candidates, in increasing order of their bound. One
// process (or a merge) deciding every candidate sets each wave's threshold from the
// results of the waves before it. A shard deciding its share alone sets it from the
// results of the waves before the one before (one wave's delay): a candidate of its own
// kWave or more places earlier in its order is at least kWave places earlier in the whole
// order, so in an earlier wave of the single process, and the shard's threshold is never
// below that process's (a value the process never saw is that of a candidate it pruned,
// above its threshold already); it simulates at least what that process would simulate
// of its share. `evaluate` simulates (or looks up) the candidates of a wave's open
// entries, one result per entry.
template <class Evaluate>
void decide(const SweepInput& in, const OpenSet& open, bool delayed, const SweepOptions& o,
            std::map<int, CandidateResult>& evaluated, Evaluate evaluate,
            const std::function<void()>& after_wave) {
  const SweepSpec& w = in.spec;
  std::vector<std::uint32_t> order(open.size());
  for (std::size_t e = 0; e < order.size(); ++e) order[e] = static_cast<std::uint32_t>(e);
  std::sort(order.begin(), order.end(), [&](std::uint32_t x, std::uint32_t y) {
    const double bx = open.bound0(x), by = open.bound0(y);
    return bx != by ? bx < by : open.index[x] < open.index[y];
  });
  const bool single = w.objectives.size() == 1;
  std::vector<double> values;              // single objective: simulated values
  std::vector<std::vector<double>> front;  // several: the current front
  auto commit = [&](const CandidateResult& c) {
    if (c.status != Status::simulated) return;
    if (single) {
      values.push_back(c.objective[0]);
    } else {
      bool dominated = false;
      for (const auto& f : front) dominated = dominated || dominates(f, c.objective);
      if (!dominated) {
        std::erase_if(front, [&](const auto& f) { return dominates(c.objective, f); });
        front.push_back(c.objective);
      }
    }
  };
  std::vector<CandidateResult> pending;  // the wave before, with `delayed`
  std::vector<CandidateResult> done;
  for (std::size_t start = 0; start < order.size(); start += kWave) {
    const std::size_t end = std::min(order.size(), start + kWave);
    const double threshold = single ? kth(values, w.top) : kInf;
    std::vector<std::uint32_t> todo;  // open entries
    for (std::size_t p = start; p < end; ++p) {
      const std::uint32_t e = order[p];
      bool prune = false;
      if (single) {
        prune = open.bound0(e) > threshold;
      } else {
        const std::vector<double> b = open.bounds(e);
        for (const auto& f : front) prune = prune || dominates(f, b);
      }
      if (!prune) todo.push_back(e);
    }
    done = evaluate(todo);
    if (delayed) {
      for (const CandidateResult& c : pending) commit(c);
      pending = done;
    } else {
      for (const CandidateResult& c : done) commit(c);
    }
    for (CandidateResult& c : done) {
      const int i = *c.index;
      evaluated.emplace(i, std::move(c));
    }
    if (o.progress) o.progress("decided", end, order.size());
    if (after_wave) after_wave();
  }
}

// Whether the sweep answers per system (SystemChoice).
bool compares_systems(const SweepInput& in) {
  return in.spec.nodes.swept() && in.baseline.training.target.has_value();
}

// Objective vectors, then the index: the ranked table's order.
bool better(const CandidateResult& x, const CandidateResult& y) {
  return x.objective != y.objective ? x.objective < y.objective : *x.index < *y.index;
}

// SystemChoice for every system: node counts from the smallest; at each, the open
// candidates not yet pruned for good (status pruned or simulated), by bound, in waves of
// kWave, skipping those whose bound on the first objective exceeds the best simulated
// value at that count.
template <class Evaluate>
std::vector<SystemChoice> choose_systems(const OpenSet& open, const Groups& groups,
                                         std::map<int, CandidateResult>& evaluated,
                                         Evaluate evaluate) {
  std::vector<SystemChoice> out;
  for (const auto& [system, gpu] : groups.keys) out.push_back({system, gpu, std::nullopt});
  auto status = [&](std::size_t e) {
    auto it = evaluated.find(open.index[e]);
    return it == evaluated.end() ? Status::pruned : it->second.status;
  };
  auto is_open = [&](std::size_t e) {
    const Status s = status(e);
    return s == Status::pruned || s == Status::simulated;
  };
  std::vector<std::vector<std::uint32_t>> members(out.size());
  for (std::size_t e = 0; e < open.size(); ++e)
    members[open.group[e]].push_back(static_cast<std::uint32_t>(e));
  for (std::size_t g = 0; g < out.size(); ++g) {
    std::vector<int> nodes;
    for (std::uint32_t e : members[g])
      if (is_open(e)) nodes.push_back(open.nodes[e]);
    std::sort(nodes.begin(), nodes.end());
    nodes.erase(std::unique(nodes.begin(), nodes.end()), nodes.end());
    for (int n : nodes) {
      std::vector<std::uint32_t> at;
      for (std::uint32_t e : members[g])
        if (open.nodes[e] == n && is_open(e)) at.push_back(e);
      std::sort(at.begin(), at.end(), [&](std::uint32_t x, std::uint32_t y) {
        const double bx = open.bound0(x), by = open.bound0(y);
        return bx != by ? bx < by : open.index[x] < open.index[y];
      });
      std::optional<int> best;
      auto consider = [&](std::uint32_t e) {
        auto it = evaluated.find(open.index[e]);
        if (it == evaluated.end() || it->second.status != Status::simulated) return;
        if (!best || better(it->second, evaluated.at(*best))) best = open.index[e];
      };
      for (std::uint32_t e : at) consider(e);
      for (std::size_t start = 0; start < at.size(); start += kWave) {
        const std::size_t end = std::min(at.size(), start + kWave);
        const double threshold = best ? evaluated.at(*best).objective[0] : kInf;
        std::vector<std::uint32_t> todo;
        for (std::size_t p = start; p < end; ++p) {
          if (status(at[p]) == Status::pruned && open.bound0(at[p]) <= threshold)
            todo.push_back(at[p]);
        }
        std::vector<CandidateResult> done = evaluate(todo);
        for (CandidateResult& c : done) {
          const int i = *c.index;
          evaluated.emplace(i, std::move(c));
        }
        for (std::uint32_t e : todo) consider(e);
      }
      if (best) {
        out[g].best = best;
        break;
      }
    }
  }
  return out;
}

// Counts, ranks, the front and the baseline's rank from the decisions.
void finish(const SweepInput& in, const OpenSet& open, std::map<int, CandidateResult>& evaluated,
            SweepResult& r) {
  const SweepSpec& w = in.spec;
  for (auto& [i, c] : evaluated) {
    --r.by_status[static_cast<std::size_t>(Status::pruned)];
    ++r.by_status[static_cast<std::size_t>(c.status)];
  }
  r.valid = r.total - r.count(Status::invalid);
  r.simulated = r.count(Status::simulated);
  r.pruned = r.count(Status::pruned);
  r.evaluated.clear();
  r.evaluated.reserve(evaluated.size());
  for (auto& [i, c] : evaluated) r.evaluated.push_back(std::move(c));
  evaluated.clear();
  std::vector<int> sim;
  for (const CandidateResult& c : r.evaluated)
    if (c.status == Status::simulated) sim.push_back(*c.index);
  auto obj = [&](int i) -> const std::vector<double>& { return r.at(i).objective; };
  r.ranked = sim;
  std::sort(r.ranked.begin(), r.ranked.end(), [&](int x, int y) {
    return obj(x) != obj(y) ? obj(x) < obj(y) : x < y;
  });
  if (w.objectives.size() > 1) {
    std::vector<std::vector<double>> points;
    for (int i : r.ranked) points.push_back(obj(i));
    for (int k : pareto_front(points)) r.pareto.push_back(r.ranked[static_cast<std::size_t>(k)]);
  } else if (r.baseline.status == Status::simulated) {
    // Exact where no pruned candidate could still beat it; else a range.
    const double v = r.baseline.objective[0];
    int better = 0, unknown = 0;
    for (const CandidateResult& c : r.evaluated)
      if (c.status == Status::simulated) better += c.objective[0] < v ? 1 : 0;
    std::size_t k = 0;
    for (std::size_t e = 0; e < open.size(); ++e) {
      // Open entries are in index order, as the evaluated ones.
      while (k < r.evaluated.size() && *r.evaluated[k].index < open.index[e]) ++k;
      const bool decided = k < r.evaluated.size() && *r.evaluated[k].index == open.index[e];
      if (!decided) unknown += open.bound0(e) < v ? 1 : 0;
    }
    r.baseline_rank = better + 1;
    r.baseline_rank_max = better + 1 + unknown;
  }
}

CandidateResult evaluate_baseline(const SweepInput& in, const std::vector<Residual>& table) {
  CandidateResult b;  // no index: not one of the candidates
  const Scenario& s = in.baseline;
  for (const detail::Axis& axis : detail::axes())
    if (axis.set) axis.set(b.a, axis.of_scenario(s));
  b.gpus = s.cluster.gpus();
  b.dp = s.parallelism.dp;
  b.gpu_name = s.cluster.gpu.name;
  b.system = s.cluster.preset;
  try {
    const StepFigures f = analyse_step(s);
    b.memory = MemoryUse{f.memory.worst().memory.total(), f.memory.capacity};
    assess(s, table, b);
    b.figures = simulate(s);
    add_mfu_flag(table, b);
    b.objective = objective_values(in.spec, b, *b.figures);
    b.status = Status::simulated;
  } catch (const InputError& e) {
    b.status = Status::unsupported;
    b.reason = reason_of(e);
  }
  return b;
}

void check_objectives(const SweepInput& in) {
  const SweepSpec& w = in.spec;
  const Scenario& s = in.baseline;
  for (Objective o : w.objectives) {
    if (o != Objective::step_time && !s.training.target) {
      throw InputError(w.where("sweep.objectives"), "sweep.objectives", to_string(o),
                       "needs training.target (tokens, samples, steps or critical_batch)");
    }
    if (o == Objective::cost && !s.cost.usd_per_gpu_hour) {
      throw InputError(w.where("sweep.objectives"), "sweep.objectives", "cost",
                       "needs cost.usd_per_gpu_hour");
    }
  }
  if (w.max_cost_usd && (!s.training.target || !s.cost.usd_per_gpu_hour)) {
    throw InputError(w.where("sweep.constraints.max_cost_usd"), "sweep.constraints.max_cost_usd",
                     fmt::format("{}", *w.max_cost_usd),
                     "needs training.target and cost.usd_per_gpu_hour");
  }
  // The cost of owning needs a purchase and a write-off period in every system swept.
  const bool owned = s.cost.amortization_years.has_value();
  for (Objective o : w.objectives) {
    if (o == Objective::tco && !owned) {
      throw InputError(w.where("sweep.objectives"), "sweep.objectives", "tco",
                       "needs cost.amortization_years and cluster.price.node_usd");
    }
  }
  if (w.max_tco_usd && (!s.training.target || !owned)) {
    throw InputError(w.where("sweep.constraints.max_tco_usd"), "sweep.constraints.max_tco_usd",
                     fmt::format("{}", *w.max_tco_usd),
                     "needs training.target, cost.amortization_years and cluster.price.node_usd");
  }
  if (w.max_time_to_train && !s.training.target) {
    throw InputError(w.where("sweep.constraints.max_time_to_train"),
                     "sweep.constraints.max_time_to_train",
                     format_long_duration(*w.max_time_to_train),
                     "needs training.target (tokens, samples, steps or critical_batch)");
  }
}

SweepResult run_phases(const SweepInput& in, const SweepOptions& o, int shard, int shards,
                       const std::vector<SweepResult>* from_shards) {
  check_objectives(in);
  const std::vector<Residual>& table = table_of(o);
  SweepResult r;
  r.shard = shard;
  r.shards = shards;
  r.residuals = o.residuals;
  r.threads = std::max(1, o.threads);
  // Phase 1, chunk by chunk: counts, the systems, and what the decisions need of each
  // candidate left open.
  const detail::CandidateSpace probe(in);
  OpenSet open;
  open.objectives = in.spec.objectives.size();
  open.levels = probe.levels();
  Groups groups;
  std::string first_reason;
  const bool keep = o.keep_candidates && shards == 1;  // a shard's share is not kept
  const std::int64_t total = count_candidates(in);
  r.total = static_cast<std::size_t>(total);
  const std::size_t share =
      static_cast<std::size_t>((total - shard + shards - 1) / shards);
  auto screened = [&](std::vector<CandidateResult>& chunk, const std::vector<std::uint16_t>& pos,
                      std::size_t levels) {
    for (std::size_t i = 0; i < chunk.size(); ++i) {
      CandidateResult& c = chunk[i];
      ++r.by_status[static_cast<std::size_t>(c.status)];
      if (*c.index == 0) first_reason = c.reason;
      if (c.status != Status::invalid) {
        const std::uint32_t g = groups.of(c);
        if (c.status == Status::pruned) {
          open.index.push_back(*c.index);
          open.bound.insert(open.bound.end(), c.bound.begin(), c.bound.end());
          open.position.insert(open.position.end(),
                               pos.begin() + static_cast<std::ptrdiff_t>(i * levels),
                               pos.begin() + static_cast<std::ptrdiff_t>((i + 1) * levels));
          open.nodes.push_back(c.a.nodes);
          open.group.push_back(g);
        }
      }
      if (keep) r.candidates.push_back(std::move(c));
    }
  };
  if (o.queue && shards == 1 && !from_shards) {
    // Through the queue: ranges of kTask candidates screened wherever there is a free
    // process, their replies taken in candidate order (those that arrive early wait), so
    // the open set, counts and systems are built as above.
    ORRERY_CHECK(!keep, "a queue keeps no candidates");
    SweepWorker here(in, o);
    const std::size_t tasks = static_cast<std::size_t>((total + kTask - 1) / kTask);
    std::map<std::size_t, std::string> early;
    std::size_t next = 0;
    auto take = [&](const std::string& text) {
      Unpacker u{text};
      const auto counts = u.get<std::array<std::uint64_t, 10>>();
      for (std::size_t k = 0; k < counts.size(); ++k) r.by_status[k] += counts[k];
      const bool has_first = u.get<std::uint8_t>() != 0;
      std::string reason = u.get_string();
      if (has_first) first_reason = std::move(reason);
      std::vector<std::uint32_t> ids(u.get<std::uint32_t>());
      for (std::uint32_t& id : ids) {
        std::string system = u.get_string();
        id = groups.of(system, u.get_string());
      }
      const auto opened = u.get<std::uint32_t>();
      for (std::uint32_t k = 0; k < opened; ++k) {
        open.index.push_back(u.get<std::int32_t>());
        for (std::size_t b = 0; b < open.objectives; ++b) open.bound.push_back(u.get<double>());
        for (std::size_t l = 0; l < open.levels; ++l)
          open.position.push_back(u.get<std::uint16_t>());
        open.nodes.push_back(u.get<std::int32_t>());
        open.group.push_back(ids.at(u.get<std::uint32_t>()));
      }
    };
    o.queue->run(
        tasks,
        [&](std::size_t i) {
          Packer p;
          p.put('S');
          p.put(static_cast<std::int64_t>(i) * kTask);
          p.put(std::min<std::int64_t>(total, static_cast<std::int64_t>(i + 1) * kTask));
          return p.out;
        },
        [&](const std::string& task) { return here(task); },
        [&](std::size_t i, std::string text) {
          early.emplace(i, std::move(text));
          for (auto it = early.find(next); it != early.end(); it = early.find(next)) {
            take(it->second);
            early.erase(it);
            ++next;
            if (o.progress) {
              o.progress("screened",
                         static_cast<std::size_t>(std::min<std::int64_t>(
                             total, static_cast<std::int64_t>(next) * kTask)),
                         share);
            }
          }
        });
  } else {
    screen_chunks(in, table, r.threads, shard, shards, &o, share, !keep, screened);
  }
  if (r.total == 0) {
    throw InputError(in.spec.where("sweep"), "sweep", "", "the sweep has no candidates");
  }
  if (shards == 1 && r.count(Status::invalid) == r.total) {
    throw InputError(in.spec.where("sweep"), "sweep", "",
                     fmt::format("every one of the {} candidates is invalid (the first: {})",
                                 r.total, first_reason));
  }
  r.baseline = evaluate_baseline(in, table);

  // Results made already: the shards' (a merge) or a checkpoint's (a resumed run).
  std::map<int, const CandidateResult*> known;
  auto learn = [&](const SweepResult& sr) {
    for (const CandidateResult& c : sr.evaluated)
      if (c.status == Status::simulated || c.status == Status::unsupported) known[*c.index] = &c;
  };
  if (from_shards)
    for (const SweepResult& sr : *from_shards) learn(sr);
  if (o.resume) learn(*o.resume);
  // Through the queue: the figures of a wave's candidates simulated wherever there is a
  // free process, taken as known results.
  std::map<int, CandidateResult> fetched;
  auto fetch = [&](const std::vector<std::uint32_t>& todo) {
    std::vector<std::uint32_t> wanted;
    for (std::uint32_t e : todo)
      if (!known.count(open.index[e])) wanted.push_back(e);
    if (!o.queue || wanted.empty()) return;
    SweepWorker here(in, o);
    o.queue->run(
        wanted.size(),
        [&](std::size_t k) {
          const std::uint32_t e = wanted[k];
          Packer p;
          p.put('E');
          p.put(static_cast<std::int32_t>(open.index[e]));
          for (std::size_t l = 0; l < open.levels; ++l) p.put(open.position[e * open.levels + l]);
          return p.out;
        },
        [&](const std::string& task) { return here(task); },
        [&](std::size_t, std::string text) {
          SweepResult one = read_shard(in, text, "a rank's reply");
          ORRERY_CHECK(one.evaluated.size() == 1, "one result per simulation task");
          CandidateResult& c = one.evaluated.front();
          const int i = *c.index;
          fetched.emplace(i, std::move(c));
        });
    for (const auto& [i, c] : fetched) known[i] = &c;
  };
  // Simulates the open entry's candidate, or takes a known result; with shards' results,
  // `local`: simulate here what no shard did (the per-system pass, which shards leave to
  // the merge).
  auto evaluate = [&](std::uint32_t entry, bool local) {
    const Assignment a = probe.at(&open.position[entry * open.levels]);
    CandidateResult c = screen_one(in, a, open.index[entry], table);
    auto it = known.find(*c.index);
    if (from_shards && it == known.end() && !local) {
      throw InputError({"orrery merge", std::nullopt}, "", "",
                       fmt::format("no shard simulated candidate {}: give every shard's "
                                   "results of the same sweep",
                                   *c.index));
    }
    if (it != known.end()) {
      c.status = it->second->status;
      c.reason = it->second->reason;
      c.figures = it->second->figures;
    } else {
      try {
        c.figures = simulate(candidate_scenario(in, c.a));
        c.status = Status::simulated;
      } catch (const InputError& e) {
        c.status = Status::unsupported;
        c.reason = reason_of(e);
      }
    }
    if (c.status == Status::simulated) {
      add_mfu_flag(table, c);
      c.objective = objective_values(in.spec, c, *c.figures);
      if (auto why = run_constraint(in.spec, *c.figures)) c.status = *why;
    }
    return c;
  };
  auto evaluate_all = [&](const std::vector<std::uint32_t>& todo, bool local) {
    fetch(todo);
    std::vector<CandidateResult> done(todo.size());
    parallel_for(todo.size(), o.threads,
                 [&](std::size_t k) { done[k] = evaluate(todo[k], local); });
    for (const auto& [i, c] : fetched) known.erase(i);
    fetched.clear();
    return done;
  };
  std::map<int, CandidateResult> evaluated;
  std::function<void()> after_wave;
  auto last = std::chrono::steady_clock::now();
  if (o.checkpoint) {
    // At most every few seconds: the record is the whole list of results so far.
    after_wave = [&] {
      const auto now = std::chrono::steady_clock::now();
      if (now - last < std::chrono::seconds(5)) return;
      last = now;
      SweepResult partial;
      partial.total = r.total;
      partial.shard = shard;
      partial.shards = shards;
      for (const auto& [i, c] : evaluated) partial.evaluated.push_back(c);
      o.checkpoint(partial);
    };
  }
  decide(
      in, open, shards > 1, o, evaluated,
      [&](const std::vector<std::uint32_t>& todo) { return evaluate_all(todo, false); },
      after_wave);
  if (shards == 1 && compares_systems(in)) {
    r.systems = choose_systems(
        open, groups, evaluated,
        [&](const std::vector<std::uint32_t>& todo) { return evaluate_all(todo, true); });
  }
  if (keep) {
    for (const auto& [i, c] : evaluated) r.candidates[static_cast<std::size_t>(i)] = c;
  }
  finish(in, open, evaluated, r);
  return r;
}

}  // namespace

const char* to_string(Status s) {
  switch (s) {
    case Status::invalid: return "invalid";
    case Status::over_gpus: return "over_max_gpus";
    case Status::over_nodes:
      return "over_max_nodes";
    case Status::over_power:
      return "over_max_power";
    case Status::over_deadline:
      return "over_deadline";
    case Status::out_of_memory: return "out_of_memory";
    case Status::over_budget: return "over_budget";
    case Status::pruned: return "pruned";
    case Status::unsupported: return "unsupported";
    case Status::simulated: return "simulated";
  }
  return "?";
}

namespace {

// Out of memory is bad input too: the sweep asked for more than the machine has. Says what
// to narrow instead of ending in std::bad_alloc.
[[noreturn]] void out_of_memory(const SweepInput& in, const char* doing) {
  throw InputError(in.spec.where("sweep"), "sweep", "",
                   fmt::format("ran out of memory {} the {} candidates: narrow the swept "
                               "axes, or split the sweep with --shard i/N (each shard screens "
                               "and holds only its share) and orrery merge",
                               doing, count_candidates(in)));
}

}  // namespace

SweepResult run_sweep(const SweepInput& in, const SweepOptions& options) {
  ORRERY_CHECK(options.shards >= 1 && options.shard >= 0 && options.shard < options.shards,
               "shard out of range");
  try {
    return run_phases(in, options, options.shard, options.shards, nullptr);
  } catch (const std::bad_alloc&) {
    out_of_memory(in, "while searching");
  }
}

SweepResult merge_shards(const SweepInput& in, const std::vector<SweepResult>& shards,
                         const SweepOptions& options) {
  // Every share of one split, once.
  const int n = shards.empty() ? 0 : shards.front().shards;
  std::vector<int> seen(static_cast<std::size_t>(std::max(n, 0)), 0);
  for (const SweepResult& sr : shards) {
    if (sr.shards != n || sr.shard < 0 || sr.shard >= n) {
      throw InputError({"orrery merge", std::nullopt}, "", "",
                       fmt::format("shard files of different splits ({} and {} shares): give "
                                   "every shard of one split",
                                   n, sr.shards));
    }
    ++seen[static_cast<std::size_t>(sr.shard)];
  }
  for (int k = 0; k < n; ++k) {
    if (seen[static_cast<std::size_t>(k)] != 1) {
      throw InputError({"orrery merge", std::nullopt}, "", "",
                       fmt::format("shard {} of {} is {}: give every shard's results of the same "
                                   "sweep once",
                                   k, n,
                                   seen[static_cast<std::size_t>(k)] == 0 ? "missing"
                                                                          : "given twice"));
    }
  }
  SweepOptions o = options;
  o.resume = nullptr;
  try {
    return run_phases(in, o, 0, 1, &shards);
  } catch (const std::bad_alloc&) {
    out_of_memory(in, "while merging");
  }
}

const CandidateResult& SweepResult::at(int index) const {
  if (candidates.size() == total && index >= 0 && static_cast<std::size_t>(index) < total)
    return candidates[static_cast<std::size_t>(index)];
  auto it = std::lower_bound(evaluated.begin(), evaluated.end(), index,
                             [](const CandidateResult& c, int i) { return *c.index < i; });
  ORRERY_CHECK(it != evaluated.end() && *it->index == index, "candidate not held");
  return *it;
}

void for_each_candidate(const SweepInput& in, const SweepResult& r,
                        const std::function<void(const CandidateResult&)>& fn) {
  if (r.candidates.size() == r.total) {
    for (const CandidateResult& c : r.candidates) fn(c);
    return;
  }
  const std::vector<Residual>& table = r.residuals ? *r.residuals : shipped_residuals();
  auto next = r.evaluated.begin();
  try {
    screen_chunks(in, table, r.threads, 0, 1, nullptr, 0, false,
                  [&](std::vector<CandidateResult>& chunk, const std::vector<std::uint16_t>&,
                      std::size_t) {
                    for (const CandidateResult& c : chunk) {
                      while (next != r.evaluated.end() && *next->index < *c.index) ++next;
                      fn(next != r.evaluated.end() && *next->index == *c.index ? *next : c);
                    }
                  });
  } catch (const std::bad_alloc&) {
    out_of_memory(in, "while writing every candidate");
  }
}

struct SweepWorker::State {
  const SweepInput& in;
  const std::vector<Residual>& table;
  int threads = 1;
  std::unique_ptr<detail::CandidateSpace> space;  // where the last screening task ended
};

SweepWorker::SweepWorker(const SweepInput& in, const SweepOptions& options)
    : s_(std::make_unique<State>(State{in, table_of(options), std::max(1, options.threads), {}})) {}

SweepWorker::~SweepWorker() = default;

std::string SweepWorker::operator()(const std::string& task) {
  Unpacker u{task};
  const char kind = u.get<char>();
  if (kind == 'E') {
    const int index = u.get<std::int32_t>();
    const detail::CandidateSpace probe(s_->in);
    std::vector<std::uint16_t> position(probe.levels());
    for (std::uint16_t& p : position) p = u.get<std::uint16_t>();
    SweepResult one;
    one.evaluated.push_back(simulate_one(s_->in, probe.at(position.data()), index, s_->table));
    return write_shard(s_->in, one, 0, 1);
  }
  ORRERY_CHECK(kind == 'S', "unknown work queue task");
  const auto begin = u.get<std::int64_t>(), end = u.get<std::int64_t>();
  if (!s_->space || s_->space->index() > begin)
    s_->space = std::make_unique<detail::CandidateSpace>(s_->in);
  detail::CandidateSpace& space = *s_->space;
  while (space.valid() && space.index() < begin) space.next();
  std::vector<Assignment> as;
  std::vector<int> indices;
  std::vector<std::uint16_t> positions;
  for (; space.valid() && space.index() < end; space.next()) {
    as.push_back(space.current());
    indices.push_back(static_cast<int>(space.index()));
    space.position(positions);
  }
  std::vector<CandidateResult> out(as.size());
  parallel_for(as.size(), s_->threads,
               [&](std::size_t i) {
                 out[i] = screen_one(s_->in, as[i], indices[i], s_->table, true);
               });
  return pack_screened(out, positions, space.levels());
}

std::int64_t count_candidates(const SweepInput& in) { return detail::CandidateSpace::count(in); }

SweepEstimate estimate_sweep(const SweepInput& in, const SweepOptions& options) {
  check_objectives(in);
  SweepEstimate e;
  e.candidates = count_candidates(in);
  // About 2,000 candidates spread evenly over the space, on one thread.
  const std::int64_t stride = std::max<std::int64_t>(1, e.candidates / 2000);
  const std::vector<Residual>& table = table_of(options);
  std::optional<Assignment> first_open;
  // Processor time of this thread: what the work costs on an idle core, however loaded
  // the machine is.
  auto cpu = [] {
    timespec t{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
  };
  const double t0 = cpu();
  for (detail::CandidateSpace s(in); s.valid(); s.next()) {
    if (s.index() % stride != 0) continue;
    const CandidateResult c = screen_one(in, s.current(), static_cast<int>(s.index()), table);
    ++e.sampled;
    if (c.status == Status::pruned) {
      ++e.sampled_open;
      if (!first_open) first_open = c.a;
    }
  }
  const double t1 = cpu();
  e.screen_s = (t1 - t0) / static_cast<double>(e.sampled);
  if (first_open) {
    try {
      simulate(candidate_scenario(in, *first_open));
    } catch (const InputError&) {
    }
    e.simulate_s = cpu() - t1;
  }
  return e;
}

std::string objective_warning(const SweepInput& in) {
  const SweepSpec& w = in.spec;
  const bool batches = w.global_batch.automatic || w.global_batch.values.size() > 1 ||
                       w.global_batch_tokens.has_value();
  for (Objective o : w.objectives) {
    if (o == Objective::step_time && batches) {
      return fmt::format(
          "{}: sweep.objectives: step_time compares steps of different global batches ({}), "
          "which do different work; rank by time_to_train (with training.target) or compare "
          "tokens_per_s in the CSV",
          in.file, w.global_batch_tokens ? "sweep.global_batch_tokens rounds the batch per "
                                           "candidate"
                                         : "sweep.global_batch");
    }
  }
  return "";
}

std::vector<int> pareto_front(const std::vector<std::vector<double>>& points) {
  std::vector<int> out;
  for (std::size_t i = 0; i < points.size(); ++i) {
    bool dominated = false;
    for (std::size_t j = 0; j < points.size() && !dominated; ++j)
      dominated = j != i && dominates(points[j], points[i]);
    if (!dominated) out.push_back(static_cast<int>(i));
  }
  return out;
}

}  // namespace orrery
