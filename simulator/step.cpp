#include "simulator/step.h"

#include <fmt/format.h>

#include <algorithm>
#include <optional>
#include <utility>

#include "core/error.h"
#include "simulator/breakdown.h"
#include "simulator/step_passes.h"

namespace orrery {
namespace detail {
namespace {

// Throughput and FLOP rates from the step time and the step's figures.
void set_rates(StepResult& out) {
  const double step = out.step_time.value();
  out.tokens_per_s = out.figures.tokens_per_step / step;
  out.tflops_model_per_gpu = out.figures.model_flops_per_gpu.value() / step / 1e12;
  out.tflops_hardware_per_gpu = out.figures.hardware_flops_per_gpu.value() / step / 1e12;
  out.mfu = out.tflops_model_per_gpu * 1e12 / out.peak.value();
  out.hfu = out.tflops_hardware_per_gpu * 1e12 / out.peak.value();
}

// The note run_step leaves when a fault stops the step with a slow machine but not the
// healthy one; --full carries it over from the symmetric step (simulate).
constexpr const char* kSlowMachinesNotBlended = "slow machines (cluster.slow_nodes) not blended";

// Two breakdowns part by part through f.
template <class F>
Breakdown zip(const Breakdown& x, const Breakdown& y, F f) {
  Breakdown r;
  r.compute = f(x.compute, y.compute);
  r.recompute = f(x.recompute, y.recompute);
  r.tp_exposed = f(x.tp_exposed, y.tp_exposed);
  r.ep_exposed = f(x.ep_exposed, y.ep_exposed);
  r.cp_exposed = f(x.cp_exposed, y.cp_exposed);
  r.pp_exposed = f(x.pp_exposed, y.pp_exposed);
  r.dp_exposed = f(x.dp_exposed, y.dp_exposed);
  r.bubble = f(x.bubble, y.bubble);
  r.optimizer = f(x.optimizer, y.optimizer);
  r.offload_exposed = f(x.offload_exposed, y.offload_exposed);
  return r;
}

// Each stage's utilization and the busiest stage, from the step time and the breakdowns.
void mark_busiest(StepResult& a) {
  const double step = a.step_time.value();
  std::optional<double> busiest;  // the busy time of the critical stage so far
  for (size_t i = 0; i < a.stages.size(); ++i) {
    const Breakdown& x = a.stages[i].breakdown;
    const double busy = (x.compute + x.recompute + x.optimizer).value();
    a.stages[i].utilization = busy / step;
    if (!busiest || busy > *busiest + 1e-12) {
      busiest = busy;
      a.critical_stage = static_cast<int>(i);
    }
  }
}

// mark_busiest and the rates again, after the step time and the breakdowns changed.
void recount(StepResult& a) {
  mark_busiest(a);
  set_rates(a);
}

// The weighted mean of two steps, `a` with weight `w_a` and `b` with `w_b` (summing to 1):
// step time, each stage's breakdown, the bytes on each class of link and the rates. The
// graph, timeline and notes stay `a`'s.
StepResult blend_steps(StepResult a, const StepResult& b, double w_a, double w_b) {
  // For doubles and Seconds alike: the same products and sum.
  auto blend = [&](auto x, auto y) { return w_a * x + w_b * y; };
  a.step_time = Seconds(blend(a.step_time.value(), b.step_time.value()));
  for (size_t i = 0; i < a.stages.size(); ++i)
    a.stages[i].breakdown = zip(a.stages[i].breakdown, b.stages[i].breakdown, blend);
  for (auto& [cls, bytes] : a.bytes_by_link_class) {
    const auto it = b.bytes_by_link_class.find(cls);
    bytes = blend(bytes, it == b.bytes_by_link_class.end() ? 0.0 : it->second);
  }
  recount(a);
  return a;
}

// `a` plus (b - c), figure by figure: the step time and each stage's breakdown, then the
// busiest stage and the rates again; the bytes stay `a`'s.
StepResult add_difference(StepResult a, const StepResult& b, const StepResult& c) {
  a.step_time += b.step_time - c.step_time;
  for (size_t i = 0; i < a.stages.size(); ++i) {
    const Breakdown d = zip(b.stages[i].breakdown, c.stages[i].breakdown,
                            [](Seconds x, Seconds y) { return x - y; });
    a.stages[i].breakdown =
        zip(a.stages[i].breakdown, d, [](Seconds x, Seconds y) { return x + y; });
  }
  recount(a);
  return a;
}

// What the scenario's model gives every variant of its step, computed once.
struct Analysed {
  Workload work;        // on one rank (build_workload with shard_of)
  StepFigures figures;  // analyse_step, its memory from `work`
};

}  // namespace

// One step: the passes build the task graph (simulator/step_passes.h), the engine runs
// it, and the timeline is read back per stage. `analysed` holds the scenario's figures
// (analyse_step), from which the rates follow, and its workload on one rank. Without
// `gradient_sync` no data-parallel gradient is reduced (a local-SGD step between
// averagings).
StepResult run_step(const Scenario& s, const Hardware& hardware, const Analysed& analysed,
                    const SimulationOptions& opt, bool gradient_sync = true) {
  const StepFigures& figures = analysed.figures;
  StepContext ctx(s, opt, hardware, analysed.work);
  ctx.gradient_sync = gradient_sync;
  const ParallelismSpec& p = ctx.p;
  StepResult out;
  out.compute_model = ctx.model->describe();
  TaskGraph g;
  CommPlanner planner(ctx, g);
  LayerTemplates templates(ctx);
  const RankSet ranks(ctx.L, p, opt.full, s.cluster.gpus(), ctx.local_dp);
  const StageLayers layers(ctx);
  const PipelineTasks pipe = pipeline_pass(ctx, ranks, layers, templates, planner, g);
  GradientTasks grads(ranks.size());
  fsdp_pass(ctx, ranks, pipe, planner, g, grads);
  tied_embedding_pass(ctx, ranks, pipe, planner, grads, false);
  grad_sync_pass(ctx, ranks, layers, pipe, planner, g, grads);
  tied_embedding_pass(ctx, ranks, pipe, planner, grads, true);
  optimizer_pass(ctx, ranks, pipe, grads, planner, g);
  const std::vector<int> stage_of_rank = ranks.stages();
  out.stage_of_rank = stage_of_rank;
  for (size_t r = 0; r < ranks.size(); ++r) out.gpu_of_rank.push_back(ranks.gpu(r));
  EngineOptions options = ctx.engine;
  options.changes = fault_changes(ctx, stage_of_rank);
  // The passes grew the graph by doubling (up to twice the tasks held); trimmed before
  // the engine allocates its per-task arrays, the step's peak memory is lower (a sweep
  // simulates long pipelines on several threads at once: docs/simulator.md, "Memory").
  g.tasks.shrink_to_fit();
  g.edges.shrink_to_fit();
  EngineResult r = run_engine(g, ctx.capacity, options);
  const double step = r.end.value();
  out.step_time = Seconds(step);
  if (r.stalled) {
    // A failed node or link the step cannot route around: it never completes.
    out.stalled_at = Seconds(step);
    for (int st = 0; st < p.pp; ++st) out.stages.push_back({st, {}, 0.0});
    out.figures = figures;
    out.tasks = g.tasks.size();
    out.events = r.events;
    out.graph = std::move(g);
    out.timeline = std::move(r);
    return out;
  }
  // The stage's first simulated GPU (in full mode every GPU of a stage is simulated; the
  // one with data-, tensor- and context-parallel index 0 is reported).
  auto rank_of = [&](int st) {
    return static_cast<int>(std::find(stage_of_rank.begin(), stage_of_rank.end(), st) -
                            stage_of_rank.begin());
  };
  // Each stage's breakdown from a timeline of the graph, and the busiest stage.
  auto read_stages = [&](const EngineResult& timeline, StepResult& into) {
    into.step_time = timeline.end;
    const TimelineReader reader(g, timeline);
    std::vector<int> stage_ranks;
    for (int st = 0; st < p.pp; ++st) stage_ranks.push_back(rank_of(st));
    const std::vector<Breakdown> read = reader.breakdowns(stage_ranks, timeline.end);
    for (int st = 0; st < p.pp; ++st)
      into.stages.push_back({st, read[static_cast<size_t>(st)], 0.0});
    mark_busiest(into);
  };
  read_stages(r, out);
  out.bytes_by_link_class = planner.traffic();
  out.figures = figures;
  const GpuSpec& gpu = s.cluster.gpu;
  out.peak = gpu.peak.count(Dtype::bf16)   ? gpu.peak.at(Dtype::bf16)
             : gpu.peak.count(Dtype::fp16) ? gpu.peak.at(Dtype::fp16)
                                           : gpu.peak.begin()->second;
  set_rates(out);
  out.tasks = g.tasks.size();
  out.events = r.events;
  if (p.zero_stage >= 1 && s.training.overlap_param_gather && p.shard_group() > 1) {
    if (!param_gather_in_forward(ctx)) {
      out.notes.push_back(
          "distributed-optimizer parameter all-gather assumed hidden under the next step's "
          "forward (overlap_param_gather)");
    } else if (s.model.moe) {
      out.notes.push_back(
          "distributed-optimizer all-gather of the expert parameters assumed hidden under the "
          "next step's forward (overlap_param_gather; the dense parameters' is simulated)");
    }
  }
  if (!s.model.is_transformer()) {
    out.notes.push_back(
        "convolutions timed as implicit GEMMs at the GEMM plateau: no measured cuDNN "
        "convolution efficiency is cited for this GPU, so the step is likely fast; calibrate "
        "before relying on it");
  }
  if (p.pp > 1 && p.pipeline_engine == PipelineEngine::megatron && p.tp > 1) {
    out.notes.push_back(
        "pipeline transfers send 1/tp of the activation per GPU "
        "(Megatron-LM scatter/gather); the receiver's re-gather is not timed");
  }
  if (p.pp > 1 && p.pipeline_engine == PipelineEngine::deepspeed && p.tp > 1) {
    out.notes.push_back(
        "pipeline transfers send 1/tp of the activation and of its gradient per GPU "
        "(DeepSpeed PartitionedTensor); the tensor-parallel all-gathers that rebuild them "
        "(one per received activation, two per backward) are not timed");
  }
  for (const PlannedComm& c : g.comms)
    for (const PlannedPhase& ph : c.phases)
      for (const PlannedFlow& f : ph.flows)
        for (const FlowLink& l : f.links) out.links.emplace(l.link, ctx.topo.link(l.link));
  // Slow machines (cluster.slow_nodes): with probability q at least one of the job's
  // machines is slow, and every GPU waits for it at the collectives, so its stage sets the
  // pace; the step is the blend of the two. The slow machine computes for the busiest
  // stage, where it costs the most: the pipeline runs at its slowest stage's pace, so with
  // balanced stages any stage costs about as much, and with unbalanced ones this is the
  // upper end. The same graph runs again with that stage's GPU computing at the slow speed
  // (its compute only, not the communication it waits for). A job of one machine has
  // nothing faster to hold up: it is timed at the presets' rates, which were measured on
  // single machines (the 0.5 % chance that its own is slow would add 0.05 %). --full takes
  // the term from the symmetric step (simulate, below).
  if (const double q = slow_node_probability(s.cluster); q > 0 && !opt.full) {
    // The slow GPU's compute tasks take their compute part, and the recomputation in it,
    // 1 / speed as long; the exposed communication and offload waits a layer template folds
    // into a task stay as they are. A fault on the GPU then acts on the longer tasks.
    const int slow_rank = rank_of(out.critical_stage);
    const double speed = s.cluster.slow_nodes.speed;
    std::vector<std::pair<int, Task>> kept;
    for (size_t i = 0; i < g.tasks.size(); ++i) {
      Task& t = g.tasks[i];
      if (t.rank != slow_rank || t.comm || t.kind == TaskKind::pp_comm) continue;
      kept.emplace_back(static_cast<int>(i), t);
      const Seconds waits = t.tp + t.ep + t.cp + t.offload;
      t.work = (t.work - waits) / speed + waits;
      t.recompute = t.recompute / speed;
      t.selective = t.selective / speed;
    }
    const EngineResult slowed = run_engine(g, ctx.capacity, options);
    // The slower step's breakdown reads the graph it ran (the slowed tasks), so the graph
    // is restored after it.
    StepResult with;
    if (!slowed.stalled) read_stages(slowed, with);
    for (const auto& [i, t] : kept) g.tasks[static_cast<size_t>(i)] = t;
    if (slowed.stalled) {
      // A fault stops the slower step before it ends (a node failing after the healthy step
      // would have finished): no step with a slow machine to blend.
      out.notes.push_back(fmt::format(
          "{}: with one on stage {} the step would not finish before the faults stop it at {}",
          kSlowMachinesNotBlended, out.critical_stage, format_seconds(slowed.end)));
    } else {
      with.bytes_by_link_class = out.bytes_by_link_class;
      const SlowNodesEffect effect{q, out.critical_stage, out.step_time, with.step_time};
      out = blend_steps(std::move(out), with, 1.0 - q, q);
      out.slow_nodes = effect;
    }
  }
  out.graph = std::move(g);
  out.timeline = std::move(r);
  return out;
}

}  // namespace detail

double metric_value(const StepResult& r, const Scenario& s, Metric m) {
  switch (m) {
    case Metric::step_time_s:
      return r.step_time.value();
    case Metric::tokens_per_s:
      return r.tokens_per_s;
    case Metric::tokens_per_s_per_gpu:
      return r.tokens_per_s / s.cluster.gpus();
    case Metric::tflops_per_gpu_model:
      return r.tflops_model_per_gpu;
    case Metric::tflops_per_gpu_hardware:
      return r.tflops_hardware_per_gpu;
    case Metric::mfu:
      return r.mfu;
    case Metric::speedup:
      // One run's share of a ratio of two (report/validate_report.cpp divides).
      return r.tokens_per_s;
  }
  return 0;
}

namespace {

// Local SGD: `period` - 1 steps without gradient reduction, then one that averages. The
// figures are the mean over the period; the graph and timeline are the averaging step's.
StepResult average_period(const StepResult& sync, const StepResult& between, int period) {
  const double w = 1.0 / period;
  StepResult out = detail::blend_steps(sync, between, w, 1.0 - w);
  if (sync.slow_nodes && between.slow_nodes) {
    // The two steps without and with a slow node, as means over the period too.
    const SlowNodesEffect &a = *sync.slow_nodes, &b = *between.slow_nodes;
    out.slow_nodes->without = w * a.without + (1.0 - w) * b.without;
    out.slow_nodes->with = w * a.with + (1.0 - w) * b.with;
  }
  out.notes.push_back(fmt::format(
      "local SGD: parameters averaged every {} steps; figures are the mean over that period, "
      "the trace shows the averaging step",
      period));
  return out;
}

// The step and its variants (local SGD's steps between averagings, 1-bit Adam's
// warm-up, the step without faults), all on one hardware. The variants differ from `s`
// in compression and faults only, which change neither the workload, the figures nor the
// compute model, so `analysed` and `hardware` serve them all.
StepResult simulate(const Scenario& s, const Hardware& hardware, const detail::Analysed& analysed,
                    const SimulationOptions& options) {
  if (options.full && s.parallelism.zero_stage >= 3 &&
      s.parallelism.sharding == ParallelismSpec::Sharding::hybrid) {
    throw InputError(s.where("parallelism.sharding"), "parallelism.sharding", "hybrid",
                     "--full does not simulate hybrid sharding yet; run without --full");
  }
  using Scheme = CompressionSpec::Scheme;
  const CompressionSpec& c = s.training.compression;
  auto step_of = [&](const Scenario& v, const SimulationOptions& o) {
    if (c.scheme != Scheme::local_sgd) return detail::run_step(v, hardware, analysed, o);
    // A step between averagings reduces no gradients.
    const StepResult between = detail::run_step(v, hardware, analysed, o, false);
    return average_period(detail::run_step(v, hardware, analysed, o), between, c.period);
  };
  // The step in the options' mode with the slow-node term. --full takes the term from the
  // symmetric step (the two modes agree on symmetric clusters) and adds it figure by figure,
  // so that a step of millions of tasks is not run twice.
  auto step_with_slow_nodes = [&](const Scenario& v) {
    StepResult r = step_of(v, options);
    if (!options.full || slow_node_probability(v.cluster) == 0 || r.stalled_at) return r;
    SimulationOptions symmetric = options;
    symmetric.full = false;
    const StepResult blended = step_of(v, symmetric);
    Scenario none = v;
    none.cluster.slow_nodes.fraction = 0;
    const StepResult without = step_of(none, symmetric);
    if (!blended.slow_nodes || blended.stalled_at || without.stalled_at) {
      // The symmetric step says why it did not blend (a fault stopping the slower step).
      for (const std::string& n : blended.notes)
        if (n.rfind(detail::kSlowMachinesNotBlended, 0) == 0) r.notes.push_back(n);
      return r;
    }
    const Seconds healthy = r.step_time;
    r = detail::add_difference(std::move(r), blended, without);
    r.slow_nodes = blended.slow_nodes;
    r.slow_nodes->without = healthy;
    r.slow_nodes->with = healthy + (blended.slow_nodes->with - blended.slow_nodes->without);
    return r;
  };
  StepResult out = step_with_slow_nodes(s);
  if (c.scheme == Scheme::onebit && c.warmup_steps > 0) {
    // 1-bit Adam's uncompressed warm-up steps run at the plain step's speed.
    Scenario plain = s;
    plain.training.compression.scheme = Scheme::none;
    out.warmup_step_time = step_with_slow_nodes(plain).step_time;
  }
  if (!s.faults.empty()) {
    Scenario healthy = s;
    healthy.faults.clear();
    const StepResult base = simulate(healthy, hardware, analysed, options);
    out.baseline_step_time = base.step_time;
    for (const StageReport& st : base.stages) out.baseline_stages.push_back(st.breakdown);
  }
  if (s.training.fp8) {
    out.notes.push_back("fp8 recipe: " + describe(*s.training.fp8));
  }
  if (c.scheme != Scheme::none) {
    out.notes.push_back(fmt::format(
        "gradient compression {}: convergence factor {:g} (steps to the same target over "
        "uncompressed steps){}",
        to_string(c.scheme), c.convergence,
        s.origin.count("training.gradient_compression.convergence") ? "" : ", assumed"));
  }
  return out;
}

}  // namespace

bool op_level_supported(const Scenario& s) {
  const ParallelismSpec& p = s.parallelism;
  return p.zero_stage < 3 && p.schedule != PipelineSchedule::zero_bubble_h1 &&
         p.schedule != PipelineSchedule::dualpipe && !p.moe_a2a_overlap;
}

StepResult simulate_step(const Scenario& s, const Hardware& hardware,
                         const SimulationOptions& options) {
  ORRERY_CHECK(!options.op_level || op_level_supported(s),
               "op-level simulation of a scenario it supports (op_level_supported)");
  detail::Analysed analysed;
  analysed.work = build_workload(s.model, s.training, shard_of(s.parallelism));
  analysed.figures = analyse_step(s, analysed.work);
  return simulate(s, hardware, analysed, options);
}

StepResult simulate_step(const Scenario& s, const SimulationOptions& options) {
  return simulate_step(s, resolve_hardware(s), options);
}

}  // namespace orrery
