// GEMMs with an odd dimension (docs/model.md, "GEMMs with an odd dimension"): cuBLAS runs
// them with its alignment-1 kernels, at cluster.gpu.unaligned_gemm_efficiency of the
// 16-bit peak (scenario/presets/gpus.yaml: 0.125, GPT-2's three vocabulary GEMMs measured
// on an H200). Checked here: which GEMMs the workload marks, the head's time derived by
// hand on the H200, a GPU without the figure, fp32 training, an odd token count and a
// convolution (neither marked), and a bad value.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <string>
#include <tuple>
#include <vector>

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
        if (op.odd_dimension()) {
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
    for (const Op& op : l.ops) EXPECT_FALSE(op.odd_dimension()) << op.name;
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
    for (const Op& op : l.ops) EXPECT_FALSE(op.odd_dimension()) << op.name;
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
  aligned.alignment = 8;
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
    ASSERT_TRUE(head.odd_dimension());
    Op aligned = head;
    aligned.alignment = 8;
    for (Pass p : {Pass::forward, Pass::backward})
      EXPECT_DOUBLE_EQ(model->op_time(head, p).value(), model->op_time(aligned, p).value());
  }
}

// The largest power of two up to 8 dividing every row length; a fractional share says
// nothing of the rows and leaves the alignment as it is.
TEST(UnalignedGemm, AlignmentIsTheLargestPowerOfTwoUpToEightDividingEveryRow) {
  EXPECT_EQ(gemm_alignment({128, 2048}), 8);
  EXPECT_EQ(gemm_alignment({108, 2048}), 4);    // 108 = 4 x 27
  EXPECT_EQ(gemm_alignment({150, 2048}), 2);    // 150 = 2 x 75
  EXPECT_EQ(gemm_alignment({225, 2048}), 1);    // odd
  EXPECT_EQ(gemm_alignment({1024, 30522}), 2);  // BERT's vocabulary, 2 x 15261
  EXPECT_EQ(gemm_alignment({1800, 7200}), 8);   // 8 x 225 and 16 x 450: 8 is the cap
  EXPECT_EQ(gemm_alignment({12.5, 128}), 8);
  EXPECT_EQ(gemm_alignment({}), 8);
}

// Unfused attention as BigScience's tr11 benchmarks ran it (Megatron-DeepSpeed, one GPU
// here, 2,048 tokens): the batched GEMMs' rows are the head dimension and the key length,
// so hidden / heads = 14400 / 64 = 225, 14400 / 96 = 150, 13824 / 128 = 108 and
// 14336 / 112 = 128 give alignments 1, 2, 4 and 8. Every linear GEMM's rows (hidden, 3 x
// hidden, 4 x hidden, the padded 250,880 vocabulary) are multiples of 8.
TEST(UnalignedGemm, UnfusedAttentionTakesTheHeadDimensionsAlignment) {
  for (const auto& [hidden, heads, alignment] :
       {std::tuple{14400, 64, 1}, std::tuple{14400, 96, 2}, std::tuple{13824, 128, 4},
        std::tuple{14336, 112, 8}}) {
    const Scenario s = load_scenario_text(fmt::format(R"(
cluster: {{preset: dgx-a100, nodes: 1, gpus_per_node: 1}}
model: {{family: decoder, layers: 1, hidden: {}, heads: {}, ffn: {}, vocab: 250880,
        seq_len: 2048, activation: gelu, norm: layernorm, position_embedding: alibi,
        tied_embeddings: true, bias: true, dropout: false}}
parallelism: {{tp: 1, pp: 1, dp: 1, microbatch: 1, global_batch: 1, pipeline_engine: deepspeed}}
training: {{precision: fp16, flash_attention: false, recompute: none, stack: deepspeed}}
)",
                                                      hidden, heads, 4 * hidden),
                                          "bigscience-shape.yaml");
    const Workload w = build_workload(s.model, s.training, shard_of(s.parallelism));
    std::vector<std::string> names;
    for (const MisalignedGemm& g : misaligned_gemms(w)) {
      names.push_back(g.name);
      EXPECT_EQ(g.alignment, alignment) << g.name;
    }
    const std::vector<std::string> expected =
        alignment == 8 ? std::vector<std::string>{}
                       : std::vector<std::string>{"attn.scores", "attn.context"};
    EXPECT_EQ(names, expected) << hidden << " / " << heads;
    for (const Layer& l : w.layers)
      for (const Op& op : l.ops)
        if (op.name == "attn.scores" || op.name == "attn.context") {
          EXPECT_EQ(op.alignment, alignment) << op.name;
          EXPECT_EQ(op.odd_dimension(), alignment == 1) << op.name;
        }
  }
}

// On the H200, an odd head dimension (1800 / 8 = 225) puts unfused attention's batched
// GEMMs on the alignment-1 rate, 989.4 TFLOP/s x 0.125 = 123.675 TFLOP/s: Q K^T of one
// 2,048-token sequence, F = 2 x 2048 x 2048 x 8 heads x 225 = 15,099,494,400 FLOP, takes
// F / rate = 122.09 us forward and twice that backward (its 67 MB score tensor streams in
// about 16 us: the rate decides); P V the same. With 224-wide heads (1792 / 8) the aligned
// rate holds, several times faster.
TEST(UnalignedGemm, AnOddHeadDimensionRunsUnfusedAttentionAtTheAlignmentOneRate) {
  const auto make = [](int hidden) {
    return load_scenario_text(fmt::format(R"(
cluster: {{preset: dgx-h200, nodes: 1, gpus_per_node: 1}}
model: {{family: decoder, layers: 1, hidden: {}, heads: 8, ffn: {}, vocab: 50304,
        seq_len: 2048, activation: gelu, norm: layernorm, position_embedding: learned,
        tied_embeddings: true, bias: true, dropout: false}}
parallelism: {{tp: 1, pp: 1, dp: 1, microbatch: 1, global_batch: 1}}
training: {{precision: bf16, flash_attention: false, recompute: none}}
)",
                                          hidden, 4 * hidden),
                              "odd-heads.yaml");
  };
  const auto op_named = [](const Workload& w, const std::string& name) {
    for (const Layer& l : w.layers)
      for (const Op& op : l.ops)
        if (op.name == name) return op;
    throw std::logic_error("no " + name);
  };
  const Scenario odd = make(1800), even = make(1792);
  const Workload wo = build_workload(odd.model, odd.training, shard_of(odd.parallelism));
  const Workload we = build_workload(even.model, even.training, shard_of(even.parallelism));
  const auto mo = make_roofline_model(odd), me = make_roofline_model(even);
  const double F = 2.0 * 2048 * 2048 * 8 * 225, rate = 989.4e12 * 0.125;
  for (const std::string name : {"attn.scores", "attn.context"}) {
    const Op a = op_named(wo, name), b = op_named(we, name);
    ASSERT_TRUE(a.odd_dimension()) << name;
    ASSERT_FALSE(b.odd_dimension()) << name;
    ASSERT_DOUBLE_EQ(a.fwd_flops.value(), F);
    EXPECT_NEAR(mo->op_time(a, Pass::forward).value(), F / rate, 1e-12) << name;
    EXPECT_NEAR(mo->op_time(a, Pass::backward).value(), 2 * F / rate, 1e-12) << name;
    EXPECT_LT(me->op_time(b, Pass::forward).value() * 3, mo->op_time(a, Pass::forward).value())
        << name;
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
