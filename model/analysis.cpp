#include "model/analysis.h"

#include "model/workload.h"

namespace orrery {

namespace {

// Everything but the memory.
StepFigures step_totals(const Scenario& s) {
  const ModelSpec& m = s.model;
  const ParallelismSpec& p = s.parallelism;
  // One unsharded sample: the totals do not depend on how the step is split.
  const Workload one = build_workload(m, s.training, Shard{});

  StepFigures f;
  double expert = 0;
  for (const Layer& l : one.layers) expert += l.expert_params();
  f.params_total = one.params();
  f.params_active = f.params_total - expert;
  if (m.moe) f.params_active += expert * m.moe->top_k / m.moe->experts;

  const double samples = p.global_batch;
  f.tokens_per_step = samples * (m.is_transformer() ? static_cast<double>(m.seq_len) : 1.0);
  // Backward GEMMs cost twice their forward, so model FLOPs are 3x the useful forward.
  f.model_flops = one.fwd_flops_useful() * (3.0 * samples);
  f.hardware_flops = (one.fwd_flops() + one.bwd_flops() +
                      one.recompute_flops(s.training.recompute, s.training.recompute_modules)) *
                     samples;
  const double gpus = s.cluster.gpus();
  f.model_flops_per_gpu = f.model_flops / gpus;
  f.hardware_flops_per_gpu = f.hardware_flops / gpus;
  return f;
}

}  // namespace

StepFigures analyse_step(const Scenario& s) {
  StepFigures f = step_totals(s);
  f.memory = estimate_memory(s);
  return f;
}

StepFigures analyse_step(const Scenario& s, bool memory_verdict_only) {
  StepFigures f = step_totals(s);
  f.memory = estimate_memory(s, build_workload(s.model, s.training, shard_of(s.parallelism)),
                             memory_verdict_only);
  return f;
}

StepFigures analyse_step(const Scenario& s, const Workload& sharded) {
  StepFigures f = step_totals(s);
  f.memory = estimate_memory(s, sharded);
  return f;
}

}  // namespace orrery
