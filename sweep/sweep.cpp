#include "sweep/sweep.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <limits>
#include <map>
#include <thread>

#include "model/analysis.h"
#include "model/training_run.h"
#include "scenario/validate.h"
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

std::vector<int> divisors_up_to(int n, int limit) {
  std::vector<int> out;
  for (int d = 1; d <= n && d <= limit; ++d)
    if (n % d == 0) out.push_back(d);
  return out;
}

bool derives_dp(const SweepSpec& w) {
  return !w.dp.swept() && (w.tp.swept() || w.pp.swept() || w.nodes.swept());
}

// The objectives' values for a step time; utilisation 0 gives the lower bound.
std::vector<double> objective_values(const SweepSpec& w, const Figures& f) {
  std::vector<double> out;
  for (Objective o : w.objectives) {
    switch (o) {
      case Objective::step_time: out.push_back(f.step_time_s); break;
      case Objective::time_to_train: out.push_back(f.time_to_train_s.value_or(kInf)); break;
      case Objective::cost: out.push_back(f.cost_usd.value_or(kInf)); break;
      case Objective::energy: out.push_back(f.energy_kwh.value_or(kInf)); break;
    }
  }
  return out;
}

void add_run(const Scenario& s, Figures& f, double utilization,
             std::optional<Seconds> warmup = std::nullopt) {
  if (!s.training.target) return;
  const RunEstimate e = estimate_run(s, Seconds(f.step_time_s), utilization, warmup);
  f.time_to_train_s = e.time.value();
  if (e.usd) f.cost_usd = *e.usd;
  f.energy_kwh = e.energy_kwh;
}

Figures simulate(const Scenario& s) {
  const StepResult r = simulate_step(s);
  Figures f;
  f.step_time_s = r.step_time.value();
  f.breakdown = r.stages.at(static_cast<std::size_t>(r.critical_stage)).breakdown;
  f.tokens_per_s = r.tokens_per_s;
  f.mfu = r.mfu;
  double utilization = 0;
  for (const StageReport& st : r.stages) utilization += st.utilization;
  utilization /= static_cast<double>(r.stages.size());
  add_run(s, f, utilization, r.warmup_step_time);
  return f;
}

std::string reason_of(const InputError& e) {
  return e.key().empty() ? e.why() : e.key() + ": " + e.why();
}

bool over_budget(const SweepSpec& w, const Figures& f) {
  return w.max_cost_usd && f.cost_usd && *f.cost_usd > *w.max_cost_usd;
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
    if (w.max_gpus && c.gpus > *w.max_gpus) {
      c.status = Status::over_gpus;
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
    c.memory_bytes = f.memory.worst().memory.total().value();
    c.capacity_bytes = f.memory.capacity.value();
    if (w.fits_memory && !f.memory.fits) {
      c.status = Status::out_of_memory;
      return;
    }
    Figures lb;
    lb.step_time_s = step_time_bound(s);
    add_run(s, lb, 0.0);
    c.bound = objective_values(w, lb);
    if (over_budget(w, lb)) {
      c.status = Status::over_budget;
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

// Phase 2: the waves. `mine(position)` says whether this process evaluates the candidate
// at that position of the bound order; `evaluate` simulates (or looks up) one candidate.
// Candidates neither pruned nor evaluated here keep no figures.
template <class Evaluate>
void decide(const SweepInput& in, std::vector<CandidateResult>& cands,
            int shard, int shards,
            const SweepOptions& o, Evaluate evaluate) {
  const SweepSpec& w = in.spec;
  std::vector<int> order;
  for (const auto& c : cands)
    if (c.status == Status::pruned) order.push_back(c.index);
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

void finish(const SweepInput& in, SweepResult& r) {
  const SweepSpec& w = in.spec;
  r.valid = r.simulated = r.pruned = 0;
  std::vector<int> sim;
  for (const auto& c : r.candidates) {
    if (c.status != Status::invalid) ++r.valid;
    if (c.status == Status::pruned) ++r.pruned;
    if (c.status == Status::simulated) {
      ++r.simulated;
      sim.push_back(c.index);
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

CandidateResult evaluate_baseline(const SweepInput& in) {
  CandidateResult b;
  b.index = -1;
  const Scenario& s = in.baseline;
  const ParallelismSpec& p = s.parallelism;
  b.a.nodes = s.cluster.nodes;
  b.a.tp = p.tp;
  b.a.pp = p.pp;
  b.a.vp = p.virtual_pipeline_stages;
  b.a.dp = p.dp;
  b.a.microbatch = p.microbatch;
  b.a.global_batch = p.global_batch;
  b.a.zero_stage = p.zero_stage;
  b.a.recompute = s.training.recompute;
  b.a.precision = s.training.precision;
  b.a.compression = s.training.compression.scheme;
  b.gpus = s.cluster.gpus();
  b.dp = s.parallelism.dp;
  b.gpu_name = s.cluster.gpu.name;
  try {
    const StepFigures f = analyse_step(s);
    b.memory_bytes = f.memory.worst().memory.total().value();
    b.capacity_bytes = f.memory.capacity.value();
    b.figures = simulate(s);
    b.objective = objective_values(in.spec, *b.figures);
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
  r.baseline = evaluate_baseline(in);

  std::map<int, const CandidateResult*> known;
  if (from_shards) {
    for (const SweepResult& sr : *from_shards)
      for (const CandidateResult& c : sr.candidates)
        if (c.status == Status::simulated || c.status == Status::unsupported) known[c.index] = &c;
  }
  decide(in, r.candidates, shard, shards, o, [&](CandidateResult& c) {
    if (from_shards) {
      auto it = known.find(c.index);
      if (it == known.end()) {
        throw InputError({"orrery merge", std::nullopt}, "", "",
                         fmt::format("no shard simulated candidate {}: give every shard's "
                                     "results of the same sweep",
                                     c.index));
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
      c.objective = objective_values(in.spec, *c.figures);
      if (over_budget(in.spec, *c.figures)) c.status = Status::over_budget;
    }
  });
  finish(in, r);
  return r;
}

}  // namespace

const char* to_string(Status s) {
  switch (s) {
    case Status::invalid: return "invalid";
    case Status::over_gpus: return "over_max_gpus";
    case Status::out_of_memory: return "out_of_memory";
    case Status::over_budget: return "over_budget";
    case Status::pruned: return "pruned";
    case Status::unsupported: return "unsupported";
    case Status::simulated: return "simulated";
  }
  return "?";
}

std::vector<Assignment> expand(const SweepInput& in) {
  const SweepSpec& w = in.spec;
  std::vector<Assignment> out;
  auto values = [](const IntAxis& axis, int fallback) {
    return axis.values.empty() ? std::vector<int>{fallback} : axis.values;
  };
  for (std::size_t g = 0; g < in.raw.size(); ++g) {
    const Scenario& base = in.raw[g];
    const ParallelismSpec& bp = base.parallelism;
    for (int nodes : values(w.nodes, base.cluster.nodes)) {
      const int gpus = nodes * base.cluster.gpus_per_node;
      const std::vector<Precision> precisions =
          w.precision.empty() ? std::vector<Precision>{base.training.precision} : w.precision;
      const std::vector<CompressionSpec::Scheme> schemes =
          w.compression.empty() ? std::vector{base.training.compression.scheme} : w.compression;
      const std::vector<Recompute> recomputes =
          w.recompute.empty() ? std::vector<Recompute>{base.training.recompute} : w.recompute;
      for (Precision prec : precisions)
        for (auto scheme : schemes)
          for (int gb : values(w.global_batch, bp.global_batch)) {
            const std::vector<int> tps =
                w.tp.automatic ? divisors_up_to(gpus, std::max(1, base.model.heads))
                               : values(w.tp, bp.tp);
            const std::vector<int> pps =
                w.pp.automatic ? divisors_up_to(gpus, std::max(1, base.model.layers))
                               : values(w.pp, bp.pp);
            for (int tp : tps)
              for (int pp : pps) {
                std::vector<int> vps;
                if (w.vp.automatic) {
                  vps.push_back(1);
                  for (int v = 2; pp >= 2 && pp * v <= base.model.layers; ++v)
                    if (base.model.layers % (pp * v) == 0) vps.push_back(v);
                } else {
                  vps = values(w.vp, bp.virtual_pipeline_stages);
                }
                const std::vector<int> dps =
                    w.dp.swept() ? w.dp.values : std::vector<int>{derives_dp(w) ? 0 : bp.dp};
                for (int vp : vps)
                  for (int dp : dps) {
                    const int model_ranks = tp * pp * bp.cp;
                    const int dp_eff =
                        dp > 0 ? dp : (gpus % model_ranks == 0 ? gpus / model_ranks : 0);
                    std::vector<int> mbs;
                    if (w.microbatch.automatic && dp_eff > 0) {
                      for (int b = 1; b * dp_eff <= gb; ++b)
                        if (gb % (b * dp_eff) == 0) mbs.push_back(b);
                    }
                    if (mbs.empty()) mbs = values(w.microbatch, bp.microbatch);
                    for (int mb : mbs)
                      for (int zero : values(w.zero_stage, bp.zero_stage))
                        for (Recompute rc : recomputes) {
                          Assignment a;
                          a.gpu = static_cast<int>(g);
                          a.nodes = nodes;
                          a.tp = tp;
                          a.pp = pp;
                          a.vp = vp;
                          a.dp = dp;
                          a.microbatch = mb;
                          a.global_batch = gb;
                          a.zero_stage = zero;
                          a.recompute = rc;
                          a.precision = prec;
                          a.compression = scheme;
                          out.push_back(a);
                        }
                  }
              }
          }
    }
  }
  if (out.empty()) {
    throw InputError(w.where("sweep"), "sweep", "", "the sweep has no candidates");
  }
  return out;
}

Scenario candidate_scenario(const SweepInput& in, const Assignment& a) {
  const SweepSpec& w = in.spec;
  Scenario s = in.raw.at(static_cast<std::size_t>(a.gpu));
  ParallelismSpec& p = s.parallelism;
  auto mark = [&](const char* sweep_key, const char* key) { s.origin[key] = w.where(sweep_key); };
  if (w.nodes.swept()) {
    s.cluster.nodes = a.nodes;
    mark("sweep.nodes", "cluster.nodes");
  }
  if (!w.precision.empty()) {
    s.training.precision = a.precision;
    mark("sweep.precision", "training.precision");
    // training.fp8 says how the fp8 candidates train; the others have no use for it.
    if (a.precision != Precision::fp8) s.training.fp8.reset();
  }
  if (!w.compression.empty()) {
    s.training.compression.scheme = a.compression;
    mark("sweep.compression", "training.gradient_compression.scheme");
  }
  if (w.global_batch.swept()) {
    p.global_batch = a.global_batch;
    mark("sweep.global_batch", "parallelism.global_batch");
  }
  if (w.tp.swept()) {
    p.tp = a.tp;
    mark("sweep.tp", "parallelism.tp");
  }
  if (w.pp.swept()) {
    p.pp = a.pp;
    mark("sweep.pp", "parallelism.pp");
  }
  if (w.vp.swept()) {
    p.virtual_pipeline_stages = a.vp;
    mark("sweep.vp", "parallelism.virtual_pipeline_stages");
    // The schedule follows the virtual stages unless the file names another kind.
    if (p.schedule == PipelineSchedule::one_f_one_b ||
        p.schedule == PipelineSchedule::interleaved_1f1b) {
      s.origin.erase("parallelism.schedule");
    }
  }
  if (w.dp.swept()) {
    p.dp = a.dp;
    mark("sweep.dp", "parallelism.dp");
  } else if (derives_dp(w)) {
    s.origin.erase("parallelism.dp");
  }
  if (w.microbatch.swept()) {
    p.microbatch = a.microbatch;
    mark("sweep.microbatch", "parallelism.microbatch");
  }
  if (w.zero_stage.swept()) {
    p.zero_stage = a.zero_stage;
    mark("sweep.zero_stage", "parallelism.zero_stage");
  }
  if (!w.recompute.empty()) {
    s.training.recompute = a.recompute;
    mark("sweep.recompute", "training.recompute");
  }
  complete_and_validate(s);
  return s;
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

std::vector<std::pair<std::string, std::string>> candidate_settings(const SweepInput& in,
                                                                    const CandidateResult& c) {
  const SweepSpec& w = in.spec;
  const Assignment& a = c.a;
  std::vector<std::pair<std::string, std::string>> out;
  auto num = [](int v) { return std::to_string(v); };
  if (!w.gpu.empty()) out.emplace_back("cluster.gpu", w.gpu.at(static_cast<std::size_t>(a.gpu)));
  if (w.nodes.swept()) out.emplace_back("cluster.nodes", num(a.nodes));
  if (w.tp.swept()) out.emplace_back("parallelism.tp", num(a.tp));
  if (w.pp.swept()) out.emplace_back("parallelism.pp", num(a.pp));
  if (w.dp.swept() || derives_dp(w)) out.emplace_back("parallelism.dp", num(c.dp));
  if (w.vp.swept()) {
    out.emplace_back("parallelism.virtual_pipeline_stages", num(a.vp));
    const Scenario& raw = in.raw.at(static_cast<std::size_t>(a.gpu));
    if (raw.origin.count("parallelism.schedule") &&
        (raw.parallelism.schedule == PipelineSchedule::one_f_one_b ||
         raw.parallelism.schedule == PipelineSchedule::interleaved_1f1b)) {
      out.emplace_back("parallelism.schedule", a.vp > 1 ? "interleaved-1f1b" : "1f1b");
    }
  }
  if (w.microbatch.swept()) out.emplace_back("parallelism.microbatch", num(a.microbatch));
  if (w.global_batch.swept()) out.emplace_back("parallelism.global_batch", num(a.global_batch));
  if (w.zero_stage.swept()) out.emplace_back("parallelism.zero_stage", num(a.zero_stage));
  if (!w.recompute.empty()) out.emplace_back("training.recompute", to_string(a.recompute));
  if (!w.precision.empty()) {
    out.emplace_back("training.precision", to_string(a.precision));
    // A candidate other than fp8 trains without the fp8 recipe (candidate_scenario).
    if (a.precision != Precision::fp8 && in.raw.at(static_cast<std::size_t>(a.gpu)).training.fp8) {
      out.emplace_back("training.fp8", "");
    }
  }
  if (!w.compression.empty()) {
    out.emplace_back("training.gradient_compression.scheme", to_string(a.compression));
  }
  return out;
}

std::string megatron_arguments(const Scenario& s) {
  const ParallelismSpec& p = s.parallelism;
  std::string out = fmt::format("--tensor-model-parallel-size {} --pipeline-model-parallel-size {}",
                                p.tp, p.pp);
  if (p.virtual_pipeline_stages > 1) {
    out += fmt::format(" --num-layers-per-virtual-pipeline-stage {}",
                       s.model.layers / (p.pp * p.virtual_pipeline_stages));
  }
  if (p.cp > 1) out += fmt::format(" --context-parallel-size {}", p.cp);
  if (p.ep > 1) out += fmt::format(" --expert-model-parallel-size {}", p.ep);
  if (p.sequence_parallel) out += " --sequence-parallel";
  out += fmt::format(" --micro-batch-size {} --global-batch-size {}", p.microbatch,
                     p.global_batch);
  switch (s.training.recompute) {
    case Recompute::none: break;
    case Recompute::selective: out += " --recompute-granularity selective"; break;
    case Recompute::full:
      // Every layer recomputed from its input (the "uniform, 1 layer" form of full).
      out += " --recompute-granularity full --recompute-method uniform --recompute-num-layers 1";
      break;
  }
  if (p.zero_stage == 3) {
    out += " --use-torch-fsdp2";
  } else if (p.zero_stage >= 1) {
    out += " --use-distributed-optimizer";
  }
  switch (s.training.precision) {
    case Precision::fp16: out += " --fp16"; break;
    case Precision::bf16: out += " --bf16"; break;
    case Precision::fp8:
      if (!s.training.fp8) {
        out += " --bf16 --fp8-format hybrid";
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
    case Precision::fp32:
    case Precision::tf32: break;
  }
  return out;
}

}  // namespace orrery
