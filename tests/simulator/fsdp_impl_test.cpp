// ZeRO-3 / FSDP as implementations run it (parallelism.fsdp): NCCL's ring cost per
// collective, the gather units and reduce buckets of each implementation, and how per-GPU
// throughput falls as the data-parallel width grows. Every expected value is derived by
// hand below from NCCL's tuning constants (simulator/collectives.h, nccl_cost).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <utility>
#include <vector>
#include <string>

#include "scenario/load.h"
#include "simulator/collectives.h"
#include "simulator/step.h"

namespace orrery {
namespace {

constexpr double us = 1e-6;

TEST(NcclCost, RingLatencyOfTwoNodesOfTwoGpus) {
  // 4 ranks on 2 nodes, all-gather: nsteps 3, nInterSteps 1.
  // Simple: 8.4 + 2 x max(3.4, 3 x 1.0) + 1 x 14 = 29.2 us.
  // LL128:  14 + 2 x max(1.9, 1.0) + 1 x 4.0 = 21.8 us, at 0.92 of the bandwidth.
  // 1 ms of data: Simple 1029.2 us < LL128 21.8 + 1000/0.92 = 1108.7 us.
  const NcclCost big = nccl_cost(CollectiveOp::all_gather, 4, 2, Seconds(1e-3));
  EXPECT_STREQ(big.protocol, "simple");
  EXPECT_NEAR(big.latency.value(), 29.2 * us, 1e-9);
  EXPECT_DOUBLE_EQ(big.bandwidth_scale, 1.0);
  // 10 us of data: Simple 39.2 us > LL128 21.8 + 10/0.92 = 32.7 us.
  const NcclCost small = nccl_cost(CollectiveOp::all_gather, 4, 2, Seconds(10 * us));
  EXPECT_STREQ(small.protocol, "ll128");
  EXPECT_NEAR(small.latency.value(), 21.8 * us, 1e-9);
  EXPECT_DOUBLE_EQ(small.bandwidth_scale, 0.92);
}

TEST(NcclCost, RingLatencyGrowsWithRanks) {
  // 2240 ranks on 280 nodes (8 per node), reduce-scatter, nsteps 2239, nInterSteps 279:
  // Simple 8.4 + 1960 x 3.4 + 279 x 14 = 10578.4 us; LL128 14 + 1960 x 1.9 + 279 x 4 =
  // 4854 us. 384 ranks on 48 nodes: LL128 14 + 336 x 1.9 + 47 x 4 = 840.4 us.
  const NcclCost wide = nccl_cost(CollectiveOp::reduce_scatter, 2240, 280, Seconds(0.0));
  EXPECT_STREQ(wide.protocol, "ll128");
  EXPECT_NEAR(wide.latency.value(), 4854.0 * us, 1e-9);
  const NcclCost wide_big = nccl_cost(CollectiveOp::reduce_scatter, 2240, 280, Seconds(1.0));
  EXPECT_STREQ(wide_big.protocol, "simple");
  EXPECT_NEAR(wide_big.latency.value(), 10578.4 * us, 1e-9);
  EXPECT_NEAR(nccl_cost(CollectiveOp::reduce_scatter, 384, 48, Seconds(0.0)).latency.value(),
              840.4 * us, 1e-9);
}

TEST(NcclCost, PatWithOneGpuPerNode) {
  // 16 ranks, one per node: ring Simple 8.4 + 15 x 14 = 218.4 us, ring LL128 14 + 15 x
  // 8.5 = 141.5 us, PAT 8 + log2(16) x 14/3.5 + 2.8 x 16 = 68.8 us.
  const NcclCost c = nccl_cost(CollectiveOp::all_gather, 16, 16, Seconds(0.0));
  EXPECT_STREQ(c.protocol, "pat");
  EXPECT_NEAR(c.latency.value(), 68.8 * us, 1e-9);
  EXPECT_DOUBLE_EQ(c.bandwidth_scale, 0.75);
}

// 2 nodes x 2 A100s, ZeRO-3 over all 4 ranks, a 2-layer model with untied embedding and
// head, one micro-batch per rank.
Scenario two_by_two(const std::string& fsdp, const std::string& precision = "bf16",
                    const std::string& training = "") {
  const std::string yaml = fmt::format(R"(
cluster: {{preset: dgx-a100, nodes: 2, gpus_per_node: 2}}
model: {{family: decoder, layers: 2, hidden: 1024, heads: 16, ffn: 4096, vocab: 32768,
        seq_len: 1024, activation: gelu, norm: rmsnorm, position_embedding: rope,
        tied_embeddings: false, bias: false, dropout: false}}
parallelism: {{tp: 1, pp: 1, dp: 4, microbatch: 1, global_batch: 4, {}}}
training: {{precision: {}, recompute: none{}}}
)",
                                       fsdp, precision, training);
  return load_scenario_text(yaml, "two-by-two.yaml");
}

TEST(FsdpUnits, DefaultImplementationAndUnit) {
  // `fsdp: true` is PyTorch FSDP1 per layer; `zero_stage: 3` alone DeepSpeed per module;
  // a unit written beside an implementation is kept.
  using P = ParallelismSpec;
  const Scenario f = two_by_two("fsdp: true");
  EXPECT_EQ(f.parallelism.fsdp_impl, P::FsdpImpl::fsdp1);
  EXPECT_EQ(f.parallelism.fsdp_unit, P::FsdpUnit::layer);
  const Scenario d = two_by_two("zero_stage: 3");
  EXPECT_EQ(d.parallelism.fsdp_impl, P::FsdpImpl::deepspeed);
  EXPECT_EQ(d.parallelism.fsdp_unit, P::FsdpUnit::module);
  const Scenario m = two_by_two("fsdp: {implementation: megatron_fsdp, unit: module}");
  EXPECT_EQ(m.parallelism.fsdp_impl, P::FsdpImpl::megatron_fsdp);
  EXPECT_EQ(m.parallelism.fsdp_unit, P::FsdpUnit::module);
  EXPECT_EQ(m.parallelism.zero_stage, 3);
}

std::size_t count(const StepResult& r, TaskKind kind, const char* what) {
  return static_cast<std::size_t>(
      std::count_if(r.graph.tasks.begin(), r.graph.tasks.end(), [&](const Task& t) {
        return t.kind == kind && t.rank == 0 && t.comm &&
               r.graph.comms[static_cast<size_t>(*t.comm)].description.find(what) !=
                   std::string::npos;
      }));
}

TEST(FsdpUnits, CollectivesPerUnitCountedByHand) {
  // Units: embedding (32768 x 1024 = 33.6M), 2 layers, head (final norm 1024 + 33.6M).
  // A layer: qkv 3 x 1024^2 = 3.15M, proj 1.05M, fc1 and fc2 4.19M each, two norms of
  // 1024 (under DeepSpeed's persistence threshold of 1e5: never gathered).
  // FSDP1, one flat parameter per layer, resharded after forward, and the root's one flat
  // parameter (the embedding and the head), which the post-forward does not free: 3
  // gathers forward (root, 2 layers), 2 before the backward (the layers), 3
  // reduce-scatters (the layers, then the root once the embedding has its gradient).
  const StepResult f = simulate_step(two_by_two("fsdp: true"));
  EXPECT_EQ(count(f, TaskKind::param_gather, "all_gather"), 5u);
  EXPECT_EQ(count(f, TaskKind::dp_comm, "reduce_scatter"), 3u);
  // FSDP2 wraps the embedding and the head on their own, each resharded: 4 gathers
  // forward, 4 before the backward, 4 reduce-scatters.
  const StepResult f2_layer = simulate_step(two_by_two("fsdp: {implementation: fsdp2}"));
  EXPECT_EQ(count(f2_layer, TaskKind::param_gather, "all_gather"), 8u);
  EXPECT_EQ(count(f2_layer, TaskKind::dp_comm, "reduce_scatter"), 4u);
  // DeepSpeed with prefetch_bucket 0: one gather per module: embedding 1 + 4 per layer +
  // head 1 = 10 a pass, 20 in all. The default reduce bucket (5e8) holds every gradient
  // (2 x 12.59M + 2 x 33.6M = 92.3M): one reduce-scatter at the end of the backward.
  const StepResult d =
      simulate_step(two_by_two("fsdp: {implementation: deepspeed, prefetch_bucket: 0}"));
  EXPECT_EQ(count(d, TaskKind::param_gather, "all_gather"), 20u);
  EXPECT_EQ(count(d, TaskKind::dp_comm, "reduce_scatter"), 1u);
  // The default prefetch bucket (5e7) coalesces a layer's 12.6M into one gather: 8.
  const StepResult d2 = simulate_step(two_by_two("zero_stage: 3"));
  EXPECT_EQ(count(d2, TaskKind::param_gather, "all_gather"), 8u);
  // Megatron-FSDP, one unit per transformer layer: the embedding and head are no units,
  // gathered by the first forward and kept, so 4 gathers forward (embedding, 2 layers,
  // head) and 2 before the backward (the layers); 4 reduce-scatters as FSDP2.
  const StepResult m = simulate_step(two_by_two("fsdp: {implementation: megatron_fsdp}"));
  EXPECT_EQ(count(m, TaskKind::param_gather, "all_gather"), 6u);
  EXPECT_EQ(count(m, TaskKind::dp_comm, "reduce_scatter"), 4u);
  // FSDP2 wrapped per module: no persistence threshold and no bucket, every module with
  // parameters its own gather: embedding 1 + 6 per layer (4 GEMMs, 2 norms) + head 2
  // (final norm, output) = 15 a pass, 30 in all; and 15 reduce-scatters, one per module.
  const StepResult f2 = simulate_step(two_by_two("fsdp: {implementation: fsdp2, unit: module}"));
  EXPECT_EQ(count(f2, TaskKind::param_gather, "all_gather"), 30u);
  EXPECT_EQ(count(f2, TaskKind::dp_comm, "reduce_scatter"), 15u);
  // reduce_bucket 1e7, gradients in backward order, a bucket reduced before the
  // gradient that would overflow it: head 33.6M (+1024) | layer 2 fc2 4.19M overflows
  // -> #1; fc2 + fc1 + proj = 9.44M, qkv overflows -> #2; qkv 3.15M + norms, layer 1 fc2
  // = 7.34M, fc1 overflows -> #3; fc1 + proj + qkv = 8.39M + norms, embedding overflows
  // -> #4; the embedding at the end of the backward -> #5.
  const StepResult d3 =
      simulate_step(two_by_two("fsdp: {implementation: deepspeed, reduce_bucket: 1.0e7}"));
  EXPECT_EQ(count(d3, TaskKind::dp_comm, "reduce_scatter"), 5u);
}

// torchtitan's FSDP2 (training.stack fsdp2) keeps its [norm, output] unit gathered from
// the unit's forward to its backward (reshard_output_after_forward false:
// apply_fsdp_to_decoder in torchtitan/distributed/fsdp.py at pytorch/torchtitan b5bcd76c).
// Of CollectivesPerUnitCountedByHand's 8 FSDP2 gathers the head's before the backward goes:
// 7, of which the 64.00 MiB ones (the embedding's 32768 x 1024 and the head's 32768 x 1024
// + 1024 in bf16) are the embedding's two and the head's one; still 4 reduce-scatters.
// reshard_output_after_forward: true (torchtitan's "always") gathers the head again: 8.
// With tied embeddings the unit is [tok_embeddings, norm, output]: the embedding, which
// holds the table, gathers the head's final norm (1024 parameters) with it, once a
// micro-batch, and reduce-scatters them together; the head gathers nothing of its own:
// 3 forward (the unit, 64.00 MiB + 2 KiB, and the 2 layers), 2 backward (the layers): 5,
// none of "0.00 MiB"; 3 reduce-scatters.
TEST(FsdpUnits, TorchtitanKeepsItsOutputUnitGathered) {
  const std::string fsdp2 = "fsdp: {implementation: fsdp2}";
  const StepResult t = simulate_step(two_by_two(fsdp2, "bf16", ", stack: fsdp2"));
  EXPECT_EQ(count(t, TaskKind::param_gather, "all_gather"), 7u);
  EXPECT_EQ(count(t, TaskKind::param_gather, "64.00 MiB"), 3u);
  EXPECT_EQ(count(t, TaskKind::dp_comm, "reduce_scatter"), 4u);
  const StepResult always = simulate_step(
      two_by_two(fsdp2 + ", reshard_output_after_forward: true", "bf16", ", stack: fsdp2"));
  EXPECT_EQ(count(always, TaskKind::param_gather, "all_gather"), 8u);
  EXPECT_EQ(count(always, TaskKind::param_gather, "64.00 MiB"), 4u);
  // Another FSDP2 user (the default stack: Megatron-LM's --use-torch-fsdp2) reshards it.
  const Scenario other = two_by_two(fsdp2);
  EXPECT_TRUE(other.parallelism.reshard_output_after_forward);
  Scenario tied = two_by_two(fsdp2, "bf16", ", stack: fsdp2");
  EXPECT_FALSE(tied.parallelism.reshard_output_after_forward);
  tied.model.tied_embeddings = true;
  const StepResult tr = simulate_step(tied);
  EXPECT_EQ(count(tr, TaskKind::param_gather, "all_gather"), 5u);
  EXPECT_EQ(count(tr, TaskKind::param_gather, "64.00 MiB"), 1u);
  EXPECT_EQ(count(tr, TaskKind::param_gather, "0.00 MiB"), 0u);
  EXPECT_EQ(count(tr, TaskKind::dp_comm, "reduce_scatter"), 3u);
}

// FSDP1's root under a pipeline: pp 2, dp 2, 4 micro-batches of 1 in 1F1B. Stage 0 holds
// the embedding (its root, 32768 x 1024 x 2 bytes = 64 MiB) and layer 1, and runs F0 F1 B0
// F2 B1 F3 B2 B3. The root is freed only by a post-backward, so F0 gathers it, F1 finds it
// gathered, B0 reduce-scatters and frees it, F2 and F3 gather it again, and B3, after B2
// freed it, gathers it before its backward: 4 root gathers, the second after B0 and the
// last after B2. Layer 1: 4 forward and 4 backward gathers. Reduce-scatters: 4 of the
// layer, 4 of the root.
TEST(FsdpUnits, Fsdp1RootIsGatheredAgainOnlyAfterABackwardFreedIt) {
  Scenario s = two_by_two("fsdp: true");
  s.parallelism.pp = 2;
  s.parallelism.dp = 2;
  s.parallelism.global_batch = 8;
  const StepResult r = simulate_step(s);
  EXPECT_EQ(count(r, TaskKind::param_gather, "all_gather"), 12u);
  EXPECT_EQ(count(r, TaskKind::param_gather, "64.00 MiB"), 4u);
  EXPECT_EQ(count(r, TaskKind::dp_comm, "reduce_scatter"), 8u);
  std::vector<double> root_starts;
  std::array<double, 4> backward_end{};  // rank 0's last backward compute, per micro-batch
  for (std::size_t i = 0; i < r.graph.tasks.size(); ++i) {
    const Task& t = r.graph.tasks[i];
    if (t.rank != 0) continue;
    const TaskTiming& tt = r.timeline.timing[i];
    if (t.kind == TaskKind::param_gather && t.comm &&
        r.graph.comms[static_cast<std::size_t>(*t.comm)].description.find("64.00 MiB") !=
            std::string::npos)
      root_starts.push_back(tt.start->value());
    if (t.stream == StreamKind::compute && t.kind == TaskKind::backward && t.microbatch)
      backward_end.at(static_cast<std::size_t>(*t.microbatch)) =
          std::max(backward_end.at(static_cast<std::size_t>(*t.microbatch)), tt.end->value());
  }
  std::sort(root_starts.begin(), root_starts.end());
  ASSERT_EQ(root_starts.size(), 4u);
  EXPECT_GE(root_starts[1], backward_end[0]);
  EXPECT_GE(root_starts[2], backward_end[1]);
  EXPECT_GE(root_starts[3], backward_end[2]);
}

// torchtitan's FSDP2 under a pipeline (training.stack fsdp2: torch.distributed.pipelining,
// fsdp_pipeline_deferred): pp 2, dp 2, 4 micro-batches of 1 in 1F1B; stage 0 holds two
// units, the embedding (32768 x 1024) and layer 1, and runs F0 F1 B0 F2 B1 F3 B2 B3. No
// backward frees a unit or reduce-scatters it; the reduce after B3 reduce-scatters each
// once. Resharded after forward (the default): F0 and F1 gather both units (each forward
// frees them), B0 gathers them, F2 finds them gathered and frees them, B1 gathers, F3
// finds, B2 gathers, B3 finds: 5 gathers a unit, 10, where FSDP1's per-micro-batch hooks
// take 8 a unit. Without resharding after forward F0 gathers each unit once: 2. Either
// way 2 reduce-scatters, both after B3's compute. Megatron-LM's FSDP2 (the default
// stack) runs its own schedules, a reduce-scatter a unit every micro-batch: 8.
TEST(FsdpUnits, Fsdp2UnderAPipelineReduceScattersOnceAStep) {
  auto pipelined = [](const std::string& reshard, const std::string& stack) {
    Scenario s = two_by_two("fsdp: {implementation: fsdp2}, reshard_after_forward: " + reshard,
                            "bf16", stack);
    s.parallelism.pp = 2;
    s.parallelism.dp = 2;
    s.parallelism.global_batch = 8;
    return s;
  };
  auto run = [&](const std::string& reshard) {
    const Scenario s = pipelined(reshard, ", stack: fsdp2");
    EXPECT_TRUE(fsdp_pipeline_deferred(s.parallelism, s.training));
    return simulate_step(s);
  };
  const StepResult r = run("true");
  EXPECT_EQ(count(r, TaskKind::param_gather, "all_gather"), 10u);
  EXPECT_EQ(count(r, TaskKind::dp_comm, "reduce_scatter"), 2u);
  double last_backward = 0, first_reduce = 1e30;
  for (std::size_t i = 0; i < r.graph.tasks.size(); ++i) {
    const Task& t = r.graph.tasks[i];
    if (t.rank != 0) continue;
    const TaskTiming& tt = r.timeline.timing[i];
    if (t.stream == StreamKind::compute && t.kind == TaskKind::backward)
      last_backward = std::max(last_backward, tt.end->value());
    if (t.kind == TaskKind::dp_comm && t.comm &&
        r.graph.comms[static_cast<std::size_t>(*t.comm)].description.find("reduce_scatter") !=
            std::string::npos)
      first_reduce = std::min(first_reduce, tt.start->value());
  }
  EXPECT_GE(first_reduce, last_backward);
  const StepResult kept = run("false");
  EXPECT_EQ(count(kept, TaskKind::param_gather, "all_gather"), 2u);
  EXPECT_EQ(count(kept, TaskKind::dp_comm, "reduce_scatter"), 2u);
  // FSDP1 under the same pipeline keeps its per-micro-batch hooks: 4 reduce-scatters of
  // layer 1 and 4 of the root (Fsdp1RootIsGatheredAgainOnlyAfterABackwardFreedIt).
  Scenario f1 = two_by_two("fsdp: true");
  f1.parallelism.pp = 2;
  f1.parallelism.dp = 2;
  f1.parallelism.global_batch = 8;
  EXPECT_FALSE(fsdp_pipeline_deferred(f1.parallelism, f1.training));
  EXPECT_EQ(count(simulate_step(f1), TaskKind::dp_comm, "reduce_scatter"), 8u);
  const Scenario megatron = pipelined("true", "");
  EXPECT_FALSE(fsdp_pipeline_deferred(megatron.parallelism, megatron.training));
  EXPECT_EQ(count(simulate_step(megatron), TaskKind::dp_comm, "reduce_scatter"), 8u);
}

// The same pipeline without resharding after forward (no backward gathers, so a unit's
// backward tasks differ between micro-batches only by the accumulation): layer 1's
// 12,587,008 parameters (4 x 1024^2 + 2 x 4 x 1024^2 + 2 x 1024) on the A100, whose
// elementwise kernels stream at HBM x memory_efficiency and dtype casts at HBM x
// cast_efficiency (or memory_efficiency). fp32 reduce: micro-batch 0 casts its bf16
// gradient into the accumulator (read 2, write 4 bytes an element, a cast), micro-batch 1
// adds into it (read 4 + 2, write 4): their backward tasks differ by 10 P / B - 6 P / B_cast.
// bf16 reduce: no accumulator; micro-batch 0 keeps param.grad, micro-batch 1 adds into it
// (read 4, write 2): 6 P / B.
TEST(FsdpUnits, Fsdp2UnderAPipelineAccumulatesEachMicroBatch) {
  auto layer1_backward = [](const std::string& grad, int microbatch) {
    Scenario s = two_by_two("fsdp: {implementation: fsdp2}, reshard_after_forward: false", "bf16",
                            ", stack: fsdp2, gradient_dtype: " + grad);
    s.parallelism.pp = 2;
    s.parallelism.dp = 2;
    s.parallelism.global_batch = 8;
    const StepResult r = simulate_step(s);
    // Rank 0's first backward compute task of the micro-batch is layer 1's (the backward
    // runs the stage's units last to first: layer 1, then the embedding).
    for (const Task& t : r.graph.tasks)
      if (t.rank == 0 && t.stream == StreamKind::compute && t.kind == TaskKind::backward &&
          t.microbatch == microbatch)
        return std::make_pair(t.work.value(), s);
    ADD_FAILURE() << "no backward task";
    return std::make_pair(0.0, s);
  };
  const double P = 4 * 1024.0 * 1024 + 2 * 4 * 1024.0 * 1024 + 2 * 1024;
  const auto [fp32_0, s] = layer1_backward("fp32", 0);
  const GpuSpec& g = s.cluster.gpu;
  const double hbm = g.memory_bandwidth.value() * *g.memory_efficiency;
  const double cast = g.memory_bandwidth.value() * g.cast_efficiency.value_or(*g.memory_efficiency);
  EXPECT_NEAR(layer1_backward("fp32", 1).first - fp32_0, 10 * P / hbm - 6 * P / cast, 1e-9);
  EXPECT_NEAR(layer1_backward("bf16", 1).first - layer1_backward("bf16", 0).first, 6 * P / hbm,
              1e-9);
}

// DeepSpeed ZeRO-3 reduce-scatters the parameters' own 16-bit gradients (get_data_types and
// communication_data_type in deepspeed/runtime/engine.py at microsoft/DeepSpeed 38327e07):
// its default gradient_dtype follows the precision; PyTorch FSDP's stays fp32 and a written
// one is kept. Same single reduce-scatter (every gradient in the 5e8 bucket), half the bytes.
TEST(FsdpUnits, DeepSpeedReducesIn16Bits) {
  const Scenario d = two_by_two("zero_stage: 3");
  EXPECT_EQ(d.training.gradient_dtype, Dtype::bf16);
  EXPECT_EQ(two_by_two("fsdp: true").training.gradient_dtype, Dtype::fp32);
  EXPECT_EQ(two_by_two("zero_stage: 3", "fp16").training.gradient_dtype, Dtype::fp16);
  Scenario f32 = d;
  f32.training.gradient_dtype = Dtype::fp32;
  auto reduce_scatter_bytes = [](const StepResult& r) {
    double b = 0;
    int n = 0;
    for (const Task& t : r.graph.tasks) {
      if (t.rank != 0 || !t.comm || t.kind != TaskKind::dp_comm) continue;
      const auto& c = r.graph.comms[static_cast<size_t>(*t.comm)];
      if (c.description.find("reduce_scatter") == std::string::npos) continue;
      b += c.bytes.value();
      ++n;
    }
    EXPECT_EQ(n, 1);
    return b;
  };
  EXPECT_DOUBLE_EQ(reduce_scatter_bytes(simulate_step(d)),
                   reduce_scatter_bytes(simulate_step(f32)) / 2);
}

// With expert parallelism the experts are sharded over the ranks holding the same experts,
// and gathered and reduce-scattered there. 2 nodes x 8 A100s, dp 16, ep 8: each rank holds
// 1 of 8 experts a layer (1024 x 2048 and 2048 x 1024: 4,194,304 parameters, 8 MiB in
// bf16), shared with the rank 8 ranks away, on the other node: per layer and micro-batch a
// forward and a backward gather over those 2 ranks (4 in all) and one reduce-scatter of
// fp32 gradients (16 MiB, 2); the dense part (attention 4 x 1024^2, router 1024 x 8, two
// norms: 4,204,544 parameters, 8,409,088 bytes) over all 16 as before, with the embedding
// and the head. The same step simulated with every GPU.
TEST(FsdpUnits, ExpertsGatherOverTheirOwnShardGroup) {
  const Scenario s = load_scenario_text(R"(
cluster: {preset: dgx-a100, nodes: 2}
model: {family: decoder, layers: 2, hidden: 1024, heads: 16, ffn: 4096, vocab: 32768,
        seq_len: 1024, activation: gelu, norm: rmsnorm, position_embedding: rope,
        tied_embeddings: false, bias: false, dropout: false,
        moe: {experts: 8, top_k: 2, expert_ffn: 2048}}
parallelism: {tp: 1, pp: 1, dp: 16, ep: 8, microbatch: 1, global_batch: 16,
              fsdp: {implementation: fsdp2}}
training: {precision: bf16, recompute: none}
)",
                                        "moe.yaml");
  EXPECT_EQ(s.parallelism.expert_shard_group(), 2);
  const StepResult r = simulate_step(s);
  EXPECT_EQ(count(r, TaskKind::param_gather, "all_gather ring over 2 GPUs, 8.00 MiB"), 4u);
  EXPECT_EQ(count(r, TaskKind::dp_comm, "reduce_scatter ring over 2 GPUs, 16.00 MiB"), 2u);
  EXPECT_EQ(count(r, TaskKind::param_gather, "over 2 GPUs"), 4u);
  EXPECT_EQ(count(r, TaskKind::param_gather, "over 16 GPUs"), 8u);  // 2 layers x 2, emb, head
  SimulationOptions full;
  full.full = true;
  EXPECT_NEAR(simulate_step(s, full).step_time.value(), r.step_time.value(),
              1e-3 * r.step_time.value());
}

// Megatron-FSDP over 2 micro-batches (global batch 8 on dp 4): its units are the two
// transformer layers, gathered before every forward and backward, 2 x (2 + 2) = 8; the
// embedding and head, no units, are gathered once, by micro-batch 0's forward, and kept
// (megatron_fsdp.py at NVIDIA/Megatron-LM core_v0.14.0: only units are released): 10
// gathers against FSDP2's 2 x 8 = 16. Reduce-scatters every micro-batch in both: 2 x 4.
// Each backward ends by draining its reduce-scatters (GradReducePipeline.reset in
// _root_post_backward), so micro-batch 1's first compute task starts exactly when the
// last of micro-batch 0's reduce-scatters ends; under FSDP2 it waits only for its own
// gather and starts before them (comm-bound here: the embedding's 67 MB reduce-scatter
// over the NICs outlasts its backward).
TEST(FsdpUnits, MegatronFsdpKeepsOutsideUnitsAndDrainsEachBackward) {
  auto scenario = [](const char* fsdp) {
    Scenario s = two_by_two(fsdp);
    s.parallelism.global_batch = 8;
    return s;
  };
  const StepResult m = simulate_step(scenario("fsdp: {implementation: megatron_fsdp}"));
  const StepResult f = simulate_step(scenario("fsdp: {implementation: fsdp2}"));
  EXPECT_EQ(count(m, TaskKind::param_gather, "all_gather"), 10u);
  EXPECT_EQ(count(f, TaskKind::param_gather, "all_gather"), 16u);
  EXPECT_EQ(count(m, TaskKind::dp_comm, "reduce_scatter"), 8u);
  EXPECT_EQ(count(f, TaskKind::dp_comm, "reduce_scatter"), 8u);
  // Rank 0's tasks: micro-batch 1's first compute task, micro-batch 0's last backward
  // task, and the end of the first 4 reduce-scatters (micro-batch 0's).
  auto times = [](const StepResult& r) {
    double first_mb1 = 1e30, last_bwd0 = 0, rs0 = 0;
    std::vector<std::pair<double, double>> rs;  // (start, end)
    for (std::size_t i = 0; i < r.graph.tasks.size(); ++i) {
      const Task& t = r.graph.tasks[i];
      if (t.rank != 0) continue;
      const TaskTiming& tt = r.timeline.timing[i];
      if (t.stream == StreamKind::compute && t.microbatch == 1)
        first_mb1 = std::min(first_mb1, tt.start->value());
      if (t.stream == StreamKind::compute && t.microbatch == 0 && t.kind == TaskKind::backward)
        last_bwd0 = std::max(last_bwd0, tt.end->value());
      if (t.kind == TaskKind::dp_comm && t.comm &&
          r.graph.comms[static_cast<std::size_t>(*t.comm)].description.find("reduce_scatter") !=
              std::string::npos)
        rs.emplace_back(tt.start->value(), tt.end->value());
    }
    std::sort(rs.begin(), rs.end());
    for (std::size_t k = 0; k < 4 && k < rs.size(); ++k) rs0 = std::max(rs0, rs[k].second);
    return std::array<double, 3>{first_mb1, last_bwd0, rs0};
  };
  const auto [m_first, m_bwd, m_rs] = times(m);
  EXPECT_NEAR(m_first, m_rs, 1e-12);
  EXPECT_GT(m_rs, m_bwd);
  const auto [f_first, f_bwd, f_rs] = times(f);
  EXPECT_GE(f_first, f_bwd);
  EXPECT_LT(f_first, f_rs);
}

TEST(FsdpUnits, HostOverheadIsPaidOncePerCollective) {
  // Comm-bound (the 2-layer model's compute is far shorter than its gathers on the NIC):
  // the gathers run one after another on the gather stream, so 1 ms more host time per
  // collective adds 1 ms per gather on the critical path: 8 gathers (FSDP2 above), 8 ms,
  // within 10 % (the first gathers overlap nothing; reduce-scatters run on their own
  // stream alongside).
  const double base = simulate_step(two_by_two("fsdp: {implementation: fsdp2, host_overhead: 0 s}"))
                          .step_time.value();
  const double slow = simulate_step(two_by_two("fsdp: {implementation: fsdp2, host_overhead: 1 ms}"))
                          .step_time.value();
  EXPECT_NEAR(slow - base, 8e-3, 0.8e-3);
}

// A 32-layer, 1024-wide model on DGX A100 nodes, FSDP1, fixed global batch of 128
// sequences, one micro-batch per GPU: dp 16 (micro-batch 8) or dp 128 (micro-batch 1).
Scenario width(int nodes) {
  const int dp = nodes * 8;
  const std::string yaml = fmt::format(R"(
cluster: {{preset: dgx-a100, nodes: {}}}
model: {{family: decoder, layers: 32, hidden: 1024, heads: 16, ffn: 4096, vocab: 32768,
        seq_len: 512, activation: gelu, norm: rmsnorm, position_embedding: rope,
        tied_embeddings: false, bias: false, dropout: false}}
parallelism: {{tp: 1, pp: 1, dp: {}, microbatch: {}, global_batch: 128, fsdp: true}}
training: {{precision: bf16, recompute: none}}
)",
                                       nodes, dp, 128 / dp);
  return load_scenario_text(yaml, "width.yaml");
}

TEST(FsdpWidth, PerGpuThroughputFallsAsDpWidensAtFixedGlobalBatch) {
  const StepResult narrow = simulate_step(width(2));
  const StepResult wide = simulate_step(width(16));
  const double per_gpu_narrow = narrow.tokens_per_s / 16;
  const double per_gpu_wide = wide.tokens_per_s / 128;
  // Every GPU gathers the whole model once per micro-batch whatever dp is, so the bytes
  // per NIC per step stay while the compute per GPU shrinks 8x; and each gather's ring
  // latency grows with the ranks. At dp 128 the gather stream bounds the step: 32 layers
  // gathered twice and FSDP1's root (embedding and head) once = 65 all-gathers, each at
  // least NCCL's latency plus the host overhead. LL128 over 128 ranks on 16 nodes: 14 +
  // 112 x 1.9 + 15 x 4.0 = 286.8 us (Simple: 8.4 + 112 x 3.4 + 15 x 14 = 599.2 us); with
  // 75.7 us of host time, 65 x 362.5 us = 23.6 ms at least.
  EXPECT_GT(wide.step_time.value(), 65 * (286.8 + 75.7) * us);
  // The same bound at dp 16 (2 nodes): LL128 14 + 14 x 1.9 + 1 x 4.0 = 44.6 us,
  // 65 x 120.3 us = 7.8 ms: the latency term alone grows 3x from dp 16 to 128.
  // Per-GPU throughput falls by more than the 8x smaller micro-batch accounts for
  // only if the step does not shrink 8x with it: it falls more than 4x here.
  EXPECT_LT(per_gpu_wide, per_gpu_narrow / 4);
  EXPECT_GT(wide.step_time.value(), narrow.step_time.value() / 2);
}

// One node of 4 A100s, the same 2-layer model (two_by_two's) with fp32 gradients under
// FSDP1, FSDP2 and Megatron-FSDP (which adds no pass: Megatron accumulates into its
// gradient buffer). Before each unit's reduce-scatter the PyTorch FSDPs add memory-bound
// passes over the unit's gradient of E elements (simulator/gradient_passes.cpp,
// fsdp_gradient_passes). FSDP1: assembly from the split's views 2 x 2 bytes, the cast to
// fp32 2 + 4, the pre-divide (world 4: factor 2) 2 x 4, the post-divide of the 1/4 shard
// (4 / 2 = 2 > 1) 2 x 4 / 4: 4 + 6 + 8 + 2 = 20 bytes an element. FSDP2: the copy-in, bf16
// in and fp32 out, 2 + 4 = 6 bytes, and no division (fp32 reduces with ReduceOp.AVG).
// Every kernel is far above the 3 us launch floor (the smallest, a layer's post-divide:
// 12.58M x 2 = 25 MB, 16 us). The units hold every parameter once: embedding 32768 x 1024
// = 33,554,432, 2 layers of 3 x 1024^2 + 1024^2 + 2 x 1024 x 4096 + 2 x 1024 = 12,584,960,
// head 33,554,432 + the final norm 1024: 92,279,808. At the A100 80GB's 2039 GB/s x
// memory_efficiency 0.79 = 1.61081e12 B/s, but FSDP1's cast to fp32 (6 of its 20 bytes),
// a dtype-converting copy, at 2039 GB/s x cast_efficiency 0.702 = 1.431378e12 B/s: FSDP1
// 6 x 92,279,808 / 1.431378e12 + 14 x 92,279,808 / 1.61081e12 = 0.3868153 + 0.8020296 =
// 1.1888449 ms, FSDP2 6 x 92,279,808 / 1.61081e12 = 0.3437270 ms more backward compute
// (its copy-in is one chunk_cat kernel, not a cast copy), one micro-batch (rank 0, the
// ranks being alike). FSDP2 also copies each unit's gathered bf16 weights out of the
// all-gather buffer into its parameters (read and written: 4 bytes a parameter) after
// every gather, each unit gathered again for its backward (reshard_after_forward): another
// 4 x 92,279,808 / 1.61081e12 = 0.2291513 ms of backward compute, and as much forward.
// The two-layer model of the gradient-pass tests on one 4-GPU node, under FSDP
// implementation `impl` in `precision` with gradients reduced in `grad`.
StepResult gradient_pass_step(const char* impl, const char* precision, const char* grad) {
  const std::string yaml = fmt::format(R"(
cluster: {{preset: dgx-a100, nodes: 1, gpus_per_node: 4}}
model: {{family: decoder, layers: 2, hidden: 1024, heads: 16, ffn: 4096, vocab: 32768,
        seq_len: 1024, activation: gelu, norm: rmsnorm, position_embedding: rope,
        tied_embeddings: false, bias: false, dropout: false}}
parallelism: {{tp: 1, pp: 1, dp: 4, microbatch: 1, global_batch: 4,
              fsdp: {{implementation: {}}}}}
training: {{precision: {}, recompute: none, gradient_dtype: {}}}
)",
                                       impl, precision, grad);
  return simulate_step(load_scenario_text(yaml, "one-node.yaml"));
}

// Rank 0's compute time of one kind (forward or backward).
double compute_of(const StepResult& r, TaskKind kind) {
  double t = 0;
  for (const Task& k : r.graph.tasks)
    if (k.rank == 0 && k.kind == kind) t += k.work.value();
  return t;
}
double backward_compute(const StepResult& r) { return compute_of(r, TaskKind::backward); }
double forward_compute(const StepResult& r) { return compute_of(r, TaskKind::forward); }

TEST(FsdpUnits, TorchFsdpGradientPassesAreMemoryBoundCompute) {
  auto scenario = [](const char* impl) { return gradient_pass_step(impl, "bf16", "fp32"); };
  const auto compute = backward_compute;
  const StepResult f1 = scenario("fsdp1");
  const StepResult f2 = scenario("fsdp2");
  const StepResult m = scenario("megatron_fsdp");
  EXPECT_NEAR(compute(f1) - compute(m), 1.1888449e-3, 1e-9);
  EXPECT_NEAR(compute(f2) - compute(m), 0.3437270e-3 + 0.2291513e-3, 1e-9);
  // On the compute stream before each reduce-scatter: the step grows, by at most that (part
  // of it lands where the compute stream waited for a backward gather).
  const double grown = f1.step_time.value() - m.step_time.value();
  EXPECT_GT(grown, 0.1e-3);
  EXPECT_LE(grown, 1.1888449e-3 + 1e-9);
}

// FSDP2's copy-out (foreach_all_gather_copy_out, pytorch/pytorch 010ae4a8): in the forward
// the implementations differ by it alone, 4 x 92,279,808 / 1.61081e12 = 0.2291513 ms.
TEST(FsdpUnits, Fsdp2CopiesEachGatherOutIntoItsParameters) {
  const StepResult f1 = gradient_pass_step("fsdp1", "bf16", "fp32");
  const StepResult f2 = gradient_pass_step("fsdp2", "bf16", "fp32");
  EXPECT_NEAR(forward_compute(f2) - forward_compute(f1), 0.2291513e-3, 1e-9);
}

// FSDP2 in fp16 divides as FSDP1 does (_get_gradient_divide_factors: overflow risk), at
// dp 4 a pre-divide 2 x 2 bytes and the shard's post-divide 2 x 2 / 4 besides the copy-in
// 2 + 2: 9 bytes an element against bf16's copy-in alone, 4 bytes, so 5 x 92,279,808 /
// 1.61081e12 = 0.2864392 ms apart in the backward (the optimizer step, whose fp16 loss
// scaling moves more, is left out).
TEST(FsdpUnits, Fsdp2DividesOnlyInFp16) {
  auto scenario = [](const char* precision) {
    return gradient_pass_step("fsdp2", precision, precision);
  };
  const auto compute = backward_compute;
  const double half = compute(scenario("fp16")), brain = compute(scenario("bf16"));
  EXPECT_NEAR(half - brain, 0.2864392e-3, 1e-9);
}

}  // namespace
}  // namespace orrery
