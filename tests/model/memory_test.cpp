// Memory per GPU: model state bytes per parameter (Megatron-LM's distributed-optimizer
// table; ZeRO) and the micro-batches each pipeline schedule keeps in flight.
#include "model/memory.h"

#include <gtest/gtest.h>

#include "model/workload.h"
#include "scenario/load.h"
#include "tests/test_util.h"

namespace orrery {
namespace {

using testing::preset_scenario;

// GPT-3 175B on 1024 A100 (128 DGX A100 nodes), TP 8 PP 8 DP 16.
Scenario gpt3(const std::string& extra_parallelism, const std::string& training = "") {
  return preset_scenario("gpt3-175b",
                         "tp: 8, pp: 8, dp: 16, microbatch: 1, global_batch: 1536" +
                             extra_parallelism,
                         128, training);
}

double state_bytes(const StageMemory& st) {
  return (st.memory.weights + st.memory.gradients + st.memory.optimizer).value();
}

TEST(Memory, MixedPrecisionAdamIs18BytesPerParam) {
  // bf16 weights 2 + fp32 main gradients 4 + fp32 master, m, v 12 = 18 (Megatron-LM
  // distributed-optimizer doc, "bf16 params, fp32 grads": 18 non-distributed).
  const MemoryReport r = estimate_memory(gpt3(""));
  for (const StageMemory& st : r.stages) {
    EXPECT_DOUBLE_EQ(state_bytes(st), 18.0 * st.params) << "stage " << st.stage;
  }
}

TEST(Memory, DistributedOptimizerIs6Plus12OverD) {
  // Same table, distributed: 6 + 12/d with d = 16 data-parallel ranks.
  const MemoryReport r = estimate_memory(gpt3(", zero_stage: 1"));
  for (const StageMemory& st : r.stages) {
    EXPECT_DOUBLE_EQ(state_bytes(st), (6.0 + 12.0 / 16) * st.params);
  }
}

TEST(Memory, Fp16GradientsGiveZeroPapers16Bytes) {
  // ZeRO (Rajbhandari et al. 2020) section 3.1: mixed-precision Adam holds 2 + 2 + 12 = 16
  // bytes per parameter; stage 2 shards the last 14, stage 3 all 16.
  const MemoryReport z0 = estimate_memory(gpt3("", "precision: fp16, gradient_dtype: fp16"));
  EXPECT_DOUBLE_EQ(state_bytes(z0.stages[0]), 16.0 * z0.stages[0].params);
  const MemoryReport z2 =
      estimate_memory(gpt3(", zero_stage: 2", "precision: fp16, gradient_dtype: fp16"));
  EXPECT_DOUBLE_EQ(state_bytes(z2.stages[0]), (2.0 + 14.0 / 16) * z2.stages[0].params);
  const MemoryReport z3 =
      estimate_memory(gpt3(", zero_stage: 3", "precision: fp16, gradient_dtype: fp16"));
  EXPECT_DOUBLE_EQ(state_bytes(z3.stages[0]), 16.0 / 16 * z3.stages[0].params);
  EXPECT_GT(z3.stages[0].gather_buffers.value(), 0.0);
}

TEST(Memory, Fp32AdamIs16BytesPerParam) {
  // fp32 weights 4 + gradients 4 + m, v 8; no separate master copy.
  const MemoryReport r = estimate_memory(gpt3("", "precision: fp32"));
  EXPECT_DOUBLE_EQ(state_bytes(r.stages[0]), 16.0 * r.stages[0].params);
}

TEST(Memory, OneFOneBFirstStageHoldsPMicrobatches) {
  // Korthikanti et al. 2022 section 4.2.3: with 1F1B the first stage keeps p
  // micro-batches of its L/p layers, i.e. L layers' worth; stage i keeps p - i.
  const MemoryReport r = estimate_memory(gpt3(""));
  EXPECT_DOUBLE_EQ(r.stages[0].layers_in_flight, 96.0);
  EXPECT_DOUBLE_EQ(r.stages[7].layers_in_flight, 12.0);
  EXPECT_EQ(r.worst_stage, 0);
}

TEST(Memory, InterleavedFirstStageHoldsL_1PlusPMinus1OverPV) {
  // Korthikanti et al. 2022: the interleaved schedule raises the first stage's count to
  // L*(1 + (p-1)/(p*v)) = 96 * (1 + 7/16) = 138 layers for p = 8, v = 2.
  const MemoryReport r = estimate_memory(gpt3(", virtual_pipeline_stages: 2"));
  EXPECT_DOUBLE_EQ(r.stages[0].layers_in_flight, 138.0);
}

TEST(Memory, GPipeHoldsEveryMicrobatch) {
  // m = 1536 / (1 * 16) = 96 micro-batches, 12 layers each.
  const MemoryReport r = estimate_memory(gpt3(", schedule: gpipe"));
  EXPECT_DOUBLE_EQ(r.stages[3].layers_in_flight, 96.0 * 12);
}

TEST(Memory, FewMicrobatchesCapTheInFlightCount) {
  // Global batch 32 = 2 micro-batches per replica: no stage can hold more than 2.
  const MemoryReport r = estimate_memory(
      preset_scenario("gpt3-175b", "tp: 8, pp: 8, dp: 16, global_batch: 32", 128));
  EXPECT_DOUBLE_EQ(r.stages[0].layers_in_flight, 2.0 * 12);
}

TEST(Memory, EmptyStageHoldsWhatItReceived) {
  // An empty stage keeps each received hidden state until its micro-batch's backward
  // (Megatron-Core's input_tensors): 1F1B stage 3 of 8 has 8 - 3 = 5 micro-batches in
  // flight (m = 96), each b s h = 1 x 2048 x 12288 elements in bf16; under sequence
  // parallelism its 1/8 share.
  const std::string layout =
      ", pipeline_layout: \"Et*14|t*14|t*14||t*14|t*14|t*14|t*12L\"";
  const MemoryReport full = estimate_memory(gpt3(layout));
  EXPECT_EQ(full.stages[3].layers, 0);
  EXPECT_DOUBLE_EQ(full.stages[3].layers_in_flight, 0.0);
  EXPECT_DOUBLE_EQ(full.stages[3].memory.activations.value(), 5.0 * 2048 * 12288 * 2);
  const MemoryReport sp = estimate_memory(gpt3(layout + ", sequence_parallel: true"));
  EXPECT_DOUBLE_EQ(sp.stages[3].memory.activations.value(), 5.0 * 2048 * 12288 * 2 / 8);
}

TEST(Memory, TiedEmbeddingCopyOnLastStage) {
  // GPT-3's tied word embedding (51200 x 12288 / tp 8 per rank) is held by the first
  // stage and, for its gradient, copied on the last one (Megatron-LM).
  const MemoryReport r = estimate_memory(gpt3(""));
  const double block = r.stages[3].params;  // a middle stage: 12 layers only
  const double word = 51200.0 * 12288 / 8;
  const double position = 2048.0 * 12288;
  EXPECT_DOUBLE_EQ(r.stages[0].params - block, word + position);
  EXPECT_DOUBLE_EQ(r.stages[7].params - block, word + 2 * 12288);  // + final LayerNorm
}

TEST(Memory, VerdictComparesWithHbm) {
  const MemoryReport fits = estimate_memory(gpt3(", sequence_parallel: true", "recompute: full"));
  EXPECT_TRUE(fits.fits);
  EXPECT_LE(fits.worst().memory.total(), fits.capacity);
  const MemoryReport oom =
      estimate_memory(preset_scenario("gpt3-175b", "tp: 8, pp: 1, global_batch: 8", 1));
  EXPECT_FALSE(oom.fits);
}

TEST(Memory, RuntimeReserveAndAllocatorOverheadAreOther) {
  const MemoryReport r =
      estimate_memory(gpt3("",
                           "runtime_reserve: \"2 GiB\", allocator_overhead: 0.1, recompute: full, "
                           "memory: {allocator: none}"));
  const StageMemory& st = r.stages[0];
  EXPECT_DOUBLE_EQ(st.runtime_reserve.value(), 2.0 * 1073741824.0);
  EXPECT_DOUBLE_EQ(st.allocator_overhead.value(), 0.1 * st.memory.activations.value());
  EXPECT_DOUBLE_EQ(st.memory.other.value(), (st.runtime_reserve + st.cublas_workspace +
                                             st.allocator_overhead + st.gather_buffers)
                                                .value());
  // Given, the runtime reserve replaces the modelled context and NCCL buffers.
  EXPECT_DOUBLE_EQ(st.cuda_context.value(), 0.0);
  EXPECT_DOUBLE_EQ(st.nccl_buffers.value(), 0.0);
}

// allocator_sequence_waste on one op, derived by hand with the caching allocator's rules
// (model/caching_allocator.h; MiB = 1048576 B): a 30 MiB state buffer, then one
// micro-batch through a layer whose op keeps 4 MiB, writes 6 MiB forward and 6 MiB
// backward.
TEST(Memory, AllocatorWasteOfAOneOpSequence) {
  constexpr double MiB = 1048576.0;
  Layer l;
  Op op;
  op.saved = Bytes(4 * MiB);
  op.fwd_written = Bytes(6 * MiB);
  op.bwd_written = Bytes(6 * MiB);
  l.ops.push_back(op);
  const std::vector<Bytes> states = {Bytes(30 * MiB)};
  auto waste = [&](MemorySpec::Allocator a) {
    return allocator_sequence_waste(a, states, {&l}, {}, 1, 1, false, Recompute::none,
                                    kRecomputeCoreAttn)
        .value();
  };
  // Segments: the state takes a 30 MiB segment (>= 10 MiB: rounded to 2 MiB); the kept
  // 4 MiB a new 20 MiB segment (split, rest 16 MiB); the 6 MiB output the 16 MiB rest
  // (split); freed, it merges back, and the 6 MiB gradient takes it again. Reserved 50 MiB,
  // requested at most 30 + 4 + 6 = 40 MiB: 10 MiB wasted.
  EXPECT_DOUBLE_EQ(waste(MemorySpec::Allocator::caching), 10 * MiB);
  // Expandable: the state maps two 20 MiB pages (rest 10 MiB); 4 MiB and 6 MiB fill the
  // rest exactly and the gradient reuses the output's block: 40 MiB for 40 MiB requested.
  EXPECT_DOUBLE_EQ(waste(MemorySpec::Allocator::expandable_segments), 0.0);
  EXPECT_DOUBLE_EQ(waste(MemorySpec::Allocator::none), 0.0);
}

// An op that writes its input in place (Op::in_place: Megatron's masked_fill_ on the
// scores, model/transformer.cpp) takes no block. By hand, the segments allocator after a
// 30 MiB state (its own segment): op 1 writes 6 MiB, taking a new 20 MiB segment (split,
// 14 MiB left); op 2 writes 6 MiB more. Out of place it takes 6 of the 14 while op 1's
// output is still live: requested peak 30 + 12 = 42 MiB of 50 reserved, 8 MiB wasted. In
// place it takes nothing: 36 of 50, 14 MiB wasted. Neither keeps anything; the backward
// writes nothing.
TEST(Memory, AnInPlaceOpTakesNoBlock) {
  constexpr double MiB = 1048576.0;
  auto waste = [&](bool in_place) {
    Layer l;
    Op first, second;
    first.fwd_written = Bytes(6 * MiB);
    second.fwd_written = Bytes(6 * MiB);
    second.in_place = in_place;
    l.ops = {first, second};
    return allocator_sequence_waste(MemorySpec::Allocator::caching, {Bytes(30 * MiB)}, {&l}, {},
                                    1, 1, false, Recompute::none, kRecomputeCoreAttn)
        .value();
  };
  EXPECT_DOUBLE_EQ(waste(false), 8 * MiB);
  EXPECT_DOUBLE_EQ(waste(true), 14 * MiB);
}

// Gathers in the allocation sequence (GatherRequest), by hand with the rules above: three
// layers without ops (E, L, H: the embedding, a transformer layer, the head), a window of
// one gather (prefetch 0), two micro-batches in flight (F0 F1 B0 B1), no states.
//  - All in the window, E 12, L 16, H 14 MiB (each >= 10 MiB: a segment of its own, rounded
//    to 2 MiB). F0: E takes a 12 MiB segment; L a new 16 MiB one, then E is freed; H (14)
//    fits no free block (12): a new 14 MiB one, then L is freed; the forward's end frees H.
//    F1, B0 and B1 find each its own block again (best fit), at most two live: reserved 42
//    MiB, requested at most 16 + 14 = 30: 12 MiB wasted.
//  - FSDP2's output unit held until its backward (H): F0 takes 14 MiB for it beside L; it
//    stays through F1, whose E and L take their blocks again beside it (12 + 16 + 14 = 42
//    requested), is freed after B0's H and taken again by B1's: reserved 42, none wasted.
//  - FSDP1's root held (E and H one flat parameter of 26 MiB on E, 0 on H; the chunk's
//    first forward and last backward take it): F0 takes 26 for it and 16 for L, F1 finds
//    it live, B0 frees it after E, B1's H takes it again: reserved 42, requested 26 + 16:
//    none.
//  - Megatron-FSDP's E and H held for the step: 12 + 14 MiB from F0 on, L beside them: 42
//    of 42, none.
TEST(Memory, HeldGathersStayFromTheirForwardToTheirBackward) {
  constexpr double MiB = 1048576.0;
  using Hold = GatherRequest::Hold;
  const Layer e, l, h;
  auto waste = [&](const std::vector<GatherRequest>& g) {
    return allocator_sequence_waste(MemorySpec::Allocator::caching, {}, {&e, &l, &h}, g, 0, 2,
                                    false, Recompute::none, kRecomputeCoreAttn)
        .value();
  };
  EXPECT_DOUBLE_EQ(waste({{Bytes(12 * MiB)}, {Bytes(16 * MiB)}, {Bytes(14 * MiB)}}), 12 * MiB);
  EXPECT_DOUBLE_EQ(
      waste({{Bytes(12 * MiB)}, {Bytes(16 * MiB)}, {Bytes(14 * MiB), Hold::backward}}), 0.0);
  EXPECT_DOUBLE_EQ(waste({{Bytes(26 * MiB), Hold::backward, 0, -1},
                          {Bytes(16 * MiB)},
                          {Bytes(0), Hold::backward, -1, 0}}),
                   0.0);
  EXPECT_DOUBLE_EQ(
      waste({{Bytes(12 * MiB), Hold::step}, {Bytes(16 * MiB)}, {Bytes(14 * MiB), Hold::step}}),
      0.0);
}

TEST(Memory, AllocatedReservedAndDeviceTotal) {
  const MemoryReport r = estimate_memory(gpt3("", "recompute: full"));
  const StageMemory& st = r.worst();
  // The caching allocator wastes something on a real sequence, and never a negative amount.
  EXPECT_GT(st.allocator_overhead.value(), 0.0);
  EXPECT_DOUBLE_EQ(st.reserved_peak().value(),
                   (st.allocated_peak() + st.allocator_overhead).value());
  EXPECT_DOUBLE_EQ(st.device_total().value(), (st.reserved_peak() + st.runtime_reserve).value());
  // allocator none: the pre-allocator model, reserved = allocated.
  const MemoryReport none = estimate_memory(gpt3("", "recompute: full, memory: {allocator: none}"));
  EXPECT_DOUBLE_EQ(none.worst().allocated_peak().value(), none.worst().reserved_peak().value());
  EXPECT_DOUBLE_EQ(none.worst().allocated_peak().value(), st.allocated_peak().value());
}

// verdict_only (a sweep's decisions): a scenario that fits gets every figure as without it;
// one over capacity before the allocator's waste keeps its verdict and leaves the waste
// out: its total is the full estimate's less exactly the simulated waste.
TEST(Memory, VerdictOnlySkipsTheWasteOfWhatCannotFit) {
  auto with = [](const Scenario& s, bool verdict_only) {
    return estimate_memory(s, build_workload(s.model, s.training, shard_of(s.parallelism)),
                           verdict_only);
  };
  const Scenario fits = gpt3("", "recompute: full");
  const MemoryReport a = with(fits, false), b = with(fits, true);
  ASSERT_TRUE(a.fits);
  EXPECT_TRUE(b.fits);
  ASSERT_EQ(a.stages.size(), b.stages.size());
  for (std::size_t i = 0; i < a.stages.size(); ++i)
    EXPECT_EQ(a.stages[i].memory.total().value(), b.stages[i].memory.total().value()) << i;
  const Scenario oom = preset_scenario("gpt3-175b", "tp: 8, pp: 1, global_batch: 8", 1);
  const MemoryReport full = with(oom, false), verdict = with(oom, true);
  EXPECT_FALSE(full.fits);
  EXPECT_FALSE(verdict.fits);
  const StageMemory& f = full.stages[0];
  const StageMemory& v = verdict.stages[0];
  const double waste =
      (f.allocator_overhead - f.memory.activations * oom.training.allocator_overhead).value();
  EXPECT_GT(waste, 0.0);
  EXPECT_NEAR(v.memory.total().value(), f.memory.total().value() - waste, 1.0);
}

TEST(Memory, NearCapacityIsFlaggedNotDropped) {
  // The margin decides the flag, never the verdict: with the whole capacity as margin
  // (0.5 is the largest allowed, so ask for a fitting split above half of HBM) it is flagged.
  const MemoryReport plain = estimate_memory(gpt3("", "recompute: full"));
  ASSERT_TRUE(plain.fits);
  const double share = plain.worst().device_total().value() / plain.capacity.value();
  ASSERT_GT(share, 0.5);
  const MemoryReport flagged = estimate_memory(gpt3("", "recompute: full, memory: {margin: 0.5}"));
  EXPECT_TRUE(flagged.fits);
  EXPECT_TRUE(flagged.near_capacity);
  const MemoryReport unflagged = estimate_memory(gpt3("", "recompute: full, memory: {margin: 0}"));
  EXPECT_TRUE(unflagged.fits);
  EXPECT_FALSE(unflagged.near_capacity);
}

TEST(Memory, OptimizerStatePrecisionBytesPerParam) {
  // bf16 weights 2 + fp32 main gradients 4, then the optimizer column:
  //   bf16 moments:   fp32 master 4 + m 2 + v 2                       = 8  -> 14
  //   8-bit moments:  4 + 2 x (1 byte + one fp32 absmax per 256 elements: 4/256)
  //                   = 4 + 2.03125                                   = 6.03125 -> 12.03125
  //   fp16 master, fp32 moments: 2 + 8                                = 10 -> 16
  //   no master, bf16 moments: 0 + 4                                  = 4  -> 10
  auto bytes = [](const std::string& training) {
    const MemoryReport r = estimate_memory(gpt3("", training));
    return state_bytes(r.stages[0]) / r.stages[0].params;
  };
  EXPECT_NEAR(bytes("optimizer_state_dtype: bf16"), 14.0, 1e-12);
  EXPECT_NEAR(bytes("optimizer: adamw, optimizer_state_dtype: 8bit"), 12.03125, 1e-12);
  EXPECT_NEAR(bytes("main_params_dtype: fp16"), 16.0, 1e-12);
  EXPECT_NEAR(bytes("optimizer_state_dtype: bf16, main_params_dtype: none"), 10.0, 1e-12);
  const StateBytes sb = state_bytes_per_param(
      gpt3("", "optimizer_state_dtype: 8bit, main_params_dtype: none").training);
  EXPECT_DOUBLE_EQ(sb.optimizer, 2.03125);
  EXPECT_DOUBLE_EQ(sb.master, 0.0);
}

TEST(Memory, OptimizerStatePrecisionShardsUnderZero1) {
  // The distributed optimizer divides the optimizer column by d = dp = 16, the weights
  // (2) and gradients (4) stay whole:
  //   bf16 moments, no master: 6 + 4/16       = 6.25
  //   8-bit moments, fp32 master: 6 + 6.03125/16 = 6.376953125
  auto bytes = [](const std::string& training) {
    const MemoryReport r = estimate_memory(gpt3(", zero_stage: 1", training));
    return state_bytes(r.stages[0]) / r.stages[0].params;
  };
  EXPECT_NEAR(bytes("optimizer_state_dtype: bf16, main_params_dtype: none"), 6.25, 1e-12);
  EXPECT_NEAR(bytes("optimizer_state_dtype: 8bit"), 6.376953125, 1e-12);
  // fp32 training has no separate master: 4 + 4 + bf16 m, v 4 = 12.
  EXPECT_NEAR(bytes("precision: fp32, optimizer_state_dtype: bf16"), 4.0 + 4.0 + 4.0 / 16, 1e-12);
}

}  // namespace
}  // namespace orrery

namespace orrery {
namespace {

TEST(Memory, DualPipeHoldsTwoStagesAndPPlus1Microbatches) {
  // GPT-3 (96 layers) with DualPipe on pp = 8: rank i holds stages h = min(i, 7 - i) and
  // 7 - h, 24 layers, twice 1F1B's 12. The reference schedule keeps p - h micro-batches
  // of the first and h + 1 of the second, p + 1 = 9 in all: 9 x 12 = 108 layers' worth on
  // every rank (DualPipe README: activations PP + 1, parameters 2x). With the distributed
  // optimizer the optimizer state shards over both copies' 16 + 16 data-parallel ranks.
  // (GPT-3's embeddings are tied.)
  const MemoryReport r = estimate_memory(gpt3(", schedule: dualpipe, zero_stage: 1"));
  const MemoryReport base = estimate_memory(gpt3(", zero_stage: 1"));
  for (int i = 0; i < 8; ++i) {
    const StageMemory& st = r.stages[i];
    EXPECT_EQ(st.layers, 24) << "rank " << i;
    EXPECT_DOUBLE_EQ(st.layers_in_flight, 108.0) << "rank " << i;
    const int h = std::min(i, 7 - i);
    // Ranks 0 and 7 hold both the embedding and the head, GPT-3's tied table one parameter
    // on each: 1F1B's last-stage copy (51200 x 12288 / tp 8) is not held twice.
    const double copy = h == 0 ? 51200.0 * 12288 / 8 : 0.0;
    EXPECT_DOUBLE_EQ(st.params, base.stages[h].params + base.stages[7 - h].params - copy);
    EXPECT_DOUBLE_EQ(state_bytes(st), (6.0 + 12.0 / 32) * st.params);
  }
}

}  // namespace
}  // namespace orrery

namespace orrery {
namespace {

TEST(Memory, AdafactorKeepsMasterWeightsAndFactoredMoments) {
  // GPT-3 stage 1 of 8 (12 layers), TP 8: per layer and GPU, the GEMMs' weight matrices
  // are qkv 12288 x 4608, proj 1536 x 12288, fc1 12288 x 6144, fc2 6144 x 12288, so the
  // factored statistics are 4 bytes x (sum of k + n = 16896 + 13824 + 18432 + 18432 =
  // 67584) per layer, plus 4 bytes per vector parameter (biases and norms). On top of the
  // 4-byte master copy per parameter that is ~0.03 % more than 4 bytes a parameter.
  const MemoryReport r = estimate_memory(gpt3("", "optimizer: adafactor"));
  const StageMemory& st = r.stages[1];
  const double per_param = st.memory.optimizer.value() / st.params;
  EXPECT_GT(per_param, 4.0);
  EXPECT_LT(per_param, 4.0 * 1.001);
  // Master copy alone would be exactly 4; the factored part for 12 layers is at least
  // 12 x 67584 x 4 bytes.
  EXPECT_GE(st.memory.optimizer.value() - 4.0 * st.params, 12 * 67584 * 4.0);
  // Weights and gradients as with Adam: 2 + 4.
  EXPECT_DOUBLE_EQ((st.memory.weights + st.memory.gradients).value(), 6.0 * st.params);
}

}  // namespace
}  // namespace orrery

namespace orrery {
namespace {

TEST(Memory, DeepSeekV3FitsAsPublished) {
  // scenarios/deepseek-v3-h800-2048.yaml (docs/model.md, "DeepSeek-V3 on 2,048 H800").
  // Rank 2 holds DualPipe stages 2 and 13: 8 MoE layers, each on this GPU attention
  // 187,107,328 (q_down 7168*1536, q_norm 1536, q_up 1536*128*192, kv_down 7168*576,
  // kv_norm 512, kv_up 512*128*256, proj 128*128*7168) + norms 2*7168 + router 7168*256
  // + shared expert 3*7168*2048 = 232,996,864 dense, and 4 experts 4*3*7168*2048 =
  // 176,160,768.
  const Scenario s =
      load_scenario_file(std::string(ORRERY_SOURCE_DIR) + "/scenarios/deepseek-v3-h800-2048.yaml");
  const MemoryReport r = estimate_memory(s);
  const StageMemory& st = r.stages[2];
  const double dense = 8 * 232996864.0, expert = 8 * 176160768.0;
  EXPECT_DOUBLE_EQ(st.params, dense + expert);
  EXPECT_DOUBLE_EQ(st.memory.weights.value(), 2 * (dense + expert));
  EXPECT_DOUBLE_EQ(st.memory.gradients.value(), 4 * (dense + expert));  // ZeRO-1: unsharded
  // fp32 master + bf16 m and v = 8 bytes, over dp 128 x 2 DualPipe copies (experts: / ep 64).
  EXPECT_DOUBLE_EQ(st.memory.optimizer.value(), 8 * (dense / 256 + expert / 4));
  // Per layer and micro-batch of 4096 tokens, what stays after layernorm, mla_up_proj and
  // moe_act drop theirs (fp8 inputs take 1 + 4/128 bytes an element with their 1x128
  // scales): attn.norm 2*4096*7168; q_norm 2*4096*1536; q_up 4096*1536*1.03125; kv_norm
  // 2*4096*512; kv_up 4096*512*1.03125; log-sum-exp 4*128*4096; proj 4096*16384*1.03125;
  // mlp.norm 2*4096*7168; routing probabilities 4*4096*256; experts' fc1
  // 32768*7168*1.03125; SwiGLU 2*32768*4096 + 4*32768; shared SwiGLU 2*4096*4096 and fc2
  // 4096*2048*1.03125.
  const double tok = 4096, slots = tok * 8, f8 = 1.03125;
  const double layer = 2 * tok * 7168 + 2 * tok * 1536 + tok * 1536 * f8 + 2 * tok * 512 +
                       tok * 512 * f8 + 4 * 128 * tok + tok * 16384 * f8 + 2 * tok * 7168 +
                       4 * tok * 256 + slots * 7168 * f8 + 2 * slots * 4096 + 4 * slots +
                       2 * tok * 4096 + tok * 2048 * f8;
  EXPECT_DOUBLE_EQ(layer, 771358720.0);
  // DualPipe: (16 - 2) micro-batches of stage 2 and 2 + 1 of stage 13, 4 layers each.
  EXPECT_DOUBLE_EQ(st.layers_in_flight, 68.0);
  EXPECT_DOUBLE_EQ(st.memory.activations.value(), 68 * layer);
  EXPECT_TRUE(r.fits);
  // Allocated peak + runtime reserve (the device total before the allocator's waste).
  const StageMemory& w = r.worst();
  // docs/model.md's table summed to 76.89 GiB with a flat 1 GiB runtime reserve; now the
  // CUDA context 426 MiB, the cuBLAS workspace 33 MiB and the NCCL buffers: dp 128 ranks
  // (ZeRO-1: ring) 32 channels, pp 16 ranks across nodes 2 peers x 32 / 2 (ceil(16 / 8) =
  // 2 rounds) = 16 channels, ep hierarchical over 8 nodes of 8: 7 + 7 peers x 32 / 8 (8
  // rounds) = 4 channels: (32 + 32 + 56) x 10 MiB = 1200 MiB.
  // 76.89 - 1 + (426 + 33 + 1200) / 1024 = 77.510.
  EXPECT_DOUBLE_EQ(w.nccl_buffers.value(), 1200.0 * 1048576.0);
  EXPECT_NEAR((w.allocated_peak() + w.runtime_reserve).value() / (1024.0 * 1024 * 1024), 77.51,
              0.005);
}

// The two-layer model of the buffer tests below (hidden 1001, 7 heads, GeLU MLP of 4004, no
// biases, RMSNorm, vocab 1000, 128 tokens) on 8 data-parallel A100s, one micro-batch each,
// with `parallelism` and `training` keys added.
StageMemory small_decoder_stage(const std::string& parallelism, const std::string& training,
                                const std::string& precision = "bf16") {
  return estimate_memory(
             load_scenario_text(
                 "cluster: {preset: dgx-a100, nodes: 1}\n"
                 "model: {family: decoder, layers: 2, hidden: 1001, heads: 7, kv_heads: 7, "
                 "ffn: 4004, vocab: 1000, seq_len: 128, activation: gelu, norm: rmsnorm, "
                 "position_embedding: rope, tied_embeddings: false, bias: false, dropout: false}\n"
                 "parallelism: {dp: 8, microbatch: 1, global_batch: 8, " +
                     parallelism + "}\ntraining: {precision: " + precision + ", " + training +
                     "}\n",
                 "test.yaml"))
      .stages[0];
}

// FSDP1 versus FSDP2 buffer memory (model/memory.cpp, fsdp_unit_elements and
// fsdp_reduce_buffers), by hand. Two layers of hidden 1001 (7 heads), GeLU MLP of 4004, no
// biases, RMSNorm: a layer holds qkv 3*1001^2 = 3,006,003, proj 1001^2 = 1,002,001, fc1 and
// fc2 4004*1001 = 4,008,004 each and two norms of 1001: 12,026,014 parameters, more than the
// embedding (1000*1001) or the head (1001 + 1001*1000). Sharded over w = 8 ranks:
//  - FSDP1 pads the flat parameter to ceil(12,026,014 / 8) * 8 = 12,026,016 elements;
//  - FSDP2 pads each weight's dim 0 (output features) to a multiple of 8: qkv 3008*1001 =
//    3,011,008, proj 1008*1001 = 1,009,008, fc1 4008*1001 = 4,012,008, fc2 1008*4004 =
//    4,036,032, norms 2*1008 = 2,016: 12,070,072.
// Gather buffers: 2 units (the one in use and the prefetched one) x 2 bytes; FSDP1 also
// holds its root flat parameter gathered from the forward through the backward (the
// embedding and the head, 1,001,000 + 1,002,001 = 2,003,001, padded to 2,003,008):
// (2 x 12,026,016 + 2,003,008) x 2 = 52,110,080.
// Reduce-scatter buffers, bf16 gradients (weight and reduce dtype 2 bytes): the larger of
// the unit's unsharded gradient u*2 and the copies at the hook: FSDP1 a padded copy u*2 and
// the shard u*2/8; FSDP2 its reduce-scatter input u*2 and the shard u*2/8.
//   FSDP1: max(24,052,032, 24,052,032 + 3,006,504) = 27,058,536
//   FSDP2: max(24,140,144, 24,140,144 + 3,017,518) = 27,157,662
// fp32 reduce (gradient_dtype fp32): FSDP1 adds a cast copy u*4, the padded copy u*4 and the
// shard u*4/8 = 12,026,016 * 8.5 = 102,221,136; FSDP2 its input u*4 and the shard u*4/8 =
// 12,070,072 * 4.5 = 54,315,324.
TEST(Memory, Fsdp1VersusFsdp2Buffers) {
  auto scenario = [](const std::string& impl, const std::string& grad) {
    return small_decoder_stage("fsdp: {implementation: " + impl + "}", "gradient_dtype: " + grad);
  };
  const StageMemory f1 = scenario("fsdp1", "bf16");
  const StageMemory f2 = scenario("fsdp2", "bf16");
  EXPECT_DOUBLE_EQ(f1.gather_buffers.value(), 52110080.0);
  EXPECT_DOUBLE_EQ(f2.gather_buffers.value(), 2 * 12070072.0 * 2);
  EXPECT_DOUBLE_EQ(f1.reduce_buffers.value(), 27058536.0);
  EXPECT_DOUBLE_EQ(f2.reduce_buffers.value(), 27157662.0);
  const StageMemory f1_32 = scenario("fsdp1", "fp32");
  const StageMemory f2_32 = scenario("fsdp2", "fp32");
  EXPECT_DOUBLE_EQ(f1_32.reduce_buffers.value(), 102221136.0);
  EXPECT_DOUBLE_EQ(f2_32.reduce_buffers.value(), 54315324.0);
  // Both are part of `other`; DeepSpeed's ZeRO-3 has no such term (its reduce bucket is in
  // the gather buffers).
  EXPECT_GE(f1.memory.other.value(), (f1.gather_buffers + f1.reduce_buffers).value());
  const StageMemory ds = scenario("deepspeed", "bf16");
  EXPECT_DOUBLE_EQ(ds.reduce_buffers.value(), 0.0);
  // Megatron-FSDP: two transformer units gathered (the layer unpadded, 12,026,014) and the
  // embedding (1,001,000) and head (1,002,001), which are no units, kept gathered for the
  // step, all at 2 bytes: 2 x 12,026,014 x 2 + 2,003,001 x 2 = 52,110,058.
  const StageMemory mf = scenario("megatron_fsdp", "bf16");
  EXPECT_DOUBLE_EQ(mf.gather_buffers.value(), 52110058.0);
}

// torchtitan's FSDP2 with tied embeddings shards [tok_embeddings, norm, output] as one
// unit and keeps it gathered from its forward, a micro-batch's first, to its backward, its
// last (reshard_output_after_forward false, apply_fsdp_to_decoder in torchtitan/distributed/
// fsdp.py at pytorch/torchtitan b5bcd76c): through a micro-batch the table stays beside the
// two layers in flight.
// Fsdp1VersusFsdp2Buffers' model with tied embeddings: the unit's table 1000 x 1001 =
// 1,001,000 (1000 rows, already a multiple of 8) and final norm 1001 (padded to 1008), a
// layer 12,070,072 as FSDP2 pads it: (1,001,000 + 1008 + 2 x 12,070,072) x 2 bytes =
// 50,284,304, against 2 x 12,070,072 x 2 = 48,280,288 when the unit is resharded (another
// stack, or reshard_output_after_forward: true).
TEST(Memory, TorchtitanKeepsATiedTableGatheredThroughTheMicroBatch) {
  auto stage = [](const std::string& extra, const std::string& stack) {
    return estimate_memory(
               load_scenario_text(
                   "cluster: {preset: dgx-a100, nodes: 1}\n"
                   "model: {family: decoder, layers: 2, hidden: 1001, heads: 7, kv_heads: 7, "
                   "ffn: 4004, vocab: 1000, seq_len: 128, activation: gelu, norm: rmsnorm, "
                   "position_embedding: rope, tied_embeddings: true, bias: false, "
                   "dropout: false}\n"
                   "parallelism: {dp: 8, microbatch: 1, global_batch: 8, "
                   "fsdp: {implementation: fsdp2}" +
                       extra + "}\ntraining: {precision: bf16, stack: " + stack + "}\n",
                   "test.yaml"))
        .stages[0];
  };
  EXPECT_DOUBLE_EQ(stage("", "fsdp2").gather_buffers.value(), 50284304.0);
  EXPECT_DOUBLE_EQ(stage(", reshard_output_after_forward: true", "fsdp2").gather_buffers.value(),
                   48280288.0);
  EXPECT_DOUBLE_EQ(stage("", "megatron-core").gather_buffers.value(), 48280288.0);
}

// torchtitan's FSDP2 under a pipeline (fsdp_pipeline_deferred) accumulates each
// micro-batch's gradients unsharded in the reduce dtype and keeps every unit gathered until
// the step's reduce. The model above at pp 2, dp 8 (2 nodes): stage 0 holds the embedding
// (1,001,000) and layer 1 (12,026,014), 13,027,014 parameters. fp32 gradients:
// 4 x 13,027,014 = 52,108,056 bytes unsharded, against FSDP1's 4 x 13,027,014 / 8 =
// 6,513,507; gather buffers 13,027,014 x 2 = 26,054,028 (all units), against FSDP1's two
// layers in flight and its root, the embedding (2 x 12,026,016 + 1,001,000) x 2 (both
// padded to a multiple of 8).
TEST(Memory, Fsdp2UnderAPipelineHoldsUnshardedGradients) {
  auto stage0 = [](const std::string& impl, const std::string& stack) {
    return estimate_memory(
               load_scenario_text(
                   "cluster: {preset: dgx-a100, nodes: 2}\n"
                   "model: {family: decoder, layers: 2, hidden: 1001, heads: 7, kv_heads: 7, "
                   "ffn: 4004, vocab: 1000, seq_len: 128, activation: gelu, norm: rmsnorm, "
                   "position_embedding: rope, tied_embeddings: false, bias: false, "
                   "dropout: false}\n"
                   "parallelism: {dp: 8, pp: 2, microbatch: 1, global_batch: 16, "
                   "fsdp: {implementation: " +
                       impl + "}}\ntraining: {precision: bf16, gradient_dtype: fp32, stack: " +
                       stack + "}\n",
                   "test.yaml"))
        .stages[0];
  };
  const StageMemory f2 = stage0("fsdp2", "fsdp2");
  EXPECT_DOUBLE_EQ(f2.params, 13027014.0);
  EXPECT_DOUBLE_EQ(f2.memory.gradients.value(), 52108056.0);
  EXPECT_DOUBLE_EQ(f2.gather_buffers.value(), 26054028.0);
  const StageMemory f1 = stage0("fsdp1", "fsdp1");
  EXPECT_DOUBLE_EQ(f1.memory.gradients.value(), 6513507.0);
  EXPECT_DOUBLE_EQ(f1.gather_buffers.value(), (2 * 12026016.0 + 1001000.0) * 2);
  // Megatron-LM's FSDP2 (--use-torch-fsdp2, its own schedules) keeps them sharded.
  EXPECT_DOUBLE_EQ(stage0("fsdp2", "megatron-core").memory.gradients.value(), 6513507.0);
}

// ZeRO-2's buffer of what it is reducing (model/memory.cpp, zero2_reduce_buffers), by hand,
// on the model of the test above: the largest layer is a transformer layer of 12,026,014
// parameters (the embedding holds 1,001,000, the head 1,002,001).
//  - Megatron's engine (ZeRO-2 reduces each layer on its own): that layer's gradients whole,
//    in gradient_dtype: fp32 12,026,014 x 4 = 48,104,056 bytes, bf16 x 2 = 24,052,028;
//  - DeepSpeed's engine: its IPG buffer of reduce_bucket_size = 5e8 elements in the model's
//    16 bits, 1e9 bytes whatever gradient_dtype is, without overlap_comm (DeepSpeed's
//    default below stage 3: overlap_grad_reduce false), twice that with it; at
//    grad_bucket_params 1e6, 2e6 bytes;
//  - zero_stage 1 under Megatron reduces once a step from the whole gradient buffer: no
//    such term.
// The term is part of `other`, beside the runtime, the cuBLAS workspace, the allocator's
// waste and the loss temporaries (no gather, compression or fp8 terms here).
TEST(Memory, ZeroTwoHoldsWhatItIsReducing) {
  const StageMemory fp32 = small_decoder_stage("zero_stage: 2", "gradient_dtype: fp32");
  EXPECT_DOUBLE_EQ(fp32.reduce_buffers.value(), 48104056.0);
  EXPECT_DOUBLE_EQ(fp32.memory.other.value(),
                   (fp32.runtime_reserve + fp32.cublas_workspace + fp32.allocator_overhead +
                    fp32.loss_buffers + fp32.reduce_buffers)
                       .value());
  EXPECT_DOUBLE_EQ(
      small_decoder_stage("zero_stage: 2", "gradient_dtype: bf16").reduce_buffers.value(),
      24052028.0);
  const std::string ds = "zero_stage: 2, pipeline_engine: deepspeed";
  EXPECT_DOUBLE_EQ(small_decoder_stage(ds, "gradient_dtype: bf16, overlap_grad_reduce: false")
                       .reduce_buffers.value(),
                   1e9);
  EXPECT_DOUBLE_EQ(small_decoder_stage(ds, "gradient_dtype: fp32, overlap_grad_reduce: false")
                       .reduce_buffers.value(),
                   1e9);
  EXPECT_DOUBLE_EQ(small_decoder_stage(ds, "gradient_dtype: bf16, overlap_grad_reduce: true")
                       .reduce_buffers.value(),
                   2e9);
  EXPECT_DOUBLE_EQ(
      small_decoder_stage(ds, "overlap_grad_reduce: false, grad_bucket_params: 1000000")
          .reduce_buffers.value(),
      2e6);
  EXPECT_DOUBLE_EQ(
      small_decoder_stage("zero_stage: 1", "gradient_dtype: fp32").reduce_buffers.value(), 0.0);
}

// DeepSpeed's gradient copies (model/memory.cpp, deepspeed_transients), by hand, on the
// model of the tests above: P = 2 x 12,026,014 + 1,001,000 (embedding) + 1,002,001 (head:
// norm and output layer) = 26,055,029 parameters; its largest tensor T is fc1's (or fc2's)
// 4,008,004; 8 data-parallel ranks, one micro-batch. B below is what the backward's peak
// holds beyond the states (activations and loss temporaries), all freed before these
// copies. The freed blocks they may reuse: a layer's saved tensors of one micro-batch
// (between 2e6 and 4 x 3,256,878.625 bytes here, asserted) and the head's fp32 logits (128
// x 1000 x 4 = 512,000).
//  - BF16_Optimizer (pipeline_engine deepspeed, bf16): gradients 4 (fp32 buffer) + 2 (bf16
//    param.grad) = 6 bytes a parameter, 156,330,174, whatever gradient_dtype says. After a
//    backward, the cast of T to fp32, 16,032,016 bytes; at the step P is under the
//    all-reduce's 5e8-element bucket, so both groups are flattened into a new fp32 tensor
//    (4P) and that is cast to bf16 (2P): held 6P - B. All three are new segments
//    (16,032,016 + 104,220,116 + 52,110,058), 16,032,016 + B beyond what is held.
//  - FP16_Optimizer (fp16, ZeRO stage 0): the all-reduce's bucket, all P 16-bit gradients
//    flattened (2P = 52,110,058, new), the overflow check's 4T (into the bucket's block),
//    then the list of fp32 casts (4P; its largest, 4T, into the bucket's block again, the
//    other 4(P - T) = 88,188,100 new) and its flat copy (4P = 104,220,116 new) beside the
//    fp16 gradients: held 8P - B; segments 2P + 4(P - T) + 4P - (8P - B) = 2P - 4T + B.
//  - DeepSpeedZeroOptimizer, ZeRO-1, fp16 gradients, reduce_bucket_size 1e6: the
//    reduction's flattened bucket 2e6 bytes (into the freed layer's block); its epilogue
//    drops the 2(P - s) = 45,596,300.75 bytes of gradients outside the partition, s = P / 8
//    = 3,256,878.625 elements, below T, so the overflow check's fp32 copy 4s =
//    13,027,514.5, the norm's fp64 copy 8s = 26,055,029 and the flat 2s + fp32 4s copies
//    (into those two blocks) all fit in what was dropped: nothing held. Segments: 4s + 8s =
//    39,082,543.5.
TEST(Memory, DeepSpeedGradientCopiesByHand) {
  const double P = 26055029.0, T = 4008004.0;
  const StageMemory bf = small_decoder_stage("pipeline_engine: deepspeed", "");
  EXPECT_DOUBLE_EQ(bf.params, P);
  EXPECT_DOUBLE_EQ(bf.memory.gradients.value(), 6.0 * P);
  EXPECT_DOUBLE_EQ(
      small_decoder_stage("pipeline_engine: deepspeed", "gradient_dtype: bf16").memory.gradients.value(),
      6.0 * P);
  const double b_bf = (bf.memory.activations + bf.loss_buffers).value();
  ASSERT_GT(bf.activations_per_layer.value(), 2e6);
  ASSERT_LT(bf.activations_per_layer.value(), 4.0 * P / 8);
  EXPECT_DOUBLE_EQ(bf.step_buffers.value(), 6.0 * P - b_bf);
  EXPECT_DOUBLE_EQ(bf.step_segments.value(), 4.0 * T + b_bf);
  // The held bytes are in `other`, the segments in the allocator's share: reserved only.
  EXPECT_DOUBLE_EQ((bf.reserved_peak() - bf.allocated_peak()).value(),
                   bf.allocator_overhead.value());
  EXPECT_GE(bf.allocator_overhead.value(), bf.step_segments.value());
  // Only the caching allocator takes new segments per request.
  EXPECT_DOUBLE_EQ(small_decoder_stage("pipeline_engine: deepspeed", "memory: {allocator: none}")
                       .step_segments.value(),
                   0.0);

  const StageMemory z0 =
      small_decoder_stage("pipeline_engine: deepspeed", "gradient_dtype: fp16", "fp16");
  const double b0 = (z0.memory.activations + z0.loss_buffers).value();
  EXPECT_DOUBLE_EQ(z0.step_buffers.value(), 8.0 * P - b0);
  EXPECT_DOUBLE_EQ(z0.step_segments.value(), 2.0 * P - 4.0 * T + b0);

  const StageMemory z1 =
      small_decoder_stage("pipeline_engine: deepspeed, zero_stage: 1",
                          "gradient_dtype: fp16, grad_bucket_params: 1000000", "fp16");
  EXPECT_DOUBLE_EQ(z1.memory.gradients.value(), 2.0 * P);
  EXPECT_DOUBLE_EQ(z1.step_buffers.value(), 0.0);
  EXPECT_DOUBLE_EQ(z1.step_segments.value(), 39082543.5);

  // A 32-bit model at stage 0 makes only the all-reduce's flat bucket (4P, all its
  // gradients): no overflow check, no casts.
  const StageMemory f32 = small_decoder_stage("pipeline_engine: deepspeed", "", "fp32");
  const double b32 = (f32.memory.activations + f32.loss_buffers).value();
  EXPECT_DOUBLE_EQ(f32.step_buffers.value(), 4.0 * P - b32);
  EXPECT_DOUBLE_EQ(f32.step_segments.value(), b32);

  // Megatron's engine makes none of these copies.
  const StageMemory mg = small_decoder_stage("zero_stage: 1", "gradient_dtype: fp32");
  EXPECT_DOUBLE_EQ(mg.step_buffers.value(), 0.0);
  EXPECT_DOUBLE_EQ(mg.step_segments.value(), 0.0);
}

// The segments stop at the device's capacity, and what that cuts is kept apart: BigScience's
// 200B on 320 A100 80GB at micro-batch 8 (which ran, 76 GB used) reaches the capacity with
// part of its copies' segments cut; the run fits only through the allocator's release.
TEST(Memory, DeepSpeedSegmentsStopAtCapacity) {
  const MemoryReport r = estimate_memory(load_scenario_file(
      std::string(ORRERY_SOURCE_DIR) + "/scenarios/validation/bigscience-tr11-200b-320-mbs8.yaml"));
  const StageMemory& w = r.worst();
  EXPECT_TRUE(r.fits);
  EXPECT_DOUBLE_EQ(w.memory.total().value(), r.capacity.value());
  EXPECT_GT(w.step_segments_cut.value(), 0.0);
  EXPECT_GT(w.step_segments.value(), 0.0);
  // Uncut, the segments would have put it over.
  EXPECT_GT((w.memory.total() + w.step_segments_cut).value(), r.capacity.value());
}

// The small model of the loss tests below: 2 layers, hidden 1001, vocab 1000, 128 tokens,
// on 8 A100s; `training` is the training section's keys. Its first stage's memory.
StageMemory tiny_loss_model(const std::string& training) {
  return estimate_memory(
             load_scenario_text(
                 "cluster: {preset: dgx-a100, nodes: 1}\n"
                 "model: {family: decoder, layers: 2, hidden: 1001, heads: 7, kv_heads: 7, "
                 "ffn: 4004, vocab: 1000, seq_len: 128, activation: gelu, norm: rmsnorm, "
                 "position_embedding: rope, tied_embeddings: false, bias: false, dropout: "
                 "false}\n"
                 "parallelism: {dp: 8, microbatch: 1, global_batch: 8}\n"
                 "training: {" +
                     training + "}\n",
                 "test.yaml"))
      .stages[0];
}

// The loss's temporaries beyond the saved fp32 softmax (model/memory.cpp,
// loss_temporaries_per_logit), by hand: one micro-batch of 1 x 128 tokens over a vocabulary
// of 1000 is 128,000 logits on the one rank holding the head.
//  - Megatron-Core, bf16: the 16-bit logits beside the fp32 copy it turns into the softmax
//    in place: 2 bytes a logit, 256,000 B; fp32 training: .float() copies nothing, 0.
//  - eager PyTorch (fsdp2 stack), bf16: the forward holds the bf16 logits, their fp32
//    upcast and the fp32 log_softmax output (2 + 4 beyond the saved output), the backward
//    nll_loss's dense fp32 gradient and log_softmax's (8): max(6, 8) = 8, 1,024,000 B;
//    fp32: max(4, 8) = 8 again.
//  - fsdp1: the trainers' losses differ (LLM Foundry's flash-attn cross-entropy keeps no fp32
//    copy), none counted: 0.
TEST(Memory, LossTemporariesByStack) {
  auto loss = [](const std::string& stack, const std::string& precision) {
    return tiny_loss_model("stack: " + stack + ", precision: " + precision);
  };
  const StageMemory mc = loss("megatron-core", "bf16");
  EXPECT_DOUBLE_EQ(mc.loss_buffers.value(), 256000.0);
  EXPECT_DOUBLE_EQ(loss("megatron-core", "fp32").loss_buffers.value(), 0.0);
  EXPECT_DOUBLE_EQ(loss("fsdp2", "bf16").loss_buffers.value(), 1024000.0);
  EXPECT_DOUBLE_EQ(loss("fsdp2", "fp32").loss_buffers.value(), 1024000.0);
  EXPECT_DOUBLE_EQ(loss("fsdp1", "bf16").loss_buffers.value(), 0.0);
  // In `other`, beside the head's saved softmax (4 bytes a logit) in the activations.
  EXPECT_GE(mc.memory.other.value(), mc.loss_buffers.value() + mc.runtime_reserve.value());
}

// NCCL buffers by hand (model/memory.cpp, nccl_communicators): 64 GPUs in nodes of 8, tp 2
// x pp 4 x dp 8, no sequence parallelism, ZeRO stage 0, 8 channels.
//  tp: 2 ranks inside a node, all-reduce: the ring alone, 1 x 8 channels;
//  dp: 8 ranks striding tp 2 over 16 GPUs, across nodes, all-reduce: ring + tree 3 x 8;
//  pp: 4 ranks across nodes, 2 neighbours, 8 per peer (8 x ceil(4 / 8) = 8, not above 8).
// (8 + 24 + 16) x 10 MiB = 480 MiB; the runtime reserve adds the 426 MiB context.
TEST(Memory, NcclBuffersByHand) {
  auto scenario = [](const std::string& parallelism, const std::string& memory,
                     const std::string& moe = "") {
    return load_scenario_text(
        "cluster: {preset: dgx-h100, nodes: 8}\n"
        "model: {family: decoder, layers: 8, hidden: 1024, heads: 8, kv_heads: 8, "
        "ffn: 4096, vocab: 1000, seq_len: 128, activation: gelu, norm: rmsnorm, "
        "position_embedding: rope, tied_embeddings: false, bias: false, dropout: false" +
            moe +
            "}\n"
            "parallelism: {" +
            parallelism +
            ", microbatch: 1, global_batch: 64}\n"
            "training: {memory: {nccl_channels: 8" +
            memory + "}}\n",
        "test.yaml");
  };
  const Scenario s = scenario("tp: 2, pp: 4, dp: 8", "");
  const std::vector<NcclCommunicator> c = nccl_communicators(s);
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(c[0].group, "tp");
  EXPECT_EQ(c[0].connections * c[0].channels, 8);
  EXPECT_EQ(c[1].group, "dp");
  EXPECT_TRUE(c[1].spans_nodes);
  EXPECT_EQ(c[1].connections * c[1].channels, 24);
  EXPECT_EQ(c[2].group, "pp");
  EXPECT_EQ(c[2].connections * c[2].channels, 16);
  const StageMemory st = estimate_memory(s).stages[1];
  EXPECT_DOUBLE_EQ(st.nccl_buffers.value(), 480.0 * 1048576.0);
  EXPECT_DOUBLE_EQ(st.runtime_reserve.value(), (480.0 + 426.0) * 1048576.0);
  // The first stage sends to and receives from the next alone: pp 1 x 8, 400 MiB.
  EXPECT_DOUBLE_EQ(estimate_memory(s).stages[0].nccl_buffers.value(), 400.0 * 1048576.0);
  // Sequence parallelism and the distributed optimizer leave no all-reduce: rings only,
  // (8 + 8 + 16) x 10 MiB.
  EXPECT_DOUBLE_EQ(
      estimate_memory(scenario("tp: 2, pp: 4, dp: 8, sequence_parallel: true, zero_stage: 1", ""))
          .stages[1]
          .nccl_buffers.value(),
      320.0 * 1048576.0);
  // An all-to-all over ep 16 across two nodes (tp 1, dp 16, pp 4): 15 peers, 8 per peer
  // halved while 8 x ceil(16 / 8) > 8: 4; dp ring 8, pp 2 x 8 (4 ranks, 1 round):
  // (60 + 8 + 16) x 10 MiB = 840 MiB.
  EXPECT_DOUBLE_EQ(estimate_memory(scenario("tp: 1, pp: 4, dp: 16, ep: 16, zero_stage: 1", "",
                                            ", moe: {experts: 16, top_k: 2, expert_ffn: 1024}"))
                       .stages[1]
                       .nccl_buffers.value(),
                   840.0 * 1048576.0);
}

// The channel count follows the GPU preset (NCCL's logs: A100 24, H100 32) unless the file
// sets training.memory.nccl_channels: one node of 8, dp 8 under ZeRO-1, a ring alone:
// 24 x 10 MiB on A100, 32 x 10 MiB on H100.
TEST(Memory, NcclChannelsFollowTheGpu) {
  auto dp8 = [](const std::string& system, const std::string& training) {
    return estimate_memory(
               load_scenario_text(
                   "cluster: {preset: " + system +
                       ", nodes: 1}\n"
                       "model: {family: decoder, layers: 2, hidden: 1024, heads: 8, kv_heads: 8, "
                       "ffn: 4096, vocab: 1000, seq_len: 128, activation: gelu, norm: rmsnorm, "
                       "position_embedding: rope, tied_embeddings: false, bias: false, dropout: "
                       "false}\n"
                       "parallelism: {dp: 8, zero_stage: 1, microbatch: 1, global_batch: 8}\n"
                       "training: {" +
                       training + "}\n",
                   "test.yaml"))
        .stages[0]
        .nccl_buffers.value();
  };
  EXPECT_DOUBLE_EQ(dp8("dgx-a100", ""), 24 * 10485760.0);
  EXPECT_DOUBLE_EQ(dp8("dgx-h100", ""), 32 * 10485760.0);
  EXPECT_DOUBLE_EQ(dp8("dgx-a100", "memory: {nccl_channels: 4}"), 4 * 10485760.0);
}

// Chunked cross-entropy (training.stack.cross_entropy_chunks): the head keeps one chunk's
// fp32 softmax and the loss temporaries follow it. The LossTemporariesByStack model, bf16,
// 128 tokens x vocab 1000 = 128,000 logits: megatron-core's 16-bit logits beside the
// softmax 2 x 128,000 = 256,000 bytes, in 4 chunks 64,000; the activations lose 3/4 of the
// softmax, 4 x 128,000 x 3/4 = 384,000 bytes. The step's kernels stay the same.
TEST(Memory, ChunkedCrossEntropyKeepsOneChunk) {
  auto stage = [](const std::string& stack) {
    return tiny_loss_model("stack: " + stack + ", memory: {allocator: none}");
  };
  const StageMemory whole = stage("megatron-core");
  const StageMemory chunked = stage("{preset: megatron-core, cross_entropy_chunks: 4}");
  EXPECT_DOUBLE_EQ(whole.loss_buffers.value(), 256000.0);
  EXPECT_DOUBLE_EQ(chunked.loss_buffers.value(), 64000.0);
  EXPECT_DOUBLE_EQ((whole.memory.activations - chunked.memory.activations).value(), 384000.0);
}

}  // namespace
}  // namespace orrery
