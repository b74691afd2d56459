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
#include "simulator/step.h"
#include "simulator/step_passes.h"

namespace orrery::detail {
namespace {

// 8 A100s in one node: tp 1, pp 2, dp 4, 2 micro-batches per rank (global batch 8),
// 1F1B; a 24-layer dense model, 12 layers a stage.
// One DGX A100 and a 24-layer model (small() and small_interleaved()).
constexpr const char* kSmallClusterAndModel = R"(
cluster: {preset: dgx-a100, nodes: 1}
model: {family: decoder, layers: 24, hidden: 1024, heads: 16, ffn: 4096, vocab: 32000,
        seq_len: 2048, activation: gelu, norm: layernorm, position_embedding: rope,
        tied_embeddings: false, bias: true, dropout: false}
)";

Scenario small(const std::string& extra_parallelism = "", const std::string& extra = "",
               const std::string& extra_training = "") {
  const std::string yaml = fmt::format(R"({}
parallelism: {{tp: 1, pp: 2, dp: 4, microbatch: 1, global_batch: 8, schedule: 1f1b{}}}
training: {{precision: bf16, recompute: none{}}}
{})",
                                       kSmallClusterAndModel, extra_parallelism, extra_training,
                                       extra);
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
  const int a = planner.stage_pair(0, 1, Bytes(ctx.bytes.pp));
  EXPECT_EQ(planner.stage_pair(0, 1, Bytes(ctx.bytes.pp)), a);
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

// Expert groups on 16 GPUs, tp 2, cp 2, dp 4: GPU = t + 2 (c + 2 d). Megatron-Core's
// expert rank generator (parallel_state.py, order tp-cp-ep-dp-pp with cp = 1, etp = tp)
// numbers a stage's dp x cp ranks m = c + 2 d and splits m = e + ep j. With ep 4:
// m 0..3 are (c, d) = (0,0) (1,0) (0,1) (1,1), GPUs 0 2 4 6 for t 0 and 1 3 5 7 for t 1;
// m 4..7 are GPUs 8 10 12 14 and 9 11 13 15. The expert-data-parallel peers of m = 0
// (GPU 0) are m = 0 and 4 (GPU 8). (Megatron's RankGenerator run on these sizes gives
// the same lists.)
TEST(Groups, ExpertGroupsFoldExpertParallelismOverDataAndContext) {
  const Layout L{2, 2, 4, 1};
  const GroupSet ep4 = groups_of(GroupKind::ep, 0, L, 4);
  EXPECT_EQ(ep4.group, (std::vector<int>{0, 2, 4, 6}));
  ASSERT_EQ(ep4.siblings.size(), 3u);
  EXPECT_EQ(ep4.siblings[0], (std::vector<int>{8, 10, 12, 14}));
  EXPECT_EQ(ep4.siblings[1], (std::vector<int>{1, 3, 5, 7}));
  EXPECT_EQ(ep4.siblings[2], (std::vector<int>{9, 11, 13, 15}));
  const GroupSet edp4 = groups_of(GroupKind::expert_dp, 0, L, 4);
  EXPECT_EQ(edp4.group, (std::vector<int>{0, 8}));
  EXPECT_EQ(edp4.siblings.size(), 7u);
  // ep 8 = dp x cp: one expert-parallel group per tensor index, every data and context
  // rank of it (the old split over dp alone had none: dp 4 < ep 8).
  const GroupSet ep8 = groups_of(GroupKind::ep, 0, L, 8);
  EXPECT_EQ(ep8.group, (std::vector<int>{0, 2, 4, 6, 8, 10, 12, 14}));
  ASSERT_EQ(ep8.siblings.size(), 1u);
  EXPECT_EQ(ep8.siblings[0], (std::vector<int>{1, 3, 5, 7, 9, 11, 13, 15}));
  // ep 2: the two context-parallel ranks of one data-parallel index, GPUs 0 and 2.
  EXPECT_EQ(groups_of(GroupKind::ep, 0, L, 2).group, (std::vector<int>{0, 2}));
  // Full mode lists the same expert-data-parallel peers: GPU 2 (m = 1) with GPU 10 (m = 5).
  ParallelismSpec p;
  p.tp = 2, p.cp = 2, p.dp = 4, p.ep = 4;
  const RankSet ranks(L, p, true, 16, 1);
  EXPECT_EQ(ranks.dp_members(2, true), (std::vector<int>{2, 10}));
  EXPECT_EQ(ranks.dp_members(0, false), (std::vector<int>{0, 2, 4, 6, 8, 10, 12, 14}));
}

// Expert tensor parallelism 1 (parallelism.expert_tp) under tp 2: Megatron-Core's expert
// rank generator (tp = etp = 1, order tp-cp-ep-dp-pp, parallel_state.py at d98e8a64) takes
// a stage's ranks r = t + tp (c + cp d) as the flat axis m = r = e + ep j, so an
// expert-parallel group is ep consecutive GPUs whatever their tensor index.
TEST(Groups, ExpertTensorParallelismOneFoldsTheTensorRanksIntoExpertParallelism) {
  Layout L{2, 2, 4, 1};  // tp 2, cp 2, dp 4: 16 GPUs
  L.etp = 1;
  const GroupSet ep8 = groups_of(GroupKind::ep, 0, L, 8);
  EXPECT_EQ(ep8.group, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7}));
  ASSERT_EQ(ep8.siblings.size(), 1u);
  EXPECT_EQ(ep8.siblings[0], (std::vector<int>{8, 9, 10, 11, 12, 13, 14, 15}));
  // Expert data parallelism: 16 / (etp 1 x ep 8) = 2 ranks hold the same experts, m = e + 8 j.
  const GroupSet edp = groups_of(GroupKind::expert_dp, 0, L, 8);
  EXPECT_EQ(edp.group, (std::vector<int>{0, 8}));
  EXPECT_EQ(edp.siblings.size(), 7u);
  // ep 4: GPUs 0-3 (tensor indices 0 and 1 of cp ranks 0 and 1).
  EXPECT_EQ(groups_of(GroupKind::ep, 0, L, 4).group, (std::vector<int>{0, 1, 2, 3}));
  // Full mode: GPU 5 (m = 5) reduces its experts' gradients with GPU 13 (m = 13).
  ParallelismSpec p;
  p.tp = 2, p.cp = 2, p.dp = 4, p.ep = 8, p.expert_tp = 1;
  EXPECT_EQ(p.expert_shard_group(), 2);
  const RankSet ranks(L, p, true, 16, 1);
  EXPECT_EQ(ranks.dp_members(5, true), (std::vector<int>{5, 13}));
}

// Two layers of Mixtral on 2 DGX H100 (16 GPUs): tp 2, cp 2, dp 4 and ep 8 or 4.
Scenario moe16(int ep) {
  return load_scenario_text(fmt::format(R"(
cluster: {{preset: dgx-h100, nodes: 2}}
model: {{preset: mixtral-8x7b, layers: 2, seq_len: 4096, moe: {{load_imbalance: 1}}}}
parallelism: {{tp: 2, cp: 2, dp: 4, ep: {}, microbatch: 1, global_batch: 4,
              ep_alltoall: direct}}
training: {{recompute: none}}
)",
                                        ep),
                            "moe16.yaml");
}

TEST(CommPlanner, ExpertAllToAllBytesOverDataAndContextRanks) {
  // A GPU dispatches its b s / cp = 4096 / 2 = 2048 tokens top_k = 2 times, h = 4096
  // bf16 values each: S = 2048 * 2 * 4096 * 2 B = 32 MiB; a direct all-to-all (pinned by
  // ep_alltoall: direct) sends S / n to each of the n - 1 others.
  const double S = 2048.0 * 2 * 4096 * 2;
  {
    // ep 8: groups {0 2 .. 14} and {1 3 .. 15} span both nodes (GPUs 0-7 and 8-15); each
    // member sends 4 of its 7 pieces to the other node: 2 groups x 8 x 4 x S / 8 = 8 S.
    const Scenario s = moe16(8);
    const Context c(s);
    EXPECT_DOUBLE_EQ(c.ctx.bytes.ep, S);
    TaskGraph g;
    CommPlanner planner(c.ctx, g);
    Task t;
    t.kind = TaskKind::ep_comm;
    t.comm = planner.group(CollectiveOp::all_to_all, GroupKind::ep, 0, Bytes(S));
    planner.issue(t);
    EXPECT_NEAR(planner.traffic().at(LinkClass::nic), 8 * S, 1e-6 * S);
  }
  {
    // ep 4: four groups of 4 GPUs inside a node (GPUs 0 2 4 6, ...): nothing crosses a
    // NIC; NVLink carries 4 groups x 4 x 3 x S / 4 = 12 S.
    const Scenario s = moe16(4);
    const Context c(s);
    TaskGraph g;
    CommPlanner planner(c.ctx, g);
    Task t;
    t.kind = TaskKind::ep_comm;
    t.comm = planner.group(CollectiveOp::all_to_all, GroupKind::ep, 0, Bytes(S));
    planner.issue(t);
    EXPECT_EQ(planner.traffic().count(LinkClass::nic), 0u);
    EXPECT_NEAR(planner.traffic().at(LinkClass::nvlink), 12 * S, 1e-6 * S);
  }
}

TEST(CommPlanner, ExpertExchangeWithNodeLimitOverTwoNodes) {
  // ep 8 over dp x cp ranks {0 2 .. 14} and {1 3 .. 15}: 4 GPUs on each of the 2 nodes,
  // one of Mixtral's 8 experts each, top_k 2; S = 2048 * 2 * 4096 * 2 B as above, u = S/2
  // one copy. DeepEP's exchange (ep_alltoall: hierarchical), per group: each of 8 GPUs
  // sends u * P(other node) over its NIC; P = 1 - C(4, 2)/C(8, 2) = 11/14 without a limit,
  // 1/2 with node_limit 1 (its one node is the other with chance 1/2): 2 groups x 8 x u x
  // P = 8 S x 11/14, or 4 S. NVLink: on each node GPU j forwards to each of its 3
  // neighbours 2 nodes x u x 2/8 (P a token needs that GPU's expert, k/E either way): 2
  // groups x 2 nodes x 4 x 3 x u / 2 = 12 S.
  const double S = 2048.0 * 2 * 4096 * 2;
  for (const std::string limit : {"", ", moe: {node_limit: 1}"}) {
    const Scenario s = load_scenario_text(fmt::format(R"(
cluster: {{preset: dgx-h100, nodes: 2}}
model: {{preset: mixtral-8x7b, layers: 2, seq_len: 4096{}}}
parallelism: {{tp: 2, cp: 2, dp: 4, ep: 8, microbatch: 1, global_batch: 4,
              ep_alltoall: hierarchical}}
training: {{recompute: none}}
)",
                                                      limit),
                                          "limit.yaml");
    const Context c(s);
    TaskGraph g;
    CommPlanner planner(c.ctx, g);
    Task t;
    t.kind = TaskKind::ep_comm;
    t.comm = planner.group(CollectiveOp::all_to_all, GroupKind::ep, 0, Bytes(S));
    planner.issue(t);
    const double nic = limit.empty() ? 8 * S * 11 / 14 : 4 * S;
    EXPECT_NEAR(planner.traffic().at(LinkClass::nic), nic, 1e-6 * S) << limit;
    EXPECT_NEAR(planner.traffic().at(LinkClass::nvlink), 12 * S, 1e-6 * S) << limit;
  }
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
    tied_embedding_pass(ctx, ranks, pipe, planner, grads, false);
    grad_sync_pass(ctx, ranks, layers, pipe, planner, g, grads);
    tied_embedding_pass(ctx, ranks, pipe, planner, grads, true);
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
  const Built b(small());  // overlap_grad_reduce, the default
  // Without ZeRO, each stage's gradients are all-reduced in buckets; their sizes add up to
  // the stage's parameters times the gradient's bytes. With overlap_grad_reduce,
  // Megatron-Core buckets the first model chunk of pipeline rank 0 only (chunk_bucket_params):
  // there a bucket closes at the first parameter (an op's weight and bias) that brings it
  // to max(40M, 1M x dp) = 40M, in backward order. A layer's ops in backward order: fc2
  // h ffn + h = 4,195,328, fc1 h ffn + ffn = 4,198,400, its norm 2h = 2048, proj h^2 + h =
  // 1,049,600, qkv 3h^2 + 3h = 3,148,800, its norm 2048: 12,596,224. The embedding V h =
  // 32,768,000.
  // Stage 0 (12 layers, then the embedding): 41,984,000, 41,987,072, 41,989,120, and the
  // last 57,962,496 with the embedding: 4 buckets.
  // Stage 1 (pipeline rank 1): one bucket, all 183,924,736 of its parameters (12 layers,
  // the final norm 2048 and the output layer V h).
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
    EXPECT_EQ(buckets, rank == 1 ? 1u : 4u) << rank;
    if (rank == 1) {
      EXPECT_DOUBLE_EQ(params, 12 * 12596224.0 + 2048 + 32768000.0);
    }
    // The optimizer of plain data parallelism updates every local parameter.
    EXPECT_DOUBLE_EQ(b.grads.local_params[rank], params);
  }
}

TEST(GradSyncPass, WithoutOverlapEveryStageReducesOneBucket) {
  // Megatron-LM sets no bucket size without overlap_grad_reduce (resolve_ddp_bucket_size at
  // d98e8a64: "if overlap_grad_reduce is False: None"): each stage's buffer is one bucket,
  // stage 0 its 12 layers and the embedding, 12 x 12,596,224 + 32,768,000.
  Scenario plain = small();
  plain.training.overlap_grad_reduce = false;
  const Built b(std::move(plain));
  for (int rank = 0; rank < 2; ++rank) {
    std::vector<double> sizes;
    for (const Task& t : b.g.tasks) {
      if (t.kind != TaskKind::dp_comm || t.rank != rank) continue;
      sizes.push_back(b.g.comms[static_cast<std::size_t>(*t.comm)].bytes.value());
    }
    ASSERT_EQ(sizes.size(), 1u) << rank;
    EXPECT_DOUBLE_EQ(sizes[0], b.grads.dense_total[rank] *
                                   state_bytes_per_param(b.s.training).gradient);
  }
  EXPECT_DOUBLE_EQ(b.grads.dense_total[0], 12 * 12596224.0 + 32768000.0);
}

TEST(GradSyncPass, MegatronBucketsCloseAtTheParameterThatFillsThem) {
  // The Megatron-LM README's 32B row at tp 8 (h = 7168, ffn = 28672, biases, LayerNorm),
  // 4 of its layers, buckets of max(40M, 1M x 48) = 48M parameters (param_and_grad_buffer.py
  // at core_r0.8.0 baf94af3: a bucket closes after the parameter that brings it to 48M).
  // A layer's parameters on one rank in backward order: fc2 (3584 x 7168 + 7168, the
  // row-parallel bias whole) 25,697,280; fc1 (7168 x 3584 + 3584) 25,693,696; its norm
  // 2 x 7168 = 14,336; proj (896 x 7168 + 7168) 6,429,696; qkv (7168 x 2688 + 2688)
  // 19,270,272; its input norm 14,336: 77,119,616, so a layer holds one and a half buckets,
  // not one (three buckets every two layers):
  //   fc2 + fc1 of layer 3                                  51,390,976
  //   rest of layer 3 (25,728,640) + fc2 of layer 2         51,425,920
  //   fc1 .. qkv of layer 2                                 51,408,000
  //   input norm of layer 2 + fc2 + fc1 of layer 1          51,405,312
  //   rest of layer 1 + fc2 of layer 0                      51,425,920
  //   fc1 .. qkv of layer 0                                 51,408,000
  //   input norm of layer 0, left at the end                    14,336
  const Scenario s = load_scenario_text(R"(
cluster: {preset: dgx-h100, nodes: 48}
model: {family: decoder, layers: 4, hidden: 7168, heads: 56, ffn: 28672, vocab: 131072,
        seq_len: 4096, activation: gelu, norm: layernorm, position_embedding: learned,
        tied_embeddings: false, bias: true, dropout: false}
parallelism: {tp: 8, pp: 1, dp: 48, sequence_parallel: true, microbatch: 1, global_batch: 192,
              zero_stage: 1}
training: {precision: bf16, recompute: none}
)",
                                        "32b.yaml");
  const Workload w = build_workload(s.model, s.training, shard_of(s.parallelism));
  std::vector<const Layer*> backward;
  for (auto l = w.layers.rbegin(); l != w.layers.rend(); ++l)
    if (l->kind == LayerKind::transformer) backward.push_back(&*l);
  ASSERT_EQ(backward.size(), 4u);
  EXPECT_NEAR(backward.front()->params(), 77119616.0, 0.5);
  const std::vector<double> sizes = dense_bucket_sizes(backward, 48e6);
  const std::vector<double> expected = {51390976, 51425920, 51408000, 51405312,
                                        51425920, 51408000, 14336};
  ASSERT_EQ(sizes.size(), expected.size());
  for (std::size_t k = 0; k < sizes.size(); ++k) EXPECT_NEAR(sizes[k], expected[k], 0.5) << k;
}

// small()'s model interleaved: pp 2 x vp 2, six layers a chunk; `training` is the
// training mapping's extra keys.
Scenario small_interleaved(const std::string& training = "") {
  return load_scenario_text(fmt::format(R"({}
parallelism: {{tp: 1, pp: 2, dp: 4, microbatch: 1, global_batch: 8, zero_stage: 1,
              schedule: interleaved-1f1b, virtual_pipeline_stages: 2}}
training: {{precision: bf16, recompute: none{}}}
)",
                                        kSmallClusterAndModel, training),
                            "small_interleaved.yaml");
}

// Each data-parallel gradient bucket's parameters on rank `rank`, in issue order.
std::vector<double> bucket_params(const Built& b, int rank) {
  std::vector<double> out;
  const double grad_bytes = state_bytes_per_param(b.s.training).gradient;
  for (const Task& t : b.g.tasks) {
    if (t.kind != TaskKind::dp_comm || t.rank != rank) continue;
    out.push_back(b.g.comms[static_cast<std::size_t>(*t.comm)].bytes.value() / grad_bytes);
  }
  return out;
}

TEST(GradSyncPass, ApexDistributedAdamBucketsEachLayer) {
  // NeMo 1.x's DistributedFusedAdam without interleaving: a bucket a transformer layer
  // (12,596,224 parameters, BucketsCarryEveryDenseGradientOnce), the stage's first layer's
  // bucket also taking the embedding: stage 0, in backward order, 11 layers and then
  // 12,596,224 + 32,768,000 = 45,364,224; stage 1, the output layer (32,768,000) and final
  // norm (2048) in the first bucket with layer 23, 45,366,272, then 11 layers. Megatron-Core
  // would give stage 1 one bucket (BucketsCarryEveryDenseGradientOnce).
  const Built b(small(", zero_stage: 1", "",
                      ", stack: nemo, grad_buckets: apex-distributed-adam"));
  const double layer = 12596224.0;
  std::vector<double> stage0(11, layer), stage1(11, layer);
  stage0.push_back(layer + 32768000.0);
  stage1.insert(stage1.begin(), layer + 2048 + 32768000.0);
  const std::vector<double> got0 = bucket_params(b, 0), got1 = bucket_params(b, 1);
  ASSERT_EQ(got0.size(), stage0.size());
  ASSERT_EQ(got1.size(), stage1.size());
  for (std::size_t k = 0; k < stage0.size(); ++k) {
    EXPECT_NEAR(got0[k], stage0[k], 0.5) << k;
    EXPECT_NEAR(got1[k], stage1[k], 0.5) << k;
  }
}

TEST(GradSyncPass, ApexDistributedAdamBucketsEachChunkOnEveryStage) {
  // Under interleaving NeMo 1.x gives each model chunk one bucket, on every pipeline rank
  // (pipeline rank 0's first chunk too, which Megatron-Core buckets): 24 layers over pp 2 x
  // vp 2, six a chunk. Stage 0: chunk 1 (layers 12-17, 75,577,344), then chunk 0 (layers
  // 0-5 and the embedding, 108,345,344); stage 1: chunk 1 (layers 18-23, the final norm
  // and the output layer, 108,347,392), then chunk 0 (layers 6-11).
  const Built b(small_interleaved(", stack: nemo, grad_buckets: apex-distributed-adam"));
  const double six = 6 * 12596224.0;
  const std::vector<double> got0 = bucket_params(b, 0), got1 = bucket_params(b, 1);
  ASSERT_EQ(got0.size(), 2u);
  ASSERT_EQ(got1.size(), 2u);
  EXPECT_NEAR(got0[0], six, 0.5);
  EXPECT_NEAR(got0[1], six + 32768000.0, 0.5);
  EXPECT_NEAR(got1[0], six + 2048 + 32768000.0, 0.5);
  EXPECT_NEAR(got1[1], six, 0.5);
}

TEST(OptimizerPass, FirstChunkGathersUnderTheOtherChunksStep) {
  // --overlap-param-gather-with-optimizer-step, pp 2 x vp 2, ZeRO-1 over dp 4: every chunk
  // is one gradient bucket (stage 0's chunk 0 too: two buckets a stage); chunk 0 is stepped
  // first, by its share of the stage's parameters (stage 0: 108,345,344 of 183,922,688),
  // and its parameters' all-gather, 108,345,344 bf16 weights = 216,690,688 bytes on stage 0,
  // waits for that step on every data-parallel member and for nothing in the forward,
  // where only chunk 1's gather is left.
  const Built with(small_interleaved(", overlap_param_gather_with_optimizer_step: true"));
  const Built without(small_interleaved());
  EXPECT_EQ(bucket_params(with, 0).size(), 2u);
  EXPECT_GT(bucket_params(without, 0).size(), 2u);  // chunk 0 of rank 0 bucketed at 40M
  const double chunk0 = 6 * 12596224.0 + 32768000.0, all = 12 * 12596224.0 + 32768000.0;
  // Rank 0's optimizer: two tasks, the first chunk 0's share.
  std::vector<const Task*> steps;
  for (const Task& t : with.g.tasks)
    if (t.kind == TaskKind::optimizer && t.rank == 0) steps.push_back(&t);
  ASSERT_EQ(steps.size(), 2u);
  const double whole = steps[0]->work.value() + steps[1]->work.value();
  // The main gradients' passes come before the first chunk's step and the buffer's zeroing
  // after the last (megatron_step_passes): the fused step alone splits by parameters.
  const Context c(with.s);
  const MegatronStepPasses passes =
      megatron_step_passes(c.ctx, all, with.grads.local_params[0]);
  const double fused = whole - passes.before.value() - passes.after.value();
  EXPECT_NEAR(steps[0]->work.value(), passes.before.value() + fused * chunk0 / all,
              1e-12 * whole);
  std::vector<const Task*> one;
  for (const Task& t : without.g.tasks)
    if (t.kind == TaskKind::optimizer && t.rank == 0) one.push_back(&t);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_NEAR(whole, one[0]->work.value(), 1e-12 * whole);
  // The gathers of rank 0's stage: one after the optimizer (chunk 0's), the rest before it.
  const int first_step = static_cast<int>(steps[0] - with.g.tasks.data());
  int after_step = 0;
  for (std::size_t i = 0; i < with.g.tasks.size(); ++i) {
    const Task& t = with.g.tasks[i];
    if (t.kind != TaskKind::param_gather || t.rank != 0) continue;
    const bool waits = std::any_of(with.g.edges.begin(), with.g.edges.end(), [&](const auto& e) {
      return e.first == first_step && e.second == static_cast<int>(i);
    });
    if (!waits) continue;
    ++after_step;
    EXPECT_NEAR(with.g.comms[static_cast<std::size_t>(*t.comm)].bytes.value(), chunk0 * 2, 0.5);
  }
  EXPECT_EQ(after_step, 1);
  // Rank 0 gathers each chunk once, one bucket each: chunk 1's in its first forward, chunk
  // 0's after the step; the bytes are those of the run without the flag.
  auto gathered = [](const Built& b) {
    std::pair<int, double> out{0, 0.0};
    for (const Task& t : b.g.tasks) {
      if (t.kind != TaskKind::param_gather || t.rank != 0) continue;
      ++out.first;
      out.second += b.g.comms[static_cast<std::size_t>(*t.comm)].bytes.value();
    }
    return out;
  };
  EXPECT_EQ(gathered(with).first, 2);
  EXPECT_NEAR(gathered(with).second, all * 2, 0.5);
  EXPECT_NEAR(gathered(without).second, all * 2, 0.5);
}

TEST(OptimizerPass, TheFirstChunksStepHoldsItsDenseShardAlone) {
  // With experts, chunk 0's optimizer (a chained optimizer of its own under the flag)
  // steps chunk 0's dense parameters only, their 1/dp shard; every chunk's experts are
  // stepped by the expert optimizer, last (get_megatron_optimizer's is_expert_parallel
  // filter). Its share of the rank's step is that shard over all the rank updates: not
  // chunk 0's parameters over the stage's, which counts its experts and their other shard.
  std::string model = kSmallClusterAndModel;
  model.replace(model.find("dropout: false}"), 15,
                "dropout: false, moe: {experts: 8, top_k: 2, expert_ffn: 1024, load_imbalance: 1}}");
  const Built b(load_scenario_text(model + R"(
parallelism: {tp: 1, pp: 2, dp: 4, ep: 4, microbatch: 1, global_batch: 8, zero_stage: 1,
              schedule: interleaved-1f1b, virtual_pipeline_stages: 2}
training: {precision: bf16, recompute: none, overlap_param_gather_with_optimizer_step: true}
)",
                                   "moe.yaml"));
  const StageLayers layers(b.ctx);
  double dense0 = 0, all = 0, experts = 0;
  for (int c = 0; c < 2; ++c) {
    for (const Layer* l : layers.of_block(0, c)) {
      if (c == 0) dense0 += l->params() - l->expert_params();
      all += l->params();
      experts += l->expert_params();
    }
  }
  ASSERT_GT(experts, 0.0);
  // ep 4 over dp 4: each expert's parameters on one rank, not sharded further.
  const double local = (all - experts) / 4 + experts;
  EXPECT_NEAR(b.grads.local_params[0], local, 0.5);
  std::vector<const Task*> steps;
  for (const Task& t : b.g.tasks)
    if (t.kind == TaskKind::optimizer && t.rank == 0) steps.push_back(&t);
  ASSERT_EQ(steps.size(), 2u);
  const Context c(b.s);
  const MegatronStepPasses passes = megatron_step_passes(c.ctx, all, local);
  const double whole = steps[0]->work.value() + steps[1]->work.value();
  const double fused = whole - passes.before.value() - passes.after.value();
  const double share = (dense0 / 4) / local;
  EXPECT_NEAR(steps[0]->work.value(), passes.before.value() + fused * share, 1e-12 * whole);
  EXPECT_LT(share, 0.5 * dense0 / all);  // far from the parameters' own ratio
}

TEST(GradBuckets, MegatronLmSizesTheDefaultByDataTimesContextParallel) {
  // 64 H100s, dp 32 x cp 2: Megatron-LM's training loop sizes the default bucket by the
  // dp_cp group, max(40M, 1M x 64) = 64M (resolve_ddp_bucket_size); Megatron-Core DDP's own
  // default, which NeMo reaches without a size, by dp alone, max(40M, 32M) = 40M.
  auto scenario = [](const std::string& stack) {
    return load_scenario_text(fmt::format(R"(
cluster: {{preset: dgx-h100, nodes: 8}}
model: {{preset: llama3-8b}}
parallelism: {{tp: 1, pp: 1, cp: 2, dp: 32, zero_stage: 1, global_batch: 64}}
training: {{precision: bf16, stack: {}}}
)",
                                          stack),
                              "cp.yaml");
  };
  const Scenario lm = scenario("megatron-core"), nemo = scenario("nemo");
  EXPECT_DOUBLE_EQ(grad_bucket_params(Context(lm).ctx), 64e6);
  EXPECT_DOUBLE_EQ(grad_bucket_params(Context(nemo).ctx), 40e6);
}

TEST(GradBuckets, MegatronCoreByDefaultWhereItsBufferRunsAndRefusedElsewhere) {
  // Resolved: Megatron-Core's bucketing under the Megatron engine at ZeRO-0/1 with the
  // megatron-core or nemo stack; none under DeepSpeed's engine or a PyTorch stack, ZeRO-2.
  EXPECT_EQ(small().training.grad_buckets, TrainingSpec::GradBuckets::megatron_core);
  EXPECT_EQ(small(", zero_stage: 1", "", ", stack: nemo").training.grad_buckets,
            TrainingSpec::GradBuckets::megatron_core);
  EXPECT_FALSE(small(", zero_stage: 1, pipeline_engine: deepspeed").training.grad_buckets);
  EXPECT_FALSE(small(", zero_stage: 2").training.grad_buckets);
  EXPECT_FALSE(small("", "", ", stack: fsdp2").training.grad_buckets.has_value());
  // Apex's optimizer shards its state: ZeRO-1 only.
  EXPECT_THROW(small(", zero_stage: 0", "", ", stack: nemo, grad_buckets: apex-distributed-adam"),
               InputError);
  EXPECT_NO_THROW(small(", zero_stage: 1", "", ", grad_buckets: apex-distributed-adam"));
  EXPECT_THROW(small(", zero_stage: 2", "", ", grad_buckets: megatron-core"), InputError);
  // The optimizer-step overlap as Megatron-LM asserts it.
  EXPECT_THROW(small(", zero_stage: 1", "", ", overlap_param_gather_with_optimizer_step: true"),
               InputError);  // no interleaving
  EXPECT_THROW(small_interleaved(", overlap_param_gather: false, "
                                 "overlap_param_gather_with_optimizer_step: true"),
               InputError);
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
  // them into its fp32 buffer after every backward: 2 read, 4 written by the cast, a
  // dtype-converting copy at A100 80GB HBM x cast_efficiency = 2039 GB/s x 0.702 =
  // 1431.38 GB/s, and 4 + 4 read, 4 written by the add at HBM x memory efficiency =
  // 2039 GB/s x 0.79 = 1610.81 GB/s. Stage 1 holds 12 layers of
  // 4h^2 + 2 h ffn = 4 x 1024^2 + 2 x 1024 x 4096 = 12,582,912 parameters and the head,
  // V h = 32000 x 1024 = 32,768,000 (norms, 0.03 %, left out): 183,762,944 parameters,
  // cast 1.1026e9 bytes in 0.7703 ms and add 2.2052e9 bytes in 1.3690 ms per micro-batch;
  // 2 micro-batches add 4.2785 ms.
  const Built megatron(small(", zero_stage: 1"));
  const Built deepspeed(small(", zero_stage: 1, pipeline_engine: deepspeed"));
  const double stage1_params = 12 * 12582912.0 + 32768000.0;
  const double expected =
      2 * (6 * stage1_params / (2039e9 * 0.702) + 12 * stage1_params / (2039e9 * 0.79));
  EXPECT_NEAR(expected, 4.2785e-3, 1e-6);
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

// small() with tied word embeddings: the first stage's table and the last stage's output
// layer are one weight, V h = 32000 x 1024 = 32,768,000 elements on each (tp 1).
Scenario small_tied(const std::string& extra_parallelism) {
  Scenario s = small(extra_parallelism);
  s.model.tied_embeddings = true;
  return s;
}

TEST(TiedEmbeddingPass, DeepSpeedAllReducesTheFp32TiedGradientOfFirstAndLastStage) {
  // DeepSpeed's ReduceTiedGrads: dist.all_reduce of the tied weight's _hp_grad, BF16_
  // Optimizer's fp32 buffer, over the first- and last-stage GPUs of one data index: GPU =
  // d + 4 p here (tp 1, dp 4), so the groups are {0, 4}, {1, 5}, {2, 6}, {3, 7}, each
  // 32,768,000 x 4 = 131,072,000 bytes.
  const Built b(small_tied(", zero_stage: 1, pipeline_engine: deepspeed"));
  EXPECT_DOUBLE_EQ(tied_embedding_bytes(b.ctx), 131072000.0);
  const GroupSet gs = groups_of(GroupKind::embedding, 0, b.ctx.L, 1);
  EXPECT_EQ(gs.group, (std::vector<int>{0, 4}));
  EXPECT_EQ(gs.siblings,
            (std::vector<std::vector<int>>{{1, 5}, {2, 6}, {3, 7}}));
  ASSERT_TRUE(b.grads.tied[0].has_value());
  ASSERT_EQ(b.grads.tied[1], b.grads.tied[0]);  // one task for both stages
  const int tied = *b.grads.tied[0];
  const Task& t = b.g.tasks[static_cast<std::size_t>(tied)];
  EXPECT_EQ(t.kind, TaskKind::dp_comm);
  EXPECT_EQ(t.rank, 0);
  const PlannedComm& c = b.g.comms[static_cast<std::size_t>(*t.comm)];
  EXPECT_EQ(c.description.rfind("all_reduce", 0), 0u) << c.description;
  EXPECT_DOUBLE_EQ(c.bytes.value(), 131072000.0);
  // It waits for both stages' last compute; each stage's gradient all-reduce (one bucket
  // a stage: at most 500M elements) and optimizer wait for it.
  auto edge = [&](int from, int to) {
    return std::find(b.g.edges.begin(), b.g.edges.end(), std::make_pair(from, to)) !=
           b.g.edges.end();
  };
  for (int r = 0; r < 2; ++r) {
    EXPECT_TRUE(edge(*b.pipe.last_compute[static_cast<std::size_t>(r)], tied)) << r;
    EXPECT_TRUE(edge(tied, b.optimizer[static_cast<std::size_t>(r)])) << r;
    std::size_t buckets = 0;
    for (std::size_t i = 0; i < b.g.tasks.size(); ++i) {
      const Task& d = b.g.tasks[i];
      if (d.kind != TaskKind::dp_comm || d.rank != r || static_cast<int>(i) == tied) continue;
      ++buckets;
      EXPECT_TRUE(edge(tied, static_cast<int>(i))) << r;
    }
    EXPECT_EQ(buckets, 1u) << r;
  }
  // Untied embeddings: none.
  {
    const Built untied(small(", zero_stage: 1, pipeline_engine: deepspeed"));
    EXPECT_DOUBLE_EQ(tied_embedding_bytes(untied.ctx), 0.0);
    EXPECT_FALSE(untied.grads.tied[0].has_value());
  }
}

TEST(TiedEmbeddingPass, MegatronAllReducesTheMainGradAfterTheDataParallelReduction) {
  // Megatron-LM: the embedding group's all-reduce of main_grad, in the gradient buffer's
  // dtype (fp32 here: 32,768,000 x 4 = 131,072,000 bytes), after both stages' gradient
  // reduction and before their optimizers.
  const Built b(small_tied(", zero_stage: 1"));
  ASSERT_EQ(state_bytes_per_param(b.s.training).gradient, 4.0);
  EXPECT_DOUBLE_EQ(tied_embedding_bytes(b.ctx), 131072000.0);
  ASSERT_TRUE(b.grads.tied[0].has_value());
  ASSERT_EQ(b.grads.tied[1], b.grads.tied[0]);
  const int tied = *b.grads.tied[0];
  auto edge = [&](int from, int to) {
    return std::find(b.g.edges.begin(), b.g.edges.end(), std::make_pair(from, to)) !=
           b.g.edges.end();
  };
  for (int r = 0; r < 2; ++r) {
    EXPECT_TRUE(edge(tied, b.optimizer[static_cast<std::size_t>(r)])) << r;
    std::size_t reductions = 0;
    for (int d : b.grads.reductions[static_cast<std::size_t>(r)]) {
      if (d == tied) continue;
      ++reductions;
      EXPECT_TRUE(edge(d, tied)) << r;
    }
    EXPECT_GE(reductions, 1u) << r;
  }
}

// The head's stage holds a copy of tied embeddings: its gradients (reduced over the
// data-parallel group) take the table, V h = 32,768,000 elements, besides its 12 layers
// and the final norm's 2 h = 2,048. The first stage holds the same 12-layer count and the
// table (rope: no position table), so the head's stage has exactly 2,048 more; untied, its
// own output layer (V h, no bias) gives it the same count.
TEST(TiedEmbeddingPass, TheHeadStageReducesItsCopyOfTheTable) {
  const Built b(small_tied(", zero_stage: 1, pipeline_engine: deepspeed"));
  EXPECT_DOUBLE_EQ(b.grads.dense_total[1] - b.grads.dense_total[0], 2048.0);
  const Built untied(small(", zero_stage: 1, pipeline_engine: deepspeed"));
  EXPECT_DOUBLE_EQ(untied.grads.dense_total[1], b.grads.dense_total[1]);
  // So does its fp32 accumulation after every backward (18 bytes a parameter).
  EXPECT_NEAR(backward_work(b, 1), backward_work(untied, 1), 1e-12);
}

// The copy and its all-reduce follow one condition (tied_embedding_copy). DualPipe (4
// micro-batches a rank, at least 2 pp): ranks 0 and 1 each hold the embedding (chunk 0 on
// rank 0, the mirror's chunk 1 on rank 1) and the head, one parameter, so the head takes
// no copy of V h = 32,768,000 and no all-reduce pairs the ranks. The StageLayers copy was added here before (the
// all-reduce already excluded DualPipe), a parameter no collective summed with the table.
TEST(TiedEmbeddingPass, NoCopyUnderDualPipe) {
  auto dual = [](bool tied) {
    return load_scenario_text(fmt::format(R"(
cluster: {{preset: dgx-a100, nodes: 1}}
model: {{family: decoder, layers: 24, hidden: 1024, heads: 16, ffn: 4096, vocab: 32000,
        seq_len: 2048, activation: gelu, norm: layernorm, position_embedding: rope,
        tied_embeddings: {}, bias: true, dropout: false}}
parallelism: {{tp: 1, pp: 2, dp: 4, microbatch: 1, global_batch: 16, zero_stage: 1,
              schedule: dualpipe}}
training: {{precision: bf16, recompute: none}}
)",
                                          tied),
                              "dualpipe.yaml");
  };
  const Built b(dual(true));
  EXPECT_FALSE(tied_embedding_copy(b.s));
  EXPECT_DOUBLE_EQ(tied_embedding_bytes(b.ctx), 0.0);
  EXPECT_FALSE(b.grads.tied[0].has_value());
  const Built untied(dual(false));
  // The gradient list a rank reduces is its chunk 0's (the mirror reduction adds the other
  // rank's copy): rank 0's holds the embedding, the same either way; rank 1's holds the
  // head, whose untied output layer has V h of its own.
  EXPECT_DOUBLE_EQ(untied.grads.dense_total[0], b.grads.dense_total[0]);
  EXPECT_DOUBLE_EQ(untied.grads.dense_total[1] - b.grads.dense_total[1], 32768000.0);
  // Embedding and head on different ranks (small_tied's 1F1B): the copy.
  EXPECT_TRUE(tied_embedding_copy(small_tied(", zero_stage: 1")));
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

TEST(OptimizerPass, MegatronZeroesItsGradientBufferAndReadsTheNormEachStep) {
  // Megatron-Core's step besides the fused optimizer (megatron_step_passes), stage 0 of
  // small() (no ZeRO: the optimizer updates all 183,922,688 of its parameters, 12 layers
  // of 12,596,224 and the 32,768,000 embedding). fp32 gradients: the norm reads them,
  // 735,690,752 bytes, and zero_grad_buffer writes as many, each at A100 80GB HBM x
  // memory_efficiency = 2039 GB/s x 0.79 = 1610.81 GB/s: 456.72 us each. bf16 gradients:
  // the buffer zeroed is 367,845,376 bytes (228.36 us); the main gradients cast (read 2,
  // write 4: 1,103,536,128 bytes at 2039 x cast_efficiency 0.702 = 1431.38 GB/s, 770.97
  // us), read for the step's 4 - 2 bytes (228.36 us) and the norm (456.72 us).
  const double params = 12 * 12596224.0 + 32768000.0;
  const double hbm = 2039e9 * 0.79, cast = 2039e9 * 0.702;
  Scenario fp32 = small();
  Scenario bf16 = small();
  bf16.training.gradient_dtype = Dtype::bf16;
  for (const Scenario* s : {&fp32, &bf16}) {
    const Built b(*s);
    const Context c(*s);
    const double g = s == &fp32 ? 4.0 : 2.0;
    const MegatronStepPasses passes = megatron_step_passes(c.ctx, params, params);
    EXPECT_NEAR(passes.after.value(), g * params / hbm, 1e-9) << g;
    const double before = g == 4.0 ? 4 * params / hbm
                                   : 6 * params / cast + 2 * params / hbm + 4 * params / hbm;
    EXPECT_NEAR(passes.before.value(), before, 1e-9) << g;
    // Both in the rank's optimizer task, after the fused step over its parameters.
    const Seconds step = optimizer_step_time(*s, *c.ctx.model, params, {}, nullptr);
    EXPECT_NEAR(b.g.tasks[static_cast<std::size_t>(b.optimizer[0])].work.value(),
                step.value() + before + g * params / hbm, 1e-9)
        << g;
  }
  // bf16 moments need Megatron's precision-aware optimizer, which without an fp8 recipe
  // reads the 16-bit buffer as is (use_precision_aware_optimizer_no_fp8_or_ds_fp8): no
  // cast, the norm reading 2 bytes a parameter.
  Scenario aware = small();
  aware.training.gradient_dtype = Dtype::bf16;
  aware.training.optimizer_state_dtype = StateDtype::bf16;
  const Context a(aware);
  EXPECT_NEAR(megatron_step_passes(a.ctx, params, params).before.value(), 2 * params / hbm, 1e-9);
  // Not under DeepSpeed's engine, whose buffers are its own.
  const Scenario ds = small(", zero_stage: 1, pipeline_engine: deepspeed");
  const Context d(ds);
  EXPECT_EQ(megatron_step_passes(d.ctx, params, params).after.value(), 0.0);
  EXPECT_EQ(megatron_step_passes(d.ctx, params, params).before.value(), 0.0);
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
