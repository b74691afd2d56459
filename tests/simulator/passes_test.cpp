// The step's pieces (simulator/step_passes.h) on small task graphs: the rank set's
// groups, the communication planner's cache and its one traffic tally, and what the
// pipeline, gradient and optimizer passes add, each counted by hand.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "model/memory.h"
#include "scenario/load.h"
#include "simulator/step_passes.h"

namespace orrery::detail {
namespace {

// 8 A100s in one node: tp 1, pp 2, dp 4, 2 micro-batches per rank (global batch 8),
// 1F1B; a 24-layer dense model, 12 layers a stage.
Scenario small(const std::string& extra_parallelism = "", const std::string& extra = "") {
  const std::string yaml = fmt::format(R"(
cluster: {{preset: dgx-a100, nodes: 1}}
model: {{family: decoder, layers: 24, hidden: 1024, heads: 16, ffn: 4096, vocab: 32000,
        seq_len: 2048, activation: gelu, position_embedding: rope, tied_embeddings: false,
        dropout: false}}
parallelism: {{tp: 1, pp: 2, dp: 4, microbatch: 1, global_batch: 8, schedule: 1f1b{}}}
training: {{precision: bf16, recompute: none}}
{})",
                                       extra_parallelism, extra);
  return load_scenario_text(yaml, "small.yaml");
}

// A step's context with the workload it reads (which must outlive it).
struct Context {
  Workload work;
  StepContext ctx;
  explicit Context(const Scenario& s)
      : work(build_workload(s.model, s.training, shard_of(s.parallelism))),
        ctx(s, {}, resolve_hardware(s), work) {}
};

TEST(RankSet, SymmetricRanksStandForTheirStage) {
  const Layout L{2, 1, 2, 2};
  ParallelismSpec p;
  p.tp = 2, p.dp = 2, p.pp = 2;
  const RankSet ranks(L, p, false, 8, 1);
  ASSERT_EQ(ranks.size(), 2u);
  EXPECT_EQ(ranks.stages(), (std::vector<int>{0, 1}));
  // A symmetric rank's groups are itself: its peers run as weighted copies.
  EXPECT_EQ(ranks.dp_members(1, false), (std::vector<int>{1}));
  EXPECT_EQ(ranks.reduce_members(0, false, true), (std::vector<int>{0, 1}));
}

TEST(RankSet, FullGroupsFollowMegatronOrder) {
  // GPU = t + tp (c + cp (d + dp p)) with tp 2, cp 1, dp 2, pp 2: GPU 0 is (t0, d0, p0);
  // its data-parallel peer (d1) is GPU 2; its mirror stage's copy (p1) is GPU 4.
  const Layout L{2, 1, 2, 2};
  ParallelismSpec p;
  p.tp = 2, p.dp = 2, p.pp = 2;
  const RankSet ranks(L, p, true, 8, 1);
  ASSERT_EQ(ranks.size(), 8u);
  EXPECT_EQ(ranks.gpu(5), 5);
  EXPECT_EQ(ranks.dp_members(0, false), (std::vector<int>{0, 2}));
  EXPECT_EQ(ranks.dp_members(1, false), (std::vector<int>{1, 3}));
  EXPECT_EQ(ranks.mirror_of(0), 4u);
  EXPECT_EQ(ranks.reduce_members(0, false, true), (std::vector<int>{0, 2, 4, 6}));
  EXPECT_EQ(ranks.local_members(2), (std::vector<int>{2}));  // one data-parallel rank a node
}

TEST(CommPlanner, PlansOnceAndTalliesEveryUse) {
  const Scenario s = small();
  const Context c(s);
  const StepContext& ctx = c.ctx;
  TaskGraph g;
  CommPlanner planner(ctx, g);
  const int a = planner.stage_pair(0, 1);
  EXPECT_EQ(planner.stage_pair(0, 1), a);
  EXPECT_EQ(g.comms.size(), 1u);
  // One micro-batch's activation, b s h x 2 bytes = 1 x 2048 x 1024 x 2 = 4 MiB, sent by
  // each of the 4 data-parallel copies of the pair, all over NVLink.
  const double S = 2048.0 * 1024 * 2;
  EXPECT_DOUBLE_EQ(ctx.bytes.pp, S);
  Task t;
  t.kind = TaskKind::pp_comm;
  t.comm = a;
  planner.issue(t);
  planner.issue(t);
  EXPECT_EQ(g.tasks.size(), 2u);
  EXPECT_DOUBLE_EQ(planner.traffic().at(LinkClass::nvlink), 2 * 4 * S);
  EXPECT_EQ(planner.traffic().count(LinkClass::nic), 0u);
}

struct Built {
  Scenario s;
  Workload work;
  StepContext ctx;
  TaskGraph g;
  RankSet ranks;
  PipelineTasks pipe;
  GradientTasks grads;
  std::vector<int> optimizer;
  explicit Built(Scenario scenario)
      : s(std::move(scenario)),
        work(build_workload(s.model, s.training, shard_of(s.parallelism))),
        ctx(s, {}, resolve_hardware(s), work),
        ranks(ctx.L, ctx.p, false, s.cluster.gpus(), ctx.local_dp),
        grads(ranks.size()) {
    CommPlanner planner(ctx, g);
    LayerTemplates templates(ctx);
    const StageLayers layers(ctx);
    pipe = pipeline_pass(ctx, ranks, layers, templates, planner, g);
    grads = GradientTasks(ranks.size());
    fsdp_pass(ctx, ranks, pipe, planner, g, grads);
    grad_sync_pass(ctx, ranks, layers, pipe, planner, g, grads);
    optimizer = optimizer_pass(ctx, ranks, pipe, grads, planner, g);
  }
  std::size_t count(TaskKind k, int rank) const {
    return static_cast<std::size_t>(
        std::count_if(g.tasks.begin(), g.tasks.end(),
                      [&](const Task& t) { return t.kind == k && t.rank == rank; }));
  }
};

TEST(PipelinePass, OneFOneBBlocksAndTransfersCountedByHand) {
  const Built b(small());
  // m = 8 / (1 x 4) = 2 micro-batches. Each rank: one task per forward block (2); the
  // backward blocks: the last one per layer, so that buckets can leave early (stage 0:
  // embedding + 12 layers; stage 1: 12 layers + head), the first as one task (1).
  EXPECT_EQ(b.count(TaskKind::forward, 0), 2u);
  EXPECT_EQ(b.count(TaskKind::forward, 1), 2u);
  EXPECT_EQ(b.count(TaskKind::backward, 0), 1u + 13u);
  EXPECT_EQ(b.count(TaskKind::backward, 1), 1u + 13u);
  // Transfers: stage 0 sends 2 activations forward, stage 1 sends 2 gradients back.
  EXPECT_EQ(b.count(TaskKind::pp_comm, 0), 2u);
  EXPECT_EQ(b.count(TaskKind::pp_comm, 1), 2u);
  ASSERT_EQ(b.pipe.grads.size(), 2u);
  EXPECT_EQ(b.pipe.grads[0][0].size(), 13u);
  EXPECT_EQ(b.pipe.grads[1][0].size(), 13u);
  for (const MaybeTask& last : b.pipe.last_compute) {
    ASSERT_TRUE(last.has_value());
    EXPECT_GE(*last, 0);
  }
}

TEST(GradSyncPass, BucketsCarryEveryDenseGradientOnce) {
  const Built b(small());
  // Without ZeRO, each stage's gradients are all-reduced in buckets that close once they
  // hold max(40M, 1M x dp) = 40M parameters, layer by layer in backward order; their
  // sizes add up to the stage's parameters times the gradient's bytes. A layer holds
  // 4h^2 + 2 h ffn = 12.6M (plus norms), the embedding and the head V h = 32.8M each.
  // Stage 1: head + 1 layer (45.4M), 4 layers (50.3M), 4 layers, the last 3: 4 buckets.
  // Stage 0: 4, 4 and 4 layers, then the embedding: 4 buckets.
  const double grad_bytes = state_bytes_per_param(b.s.training).gradient;
  for (int rank = 0; rank < 2; ++rank) {
    double carried = 0;
    std::size_t buckets = 0;
    for (const Task& t : b.g.tasks) {
      if (t.kind != TaskKind::dp_comm || t.rank != rank) continue;
      ASSERT_TRUE(t.comm.has_value());
      carried += b.g.comms[static_cast<std::size_t>(*t.comm)].bytes.value();
      ++buckets;
    }
    EXPECT_NEAR(carried, b.grads.dense_total[rank] * grad_bytes, 1e-9 * carried) << rank;
    const double params = b.grads.dense_total[rank];
    EXPECT_EQ(buckets, 4u) << rank;
    // The optimizer of plain data parallelism updates every local parameter.
    EXPECT_DOUBLE_EQ(b.grads.local_params[rank], params);
  }
}

// The backward compute of rank `rank`, every task of it summed.
double backward_work(const Built& b, int rank) {
  double sum = 0;
  for (const Task& t : b.g.tasks)
    if (t.kind == TaskKind::backward && t.rank == rank) sum += t.work.value();
  return sum;
}

TEST(PipelinePass, DeepSpeedBf16AccumulatesEveryMicroBatchsGradientsInFp32) {
  // DeepSpeed's BF16_Optimizer casts each micro-batch's bf16 gradients to fp32 and adds
  // them into its fp32 buffer after every backward: 2 + 4 read, 4 written by the cast and
  // 4 + 4 read, 4 written by the add, 18 bytes a parameter, at A100 80GB HBM x memory
  // efficiency = 2039 GB/s x 0.79 = 1610.81 GB/s. Stage 1 holds 12 layers of
  // 4h^2 + 2 h ffn = 4 x 1024^2 + 2 x 1024 x 4096 = 12,582,912 parameters and the head,
  // V h = 32000 x 1024 = 32,768,000 (norms, 0.03 %, left out): 183,762,944 parameters,
  // 3.3077e9 bytes, 2.0534 ms per micro-batch; 2 micro-batches add 4.1068 ms.
  const Built megatron(small(", zero_stage: 1"));
  const Built deepspeed(small(", zero_stage: 1, pipeline_engine: deepspeed"));
  const double stage1_params = 12 * 12582912.0 + 32768000.0;
  const double expected = 2 * 18 * stage1_params / (2039e9 * 0.79);
  EXPECT_NEAR(expected, 4.1068e-3, 1e-6);
  EXPECT_NEAR(backward_work(deepspeed, 1) - backward_work(megatron, 1), expected, 1e-3 * expected);
  // One more backward task per backward block: 2 micro-batches.
  EXPECT_EQ(deepspeed.count(TaskKind::backward, 1), megatron.count(TaskKind::backward, 1) + 2);
  // Its gradients are then all-reduced whole in bf16 (2 bytes a parameter), in one bucket
  // of at most 500M elements, not reduce-scattered in fp32.
  std::size_t buckets = 0;
  for (const Task& t : deepspeed.g.tasks) {
    if (t.kind != TaskKind::dp_comm || t.rank != 1) continue;
    ++buckets;
    const PlannedComm& c = deepspeed.g.comms[static_cast<std::size_t>(*t.comm)];
    EXPECT_EQ(c.description.rfind("all_reduce", 0), 0u) << c.description;
    EXPECT_NEAR(c.bytes.value(), 2 * deepspeed.grads.dense_total[1], 1e-9 * c.bytes.value());
    EXPECT_NEAR(c.bytes.value(), 2 * stage1_params, 1e-3 * c.bytes.value());
  }
  EXPECT_EQ(buckets, 1u);
  // Under fp16 DeepSpeed builds its other optimizers: no such pass is modelled.
  auto fp16 = [](Scenario sc) {
    sc.training.precision = Precision::fp16;
    return sc;
  };
  const Built fp16_megatron(fp16(small(", zero_stage: 1")));
  const Built fp16_deepspeed(fp16(small(", zero_stage: 1, pipeline_engine: deepspeed")));
  EXPECT_DOUBLE_EQ(backward_work(fp16_deepspeed, 1), backward_work(fp16_megatron, 1));
}

TEST(OptimizerPass, WaitsForTheRankComputeAndEveryReduction) {
  const Built b(small());
  ASSERT_EQ(b.optimizer.size(), 2u);
  for (std::size_t r = 0; r < 2; ++r) {
    std::vector<int> before;
    for (const auto& [from, to] : b.g.edges)
      if (to == b.optimizer[r]) before.push_back(from);
    std::vector<int> expected = b.grads.reductions[r];
    ASSERT_TRUE(b.pipe.last_compute[r].has_value());
    expected.push_back(*b.pipe.last_compute[r]);
    std::sort(before.begin(), before.end());
    std::sort(expected.begin(), expected.end());
    EXPECT_EQ(before, expected) << r;
  }
}

TEST(FaultChanges, AStragglerSlowsItsStageRank) {
  const Scenario s = small("", "faults: [{kind: straggler, stage: 1, factor: 0.5}]");
  const Context c(s);
  const std::vector<EngineChange> changes = fault_changes(c.ctx, {0, 1});
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].rank, 1);
  EXPECT_FALSE(changes[0].link.has_value());
  EXPECT_DOUBLE_EQ(changes[0].factor, 0.5);
  EXPECT_DOUBLE_EQ(changes[0].t.value(), 0.0);
}

}  // namespace
}  // namespace orrery::detail
