// ZeRO-2 as its implementations run it: sharded gradients cannot be kept whole across
// micro-batches, so every micro-batch's backward reduce-scatters its gradients (ZeRO-1,
// Megatron's distributed optimizer, reduce-scatters once per step). Counted by hand on
// two GPUs of one DGX A100.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <string>

#include "model/memory.h"
#include "scenario/load.h"
#include "simulator/step.h"

namespace orrery {
namespace {

// 2 A100s of one node, data parallel only: tp 1, pp 1, dp 2, micro-batch 1, global batch
// 8, so m = 8 / (1 x 2) = 4 micro-batches per step. A 2-layer model with untied embedding
// and head, 32 tokens a sequence: little compute beside large gradients.
// `training` adds keys to the training section.
Scenario two_gpus(const std::string& parallelism, const std::string& training = "") {
  const std::string yaml = fmt::format(R"(
cluster: {{preset: dgx-a100, nodes: 1, gpus_per_node: 2}}
model: {{family: decoder, layers: 2, hidden: 4096, heads: 32, ffn: 16384, vocab: 32768,
        seq_len: 32, activation: gelu, norm: rmsnorm, position_embedding: rope,
        tied_embeddings: false, bias: false, dropout: false}}
parallelism: {{tp: 1, pp: 1, dp: 2, microbatch: 1, global_batch: 8, {}}}
training: {{precision: bf16, recompute: none{}}}
)",
                                       parallelism, training);
  return load_scenario_text(yaml, "two-gpus.yaml");
}

// One gradient bucket above the whole gradient.
const char* const kOneBucket = ", grad_bucket_params: 1.0e10";

// Rank 0's gradient reductions: how many, their bytes S summed, and their durations
// on the simulated timeline summed.
struct Reductions {
  std::size_t count = 0;
  double bytes = 0;
  double seconds = 0;
};

Reductions reductions(const StepResult& r) {
  Reductions out;
  for (std::size_t i = 0; i < r.graph.tasks.size(); ++i) {
    const Task& t = r.graph.tasks[i];
    if (t.kind != TaskKind::dp_comm || t.rank != 0 || !t.comm) continue;
    const PlannedComm& c = r.graph.comms[static_cast<std::size_t>(*t.comm)];
    EXPECT_EQ(c.description.rfind("reduce_scatter", 0), 0u) << c.description;
    ++out.count;
    out.bytes += c.bytes.value();
    out.seconds += r.timeline.timing[i].duration().value();
  }
  return out;
}

// Parameters: embedding and head V h = 32768 x 4096 = 134,217,728 each (the head also
// holds the final norm, 4096); a layer 4 h^2 + 2 h ffn = 4 x 4096^2 + 2 x 4096 x 16384 =
// 201,326,592 plus two norms of 4096. In all 2 x 134,217,728 + 2 x 201,334,784 + 4096 =
// 671,109,120.
constexpr double kParams = 2 * 134217728.0 + 2 * (201326592.0 + 2 * 4096) + 4096;

TEST(Zero2, ReduceScattersEveryMicroBatchsGradients) {
  // The workload holds the parameters counted above.
  const StepResult z1 = simulate_step(two_gpus("zero_stage: 1"));
  const double grad_bytes = state_bytes_per_param(two_gpus("zero_stage: 1").training).gradient;
  EXPECT_NEAR(z1.figures.params_total, kParams, 1e-9 * kParams);
  // ZeRO-1 with one bucket (1e10 > 671M): one reduce-scatter of S = P x grad_bytes per
  // step.
  const StepResult one = simulate_step(two_gpus("zero_stage: 1", kOneBucket));
  const Reductions r1 = reductions(one);
  EXPECT_EQ(r1.count, 1u);
  EXPECT_NEAR(r1.bytes, kParams * grad_bytes, 1e-9 * r1.bytes);
  // ZeRO-2 under DeepSpeed (a 5e8 bucket: the 671M elements in backward order, head
  // 134.2M + layer 2 201.3M = 335.5M, then layer 1 would overflow it -> #1; layer 1 +
  // embedding = 335.6M at the end of the backward -> #2): 2 reduce-scatters in each of
  // the 4 micro-batches, 8 in all, carrying 4 S.
  const StepResult ds = simulate_step(two_gpus("zero_stage: 2, pipeline_engine: deepspeed"));
  const Reductions rd = reductions(ds);
  EXPECT_EQ(rd.count, 4u * 2u);
  EXPECT_NEAR(rd.bytes, 4 * kParams * grad_bytes, 1e-9 * rd.bytes);
  // With a bucket above the gradient, one a micro-batch: 4 reduce-scatters of S.
  const StepResult ds1 =
      simulate_step(two_gpus("zero_stage: 2, pipeline_engine: deepspeed", kOneBucket));
  const Reductions rd1 = reductions(ds1);
  EXPECT_EQ(rd1.count, 4u);
  EXPECT_NEAR(rd1.bytes, 4 * kParams * grad_bytes, 1e-9 * rd1.bytes);
  // Each moves (n - 1)/n S = S/2 out of each GPU over NVLink, at the 300 GB/s line rate
  // times the ring efficiency 0.77 times the bus-bandwidth curve at S (dgx-a100 preset;
  // the curve stands for latency too, simulator/collectives.cpp). S = 671,109,120 x 4 =
  // 2,684,436,480 bytes lies between the curve's 1 GiB (0.985) and 8 GiB (1.0) points, a
  // fraction ln(2.5001) / ln(8) = 0.44066 of the way in log size: 0.99161. One
  // reduce-scatter: 1,342,218,240 / (300e9 x 0.77 x 0.99161) = 5.8596 ms.
  const double one_rs = kParams * grad_bytes / 2 / (300e9 * 0.77 * 0.99161);
  EXPECT_NEAR(one_rs, 5.8596e-3, 1e-7);
  EXPECT_NEAR(rd1.seconds, 4 * one_rs, 1e-3 * rd1.seconds);
  // Megatron-FSDP optim_grads: one reduce-scatter per unit (each layer, the embedding
  // and the head) per micro-batch: 4 x 4 = 16, again 4 S.
  const StepResult m = simulate_step(two_gpus("zero_stage: 2"));
  const Reductions rm = reductions(m);
  EXPECT_EQ(rm.count, 16u);
  EXPECT_NEAR(rm.bytes, 4 * kParams * grad_bytes, 1e-9 * rm.bytes);
}

TEST(Zero2, SlowerThanZero1WhenCommunicationCannotHide) {
  // The gradients' reduce-scatters outlast the compute: a micro-batch's forward and
  // backward (6 P x 32 tokens = 129 GFLOP, and the weights read by each GEMM) take about
  // 2 ms here, against S/2 = 1.34 GB at most 300 GB/s, at least 4.5 ms, per reduce-
  // scatter, so communication cannot hide. With one bucket each (grad_bucket_params
  // 1e10), compute C for the 4 micro-batches and a reduce-scatter of RS seconds:
  //   ZeRO-1: one reduce-scatter once the last backward ends, done at C + RS;
  //   ZeRO-2: the first once the first micro-batch's backward ends (C/4), the next three
  //           queued behind it on the data-parallel stream, done at C/4 + 4 RS.
  // Everything after (optimizer, parameter all-gather) is the same but for Megatron-Core's
  // per-step passes, which DeepSpeed's engine does not run: the fp32 gradient buffer of all
  // P parameters zeroed and the shard's main gradients read for the norm, 4 P + 4 P/2 bytes
  // at A100 HBM x memory_efficiency (detail::megatron_step_passes). ZeRO-2's step is
  // 3 RS - 3/4 C - 6 P / HBM longer. Both gather the parameters after the optimizer
  // (overlap_param_gather off; on, Megatron's ZeRO-1 would gather them during the first
  // forward, pipeline_pass.cpp, and DeepSpeed's would not).
  const std::string gather_after = std::string(kOneBucket) + ", overlap_param_gather: false";
  const StepResult z1 = simulate_step(two_gpus("zero_stage: 1", gather_after));
  // DeepSpeed's engine defaults overlap_grad_reduce to its overlap_comm, off below stage 3:
  // written on here, as the reduce-scatters queue on the data-parallel stream above.
  const StepResult z2 = simulate_step(two_gpus("zero_stage: 2, pipeline_engine: deepspeed",
                                               gather_after + ", overlap_grad_reduce: true"));
  const Reductions r2 = reductions(z2);
  ASSERT_EQ(r2.count, 4u);
  const double one_rs = r2.seconds / 4;
  EXPECT_GT(one_rs, 4.4e-3);
  double compute = 0;  // C: rank 0's forward and backward
  for (const Task& t : z2.graph.tasks)
    if (t.rank == 0 && (t.kind == TaskKind::forward || t.kind == TaskKind::backward))
      compute += t.work.value();
  EXPECT_LT(compute / 4, one_rs);
  const double grown = z2.step_time.value() - z1.step_time.value();
  EXPECT_GT(grown, 0.0);
  const Scenario a100 = two_gpus("zero_stage: 1");
  const double hbm = a100.cluster.gpu.memory_bandwidth.value() * *a100.cluster.gpu.memory_efficiency;
  EXPECT_NEAR(grown, 3 * one_rs - 0.75 * compute - 6 * kParams / hbm, 1e-6);
}

TEST(Zero2, WithoutOverlapEachReductionHoldsTheNextMicroBatch) {
  // overlap_grad_reduce: false is DeepSpeed's stage-2 default (overlap_comm false: the
  // reduction runs on the compute stream). As above, with one bucket a micro-batch:
  // each micro-batch's compute (C/4) waits for the previous reduce-scatter, so the last
  // ends at C + 4 RS instead of C/4 + 4 RS: 3/4 C later.
  const std::string ds = "zero_stage: 2, pipeline_engine: deepspeed";
  const StepResult overlapped =
      simulate_step(two_gpus(ds, std::string(kOneBucket) + ", overlap_grad_reduce: true"));
  const StepResult held =
      simulate_step(two_gpus(ds, std::string(kOneBucket) + ", overlap_grad_reduce: false"));
  // Unwritten, the engine takes DeepSpeed's default, the held one.
  EXPECT_DOUBLE_EQ(simulate_step(two_gpus(ds, kOneBucket)).step_time.value(),
                   held.step_time.value());
  double compute = 0;
  for (const Task& t : held.graph.tasks)
    if (t.rank == 0 && (t.kind == TaskKind::forward || t.kind == TaskKind::backward))
      compute += t.work.value();
  EXPECT_NEAR(held.step_time.value() - overlapped.step_time.value(), 0.75 * compute, 1e-6);
}

TEST(Zero2, InterleavedPipelineWithoutOverlapCompletes) {
  // 8 GPUs: pp 2 with 2 chunks a rank, dp 4, 4 micro-batches; every reduction holds the
  // next compute task of its 4 members, which run the same schedule: no cycle, and the
  // step is longer than with the reductions overlapped.
  auto scenario = [](const std::string& training) {
    return load_scenario_text(fmt::format(R"(
cluster: {{preset: dgx-a100, nodes: 1}}
model: {{family: decoder, layers: 4, hidden: 1024, heads: 16, ffn: 4096, vocab: 32000,
        seq_len: 2048, activation: gelu, norm: layernorm, position_embedding: rope,
        tied_embeddings: false, bias: true, dropout: false}}
parallelism: {{tp: 1, pp: 2, dp: 4, microbatch: 1, global_batch: 16,
              schedule: interleaved-1f1b, virtual_pipeline_stages: 2, zero_stage: 2}}
training: {{precision: bf16, recompute: none{}}}
)",
                                          training),
                              "interleaved.yaml");
  };
  // Every GPU simulated (--full), so that the 4 members are ranks of their own; and op by
  // op, where each layer's ops are tasks.
  for (const SimulationOptions o :
       {SimulationOptions{true, false}, SimulationOptions{true, true}}) {
    const StepResult overlapped = simulate_step(scenario(""), o);
    const StepResult held = simulate_step(scenario(", overlap_grad_reduce: false"), o);
    EXPECT_FALSE(held.stalled_at.has_value());
    EXPECT_GT(held.step_time.value(), overlapped.step_time.value()) << o.op_level;
  }
}

}  // namespace
}  // namespace orrery
