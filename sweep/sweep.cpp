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

// The objectives' values for a step time; utilisation 0 gives the lower bound.
std::vector<double> objective_values(const SweepSpec& w, const Figures& f) {
  std::vector<double> out;
  for (Objective o : w.objectives) {
    switch (o) {
      case Objective::step_time: out.push_back(f.step_time.value()); break;
      case Objective::time_to_train:
        out.push_back(f.time_to_train ? f.time_to_train->value() : kInf);
        break;
      case Objective::cost: out.push_back(f.cost_usd.value_or(kInf)); break;
      case Objective::energy: out.push_back(f.energy_kwh.value_or(kInf)); break;
    }
  }
  return out;
}

// The whole-run objectives from a run estimate.
void set_run(Figures& f, const RunEstimate& e) {
  f.time_to_train = e.time;
  if (e.usd) f.cost_usd = *e.usd;
  f.energy_kwh = e.energy_kwh;
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
  if (p.run) set_run(f, *p.run);
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
    c.memory = MemoryUse{f.memory.worst().memory.total(), f.memory.capacity};
    if (w.fits_memory && !f.memory.fits) {
      c.status = Status::out_of_memory;
      return;
    }
    Figures lb;
    lb.step_time = step_time_bound(s);
    add_bound_run(s, lb);
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

CandidateResult evaluate_baseline(const SweepInput& in) {
  CandidateResult b;  // no index: not one of the candidates
  const Scenario& s = in.baseline;
  for (const detail::Axis& axis : detail::axes())
    if (axis.set) axis.set(b.a, axis.of_scenario(s));
  b.gpus = s.cluster.gpus();
  b.dp = s.parallelism.dp;
  b.gpu_name = s.cluster.gpu.name;
  try {
    const StepFigures f = analyse_step(s);
    b.memory = MemoryUse{f.memory.worst().memory.total(), f.memory.capacity};
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
        if (c.status == Status::simulated || c.status == Status::unsupported) known[*c.index] = &c;
  }
  decide(in, r.candidates, shard, shards, o, [&](CandidateResult& c) {
    if (from_shards) {
      auto it = known.find(*c.index);
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
    // Megatron-FSDP with ZeRO-3 sharding (docs/user-guide/parallelism-guide.md, Megatron-LM
    // commit d98e8a64); otherwise PyTorch FSDP2.
    out += p.fsdp_impl == ParallelismSpec::FsdpImpl::megatron_fsdp
               ? " --use-megatron-fsdp --data-parallel-sharding-strategy optim_grads_params"
               : " --use-torch-fsdp2";
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
