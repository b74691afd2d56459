// Megatron-Core's overlapped parameter all-gather (--overlap-param-gather with the
// distributed optimizer) and Transformer Engine's bulk reduce-scatter overlap, counted by
// hand on small layouts (simulator/pipeline_pass.cpp gathered_forward; model/layer_pass.h).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "model/layer_pass.h"
#include "model/workload.h"
#include "scenario/load.h"
#include "simulator/step.h"

namespace orrery {
namespace {

// 2 A100s of one node, data parallel only, micro-batch 1, global batch 8: 4 micro-batches.
// A 2-layer model with untied embedding and head. Parameters (as in zero2_test.cpp): the
// embedding V h = 32768 x 4096 = 134,217,728; a layer 4 h^2 + 2 h ffn + 2 h =
// 201,334,784; the head 134,217,728 + 4096 (the final norm). In forward order the layers
// end at 134,217,728, 335,552,512, 536,887,296 and 671,109,120 parameters.
Scenario two_gpus(const std::string& training) {
  const std::string yaml = fmt::format(R"(
cluster: {{preset: dgx-a100, nodes: 1, gpus_per_node: 2}}
model: {{family: decoder, layers: 2, hidden: 4096, heads: 32, ffn: 16384, vocab: 32768,
        seq_len: 32, activation: gelu, norm: rmsnorm, position_embedding: rope,
        tied_embeddings: false, bias: false, dropout: false}}
parallelism: {{tp: 1, pp: 1, dp: 2, microbatch: 1, global_batch: 8, zero_stage: 1}}
training: {{precision: bf16, recompute: none{}}}
)",
                                       training);
  return load_scenario_text(yaml, "two-gpus.yaml");
}

struct Timed {
  double start, end, work, bytes;
};

// Rank 0's tasks of `kind` (and micro-batch `mb` when given), in issue order.
std::vector<Timed> tasks(const StepResult& r, TaskKind kind, int mb = -1) {
  std::vector<Timed> out;
  for (std::size_t i = 0; i < r.graph.tasks.size(); ++i) {
    const Task& t = r.graph.tasks[i];
    if (t.rank != 0 || t.kind != kind || (mb >= 0 && t.microbatch != mb)) continue;
    const double bytes =
        t.comm ? r.graph.comms[static_cast<std::size_t>(*t.comm)].bytes.value() : 0.0;
    out.push_back({r.timeline.timing[i].start->value(), r.timeline.timing[i].end->value(),
                   t.work.value(), bytes});
  }
  return out;
}

TEST(ParamGather, BucketsAreGatheredBackToBackDuringTheFirstForward) {
  // The gradient buckets of B = 1.5e8 parameters, closed at the first parameter that
  // brings them to B in backward order: the output layer (134,217,728), the final norm
  // (4096) and layer 1's fc2 (h ffn = 67,108,864): 201,330,688; layer 1's fc1 (67,108,864),
  // its norms (2 x 4096), proj (h^2 = 16,777,216), qkv (3h^2 = 50,331,648) and layer 0's
  // fc2: 201,334,784; the rest of layer 0 and the embedding: 134,225,920 + 134,217,728 =
  // 268,443,648. In forward order the last is first: it starts at parameter 0, the second
  // at 268,443,648 (layer 0's fc2), the third at 469,778,432 (layer 1's fc2). Gathered in
  // bf16, 2 bytes a parameter.
  const StepResult r = simulate_step(two_gpus(", grad_bucket_params: 1.5e8"));
  const std::vector<Timed> gathers = tasks(r, TaskKind::param_gather);
  ASSERT_EQ(gathers.size(), 3u);
  EXPECT_DOUBLE_EQ(gathers[0].bytes, 2 * 268443648.0);
  EXPECT_DOUBLE_EQ(gathers[1].bytes, 2 * 201334784.0);
  EXPECT_DOUBLE_EQ(gathers[2].bytes, 2 * 201330688.0);
  // Megatron-Core forms its buckets that way, not in equal slices: at B = 3e8 the same
  // model has two, 335,552,512 (the head and layer 1 to its qkv) and 335,556,608.
  const std::vector<Timed> two = tasks(simulate_step(two_gpus(", grad_bucket_params: 3.0e8")),
                                       TaskKind::param_gather);
  ASSERT_EQ(two.size(), 2u);
  EXPECT_DOUBLE_EQ(two[0].bytes, 2 * 335556608.0);
  EXPECT_DOUBLE_EQ(two[1].bytes, 2 * 335552512.0);
  // zero_grad launches the first at the start of the step; each next one is launched
  // while the host runs ahead, so they run back to back on the data-parallel stream.
  EXPECT_DOUBLE_EQ(gathers[0].start, 0.0);
  EXPECT_DOUBLE_EQ(gathers[1].start, gathers[0].end);
  EXPECT_DOUBLE_EQ(gathers[2].start, gathers[1].end);
  // The first micro-batch's forward in three pieces, each waiting for its bucket: the
  // first at the end of the first gather, each next one at the later of the previous
  // piece's end and its bucket's gather.
  const std::vector<Timed> first = tasks(r, TaskKind::forward, 0);
  ASSERT_EQ(first.size(), 3u);
  EXPECT_DOUBLE_EQ(first[0].start, gathers[0].end);
  for (std::size_t k = 1; k < 3; ++k)
    EXPECT_DOUBLE_EQ(first[k].start, std::max(first[k - 1].end, gathers[k].end));
  // Together the pieces are one whole forward: the second micro-batch's, in one task.
  const std::vector<Timed> second = tasks(r, TaskKind::forward, 1);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_NEAR(first[0].work + first[1].work + first[2].work, second[0].work,
              1e-12 * second[0].work);
  // Only the first micro-batch waits; the gathers are not after the optimizer.
  EXPECT_EQ(tasks(r, TaskKind::forward, 2).size(), 1u);
  // What the compute stream waited for them is data-parallel exposure: at least the wait
  // before the first piece.
  EXPECT_GE(r.stages.at(0).breakdown.dp_exposed.value(), gathers[0].end - 1e-15);
  // Without the overlap, one gather of everything follows the optimizer instead.
  const StepResult after = simulate_step(two_gpus(
      ", grad_bucket_params: 1.5e8, overlap_param_gather: false"));
  const std::vector<Timed> one = tasks(after, TaskKind::param_gather);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_DOUBLE_EQ(one[0].bytes, 2 * 671109120.0);
  EXPECT_EQ(tasks(after, TaskKind::forward, 0).size(), 1u);
}

TEST(ParamGather, TheOpLevelStepGathersTheSameBucketsAndWaitsAtTheirLayers) {
  // The same step op by op (the trace's), with the buckets of the test above: the same
  // three gathers back to back from the start, and each layer's first task waits for the
  // buckets that start before the layer ends. In forward order the embedding holds
  // parameters [0, 134,217,728), layer 0 up to 335,552,512 and layer 1 up to 536,887,296:
  // bucket 0 (from 0) gates the embedding, bucket 1 (from 268,443,648) layer 0 and bucket
  // 2 (from 469,778,432) layer 1. At 32 tokens a micro-batch the gathers outlast the
  // compute, so each gated layer starts when its gather ends.
  const Scenario s = two_gpus(", grad_bucket_params: 1.5e8");
  const StepResult blocks = simulate_step(s);
  SimulationOptions ops;
  ops.op_level = true;
  const StepResult r = simulate_step(s, ops);
  const std::vector<Timed> gathers = tasks(r, TaskKind::param_gather);
  const std::vector<Timed> expected = tasks(blocks, TaskKind::param_gather);
  ASSERT_EQ(gathers.size(), 3u);
  ASSERT_EQ(expected.size(), 3u);
  for (std::size_t k = 0; k < 3; ++k) {
    EXPECT_DOUBLE_EQ(gathers[k].bytes, expected[k].bytes);
    EXPECT_DOUBLE_EQ(gathers[k].start, expected[k].start);
    EXPECT_DOUBLE_EQ(gathers[k].end, expected[k].end);
  }
  const std::vector<Timed> first = tasks(r, TaskKind::forward, 0);
  ASSERT_FALSE(first.empty());
  EXPECT_DOUBLE_EQ(first.front().start, gathers[0].end);
  for (std::size_t k = 1; k < 3; ++k) {
    const bool waits = std::any_of(first.begin(), first.end(), [&](const Timed& t) {
      return std::abs(t.start - gathers[k].end) <= 1e-12 * gathers[k].end;
    });
    EXPECT_TRUE(waits) << "a layer's first task starts when bucket " << k << "'s gather ends";
  }
  // Bucket 1 starts inside layer 0, so the op-level step waits for it at the layer's
  // start where the templates run layer 0's first 268,443,648 - 134,217,728 parameters'
  // share before it: no shorter, and here (gather-bound) within 1 %.
  EXPECT_GE(r.step_time.value(), blocks.step_time.value() * (1 - 1e-12));
  EXPECT_NEAR(r.step_time.value() / blocks.step_time.value(), 1.0, 0.01);
}

// Every param_gather task of the step, by rank: (rank, start, end).
std::vector<std::tuple<int, double, double>> all_gathers(const StepResult& r) {
  std::vector<std::tuple<int, double, double>> out;
  for (std::size_t i = 0; i < r.graph.tasks.size(); ++i) {
    const Task& t = r.graph.tasks[i];
    if (t.kind != TaskKind::param_gather) continue;
    out.emplace_back(t.rank, r.timeline.timing[i].start->value(),
                     r.timeline.timing[i].end->value());
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST(ParamGather, TheOpLevelStepGathersEveryChunkUnderInterleaving) {
  // Two stages of three chunks each (6 layers, pp 2, vp 3) over dp 2: every chunk's first
  // forward gathers its buckets on each stage, chunks 0 and 1 from the start and chunk c
  // from chunk c - 1's first forward on (align_param_gather). The op-level step issues the
  // same gathers as the layer templates' path on every rank, each rank's first ones at the
  // start of the step: had the pipeline's receive waited on a gather instead of the
  // stage's first compute (an earlier mistake), stage 1's gathers would start only when
  // stage 0's first forward reached it.
  const Scenario s = load_scenario_text(R"(
cluster: {preset: dgx-a100, nodes: 1, gpus_per_node: 4}
model: {family: decoder, layers: 6, hidden: 4096, heads: 32, ffn: 16384, vocab: 32768,
        seq_len: 512, activation: gelu, norm: rmsnorm, position_embedding: rope,
        tied_embeddings: false, bias: false, dropout: false}
parallelism: {tp: 1, pp: 2, dp: 2, virtual_pipeline_stages: 3, microbatch: 1, global_batch: 8,
              zero_stage: 1}
training: {precision: bf16, recompute: none, grad_bucket_params: 1.0e8}
)",
                                        "interleaved.yaml");
  const StepResult blocks = simulate_step(s);
  SimulationOptions ops;
  ops.op_level = true;
  const StepResult r = simulate_step(s, ops);
  const auto expected = all_gathers(blocks);
  const auto got = all_gathers(r);
  ASSERT_FALSE(expected.empty());
  ASSERT_EQ(got.size(), expected.size());
  std::set<int> ranks;
  for (const auto& g : got) ranks.insert(std::get<0>(g));
  EXPECT_EQ(ranks.size(), 2u);  // one simulated GPU a stage, each gathering
  for (int rank : ranks) {
    double first = 1e30;
    for (const auto& g : got)
      if (std::get<0>(g) == rank) first = std::min(first, std::get<1>(g));
    EXPECT_DOUBLE_EQ(first, 0.0) << "rank " << rank << "'s first gather starts with the step";
  }
  EXPECT_NEAR(r.step_time.value() / blocks.step_time.value(), 1.0, 0.03);
}

// The backward steps of op `name`, from the step after op `after`'s kernels (or from
// `name`'s first kernels when `after` is empty) up to the next op's kernels: "dgrad" and
// "wgrad" for the halves of a split backward, "whole" for an unsplit one, and each
// collective as RS, AR or AG, "~" when the next kernels do not wait for it.
std::string backward_steps(const std::vector<PassStep>& steps, const std::string& name,
                           const std::string& after = "") {
  std::string seq;
  bool in = false;
  for (const PassStep& st : steps) {
    if (st.kind == PassStep::Kind::kernels) {
      if (st.op->name == name) {
        in = true;
        seq += st.half == 1 ? "dgrad " : st.half == 2 ? "wgrad " : "whole ";
        continue;
      }
      if (in) break;
      in = !after.empty() && st.op->name == after;
    } else if (in) {
      seq += st.collective == CollectiveOp::reduce_scatter ? "RS"
             : st.collective == CollectiveOp::all_reduce   ? "AR"
                                                           : "AG";
      seq += st.overlapped ? "~ " : " ";
    }
  }
  return seq;
}

TEST(ParamGather, TensorParallelInputGradientReductionRunsUnderTheWeightGradient) {
  // A column-parallel GEMM (QKV, fc1) backward. Under sequence parallelism its input is
  // re-gathered (overlapped with the data-gradient GEMM, half 1), then the weight-gradient
  // GEMM runs (half 2). Its input gradient's reduce-scatter (all-reduce without sequence
  // parallelism) is issued between the halves and overlapped, so it runs under the
  // weight-gradient GEMM: Transformer Engine's "bulk" userbuffers (tp_comm_overlap), and
  // without them the asynchronous collective of TE's and Megatron-LM's backward
  // (training.stack.tp_dgrad_overlap, the megatron-core preset's default). With neither
  // it follows both halves.
  const std::string yaml = R"(
cluster: {preset: dgx-h100, nodes: 1}
model: {family: decoder, layers: 2, hidden: 4096, heads: 32, ffn: 16384, vocab: 32768,
        seq_len: 2048, activation: gelu, norm: layernorm, position_embedding: rope,
        tied_embeddings: false, bias: false, dropout: false}
parallelism: {tp: 2, LAYOUT, microbatch: 1, global_batch: 8, sequence_parallel: SP}
training: {precision: bf16, recompute: none, tp_comm_overlap: UB, stack: {tp_dgrad_overlap: ASYNC}}
)";
  struct Case {
    bool sp, ub, async;
    const char* want;
    const char* layout = "pp: 1, dp: 4";
  };
  // Under ZB-H1 the B block defers the weight-gradient GEMM, so the reduction follows both
  // halves in the template (with userbuffers it still overlaps what follows, as every
  // tensor-parallel collective does under tp_comm_overlap).
  const Case cases[] = {
      {true, false, false, "AG~ dgrad wgrad RS "},
      {true, true, false, "AG~ dgrad RS~ wgrad "},
      {true, false, true, "AG~ dgrad RS~ wgrad "},
      {false, false, true, "dgrad AR~ wgrad "},
      {false, false, false, "whole AR "},
      {true, true, true, "AG~ dgrad wgrad RS~ ", "pp: 2, dp: 2, schedule: zb-h1"},
      {true, false, true, "AG~ dgrad wgrad RS ", "pp: 2, dp: 2, schedule: zb-h1"},
  };
  for (const Case& c : cases) {
    std::string text = yaml;
    text.replace(text.find("LAYOUT"), 6, c.layout);
    text.replace(text.find("SP"), 2, c.sp ? "true" : "false");
    text.replace(text.find("UB"), 2, c.ub ? "true" : "false");
    text.replace(text.find("ASYNC"), 5, c.async ? "true" : "false");
    const Scenario s = load_scenario_text(text, "tp2.yaml");
    Shard shard;
    shard.tp = 2;
    shard.sequence_parallel = c.sp;
    const Workload w = build_workload(s.model, s.training, shard);
    const Layer& layer = w.layers.at(1);
    const auto steps = layer_pass(layer, LayerPass::backward, s, message_sizes(s));
    // fc1's backward: from the step after the activation's kernels to the next op's.
    const std::string seq = backward_steps(steps, "mlp.fc1", "mlp.act");
    // "~": the next kernels do not wait for it.
    EXPECT_EQ(seq, c.want) << c.sp << c.ub << c.async;
  }
}

TEST(ParamGather, MlaQueryDownProjectionReducesItsInputGradientAfterBothGemms) {
  // MLA's query down-projection is a duplicated linear in Megatron-Core (TELinear with
  // parallel_mode 'duplicated'): its input gradient is reduced by the sequence-parallel
  // gather's own backward, after both GEMMs, while the query up-projection path's
  // column-parallel q_proj (no query compression) overlaps it with its weight gradient.
  const std::string yaml = R"(
cluster: {preset: dgx-h100, nodes: 1}
model: {family: decoder, layers: 2, hidden: 2048, heads: 16, ffn: 8192, vocab: 32768,
        seq_len: 2048, activation: swiglu, norm: rmsnorm, position_embedding: rope,
        tied_embeddings: false, bias: false, dropout: false,
        mla: {q_lora_rank: QL, kv_lora_rank: 512, qk_nope_head_dim: 128, qk_rope_head_dim: 64, v_head_dim: 128}}
parallelism: {tp: 2, pp: 1, dp: 4, microbatch: 1, global_batch: 8, sequence_parallel: true}
training: {precision: bf16, recompute: none}
)";
  for (const bool lora : {true, false}) {
    std::string text = yaml;
    text.replace(text.find("QL"), 2, lora ? "768" : "0");
    const Scenario s = load_scenario_text(text, "mla.yaml");
    Shard shard;
    shard.tp = 2;
    shard.sequence_parallel = true;
    const Workload w = build_workload(s.model, s.training, shard);
    const std::string name = lora ? "attn.q_down" : "attn.q_proj";
    const auto steps = layer_pass(w.layers.at(1), LayerPass::backward, s, message_sizes(s));
    EXPECT_EQ(backward_steps(steps, name), lora ? "dgrad wgrad RS " : "dgrad RS~ wgrad ") << name;
  }
}

// The tasks of rank 0 in issue order, op by op (SimulationOptions::op_level).
std::vector<std::pair<const Task*, Timed>> op_tasks(const StepResult& r) {
  std::vector<std::pair<const Task*, Timed>> out;
  for (std::size_t i = 0; i < r.graph.tasks.size(); ++i) {
    const Task& t = r.graph.tasks[i];
    if (t.rank != 0) continue;
    out.push_back({&t, {r.timeline.timing[i].start->value(), r.timeline.timing[i].end->value(),
                        t.work.value(), 0.0}});
  }
  return out;
}

TEST(ParamGather, TheWeightGradientWaitsForItsInputButNotForTheInputGradient) {
  // The first column-parallel backward of the step (the LM head's, under sequence
  // parallelism): re-gather AG (overlapped), data-gradient GEMM D, the input gradient's
  // reduce-scatter RS (overlapped), weight-gradient GEMM W, then the next op. By hand:
  // W needs the gathered input and nothing else, so it starts at max(D's end, AG's end);
  // RS follows AG on the tensor-parallel stream and D; the next op waits for W and RS.
  // NVLink at 1 GB/s makes the collectives outlast the GEMMs, so each wait shows: W
  // starts when AG ends, after D, and the next op when RS ends, after W.
  const Scenario s = load_scenario_text(R"(
cluster: {preset: dgx-h100, nodes: 1, gpus_per_node: 2, intra_node: {bandwidth: "1 GB/s"}}
model: {family: decoder, layers: 1, hidden: 4096, heads: 32, ffn: 16384, vocab: 32768,
        seq_len: 2048, activation: gelu, norm: layernorm, position_embedding: rope,
        tied_embeddings: false, bias: false, dropout: false}
parallelism: {tp: 2, pp: 1, dp: 1, microbatch: 1, global_batch: 1, sequence_parallel: true}
training: {precision: bf16, recompute: none}
)",
                                        "slow-tp.yaml");
  SimulationOptions ops;
  ops.op_level = true;
  const StepResult r = simulate_step(s, ops);
  const auto t = op_tasks(r);
  // The first backward compute task preceded by a tp collective and followed by one and
  // another backward compute task: AG, D, RS, W.
  std::size_t at = 0;
  for (std::size_t i = 1; i + 2 < t.size(); ++i) {
    if (t[i - 1].first->kind == TaskKind::tp_comm && t[i].first->kind == TaskKind::backward &&
        t[i + 1].first->kind == TaskKind::tp_comm && t[i + 2].first->kind == TaskKind::backward) {
      at = i;
      break;
    }
  }
  ASSERT_GT(at, 0u);
  const Timed& ag = t[at - 1].second;
  const Timed& d = t[at].second;
  const Timed& rs = t[at + 1].second;
  const Timed& w = t[at + 2].second;
  ASSERT_LT(at + 3, t.size());
  const Timed& next = t[at + 3].second;
  EXPECT_GT(ag.end, d.end);  // the slow gather outlasts the data-gradient GEMM
  EXPECT_NEAR(w.start, ag.end, 1e-12);
  EXPECT_GE(rs.start, ag.end - 1e-12);
  EXPECT_GT(rs.end, w.end);  // the reduce-scatter outlasts the weight-gradient GEMM
  EXPECT_NEAR(next.start, rs.end, 1e-12);
}

}  // namespace
}  // namespace orrery
