// The FP4 recipe (training.precision fp4, training.fp4; docs/model.md "FP4 recipe"): the
// bytes of one GEMM's casts under nvfp4 and mxfp4, its time on a B200 at the fp4 rate,
// the fp4 weight copies per GPU, and the layers the recipe keeps in bf16.
#include <gtest/gtest.h>

#include <string>
#include <utility>

#include "calibrate/compute_model.h"
#include "model/memory.h"
#include "model/op_builder.h"
#include "model/workload.h"
#include "tests/test_util.h"

namespace orrery {
namespace {

using testing::preset_scenario;

// One linear layer Y[m x n] = X[m x k] W[k x n], 4 micro-batches a step, weight cache on.
// m = 4096, k = 1024, n = 4096: X has m k = 4,194,304 elements, dY m n = 16,777,216,
// W k n = 4,194,304.
constexpr double kM = 4096, kK = 1024, kN = 4096;

Op fc1(Fp4Spec::Format format, const std::string& name = "mlp.fc1") {
  TrainingSpec t;
  t.precision = Precision::fp4;
  t.fp4 = Fp4Spec{};
  t.fp4->format = format;
  Shard s;
  s.microbatches = 4;
  const detail::OpBuilder b(t, s);
  return b.gemm(name, kM, kK, kN, kK * kN, kM * kK);
}

TEST(Fp4Recipe, ElementBytes) {
  // E2M1 is half a byte; nvfp4 adds one E4M3 byte per 16 elements, mxfp4 one E8M0 byte
  // per 32.
  EXPECT_DOUBLE_EQ(fp4_element_bytes(Fp4Spec::Format::nvfp4), 0.5625);
  EXPECT_DOUBLE_EQ(fp4_element_bytes(Fp4Spec::Format::mxfp4), 0.53125);
}

TEST(Fp4Recipe, Nvfp4CastBytes) {
  // q = 0.5625. Forward: X's amax pass (read 2) and cast (read 2, write row-wise and
  // column-wise copies 2 q): m k (4 + 1.125) = 4,194,304 x 5.125 = 21,495,808; the cached
  // weight's cast, the same 5.125 bytes an element, a quarter per micro-batch:
  // 4,194,304 x 5.125 / 4 = 5,373,952. Total 26,869,760.
  // Backward: dY likewise, 16,777,216 x 5.125 = 85,983,232.
  const Op op = fc1(Fp4Spec::Format::nvfp4);
  EXPECT_NEAR(op.aux_fwd_bytes.value(), 26869760.0, 1e-6);
  EXPECT_NEAR(op.aux_bwd_bytes.value(), 85983232.0, 1e-6);
  // The saved input is the column-wise copy: m k q = 2,359,296 bytes.
  EXPECT_NEAR(op.saved.value(), 2359296.0, 1e-6);
  // Both weight copies cached: k n 2 q = 4,718,592; an fp32 amax and scale for X, W, dY.
  EXPECT_NEAR(op.fp8_weight_cache.value(), 4718592.0, 1e-6);
  EXPECT_NEAR(op.fp8_scaling_state.value(), 24.0, 1e-9);
  // The GEMMs read the E4M3 scales: forward (m k + k n) / 16 = 524,288 bytes more than
  // the 16-bit GEMM's m k 2 + k n 2 = 16,777,216.
  EXPECT_NEAR(op.fwd_read.value(), 16777216.0 + 524288.0, 1e-6);
  EXPECT_FALSE(op.high_precision);
}

TEST(Fp4Recipe, Mxfp4CastBytes) {
  // q = 0.53125, no amax pass (the block scale comes from the block inside the cast).
  // Forward: m k (2 + 1.0625) = 4,194,304 x 3.0625 = 12,845,056, weight 12,845,056 / 4 =
  // 3,211,264: 16,056,320. Backward: 16,777,216 x 3.0625 = 51,380,224.
  const Op op = fc1(Fp4Spec::Format::mxfp4);
  EXPECT_NEAR(op.aux_fwd_bytes.value(), 16056320.0, 1e-6);
  EXPECT_NEAR(op.aux_bwd_bytes.value(), 51380224.0, 1e-6);
  EXPECT_NEAR(op.saved.value(), 4194304.0 * 0.53125, 1e-6);
  EXPECT_EQ(op.fp8_scaling_state.value(), 0.0);
}

TEST(Fp4Recipe, HeadAndRouterStayInBf16) {
  // NVFP4 paper section 4.1 and Megatron-Core: the output head and the router are not
  // Transformer Engine layers; they run at the 16-bit rate without casts.
  for (const char* name : {"head.output", "moe.router"}) {
    const Op op = fc1(Fp4Spec::Format::nvfp4, name);
    EXPECT_TRUE(op.high_precision) << name;
    EXPECT_EQ(op.aux_fwd_bytes.value(), 0.0) << name;
    EXPECT_NEAR(op.saved.value(), kM * kK * 2.0, 1e-6) << name;
  }
}

// Llama 3 8B on one DGX B200, tp 1, pp 1, dp 8, fp4 with a recipe.
Scenario llama8b(const std::string& fp4, const std::string& parallelism = "") {
  return preset_scenario("llama3-8b",
                         "tp: 1, pp: 1, dp: 8, microbatch: 1, global_batch: 32" + parallelism, 1,
                         "precision: fp4, fp4: {" + fp4 + "}", "dgx-b200");
}

TEST(Fp4Recipe, GemmTimeAtTheFp4RateOnB200) {
  // B200 with the GEMM ramp held at 1: fp4 plateau R4 = 9000 x 0.581 = 5229 TFLOP/s (the
  // preset applies fp8's fraction to fp4), bf16 R16 = 2250 x 0.581 = 1307.25.
  // m 16384, k 8192, n 8192: F = 2 m k n = 2,199,023,255,552 FLOP; casts zeroed; the
  // GEMM's 671 MB at 8 x 0.87 TB/s take 0.096 ms, so compute-bound.
  //   fc1 (fp4): forward F / R4 = 0.420544 ms, backward 2 F / R4 = 0.841087 ms;
  //   head (bf16): forward F / R16 = 1.682175 ms, backward 3.364350 ms.
  Scenario s = llama8b("");
  s.cluster.gpu.gemm_ramp = {{Seconds(1e-9), 1.0}, {Seconds(1.0), 1.0}};
  const auto model = make_roofline_model(s);
  constexpr double m = 16384, k = 8192, n = 8192;
  auto times = [&](const char* name) {
    const detail::OpBuilder b(s.training, Shard{});
    Op op = b.gemm(name, m, k, n, k * n, m * k);
    op.aux_fwd_bytes = op.aux_bwd_bytes = Bytes(0);
    return std::pair(model->op_time(op, Pass::forward).value(),
                     model->op_time(op, Pass::backward).value());
  };
  const auto fp4 = times("mlp.fc1");
  const auto head = times("head.output");
  EXPECT_NEAR(fp4.first, 0.420544e-3, 1e-9);
  EXPECT_NEAR(fp4.second, 0.841087e-3, 1e-9);
  EXPECT_NEAR(head.first, 1.682175e-3, 1e-9);
  EXPECT_NEAR(head.second, 3.364350e-3, 1e-9);
}

TEST(Fp4Recipe, WeightCopiesPerGpu) {
  // Llama 3 8B's Transformer Engine layers hold 218,103,808 parameters a layer x 32 =
  // 6,979,321,856 (fp8_recipe_test's sum). nvfp4 keeps two copies of q = 0.5625 bytes:
  // 6,979,321,856 x 1.125 = 7,851,737,088 bytes; mxfp4 x 1.0625 = 7,415,529,472.
  EXPECT_NEAR(estimate_memory(llama8b("")).stages[0].fp8_weight_cache.value(), 7851737088.0, 1.0);
  EXPECT_NEAR(estimate_memory(llama8b("format: mxfp4")).stages[0].fp8_weight_cache.value(),
              7415529472.0, 1.0);
  // ZeRO-3 gathers and frees each layer's weights: nothing cached.
  EXPECT_EQ(estimate_memory(llama8b("", ", zero_stage: 3")).stages[0].fp8_weight_cache.value(),
            0.0);
}

TEST(Fp4Recipe, DefaultRecipeUnderFp4) {
  // precision: fp4 alone gets the default recipe: nvfp4, no bf16 layers.
  const Scenario s = preset_scenario("llama3-8b", "tp: 1, pp: 1, dp: 8, global_batch: 32", 1,
                                     "precision: fp4", "dgx-b200");
  ASSERT_TRUE(s.training.fp4.has_value());
  EXPECT_EQ(s.training.fp4->format, Fp4Spec::Format::nvfp4);
  EXPECT_EQ(s.training.fp4->bf16_first + s.training.fp4->bf16_last, 0);
}

TEST(Fp4Recipe, Bf16LayersKeepTheirGemmsInSixteenBits) {
  // The paper's 12B run kept the first two and the last eight blocks in bf16; here first
  // 2, last 8 of Llama 3 8B's 32: layers 0-1 and 24-31 bf16 (no casts), 2-23 fp4.
  const Scenario s = llama8b("bf16_layers: {first: 2, last: 8}");
  const Workload w = build_workload(s.model, s.training, shard_of(s.parallelism));
  for (int i = 0; i < 32; ++i) {
    const Layer& l = w.layers[i + 1];  // after the embedding
    const bool bf16 = i < 2 || i >= 24;
    EXPECT_EQ(l.high_precision, bf16) << l.name;
    for (const Op& op : l.ops) {
      if (op.name != "mlp.fc1") continue;
      EXPECT_EQ(op.high_precision, bf16) << l.name;
      EXPECT_EQ(op.aux_fwd_bytes.value() > 0, !bf16) << l.name;
    }
  }
}

}  // namespace
}  // namespace orrery
