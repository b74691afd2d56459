// cluster.gpu.score_tensor_efficiency (scenario/presets/gpus.yaml): the bandwidth of
// unfused attention's kernels over the s x S score tensor, derived from Azure's PyTorch
// standard-attention figures, checked here by timing that benchmark's shape with orrery's
// own unfused ops and comparing with the published rate.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "calibrate/compute_model.h"
#include "model/workload.h"
#include "scenario/load.h"

namespace orrery {
namespace {

// flash-attention's benchmark_flash_attention.py shape (b4b6e903): batch 2, seq 8192,
// hidden 2048 (its `dim`), heads 2048 / head_dim, causal=False, dropout_p 0 (no dropout
// kernel): a one-layer model without dropout, unfused attention, 16-bit.
Scenario benchmark(const std::string& system, int heads, const std::string& precision,
                   bool dropout = false, const std::string& positions = "learned",
                   bool flash = false) {
  return load_scenario_text(fmt::format(R"(
cluster: {{preset: {}, gpus_per_node: 1}}
model: {{family: decoder, layers: 1, hidden: 2048, heads: {}, ffn: 8192, vocab: 32768,
        seq_len: 8192, activation: gelu, norm: layernorm, position_embedding: {},
        attention_mask: full, tied_embeddings: false, bias: false, dropout: {}}}
parallelism: {{tp: 1, pp: 1, dp: 1, microbatch: 2, global_batch: 2}}
training: {{precision: {}, flash_attention: {}}}
)",
                                        system, heads, positions, dropout, precision, flash),
                            "score.yaml");
}

struct Timed {
  std::set<std::string> names;
  double bytes = 0, seconds = 0;
};

// The score-tensor ops of the transformer layer: their bytes and fwd + bwd time.
Timed score_ops(const Scenario& s) {
  const Workload w = build_workload(s.model, s.training, shard_of(s.parallelism));
  const auto model = make_roofline_model(s);
  Timed t;
  for (const Layer& l : w.layers) {
    if (l.kind != LayerKind::transformer) continue;
    for (const Op& op : l.ops) {
      if (!op.score_tensor) continue;
      t.names.insert(op.name);
      t.bytes += (op.fwd_read + op.fwd_written + op.bwd_read + op.bwd_written).value();
      t.seconds += (model->op_time(op, Pass::forward) + model->op_time(op, Pass::backward)).value();
    }
  }
  return t;
}

// A100, head dim 64 (32 heads): P = b heads s^2 = 2 x 32 x 8192^2 = 4,294,967,296 score
// elements, 2 bytes each; the q, k, v, o tensors b s h = 16,777,216 elements each.
//  forward:  scores  read q, k (2 x 2 x 16,777,216 = 67,108,864 x 2) + write 2P
//                    = 134,217,728 + 8,589,934,592 = 8,724,152,320
//            softmax read 2P + write 2P = 17,179,869,184
//            context read 2P + v, write o = 8,589,934,592 + 67,108,864 + 67,108,864
//                    = 8,724,152,320
//  backward: scores  read 2 x 2P + q, k, write dq, dk = 17,179,869,184 + 2 x 134,217,728
//                    = 17,448,304,640
//            softmax read 2 x 2P, write 2P = 25,769,803,776
//            context read 2P + v + 2 o, write 2P + v = 17,448,304,640
//  total 95,294,586,880 bytes, all memory-bound at 2,039 GB/s x 0.559 = 1,139.8 GB/s:
//  83.61 ms. The script's fwd + bwd FLOPs: 3.5 x 4 x 2 x 8192^2 x 32 x 64 =
//  3,848,290,697,216; over 83.61 ms, 46.03 TFLOP/s against Azure's 46.0.
TEST(ScoreTensor, A100ReproducesAzuresStandardAttention) {
  const Scenario s = benchmark("dgx-a100", 32, "fp16");
  ASSERT_EQ(*s.cluster.gpu.score_tensor_efficiency, 0.559);
  const Timed t = score_ops(s);
  EXPECT_EQ(t.names, (std::set<std::string>{"attn.scores", "attn.softmax", "attn.context"}));
  EXPECT_DOUBLE_EQ(t.bytes, 95294586880.0);
  EXPECT_NEAR(t.seconds, 95294586880.0 / (2039e9 * 0.559), 1e-9);
  const double flops = 3.5 * 4 * 2 * 8192.0 * 8192 * 32 * 64;
  EXPECT_DOUBLE_EQ(flops, 3848290697216.0);
  EXPECT_NEAR(flops / t.seconds / 1e12, 46.0, 0.05);
}

// H100, head dim 128 (16 heads): P = 2,147,483,648; the same terms give 17,448,304,640
// forward and 30,601,641,984 backward, 48,049,946,624 bytes, memory-bound at 3.35 TB/s x
// 0.541 = 1,812.4 GB/s (the scores GEMM's 5.5e11 FLOP take 0.86 ms at the bf16/fp16
// plateau, its 4.43 GB 2.44 ms): 26.51 ms, 145.2 TFLOP/s against Azure's 145.1.
TEST(ScoreTensor, H100ReproducesAzuresStandardAttention) {
  const Scenario s = benchmark("dgx-h100", 16, "bf16");
  const Timed t = score_ops(s);
  EXPECT_DOUBLE_EQ(t.bytes, 48049946624.0);
  EXPECT_NEAR(t.seconds, 48049946624.0 / (3.35e12 * 0.541), 1e-9);
  EXPECT_NEAR(3848290697216.0 / t.seconds / 1e12, 145.1, 0.2);
}

// With dropout the score tensor's dropout joins them (its mask written too: 2P + 2P + P
// forward); the dropout after the output projection, over b s h elements, does not.
TEST(ScoreTensor, AttentionDropoutStreamsAtTheScoreRateTheOthersAtStream) {
  const Scenario s = benchmark("dgx-a100", 32, "fp16", true);
  const Workload w = build_workload(s.model, s.training, shard_of(s.parallelism));
  const auto model = make_roofline_model(s);
  int flagged = 0, other = 0;
  for (const Op& op : w.layers[1].ops) {
    if (op.kind != OpKind::dropout) continue;
    const double bytes = (op.fwd_read + op.fwd_written).value();
    if (op.score_tensor) {
      ++flagged;
      EXPECT_DOUBLE_EQ(bytes, 5 * 4294967296.0);
      EXPECT_NEAR(model->op_time(op, Pass::forward).value(), bytes / (2039e9 * 0.559), 1e-12);
    } else {
      ++other;
      EXPECT_NEAR(model->op_time(op, Pass::forward).value(), bytes / (2039e9 * 0.79), 1e-12);
    }
  }
  EXPECT_EQ(flagged, 1);
  EXPECT_GE(other, 1);
}

// A GPU without the figure streams the score tensor at its STREAM fraction.
TEST(ScoreTensor, WithoutTheFigureTheMemoryEfficiency) {
  const Scenario s = benchmark("dgx-a100", 32, "fp16");
  Scenario bare = s;
  bare.cluster.gpu.score_tensor_efficiency.reset();
  const Timed t = score_ops(bare);
  EXPECT_NEAR(t.seconds, 95294586880.0 / (2039e9 * 0.79), 1e-9);
}

// The op of this name in the model's transformer layer.
Op layer_op(const Scenario& s, const std::string& name) {
  const Workload w = build_workload(s.model, s.training, shard_of(s.parallelism));
  for (const Layer& l : w.layers)
    if (l.kind == LayerKind::transformer)
      for (const Op& op : l.ops)
        if (op.name == name) return op;
  ADD_FAILURE() << "no op " << name;
  return {};
}

// ALiBi, unfused (model.position_embedding alibi): baddbmm into the broadcast bias with
// beta 1. At the A100 shape above, P = 4,294,967,296 scores, 2 bytes each (2P =
// 8,589,934,592): the scores GEMM reads q, k (134,217,728) and now C (2P) and writes 2P,
// 17,314,086,912 bytes at 2,039 GB/s x 0.559 = 1,139.801 GB/s, 15.1904 ms (its 5.5e11 FLOP
// take about 2.2 ms); the copy of the bias into the result writes 2P and reads the bias
// (b a S = 2 x 32 x 8192 = 524,288 elements, 1,048,576 bytes), 8,590,983,168 bytes at
// STREAM's 2,039 x 0.79 = 1,610.81 GB/s, 5.3333 ms:
// 20.5237 ms forward against 7.6541 ms with learned positions. Backward unchanged; no
// position table; under flash attention nothing changes.
TEST(ScoreTensor, AlibiCopiesTheBiasIntoTheScoresAndTheGemmReadsIt) {
  const Scenario learned = benchmark("dgx-a100", 32, "fp16");
  const Scenario alibi = benchmark("dgx-a100", 32, "fp16", false, "alibi");
  const Op a = layer_op(alibi, "attn.scores"), l = layer_op(learned, "attn.scores");
  const double two_p = 8589934592.0;
  EXPECT_DOUBLE_EQ(a.fwd_read.value(), 134217728.0 + two_p);
  EXPECT_DOUBLE_EQ(a.fwd_written.value(), two_p);
  EXPECT_DOUBLE_EQ(a.aux_fwd_bytes.value(), two_p + 2 * 2 * 32 * 8192.0);
  EXPECT_DOUBLE_EQ(a.bwd_read.value(), l.bwd_read.value());
  EXPECT_DOUBLE_EQ(a.bwd_written.value(), l.bwd_written.value());
  EXPECT_DOUBLE_EQ(a.aux_bwd_bytes.value(), 0.0);
  const auto model = make_roofline_model(alibi);
  const double fwd = model->op_time(a, Pass::forward).value();
  EXPECT_NEAR(fwd, 17314086912.0 / (2039e9 * 0.559) + 8590983168.0 / (2039e9 * 0.79), 1e-9);
  EXPECT_NEAR(fwd, 20.5237e-3, 1e-6);
  EXPECT_NEAR(model->op_time(l, Pass::forward).value(), 7.6541e-3, 1e-6);
  EXPECT_DOUBLE_EQ(model->op_time(a, Pass::backward).value(),
                   model->op_time(l, Pass::backward).value());
  // No learned position table in the embedding.
  const Workload w = build_workload(alibi.model, alibi.training, shard_of(alibi.parallelism));
  for (const Layer& layer : w.layers)
    for (const Op& op : layer.ops) EXPECT_NE(op.name, "embedding.position");
  // Fused attention adds the bias in the kernel.
  const Op fa = layer_op(benchmark("dgx-a100", 32, "fp16", false, "alibi", true), "attn.core");
  const Op fl = layer_op(benchmark("dgx-a100", 32, "fp16", false, "learned", true), "attn.core");
  EXPECT_DOUBLE_EQ((fa.fwd_read + fa.fwd_written + fa.aux_fwd_bytes).value(),
                   (fl.fwd_read + fl.fwd_written + fl.aux_fwd_bytes).value());
}

}  // namespace
}  // namespace orrery
