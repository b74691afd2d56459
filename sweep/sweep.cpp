#include "sweep/sweep.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <limits>
#include <map>
#include <thread>

#include "model/analysis.h"
#include "model/training_run.h"
#include "simulator/predict.h"
#include "sweep/axes.h"
#include "sweep/bound.h"

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
          mfu_flag(c.band->family.generation, c.precision, c.figures->mfu, c.figures->hfu, table)) {
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

// Phase 1: validation, constraints, memory and bounds for every candidate.
std::vector<CandidateResult> screen(const SweepInput& in, const std::vector<Assignment>& all,
                                    const SweepOptions& o) {
  const SweepSpec& w = in.spec;
  std::vector<CandidateResult> out(all.size());
  parallel_for(all.size(), o.threads, [&](std::size_t i) {
    CandidateResult& c = out[i];
    c.index = static_cast<int>(i);
    c.a = all[i];
    Scenario s;
    try {
      s = candidate_scenario(in, c.a);
    } catch (const InputError& e) {
      c.status = Status::invalid;
      c.reason = reason_of(e);
      return;
    }
    c.gpus = s.cluster.gpus();
    c.dp = s.parallelism.dp;
    c.gpu_name = s.cluster.gpu.name;
    c.system = s.cluster.preset;
    c.a.global_batch = s.parallelism.global_batch;  // rounded with global_batch_tokens
    if (w.max_gpus && c.gpus > *w.max_gpus) {
      c.status = Status::over_gpus;
      return;
    }
    if (w.max_nodes && s.cluster.nodes > *w.max_nodes) {
      c.status = Status::over_nodes;
      return;
    }
    if (w.max_power && peak_facility_power(s) > *w.max_power) {
      c.status = Status::over_power;
      return;
    }
    StepFigures f;
    try {
      f = analyse_step(s);
    } catch (const InputError& e) {
      c.status = Status::invalid;
      c.reason = reason_of(e);
      return;
    }
    c.memory = MemoryUse{f.memory.worst().memory.total(), f.memory.capacity};
    assess(s, table_of(o), c);
    if (w.fits_memory && !f.memory.fits) {
      c.status = Status::out_of_memory;
      return;
    }
    Figures lb;
    lb.step_time = step_time_bound(s);
    add_bound_run(s, lb);
    c.bound = objective_values(w, c, lb);
    if (auto why = run_constraint(w, lb)) {
      c.status = *why;
      return;
    }
    c.status = Status::pruned;  // until simulated
  });
  return out;
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

// Phase 2: the waves over the candidates still undecided (status `pruned` on entry), in
// increasing order of their bound. This process evaluates the positions p of that order
// with p % shards == shard that the threshold (from the results so far) cannot rule
// out; `evaluate` simulates (or looks up) one candidate. Candidates neither ruled out nor
// evaluated here keep no figures.
template <class Evaluate>
void decide(const SweepInput& in, std::vector<CandidateResult>& cands,
            int shard, int shards,
            const SweepOptions& o, Evaluate evaluate) {
  const SweepSpec& w = in.spec;
  std::vector<int> order;
  for (const auto& c : cands)
    if (c.status == Status::pruned) order.push_back(*c.index);
  std::sort(order.begin(), order.end(), [&](int x, int y) {
    const double bx = cands[static_cast<std::size_t>(x)].bound[0];
    const double by = cands[static_cast<std::size_t>(y)].bound[0];
    return bx != by ? bx < by : x < y;
  });
  const bool single = w.objectives.size() == 1;
  std::vector<double> values;                 // single objective: simulated values
  std::vector<std::vector<double>> front;     // several: the current front
  for (std::size_t start = 0; start < order.size(); start += kWave) {
    const std::size_t end = std::min(order.size(), start + kWave);
    double threshold = kInf;
    if (single) {
      threshold = kth(values, w.top);
    }
    std::vector<std::size_t> todo;  // positions in `order`
    for (std::size_t p = start; p < end; ++p) {
      const CandidateResult& c = cands[static_cast<std::size_t>(order[p])];
      bool prune = false;
      if (single) {
        prune = c.bound[0] > threshold;
      } else {
        for (const auto& f : front) prune = prune || dominates(f, c.bound);
      }
      if (!prune && static_cast<int>(p % static_cast<std::size_t>(shards)) == shard) {
        todo.push_back(p);
      }
    }
    parallel_for(todo.size(), o.threads, [&](std::size_t k) {
      evaluate(cands[static_cast<std::size_t>(order[todo[k]])]);
    });
    for (std::size_t p : todo) {
      const CandidateResult& c = cands[static_cast<std::size_t>(order[p])];
      if (c.status != Status::simulated) continue;
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
    }
    if (o.progress) o.progress(end, order.size());
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

// SystemChoice for every system: node counts from the smallest; at each, the candidates
// still undecided, by bound, in waves of kWave, skipping those whose bound on the first
// objective exceeds the best simulated value at that count.
template <class Evaluate>
std::vector<SystemChoice> choose_systems(std::vector<CandidateResult>& cands, const SweepOptions& o,
                                         Evaluate evaluate) {
  std::vector<SystemChoice> out;
  std::map<std::pair<std::string, std::string>, std::size_t> group;
  std::vector<std::vector<int>> members;
  for (const auto& c : cands) {
    if (c.status == Status::invalid) continue;
    const auto key = std::make_pair(c.system, c.gpu_name);
    auto [it, fresh] = group.emplace(key, out.size());
    if (fresh) {
      out.push_back({c.system, c.gpu_name, std::nullopt});
      members.emplace_back();
    }
    members[it->second].push_back(*c.index);
  }
  auto open = [](const CandidateResult& c) {
    return c.status == Status::pruned || c.status == Status::simulated;
  };
  for (std::size_t g = 0; g < out.size(); ++g) {
    std::vector<int> nodes;
    for (int i : members[g])
      if (open(cands[static_cast<std::size_t>(i)]))
        nodes.push_back(cands[static_cast<std::size_t>(i)].a.nodes);
    std::sort(nodes.begin(), nodes.end());
    nodes.erase(std::unique(nodes.begin(), nodes.end()), nodes.end());
    for (int n : nodes) {
      std::vector<int> at;
      for (int i : members[g]) {
        const CandidateResult& c = cands[static_cast<std::size_t>(i)];
        if (c.a.nodes == n && open(c)) at.push_back(i);
      }
      std::sort(at.begin(), at.end(), [&](int x, int y) {
        const double bx = cands[static_cast<std::size_t>(x)].bound[0];
        const double by = cands[static_cast<std::size_t>(y)].bound[0];
        return bx != by ? bx < by : x < y;
      });
      std::optional<int> best;
      auto consider = [&](int i) {
        const CandidateResult& c = cands[static_cast<std::size_t>(i)];
        if (c.status != Status::simulated) return;
        if (!best || better(c, cands[static_cast<std::size_t>(*best)])) best = i;
      };
      for (int i : at) consider(i);
      for (std::size_t start = 0; start < at.size(); start += kWave) {
        const std::size_t end = std::min(at.size(), start + kWave);
        const double threshold = best ? cands[static_cast<std::size_t>(*best)].objective[0] : kInf;
        std::vector<int> todo;
        for (std::size_t p = start; p < end; ++p) {
          const CandidateResult& c = cands[static_cast<std::size_t>(at[p])];
          if (c.status == Status::pruned && c.bound[0] <= threshold) todo.push_back(at[p]);
        }
        parallel_for(todo.size(), o.threads,
                     [&](std::size_t k) { evaluate(cands[static_cast<std::size_t>(todo[k])]); });
        for (int i : todo) consider(i);
      }
      if (best) {
        out[g].best = best;
        break;
      }
    }
  }
  return out;
}

void finish(const SweepInput& in, SweepResult& r) {
  const SweepSpec& w = in.spec;
  r.valid = r.simulated = r.pruned = 0;
  std::vector<int> sim;
  for (const auto& c : r.candidates) {
    if (c.status != Status::invalid) ++r.valid;
    if (c.status == Status::pruned) ++r.pruned;
    if (c.status == Status::simulated) {
      ++r.simulated;
      sim.push_back(*c.index);
    }
  }
  auto obj = [&](int i) -> const std::vector<double>& {
    return r.candidates[static_cast<std::size_t>(i)].objective;
  };
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
    for (const auto& c : r.candidates) {
      if (c.status == Status::simulated) better += c.objective[0] < v ? 1 : 0;
      if (c.status == Status::pruned) unknown += c.bound[0] < v ? 1 : 0;
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
  const std::vector<Assignment> all = expand(in);
  SweepResult r;
  r.candidates = screen(in, all, o);
  std::size_t usable = 0;
  for (const auto& c : r.candidates) usable += c.status != Status::invalid ? 1 : 0;
  if (usable == 0) {
    const CandidateResult& first = r.candidates.front();
    throw InputError(in.spec.where("sweep"), "sweep", "",
                     fmt::format("every one of the {} candidates is invalid (the first: {})",
                                 r.candidates.size(), first.reason));
  }
  r.baseline = evaluate_baseline(in, table_of(o));

  std::map<int, const CandidateResult*> known;
  if (from_shards) {
    for (const SweepResult& sr : *from_shards)
      for (const CandidateResult& c : sr.candidates)
        if (c.status == Status::simulated || c.status == Status::unsupported) known[*c.index] = &c;
  }
  // Simulates the candidate, or with shards' results takes theirs; `local`: simulate here
  // what no shard did (the per-system pass, which shards leave to the merge).
  auto evaluate = [&](CandidateResult& c, bool local) {
    auto it = from_shards ? known.find(*c.index) : known.end();
    if (from_shards && !(local && it == known.end())) {
      if (it == known.end()) {
        throw InputError({"orrery merge", std::nullopt}, "", "",
                         fmt::format("no shard simulated candidate {}: give every shard's "
                                     "results of the same sweep",
                                     *c.index));
      }
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
      add_mfu_flag(table_of(o), c);
      c.objective = objective_values(in.spec, c, *c.figures);
      if (auto why = run_constraint(in.spec, *c.figures)) c.status = *why;
    }
  };
  decide(in, r.candidates, shard, shards, o, [&](CandidateResult& c) { evaluate(c, false); });
  if (shards == 1 && compares_systems(in)) {
    r.systems = choose_systems(r.candidates, o, [&](CandidateResult& c) { evaluate(c, true); });
  }
  finish(in, r);
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

SweepResult run_sweep(const SweepInput& in, const SweepOptions& options) {
  ORRERY_CHECK(options.shards >= 1 && options.shard >= 0 && options.shard < options.shards,
               "shard out of range");
  SweepResult r = run_phases(in, options, options.shard, options.shards, nullptr);
  return r;
}

SweepResult merge_shards(const SweepInput& in, const std::vector<SweepResult>& shards) {
  SweepOptions o;
  return run_phases(in, o, 0, 1, &shards);
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

std::string megatron_arguments(const Scenario& s) {
  const ParallelismSpec& p = s.parallelism;
  std::string out = fmt::format("--tensor-model-parallel-size {} --pipeline-model-parallel-size {}",
                                p.tp, p.pp);
  // The layout as Megatron-LM's arguments spell it (megatron/training/arguments.py at
  // d98e8a64): a layout string alone; uneven first/last stages need the virtual stages
  // per rank rather than the layers per virtual stage.
  const bool uneven = p.first_stage_layers || p.last_stage_layers;
  if (!p.pipeline_layout.empty()) {
    out += fmt::format(" --pipeline-model-parallel-layout \"{}\"", p.pipeline_layout);
  } else {
    if (p.first_stage_layers)
      out += fmt::format(" --decoder-first-pipeline-num-layers {}", *p.first_stage_layers);
    if (p.last_stage_layers)
      out += fmt::format(" --decoder-last-pipeline-num-layers {}", *p.last_stage_layers);
    if (p.account_for_embedding) out += " --account-for-embedding-in-pipeline-split";
    if (p.account_for_loss) out += " --account-for-loss-in-pipeline-split";
    if (p.virtual_pipeline_stages > 1 && uneven) {
      out += fmt::format(" --num-virtual-stages-per-pipeline-rank {}", p.virtual_pipeline_stages);
    } else if (p.virtual_pipeline_stages > 1) {
      const int accounted = (p.account_for_embedding ? 1 : 0) + (p.account_for_loss ? 1 : 0);
      out += fmt::format(" --num-layers-per-virtual-pipeline-stage {}",
                         (s.model.layers + accounted) / (p.pp * p.virtual_pipeline_stages));
    }
  }
  if (p.virtual_pipeline_stages > 1 && p.microbatch_group_size != p.pp) {
    out += fmt::format(" --microbatch-group-size-per-virtual-pipeline-stage {}",
                       p.microbatch_group_size);
  }
  if (p.cp > 1) out += fmt::format(" --context-parallel-size {}", p.cp);
  if (p.ep > 1) out += fmt::format(" --expert-model-parallel-size {}", p.ep);
  // MoE routing and exchange, as megatron/core/transformer/moe/README.md at d98e8a64 names
  // them: the naive exchange is the alltoall dispatcher, the deduplicated one the flex
  // dispatcher with DeepEP. A node limit is router groups of one node each, which needs
  // the group's node count; it is left to the user.
  if (s.model.moe) {
    const MoeSpec& moe = *s.model.moe;
    if (p.ep > 1 && p.ep_alltoall == ParallelismSpec::Alltoall::direct)
      out += " --moe-token-dispatcher-type alltoall";
    if (p.ep > 1 && p.ep_alltoall == ParallelismSpec::Alltoall::hierarchical)
      out += " --moe-token-dispatcher-type flex --moe-flex-dispatcher-backend deepep";
    if (moe.router_groups > 0)
      out += fmt::format(" --moe-router-num-groups {} --moe-router-group-topk {}",
                         moe.router_groups, moe.router_group_topk);
    if (moe.capacity_factor)
      out += fmt::format(" --moe-expert-capacity-factor {}", *moe.capacity_factor);
    if (moe.pad_to_capacity) out += " --moe-pad-expert-input-to-capacity";
    if (moe.shared_expert_overlap) out += " --moe-shared-expert-overlap";
    // Aux-loss-free balancing: no aux loss, the expert bias instead (README's table of
    // load-balancing strategies).
    if (!moe.aux_loss)
      out += " --moe-router-load-balancing-type none --moe-router-enable-expert-bias";
  }
  if (p.sequence_parallel) out += " --sequence-parallel";
  out += fmt::format(" --micro-batch-size {} --global-batch-size {}", p.microbatch,
                     p.global_batch);
  switch (s.training.recompute) {
    case Recompute::none: break;
    case Recompute::selective:
      out += " --recompute-granularity selective";
      if (s.training.recompute_modules != kRecomputeCoreAttn) {
        std::string names = describe_recompute_modules(s.training.recompute_modules);
        for (auto pos = names.find(", "); pos != std::string::npos; pos = names.find(", "))
          names.replace(pos, 2, " ");
        out += " --recompute-modules " + names;
      }
      break;
    case Recompute::full:
      // Every layer recomputed from its input (the "uniform, 1 layer" form of full).
      out += " --recompute-granularity full --recompute-method uniform --recompute-num-layers 1";
      break;
  }
  if (s.training.cross_entropy_fusion) out += " --cross-entropy-loss-fusion";
  // training.stack's unfused kernels as Megatron-LM's switches (megatron/training/
  // arguments.py at NVIDIA/Megatron-LM d98e8a64: --no-rope-fusion, --no-bias-swiglu-fusion,
  // --no-bias-gelu-fusion).
  if (s.model.is_transformer() && s.model.position_embedding == PositionEmbedding::rope &&
      s.training.stack.rope != StackSpec::Rope::fused)
    out += " --no-rope-fusion";
  if (s.model.is_transformer() && !s.training.stack.activation_fusion)
    out += s.model.activation == Activation::swiglu ? " --no-bias-swiglu-fusion"
                                                    : " --no-bias-gelu-fusion";
  // Data-parallel sharding, checked against NVIDIA/Megatron-LM d98e8a64
  // (megatron/training/arguments.py; docs/user-guide/features/megatron_fsdp.md):
  //  ZeRO-1  --use-distributed-optimizer shards the optimizer state only; the gradient
  //          buffer stays whole (arguments.py:3156).
  //  ZeRO-2  no distributed-optimizer flag shards gradients; Megatron-FSDP's
  //          --data-parallel-sharding-strategy optim_grads does (arguments.py:3190,
  //          megatron_fsdp.md "ZeRO-2: optimizer state and gradients are sharded").
  //  ZeRO-3  optim_grads_params (megatron_fsdp.md "FSDP / ZeRO-3"); hybrid sharding as
  //          HSDP with --num-distributed-optimizer-instances = the replicas (its "DP-Outer
  //          size", megatron_fsdp.md table "Hybrid Data Parallelism Size").
  //  PyTorch FSDP  --use-torch-fsdp2, which arguments.py:1031-1047 refuses with pp > 1,
  //          ep > 1, fp16 or tied embeddings and which has no hybrid form there;
  //          --torch-fsdp2-no-reshard-after-forward keeps gathered weights (arguments.py:3218).
  // What none of these expresses is named on the line instead of a flag.
  std::vector<std::string> missing;
  auto megatron_fsdp = [&](const char* strategy) {
    out += fmt::format(" --use-megatron-fsdp --data-parallel-sharding-strategy {}", strategy);
  };
  if (p.zero_stage == 1) {
    out += " --use-distributed-optimizer";
  } else if (p.zero_stage == 2) {
    megatron_fsdp("optim_grads");
  } else if (p.zero_stage == 3) {
    // The implementation decides the flag: PyTorch FSDP (fsdp1/fsdp2) maps to Megatron-LM's
    // --use-torch-fsdp2 where it accepts the split, Megatron-FSDP to its own flags, and
    // DeepSpeed ZeRO-3, which Megatron-LM does not run, to Megatron-FSDP with a note.
    using Impl = ParallelismSpec::FsdpImpl;
    const bool hybrid = p.sharding == ParallelismSpec::Sharding::hybrid;
    const bool fsdp2 = p.torch_fsdp() && p.pp == 1 && p.ep == 1 && !hybrid &&
                       s.training.precision != Precision::fp16 && !s.model.tied_embeddings;
    if (fsdp2) {
      out += " --use-torch-fsdp2";
      if (!p.reshard_after_forward) out += " --torch-fsdp2-no-reshard-after-forward";
    } else {
      megatron_fsdp("optim_grads_params");
      if (hybrid) {
        out += fmt::format(" --num-distributed-optimizer-instances {}",
                           p.shard_group() / p.zero3_group(s.cluster.gpus_per_node));
      }
      if (p.torch_fsdp()) {
        missing.emplace_back(
            "PyTorch FSDP (Megatron-LM's --use-torch-fsdp2 refuses pp > 1, ep > 1, fp16, tied "
            "embeddings and hybrid sharding; Megatron-FSDP given instead)");
      } else if (p.fsdp_impl == Impl::deepspeed) {
        missing.emplace_back("DeepSpeed ZeRO-3 (Megatron-FSDP given instead)");
      }
      if (!p.reshard_after_forward) {
        missing.emplace_back("reshard_after_forward false under Megatron-FSDP");
      }
    }
  }
  if (p.zero_hpz) missing.emplace_back("ZeRO++ hpZ (DeepSpeed)");
  if (p.pipeline_engine == PipelineEngine::deepspeed) {
    missing.emplace_back("the DeepSpeed pipeline engine (Megatron-DeepSpeed)");
  }
  if (s.training.compression.scheme != CompressionSpec::Scheme::none) {
    missing.emplace_back(
        fmt::format("gradient compression {}", to_string(s.training.compression.scheme)));
  }
  switch (s.training.precision) {
    case Precision::fp16: out += " --fp16"; break;
    case Precision::bf16: out += " --bf16"; break;
    case Precision::fp8:
      if (!s.training.fp8) {
        out += " --bf16 --fp8-format hybrid";
      } else if (s.training.fp8->rowwise()) {
        // torchao's row-wise recipes have no Megatron-LM counterpart (--fp8-recipe).
        out += " --bf16";
        missing.emplace_back(
            fmt::format("fp8 scaling {} (torchao)", to_string(s.training.fp8->scaling)));
      } else {
        // Megatron-LM's Transformer Engine flags for the recipe (megatron/training/
        // arguments.py: --fp8-recipe tensorwise|delayed|mxfp8|blockwise).
        const Fp8Spec& f = *s.training.fp8;
        const char* recipe = f.scaling == Fp8Spec::Scaling::current  ? "tensorwise"
                             : f.scaling == Fp8Spec::Scaling::block  ? "blockwise"
                             : f.scaling == Fp8Spec::Scaling::mxfp8  ? "mxfp8"
                                                                     : "delayed";
        out += fmt::format(" --bf16 --fp8-format {} --fp8-recipe {}", to_string(f.format), recipe);
        if (f.scaling == Fp8Spec::Scaling::delayed) {
          out += fmt::format(" --fp8-amax-history-len {}", f.amax_history);
        }
        if (f.bf16_first + f.bf16_last > 0) {
          out += fmt::format(
              " --first-last-layers-bf16 --num-layers-at-start-in-bf16 {} "
              "--num-layers-at-end-in-bf16 {}",
              f.bf16_first, f.bf16_last);
        }
        if (f.param_allgather_fp8) out += " --fp8-param-gather";
      }
      break;
    case Precision::fp4: {
      // Megatron-Core --fp4-format e2m1 --fp4-recipe nvfp4 (transformer_config.py: fp4,
      // fp4_recipe nvfp4|custom) with the same bf16 layers (megatron/core/fp4_utils.py at
      // NVIDIA/Megatron-LM d98e8a64); MXFP4 has no recipe there.
      const Fp4Spec& f = *s.training.fp4;
      out += " --bf16";
      if (f.format == Fp4Spec::Format::nvfp4) {
        out += " --fp4-format e2m1 --fp4-recipe nvfp4";
        if (f.bf16_first + f.bf16_last > 0) {
          out += fmt::format(
              " --first-last-layers-bf16 --num-layers-at-start-in-bf16 {} "
              "--num-layers-at-end-in-bf16 {}",
              f.bf16_first, f.bf16_last);
        }
      } else {
        missing.emplace_back("fp4 format mxfp4 (no Megatron-Core recipe)");
      }
      break;
    }
    case Precision::fp32:
    case Precision::tf32: break;
  }
  // Optimizer-state precision: Megatron-Core's precision-aware optimizer (arguments.py
  // --use-precision-aware-optimizer, --exp-avg-dtype, --exp-avg-sq-dtype, --main-params-dtype
  // fp32|fp16), which megatron/core/optimizer/__init__.py refuses without the distributed
  // optimizer. 8-bit states and no master copy have no flag there.
  const TrainingSpec& t = s.training;
  const bool bf16_moments = t.optimizer_state_dtype == StateDtype::bf16;
  const bool fp16_master = t.main_params_dtype == MainParams::fp16;
  // CPU offload needs the precision-aware optimizer too (arguments.py asserts it).
  if (bf16_moments || fp16_master || t.optimizer_offload) {
    out += " --use-precision-aware-optimizer";
    if (bf16_moments) out += " --exp-avg-dtype bf16 --exp-avg-sq-dtype bf16";
    if (fp16_master) out += " --main-params-dtype fp16";
    if (p.zero_stage == 0) {
      missing.emplace_back("the precision-aware optimizer without the distributed optimizer");
    }
  }
  if (t.optimizer_offload) {
    out += fmt::format(" --optimizer-cpu-offload --optimizer-offload-fraction {:g}",
                       t.optimizer_offload->fraction);
    if (t.optimizer_offload->overlap) out += " --overlap-cpu-optimizer-d2h-h2d";
  }
  if (t.activation_offload) {
    out += fmt::format(" --cpu-offloading --cpu-offloading-num-layers {}",
                       t.activation_offload->layers);
  }
  if (t.optimizer_state_dtype == StateDtype::int8) {
    missing.emplace_back("8-bit optimizer states (bitsandbytes)");
  }
  if (t.main_params_dtype == MainParams::none) missing.emplace_back("no master weights");
  for (std::size_t i = 0; i < missing.size(); ++i) {
    out += (i == 0 ? "; no Megatron-LM flag for " : ", ") + missing[i];
  }
  return out;
}

}  // namespace orrery
