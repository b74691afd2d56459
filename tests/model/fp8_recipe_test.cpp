// The FP8 recipe (training.fp8, docs/model.md "FP8 recipe"): the bytes each scaling mode
// adds to one GEMM's casts, the scaling state and weight cache per GPU, and which GEMMs
// the recipe keeps in 16 bits.
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <utility>

#include "calibrate/compute_model.h"
#include "core/error.h"
#include "model/memory.h"
#include "model/op_builder.h"
#include "model/workload.h"
#include "tests/test_util.h"

namespace orrery {
namespace {

using testing::preset_scenario;

// One linear layer Y[m x n] = X[m x k] W[k x n] built under the recipe, with 4
// micro-batches a step. m = 4096, k = 1024, n = 4096: X has m k = 4,194,304 elements,
// dY m n = 16,777,216, W k n = 4,194,304.
constexpr double kM = 4096, kK = 1024, kN = 4096;

Op fc1(const Fp8Spec& recipe) {
  TrainingSpec t;
  t.precision = Precision::fp8;
  t.fp8 = recipe;
  Shard s;
  s.microbatches = 4;
  const detail::OpBuilder b(t, s);
  return b.gemm("mlp.fc1", kM, kK, kN, kK * kN, kM * kK);
}

// The same layer on a GPU whose fp8 GEMMs take any layout (cluster.gpu.fp8_non_tn_gemm,
// Blackwell); `recipe` empty: the plain fp8 model.
Op fc1_any_layout(const std::optional<Fp8Spec>& recipe, bool any_layout = true) {
  TrainingSpec t;
  t.precision = Precision::fp8;
  t.fp8 = recipe;
  t.fp8_single_copy = any_layout;
  Shard s;
  s.microbatches = 4;
  const detail::OpBuilder b(t, s);
  return b.gemm("mlp.fc1", kM, kK, kN, kK * kN, kM * kK);
}

Fp8Spec scaling(Fp8Spec::Scaling sc) {
  Fp8Spec f;
  f.scaling = sc;
  return f;
}

TEST(Fp8Recipe, DelayedScalingCastBytes) {
  // Forward: cast X (read 2, write fp8 copy and transpose 1 + 1) = 4 m k = 16,777,216;
  // the cached weight cast (read 2, write 1 + 1) once per step, a quarter per
  // micro-batch: 4 k n / 4 = 4,194,304. Total 20,971,520 bytes.
  // Backward: cast dY, 4 m n = 67,108,864.
  const Op op = fc1(scaling(Fp8Spec::Scaling::delayed));
  EXPECT_NEAR(op.aux_fwd_bytes.value(), 20971520.0, 1e-6);
  EXPECT_NEAR(op.aux_bwd_bytes.value(), 67108864.0, 1e-6);
  EXPECT_FALSE(op.high_precision);
}

TEST(Fp8Recipe, CurrentScalingReadsEachTensorOnceMore) {
  // The amax pass reads X (2 m k = 8,388,608 bytes) and, in the weight cast, W
  // (2 k n / 4 micro-batches = 2,097,152): 10,485,760 more forward. Backward reads dY
  // once more: 2 m n = 33,554,432.
  const Op delayed = fc1(scaling(Fp8Spec::Scaling::delayed));
  const Op current = fc1(scaling(Fp8Spec::Scaling::current));
  EXPECT_NEAR((current.aux_fwd_bytes - delayed.aux_fwd_bytes).value(), 10485760.0, 1e-6);
  EXPECT_NEAR((current.aux_bwd_bytes - delayed.aux_bwd_bytes).value(), 33554432.0, 1e-6);
}

TEST(Fp8Recipe, BlockScalesAreWrittenReadAndKept) {
  // DeepSeek-V3 blocks: one fp32 scale per 1x128 tile (4/128 bytes an element) and per
  // 128x128 weight block (4/16384). Forward cast: 4 m k + 2 copies x m k x 4/128 =
  // 16,777,216 + 262,144; weight cast per micro-batch (4 k n + 2 k n 4/16384) / 4 =
  // (16,777,216 + 2,048) / 4 = 4,194,816. Total 21,234,176.
  const Op block = fc1(scaling(Fp8Spec::Scaling::block));
  EXPECT_NEAR(block.aux_fwd_bytes.value(), 21234176.0, 1e-6);
  // The saved fp8 input keeps its tile scales: m k (1 + 4/128) = 4,325,376 bytes.
  EXPECT_NEAR(block.saved.value(), 4325376.0, 1e-6);
  // MX: one E8M0 byte per 32 elements, weights too. Forward: 16,777,216 + 2 m k / 32 =
  // 262,144; weight (4 k n + 2 k n / 32) / 4 = (16,777,216 + 262,144) / 4 = 4,259,840.
  // Total 21,299,200.
  const Op mx = fc1(scaling(Fp8Spec::Scaling::mxfp8));
  EXPECT_NEAR(mx.aux_fwd_bytes.value(), 21299200.0, 1e-6);
  // Neither keeps amax histories.
  EXPECT_EQ(block.fp8_scaling_state.value(), 0.0);
  EXPECT_EQ(mx.fp8_scaling_state.value(), 0.0);
}

TEST(Fp8Recipe, WithoutTheCacheEveryMicroBatchCastsTheWeight) {
  // 4 k n = 16,777,216 bytes per micro-batch instead of a quarter of it: 3/4 of it more,
  // 12,582,912; and no fp8 copy is kept.
  Fp8Spec off;
  off.weight_cache = false;
  const Op cached = fc1(Fp8Spec{});
  const Op uncached = fc1(off);
  EXPECT_NEAR((uncached.aux_fwd_bytes - cached.aux_fwd_bytes).value(), 12582912.0, 1e-6);
  EXPECT_EQ(uncached.fp8_weight_cache.value(), 0.0);
  EXPECT_NEAR(cached.fp8_weight_cache.value(), 2.0 * kK * kN, 1e-6);
}

TEST(Fp8Recipe, Fp8WeightsAreTransposedNotCastEachPass) {
  // Current scaling, no cache: each micro-batch's forward casts W, read 2 + amax read 2,
  // write copy and transpose 1 + 1 = 6 k n = 25,165,824 bytes. Weights kept in fp8
  // (Megatron-FSDP's fp8 parameters) only transpose the fp8 data, read 1 + write 1 =
  // 2 k n = 8,388,608 bytes, in the forward and again in the backward: forward 4 k n =
  // 16,777,216 fewer, backward 8,388,608 more. The input and output-gradient casts stay.
  Fp8Spec uncached = scaling(Fp8Spec::Scaling::current);
  uncached.weight_cache = false;
  Fp8Spec fp8w = uncached;
  fp8w.fp8_weights = true;
  const Op cast = fc1(uncached), kept = fc1(fp8w);
  EXPECT_NEAR((cast.aux_fwd_bytes - kept.aux_fwd_bytes).value(), 16777216.0, 1e-6);
  EXPECT_NEAR((kept.aux_bwd_bytes - cast.aux_bwd_bytes).value(), 8388608.0, 1e-6);
  EXPECT_EQ(kept.fp8_weight_cache.value(), 0.0);
  // On a GPU whose fp8 GEMMs take any layout there is no transpose: the cast writes one
  // copy, 5 k n = 20,971,520 bytes, and the fp8 weights cost nothing a micro-batch.
  const Op cast_any = fc1_any_layout(uncached), kept_any = fc1_any_layout(fp8w);
  EXPECT_NEAR((cast_any.aux_fwd_bytes - kept_any.aux_fwd_bytes).value(), 20971520.0, 1e-6);
  EXPECT_NEAR((kept_any.aux_bwd_bytes - cast_any.aux_bwd_bytes).value(), 0.0, 1e-6);
}

TEST(Fp8Recipe, GemmsOutsideTheListRunInSixteenBits) {
  // fc2 is not in the list: no casts, the 2-byte input kept, the 16-bit rate.
  Fp8Spec f;
  f.gemms = kFp8Fc1;
  TrainingSpec t;
  t.precision = Precision::fp8;
  t.fp8 = f;
  const detail::OpBuilder b(t, Shard{});
  const Op kept = b.gemm("mlp.fc2", kM, kN, kK, kN * kK, kM * kN);
  EXPECT_TRUE(kept.high_precision);
  EXPECT_EQ(kept.aux_fwd_bytes.value(), 0.0);
  EXPECT_NEAR(kept.saved.value(), 2.0 * kM * kN, 1e-6);
  EXPECT_FALSE(b.gemm("mlp.fc1", kM, kK, kN, kK * kN, kM * kK).high_precision);
}

// Llama 3 8B on one DGX H100, tp 1, pp 1, dp 8, fp8 with a recipe.
Scenario llama8b(const std::string& fp8, const std::string& parallelism = "") {
  return preset_scenario("llama3-8b",
                         "tp: 1, pp: 1, dp: 8, microbatch: 1, global_batch: 32" + parallelism, 1,
                         "precision: fp8, fp8: {" + fp8 + "}", "dgx-h100");
}

TEST(Fp8Recipe, Fp8AllGathersCastTheLocalShard) {
  // tp 8 with sequence parallelism, fp8 all-gathers: attn.qkv casts its 1/8 shard of the
  // input before gathering it. Its input X is b s x h = 8192 x 4096; the cast reads 2 and
  // writes 1 + 1 bytes an element, so 4 x 8192 x 4096 x (1 - 1/8) = 117,440,512 bytes
  // fewer. attn.proj's input is not gathered: unchanged.
  auto qkv_and_proj = [](const std::string& allgather) {
    const Scenario s = preset_scenario(
        "llama3-8b", "tp: 8, sequence_parallel: true, dp: 1, microbatch: 1, global_batch: 2", 1,
        "precision: fp8, fp8: {communication: {tp_allgather: " + allgather + "}}", "dgx-h100");
    const Workload w = build_workload(s.model, s.training, shard_of(s.parallelism));
    std::pair<double, double> out;
    for (const Op& op : w.layers[1].ops) {
      if (op.name == "attn.qkv") out.first = op.aux_fwd_bytes.value();
      if (op.name == "attn.proj") out.second = op.aux_fwd_bytes.value();
    }
    return out;
  };
  const auto bf16 = qkv_and_proj("bf16"), fp8 = qkv_and_proj("fp8");
  EXPECT_NEAR(bf16.first - fp8.first, 117440512.0, 1e-3);
  EXPECT_EQ(bf16.second, fp8.second);
}

TEST(Fp8Recipe, AmaxHistoryMemoryPerGpu) {
  // 32 layers x 4 fp8 GEMMs (qkv, proj, fc1, fc2) = 128 GEMMs (the LM head stays bf16 by
  // default, as in Megatron-Core), each tracking X, W and dY: 3 x (4 bytes x 1024 steps +
  // 4 scale + 4 inverse scale) = 12,312 bytes; 128 x 12,312 = 1,575,936 bytes. With a
  // 16-step history 3 x 72 = 216 bytes a GEMM: 27,648.
  const MemoryReport r = estimate_memory(llama8b(""));
  EXPECT_NEAR(r.stages[0].fp8_scaling_state.value(), 1575936.0, 1e-6);
  const MemoryReport short_history = estimate_memory(llama8b("amax_history: 16"));
  EXPECT_NEAR(short_history.stages[0].fp8_scaling_state.value(), 27648.0, 1e-6);
  // Both sit in `other`, beyond the plain fp8 model's (the allocator's simulated waste,
  // also in `other`, differs with the sequence and is left out of the comparison).
  const MemoryReport plain = estimate_memory(
      preset_scenario("llama3-8b", "tp: 1, pp: 1, dp: 8, microbatch: 1, global_batch: 32", 1,
                      "precision: fp8", "dgx-h100"));
  auto other = [](const StageMemory& st) { return st.memory.other - st.allocator_overhead; };
  EXPECT_NEAR((other(r.stages[0]) - other(plain.stages[0])).value(),
              1575936.0 + r.stages[0].fp8_weight_cache.value(), 1.0);
}

TEST(Fp8Recipe, WeightCacheIsTwoBytesPerLocalFp8Parameter) {
  // Per layer: qkv 4096 x (4096 + 2 x 1024) = 25,165,824; proj 4096^2 = 16,777,216;
  // fc1 4096 x 2 x 14336 = 117,440,512; fc2 14336 x 4096 = 58,720,256: 218,103,808,
  // x 32 = 6,979,321,856 parameters x 2 bytes (fp8 copy + transpose) = 13,958,643,712
  // bytes. With gemms: all the head's 4096 x 128,256 = 525,336,576 join them:
  // 7,504,658,432 x 2 = 15,009,316,864.
  const MemoryReport r = estimate_memory(llama8b(""));
  EXPECT_NEAR(r.stages[0].fp8_weight_cache.value(), 13958643712.0, 1.0);
  EXPECT_NEAR(estimate_memory(llama8b("gemms: all")).stages[0].fp8_weight_cache.value(),
              15009316864.0, 1.0);
  // With tp 2 each GPU holds half the GEMM weights: 6,979,321,856 bytes.
  const MemoryReport tp2 = estimate_memory(preset_scenario(
      "llama3-8b", "tp: 2, pp: 1, dp: 4, microbatch: 1, global_batch: 32", 1,
      "precision: fp8, fp8: {}", "dgx-h100"));
  EXPECT_NEAR(tp2.stages[0].fp8_weight_cache.value(), 6979321856.0, 1.0);
  // No cache under ZeRO-3 (the default there).
  const MemoryReport z3 = estimate_memory(llama8b("", ", zero_stage: 3"));
  EXPECT_EQ(z3.stages[0].fp8_weight_cache.value(), 0.0);
}

TEST(Fp8Recipe, Fp8ParameterGathersShrinkZero3GatherBuffers) {
  // Without resharding every gathered weight stays: Llama 3 8B's 8,030,261,248
  // parameters x 2 bytes = 16,060,522,496 in bf16. In fp8 the 6,979,321,856 fp8 GEMM
  // weights take 1 byte: 16,060,522,496 - 6,979,321,856 = 9,081,200,640 (the embedding,
  // the bf16 head and the norms stay 2 bytes). FSDP2, as torchao's fp8 all-gather runs
  // (DeepSpeed would add its reduce bucket to these buffers).
  const std::string z3 = ", fsdp: {implementation: fsdp2}, reshard_after_forward: false";
  const MemoryReport bf16 = estimate_memory(llama8b("weight_cache: false", z3));
  const MemoryReport fp8 =
      estimate_memory(llama8b("weight_cache: false, communication: {param_allgather: fp8}", z3));
  EXPECT_NEAR(bf16.stages[0].gather_buffers.value(), 16060522496.0, 1.0);
  EXPECT_NEAR(fp8.stages[0].gather_buffers.value(), 9081200640.0, 1.0);
}

TEST(Fp8Recipe, OnlyMegatronFsdpFp8GathersKeepTheWeightsInFp8) {
  // Megatron-FSDP's fp8 parameter gathers gather the model's own fp8 weights
  // (fp8_param_gather); FSDP2's fp8 gathers cast a bf16 shard (torchao), bf16 gathers
  // gather bf16 weights, and block-scaled weights are not Float8Tensors.
  const std::string mfsdp = ", fsdp: {implementation: megatron_fsdp}";
  const std::string gather = "communication: {param_allgather: fp8}";
  EXPECT_TRUE(llama8b("scaling: current, " + gather, mfsdp).training.fp8->fp8_weights);
  EXPECT_TRUE(llama8b("scaling: delayed, " + gather, mfsdp).training.fp8->fp8_weights);
  EXPECT_FALSE(llama8b("scaling: current", mfsdp).training.fp8->fp8_weights);
  EXPECT_FALSE(llama8b("scaling: block, " + gather, mfsdp).training.fp8->fp8_weights);
  EXPECT_FALSE(llama8b("scaling: current, " + gather, ", fsdp: {implementation: fsdp2}")
                   .training.fp8->fp8_weights);
}

TEST(Fp8Recipe, Fp8WeightsTakeOneByteInMemory) {
  // Megatron-FSDP over 8 GPUs, weights sharded 8 ways. Llama 3 8B: 8,030,261,248
  // parameters, of them 6,979,321,856 in fp8 GEMMs (WeightCacheIsTwoBytesPerLocalFp8Parameter).
  // bf16 gathers: 8,030,261,248 x 2 / 8 = 2,007,565,312 bytes of weights. fp8 gathers keep
  // the fp8 GEMMs' weights in fp8: (8,030,261,248 - 6,979,321,856) x 2 / 8 + 6,979,321,856
  // x 1 / 8 = 262,734,848 + 872,415,232 = 1,135,150,080.
  const std::string mfsdp = ", fsdp: {implementation: megatron_fsdp}";
  const MemoryReport bf16 = estimate_memory(llama8b("scaling: current", mfsdp));
  const MemoryReport fp8 =
      estimate_memory(llama8b("scaling: current, communication: {param_allgather: fp8}", mfsdp));
  EXPECT_NEAR(bf16.stages[0].memory.weights.value(), 2007565312.0, 1.0);
  EXPECT_NEAR(fp8.stages[0].memory.weights.value(), 1135150080.0, 1.0);
}

TEST(Fp8Recipe, DistributedOptimizerFp8GathersKeepTheWeightsAndTheirTranspose) {
  // Megatron-Core's distributed optimizer with --fp8-param-gather (zero_stage 1, the
  // megatron-core stack): the weights stay whole between steps, so TE's transpose of the
  // fp8 weight is made once a step and kept. fc1 (k n = 4,194,304), 4 micro-batches: the
  // forward pays 2 k n / 4 = 2,097,152 bytes a micro-batch, the backward nothing, and the
  // kept transpose holds k n = 4,194,304 bytes.
  Fp8Spec kept = scaling(Fp8Spec::Scaling::current);
  kept.fp8_weights = true;
  kept.fp8_transpose_kept = true;
  Fp8Spec released = kept;
  released.fp8_transpose_kept = false;
  const Op a = fc1(kept), b = fc1(released);
  EXPECT_NEAR((b.aux_fwd_bytes - a.aux_fwd_bytes).value(), 2.0 * kK * kN - 2.0 * kK * kN / 4,
              1e-6);
  EXPECT_NEAR((b.aux_bwd_bytes - a.aux_bwd_bytes).value(), 2.0 * kK * kN, 1e-6);
  EXPECT_NEAR(a.fp8_weight_cache.value(), kK * kN, 1e-6);
  // The resolved flags, and memory on Llama 3 8B (dp 8, zero_stage 1: weights not sharded):
  // bf16 weights 8,030,261,248 x 2 = 16,060,522,496 bytes with a cache of the fp8 copy and
  // transpose, 6,979,321,856 x 2 = 13,958,643,712; fp8 gathers keep the 6,979,321,856 fp8
  // GEMM weights at 1 byte, (8,030,261,248 - 6,979,321,856) x 2 + 6,979,321,856 =
  // 9,081,200,640, and their transpose, 6,979,321,856.
  const std::string gather = "scaling: current, communication: {param_allgather: fp8}";
  const Scenario s = llama8b(gather, ", zero_stage: 1");
  EXPECT_TRUE(s.training.fp8->fp8_weights);
  EXPECT_TRUE(s.training.fp8->fp8_transpose_kept);
  const MemoryReport bf16 = estimate_memory(llama8b("scaling: current", ", zero_stage: 1"));
  const MemoryReport fp8 = estimate_memory(s);
  EXPECT_NEAR(bf16.stages[0].memory.weights.value(), 16060522496.0, 1.0);
  EXPECT_NEAR(bf16.stages[0].fp8_weight_cache.value(), 13958643712.0, 1.0);
  EXPECT_NEAR(fp8.stages[0].memory.weights.value(), 9081200640.0, 1.0);
  EXPECT_NEAR(fp8.stages[0].fp8_weight_cache.value(), 6979321856.0, 1.0);
  // Megatron-FSDP releases the transpose after each unit; other stacks' ZeRO-1 has no fp8
  // parameter gather.
  EXPECT_FALSE(llama8b(gather, ", fsdp: {implementation: megatron_fsdp}")
                   .training.fp8->fp8_transpose_kept);
  EXPECT_THROW(preset_scenario("llama3-8b", "dp: 8, global_batch: 32, zero_stage: 1", 1,
                               "stack: {preset: fsdp2}, precision: fp8, fp8: {" + gather + "}",
                               "dgx-h100"),
               InputError);
}

TEST(Fp8Recipe, Mxfp8WeightsKeptInFp8AreTheirTwoScaledCopies) {
  // MXFP8 under Megatron-Core's distributed optimizer with --fp8-param-gather (weights:
  // fp8): the weights are MXFP8 tensors, requantized once a step from the bf16 gather, so
  // the op casts the same bytes as the weight cache (read 2, write 2 + 2/32 an element,
  // a quarter of it on each of 4 micro-batches) and keeps no cache beside them.
  Fp8Spec cached = scaling(Fp8Spec::Scaling::mxfp8);
  Fp8Spec kept = cached;
  kept.fp8_weights = true;
  const Op a = fc1(cached), b = fc1(kept);
  EXPECT_NEAR(b.aux_fwd_bytes.value(), a.aux_fwd_bytes.value(), 1e-6);
  EXPECT_NEAR(b.aux_bwd_bytes.value(), a.aux_bwd_bytes.value(), 1e-6);
  EXPECT_NEAR(a.fp8_weight_cache.value(), kK * kN * (2.0 + 2.0 / 32), 1e-6);
  EXPECT_NEAR(b.fp8_weight_cache.value(), 0.0, 1e-6);
  EXPECT_DOUBLE_EQ(fp8_kept_weight_bytes(Fp8Spec::Scaling::mxfp8), 2.0625);
  EXPECT_DOUBLE_EQ(fp8_kept_weight_bytes(Fp8Spec::Scaling::current), 1.0);
  // Llama 3 8B on a DGX B200, dp 8, zero_stage 1 (weights not sharded): 8,030,261,248
  // parameters, 6,979,321,856 of them fp8 GEMM weights. Kept in bf16 the weights take
  // 16,060,522,496 bytes beside a cache of 6,979,321,856 x 2.0625 = 14,394,851,328; kept
  // in MXFP8 they take (8,030,261,248 - 6,979,321,856) x 2 + 14,394,851,328 =
  // 16,496,730,112 and no cache: 13,958,643,712 bytes (2 a GEMM weight) fewer.
  auto b200 = [](const std::string& fp8, const std::string& sharding = ", zero_stage: 1") {
    return preset_scenario("llama3-8b",
                           "tp: 1, pp: 1, dp: 8, microbatch: 1, global_batch: 32" + sharding, 1,
                           "precision: fp8, fp8: {" + fp8 + "}", "dgx-b200");
  };
  const Scenario s = b200("scaling: mxfp8, weights: fp8");
  EXPECT_TRUE(s.training.fp8->fp8_weights);
  EXPECT_FALSE(s.training.fp8->fp8_transpose_kept);
  EXPECT_FALSE(s.training.fp8->param_allgather_fp8);
  const MemoryReport bf16 = estimate_memory(b200("scaling: mxfp8"));
  const MemoryReport fp8 = estimate_memory(s);
  EXPECT_NEAR(bf16.stages[0].memory.weights.value(), 16060522496.0, 1.0);
  EXPECT_NEAR(bf16.stages[0].fp8_weight_cache.value(), 14394851328.0, 1.0);
  EXPECT_NEAR(fp8.stages[0].memory.weights.value(), 16496730112.0, 1.0);
  EXPECT_NEAR(fp8.stages[0].fp8_weight_cache.value(), 0.0, 1.0);
  EXPECT_NEAR(bf16.stages[0].memory.total().value() - fp8.stages[0].memory.total().value(),
              13958643712.0,
              0.02 * 13958643712.0);  // the allocator's waste follows the tensors
  // Where no implementation keeps such weights, the key is refused; so is a contradiction
  // of Megatron's one --fp8-param-gather switch under per-tensor scaling.
  EXPECT_FALSE(b200("scaling: mxfp8").training.fp8->fp8_weights);
  EXPECT_THROW(b200("scaling: current, weights: fp8"), InputError);
  EXPECT_THROW(b200("scaling: block, weights: fp8"), InputError);
  EXPECT_THROW(b200("scaling: mxfp8, weights: fp8", ", fsdp: {implementation: megatron_fsdp}"),
               InputError);
  EXPECT_THROW(b200("scaling: current, weights: bf16, communication: {param_allgather: fp8}"),
               InputError);
  EXPECT_THROW(b200("scaling: mxfp8, weights: fp8, weight_cache: false"), InputError);
  // Only Megatron-Core's own buffers at zero_stage 1: not ZeRO-2, not NeMo 1.x's Apex
  // optimizer (which refuses MXFP8 parameters), not beside the optimizer-step overlap
  // (OptimizerConfig refuses it with the reused buffer).
  EXPECT_NO_THROW(b200("scaling: mxfp8, weights: fp8", ", zero_stage: 1"));
  EXPECT_THROW(b200("scaling: mxfp8, weights: fp8", ", zero_stage: 2"), InputError);
  auto with_training = [](const std::string& training) {
    return preset_scenario("llama3-8b",
                           "tp: 1, pp: 2, dp: 4, microbatch: 1, global_batch: 32, zero_stage: 1, "
                           "virtual_pipeline_stages: 2",
                           1, "precision: fp8, fp8: {scaling: mxfp8, weights: fp8}" + training,
                           "dgx-b200");
  };
  EXPECT_NO_THROW(with_training(", stack: nemo"));
  EXPECT_THROW(with_training(", stack: nemo, grad_buckets: apex-distributed-adam"), InputError);
  EXPECT_THROW(with_training(", overlap_param_gather: true, "
                             "overlap_param_gather_with_optimizer_step: true"),
               InputError);
  EXPECT_THROW(with_training(", main_params_dtype: none"), InputError);
  EXPECT_TRUE(b200("scaling: current, weights: fp8, communication: {param_allgather: fp8}")
                  .training.fp8->fp8_weights);
}

TEST(Fp8Recipe, FirstAndLastBf16LayersRunAtTheSixteenBitRate) {
  // bf16_layers {first: 1, last: 2}: layer.0, layer.30 and layer.31 keep every GEMM in
  // 16 bits; their fc1 takes exactly the time of a bf16 run's fc1 (same FLOPs and
  // bytes, the bf16 rate, no casts), and layer.1's fc1 is faster (the fp8 rate, twice
  // the bf16 peak, even with its casts).
  const Scenario s = llama8b("bf16_layers: {first: 1, last: 2}");
  const Workload w = build_workload(s.model, s.training, shard_of(s.parallelism));
  const auto model = make_compute_model(s);
  const Scenario b = preset_scenario("llama3-8b",
                                     "tp: 1, pp: 1, dp: 8, microbatch: 1, global_batch: 32", 1,
                                     "precision: bf16", "dgx-h100");
  const Workload wb = build_workload(b.model, b.training, shard_of(b.parallelism));
  const auto model_b = make_compute_model(b);
  auto fc1_of = [](const Layer& l) {
    for (const Op& op : l.ops)
      if (op.name == "mlp.fc1") return op;
    return Op{};
  };
  // w.layers[0] is the embedding; layer.i is w.layers[i + 1].
  for (int i : {0, 30, 31}) {
    const Layer& l = w.layers[i + 1];
    EXPECT_TRUE(l.high_precision) << l.name;
    const Op op = fc1_of(l);
    EXPECT_TRUE(op.high_precision);
    for (Pass pass : {Pass::forward, Pass::backward}) {
      const double t16 = model_b->op_time(fc1_of(wb.layers[i + 1]), pass).value();
      EXPECT_NEAR(model->op_time(op, pass).value(), t16, 1e-12 * t16) << l.name;
    }
  }
  const Op fp8 = fc1_of(w.layers[2]);
  EXPECT_FALSE(w.layers[2].high_precision);
  EXPECT_FALSE(fp8.high_precision);
  EXPECT_LT(model->op_time(fp8, Pass::forward).value(),
            model->op_time(fc1_of(w.layers[1]), Pass::forward).value());
  // The bf16 layers' inputs are kept in 2 bytes: layer.0 keeps more than layer.1.
  EXPECT_GT(w.layers[1].saved(Recompute::none).value(), w.layers[2].saved(Recompute::none).value());
}

TEST(Fp8Recipe, RowwiseCastBytesFollowTorchaosRoofline) {
  // torchao's kernels (roofline_utils.py), a = 2 bytes, X m k = 4,194,304, dY m n =
  // 16,777,216, W k n = 4,194,304 elements, no weight cache (every micro-batch).
  // rowwise forward: X m k (2a + 1) = 5 x 4,194,304 = 20,971,520; W (a + 1) = 12,582,912;
  // total 33,554,432. Backward: X's transposed copy cast m k (a + 1) = 12,582,912; dY
  // m n (3a + 2) = 8 x 16,777,216 = 134,217,728; W (3a + 1) = 29,360,128; the rescale of
  // both 16-bit gradient outputs 2a (m k + k n) = 4 x 8,388,608 = 33,554,432; total
  // 209,715,200.
  const Op rw = fc1(scaling(Fp8Spec::Scaling::rowwise));
  EXPECT_NEAR(rw.aux_fwd_bytes.value(), 33554432.0, 1e-6);
  EXPECT_NEAR(rw.aux_bwd_bytes.value(), 209715200.0, 1e-6);
  // rowwise_gw_hp forward: X and W once each, 3 m k + 3 k n = 25,165,824; backward dY
  // once 3 m n = 50,331,648 and W once 3 k n = 12,582,912: 62,914,560.
  const Op hp = fc1(scaling(Fp8Spec::Scaling::rowwise_gw_hp));
  EXPECT_NEAR(hp.aux_fwd_bytes.value(), 25165824.0, 1e-6);
  EXPECT_NEAR(hp.aux_bwd_bytes.value(), 62914560.0, 1e-6);
  EXPECT_TRUE(hp.wgrad_high_precision);
  EXPECT_FALSE(rw.wgrad_high_precision);
  // Both keep the 16-bit input for backward (2 m k = 8,388,608 bytes, where tensor-wise
  // keeps the 1-byte copy, 4,194,304), no weight cache and no scaling state.
  for (const Op& op : {rw, hp}) {
    EXPECT_NEAR(op.saved.value(), 8388608.0, 1e-6);
    EXPECT_EQ(op.fp8_weight_cache.value(), 0.0);
    EXPECT_EQ(op.fp8_scaling_state.value(), 0.0);
    EXPECT_FALSE(op.high_precision);
  }
  EXPECT_NEAR(fc1(Fp8Spec{}).saved.value(), 4194304.0, 1e-6);
}

TEST(Fp8Recipe, RowwiseGemmTimeAgainstTensorwise) {
  // One DGX H100 with the GEMM ramp held at 1 (the plateau for every size), so a GEMM
  // takes F / rate. fp8 plateau R8 = 1979 x 0.698 = 1381.342 TFLOP/s, bf16 R16 = 989.4 x
  // 0.698 = 690.6012 TFLOP/s. A GEMM of m 16384, k 8192, n 8192: forward F = 2 m k n =
  // 2,199,023,255,552 FLOP, backward 2 F. The casts are left out (aux bytes zeroed) and
  // the GEMM is compute-bound (its 671 MB at 2.9 TB/s take 0.23 ms).
  //   tensor-wise: forward F / R8 = 1.591947 ms, backward 2 F / R8 = 3.183894 ms;
  //   rowwise:     forward F / (0.95 R8) = 1.675734 ms, backward the same 3.183894 ms
  //                (cuBLAS's tensor-wise kernel, the rescale being an aux pass);
  //   gw_hp:       forward 1.675734 ms, backward F / R8 + F / R16 = 1.591947 + 3.184216
  //                = 4.776163 ms.
  // Split accumulation is left out here (its own test below).
  Scenario s = llama8b("");
  s.cluster.gpu.gemm_ramp = {{Seconds(1e-9), 1.0}, {Seconds(1.0), 1.0}};
  s.cluster.gpu.fp8_split_accumulation.reset();
  const auto model = make_roofline_model(s);
  constexpr double m = 16384, k = 8192, n = 8192;
  auto gemm = [&](Fp8Spec::Scaling sc) {
    TrainingSpec t;
    t.precision = Precision::fp8;
    t.fp8 = scaling(sc);
    t.fp8->weight_cache = false;
    const detail::OpBuilder b(t, Shard{});
    Op op = b.gemm("mlp.fc1", m, k, n, k * n, m * k);
    op.aux_fwd_bytes = op.aux_bwd_bytes = Bytes(0);
    return std::pair(model->op_time(op, Pass::forward).value(),
                     model->op_time(op, Pass::backward).value());
  };
  const auto tw = gemm(Fp8Spec::Scaling::delayed);
  const auto rw = gemm(Fp8Spec::Scaling::rowwise);
  const auto hp = gemm(Fp8Spec::Scaling::rowwise_gw_hp);
  EXPECT_NEAR(tw.first, 1.591947e-3, 1e-9);
  EXPECT_NEAR(tw.second, 3.183894e-3, 1e-9);
  EXPECT_NEAR(rw.first, 1.675734e-3, 1e-9);
  EXPECT_NEAR(rw.second, 3.183894e-3, 1e-9);
  EXPECT_NEAR(hp.first, 1.675734e-3, 1e-9);
  EXPECT_NEAR(hp.second, 4.776163e-3, 1e-9);
}

TEST(Fp8Recipe, SplitAccumulationSlowsTheGradientGemms) {
  // The H100 preset's fp8_split_accumulation a = 0.928 (docs/model.md, "Split accumulation
  // of fp8 GEMMs"), the GEMM and plateaus of the test above (ramp held at 1, casts left
  // out): F / R8 = 1.591947 ms, F / R16 = 3.184216 ms.
  //   delayed:       forward F / R8 = 1.591947 ms (fast accumulation); backward
  //                  2 (F/2) / (a R8) = 3.183894 / 0.928 = 3.430920 ms;
  //   block:         forward split too: 1.591947 / 0.928 = 1.715460 ms, backward 3.430920;
  //   rowwise_gw_hp: forward F / (0.95 R8) = 1.675734 ms (fast accumulation); backward
  //                  the data gradient split, the 16-bit weight gradient not:
  //                  1.715460 + 3.184216 = 4.899676 ms;
  //   a GEMM the recipe keeps in 16 bits: backward 2 F / R16 = 6.368432 ms, untouched.
  Scenario s = llama8b("");
  ASSERT_TRUE(s.cluster.gpu.fp8_split_accumulation.has_value());
  EXPECT_DOUBLE_EQ(*s.cluster.gpu.fp8_split_accumulation, 0.928);
  s.cluster.gpu.gemm_ramp = {{Seconds(1e-9), 1.0}, {Seconds(1.0), 1.0}};
  constexpr double m = 16384, k = 8192, n = 8192;
  auto gemm = [&](Fp8Spec::Scaling sc, bool high_precision = false) {
    Scenario sc_s = s;
    sc_s.training.fp8 = scaling(sc);
    const auto model = make_roofline_model(sc_s);
    TrainingSpec t;
    t.precision = Precision::fp8;
    t.fp8 = scaling(sc);
    t.fp8->weight_cache = false;
    const detail::OpBuilder b(t, Shard{});
    Op op = b.gemm("mlp.fc1", m, k, n, k * n, m * k);
    op.aux_fwd_bytes = op.aux_bwd_bytes = Bytes(0);
    op.high_precision = high_precision;
    return std::pair(model->op_time(op, Pass::forward).value(),
                     model->op_time(op, Pass::backward).value());
  };
  const auto delayed = gemm(Fp8Spec::Scaling::delayed);
  const auto block = gemm(Fp8Spec::Scaling::block);
  const auto hp = gemm(Fp8Spec::Scaling::rowwise_gw_hp);
  const auto kept = gemm(Fp8Spec::Scaling::delayed, true);
  EXPECT_NEAR(delayed.first, 1.591947e-3, 1e-9);
  EXPECT_NEAR(delayed.second, 3.430920e-3, 1e-9);
  EXPECT_NEAR(block.first, 1.715460e-3, 1e-9);
  EXPECT_NEAR(block.second, 3.430920e-3, 1e-9);
  EXPECT_NEAR(hp.first, 1.675734e-3, 1e-9);
  EXPECT_NEAR(hp.second, 4.899676e-3, 1e-9);
  EXPECT_NEAR(kept.second, 6.368432e-3, 1e-9);
  // A Blackwell preset leaves the key unset: no penalty.
  EXPECT_FALSE(preset_scenario("llama3-8b", "tp: 1, pp: 1, dp: 8, microbatch: 1, global_batch: 32",
                               1, "", "dgx-b200")
                   .cluster.gpu.fp8_split_accumulation.has_value());
}

TEST(Fp8Recipe, PerTensorCastsWriteOneCopyWhereGemmsTakeAnyLayout) {
  // On a GPU taking any fp8 layout a per-tensor cast writes one fp8 copy, no transpose.
  // delayed: forward X read 2, write 1: 3 m k = 12,582,912; the cached weight cast
  // 3 k n / 4 micro-batches = 3,145,728; total 15,728,640 (20,971,520 with transposes).
  // Backward dY 3 m n = 50,331,648 (67,108,864). Weight cache k n x 1 = 4,194,304
  // bytes (x 2 = 8,388,608 with the transpose).
  const Op delayed = fc1_any_layout(scaling(Fp8Spec::Scaling::delayed));
  EXPECT_NEAR(delayed.aux_fwd_bytes.value(), 15728640.0, 1e-6);
  EXPECT_NEAR(delayed.aux_bwd_bytes.value(), 50331648.0, 1e-6);
  EXPECT_NEAR(delayed.fp8_weight_cache.value(), 4194304.0, 1e-6);
  EXPECT_NEAR(fc1_any_layout(scaling(Fp8Spec::Scaling::delayed), false).fp8_weight_cache.value(),
              8388608.0, 1e-6);
  // current: the amax pass on top, X 2 m k = 8,388,608 and W 2 k n / 4 = 2,097,152:
  // forward 26,214,400; backward 50,331,648 + 2 m n = 83,886,080.
  const Op current = fc1_any_layout(scaling(Fp8Spec::Scaling::current));
  EXPECT_NEAR(current.aux_fwd_bytes.value(), 26214400.0, 1e-6);
  EXPECT_NEAR(current.aux_bwd_bytes.value(), 83886080.0, 1e-6);
  // The plain fp8 model: X m k (2 + 1) = 12,582,912 forward, dY 3 m n backward.
  const Op plain = fc1_any_layout(std::nullopt);
  EXPECT_NEAR(plain.aux_fwd_bytes.value(), 12582912.0, 1e-6);
  EXPECT_NEAR(plain.aux_bwd_bytes.value(), 50331648.0, 1e-6);
  // A block scale belongs to one axis: MXFP8 and block casts keep both copies anyway.
  for (auto sc : {Fp8Spec::Scaling::mxfp8, Fp8Spec::Scaling::block}) {
    const Op any = fc1_any_layout(scaling(sc));
    const Op tn = fc1_any_layout(scaling(sc), false);
    EXPECT_DOUBLE_EQ(any.aux_fwd_bytes.value(), tn.aux_fwd_bytes.value());
    EXPECT_DOUBLE_EQ(any.aux_bwd_bytes.value(), tn.aux_bwd_bytes.value());
    EXPECT_DOUBLE_EQ(any.fp8_weight_cache.value(), tn.fp8_weight_cache.value());
  }
  // The Blackwell presets set the key; Hopper's do not.
  EXPECT_TRUE(preset_scenario("llama3-8b", "tp: 1, pp: 1, dp: 8, microbatch: 1, global_batch: 32",
                              1, "precision: fp8", "dgx-b200")
                  .training.fp8_single_copy);
  EXPECT_FALSE(llama8b("").training.fp8_single_copy);
}

TEST(Fp8Recipe, Mxfp8GemmsRunAtTheBlockScaledKernelsRate) {
  // B200 (dgx-b200), ramp held at 1, casts left out: fp8 plateau R8 = 4500 x 0.581 =
  // 2614.5 TFLOP/s, no split-accumulation key. m 16384, k 8192, n 8192: F = 2 m k n =
  // 2,199,023,255,552 FLOP; its 671 MB at 8 x 0.87 TB/s take 0.096 ms: compute-bound.
  //   current (tensor-wise): forward F / R8 = 0.841087 ms, backward 2 F / R8 = 1.682175;
  //   mxfp8: forward F / (0.912 R8) = 0.922245 ms, backward 2 F / (0.970 R8) = 1.734201
  //   (kMxfp8FpropRate 2.158 / 2.365, kMxfp8GradRate 4.654 / 4.797: TE's pre-quantized
  //   per-layer kernel times, model/workload.h).
  constexpr double m = 16384, k = 8192, n = 8192;
  auto gemm = [&](const std::string& sc) {
    const Scenario s = preset_scenario(
        "llama3-8b", "tp: 1, pp: 1, dp: 8, microbatch: 1, global_batch: 32", 1,
        "precision: fp8, fp8: {scaling: " + sc + ", weight_cache: false}", "dgx-b200");
    Scenario flat = s;
    flat.cluster.gpu.gemm_ramp = {{Seconds(1e-9), 1.0}, {Seconds(1.0), 1.0}};
    const auto model = make_roofline_model(flat);
    const detail::OpBuilder b(s.training, Shard{});
    Op op = b.gemm("mlp.fc1", m, k, n, k * n, m * k);
    op.aux_fwd_bytes = op.aux_bwd_bytes = Bytes(0);
    return std::pair(model->op_time(op, Pass::forward).value(),
                     model->op_time(op, Pass::backward).value());
  };
  const auto cs = gemm("current");
  const auto mx = gemm("mxfp8");
  EXPECT_NEAR(cs.first, 0.841087e-3, 1e-9);
  EXPECT_NEAR(cs.second, 1.682175e-3, 1e-9);
  EXPECT_NEAR(mx.first, 0.922245e-3, 1e-9);
  EXPECT_NEAR(mx.second, 1.734201e-3, 1e-9);
}

TEST(Fp8Recipe, RowwiseQuantisationTimeIsItsBytesAtHbmRate) {
  // The casts run after the GEMM at HBM x memory_efficiency = 3.35 TB/s x 0.87 = 2.9145
  // TB/s: for fc1 above (m 4096, k 1024, n 4096) rowwise adds 33,554,432 bytes forward
  // = 11.5129 us and 209,715,200 backward = 71.9558 us; tensor-wise delayed with its
  // cached weight 20,971,520 = 7.1956 us and 67,108,864 = 23.0258 us.
  const Scenario s = llama8b("");
  const auto model = make_roofline_model(s);
  auto aux_time = [&](const Op& op, Pass pass) {
    Op bare = op;
    bare.aux_fwd_bytes = bare.aux_bwd_bytes = Bytes(0);
    return model->op_time(op, pass).value() - model->op_time(bare, pass).value();
  };
  const Op rw = fc1(scaling(Fp8Spec::Scaling::rowwise));
  const Op tw = fc1(Fp8Spec{});
  EXPECT_NEAR(aux_time(rw, Pass::forward), 11.5129e-6, 1e-10);
  EXPECT_NEAR(aux_time(rw, Pass::backward), 71.9558e-6, 1e-10);
  EXPECT_NEAR(aux_time(tw, Pass::forward), 7.1956e-6, 1e-10);
  EXPECT_NEAR(aux_time(tw, Pass::backward), 23.0258e-6, 1e-10);
}

TEST(Fp8Recipe, RowwiseKeepsNoPersistentFp8State) {
  // torchao keeps nothing between steps: no weight cache (resolved off), no amax state;
  // a row-wise run's `other` is the plain fp8 model's.
  const Scenario s = llama8b("scaling: rowwise");
  EXPECT_FALSE(s.training.fp8->weight_cache.value_or(true));
  const MemoryReport r = estimate_memory(s);
  EXPECT_EQ(r.stages[0].fp8_weight_cache.value(), 0.0);
  EXPECT_EQ(r.stages[0].fp8_scaling_state.value(), 0.0);
}

}  // namespace
}  // namespace orrery
