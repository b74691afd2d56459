// GEMMs with an odd dimension (docs/model.md, "GEMMs with an odd dimension"): cuBLAS runs
// them with its alignment-1 kernels, at cluster.gpu.unaligned_gemm_efficiency of the
// 16-bit peak (scenario/presets/gpus.yaml: 0.125, GPT-2's three vocabulary GEMMs measured
// on an H200). Checked here: which GEMMs the workload marks, the head's time derived by
// hand on the H200, a GPU without the figure, fp32 training, an odd token count and a
// convolution (neither marked), and a bad value.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <string>

#include "calibrate/compute_model.h"
#include "core/error.h"
#include "model/workload.h"
#include "scenario/load.h"

namespace orrery {
namespace {

// GPT-2 124M as profiler/train_step.py runs it (12 layers, hidden 768, 12 heads, tied
// embeddings, one GPU, a micro-batch of 8 x 1024 tokens), vocabulary `vocab`, on `system`.
Scenario gpt2(int vocab, const std::string& system = "dgx-h200",
              const std::string& precision = "bf16") {
  return load_scenario_text(fmt::format(R"(
cluster: {{preset: {}, nodes: 1, gpus_per_node: 1}}
model: {{family: decoder, layers: 12, hidden: 768, heads: 12, ffn: 3072, vocab: {},
        seq_len: 1024, activation: gelu, norm: layernorm, position_embedding: learned,
        tied_embeddings: true, bias: true, dropout: false}}
parallelism: {{tp: 1, pp: 1, dp: 1, microbatch: 8, global_batch: 8}}
training: {{precision: {}, recompute: none, stack: fsdp2}}
)",
                                        system, vocab, precision),
                            "gpt2.yaml");
}

const Op& head_of(const Workload& w) {
  for (const Layer& l : w.layers)
    for (const Op& op : l.ops)
      if (op.name == "head.output") return op;
  throw std::logic_error("no head.output");
}

// 50,257 is odd: the head's GEMM (8192 x 768 x 50257) is marked, and no other op (every
// other dimension, 8192 tokens, 768, 2304 and 3072, is even). 50,304 (nanoGPT's padded
// vocabulary) marks nothing.
TEST(UnalignedGemm, OnlyTheGemmsWithAnOddDimensionAreMarked) {
  for (const auto& [vocab, marked] : {std::pair{50257, 1}, std::pair{50304, 0}}) {
    const Scenario s = gpt2(vocab);
    const Workload w = build_workload(s.model, s.training, shard_of(s.parallelism));
    int n = 0;
    for (const Layer& l : w.layers)
      for (const Op& op : l.ops)
        if (op.odd_dimension) {
          ++n;
          EXPECT_EQ(op.name, "head.output");
        }
    EXPECT_EQ(n, marked) << vocab;
  }
}

// Only k and n, the operands' row lengths, make a GEMM unaligned: 1,023 tokens (m) with
// the padded 50,304 vocabulary mark nothing, where 1,023 x 768 x 50,304 leaves every row
// of the input (768), weight (768) and output (50,304) on a 16-byte boundary.
TEST(UnalignedGemm, AnOddTokenCountIsNotMarked) {
  const Scenario s = load_scenario_text(R"(
cluster: {preset: dgx-h200, nodes: 1, gpus_per_node: 1}
model: {family: decoder, layers: 2, hidden: 768, heads: 12, ffn: 3072, vocab: 50304,
        seq_len: 1023, activation: gelu, norm: layernorm, position_embedding: learned,
        tied_embeddings: true, bias: true, dropout: false}
parallelism: {tp: 1, pp: 1, dp: 1, microbatch: 1, global_batch: 1}
training: {precision: bf16, recompute: none, stack: fsdp2}
)",
                                        "odd-tokens.yaml");
  const Workload w = build_workload(s.model, s.training, shard_of(s.parallelism));
  const Op& head = head_of(w);
  ASSERT_DOUBLE_EQ(head.fwd_flops.value(), 2.0 * 1023 * 768 * 50304);
  for (const Layer& l : w.layers)
    for (const Op& op : l.ops) EXPECT_FALSE(op.odd_dimension) << op.name;
}

// A convolution runs cuDNN's kernels, not cuBLAS's: ResNet-50's first layer (3 x 7 x 7 =
// 147 input taps, k odd) is not marked, and its time on the H200 is the aligned one.
TEST(UnalignedGemm, ConvolutionsAreNotMarked) {
  const Scenario s = load_scenario_text(
      "cluster: {preset: dgx-h200, nodes: 1}\nmodel: {preset: resnet50}\n"
      "parallelism: {dp: 8, microbatch: 32, global_batch: 256}\n"
      "training: {precision: bf16}\n",
      "resnet.yaml");
  const Workload w = build_workload(s.model, s.training, shard_of(s.parallelism));
  ASSERT_FALSE(w.layers.empty());
  const Op& conv1 = w.layers.front().ops.front();
  ASSERT_EQ(conv1.name, "conv1");
  ASSERT_DOUBLE_EQ(conv1.weight_k, 147.0);
  for (const Layer& l : w.layers)
    for (const Op& op : l.ops) EXPECT_FALSE(op.odd_dimension) << op.name;
}

// On the H200: F = 2 x 8192 x 768 x 50257 = 632,379,408,384 FLOP forward and twice that
// backward, at 989.4 TFLOP/s x 0.125 = 123.675 TFLOP/s: 5.1133 ms forward, 10.2266 ms
// backward (the measured kernels: 6.611 ms forward, 4.490 + 4.262 = 8.752 ms backward;
// 15.36 ms against 15.34 ms in all). The aligned path would take about a fifth of that.
TEST(UnalignedGemm, TheHeadOfGpt2RunsAtTheAlignmentOneRate) {
  const Scenario s = gpt2(50257);
  ASSERT_TRUE(s.cluster.gpu.unaligned_gemm_efficiency.has_value());
  EXPECT_DOUBLE_EQ(*s.cluster.gpu.unaligned_gemm_efficiency, 0.125);
  EXPECT_NEAR(3 * 632379408384.0 / 15363.055e-6 / 989.4e12, 0.125, 0.0005);
  const auto model = make_roofline_model(s);
  const Workload w = build_workload(s.model, s.training, shard_of(s.parallelism));
  const Op& head = head_of(w);
  const double F = 2.0 * 8192 * 768 * 50257;
  ASSERT_DOUBLE_EQ(head.fwd_flops.value(), F);
  const double rate = 989.4e12 * 0.125;
  EXPECT_NEAR(model->op_time(head, Pass::forward).value(), F / rate, 1e-12);
  EXPECT_NEAR(model->op_time(head, Pass::backward).value(), 2 * F / rate, 1e-12);
  Op aligned = head;
  aligned.odd_dimension = false;
  EXPECT_LT(model->op_time(aligned, Pass::forward).value() * 4,
            model->op_time(head, Pass::forward).value());
}

// A GPU whose preset gives no figure (the A100s: not measured there) and fp32 training
// (tf32 GEMMs, the 16-bit figure says nothing of them) time the GEMM as an aligned one.
TEST(UnalignedGemm, WithoutAFigureTheGemmIsTimedAsAligned) {
  for (const Scenario& s : {gpt2(50257, "dgx-a100"), gpt2(50257, "dgx-h200", "fp32")}) {
    const auto model = make_roofline_model(s);
    const Workload w = build_workload(s.model, s.training, shard_of(s.parallelism));
    const Op& head = head_of(w);
    ASSERT_TRUE(head.odd_dimension);
    Op aligned = head;
    aligned.odd_dimension = false;
    for (Pass p : {Pass::forward, Pass::backward})
      EXPECT_DOUBLE_EQ(model->op_time(head, p).value(), model->op_time(aligned, p).value());
  }
}

TEST(UnalignedGemm, AFractionOutOfRangeIsRefused) {
  try {
    load_scenario_text(
        "cluster: {preset: dgx-h200, gpu: {unaligned_gemm_efficiency: 1.5}}\n"
        "model: {preset: llama2-7b}\nparallelism: {tp: 1, dp: 8, global_batch: 8}\n",
        "bad.yaml");
    FAIL() << "accepted 1.5";
  } catch (const InputError& e) {
    EXPECT_EQ(e.key(), "cluster.gpu.unaligned_gemm_efficiency");
    EXPECT_EQ(e.value(), "1.5");
  }
}

}  // namespace
}  // namespace orrery
