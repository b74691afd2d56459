// Whole-step simulation: pipeline bubbles from the schedules' dependencies against
// their closed forms, data-parallel overlap, agreement between the symmetric, full and
// op-level modes, and determinism.
#include "simulator/step.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <fmt/format.h>

#include "core/error.h"
#include "report/run_report.h"
#include "scenario/load.h"
#include "calibrate/compute_model.h"
#include "model/layer_pass.h"
#include "model/memory.h"
#include "model/workload.h"
#include "simulator/breakdown.h"
#include "simulator/collectives.h"
#include "tests/simulator/pipelines.h"
#include "tests/test_util.h"

namespace orrery {
namespace {


// Idle time over busy time on the busiest stage. (The first and last stages carry the
// tiny embedding and head, so they set the pace; the others wait for them a little.)
double bubble_fraction(const StepResult& r) {
  const Breakdown& b = r.stages.at(r.critical_stage).breakdown;
  return b.bubble / (b.compute + b.recompute);
}

TEST(Step, OneFOneBBubbleIsPMinus1OverM) {
  // Narayanan et al. 2021, section 2.2.1: bubble time / ideal time = (p - 1) / m.
  for (int m : {8, 16}) {
    const StepResult r = simulate_step(uniform_pipeline(4, m, "1f1b"));
    EXPECT_NEAR(bubble_fraction(r), 3.0 / m, 0.02 * 3.0 / m) << "m = " << m;
  }
}

TEST(Step, GPipeBubbleIsAlsoPMinus1OverM) {
  const StepResult r = simulate_step(uniform_pipeline(4, 8, "gpipe"));
  EXPECT_NEAR(bubble_fraction(r), 3.0 / 8, 0.02 * 3.0 / 8);
}

TEST(Step, InterleavedBubbleIsPMinus1OverVM) {
  // Narayanan et al. 2021, section 2.2.2: (p - 1) / (v * m) with v model chunks per GPU.
  const StepResult r = simulate_step(uniform_pipeline(4, 8, "interleaved-1f1b", 2));
  EXPECT_NEAR(bubble_fraction(r), 3.0 / (2 * 8), 0.02 * 3.0 / 16);
}

TEST(Step, BreakdownAddsUpToTheStepTime) {
  const Scenario s =
      load_scenario_file(std::string(ORRERY_SOURCE_DIR) + "/scenarios/gpt3-175b-a100-1024.yaml");
  const StepResult r = simulate_step(s);
  for (const StageReport& st : r.stages) {
    EXPECT_NEAR(st.breakdown.total().value(), r.step_time.value(), 1e-9 * r.step_time.value());
  }
}

// Two nodes, 2-way data parallel over the inter-node network, with the gradient all-reduce
// either overlapped with the last backward or after it. The backward of 8 sequences
// takes longer than the all-reduce. No compute slowdown, so overlap is pure gain.
Scenario data_parallel(bool overlap) {
  const std::string yaml = fmt::format(R"(
cluster: {{preset: dgx-h100, nodes: 2}}
model: {{preset: llama3-8b, seq_len: 4096}}
parallelism: {{tp: 8, pp: 1, dp: 2, microbatch: 8, global_batch: 16, sequence_parallel: true}}
training: {{recompute: none, overlap_grad_reduce: {}, grad_bucket_params: 1e8}}
simulation: {{compute_slowdown: 0}}
)",
                                       overlap ? "true" : "false");
  return load_scenario_text(yaml, "dp.yaml");
}

TEST(Step, GradientReductionShorterThanBackwardIsHidden) {
  const StepResult overlapped = simulate_step(data_parallel(true));
  const StepResult serial = simulate_step(data_parallel(false));
  const double exposed = overlapped.stages[0].breakdown.dp_exposed.value();
  const double all = serial.stages[0].breakdown.dp_exposed.value();
  // Without overlap the whole reduction is exposed; with it, only the last bucket (the
  // first layers and the embedding, whose gradients are ready last) is.
  EXPECT_GT(all, 0.0);
  EXPECT_LT(exposed, 0.25 * all);
  EXPECT_NEAR(serial.step_time.value() - overlapped.step_time.value(), all - exposed,
              0.05 * all);
}

TEST(Step, SymmetricAndFullModesAgree) {
  // 4 nodes: TP 4 inside a node, 2 stages, 4 data-parallel replicas across nodes; the
  // full mode simulates all 32 GPUs with every flow explicit.
  const Scenario s = load_scenario_text(R"(
cluster: {preset: dgx-h100, nodes: 4, inter_node: {oversubscription: 2}}
model: {preset: llama2-13b}
parallelism: {tp: 4, pp: 2, dp: 4, microbatch: 1, global_batch: 32, zero_stage: 1,
              sequence_parallel: true}
training: {recompute: selective, overlap_param_gather: false}
)",
                                        "sym.yaml");
  const StepResult sym = simulate_step(s);
  SimulationOptions full;
  full.full = true;
  const StepResult all = simulate_step(s, full);
  EXPECT_EQ(all.graph.ranks, 32);
  EXPECT_NEAR(all.step_time.value() / sym.step_time.value(), 1.0, 0.01);
  for (LinkClass c : {LinkClass::nvlink, LinkClass::nic}) {
    EXPECT_NEAR(all.bytes_by_link_class.at(c) / sym.bytes_by_link_class.at(c), 1.0, 0.01)
        << to_string(c);
  }
}

TEST(Step, LayerTemplatesAgreeWithOpLevelSimulation) {
  const Scenario s = load_scenario_text(R"(
cluster: {preset: dgx-a100, nodes: 2}
model: {preset: narayanan-3.6b}
parallelism: {tp: 4, pp: 2, dp: 2, microbatch: 2, global_batch: 16}
training: {precision: fp16, recompute: full, flash_attention: false}
)",
                                        "ops.yaml");
  const StepResult templated = simulate_step(s);
  SimulationOptions ops;
  ops.op_level = true;
  const StepResult detailed = simulate_step(s, ops);
  EXPECT_GT(detailed.tasks, 10 * templated.tasks);
  EXPECT_NEAR(detailed.step_time.value() / templated.step_time.value(), 1.0, 0.01);
}

TEST(Step, EmptyVirtualStagePassesTheActivationOn) {
  // One micro-batch of 1 x 2048 tokens through two nodes of 8 H100s, tp 8, pp 2, dp 1.
  // "Et*4|t*4L" runs stage 0 then stage 1; "Et*4|t*4||L" adds an empty stage on rank 0
  // and the loss on a chunk of its own on rank 1, so the micro-batch goes 0 -> 1 -> 0 -> 1
  // and back: nothing runs beside its path, so the step is longer by two more transfers
  // each way, the same transfer as the one each way of the plain layout (every one
  // between the two nodes, 1 x 2048 x 4096 x 2 bytes / tp 8 = 2 MiB), and the empty
  // stage's clone of the activation (transformer_block.py lines 764-766 at
  // NVIDIA/Megatron-LM d98e8a64): 2 x 16 MiB through HBM, or the Megatron stack's host time
  // for one kernel if longer. Its backward moves the gradient on with no kernel.
  auto scenario = [](const std::string& layout) {
    return load_scenario_text(fmt::format(R"(
cluster: {{preset: dgx-h100, nodes: 2}}
model: {{family: decoder, layers: 8, hidden: 4096, heads: 32, ffn: 16384, vocab: 32000,
        seq_len: 2048, activation: gelu, norm: layernorm, position_embedding: learned,
        tied_embeddings: false, bias: false, dropout: false}}
parallelism: {{tp: 8, pp: 2, microbatch: 1, global_batch: 1, pipeline_layout: "{}"{}}}
training: {{precision: bf16}}
)",
                                          layout,
                                          layout.find("||") != std::string::npos
                                              ? ", flexible_groups: true"
                                              : ""),
                              "empty.yaml");
  };
  const Scenario plain = scenario("Et*4|t*4L");
  const Scenario empty = scenario("Et*4|t*4||L");
  const StepResult a = simulate_step(plain);
  const StepResult b = simulate_step(empty);
  // The plain layout's two transfers (one each way) are all its exposed pipeline time.
  const double transfer = a.stages.at(1).breakdown.pp_exposed.value() / 2;
  // The dgx-h100 preset's inter-node figures: 14 us + 2 MiB at 400 Gb/s x 0.94.
  EXPECT_NEAR(transfer, 14e-6 + 2097152.0 / (50e9 * 0.94), 1e-8);
  const auto model = make_roofline_model(empty);
  Op clone;
  clone.kind = OpKind::elementwise;
  clone.fwd_read = clone.fwd_written = Bytes(2048.0 * 4096 * 2);
  const double copy = std::max(model->op_time(clone, Pass::forward).value(),
                               empty.training.stack.host_overhead.value());
  EXPECT_NEAR(b.step_time.value() - a.step_time.value(), 4 * transfer + copy, 1e-7);
  // The NICs carry three transfers each way per micro-batch instead of one.
  EXPECT_DOUBLE_EQ(b.bytes_by_link_class.at(LinkClass::nic),
                   3 * a.bytes_by_link_class.at(LinkClass::nic));
  EXPECT_DOUBLE_EQ(a.bytes_by_link_class.at(LinkClass::nic), 2.0 * 8 * 2 * 1048576);
}

TEST(Step, StandaloneMtpStageSendsItsHiddenStatesAndSyncsItsEmbedding) {
  // Llama 3 8B (seq 8192, h 4096, vocab 128,256) with one MTP layer on pp 4 inside one
  // DGX H100, 8 micro-batches of 1. With the MTP layer and the loss together ("Et*8|t*8|t*16|mL")
  // each of the three boundaries carries one activation each way per micro-batch,
  // 8192 x 4096 x 2 bytes = 64 MiB: 3 x 2 x 8 x 64 MiB = 3 GiB on NVLink. With the MTP layer
  // on rank 2 ("Et*8|t*8|t*16m|L", Megatron-Core's mtp_standalone) the last boundary
  // carries the main and the MTP hidden states (2 x 64 MiB) and every transfer is preceded
  // by a 24-byte shape exchange. In both, the MTP layer's rank (3, or 2) keeps a copy of the
  // word embedding whose fp32 gradient, 128,256 x 4096 x 4 bytes, is all-reduced with
  // rank 0's, each of the two GPUs sending it once.
  auto scenario = [](const std::string& layout) {
    return load_scenario_text(fmt::format(R"(
cluster: {{preset: dgx-h100, nodes: 1, gpus_per_node: 4}}
model: {{preset: llama3-8b, mtp_layers: 1}}
parallelism: {{tp: 1, dp: 1, pp: 4, microbatch: 1, global_batch: 8, pipeline_layout: "{}"}}
)",
                                          layout),
                              "mtp.yaml");
  };
  const StepResult together = simulate_step(scenario("Et*8|t*8|t*16|mL"));
  const StepResult apart = simulate_step(scenario("Et*8|t*8|t*16m|L"));
  const double act = 8192.0 * 4096 * 2;
  const double table = 2 * 128256.0 * 4096 * 4;
  EXPECT_DOUBLE_EQ(together.bytes_by_link_class.at(LinkClass::nvlink), 3 * 2 * 8 * act + table);
  EXPECT_DOUBLE_EQ(apart.bytes_by_link_class.at(LinkClass::nvlink),
                   (1 + 1 + 2) * 2 * 8 * act + 3 * 2 * 8 * 24.0 + table);
  SimulationOptions full;
  full.full = true;
  EXPECT_DOUBLE_EQ(simulate_step(scenario("Et*8|t*8|t*16m|L"), full).step_time.value(),
                   apart.step_time.value());
  // Interleaved 1F1B without overlapped transfers: the exchanges keep their time without
  // waiting for the receiver, which closed cycles in the task graph (docs/simulator.md).
  const Scenario interleaved = load_scenario_text(R"(
cluster: {preset: dgx-h100, nodes: 1, gpus_per_node: 3}
model: {preset: llama3-8b, mtp_layers: 1}
parallelism: {tp: 1, dp: 1, pp: 3, microbatch: 1, global_batch: 6,
              pipeline_layout: "Et*6|t*6|t*5|t*5|t*10m|L"}
training: {overlap_p2p: false}
)",
                                                  "interleaved.yaml");
  const StepResult i = simulate_step(interleaved);
  // An empty stage past the MTP stage clones both hidden states it passes on: each of its
  // 8 forwards is 2 x 2 x 64 MiB through HBM (or the host's time for one kernel).
  const Scenario past = load_scenario_text(R"(
cluster: {preset: dgx-h100, nodes: 1, gpus_per_node: 4}
model: {preset: llama3-8b, mtp_layers: 1}
parallelism: {tp: 1, dp: 1, pp: 4, microbatch: 1, global_batch: 8,
              pipeline_layout: "Et*4|t*4|t*4|t*4|t*4|t*12m||L"}
)",
                                           "past.yaml");
  const auto model = make_roofline_model(past);
  Op clone;
  clone.kind = OpKind::elementwise;
  clone.fwd_read = clone.fwd_written = Bytes(2 * act);
  const double copy = std::max(model->op_time(clone, Pass::forward).value(),
                               past.training.stack.host_overhead.value());
  int clones = 0;
  for (const Task& t : simulate_step(past).graph.tasks)
    clones += t.kind == TaskKind::forward && t.work.value() == copy ? 1 : 0;
  EXPECT_EQ(clones, 8);
  EXPECT_DOUBLE_EQ(simulate_step(interleaved, full).step_time.value(), i.step_time.value());
  EXPECT_DOUBLE_EQ(i.bytes_by_link_class.at(LinkClass::nvlink),
                   // boundaries 0-1, 1-2, 2-3, 3-4 at one activation, 4-5 at two; 6
                   // micro-batches each way; the exchanges; the embedding gradients
                   (4 + 2) * 2 * 6 * act + 5 * 2 * 6 * 24.0 + table);
}

TEST(Step, SameInputSameBytes) {
  const Scenario s = uniform_pipeline(4, 8, "interleaved-1f1b", 2);
  EXPECT_EQ(render_run_json(s, predict(s)), render_run_json(s, predict(s)));
}

TEST(Step, UnsupportedSplitsAreRefusedClearly) {
  const Scenario hybrid = load_scenario_text(
      "cluster: {preset: dgx-h100, nodes: 2}\nmodel: llama3-8b\n"
      "parallelism: {fsdp: true, sharding: hybrid, global_batch: 16}\n",
      "hybrid.yaml");
  EXPECT_NO_THROW(simulate_step(hybrid));
  EXPECT_THROW(simulate_step(hybrid, SimulationOptions{true, false}), InputError);
}

}  // namespace
}  // namespace orrery

namespace orrery {
namespace {

// ZeRO-3 / FSDP on one DGX H100: 8-way full sharding, bf16 weights and gradients; FSDP1
// unless `fsdp` says otherwise.
Scenario fsdp_node(const std::string& extra = "", const std::string& fsdp = "true") {
  return load_scenario_text(R"(
cluster: {preset: dgx-h100}
model: {preset: llama3-8b, seq_len: 2048}
parallelism: {fsdp: )" + fsdp + R"(, microbatch: 2, global_batch: 32)" + extra + R"(}
training: {recompute: none, gradient_dtype: bf16}
)",
                            "fsdp.yaml");
}

TEST(Fsdp, GatherAndReduceScatterBytesPerLayer) {
  // FSDP1, per micro-batch: every block an all-gather of its bf16 weights before forward
  // and again before backward (resharded after forward), and a reduce-scatter of its bf16
  // gradients after backward; the root (embedding and head, R = 2 x 128256 x 4096 + 4096
  // for the final norm = 1,050,677,248) gathered once, before the forward, kept through
  // the backward, and reduce-scattered once. A ring over n = 8 GPUs moves (n - 1) * S over
  // NVLink per collective, so per micro-batch
  //   (n - 1) * (params * (2 + 2) + (params - R) * 2) bytes,
  // over m = 32 / (2 * 8) = 2 micro-batches.
  const Scenario s = fsdp_node();
  const StepResult r = simulate_step(s);
  const double params = r.figures.params_total, R = 1050677248.0;
  EXPECT_NEAR(r.bytes_by_link_class.at(LinkClass::nvlink), 2 * 7.0 * (params * 6.0 - 2 * R),
              1e-9 * params);
  // FSDP2 wraps the embedding and the head on their own and reshards them: 6 bytes a
  // parameter.
  const StepResult f2 = simulate_step(fsdp_node("", "{implementation: fsdp2}"));
  EXPECT_NEAR(f2.bytes_by_link_class.at(LinkClass::nvlink), 2 * 7.0 * params * 6.0,
              1e-9 * params);
  // Without resharding the backward gathers disappear: 2 + 2 bytes per parameter.
  const StepResult kept = simulate_step(fsdp_node(", reshard_after_forward: false"));
  EXPECT_NEAR(kept.bytes_by_link_class.at(LinkClass::nvlink), 2 * 7.0 * params * 4.0,
              1e-9 * params);
}

TEST(Fsdp, FullModePlansEachRepeatedCollectiveOnce) {
  // fsdp_node() in --full: one shard group of the node's 8 GPUs, FSDP1's 32 blocks and
  // root (embedding and head) and m = 2 micro-batches, so 2 * (32 * 3 + 2) = 196
  // collective tasks (a forward and a backward gather and a reduce-scatter per block, a
  // gather and a reduce-scatter of the root, per micro-batch), each on the group's first
  // GPU. They are only 2 units' sizes (block, root) in 2 operations (all-gather,
  // reduce-scatter): a repeated collective reuses its plan, so the graph holds at most 4
  // plans, not one per task (the graph and its memory then
  // grew with micro-batches x layers x the group's flows). The step is the symmetric
  // one's: the same group, alone on the node.
  const Scenario s = fsdp_node();
  SimulationOptions full;
  full.full = true;
  const StepResult r = simulate_step(s, full);
  ASSERT_EQ(r.graph.ranks, 8);
  int collectives = 0;
  for (const Task& t : r.graph.tasks)
    if (t.kind == TaskKind::param_gather || t.kind == TaskKind::dp_comm) ++collectives;
  EXPECT_EQ(collectives, 196);
  EXPECT_LE(r.graph.comms.size(), 4u);
  EXPECT_NEAR(r.step_time.value() / simulate_step(s).step_time.value(), 1.0, 1e-9);
}

TEST(Fsdp, Fp8ParameterGathersMoveFp8WeightsInOneByte) {
  // As GatherAndReduceScatterBytesPerLayer, in fp8 with fp8 parameter all-gathers: the
  // W8 = 6,979,321,856 weights of Llama 3 8B's fp8 GEMMs (32 x 218,103,808 in the blocks;
  // the untied head stays bf16 by default) travel in 1 byte, the other parameters and
  // all gradients in 2. Of P = 8,030,261,248 parameters, FSDP1's root R = 1,050,677,248
  // (embedding and head, bf16) gathered only before the forward, per micro-batch
  //   (n - 1) * ((2 P - W8) + (2 (P - R) - W8) + 2 P) bytes, over 2 micro-batches.
  const std::string yaml = R"(
cluster: {preset: dgx-h100}
model: {preset: llama3-8b, seq_len: 2048}
parallelism: {fsdp: true, microbatch: 2, global_batch: 32}
training: {recompute: none, gradient_dtype: bf16, precision: fp8,
           fp8: {communication: {param_allgather: PARAM}}}
)";
  auto with = [&](const std::string& dtype) {
    std::string y = yaml;
    y.replace(y.find("PARAM"), 5, dtype);
    return simulate_step(load_scenario_text(y, "fsdp-fp8.yaml"));
  };
  const double P = 8030261248.0, W8 = 6979321856.0, R = 1050677248.0;
  const StepResult fp8 = with("fp8");
  ASSERT_NEAR(fp8.figures.params_total, P, 0.5);
  EXPECT_NEAR(fp8.bytes_by_link_class.at(LinkClass::nvlink),
              2 * 7.0 * ((2 * P - W8) + (2 * (P - R) - W8) + 2 * P), 1e-9 * P);
  EXPECT_NEAR(with("bf16").bytes_by_link_class.at(LinkClass::nvlink), 2 * 7.0 * (6.0 * P - 2 * R),
              1e-9 * P);
  // The head's GEMM in fp8 too (gemms: all) but bf16 gathers: every gathered byte still 2.
  std::string all = yaml;
  all.replace(all.find("fp8: {"), 6, "fp8: {gemms: all, ");
  all.replace(all.find("PARAM"), 5, "bf16");
  EXPECT_NEAR(simulate_step(load_scenario_text(all, "fsdp-fp8-all.yaml"))
                  .bytes_by_link_class.at(LinkClass::nvlink),
              2 * 7.0 * (6.0 * P - 2 * R), 1e-9 * P);
}

TEST(Fsdp, PrefetchHidesGathersOnAFastNetwork) {
  // With NVLink gathers much shorter than a layer's compute, only the first gather of
  // each pass (nothing to overlap it with) is exposed.
  const StepResult r = simulate_step(fsdp_node());
  const Breakdown& b = r.stages[0].breakdown;
  const double busy = (b.compute + b.recompute + b.optimizer).value();
  EXPECT_LT((r.step_time.value() - busy) / r.step_time.value(), 0.03);
  EXPECT_NEAR(simulate_step(fsdp_node(), SimulationOptions{true, false}).step_time.value() /
                  r.step_time.value(),
              1.0, 0.01);
}

TEST(Fsdp, HybridShardingKeepsGathersInsideTheNode) {
  // Two nodes, hybrid: gathers and reduce-scatters stay on NVLink; across nodes only the
  // all-reduce of each node's gradient shard (1/8 of the bf16 gradients per rank).
  const Scenario s = load_scenario_text(R"(
cluster: {preset: dgx-h100, nodes: 2}
model: {preset: llama3-8b, seq_len: 2048}
parallelism: {fsdp: true, sharding: hybrid, microbatch: 2, global_batch: 64}
training: {recompute: none, gradient_dtype: bf16}
)",
                                        "hybrid.yaml");
  const StepResult r = simulate_step(s);
  const double params = r.figures.params_total;
  // Per micro-batch (m = 2) and shard: a 2-rank ring all-reduce of params * 2 / 8 bytes
  // moves 2 * (2 - 1) / 2 * S * 2 ranks = 2 S over the NICs; 8 shards per node pair.
  EXPECT_NEAR(r.bytes_by_link_class.at(LinkClass::nic), 2 * 8 * 2 * (params * 2.0 / 8),
              1e-9 * params);
}

TEST(Fsdp, HybridShardingWithContextParallelismShardsOverTheNodesDpAndCpRanks) {
  // Two DGX H100, tp 2, cp 2, dp 4, hybrid: a node holds tp 2 x cp 2 x 2 data-parallel
  // ranks, so the 4 ranks of a tensor-parallel rank that hold the same weights (2 d x 2 c)
  // share its state, and memory shards the same way. Across nodes each shard (S = local
  // params x 2 bytes / 4) is all-reduced by a 2-rank ring that moves 2 S over the NICs;
  // 16 GPUs make 8 such pairs, over m = 8 / (1 x 4) = 2 micro-batches: 2 x 8 x 2 x S.
  // The local parameters are those of one tensor-parallel rank: the 8.03 B split over
  // tp 2 but for the norms, which each rank keeps whole (2 per layer x 32 + the final
  // one, x 4096 = 266,240).
  const Scenario s = load_scenario_text(R"(
cluster: {preset: dgx-h100, nodes: 2}
model: {preset: llama3-8b, seq_len: 4096}
parallelism: {tp: 2, cp: 2, dp: 4, fsdp: true, sharding: hybrid, microbatch: 1,
              global_batch: 8}
training: {recompute: none, gradient_dtype: bf16}
)",
                                        "hybrid-cp.yaml");
  EXPECT_EQ(s.parallelism.zero3_group(8), 4);
  const StepResult r = simulate_step(s);
  const double norms = 65.0 * 4096;
  const double local = (r.figures.params_total - norms) / 2 + norms;
  EXPECT_NEAR(r.bytes_by_link_class.at(LinkClass::nic), 2 * 8 * 2 * (local * 2.0 / 4),
              1e-9 * local);
  // Memory: each GPU keeps a quarter of its tensor-parallel rank's bf16 gradients.
  EXPECT_NEAR(estimate_memory(s).stages[0].memory.gradients.value(), local * 2.0 / 4,
              1e-9 * local);
}

TEST(Fsdp, WithoutPrefetchEveryGatherIsExposed) {
  // fsdp_prefetch: 0 starts a layer's gather only when the previous layer is done, so
  // every block's gather in both passes adds to the step (FSDP1: the root, embedding and
  // head, is gathered once before the forward in either case). No ring all-gather beats
  // the NVLink port: (n - 1) / n * S at 450 GB/s per direction per H100 (NVIDIA H100
  // datasheet, 900 GB/s bidirectional). Llama 3 8B: root R = 2 * 128256 * 4096 + 4096.
  const StepResult prefetched = simulate_step(fsdp_node());
  const StepResult serial = simulate_step(fsdp_node(", fsdp_prefetch: 0"));
  const double params = prefetched.figures.params_total;
  const double exposed_params = params - (2 * 128256.0 * 4096.0 + 4096.0);
  const double bound = 7.0 / 8.0 * exposed_params * 2.0 /*bytes*/ * 2.0 /*passes*/ *
                       2.0 /*micro-batches*/ / 450e9;
  EXPECT_GT(serial.step_time.value() - prefetched.step_time.value(), bound);
  // One more layer in flight hides nothing more on this network but holds one more
  // layer's weights: gather buffers of (1 + prefetch) * largest block (218,112,000
  // parameters, a multiple of 8: no padding) plus the root (1,050,677,248), x 2 bytes.
  const Scenario deeper_s = fsdp_node(", fsdp_prefetch: 2");
  const StepResult deeper = simulate_step(deeper_s);
  EXPECT_NEAR(deeper.step_time.value() / prefetched.step_time.value(), 1.0, 0.005);
  EXPECT_NEAR(estimate_memory(deeper_s).stages[0].gather_buffers.value(),
              (3.0 * 218112000.0 + 1050677248.0) * 2.0, 1.0);
  // FSDP2 reshards the head too: the largest unit is the head with its final norm.
  EXPECT_NEAR(estimate_memory(fsdp_node(", fsdp_prefetch: 2", "{implementation: fsdp2}"))
                  .stages[0]
                  .gather_buffers.value(),
              3.0 * (128256.0 * 4096.0 + 4096.0) * 2.0, 1.0);
}

TEST(Fsdp, HpzKeepsBackwardGathersInsideTheNode) {
  // ZeRO++ hpZ on two nodes, 16-way full sharding: the forward gather and the gradient
  // reduce-scatter still span both nodes, the backward gather reads the node's secondary
  // copy over NVLink. All three move the same bf16 bytes a parameter on the same 16-rank
  // pattern; FSDP1's root (embedding and head, R = 1,050,677,248) has no backward gather,
  // so the NICs carry 2 P / (3 P - R) of what they carry without hpZ.
  const std::string yaml = R"(
cluster: {preset: dgx-h100, nodes: 2}
model: {preset: llama3-8b, seq_len: 2048}
parallelism: {fsdp: true, microbatch: 2, global_batch: 64)";
  const std::string training = "}\ntraining: {recompute: none, gradient_dtype: bf16}\n";
  const Scenario plain_s = load_scenario_text(yaml + training, "plain.yaml");
  const Scenario hpz_s = load_scenario_text(yaml + ", zero_hpz: true" + training, "hpz.yaml");
  const double plain_nic = simulate_step(plain_s).bytes_by_link_class.at(LinkClass::nic);
  const StepResult hpz = simulate_step(hpz_s);
  const double hpz_nic = hpz.bytes_by_link_class.at(LinkClass::nic);
  const double P = hpz.figures.params_total, R = 1050677248.0;
  EXPECT_NEAR(hpz_nic / plain_nic, 2 * P / (3 * P - R), 1e-9);
  // Every GPU and node-local collective simulated explicitly gives the same step.
  const StepResult full = simulate_step(hpz_s, SimulationOptions{true, false});
  EXPECT_NEAR(full.step_time.value() / hpz.step_time.value(), 1.0, 0.01);
  EXPECT_NEAR(full.bytes_by_link_class.at(LinkClass::nic), hpz_nic, 1e-9 * hpz_nic);
  // The secondary copy costs the weights over the node's 8 ranks: params * 2 bytes / 8.
  const MemoryReport a = estimate_memory(plain_s), b = estimate_memory(hpz_s);
  EXPECT_NEAR(b.stages[0].memory.weights.value() - a.stages[0].memory.weights.value(),
              a.stages[0].params * 2.0 / 8.0, 1.0);
}

}  // namespace
}  // namespace orrery

namespace orrery {
namespace {

// Llama 3 8B split only by context parallelism over cp GPUs of one DGX A100 (no NVLS), so
// that NVLink carries the key/value exchange and the dp x cp gradient all-reduce only.
Scenario context_parallel_scenario(int cp, const std::string& comm) {
  const std::string yaml = fmt::format(R"(
cluster: {{preset: dgx-a100, gpus_per_node: {cp}}}
model: {{preset: llama3-8b}}
parallelism: {{tp: 1, cp: {cp}, dp: 1, microbatch: 1, global_batch: 4, cp_comm: {comm}}}
training: {{recompute: none}}
)",
                                       fmt::arg("cp", cp), fmt::arg("comm", comm));
  return load_scenario_text(yaml, "cp.yaml");
}

StepResult context_parallel(int cp, const std::string& comm) {
  return simulate_step(context_parallel_scenario(cp, comm));
}

TEST(ContextParallel, RingAttentionKeyValueTraffic) {
  // Per layer and micro-batch each rank holds K and V of s/cp tokens: b*(s/cp)*2*kv*d*2
  // bytes (kv*d = 8*128, s = 8192, bf16). Forward passes them around the ring (cp - 1
  // hops); backward passes them again and returns their gradients: 3 ring exchanges, in
  // all 3*(cp - 1)*cp*kv_local bytes per layer and micro-batch over 32 layers and m = 4.
  // The gradient all-reduce over the cp ranks adds 2*(cp - 1)*params*4 bytes (ring).
  for (int cp : {2, 4}) {
    const StepResult r = context_parallel(cp, "ring");
    const double kv_local = 8192.0 / cp * 2 * 1024 * 2;
    const double kv = 3.0 * (cp - 1) * cp * kv_local * 32 * 4;
    const double grads = 2.0 * (cp - 1) * r.figures.params_total * 4;
    EXPECT_NEAR(r.bytes_by_link_class.at(LinkClass::nvlink), kv + grads, 1e-6 * (kv + grads))
        << "cp = " << cp;
  }
}

TEST(ContextParallel, RingReturnsKeyValueGradientsDuringTheAttentionBackward) {
  // Transformer Engine's ring sends each step's dK and dV with the next step's keys and
  // values (AttnFuncWithCPAndKVP2P.backward, d0067d0d): in the backward both the gather
  // and the gradients' reduce-scatter come before the attention kernels, overlapped with
  // them. The all-gather variant gathers, computes, then reduce-scatters, none of it
  // overlapped.
  for (const std::string comm : {"ring", "all-gather"}) {
    const Scenario sc = context_parallel_scenario(4, comm);
    const Workload w = build_workload(sc.model, sc.training, shard_of(sc.parallelism));
    const Layer& layer = w.layers.at(1);
    std::string order;
    for (const PassStep& st : layer_pass(layer, LayerPass::backward, sc, message_sizes(sc))) {
      if (st.kind == PassStep::Kind::collective && st.group == CommGroup::cp) {
        order += st.collective == CollectiveOp::all_gather ? "AG" : "RS";
        order += st.overlapped ? "~ " : " ";
      } else if (st.kind == PassStep::Kind::kernels && st.op->comm_before == CommPoint::cp_kv) {
        order += "attn ";
      }
    }
    EXPECT_EQ(order, comm == "ring" ? "AG~ RS~ attn " : "AG attn RS ") << comm;
  }
}

TEST(ContextParallel, RingOverlapsWhatAllGatherExposes) {
  // The same bytes either way; ring attention hides the exchange behind attention.
  const StepResult ring = context_parallel(4, "ring");
  const StepResult gather = context_parallel(4, "all-gather");
  EXPECT_DOUBLE_EQ(ring.bytes_by_link_class.at(LinkClass::nvlink),
                   gather.bytes_by_link_class.at(LinkClass::nvlink));
  EXPECT_LT(ring.stages[0].breakdown.cp_exposed, 0.5 * gather.stages[0].breakdown.cp_exposed);
  EXPECT_LT(ring.step_time.value(), gather.step_time.value());
}

}  // namespace
}  // namespace orrery

namespace orrery {
namespace {

// Two Mixtral layers on one DGX A100, 8 experts split 8 ways, one sequence per GPU;
// uniform routing (load_imbalance 1) unless `moe` says otherwise.
StepResult moe_node(std::string moe) {
  if (moe.find("load_imbalance") == std::string::npos)
    moe = moe.empty() ? "load_imbalance: 1" : moe + ", load_imbalance: 1";
  const std::string yaml = fmt::format(R"(
cluster: {{preset: dgx-a100}}
model: {{preset: mixtral-8x7b, layers: 2, moe: {{{}}}}}
parallelism: {{tp: 1, pp: 1, dp: 8, ep: 8, microbatch: 1, global_batch: 8}}
training: {{recompute: none}}
)",
                                       moe);
  return simulate_step(load_scenario_text(yaml, "moe.yaml"));
}

TEST(ExpertParallel, AllToAllBytesWithCapacityFactor) {
  // Each GPU dispatches T * k * cf tokens of h bf16 values: S = 4096 * 2 * cf * 4096 * 2
  // bytes, of which (n - 1)/n leave it in an all-to-all over n = 8 ranks. Forward
  // dispatch and combine, and the same two backward: 4 all-to-alls per MoE layer and
  // micro-batch, 4 * (n - 1) * S bytes per group; 2 layers, 1 micro-batch. Everything
  // else is the same with and without the capacity factor, so the difference is
  // 4 * 7 * 2 * (S(1.25) - S(1.0)).
  const double padded = moe_node("capacity_factor: 1.25, pad_to_capacity: true")
                            .bytes_by_link_class.at(LinkClass::nvlink);
  const double dropless = moe_node("").bytes_by_link_class.at(LinkClass::nvlink);
  const double dS = 4096.0 * 2 * 0.25 * 4096 * 2;
  EXPECT_NEAR(padded - dropless, 4 * 7 * 2 * dS, 1e-6 * dS);
}

TEST(ExpertParallel, CapacityDropsTheBusiestRanksBytes) {
  // Without padding, the busiest rank receives min(L, cf) times the mean rows
  // (model/moe_routing.h): L = 1.5 capped at cf = 1.2, against 1.5 without a capacity.
  // 4 all-to-alls per layer and micro-batch, 7 of 8 pieces leave each of 8 GPUs, 2
  // layers: 4 * 7 * 2 * (1.5 - 1.2) * S on NVLink less.
  const double S = 4096.0 * 2 * 4096 * 2;
  const double uncapped = moe_node("load_imbalance: 1.5").bytes_by_link_class.at(LinkClass::nvlink);
  const double capped = moe_node("load_imbalance: 1.5, capacity_factor: 1.2")
                            .bytes_by_link_class.at(LinkClass::nvlink);
  EXPECT_NEAR(uncapped - capped, 4 * 7 * 2 * 0.3 * S, 1e-6 * S);
}

TEST(ExpertParallel, SharedExpertsOverlapTheDispatch) {
  // --moe-shared-expert-overlap: the shared expert runs while the forward dispatch (and
  // backward, the gradients' return) is in flight, so less of the exchange is exposed and
  // the step is shorter; the work is the same, so it gains at most the exposed exchange.
  const StepResult serial = moe_node("shared_experts: 1");
  const StepResult overlap = moe_node("shared_experts: 1, shared_expert_overlap: true");
  const double serial_ep = serial.stages[0].breakdown.ep_exposed.value();
  const double overlap_ep = overlap.stages[0].breakdown.ep_exposed.value();
  EXPECT_LT(overlap_ep, serial_ep);
  const double saved = serial.step_time.value() - overlap.step_time.value();
  EXPECT_GT(saved, 0);
  EXPECT_LE(saved, serial_ep);
}

TEST(ExpertParallel, LoadImbalanceSlowsTheStep) {
  // The busiest rank receives 1.5x the mean: its all-to-all bytes and expert compute
  // grow by half, and the step with them.
  const StepResult even = moe_node("");
  const StepResult skewed = moe_node("load_imbalance: 1.5");
  const double S = 4096.0 * 2 * 4096 * 2;
  EXPECT_NEAR(skewed.bytes_by_link_class.at(LinkClass::nvlink) -
                  even.bytes_by_link_class.at(LinkClass::nvlink),
              4 * 7 * 2 * 0.5 * S, 1e-6 * S);
  EXPECT_GT(skewed.step_time.value(), even.step_time.value());
}

TEST(ExpertParallel, PresetsRun) {
  // DeepSeek-V3 (MLA, 256 experts, 3 dense layers) and Mixtral on 256 H100 with EP.
  const Scenario ds = load_scenario_text(R"(
cluster: {preset: dgx-h100, nodes: 32}
model: deepseek-v3
parallelism: {tp: 1, pp: 16, dp: 16, ep: 16, first_stage_layers: 3, last_stage_layers: 2,
              zero_stage: 1, microbatch: 1, global_batch: 256}
training: {precision: fp8, recompute: full}
)",
                                         "ds.yaml");
  const StepResult r = simulate_step(ds);
  EXPECT_GT(r.step_time.value(), 0);
  EXPECT_GT(r.stages[r.critical_stage].breakdown.ep_exposed.value(), 0);
}

TEST(ExpertParallel, ExpertGroupsSpanContextRanksWithoutCrashing) {
  // Mixtral on one DGX H100 with cp 2, dp 4, ep 8 (issue 15) ended in an internal error:
  // expert groups were carved from dp alone (4 < ep). Folded over dp x cp, as
  // Megatron-Core does, the 8 GPUs form one expert-parallel group: the all-to-all runs,
  // the step is simulated in both modes, and no expert gradient is reduced (one copy of
  // each expert: dp x cp / ep = 1).
  const Scenario s = load_scenario_text(R"(
cluster: {preset: dgx-h100, nodes: 1}
model: {preset: mixtral-8x7b, layers: 4}
parallelism: {tp: 1, pp: 1, cp: 2, dp: 4, ep: 8, zero_stage: 1, microbatch: 1, global_batch: 8}
training: {precision: bf16, recompute: full}
)",
                                        "crash.yaml");
  const StepResult sym = simulate_step(s);
  EXPECT_GT(sym.stages[0].breakdown.ep_exposed.value(), 0);
  SimulationOptions full;
  full.full = true;
  const StepResult all = simulate_step(s, full);
  EXPECT_NEAR(all.step_time.value(), sym.step_time.value(), 0.01 * sym.step_time.value());
}

TEST(Collectives, ExpertExchangeOneCopyPerNodeThenNvlink) {
  // Two DGX H100 nodes under the same rail leaves (GPUs 0-7 and 8-15), ep 16, 16 experts
  // (one per GPU), top_k 4. S is what the naive exchange sends per GPU (4 copies of its
  // tokens), u = S / 4 one copy.
  const Topology topo(load_scenario_text(
                          "cluster: {preset: dgx-h100, nodes: 64, inter_node: "
                          "{oversubscription: 32}}\nmodel: llama3-8b\n"
                          "parallelism: {global_batch: 512}\n",
                          "a2a.yaml")
                          .cluster);
  std::vector<int> group;
  for (int g = 0; g < 16; ++g) group.push_back(g);
  const double S = 64.0 * 1048576, u = S / 4;
  MoeSpec moe;
  moe.experts = 16;
  moe.top_k = 4;
  moe.expert_ffn = 1;
  // Naive: S / 16 to each of the 15 others; 8 of them on the other node. NIC 16 * 8 * S /
  // 16 = 8 S = 32 u, NVLink 16 * 7 * S / 16 = 7 S = 28 u; 7 of a GPU's 8 remote pieces
  // change rail and climb to the spine.
  const CommPlan direct = plan_collective(CollectiveOp::all_to_all, group, Bytes(S), topo, false,
                                          CollectiveAlgo::direct);
  const auto td = traffic(direct, topo, 1.0);
  EXPECT_NEAR(td.at(LinkClass::nic), 32 * u, 1e-6 * S);
  EXPECT_NEAR(td.at(LinkClass::nvlink), 28 * u, 1e-6 * S);
  EXPECT_NEAR(td.at(LinkClass::spine), 16 * 7 * S / 16, 1e-6 * S);
  // Deduplicated (DeepEP): a token needs the other node unless its 4 experts all sit on
  // its own: 1 - C(8, 4) / C(16, 4) = 1 - 70 / 1820 = 25/26. Each GPU sends u * 25/26 to
  // its same-rail peer: NIC 16 * 25/26 u. A GPU holds one expert: P = 4/16 a token needs
  // it; GPU j of a node forwards to each of its 7 neighbours what the 2 nodes' j-th GPUs
  // send there, 2 * u / 4: NVLink 2 nodes * 8 * 7 * u / 2 = 56 u. No spine.
  const CommPlan two = plan_expert_exchange(group, Bytes(S), moe, topo);
  const auto th = traffic(two, topo, 1.0);
  EXPECT_NEAR(th.at(LinkClass::nic), 16 * 25.0 / 26 * u, 1e-6 * S);
  EXPECT_NEAR(th.at(LinkClass::nvlink), 56 * u, 1e-6 * S);
  EXPECT_EQ(th.count(LinkClass::spine), 0u);
  // Node limit 1: the other node only when the token's one node is it, 1/2: NIC 8 u; the
  // NVLink forwarding does not change (still 4/16 per GPU).
  moe.node_limit = 1;
  const auto tl = traffic(plan_expert_exchange(group, Bytes(S), moe, topo), topo, 1.0);
  EXPECT_NEAR(tl.at(LinkClass::nic), 8 * u, 1e-6 * S);
  EXPECT_NEAR(tl.at(LinkClass::nvlink), 56 * u, 1e-6 * S);
  // With the spine oversubscribed 32:1 the naive plan is the slower.
  EXPECT_LT(estimate(two, topo).value(), estimate(direct, topo).value());
}

TEST(Collectives, FlexExchangeTableFromTheBenchmarks) {
  using B = ParallelismSpec::EpBackend;
  // Printed GB/s x (nodes - 1) / nodes (the own node's copy is counted but stays home) /
  // 50 GB/s, harmonic mean of dispatch and combine. HybridEP 2 nodes: 71.71 / 2 / 50 =
  // 0.7171, 62.95 / 2 / 50 = 0.6295, 2 / (1/0.7171 + 1/0.6295) = 0.67045. 4 nodes: 57.69 and
  // 57.46 x 3/4 / 50 = 0.86535, 0.86190: 0.86362. 8 nodes: 49.97, 49.77 x 7/8 / 50 =
  // 0.87448, 0.87098: 0.87272. DeepEP 2 nodes: 43 / 2 / 50 = 0.43 both; 4 nodes: 44, 47 x
  // 3/4 / 50 = 0.66, 0.705: 0.68176; 8 nodes: 46, 45 x 7/8 / 50 = 0.805, 0.7875: 0.79615.
  EXPECT_NEAR(flex_exchange_nic_fraction(B::hybridep, 2), 0.67045, 1e-4);
  EXPECT_NEAR(flex_exchange_nic_fraction(B::hybridep, 4), 0.86362, 1e-4);
  EXPECT_NEAR(flex_exchange_nic_fraction(B::hybridep, 8), 0.87272, 1e-4);
  EXPECT_NEAR(flex_exchange_nic_fraction(B::deepep, 2), 0.43, 1e-4);
  EXPECT_NEAR(flex_exchange_nic_fraction(B::deepep, 4), 0.68176, 1e-4);
  EXPECT_NEAR(flex_exchange_nic_fraction(B::deepep, 8), 0.79615, 1e-4);
  // 3 nodes, linear in log2: w = log2(3) - 1 = 0.58496; 0.43 + 0.58496 x (0.68176 - 0.43)
  // = 0.57727. Beyond 8 nodes the 8-node point holds.
  EXPECT_NEAR(flex_exchange_nic_fraction(B::deepep, 3), 0.57727, 1e-4);
  EXPECT_NEAR(flex_exchange_nic_fraction(B::hybridep, 32), 0.87272, 1e-4);
}

TEST(Collectives, FlexExchangeRunsAtHybridEpsMeasuredRateOnTwoNodes) {
  // HybridEP's benchmark layout on two DGX H100 (ep 16, 8 experts a GPU, top 8) with
  // Qwen3-30B-A3B's hidden 2048: 4096 tokens a GPU in bf16, one copy u = 4096 x 2048 x 2 =
  // 16,777,216 B; S = 8 u. A token needs the other node unless its 8 experts all sit on its
  // own: 1 - C(64, 8) / C(128, 8) = 0.996904. NIC per GPU: 0.996904 u = 16,725,277 B at
  // 0.67045 x 50 GB/s = 33.523 GB/s: 498.93 us. NVLink: each GPU forwards to 7 neighbours
  // 2 u x P(rank) = 2 u x (1 - C(120, 8) / C(128, 8)) = 2 u x 0.412282 = 13,833,890 B, in
  // all 96,837,230 B at 450 x 0.82 x (0.67045 / 0.94) GB/s = 263.2 GB/s: 367.9 us, not the
  // bottleneck. Plus one inter-node message latency, 14 us: 512.93 us. At the NICs' own
  // 0.94 it was 16,725,277 / 47 GB/s + 14 us = 369.86 us.
  const Topology topo(load_scenario_text("cluster: {preset: dgx-h100, nodes: 2}\n"
                                         "model: llama3-8b\nparallelism: {global_batch: 512}\n",
                                         "flex.yaml")
                          .cluster);
  std::vector<int> group;
  for (int g = 0; g < 16; ++g) group.push_back(g);
  const double u = 4096.0 * 2048 * 2;
  MoeSpec moe;
  moe.experts = 128;
  moe.top_k = 8;
  moe.expert_ffn = 1;
  const CommPlan hy =
      plan_expert_exchange(group, Bytes(8 * u), moe, topo, ParallelismSpec::EpBackend::hybridep);
  EXPECT_NEAR(estimate(hy, topo).value(), 512.93e-6, 0.001 * 512.93e-6);
  // DeepEP's 0.43 at two nodes: 16,725,277 / 21.5 GB/s + 14 us = 791.92 us (NVLink at
  // 450 x 0.82 x 0.43 / 0.94 = 168.8 GB/s: 573.7 us, still under it).
  const CommPlan de =
      plan_expert_exchange(group, Bytes(8 * u), moe, topo, ParallelismSpec::EpBackend::deepep);
  EXPECT_NEAR(estimate(de, topo).value(), 791.92e-6, 0.001 * 791.92e-6);
}

}  // namespace
}  // namespace orrery

namespace orrery {
namespace {

TEST(Step, ZeroBubbleH1BubbleIsPMinus1TimesFPlusBMinusW) {
  // Qi et al. 2023, section 2.1: splitting each backward into B (input gradients) and W
  // (weight gradients) and deferring W lets a B wait only for the B below it; the bubble
  // falls from (p - 1)(T_F + T_B + T_W) under 1F1B to (p - 1)(T_F + T_B - T_W).
  const Scenario zb = uniform_pipeline(4, 8, "zb-h1");
  const StepResult r = simulate_step(zb);
  const StepResult base = simulate_step(uniform_pipeline(4, 8, "1f1b"));
  // T_W of one stage and micro-batch: half of the backward of its GEMMs (4 layers).
  const auto model = make_roofline_model(zb);
  const Workload w = build_workload(zb.model, zb.training, shard_of(zb.parallelism));
  double t_w = 0;
  for (const Op& op : w.layers.at(1).ops) {
    if (op.kind == OpKind::gemm) t_w += model->op_time(op, Pass::backward).value() / 2;
  }
  t_w *= 4;
  const Breakdown& b = r.stages.at(r.critical_stage).breakdown;
  const double per_microbatch = (b.compute + b.recompute).value() / 8;  // T_F + T_B + T_W
  EXPECT_NEAR(b.bubble.value(), 3 * (per_microbatch - 2 * t_w), 0.03 * b.bubble.value());
  EXPECT_LT(b.bubble, base.stages.at(base.critical_stage).breakdown.bubble);
}

}  // namespace
}  // namespace orrery

namespace orrery {
namespace {

// Seconds of one inner stage's forward (T_F) and weight-gradient GEMMs (T_W) for one
// micro-batch in uniform_pipeline(4, ...): 4 layers of layer kind 1.
struct StageTimes {
  double forward = 0, weight = 0;
};
StageTimes stage_times(const Scenario& s) {
  const auto model = make_roofline_model(s);
  const Workload w = build_workload(s.model, s.training, shard_of(s.parallelism));
  StageTimes out;
  for (const Op& op : w.layers.at(1).ops) {
    out.forward += model->op_time(op, Pass::forward).value();
    if (op.kind == OpKind::gemm) out.weight += model->op_time(op, Pass::backward).value() / 2;
  }
  out.forward *= 4;
  out.weight *= 4;
  return out;
}

TEST(Step, DualPipeBubbleFollowsTheReferenceSchedule) {
  // DualPipe on 4 ranks, 8 micro-batches (4 each way), no F&B overlap (no MoE). Stepping
  // through the reference order (deepseek-ai/DualPipe, DualPipe.step) with every
  // transfer instant, each rank idles 2 T_F + T_B - T_W per step, T_B the input-gradient
  // part (valid while T_W <= T_F): the ranks at the ends wait T_F for the warm-up to
  // reach them, the middle ones T_F + T_B for the first backward to come back, less the
  // W deferred into that gap. With T_F = T_B this is the DualPipe README's
  // (PP/2 - 1)(F&B + B - 3W) with F&B = F + B (B there the whole backward).
  // 1F1B on the same stages idles (p - 1)(T_F + T_B + T_W) and ZB-H1 (p - 1)(T_F + T_B - T_W).
  const Scenario dual = uniform_pipeline(4, 8, "dualpipe");
  const StepResult r = simulate_step(dual);
  const StageTimes t = stage_times(dual);
  const Breakdown& inner = r.stages.at(1).breakdown;
  const double per_microbatch = (inner.compute + inner.recompute).value() / 8;  // T_F + T_B + T_W
  const double t_b = per_microbatch - t.forward - t.weight;
  EXPECT_NEAR(inner.bubble.value(), 2 * t.forward + t_b - t.weight, 0.03 * inner.bubble.value())
      << "T_F " << t.forward << " T_B " << t_b << " T_W " << t.weight;
  const StepResult zb = simulate_step(uniform_pipeline(4, 8, "zb-h1"));
  EXPECT_LT(inner.bubble, zb.stages.at(1).breakdown.bubble);
}

TEST(Step, DualPipeReducesEachStageOverBothCopies) {
  // Rank r holds stage r and stage 3 - r: with dp = 1 each stage's gradients are still
  // all-reduced between its two copies, where 1F1B reduces nothing. A layer's parameters
  // in backward order: fc2 16,779,264, fc1 16,785,408, a norm 4096, proj 4,196,352, qkv
  // 12,589,056, its input norm 4096 (50,358,272 in all). The 40 M bucket closes at each
  // layer's qkv (50,354,176, or 50,358,272 with the previous layer's input norm), so a
  // stage of 4 layers has 4 buckets and a fifth with the first layer's input norm (on the
  // first stage with the embedding, 8 x 2048; the head, 8 x 2048 + 4096, rides with the
  // last stage's last layer): 20 collectives, one per stage's bucket, not one per copy.
  const Scenario dual = uniform_pipeline(4, 8, "dualpipe");
  const StepResult r = simulate_step(dual);
  int reductions = 0;
  for (const Task& t : r.graph.tasks) reductions += t.kind == TaskKind::dp_comm ? 1 : 0;
  EXPECT_EQ(reductions, 20);
  const StepResult base = simulate_step(uniform_pipeline(4, 8, "1f1b"));
  for (const Task& t : base.graph.tasks) EXPECT_NE(t.kind, TaskKind::dp_comm);
}

TEST(Step, DualPipeFullModeAgreesWithTheSymmetricStep) {
  // dp = 2 on 2 x 4 GPUs of 4 nodes: every gradient collective spans 4 GPUs of two
  // stages; --full places each of them explicitly.
  const Scenario s = load_scenario_text(R"(
cluster: {preset: dgx-h100, gpus_per_node: 2, nodes: 4}
model: {family: decoder, layers: 8, hidden: 1024, heads: 8, ffn: 4096, vocab: 32000, seq_len: 1024,
        activation: gelu, norm: layernorm, position_embedding: rope, tied_embeddings: false,
        bias: true, dropout: false}
parallelism: {tp: 1, pp: 4, dp: 2, microbatch: 1, global_batch: 16, schedule: dualpipe, zero_stage: 1}
training: {precision: bf16, recompute: none}
)",
                                        "dual.yaml");
  const double symmetric = simulate_step(s).step_time.value();
  SimulationOptions full;
  full.full = true;
  EXPECT_NEAR(simulate_step(s, full).step_time.value(), symmetric, 0.01 * symmetric);
}

}  // namespace
}  // namespace orrery

namespace orrery {
namespace {

TEST(Step, DualPipePairsHideTheirAllToAllUnderEachOthersCompute) {
  // pp = 2: both ranks are middle ranks (h = 0, p/2 = 1). With 8 micro-batches (4 each
  // way) the reference runs phase 4 for 4 - 2 + 0 + 1 = 3 rounds of F0 B1 F1 B0, the
  // first F0 B1 of a middle rank not overlapped: 2 * 3 - 1 = 5 pairs per rank. Here the
  // all-to-all of a block (one node, 4 experts per rank) is far shorter than the other
  // block's compute, so in each pair both sides' exposed all-to-all vanishes.
  const Scenario s = load_scenario_text(R"(
cluster: {preset: dgx-h100}
model: {family: decoder, layers: 4, hidden: 2048, heads: 16, ffn: 8192, vocab: 8, seq_len: 2048,
        activation: swiglu, norm: layernorm, position_embedding: rope, tied_embeddings: false,
        bias: true, dropout: false,
        moe: {experts: 16, top_k: 2, expert_ffn: 2048}}
parallelism: {tp: 1, pp: 2, dp: 4, ep: 4, microbatch: 1, global_batch: 32, schedule: dualpipe}
training: {precision: bf16, recompute: none}
)",
                                        "moe.yaml");
  const StepResult r = simulate_step(s);
  for (int rank = 0; rank < 2; ++rank) {
    int hidden_forward = 0, hidden_backward = 0;
    double exposed_forward = 0, exposed_backward = 0;
    for (const Task& t : r.graph.tasks) {
      if (t.rank != rank || t.stream != StreamKind::compute) continue;
      if (t.kind == TaskKind::forward) {
        hidden_forward += t.ep.value() == 0 ? 1 : 0;
        exposed_forward = std::max(exposed_forward, t.ep.value());
      }
      if (t.kind == TaskKind::backward) {
        hidden_backward += t.ep.value() == 0 ? 1 : 0;
        exposed_backward = std::max(exposed_backward, t.ep.value());
      }
    }
    EXPECT_GT(exposed_forward, 0.0);
    EXPECT_GT(exposed_backward, 0.0);
    EXPECT_EQ(hidden_forward, 5) << "rank " << rank;
    // The backward of a chunk's last micro-batch runs per layer (gradient buckets): when
    // it is paired, each of its layers' tasks is hidden on its own.
    EXPECT_GE(hidden_backward, 5) << "rank " << rank;
  }
}

}  // namespace
}  // namespace orrery

namespace orrery {
namespace {

TEST(Step, CompressionPaysOnEthernetNotOnInfiniBand) {
  // The table of docs/model.md, "Gradient compression": step times of the two shipped
  // BERT-Large scenarios under each scheme, to 2 %.
  const std::string dir = std::string(ORRERY_SOURCE_DIR) + "/scenarios/";
  struct Row {
    const char* scheme;
    double ethernet_ms, infiniband_ms;
  };
  const Row rows[] = {{"none", 418, 121},     {"bf16", 243, 119}, {"int8", 456, 120},
                      {"onebit", 134, 117},   {"topk", 179, 120}, {"powersgd", 153, 121},
                      {"local_sgd", 151, 114}};
  for (const char* file : {"bert-large-dp32-50gbe-powersgd.yaml", "bert-large-dp32-ib-powersgd.yaml"}) {
    const bool ethernet = std::string(file).find("50gbe") != std::string::npos;
    for (const Row& row : rows) {
      Scenario s = load_scenario_file(dir + file);
      CompressionSpec c;
      const std::map<std::string, CompressionSpec::Scheme> names = {
          {"none", CompressionSpec::Scheme::none},     {"bf16", CompressionSpec::Scheme::bf16},
          {"int8", CompressionSpec::Scheme::int8},     {"onebit", CompressionSpec::Scheme::onebit},
          {"topk", CompressionSpec::Scheme::topk},     {"powersgd", CompressionSpec::Scheme::powersgd},
          {"local_sgd", CompressionSpec::Scheme::local_sgd}};
      c.scheme = names.at(row.scheme);
      s.training.compression = c;
      const double ms = simulate_step(s).step_time.value() * 1e3;
      const double expected = ethernet ? row.ethernet_ms : row.infiniband_ms;
      EXPECT_NEAR(ms, expected, 0.02 * expected) << file << " " << row.scheme;
    }
  }
}

TEST(Step, Fp8TensorParallelAllGathersHalveTheirBytes) {
  // tp 8 with sequence parallelism on one node, no data parallelism: every NVLink byte
  // belongs to a TP collective of one b*s*h activation, and a ring all-gather moves what
  // a ring reduce-scatter does. Per layer: forward AG (qkv input), RS (proj), AG (fc1
  // input), RS (fc2); backward AG (fc2's output gradient), AG + RS (fc1's input
  // re-gathered, its gradient reduced), AG (proj), AG + RS (qkv): 10 collectives, 4 of
  // them gathers of an fp8 GEMM's input. Embedding RS + AG, head AG + AG + RS: 5, 2 of
  // them input gathers. In all 5(2L + 1) collectives, 2(2L + 1) of which move 1 byte an
  // element instead of 2: fp8 / bf16 = 1 - (2/5) / 2 = 0.8.
  const std::string split = "tp: 8, sequence_parallel: true, dp: 1, microbatch: 1, global_batch: 2";
  // gemms: all puts the head's GEMM in fp8 too, so that its input gather counts.
  const Scenario bf16 = testing::preset_scenario("llama3-8b", split, 1,
                                                 "precision: fp8, fp8: {gemms: all}", "dgx-h100");
  const Scenario fp8 = testing::preset_scenario(
      "llama3-8b", split, 1,
      "precision: fp8, fp8: {gemms: all, communication: {tp_allgather: fp8}}", "dgx-h100");
  const double b = simulate_step(bf16).bytes_by_link_class.at(LinkClass::nvlink);
  const double f = simulate_step(fp8).bytes_by_link_class.at(LinkClass::nvlink);
  EXPECT_NEAR(f / b, 0.8, 1e-9);
  // The recipe is stated in the run's notes.
  const StepResult r = simulate_step(fp8);
  ASSERT_FALSE(r.notes.empty());
  EXPECT_EQ(r.notes.front(),
            "fp8 recipe: hybrid (E4M3 forward, E5M2 gradients; 1 byte and one tensor-core rate "
            "either way), delayed scaling (1024-step amax history), all GEMMs in fp8, weight "
            "cache on, TP all-gather fp8, parameter all-gather bf16");
}

TEST(Step, SixteenBitGradientsHalveTheAllReduceBytes) {
  // Data parallel only, so every inter-node byte is the gradient all-reduce: casting fp32
  // gradients to bf16 halves it exactly.
  const std::string dir = std::string(ORRERY_SOURCE_DIR) + "/scenarios/";
  Scenario s = load_scenario_file(dir + "bert-large-dp32-50gbe-powersgd.yaml");
  s.training.compression = CompressionSpec{};
  const double fp32 = simulate_step(s).bytes_by_link_class.at(LinkClass::nic);
  s.training.compression.scheme = CompressionSpec::Scheme::bf16;
  const double bf16 = simulate_step(s).bytes_by_link_class.at(LinkClass::nic);
  EXPECT_NEAR(bf16 / fp32, 0.5, 1e-9);
}

}  // namespace
}  // namespace orrery

namespace orrery {
namespace {

TEST(Step, ResNet50DataParallelStep) {
  // The shipped ResNet-50 scenario: 8 A100 in one node, fp16 gradients. Its only traffic
  // is the gradient ring all-reduce: each of 8 GPUs sends 2 (8 - 1) / 8 of 25,557,032 x 2
  // bytes, 14 x 51,114,064 = 715,596,896 bytes in all, over NVLink.
  const Scenario s =
      load_scenario_file(std::string(ORRERY_SOURCE_DIR) + "/scenarios/resnet50-dgx-a100.yaml");
  const StepResult r = simulate_step(s);
  EXPECT_DOUBLE_EQ(r.bytes_by_link_class.at(LinkClass::nvlink), 14.0 * 25557032 * 2);
  // Throughput counts images: 2048 per step.
  EXPECT_DOUBLE_EQ(r.tokens_per_s * r.step_time.value(), 2048.0);
  bool warned = false;
  for (const std::string& n : r.notes) warned = warned || n.find("cuDNN") != std::string::npos;
  EXPECT_TRUE(warned);
}

TEST(Step, CnnComputeIsTheSumOfItsLayers) {
  // Each row of a CNN's layer table is a different op (conv1's 7x7 at 112 x 112 is not
  // the fc's 2048 x 1000), so each GPU's step computes the sum of every row's forward and
  // backward (the gradient all-reduce is counted apart). Regression: every row once
  // shared the first row's template, which made ResNet-50's forward 174 conv1s and its
  // backward 174 fcs. No host time per kernel (training.stack.host_overhead 0), so each
  // layer's pass is its ops' GPU time.
  const Scenario s =
      testing::preset_scenario("resnet50", "dp: 8, microbatch: 32, global_batch: 256", 1,
                               "precision: fp32, optimizer: sgd, stack: {host_overhead: 0 s}",
                               "dgx-a100");
  const auto model = make_roofline_model(s);
  const Workload w = build_workload(s.model, s.training, shard_of(s.parallelism));
  double forward = 0, backward = 0;
  for (const Layer& l : w.layers) {
    for (const Op& op : l.ops) {
      forward += model->op_time(op, Pass::forward).value();
      backward += model->op_time(op, Pass::backward).value();
    }
  }
  const StepResult r = simulate_step(s);
  const Breakdown& b = r.stages.at(r.critical_stage).breakdown;
  EXPECT_NEAR(b.compute.value(), forward + backward, 1e-9 * (forward + backward));
  // Backward is about twice forward (input and weight gradients), not a sliver of it.
  EXPECT_GT(backward, 1.5 * forward);
}

}  // namespace
}  // namespace orrery

namespace orrery {
namespace {

TEST(Step, OptimizerStepBytesByOptimizer) {
  // bf16 weights, fp32 gradients, per parameter: Adam reads the gradient (4), reads and
  // writes the master (8) and m, v (16), writes the bf16 weight (2): 30 bytes. LAMB adds
  // its trust-ratio pass (12): 42. SGD one moment: 4 + 8 + 8 + 2 = 22; LARS its norms
  // (4 + 4): 30. Adafactor no moment, one more gradient read: 4 + 8 + 2 + 4 = 18.
  auto seconds = [](const std::string& opt) {
    const Scenario s = testing::preset_scenario("llama3-8b", "tp: 8, global_batch: 8", 1,
                                                "optimizer: " + opt, "dgx-h100");
    return make_roofline_model(s)->optimizer_time(1e9).value();
  };
  const double adam = seconds("adam");
  EXPECT_NEAR(seconds("lamb") / adam, 42.0 / 30, 1e-12);
  EXPECT_NEAR(seconds("sgd") / adam, 22.0 / 30, 1e-12);
  EXPECT_NEAR(seconds("lars") / adam, 30.0 / 30, 1e-12);
  EXPECT_NEAR(seconds("adafactor") / adam, 18.0 / 30, 1e-12);
  // Loss scaling adds the unscale-and-check pass, the fp32 gradient read and written
  // (8): 38 bytes for Adam; fp16 turns it on by default, bf16 not.
  EXPECT_NEAR(seconds("adam, loss_scaling: {kind: static}") / adam, 38.0 / 30, 1e-12);
  EXPECT_NEAR(seconds("adam, precision: fp16") / adam, 38.0 / 30, 1e-12);
  EXPECT_NEAR(seconds("adam, precision: fp16, loss_scaling: {kind: none}") / adam, 1.0, 1e-12);
}

TEST(Step, OptimizerStepBytesByStatePrecision) {
  // Adam with bf16 weights and fp32 gradients streams 30 bytes per parameter (above). The
  // stored formats change what is read and written:
  //   bf16 moments:  4 + master 2 x 4 + m, v 2 x (2 + 2) + weight 2         = 22
  //   8-bit moments: 4 + 8 + 2 x 2 x (1 + 4/256) + 2                        = 18.0625
  //   fp16 master:   4 + 2 x 2 + 16 + 2                                     = 26
  //   bf16 moments, no master: 4 + the bf16 weight read and written 2 x 2 + 8 = 16
  // and the time is bytes / (HBM bandwidth x memory_efficiency), the H100 preset's.
  auto scenario = [](const std::string& opt) {
    return testing::preset_scenario("llama3-8b", "tp: 8, global_batch: 8", 1, "optimizer: " + opt,
                                    "dgx-h100");
  };
  auto seconds = [&](const std::string& opt) {
    return make_roofline_model(scenario(opt))->optimizer_time(1e9).value();
  };
  const Scenario s = scenario("adamw");
  const double hbm = s.cluster.gpu.memory_bandwidth.value() * *s.cluster.gpu.memory_efficiency;
  EXPECT_NEAR(seconds("adamw"), 1e9 * 30 / hbm, 1e-15);
  EXPECT_NEAR(seconds("adamw, optimizer_state_dtype: bf16"), 1e9 * 22 / hbm, 1e-15);
  EXPECT_NEAR(seconds("adamw, optimizer_state_dtype: 8bit"), 1e9 * 18.0625 / hbm, 1e-15);
  EXPECT_NEAR(seconds("adamw, main_params_dtype: fp16"), 1e9 * 26 / hbm, 1e-15);
  EXPECT_NEAR(seconds("adamw, optimizer_state_dtype: bf16, main_params_dtype: none"),
              1e9 * 16 / hbm, 1e-15);
  // The simulated step's optimizer time under ZeRO-1 shrinks with the bytes: the same
  // shard of parameters, 22/30 of the time (above the kernel floor). The breakdown also
  // holds Megatron-Core's per-step passes (detail::megatron_step_passes), the same for both:
  // the fp32 gradient buffer of all P parameters zeroed (4 P bytes) and the shard's fp32
  // main gradients read for the norm (4 P / 8; bf16 moments read them as they are, fp32).
  const auto opt_time = [&](const std::string& opt) {
    const Scenario z = testing::preset_scenario("llama3-8b",
                                                "tp: 1, dp: 8, zero_stage: 1, "
                                                "global_batch: 8",
                                                1, "optimizer: " + opt, "dgx-h100");
    const StepResult r = simulate_step(z);
    const double p = r.figures.params_total;
    return r.stages.at(r.critical_stage).breakdown.optimizer.value() - (4 * p + 4 * p / 8) / hbm;
  };
  EXPECT_NEAR(opt_time("adamw, optimizer_state_dtype: bf16") / opt_time("adamw"), 22.0 / 30, 1e-9);
}

}  // namespace
}  // namespace orrery

#include "simulator/schedule.h"

namespace orrery {
namespace {

TEST(Schedule, InterleavedRunsMicroBatchCountsThatAreNotAMultipleOfPp) {
  // pp 2, vp 2, 3 micro-batches in one group of 3 (microbatch_group_size 3: Megatron
  // accepts pp <= G <= M with M % G = 0). Table: (0,c0) (1,c0) (2,c0) (0,c1) (1,c1)
  // (2,c1). Rank 0 warms up with (2-0-1)*2 + (2-1)*3 = 5 forwards, then F(2,c1) B(0,c1),
  // then the other backwards in table order with the chunk mirrored.
  const Scenario s = load_scenario_text(R"(
cluster: {preset: dgx-h100, gpus_per_node: 2}
model: {preset: llama3-8b, layers: 8}
parallelism: {tp: 1, pp: 2, dp: 1, virtual_pipeline_stages: 2, microbatch_group_size: 3,
              microbatch: 1, global_batch: 3}
)",
                                        "odd.yaml");
  const std::vector<Block> order = pipeline_order(s.parallelism, 0);
  std::vector<std::string> got;
  for (const Block& b : order)
    got.push_back(fmt::format("{}{}c{}", b.forward ? "F" : "B", b.microbatch, b.chunk));
  EXPECT_EQ(got, (std::vector<std::string>{"F0c0", "F1c0", "F2c0", "F0c1", "F1c1", "F2c1", "B0c1",
                                           "B1c1", "B2c1", "B0c0", "B1c0", "B2c0"}));
  // Rank 1 warms up with 0 + 3 = 3 forwards, then alternates.
  got.clear();
  for (const Block& b : pipeline_order(s.parallelism, 1))
    got.push_back(fmt::format("{}{}c{}", b.forward ? "F" : "B", b.microbatch, b.chunk));
  EXPECT_EQ(got, (std::vector<std::string>{"F0c0", "F1c0", "F2c0", "F0c1", "B0c1", "F1c1", "B1c1",
                                           "F2c1", "B2c1", "B0c0", "B1c0", "B2c0"}));
  EXPECT_NO_THROW(simulate_step(s));
}

// The Llama 3 paper's flexible groups (parallelism.flexible_groups): fewer micro-batches
// than pp, one group of all of them, in Megatron-Core's order. On pp 2, vp 2, 8 even
// layers (each virtual stage 2 layers: forward F, backward B, the same on every chunk;
// vocab 8, transfers free, no host time; virtual stages vs0 = r0c0, vs1 = r1c0,
// vs2 = r0c1, vs3 = r1c1):
//  - 1 micro-batch: every virtual stage in series, forward then backward: 4(F+B), over each
//    rank's 2(F+B) of compute, 2;
//  - 2 micro-batches in Megatron-Core's groups of pp = 2: table (0,c0) (1,c0) (0,c1)
//    (1,c1); rank 0 warms up with 2 + 2 = 4 forwards, rank 1 with 2 (F0c0 F1c0, F0c1 B0c1,
//    F1c1 B1c1, B0c0 B1c0). r0 F0c0 0-F, F1c0 F-2F; r1 F0c0 F-2F, F1c0 2F-3F; r0 F0c1
//    2F-3F, F1c1 3F-4F; r1 F0c1 3F-4F, B0c1 4F-4F+B, F1c1 4F+B-5F+B, B1c1 5F+B-5F+2B; r0
//    B0c1 4F+B-4F+2B, B1c1 5F+2B-5F+3B; r1 B0c0 5F+2B-5F+3B, B1c0 5F+3B-5F+4B; r0 B0c0
//    5F+3B-5F+4B, B1c0 5F+4B-5F+5B: 5(F+B) over 4(F+B).
TEST(Step, FlexibleGroupsBubbleDerivedByHand) {
  auto ratios = [](const std::string& split) {
    const Scenario s = load_scenario_text(fmt::format(R"(
cluster:
  preset: dgx-h100
  gpus_per_node: 2
  intra_node: {{bandwidth: "1000 TB/s", latency: "0 us"}}
model: {{family: decoder, layers: 8, hidden: 2048, heads: 16, ffn: 8192, vocab: 8, seq_len: 2048,
        activation: gelu, norm: layernorm, position_embedding: rope, tied_embeddings: false,
        bias: true, dropout: false}}
parallelism: {{tp: 1, pp: 2, dp: 1, microbatch: 1, virtual_pipeline_stages: 2, {}}}
training: {{precision: bf16, recompute: none, stack: {{host_overhead: 0 s}}}}
)",
                                                      split),
                                          "flexible.yaml");
    const StepResult r = simulate_step(s);
    const double timeline = (r.step_time - r.stages.at(0).breakdown.optimizer).value();
    std::vector<double> out;
    for (int st = 0; st < 2; ++st) {
      const Breakdown& b = r.stages.at(st).breakdown;
      out.push_back(timeline / (b.compute + b.recompute).value());
    }
    return out;
  };
  for (double x : ratios("global_batch: 1, flexible_groups: true")) EXPECT_NEAR(x, 2.0, 0.01 * 2);
  for (double x : ratios("global_batch: 2")) EXPECT_NEAR(x, 5.0 / 4, 0.01 * 5 / 4);
}

// Fewer micro-batches than pp in one group never make Megatron-Core's interleaved order
// wait on itself: every pp 2-8, vp 2-4 and 1 to pp - 1 micro-batches simulates (a task
// graph with a cycle is an internal error). Several groups smaller than pp would: pp 4,
// vp 2, 8 micro-batches in groups of 2 has rank 3's second backward (micro-batch 0 through
// chunk 0) wait on rank 0's first, which follows rank 0's forward of micro-batch 3 through
// chunk 1, which waits on rank 3's forward of micro-batch 3 through chunk 0, which rank 3
// runs after that backward; so such groups are refused (tests/scenario/bad_input_test.cpp).
TEST(Schedule, FewerMicroBatchesThanPpRunAsOneGroup) {
  for (int pp = 2; pp <= 8; ++pp) {
    for (int v = 2; v <= 4; ++v) {
      for (int m = 1; m < pp; ++m) {
        const Scenario s = load_scenario_text(
            fmt::format("cluster: {{preset: dgx-h100, nodes: 1, gpus_per_node: {}}}\n"
                        "model: {{family: decoder, layers: {}, hidden: 256, heads: 4, ffn: 1024, "
                        "vocab: 256, seq_len: 256, activation: gelu, norm: layernorm, "
                        "position_embedding: rope, tied_embeddings: false, bias: true, "
                        "dropout: false}}\n"
                        "parallelism: {{tp: 1, pp: {}, dp: 1, microbatch: 1, global_batch: {}, "
                        "virtual_pipeline_stages: {}, flexible_groups: true}}\n",
                        pp, pp * v, pp, m, v),
            "few.yaml");
        EXPECT_EQ(s.parallelism.microbatch_group_size, m);
        EXPECT_NO_THROW(simulate_step(s)) << "pp " << pp << " vp " << v << " m " << m;
      }
    }
  }
}

TEST(Step, UnevenInterleavedBubbleDerivedByHand) {
  // pp 2, vp 2, 7 layers with the embedding counted as one: virtual stages r0c0 1 layer
  // (+ the embedding, negligible: vocab 8, no host time per kernel), r1c0 2, r0c1 2, r1c1 2 (+ the negligible
  // head). Two micro-batches in one group of 2. With f a layer's forward and b = kf its
  // backward, transfers free, the schedule (rank 0: F0c0 F1c0 F0c1 F1c1 B0c1 B1c1 B0c0
  // B1c0; rank 1: F0c0 F1c0 F0c1 B0c1 F1c1 B1c1 B0c0 B1c0) runs:
  //   r0 F0c0 0-f, F1c0 f-2f; r1 F0c0 f-3f, F1c0 3f-5f; r0 F0c1 3f-5f, F1c1 5f-7f;
  //   r1 F0c1 5f-7f, B0c1 7f-7f+2kf, F1c1 to 9f+2kf, B1c1 to 9f+4kf;
  //   r0 B0c1 7f+2kf-7f+4kf, B1c1 9f+4kf-9f+6kf; r1 B0c0 9f+4kf-9f+6kf, B1c0 to 9f+8kf;
  //   r0 B0c0 9f+6kf-9f+7kf, B1c0 9f+8kf-9f+9kf.
  // The compute ends at 9(1+k)f; rank 1 computes 2 x 4 layers x (1+k)f = 8(1+k)f, idle
  // f before its first block and kf after its last: (1+k)f of bubble over 8(1+k)f of
  // compute, 1/8 whatever k is. (Without the embedding counted, even chunks of 2 would
  // end at 10(1+k)f.)
  const Scenario s = load_scenario_text(R"(
cluster:
  preset: dgx-h100
  gpus_per_node: 2
  intra_node: {bandwidth: "1000 TB/s", latency: "0 us"}
model: {family: decoder, layers: 7, hidden: 2048, heads: 16, ffn: 8192, vocab: 8, seq_len: 2048,
        activation: gelu, norm: layernorm, position_embedding: rope, tied_embeddings: false,
        bias: true, dropout: false}
parallelism: {tp: 1, pp: 2, dp: 1, microbatch: 1, global_batch: 2, virtual_pipeline_stages: 2,
              account_for_embedding: true}
training: {precision: bf16, recompute: none, stack: {host_overhead: 0 s}}
)",
                                        "uneven.yaml");
  const StepResult r = simulate_step(s);
  // The compute timeline ends with rank 0's last backward; after it only rank 0's
  // optimizer runs (ranks update their own parameters, no data parallelism).
  const Breakdown& b0 = r.stages.at(0).breakdown;
  const Breakdown& b1 = r.stages.at(1).breakdown;
  const double timeline = (r.step_time - b0.optimizer).value();
  EXPECT_NEAR(timeline / (b1.compute + b1.recompute).value(), 9.0 / 8, 0.01 * 9 / 8);
  // Rank 0 computes 2 x 3 layers: 9(1+k)f over 6(1+k)f.
  EXPECT_NEAR(timeline / (b0.compute + b0.recompute).value(), 9.0 / 6, 0.01 * 9 / 6);
}

}  // namespace
}  // namespace orrery

namespace orrery {
namespace {

// Two stages on one node, 16 uniform layers (8 a stage), 4 micro-batches; a pipeline
// transfer (an 8 MiB activation or gradient) moves at the intra-node `bandwidth`.
Scenario two_stage_pipeline(const std::string& engine, const std::string& bandwidth) {
  return load_scenario_text(
      fmt::format(R"(
cluster:
  preset: dgx-h100
  gpus_per_node: 2
  intra_node: {{bandwidth: "{bandwidth}", latency: "0 us", bus_bandwidth_curve: []}}
model: {{family: decoder, layers: 16, hidden: 2048, heads: 16, ffn: 8192, vocab: 8, seq_len: 2048,
        activation: gelu, norm: layernorm, position_embedding: rope, tied_embeddings: false,
        bias: true, dropout: false}}
parallelism: {{tp: 1, pp: 2, dp: 1, microbatch: 1, global_batch: 4, pipeline_engine: {engine}}}
training: {{precision: bf16, recompute: none}}
)",
                  fmt::arg("engine", engine), fmt::arg("bandwidth", bandwidth)),
      "two-stage.yaml");
}

TEST(Step, DeepSpeedTrainScheduleInstructions) {
  // deepspeed/runtime/pipe/schedule.py TrainSchedule at microsoft/DeepSpeed 56c522386878,
  // p = 4, m = 4, stage 1 (odd): forwards at odd steps t, micro-batch (t - 1) / 2; backwards
  // at even t, micro-batch t / 2 - 3. Steps 1, 3, 5: receive and run F0, F1, F2, each
  // output sent at the next step; step 6 receives B0's gradient and runs B0; step 7
  // receives F3's input, sends B0's gradient, runs F3; steps 8, 10, 12 run B1, B2, B3
  // (after the receive of their gradient), each gradient sent at the next step.
  using K = PipeInstruction::Kind;
  std::vector<std::string> got;
  for (const PipeInstruction& in : deepspeed_train_schedule(4, 4, 1)) {
    const char* name = in.kind == K::recv_activation   ? "rA"
                       : in.kind == K::send_grad       ? "sG"
                       : in.kind == K::send_activation ? "sA"
                       : in.kind == K::recv_grad       ? "rG"
                       : in.kind == K::forward         ? "F"
                                                       : "B";
    got.push_back(fmt::format("{}{}", name, in.microbatch));
  }
  EXPECT_EQ(got, (std::vector<std::string>{"rA0", "F0", "sA0", "rA1", "F1", "sA1", "rA2", "F2",
                                           "sA2", "rG0", "B0", "rA3", "sG0", "F3", "sA3", "rG1",
                                           "B1", "sG1", "rG2", "B2", "sG2", "rG3", "B3", "sG3"}));
  // The last stage (odd, p = 2): receive, forward, backward, and the gradient goes back
  // after the next activation arrives.
  got.clear();
  for (const PipeInstruction& in : deepspeed_train_schedule(2, 2, 1))
    got.push_back(fmt::format("{}{}", static_cast<int>(in.kind), in.microbatch));
  EXPECT_EQ(got, (std::vector<std::string>{"00", "40", "50", "01", "10", "41", "51", "11"}));
}

TEST(Step, DeepSpeedEngineBlocksBothPartnersOfEveryTransfer) {
  // p = 2, m = 4, forward tf, backward tb, every transfer c. DeepSpeed's TrainSchedule
  // (deepspeed_train_schedule) gives
  //   stage 0: F0 sA0 F1 sA1 rG0 B0 F2 sA2 rG1 B1 F3 sA3 rG2 B2 rG3 B3
  //   stage 1: rA0 F0 B0 rA1 sG0 F1 B1 rA2 sG1 F2 B2 rA3 sG2 F3 B3 sG3
  // and a transfer starts once both partners reach it, both waiting for its end:
  //   act 0 tf..tf+c; s1 F0 B0 to 2tf+tb+c; act 1 (s0 waiting since 2tf+c) to
  //   2tf+tb+2c; grad 0 to 2tf+tb+3c; s0 B0 F2 and s1 F1 B1 both to 3tf+2tb+3c;
  //   act 2, grad 1 to 3tf+2tb+5c; both to 4tf+3tb+5c; act 3, grad 2 to 4tf+3tb+7c;
  //   s0 B2 to 4tf+4tb+7c while s1 runs F3 B3 to 5tf+4tb+7c; grad 3 to 5tf+4tb+8c;
  //   s0 B3 to 5tf+5tb+8c.
  // Megatron's 1F1B as simulated (a send holds only its sender, the receiver waits only
  // for the arrival): s0 F0 F1 B0 F2 B1 F3 B2 B3, s1 F0 B0 F1 B1 ..., ending at
  // 5tf+5tb+5c. So the transfers add 8c under DeepSpeed and 5c under Megatron.
  // c from 2048 x 2048 bf16 values at 8 GB/s against transfers free at 1000 TB/s; tf, tb
  // cancel in the differences (they differ between the engines: DeepSpeed's bf16 adds its
  // fp32 accumulation to tb).
  auto step = [](const std::string& engine, const std::string& bandwidth) {
    return simulate_step(two_stage_pipeline(engine, bandwidth)).step_time.value();
  };
  const double ds = step("deepspeed", "8 GB/s") - step("deepspeed", "1000 TB/s");
  const double megatron = step("megatron", "8 GB/s") - step("megatron", "1000 TB/s");
  // c is at least 8 MiB / 8 GB/s (the link's efficiency lengthens it), and the ratio is
  // exact up to the first and last stages' tiny embedding and head.
  EXPECT_GT(megatron, 5 * 8388608.0 / 8e9);
  EXPECT_NEAR(ds / megatron, 8.0 / 5.0, 0.01 * 8.0 / 5.0);
}

TEST(Step, DeepSpeedScheduleAgreesAcrossSimulationModes) {
  // The blocking transfers link tasks across ranks the same way whether a stage is one
  // simulated GPU, every GPU is simulated, or every op is a task. Four stages: even and
  // odd middle stages; pipeline transfers cross the node boundary between stages 1 and 2.
  const Scenario s = load_scenario_text(R"(
cluster: {preset: dgx-a100, nodes: 2}
model: {preset: narayanan-3.6b, layers: 32}
parallelism: {tp: 4, pp: 4, dp: 1, microbatch: 2, global_batch: 16, pipeline_engine: deepspeed}
training: {precision: bf16, recompute: full, flash_attention: false}
)",
                                        "ds-modes.yaml");
  const StepResult sym = simulate_step(s);
  SimulationOptions full;
  full.full = true;
  EXPECT_NEAR(simulate_step(s, full).step_time.value() / sym.step_time.value(), 1.0, 0.01);
  SimulationOptions ops;
  ops.op_level = true;
  EXPECT_NEAR(simulate_step(s, ops).step_time.value() / sym.step_time.value(), 1.0, 0.01);
}

}  // namespace
}  // namespace orrery

namespace orrery {
namespace {

// Megatron-Core's combined 1F1B (parallelism.moe_a2a_overlap; --overlap-moe-expert-parallel-
// comm, combined_1f1b.py at NVIDIA/Megatron-LM d98e8a64) on 8 Qwen3-30B-A3B-shaped layers
// over 16 H100 at ep 16, pp 1, 4 micro-batches.
Scenario a2a_overlap(bool on, const std::string& extra = "") {
  return load_scenario_text(fmt::format(R"(
cluster: {{preset: dgx-h100, nodes: 2}}
model: {{family: decoder, layers: 8, hidden: 2048, heads: 32, head_dim: 128, kv_heads: 4,
        ffn: 6144, vocab: 151936, seq_len: 4096, activation: swiglu, norm: rmsnorm,
        position_embedding: rope, tied_embeddings: false, bias: false, dropout: false,
        moe: {{experts: 128, top_k: 8, expert_ffn: 768, load_imbalance: 1}}}}
parallelism: {{tp: 1, pp: 1, dp: 16, ep: 16, microbatch: 1, global_batch: 64,
              moe_a2a_overlap: {}{}}}
training: {{precision: bf16, recompute: none}}
)",
                                        on ? "true" : "false", extra),
                            "a2a.yaml");
}

TEST(MoeA2aOverlap, CombinedOneFOneBOrderWithoutPipelining) {
  // The first forward alone, then forward i + 1 paired with backward i, then the last
  // backward (combined_1f1b_schedule_for_no_pipelining's phases).
  std::vector<std::string> got;
  for (const Block& b : pipeline_order(a2a_overlap(true).parallelism, 0))
    got.push_back(fmt::format("{}{}{}", b.forward ? "F" : "B", b.microbatch,
                              b.fused_with_next ? "+" : ""));
  EXPECT_EQ(got, (std::vector<std::string>{"F0", "F1+", "B0", "F2+", "B1", "F3+", "B2", "B3"}));
}

TEST(MoeA2aOverlap, InterleavedWarmsUpOneMoreForward) {
  // pp 2, vp 2, 4 micro-batches (groups of 2): rank 1 warms up with 0 x 2 + 1 x 2 + 1 = 3
  // forwards (1F1B's 2 plus the combined schedule's one), and pairs every later forward
  // with the backward after it.
  const Scenario s = load_scenario_text(R"(
cluster: {preset: dgx-h100, nodes: 2}
model: {preset: mixtral-8x7b, layers: 4}
parallelism: {tp: 1, pp: 2, dp: 8, ep: 8, virtual_pipeline_stages: 2, microbatch: 1,
              global_batch: 32, moe_a2a_overlap: true}
training: {recompute: none}
)",
                                        "i.yaml");
  std::vector<std::string> got;
  for (const Block& b : pipeline_order(s.parallelism, 1))
    got.push_back(fmt::format("{}{}c{}{}", b.forward ? "F" : "B", b.microbatch, b.chunk,
                              b.fused_with_next ? "+" : ""));
  EXPECT_EQ(got, (std::vector<std::string>{"F0c0", "F1c0", "F0c1", "F1c1+", "B0c1", "F2c0+",
                                           "B1c1", "F3c0+", "B0c0", "F2c1+", "B1c0", "F3c1+",
                                           "B2c1", "B3c1", "B2c0", "B3c0"}));
  EXPECT_NO_THROW(simulate_step(s));
}

TEST(MoeA2aOverlap, HidesThePairsAllToAllAndHoldsOneMoreMicroBatch) {
  const Scenario off = a2a_overlap(false), on = a2a_overlap(true);
  const StepResult a = simulate_step(off), b = simulate_step(on);
  // Without the overlap each of the 4 micro-batches exposes its forward and backward
  // exchanges (e); with it only the first forward's and the last backward's stay, each
  // pair's exchanges hiding under the other side's compute (the layers' compute is several
  // times their exchanges here): about e / 4 of the 4 e. The 5 % allows for the exchanges'
  // interplay with the gradient reduction at the step's end.
  const double e_off = a.stages[0].breakdown.ep_exposed.value();
  const double e_on = b.stages[0].breakdown.ep_exposed.value();
  EXPECT_NEAR(e_on / (e_off / 4), 1.0, 0.05);
  EXPECT_LT(b.step_time.value(), a.step_time.value());
  // One more micro-batch's activations held: the layers' worth in flight doubles (2
  // micro-batches where 1F1B without pipelining holds 1), and the activations grow.
  const StageMemory m_off = estimate_memory(off).stages[0], m_on = estimate_memory(on).stages[0];
  EXPECT_DOUBLE_EQ(m_on.layers_in_flight, 2.0 * m_off.layers_in_flight);
  EXPECT_GT(m_on.memory.activations.value(), m_off.memory.activations.value());
}

TEST(MoeA2aOverlap, RefusedWhereMegatronCoreRefusesIt) {
  EXPECT_THROW(a2a_overlap(true, ", ep: 1"), InputError);  // no expert parallelism
  const std::string base = R"(
cluster: {preset: dgx-h100, nodes: 2}
model: {preset: mixtral-8x7b, layers: 4}
training: {recompute: RECOMPUTE}
parallelism: {tp: 1, pp: PP, dp: DP, ep: 8, microbatch: 1, global_batch: 32, moe_a2a_overlap: true}
)";
  auto load = [&](const std::string& pp, const std::string& dp, const std::string& recompute) {
    std::string t = base;
    t.replace(t.find("PP"), 2, pp);
    t.replace(t.find("DP"), 2, dp);
    t.replace(t.find("RECOMPUTE"), 9, recompute);
    return load_scenario_text(t, "r.yaml");
  };
  EXPECT_THROW(load("2", "8", "none"), InputError);  // pp 2 without interleaving
  EXPECT_THROW(load("1", "16", "full"), InputError);  // full recompute
  EXPECT_NO_THROW(load("1", "16", "none"));
}

}  // namespace
}  // namespace orrery
