#include "profiler/plan.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace orrery::profiler {
namespace {

bool has(const std::vector<LinearShape>& v, LinearShape s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

TEST(PresetShapes, Llama3_8bForwardGemms) {
  // Llama 3 8B: hidden 4096, 32 heads of 128, 8 KV heads, ffn 14336 (SwiGLU), vocab
  // 128256, seq 8192. T = 8192 tokens.
  const auto v = preset_gemm_shapes("llama3-8b", 1, false);
  EXPECT_TRUE(has(v, {8192, (32 + 2 * 8) * 128, 4096}));  // QKV: n = 6144
  EXPECT_TRUE(has(v, {8192, 4096, 4096}));                // attention output
  EXPECT_TRUE(has(v, {8192, 2 * 14336, 4096}));           // fused gate and up
  EXPECT_TRUE(has(v, {8192, 4096, 14336}));               // down
  EXPECT_TRUE(has(v, {8192, 128256, 4096}));              // logits
  EXPECT_EQ(v.size(), 5u);
}

TEST(PresetShapes, TensorParallelSplitsAndBackwardGemms) {
  // GPT-3 175B at tp 8: hidden 12288, 96 heads, ffn 49152, vocab 51200, T = 2048.
  const auto v = preset_gemm_shapes("gpt3-175b", 8, true);
  EXPECT_TRUE(has(v, {2048, 3 * 12288 / 8, 12288}));  // QKV column-parallel: n = 4608
  EXPECT_TRUE(has(v, {2048, 12288, 12288 / 8}));      // output row-parallel: k = 1536
  EXPECT_TRUE(has(v, {2048, 49152 / 8, 12288}));      // up: n = 6144
  EXPECT_TRUE(has(v, {2048, 12288, 6144}));           // down: k = 6144 (also up's dX)
  // Backward of the up projection (m = 2048, n = 6144, k = 12288):
  EXPECT_TRUE(has(v, {2048, 12288, 4608}));  // dX of QKV: n and k swap
  EXPECT_TRUE(has(v, {12288, 6144, 2048}));  // dW: m = in, n = out, k = T
}

TEST(PresetShapes, MoeExpertsSeeTheirShareOfTokens) {
  // Mixtral 8x7B: T = 4096 tokens, top-2 of 8 experts -> 1024 tokens per expert,
  // expert ffn 14336 SwiGLU.
  const auto v = preset_gemm_shapes("mixtral-8x7b", 1, false);
  EXPECT_TRUE(has(v, {1024, 2 * 14336, 4096}));
  EXPECT_TRUE(has(v, {1024, 4096, 14336}));
}

TEST(Plan, QuickSweepContents) {
  PlanOptions o;
  o.quick = true;
  o.gpus = 8;
  const Plan p = make_plan(o);
  // GEMMs: 3 squares x 5 types + 5 llama3-8b shapes in bf16 (none is square) = 20.
  EXPECT_EQ(p.gemm.size(), 20u);
  // 3 kernels x 3 sizes.
  EXPECT_EQ(p.memory_bound.size(), 9u);
  // Forward at seq 2048 and 4096, backward at 2048.
  ASSERT_EQ(p.attention.size(), 3u);
  EXPECT_TRUE(p.attention[2].backward);
  EXPECT_EQ(p.attention[2].seq, 2048);
  EXPECT_EQ(p.attention[2].batch, 4);  // 8192 tokens / 2048
  EXPECT_TRUE(p.launch);
  // 6 ops x groups {2, 8} x 4 sizes.
  EXPECT_EQ(p.collectives.size(), 48u);
  EXPECT_TRUE(p.skipped.empty());
}

TEST(Plan, FullSweepCoversEveryGroupSizeFrom1KiBTo4GiB) {
  PlanOptions o;
  o.gpus = 4;
  o.sections = {Section::collectives};
  const Plan p = make_plan(o);
  // 6 ops x groups {2, 3, 4} x 23 sizes (2^10 .. 2^32).
  EXPECT_EQ(p.collectives.size(), 6u * 3 * 23);
  EXPECT_EQ(p.collectives.front().bytes, 1024);
  EXPECT_EQ(p.collectives.back().bytes, std::int64_t{4} << 30);
  EXPECT_TRUE(p.gemm.empty());
  EXPECT_FALSE(p.launch);
}

TEST(Plan, FullGemmGridHasSquaresAndPresetShapesInEveryType) {
  PlanOptions o;
  o.sections = {Section::gemm};
  o.dtypes = {Dtype::bf16, Dtype::fp8};
  const Plan p = make_plan(o);
  ASSERT_FALSE(p.gemm.empty());
  EXPECT_EQ(p.gemm.size() % 2, 0u);  // the same shapes in both types
  const auto count = [&](GemmCase c) { return std::count(p.gemm.begin(), p.gemm.end(), c); };
  EXPECT_EQ(count({Dtype::fp8, 16384, 16384, 16384}), 1);
  EXPECT_EQ(count({Dtype::bf16, 8192, 128256, 4096}), 1);  // llama3-8b logits
  EXPECT_EQ(count({Dtype::fp32, 256, 256, 256}), 0);       // not asked for
}

TEST(Plan, Fp8AccumulationModesMultiplyTheFp8CasesOnly) {
  PlanOptions o;
  o.quick = true;
  o.sections = {Section::gemm};
  o.dtypes = {Dtype::bf16, Dtype::fp8};
  const Plan split = make_plan(o);  // the default: split only
  o.fp8_accumulation = {Fp8Accumulation::fast, Fp8Accumulation::split};
  const Plan both = make_plan(o);
  // Quick: squares 1024, 4096, 8192 in both types, llama3-8b's five forward GEMMs in bf16.
  const auto fp8 = [](const Plan& p, Fp8Accumulation a) {
    return std::count_if(p.gemm.begin(), p.gemm.end(), [&](const GemmCase& c) {
      return c.dtype == Dtype::fp8 && c.accumulation == a;
    });
  };
  EXPECT_EQ(fp8(split, Fp8Accumulation::split), 3);
  EXPECT_EQ(fp8(split, Fp8Accumulation::fast), 0);
  EXPECT_EQ(fp8(both, Fp8Accumulation::split), 3);
  EXPECT_EQ(fp8(both, Fp8Accumulation::fast), 3);
  EXPECT_EQ(both.gemm.size(), split.gemm.size() + 3);
  // Each shape's fast case comes just before its split one.
  const auto it = std::find(both.gemm.begin(), both.gemm.end(),
                            GemmCase{Dtype::fp8, 4096, 4096, 4096, Fp8Accumulation::fast});
  ASSERT_NE(it, both.gemm.end());
  EXPECT_EQ(*(it + 1), (GemmCase{Dtype::fp8, 4096, 4096, 4096, Fp8Accumulation::split}));
}

TEST(Plan, GivenShapesReplaceTheSweepsInEveryTypeAndSustainedRidesAlong) {
  PlanOptions o;
  o.quick = true;  // the quick rule (preset shapes in bf16 only) does not apply to given shapes
  o.sections = {Section::gemm};
  o.dtypes = {Dtype::bf16, Dtype::fp8};
  o.gemm_shapes = std::vector<LinearShape>{{2048, 9216, 12288}, {8192, 8192, 8192}};
  o.gemm_sustained = Seconds(30);
  const Plan p = make_plan(o);
  const std::vector<GemmCase> expected = {{Dtype::bf16, 2048, 9216, 12288},
                                          {Dtype::bf16, 8192, 8192, 8192},
                                          {Dtype::fp8, 2048, 9216, 12288},
                                          {Dtype::fp8, 8192, 8192, 8192}};
  EXPECT_EQ(p.gemm, expected);
  ASSERT_TRUE(p.gemm_sustained.has_value());
  EXPECT_DOUBLE_EQ(p.gemm_sustained->value(), 30.0);
  EXPECT_FALSE(make_plan(PlanOptions{}).gemm_sustained.has_value());
}

TEST(Plan, FullMemoryBoundSizesAreWholeUnits) {
  PlanOptions o;
  o.sections = {Section::memory_bound};
  const Plan p = make_plan(o);
  // 4 KiB .. 4 GiB by 4x = 11 sizes; row_reduce drops 4 KiB and 16 KiB (below one
  // 32 KiB row): 11 + 11 + 9.
  EXPECT_EQ(p.memory_bound.size(), 31u);
  EXPECT_EQ(p.memory_bound[11].kernel, MemoryKernel::elementwise);
  EXPECT_EQ(p.memory_bound[11].bytes, 4080);  // 4096 B rounded down to 85 x 48 B
  EXPECT_EQ(p.memory_bound[22].kernel, MemoryKernel::row_reduce);
  EXPECT_EQ(p.memory_bound[22].bytes, 64 * 1024);
}

TEST(Plan, OneGpuSkipsCollectivesAndSaysWhy) {
  PlanOptions o;
  o.gpus = 1;
  const Plan p = make_plan(o);
  EXPECT_TRUE(p.collectives.empty());
  ASSERT_EQ(p.skipped.size(), 1u);
  EXPECT_EQ(p.skipped[0].what, "collectives");
  EXPECT_EQ(p.skipped[0].reason, "1 GPU available: collectives need at least 2");
}

}  // namespace
}  // namespace orrery::profiler
