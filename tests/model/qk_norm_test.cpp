// model.qk_norm: the per-head query and key norms of Qwen3 (q_norm, k_norm) and of
// Megatron-Core's qk_layernorm, against hand derivations.
#include <gtest/gtest.h>

#include <string>

#include "model/analysis.h"
#include "model/workload.h"
#include "scenario/load.h"

namespace orrery {
namespace {

// A Qwen3-30B-A3B-shaped dense pair of layers: hidden 2048, 32 query heads and 4 key-value
// heads of head_dim 128, RMSNorm, at tp 2 in bf16, micro-batch 1 of 4096 tokens.
std::string yaml(bool qk_norm, const std::string& extra = "") {
  return std::string(R"(cluster: {preset: dgx-h100, nodes: 1}
model: {family: decoder, layers: 2, hidden: 2048, heads: 32, head_dim: 128, kv_heads: 4,
        ffn: 6144, vocab: 151936, seq_len: 4096, activation: swiglu, norm: rmsnorm,
        position_embedding: rope, tied_embeddings: false, bias: false, dropout: false,
        qk_norm: )") +
         (qk_norm ? "true" : "false") + R"(}
parallelism: {tp: 2, dp: 4, microbatch: 1, global_batch: 4)" + extra + R"(}
training: {precision: bf16}
)";
}

const Op* find(const Layer& l, const std::string& name) {
  for (const Op& op : l.ops) {
    if (op.name == name) return &op;
  }
  return nullptr;
}

TEST(QkNorm, BytesParamsAndSavedOfTheTwoNorms) {
  // Fused (one kernel each way, e = 2 bytes an element), on this rank's heads:
  //   q: n = b*s*(heads/tp)*head_dim = 4096 * 16 * 128 = 8,388,608 elements
  //      forward reads and writes 2n = 16,777,216 bytes each; backward reads the gradient
  //      and the kept input, 4n = 33,554,432, writes 2n; keeps 2n; 128 weights.
  //   k: n = 4096 * (4/2) * 128 = 1,048,576: 2,097,152 / 4,194,304 bytes; 128 weights.
  const Scenario s = load_scenario_text(yaml(true), "qk.yaml");
  const Workload w = build_workload(s.model, s.training, shard_of(s.parallelism));
  const Layer& l = w.layers.at(1);
  const Op* q = find(l, "attn.q_norm");
  const Op* k = find(l, "attn.k_norm");
  ASSERT_NE(q, nullptr);
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(q->kind, OpKind::norm);
  EXPECT_DOUBLE_EQ(q->fwd_read.value(), 16777216.0);
  EXPECT_DOUBLE_EQ(q->fwd_written.value(), 16777216.0);
  EXPECT_DOUBLE_EQ(q->bwd_read.value(), 33554432.0);
  EXPECT_DOUBLE_EQ(q->bwd_written.value(), 16777216.0);
  EXPECT_DOUBLE_EQ(q->saved.value(), 16777216.0);
  EXPECT_DOUBLE_EQ(q->params, 128.0);
  EXPECT_DOUBLE_EQ(k->fwd_read.value(), 2097152.0);
  EXPECT_DOUBLE_EQ(k->bwd_read.value(), 4194304.0);
  EXPECT_DOUBLE_EQ(k->saved.value(), 2097152.0);
  EXPECT_DOUBLE_EQ(k->params, 128.0);

  // Against the same model without them: each layer keeps 16,777,216 + 2,097,152
  // = 18,874,368 bytes more and holds 256 more weights on this rank (replicated over tp,
  // not halved); the whole model 2 layers * 256 = 512 more parameters.
  const Scenario s0 = load_scenario_text(yaml(false), "no-qk.yaml");
  const Workload w0 = build_workload(s0.model, s0.training, shard_of(s0.parallelism));
  const Layer& l0 = w0.layers.at(1);
  EXPECT_EQ(find(l0, "attn.q_norm"), nullptr);
  EXPECT_DOUBLE_EQ(l.params() - l0.params(), 256.0);
  EXPECT_DOUBLE_EQ((l.saved(Recompute::none) - l0.saved(Recompute::none)).value(), 18874368.0);
  EXPECT_DOUBLE_EQ(analyse_step(s).params_total - analyse_step(s0).params_total, 512.0);
}

TEST(QkNorm, SequenceParallelDoesNotShardThem) {
  // The projection's output is split by heads, not by sequence: the same 8,388,608
  // query elements with sequence parallelism.
  const Scenario s = load_scenario_text(yaml(true, ", sequence_parallel: true"), "qk.yaml");
  const Workload w = build_workload(s.model, s.training, shard_of(s.parallelism));
  const Op* q = find(w.layers.at(1), "attn.q_norm");
  ASSERT_NE(q, nullptr);
  EXPECT_DOUBLE_EQ(q->fwd_read.value(), 16777216.0);
}

TEST(QkNorm, UnfusedRunsTheChainOnEachHead) {
  // training.stack.norm unfused: the RMSNorm chain, 36 n bytes forward and 92 n backward
  // in 16 bits, the weight's 128 on its last op. k: n = 1,048,576 -> 37,748,736 forward.
  const std::string text = yaml(true);
  const std::string unfused = text.substr(0, text.find("training:")) +
                              "training: {precision: bf16, stack: {norm: unfused}}\n";
  const Scenario s = load_scenario_text(unfused, "qk.yaml");
  const Workload w = build_workload(s.model, s.training, shard_of(s.parallelism));
  double fwd = 0, bwd = 0, params = 0;
  for (const Op& op : w.layers.at(1).ops) {
    if (op.name.rfind("attn.k_norm.", 0) != 0) continue;
    fwd += op.fwd_read.value() + op.fwd_written.value();
    bwd += op.bwd_read.value() + op.bwd_written.value();
    params += op.params;
  }
  EXPECT_DOUBLE_EQ(fwd, 36.0 * 1048576);
  EXPECT_DOUBLE_EQ(bwd, 92.0 * 1048576);
  EXPECT_DOUBLE_EQ(params, 128.0);
}

}  // namespace
}  // namespace orrery
