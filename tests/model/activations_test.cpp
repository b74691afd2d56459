// Activation bytes per transformer layer against Korthikanti et al. 2022, Table 2.
#include <gtest/gtest.h>

#include <algorithm>

#include "core/error.h"
#include "model/workload.h"
#include "scenario/load.h"
#include "tests/test_util.h"

namespace orrery {
namespace {

// The 22B model of Korthikanti et al. 2022 Table 3: a = 64, h = 6144, s = 2048, with
// dropout and unfused (non-flash) attention as in their measurements, fp16.
struct Korthikanti {
  ModelSpec model;
  TrainingSpec training;
  Korthikanti() {
    const Scenario s = testing::preset_scenario(
        "megatron-22b", "tp: 8, global_batch: 8", 1,
        "precision: fp16, flash_attention: false");
    model = s.model;
    training = s.training;
  }
  // Bytes kept by one transformer layer for micro-batch b.
  double layer(int b, int t, bool sp, Recompute r) const {
    Shard shard;
    shard.microbatch = b;
    shard.tp = t;
    shard.sequence_parallel = sp;
    const Workload w = build_workload(model, training, shard);
    return w.layers.at(1).saved(r).value();
  }
};

constexpr double s = 2048, h = 6144, a = 64, t = 8;

TEST(Activations, Table2NoParallelism) {
  // sbh(34 + 5as/h)
  Korthikanti k;
  for (int b : {1, 4}) {
    EXPECT_DOUBLE_EQ(k.layer(b, 1, false, Recompute::none), s * b * h * (34 + 5 * a * s / h));
  }
}

TEST(Activations, Table2TensorParallel) {
  // sbh(10 + 24/t + 5as/(ht))
  Korthikanti k;
  EXPECT_DOUBLE_EQ(k.layer(1, 8, false, Recompute::none),
                   s * h * (10 + 24 / t + 5 * a * s / (h * t)));
}

TEST(Activations, Table2TensorAndSequenceParallel) {
  // sbh/t (34 + 5as/h)
  Korthikanti k;
  EXPECT_DOUBLE_EQ(k.layer(2, 8, true, Recompute::none),
                   s * 2 * h / t * (34 + 5 * a * s / h));
}

TEST(Activations, Table2SelectiveRecompute) {
  // TP: sbh(10 + 24/t); TP + SP: sbh * 34/t
  Korthikanti k;
  EXPECT_DOUBLE_EQ(k.layer(1, 8, false, Recompute::selective), s * h * (10 + 24 / t));
  EXPECT_DOUBLE_EQ(k.layer(1, 8, true, Recompute::selective), s * h * 34 / t);
}

TEST(Activations, Table2FullRecompute) {
  // Only the layer input: 2sbh, or 2sbh/t with sequence parallelism.
  Korthikanti k;
  EXPECT_DOUBLE_EQ(k.layer(1, 8, false, Recompute::full), 2 * s * h);
  EXPECT_DOUBLE_EQ(k.layer(1, 8, true, Recompute::full), 2 * s * h / t);
}

TEST(Activations, FlashAttentionKeepsNoSquareTerm) {
  // With a fused kernel the s^2 tensors are never stored; the kernel keeps a fp32
  // log-sum-exp per query row and head (4*b*s*a/t bytes), which selective recompute
  // drops with the rest of core attention.
  Korthikanti k;
  k.training.flash_attention = true;
  EXPECT_DOUBLE_EQ(k.layer(1, 8, true, Recompute::none), s * h * 34 / t + 4 * s * a / t);
  EXPECT_DOUBLE_EQ(k.layer(1, 8, true, Recompute::selective), s * h * 34 / t);
}

TEST(Activations, ContextParallelSplitsTheSequence) {
  // cp = 2 halves every token-wise tensor; the kept bytes per layer halve too.
  Korthikanti k;
  k.training.flash_attention = true;
  Shard whole, half;
  whole.tp = half.tp = 8;
  whole.sequence_parallel = half.sequence_parallel = true;
  half.cp = 2;
  const double w = build_workload(k.model, k.training, whole).layers.at(1).saved(Recompute::selective).value();
  const double c = build_workload(k.model, k.training, half).layers.at(1).saved(Recompute::selective).value();
  EXPECT_DOUBLE_EQ(c, w / 2);
}

// The cross-entropy's passes over the logits (docs/model.md, "Head"): GPT-3 175B's head at
// tp 8, micro-batch 2, bf16: s b V/t = 2048 x 2 x 6400 = 26,214,400 logits of 2 bytes.
TEST(Activations, CrossEntropyPassesOverTheLogits) {
  const double logits = 2048.0 * 2 * (51200 / 8), tokens = 2048.0 * 2;
  for (const bool fused : {false, true}) {
    const Scenario sc = testing::preset_scenario(
        "gpt3-175b", "tp: 8, global_batch: 2", 1,
        fused ? "precision: bf16, cross_entropy_fusion: true" : "precision: bf16");
    Shard shard;
    shard.microbatch = 2;
    shard.tp = 8;
    const Workload w = build_workload(sc.model, sc.training, shard);
    const Layer& head = w.layers.back();
    ASSERT_EQ(head.ops.back().name, "head.loss");
    const Op& loss = head.ops.back();
    // Unfused: cast (read 2, write 4), max (read 4), subtract (4, 4), exp (4, 4), sum (4),
    // divide (4, 4): 22 read and 16 written a logit; backward multiply (4, 4) and cast back
    // (4, 2): 8 and 6. Fused: cast+max (2, 4), subtract+exp+sum (4, 4), divide (4, 4); backward
    // (4, 2). The loss itself: 4 bytes a token written forward, read backward.
    const double fr = fused ? 2 + 4 + 4 : 2 + 4 * 5, fw = fused ? 4 + 4 + 4 : 4 + 4 * 3;
    const double br = fused ? 4 : 4 + 4, bw = fused ? 2 : 4 + 2;
    EXPECT_DOUBLE_EQ(loss.fwd_read.value(), logits * fr) << fused;
    EXPECT_DOUBLE_EQ(loss.fwd_written.value(), logits * fw + 4 * tokens) << fused;
    EXPECT_DOUBLE_EQ(loss.bwd_read.value(), logits * br + 4 * tokens) << fused;
    EXPECT_DOUBLE_EQ(loss.bwd_written.value(), logits * bw) << fused;
    // 52 bytes a logit unfused, 28 fused; the fp32 softmax kept either way.
    EXPECT_DOUBLE_EQ(fr + fw + br + bw, fused ? 28.0 : 52.0);
    EXPECT_DOUBLE_EQ(loss.saved.value(), 4 * logits);
  }
  // Transformer Engine's fused cross-entropy (cross_entropy_fusion_impl te): online softmax
  // reads the logits (2), the loss kernel reads them again (2) and writes the gradient over
  // them (2); backward scales it in place (2, 2): 10 bytes a logit, and the logits (2 bytes
  // each, now the gradient) are what it keeps, with no loss temporaries beside them.
  const Scenario te = testing::preset_scenario(
      "gpt3-175b", "tp: 8, global_batch: 2", 1,
      "precision: bf16, cross_entropy_fusion: true, cross_entropy_fusion_impl: te");
  Shard shard;
  shard.microbatch = 2;
  shard.tp = 8;
  const Workload w = build_workload(te.model, te.training, shard);
  const Op& loss = w.layers.back().ops.back();
  EXPECT_DOUBLE_EQ(loss.fwd_read.value(), logits * 4);
  EXPECT_DOUBLE_EQ(loss.fwd_written.value(), logits * 2 + 4 * tokens);
  EXPECT_DOUBLE_EQ(loss.bwd_read.value(), logits * 2 + 4 * tokens);
  EXPECT_DOUBLE_EQ(loss.bwd_written.value(), logits * 2);
  EXPECT_DOUBLE_EQ(loss.saved.value(), 2 * logits);
  // The choice is Megatron-Core's: refused without the fusion or outside its stacks.
  EXPECT_THROW(testing::preset_scenario("gpt3-175b", "tp: 8, global_batch: 2", 1,
                                        "precision: bf16, cross_entropy_fusion_impl: te"),
               InputError);
  EXPECT_THROW(testing::preset_scenario("gpt3-175b", "tp: 8, global_batch: 2", 1,
                                        "precision: bf16, cross_entropy_fusion: true, "
                                        "cross_entropy_fusion_impl: te, stack: fsdp2"),
               InputError);
}

// model.head classifier (BertForSequenceClassification) at micro-batch 4, fp32, BERT-large
// (h 1024, s 512), 2 labels, dropout on: the pooler is a 4 x 1024 x 1024 GEMM on the first
// tokens (2 x 4 x 1024 x 1024 = 8,388,608 FLOPs, its 4 x 1024 input kept), tanh keeps its
// fp32 output (4 x 1024 x 4 = 16,384 B), dropout its 1-byte mask (4,096 B), the classifier
// 2 x 4 x 1024 x 2 = 16,384 FLOPs keeping its input (16,384 B); the loss runs over 4 x 2
// logits in fp32 (no cast): reads 20 B and writes 12 B a logit, and writes one 4-byte
// loss a sequence, not a token: 160 B read, 8 x 12 + 4 x 4 = 112 B written; its kept
// softmax 32 B. No op projects onto the vocabulary.
TEST(Activations, ClassifierHeadOps) {
  const Scenario sc = load_scenario_text(
      "cluster: {preset: dgx-a100}\nmodel: {preset: bert-large, head: classifier, dropout: true}\n"
      "parallelism: {tp: 1, pp: 1, microbatch: 4, global_batch: 32}\n"
      "training: {precision: fp32, flash_attention: false}\n",
      "cls.yaml");
  Shard shard;
  shard.microbatch = 4;
  const Workload w = build_workload(sc.model, sc.training, shard);
  const Layer& head = w.layers.back();
  ASSERT_EQ(head.ops.size(), 5u);
  const char* names[] = {"head.pooler", "head.tanh", "head.dropout", "head.classifier",
                         "head.loss"};
  for (std::size_t i = 0; i < 5; ++i) EXPECT_EQ(head.ops[i].name, names[i]);
  EXPECT_DOUBLE_EQ(head.ops[0].fwd_flops.value(), 8388608.0);
  EXPECT_DOUBLE_EQ(head.ops[0].saved.value(), 4 * 4096.0);
  EXPECT_DOUBLE_EQ(head.ops[1].saved.value(), 16384.0);
  EXPECT_DOUBLE_EQ(head.ops[2].saved.value(), 4096.0);
  EXPECT_DOUBLE_EQ(head.ops[3].fwd_flops.value(), 16384.0);
  EXPECT_DOUBLE_EQ(head.ops[3].saved.value(), 16384.0);
  EXPECT_DOUBLE_EQ(head.ops[3].params, 1024.0 * 2 + 2);
  const Op& loss = head.ops[4];
  EXPECT_DOUBLE_EQ(loss.fwd_read.value(), 160.0);
  EXPECT_DOUBLE_EQ(loss.fwd_written.value(), 112.0);
  EXPECT_DOUBLE_EQ(loss.bwd_read.value(), 8 * 4 + 4 * 4.0);
  EXPECT_DOUBLE_EQ(loss.saved.value(), 32.0);
}

// Under fp8 the classifier head is the head's fp8 group (training.fp8.gemms head), as its
// pooler is: both stay in 16 bits by default (the group is not in the default list) and
// both run in fp8 with `gemms: all`. A 1024 x 2 GEMM is no Transformer Engine layer.
TEST(Activations, ClassifierHeadIsTheHeadsFp8Group) {
  for (const bool all : {false, true}) {
    const Scenario sc = load_scenario_text(
        std::string("cluster: {preset: dgx-h100}\nmodel: {preset: bert-large, head: classifier}\n"
                    "parallelism: {tp: 1, pp: 1, dp: 8, microbatch: 4, global_batch: 32}\n"
                    "training: {precision: fp8") +
            (all ? ", fp8: {gemms: all}" : "") + "}\n",
        "cls8.yaml");
    const Workload w = build_workload(sc.model, sc.training, shard_of(sc.parallelism));
    const Layer& head = w.layers.back();
    ASSERT_EQ(head.ops.at(0).name, "head.pooler");
    ASSERT_EQ(head.ops.at(3).name, "head.classifier");
    EXPECT_EQ(head.ops[0].high_precision, !all);
    EXPECT_EQ(head.ops[3].high_precision, !all) << all;
  }
}

// Eager PyTorch's unfused attention (a PyTorch-native stack, not compiled) scales the
// scores and adds the mask as kernels of their own: BERT-large at micro-batch 4, sequence
// 512, fp32: b a s S = 4 x 16 x 512 x 512 = 16,777,216 scores of 4 bytes: forward two passes
// reading and writing them (4 x 4 = 16 bytes a score), backward the division's (8). Megatron's
// fused softmax does both inside; compiled, Inductor fuses them.
TEST(Activations, EagerAttentionScalesAndMasksAsKernelsOfTheirOwn) {
  auto ops = [](const std::string& training) {
    const Scenario sc = load_scenario_text(
        "cluster: {preset: dgx-a100, gpus_per_node: 1}\nmodel: {preset: bert-large, head: "
        "classifier}\nparallelism: {tp: 1, dp: 1, microbatch: 4, global_batch: 4}\n"
        "training: {precision: fp32, flash_attention: false, " + training + "}\n",
        "eager.yaml");
    return build_workload(sc.model, sc.training, shard_of(sc.parallelism)).layers.at(1).ops;
  };
  const double scores = 4.0 * 16 * 512 * 512;
  const auto eager = ops("stack: fsdp1");
  const auto it = std::find_if(eager.begin(), eager.end(),
                               [](const Op& o) { return o.name == "attn.scale_mask"; });
  ASSERT_NE(it, eager.end());
  EXPECT_DOUBLE_EQ(it->fwd_read.value() + it->fwd_written.value(), 16 * scores);
  EXPECT_DOUBLE_EQ(it->bwd_read.value() + it->bwd_written.value(), 8 * scores);
  EXPECT_DOUBLE_EQ(it->saved.value(), 0.0);
  EXPECT_TRUE(it->score_tensor);
  for (const char* other : {"stack: megatron-core", "stack: {preset: fsdp1, compile: true}"}) {
    const auto o = ops(other);
    EXPECT_EQ(std::count_if(o.begin(), o.end(),
                            [](const Op& op) { return op.name == "attn.scale_mask"; }),
              0)
        << other;
  }
}

}  // namespace
}  // namespace orrery
