// The score tiles a fused attention kernel computes under each mask, derived by hand, and
// what that does to the workload: time follows the tiles, FLOP counts do not.
#include "model/attention_mask.h"

#include <cmath>

#include <gtest/gtest.h>

#include "calibrate/compute_model.h"
#include "model/analysis.h"
#include "model/workload.h"
#include "tests/test_util.h"

namespace orrery {
namespace {

using testing::preset_scenario;

ModelSpec with_mask(std::int64_t seq, AttentionMask mask, std::int64_t length = 0) {
  ModelSpec m;
  m.seq_len = seq;
  m.attention_mask = mask;
  if (mask == AttentionMask::sliding_window) m.attention_window = length;
  if (mask == AttentionMask::document) m.document_length = length;
  return m;
}

const Op& core_of(const Workload& w) {
  for (const Layer& l : w.layers)
    for (const Op& op : l.ops)
      if (op.name == "attn.core") return op;
  ADD_FAILURE() << "no attn.core";
  return w.layers.front().ops.front();
}

TEST(AttentionMask, FlashTileByHeadWidth) {
  // flash_fwd_launch_template.h: hdim 64 runs 128 x 128, hdim 128 runs 128 x 64.
  EXPECT_EQ(flash_tile(64).rows, 128);
  EXPECT_EQ(flash_tile(64).cols, 128);
  EXPECT_EQ(flash_tile(128).rows, 128);
  EXPECT_EQ(flash_tile(128).cols, 64);
}

TEST(AttentionMask, CausalCountsTheDiagonalTilesWhole) {
  // s = 512, tiles 128 x 64: query tile m (rows 128m .. 128m+127) reaches key tile
  // floor((128m+127)/64) = 2m+1, so it computes 2, 4, 6, 8 tiles: 20 of the 4 x 8 = 32.
  // 20/32 = 0.625 = 1/2 + 128/(2*512): half the grid plus the diagonal's share.
  const AttentionTile t{128, 64};
  EXPECT_EQ(band_tiles(512, 512, t), 20.0);
  EXPECT_DOUBLE_EQ(mask_tile_fraction(with_mask(512, AttentionMask::causal), t), 20.0 / 32.0);
  // A sequence that ends inside a tile: s = 300, tile rows end at 127, 255, 299, which
  // reach key tiles 1, 3 and 4 (of 0 .. 4): 2 + 4 + 5 = 11 of the 3 x 5 = 15.
  EXPECT_EQ(band_tiles(300, 300, t), 11.0);
  EXPECT_DOUBLE_EQ(mask_tile_fraction(with_mask(300, AttentionMask::causal), t), 11.0 / 15.0);
  // s = 8192: 64 query tiles computing 2, 4, ..., 128 key tiles: 64*65 = 4160 of 64*128,
  // 65/128 = 0.5078 (1/2 plus 1/128 for the diagonal).
  EXPECT_DOUBLE_EQ(mask_tile_fraction(with_mask(8192, AttentionMask::causal), t), 65.0 / 128.0);
  // The same with 128 x 128 tiles (head width 64): 1 + 2 + ... + 64 = 2080 of 64*64.
  EXPECT_DOUBLE_EQ(mask_tile_fraction(with_mask(8192, AttentionMask::causal), {128, 128}),
                   2080.0 / 4096.0);
}

TEST(AttentionMask, FullComputesEveryTile) {
  EXPECT_EQ(mask_tile_fraction(with_mask(300, AttentionMask::full), {128, 64}), 1.0);
  EXPECT_EQ(mask_tile_fraction(with_mask(8192, AttentionMask::full), {128, 64}), 1.0);
}

TEST(AttentionMask, SlidingWindowKeepsABandOfTiles) {
  // s = 1024, window 256 (keys i-255 .. i), tiles 128 x 64. Query tile m's first row 128m
  // reaches back to 128m - 255, its last row 128m + 127 to key tile 2m + 1.
  //   m = 0: key tiles 0..1 (2);  m = 1: 0..3 (4);  m = 2: oldest key 1, tiles 0..5 (6);
  //   m = 3..7: oldest key 128m - 255 = 64(2m - 4) + 1, tiles 2m - 4 .. 2m + 1 (6 each).
  // 2 + 4 + 6 + 5*6 = 42 of the 8 x 16 = 128 tiles: 0.328, the window's 256/1024 = 0.25
  // plus the tiles the band's two edges cut.
  const AttentionTile t{128, 64};
  EXPECT_EQ(band_tiles(1024, 256, t), 42.0);
  EXPECT_DOUBLE_EQ(mask_tile_fraction(with_mask(1024, AttentionMask::sliding_window, 256), t),
                   42.0 / 128.0);
  // A window as long as the sequence is the causal mask.
  EXPECT_DOUBLE_EQ(mask_tile_fraction(with_mask(1024, AttentionMask::sliding_window, 1024), t),
                   mask_tile_fraction(with_mask(1024, AttentionMask::causal), t));
}

TEST(AttentionMask, DocumentsAreCausalEachOnItsOwn) {
  // s = 1024 of four 256-token documents, tiles 128 x 64: each document is a causal
  // 256 x 256 matrix of 2 query tiles computing 2 + 4 = 6 tiles; 4 * 6 = 24 of 128.
  const AttentionTile t{128, 64};
  EXPECT_DOUBLE_EQ(mask_tile_fraction(with_mask(1024, AttentionMask::document, 256), t),
                   24.0 / 128.0);
  // s = 1000 of 300-token documents: three whole ones of 11 tiles each (as the causal
  // s = 300 above) and a 100-token rest (one tile row ending at 99: key tiles 0..1, 2).
  // (33 + 2) of the 8 x 16 = 128 tiles of the 1000 x 1000 grid.
  EXPECT_DOUBLE_EQ(mask_tile_fraction(with_mask(1000, AttentionMask::document, 300), t),
                   35.0 / 128.0);
}

// Llama 3 8B (head width 128) at s = 8192 on one H100, the whole sequence on one rank.
// FlashAttention-2's kernel unless `training` names one (Megatron-Core's default on an H100
// is cuDNN's: CudnnRateBySequenceAndMaskByHand).
Scenario llama8b(const std::string& mask, const std::string& parallel = "tp: 1, global_batch: 8",
                 std::string training = "") {
  if (training.find("attention:") == std::string::npos && training.find("flash_attention") == std::string::npos)
    training = "stack: {attention: flash2}" + (training.empty() ? "" : ", " + training);
  return load_scenario_text(
      "cluster: {preset: dgx-h100, nodes: 1}\n"
      "model: {preset: llama3-8b, " +
          mask +
          "}\n"
          "parallelism: {" +
          parallel + "}\n" + (training.empty() ? std::string() : "training: {" + training + "}\n"),
      "test.yaml");
}

TEST(AttentionMask, CausalAttentionTakesAboutHalfTheTimeOfFull) {
  const Scenario causal = llama8b("attention_mask: causal");
  const Scenario full = llama8b("attention_mask: full");
  const Op c = core_of(build_workload(causal.model, causal.training, shard_of(causal.parallelism)));
  const Op f = core_of(build_workload(full.model, full.training, shard_of(full.parallelism)));
  const auto model = make_roofline_model(causal);
  const auto full_model = make_roofline_model(full);
  // The same FLOP count (the full product, the MFU convention); the causal kernel runs
  // 65/128 of the tiles (1/2 + 1/128 for the diagonal, CausalCountsTheDiagonalTilesWhole),
  // at the causal rate's share of the full one at 8k (flash_shape_factor: 308 x 130/128
  // / 335 = 0.93377, the full mask 1).
  EXPECT_EQ(c.fwd_flops, f.fwd_flops);
  EXPECT_EQ(c.fwd_flops_useful, f.fwd_flops_useful);
  const double slower = (308.0 * 130.0 / 128.0) / 335.0;
  for (Pass pass : {Pass::forward, Pass::backward}) {
    const double ratio = model->op_time(c, pass).value() / full_model->op_time(f, pass).value();
    EXPECT_NEAR(ratio, 65.0 / 128.0 / slower, 1e-12);
  }
  // Measured on H100, head width 128, s = 8192 (Dao-AILab/flash-attention pull request
  // 1791, its benchmark_attn.py run on main; not the paper's figure the factor comes
  // from): causal over non-causal time, forward plus backward, FlashAttention-2
  // (1.935 + 4.788) / (2.972 + 9.460) = 0.541. The tile count alone, 0.508, left 6.5 % of
  // it out; with the causal rate 0.508 / 0.93377 = 0.5439, within 1 %. (FlashAttention-3,
  // 0.522 in the same run, is not the kernel these rates describe.)
  const double t =
      (model->op_time(c, Pass::forward) + model->op_time(c, Pass::backward)).value() /
      (full_model->op_time(f, Pass::forward) + full_model->op_time(f, Pass::backward)).value();
  EXPECT_NEAR(t / 0.541, 1.0, 0.01);
}

// flash_shape_factor, derived by hand from the FlashAttention-2 paper's H100 figures
// (head dimension 128, calibrate/compute_model.h). Causal shares at the paper's 128 x 64
// tile: s = 4096, 32 query tiles, row m computes 2m + 2 key tiles: 1056 of 32 x 64 = 2048,
// 33/64; s = 2048: 272 of 512, 17/32; s = 256: 6 of 8, 3/4.
// cuDNN's fused attention (training.stack.attention cudnn, Megatron-Core's default on an
// H100): its own curve, measured on an H200 (calibrate/data/h200-20261204: 16 heads x 128,
// forward + backward TFLOP/s, the mean of two runs: full 335.8 452.45 538.8 568.55 550.35
// 556.95, causal 203.0 314.25 411.8 490.0 509.4 534.3 at 512 .. 16k), over its own 8k
// unmasked 550.35, the same tile shares as FlashAttention-2's. Full 4k: 568.55 / 550.35 =
// 1.033070; causal 4k: 490.0 x 2 x 33/64 / 550.35 = 0.918166; causal 2k: 411.8 x 2 x
// 17/32 / 550.35 = 0.795017; causal 8k: 509.4 x 2 x 65/128 / 550.35 = 0.940055.
TEST(AttentionMask, CudnnRateBySequenceAndMaskByHand) {
  auto factor = [](const std::string& model) {
    return flash_shape_factor(llama8b(model, "tp: 1, global_batch: 8", "stack: {attention: cudnn}"));
  };
  EXPECT_EQ(llama8b("attention_mask: causal", "tp: 1, global_batch: 8", "precision: bf16")
                .training.stack.attention,
            StackSpec::AttentionKernel::flash2);  // the helper's default
  EXPECT_EQ(load_scenario_text("cluster: {preset: dgx-h100}\nmodel: {preset: llama3-8b}\n"
                               "parallelism: {tp: 1, global_batch: 8}\n",
                               "t.yaml")
                .training.stack.attention,
            StackSpec::AttentionKernel::cudnn);
  EXPECT_NEAR(factor("attention_mask: full"), 1.0, 1e-12);
  EXPECT_NEAR(factor("seq_len: 4096, attention_mask: full"), 1.033070, 1e-6);
  EXPECT_NEAR(factor("seq_len: 4096, attention_mask: causal"), 0.918166, 1e-6);
  EXPECT_NEAR(factor("seq_len: 2048, attention_mask: causal"), 0.795017, 1e-6);
  EXPECT_NEAR(factor("attention_mask: causal"), 0.940055, 1e-6);
}

TEST(AttentionMask, FlashRateBySequenceAndMaskByHand) {
  auto factor = [](const std::string& model, const std::string& training = "") {
    return flash_shape_factor(llama8b(model, "tp: 1, global_batch: 8", training));
  };
  constexpr double kTol = 1e-9;
  // The presets' shape: 8k unmasked.
  EXPECT_NEAR(factor("attention_mask: full"), 1.0, kTol);
  // FlashAttention-2 full 4k: 326 / 335; causal 4k: 294 x 2 x 33/64 / 335 = 0.905037.
  EXPECT_NEAR(factor("seq_len: 4096, attention_mask: full"), 326.0 / 335.0, kTol);
  EXPECT_NEAR(factor("seq_len: 4096, attention_mask: causal"), 294.0 * 66.0 / 64.0 / 335.0, kTol);
  EXPECT_NEAR(factor("seq_len: 4096, attention_mask: causal"), 0.905037, 1e-6);
  // Between measured lengths, linear in log2(s): 6144 is 0.58496 of the way from 4k to
  // 8k, 326 + 0.58496 x 9 = 331.2646 TFLOP/s, / 335 = 0.988850.
  EXPECT_NEAR(factor("seq_len: 6144, attention_mask: full"), 0.988850, 1e-6);
  // Held at the ends: 16k's 338 beyond it; 512's 163 below it, at s = 256's share 3/4.
  EXPECT_NEAR(factor("seq_len: 32768, attention_mask: full"), 338.0 / 335.0, kTol);
  EXPECT_NEAR(factor("seq_len: 256, attention_mask: causal"), 163.0 * 1.5 / 335.0, kTol);
  // Packed documents of 2048 on s = 8192: the causal figure at 2048, 265 x 2 x 17/32 / 335.
  EXPECT_NEAR(factor("attention_mask: document, document_length: 2048"),
              265.0 * 34.0 / 32.0 / 335.0, kTol);
  // The first FlashAttention's own curve: causal 2k 108 x 2 x 17/32 / 137 = 0.837591.
  EXPECT_NEAR(factor("seq_len: 2048, attention_mask: causal", "stack: {attention: flash1}"),
              108.0 * 34.0 / 32.0 / 137.0, kTol);
  // Not measured: a sliding window.
  EXPECT_EQ(factor("attention_mask: sliding-window, attention_window: 4096"), 1.0);
}

// Ring attention's steps, each at its own shape (Transformer Engine's
// AttnFuncWithCPAndKVP2P, calibrate/compute_model.h), by hand in 128 x 64 tiles (8192
// elements). cp = 2, s = 8192, causal: chunks of c = 2048, a rank holds 4096 tokens.
//   step 0, a causal 4096 x 4096 square: 1056 tiles (32 query tiles, row m 2m + 2),
//     at the causal factor at 4k, 294 x 2 x 33/64 / 335 = 0.905037: 1166.8027 tile-units;
//   step 1, an unmasked half, q 4096 x kv 2048 on one rank and 2048 x 4096 on the other:
//     2 x 2048^2 / 8192 = 1024 tiles, half at 2k (320/335) and half at 4k (326/335):
//     512 x (335/320 + 335/326) = 512 x (1.046875 + 1.027607) = 1062.1350.
//   2080 tiles (= 65/128 of the rank's 4096 x 8192 product: the whole sequence's causal
//   share, as the op counts them) / 2228.9377 = 0.933180; at cp 1 the same sequence's
//   factor is 308 x 130/128 / 335 = 0.933769: the ring's shorter kernels nearly cancel.
// cp = 4: chunks of 1024, the diagonal 2048 x 2048 causal, 272 tiles at 265 x 2 x 17/32
// / 335; three halves of 2 x 1024^2 = 768 tiles, 384 at 1k (294/335) and 384 at 2k:
// 1040 / (272 x 335 x 32/(265 x 34) + 384 x (335/294 + 335/320)) = 0.894106.
constexpr double kRingFactorCp2 =
    2080.0 / (1056.0 * 335.0 * 64.0 / (294.0 * 66.0) + 512.0 * (335.0 / 320.0 + 335.0 / 326.0));

TEST(AttentionMask, RingAttentionStepsAtTheirOwnShapesByHand) {
  auto factor = [](const std::string& model, const std::string& parallel,
                   const std::string& training = "") {
    return flash_shape_factor(llama8b(model, parallel, training));
  };
  const std::string cp2 = "tp: 1, cp: 2, dp: 4, global_batch: 8";
  EXPECT_NEAR(factor("attention_mask: causal", cp2), 0.933180, 1e-6);
  EXPECT_NEAR(factor("attention_mask: causal", cp2), kRingFactorCp2, 1e-12);
  EXPECT_NEAR(factor("attention_mask: causal", "tp: 1, cp: 4, dp: 2, global_batch: 8"),
              0.894106, 1e-6);
  // Full mask: cp unmasked 4096 x 4096 squares, 326 / 335.
  EXPECT_NEAR(factor("attention_mask: full", cp2), 326.0 / 335.0, 1e-12);
  // The first FlashAttention's curve, cp 2 causal: 2080 / (1056 x 137 x 64/(126 x 66) +
  // 512 x (137/128 + 137/131)) = 0.946811.
  EXPECT_NEAR(factor("attention_mask: causal", cp2, "stack: {attention: flash1}"), 0.946811,
              1e-6);
  // The all-gather variant, cp 2: chunk j = 0..3 (once each over the two ranks) runs its
  // 2048 queries against keys 0 .. (j+1) 2048, bottom-right causal: a causal 2048 corner,
  // 272 tiles at 265 x 2 x 17/32 / 335 = 0.840485, and j x 512 unmasked tiles whose
  // forward loops over (j+1) 2048 keys (326 at 4k; 6k: 326 + log2(1.5) x 9 = 331.2646;
  // 335 at 8k) and backward over 2048 queries (320), weighted 1 : 2.5. 4160 tiles over
  //   4 x 272 / 0.840485 + sum_j j 512 (335 / R_j + 2.5 x 335/320) / 3.5 = 0.929259.
  const double r6k = 326.0 + std::log2(1.5) * 9.0;
  double gather_time = 4 * 272.0 / (265.0 * 34.0 / 32.0 / 335.0);
  const double rate_j[4] = {0, 326.0, r6k, 335.0};
  for (int j = 1; j < 4; ++j)
    gather_time += j * 512.0 * (335.0 / rate_j[j] + 2.5 * 335.0 / 320.0) / 3.5;
  const std::string gather = cp2 + ", cp_comm: all-gather";
  EXPECT_NEAR(factor("attention_mask: causal", gather), 4160.0 / gather_time, 1e-12);
  EXPECT_NEAR(factor("attention_mask: causal", gather), 0.929259, 1e-6);
  // Full mask: 2048 queries against all 8192 keys, 3.5 / (335/335 + 2.5 x 335/320).
  EXPECT_NEAR(factor("attention_mask: full", gather), 3.5 / (1.0 + 2.5 * 335.0 / 320.0), 1e-12);
  // Not on the curves, so 1: packed documents split over the ranks.
  EXPECT_EQ(factor("attention_mask: document, document_length: 2048", cp2), 1.0);
}

// The roofline times a context-parallel rank's fused kernel at the ring's factor: cp 2,
// s = 8192, the rank's F (4096 x 8192 product) x 65/128 / (989.4 TFLOP/s x 0.33 x 0.933180).
// The ring's merge and copy kernels (aux bytes, RingAttentionMergeBytesByHand) stream after the fused
// kernel; they are set aside here.
TEST(AttentionMask, RingAttentionTimedAtTheRingsRate) {
  const Scenario sc = llama8b("attention_mask: causal", "tp: 1, cp: 2, dp: 4, global_batch: 8");
  Op c = core_of(build_workload(sc.model, sc.training, shard_of(sc.parallelism)));
  ASSERT_GT(c.aux_fwd_bytes.value(), 0.0);
  c.aux_fwd_bytes = c.aux_bwd_bytes = Bytes(0);
  const auto model = make_roofline_model(sc);
  const double at_preset = c.fwd_flops.value() * 65.0 / 128.0 / (989.4e12 * 0.33);
  EXPECT_NEAR(model->op_time(c, Pass::forward).value() / at_preset, 1.0 / kRingFactorCp2, 1e-9);
  EXPECT_NEAR(model->op_time(c, Pass::backward).value() / at_preset, 2.5 / kRingFactorCp2, 1e-9);
}

// The roofline times the fused kernel at that rate: at s = 4096 causal the forward takes
// 1 / 0.905037 of what the preset's rate alone gave, F x 33/64 / (989.4 TFLOP/s x 0.33).
TEST(AttentionMask, FusedAttentionTimedAtTheShapesRate) {
  const Scenario sc = llama8b("seq_len: 4096, attention_mask: causal");
  const Op c = core_of(build_workload(sc.model, sc.training, shard_of(sc.parallelism)));
  const auto model = make_roofline_model(sc);
  const double at_preset = c.fwd_flops.value() * 33.0 / 64.0 / (989.4e12 * 0.33);
  EXPECT_NEAR(model->op_time(c, Pass::forward).value() / at_preset, 1.0 / 0.905037, 1e-5);
  EXPECT_NEAR(model->op_time(c, Pass::backward).value() / at_preset, 2.5 / 0.905037, 1e-5);
}

TEST(AttentionMask, ModelAndHardwareFlopsKeepTheFullProduct) {
  // VALIDATION.md: the MFU convention stays; 4*s*h per token and layer whatever the mask.
  for (const char* mask : {"attention_mask: causal", "attention_mask: full",
                           "attention_mask: sliding-window, attention_window: 4096",
                           "attention_mask: document, document_length: 2048"}) {
    const StepFigures f = analyse_step(llama8b(mask));
    const StepFigures ref = analyse_step(llama8b("attention_mask: full"));
    EXPECT_EQ(f.model_flops, ref.model_flops) << mask;
    EXPECT_EQ(f.hardware_flops, ref.hardware_flops) << mask;
  }
}

TEST(AttentionMask, UnfusedAttentionComputesTheWholeProduct) {
  // Megatron-LM's unfused path (baddbmm, masked softmax, bmm) computes every score: the
  // same ops and times under either mask.
  const Scenario causal =
      llama8b("attention_mask: causal", "tp: 1, global_batch: 8", "flash_attention: false");
  const Scenario full =
      llama8b("attention_mask: full", "tp: 1, global_batch: 8", "flash_attention: false");
  const Workload wc = build_workload(causal.model, causal.training, shard_of(causal.parallelism));
  const Workload wf = build_workload(full.model, full.training, shard_of(full.parallelism));
  const auto model = make_roofline_model(causal);
  const Layer& lc = wc.layers[1];
  const Layer& lf = wf.layers[1];
  ASSERT_EQ(lc.ops.size(), lf.ops.size());
  for (size_t i = 0; i < lc.ops.size(); ++i) {
    EXPECT_EQ(lc.ops[i].computed_share, 1.0) << lc.ops[i].name;
    for (Pass pass : {Pass::forward, Pass::backward})
      EXPECT_EQ(model->op_time(lc.ops[i], pass), model->op_time(lf.ops[i], pass)) << lc.ops[i].name;
  }
}

TEST(AttentionMask, ContextParallelRanksShareTheCausalTiles) {
  // Transformer Engine gives cp rank r chunks r and 2cp-1-r of 2cp
  // (AttnFuncWithCPAndKVP2P): with chunks of c tokens, step 0 is a causal 2c x 2c
  // (2c^2 + diagonal), every other step 2c^2 unmasked, so a rank computes 2c^2*cp plus
  // the diagonal's c*rows = (s^2/2 + s*rows/2)/cp: the whole causal count over cp. Each
  // cp = 2 rank's computed FLOPs are half of one rank's without cp.
  const Scenario one = llama8b("attention_mask: causal", "tp: 1, dp: 8, global_batch: 8");
  const Scenario two = llama8b("attention_mask: causal", "tp: 1, cp: 2, dp: 4, global_batch: 8");
  const Op a = core_of(build_workload(one.model, one.training, shard_of(one.parallelism)));
  const Op b = core_of(build_workload(two.model, two.training, shard_of(two.parallelism)));
  EXPECT_DOUBLE_EQ(b.fwd_flops.value() * b.computed_share * 2,
                   a.fwd_flops.value() * a.computed_share);
  // The keys and values still travel whole: each rank holds half of them.
  EXPECT_DOUBLE_EQ(b.kv_elems * 2, a.kv_elems);
}

TEST(AttentionMask, RingAttentionMergeBytesByHand) {
  // Element passes of AttnFuncWithCPAndKVP2P (TE v1.8) per rank, summed by hand over its
  // branches; Q, O, K the rank's Q, O and K + V elements. Copy = 2 passes, add and the
  // forward merge = 3, a half slice copied = 2 passes over half.
  // cp = 2, causal. Forward: zero O (1), merge step 0 whole (3 O); rank 0's step 1 takes
  // the second half of Q (Q) and merges half (1.5 O); rank 1's step 1 the first half of
  // K/V (K) and merges whole (3 O): (5.5 O + Q + 7 O + K) / 2 = 6.25 O + 0.5 Q + 0.5 K.
  // Backward, rank 0: step 0 copies half Q, O, dO (Q + 2 O), copies dK/dV (2 K), cat
  // (2 K), copies half dQ (Q); step 1 (diagonal) adds half and copies half dK/dV (2.5 K),
  // cat (2 K), copies half and adds half dQ (2.5 Q): 4.5 Q + 2 O + 8.5 K. Rank 1: step 0
  // copies half K/V (K), copies half dK/dV (K), cat of the half (K), copies dQ (2 Q);
  // step 1 adds dK/dV (3 K), cat (2 K), adds dQ (3 Q): 5 Q + 8 K. Mean: 4.75 Q + O + 8.25 K.
  // With Q = 10, O = 20, K = 4 and 2 bytes an element: forward 2 (125 + 5 + 2) = 264,
  // backward 2 (47.5 + 20 + 33) = 201.
  const CpMergeBytes two = cp_ring_merge_bytes(2, true, 10, 20, 4, 2);
  EXPECT_NEAR(two.fwd, 264.0, 1e-9);
  EXPECT_NEAR(two.bwd, 201.0, 1e-9);
  // cp = 3, causal (rank 1 runs every branch once). Forward per rank: 7 O + 2 Q,
  // 8.5 O + Q + K, 10 O + 2 K; mean 8.5 O + Q + K. Backward per rank: 7 Q + 4 O + 13.5 K,
  // 7.5 Q + 2 O + 12.5 K, 8 Q + 11.5 K; mean 7.5 Q + 2 O + 12.5 K. One byte an element:
  // forward 170 + 10 + 4 = 184, backward 75 + 40 + 50 = 165.
  const CpMergeBytes three = cp_ring_merge_bytes(3, true, 10, 20, 4, 1);
  EXPECT_NEAR(three.fwd, 184.0, 1e-9);
  EXPECT_NEAR(three.bwd, 165.0, 1e-9);
  // cp = 2 without a mask: no slices; forward O + 2 x 3 O = 7 O = 140; backward copy then
  // add of dQ and dK/dV (5 Q + 5 K) and two cats (4 K): 50 + 36 = 86.
  const CpMergeBytes full = cp_ring_merge_bytes(2, false, 10, 20, 4, 1);
  EXPECT_NEAR(full.fwd, 140.0, 1e-9);
  EXPECT_NEAR(full.bwd, 86.0, 1e-9);
  // No context parallelism, nothing to merge.
  EXPECT_EQ(cp_ring_merge_bytes(1, true, 10, 20, 4, 2).fwd, 0.0);
  EXPECT_EQ(cp_ring_merge_bytes(1, true, 10, 20, 4, 2).bwd, 0.0);
}

TEST(AttentionMask, RingAttentionCarriesItsMergeKernels) {
  // Llama 3 8B, s = 8192, cp = 2: a rank holds 4096 tokens, Q and O 4096 x 4096 =
  // 16,777,216 elements, K + V 4096 x 2 x 1024 = 8,388,608, 2 bytes each. Forward
  // 2 (6.25 x 16,777,216 + 0.5 x 16,777,216 + 0.5 x 8,388,608) = 234,881,024 bytes;
  // backward 2 (4.75 x 16,777,216 + 16,777,216 + 8.25 x 8,388,608) = 331,350,016.
  const Scenario ring = llama8b("attention_mask: causal", "tp: 1, cp: 2, dp: 4, global_batch: 8");
  const Op r = core_of(build_workload(ring.model, ring.training, shard_of(ring.parallelism)));
  EXPECT_DOUBLE_EQ(r.aux_fwd_bytes.value(), 234881024.0);
  EXPECT_DOUBLE_EQ(r.aux_bwd_bytes.value(), 331350016.0);
  // Gathering K and V first leaves no per-step merge; nor does cp = 1.
  const Scenario gather =
      llama8b("attention_mask: causal", "tp: 1, cp: 2, dp: 4, global_batch: 8, cp_comm: all-gather");
  const Op g = core_of(build_workload(gather.model, gather.training, shard_of(gather.parallelism)));
  EXPECT_EQ(g.aux_fwd_bytes.value(), 0.0);
  EXPECT_EQ(g.aux_bwd_bytes.value(), 0.0);
  const Scenario one = llama8b("attention_mask: causal", "tp: 1, dp: 8, global_batch: 8");
  const Op o = core_of(build_workload(one.model, one.training, shard_of(one.parallelism)));
  EXPECT_EQ(o.aux_fwd_bytes.value(), 0.0);
  // The roofline streams them after the fused kernel (itself at the ring's rate,
  // RingAttentionStepsAtTheirOwnShapesByHand): at 3.35 TB/s x 0.87 (H100 preset) the
  // forward adds 234,881,024 / 2.9145e12 = 80.6 us.
  const auto model = make_roofline_model(ring);
  const double plain =
      r.fwd_flops.value() * r.computed_share / (989.4e12 * 0.33 * kRingFactorCp2);
  EXPECT_NEAR(model->op_time(r, Pass::forward).value(), plain + 234881024.0 / (3.35e12 * 0.87),
              1e-9);
}

// training.stack.masked_softmax swapped_check: the check of bigscience-workshop/
// Megatron-DeepSpeed ae6277f5 (megatron/model/fused_softmax.py) with get_batch_per_block
// sized for a key length of `heads` (model/attention_mask.h). By hand, p the power of two
// at or above the heads a rank, warp = min(p, 32), batches per block (128 / warp) x 2
// (p <= 128); causal, the kernel runs where b x heads is a multiple of that:
//   8 heads:  p 8,  warp 8,  16 warps x 2 = 32: b 1 (8), 2 (16) fall back; 4 (32), 8 (64) not;
//   16 heads: p 16, warp 16, 8 x 2 = 16: b 1 (16) runs the kernel;
//   12 heads: p 16, 16: b 4 (48) runs it, b 2 (24) falls back;
//   14 heads: p 16, 16: b 4 (56) falls back (the prequel's 112-head row at tp 8);
//   32 heads: p 32, warp 32, 4 x 2 = 8: b 1 (32) runs it;
//   13 heads: b 2 gives 26, not a multiple of 4: the first condition already fails.
// The other conditions: 16 < sq <= 2048 (a 4096-token sequence falls back); not causal, sq
// a multiple of the batches per block (2048 of 32). The fixed check (NVIDIA/Megatron-LM
// 0d350c8d) sizes the blocks for sk = 2048 (4 a block), so of these shapes only the 13-head
// micro-batch of 2 and the 4096-token sequence would fail it, on the shared conditions;
// fused assumes the kernel, torch always falls back.
TEST(MaskedSoftmax, SwappedCheckFallsBackWhereTheHeadsSizeTheBlocks) {
  using M = StackSpec::MaskedSoftmax;
  const auto swapped = [](std::int64_t b, std::int64_t heads, std::int64_t s = 2048,
                          bool causal = true) {
    return masked_softmax_falls_back(M::swapped_check, b, heads, s, s, causal);
  };
  EXPECT_TRUE(swapped(1, 8));
  EXPECT_TRUE(swapped(2, 8));
  EXPECT_FALSE(swapped(4, 8));
  EXPECT_FALSE(swapped(8, 8));
  EXPECT_FALSE(swapped(1, 16));
  EXPECT_FALSE(swapped(4, 12));
  EXPECT_TRUE(swapped(2, 12));
  EXPECT_TRUE(swapped(4, 14));
  EXPECT_FALSE(swapped(1, 32));
  EXPECT_TRUE(swapped(2, 13));
  EXPECT_TRUE(swapped(4, 8, 4096));
  EXPECT_FALSE(swapped(2, 8, 2048, false));
  for (const std::int64_t b : {1, 2, 4}) {
    EXPECT_FALSE(masked_softmax_falls_back(M::fused, b, 8, 2048, 2048, true));
    EXPECT_TRUE(masked_softmax_falls_back(M::torch, b, 8, 2048, 2048, true));
  }
}

}  // namespace
}  // namespace orrery
