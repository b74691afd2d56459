// FLOPs per step against Narayanan et al. 2021 eq. 3 and hand derivations.
#include <gtest/gtest.h>

#include "model/analysis.h"
#include "tests/test_util.h"

namespace orrery {
namespace {

using testing::preset_scenario;

// Narayanan et al. 2021, eq. 3 (full recomputation, hardware FLOPs):
//   F = 96*B*s*l*h^2*(1 + s/(6h) + V/(16*l*h))
double narayanan_eq3(double B, double s, double l, double h, double V) {
  return 96.0 * B * s * l * h * h * (1.0 + s / (6.0 * h) + V / (16.0 * l * h));
}
// The same count without recomputation (model FLOPs; VALIDATION.md):
//   F = 72*B*s*l*h^2*(1 + s/(6h) + V/(12*l*h))
double model_flops_gpt(double B, double s, double l, double h, double V) {
  return 72.0 * B * s * l * h * h * (1.0 + s / (6.0 * h) + V / (12.0 * l * h));
}

struct GptRow {
  const char* preset;
  double l, h;
};

TEST(Flops, GptModelsMatchNarayananEquation3) {
  const GptRow rows[] = {{"gpt3-175b", 96, 12288},       {"narayanan-1.7b", 24, 2304},
                         {"narayanan-18.4b", 40, 6144},  {"narayanan-145.6b", 80, 12288},
                         {"narayanan-529.6b", 105, 20480}, {"narayanan-1008b", 128, 25600},
                         {"megatron-22b", 48, 6144},     {"mt-nlg-530b", 105, 20480}};
  const double B = 16, s = 2048, V = 51200;
  for (const auto& r : rows) {
    const Scenario full = preset_scenario(r.preset, "tp: 8, pp: 1, global_batch: 16", 1,
                                          "recompute: full, precision: fp16");
    const StepFigures f = analyse_step(full);
    EXPECT_NEAR(f.hardware_flops.value() / narayanan_eq3(B, s, r.l, r.h, V), 1.0, 1e-12)
        << r.preset;
    EXPECT_NEAR(f.model_flops.value() / model_flops_gpt(B, s, r.l, r.h, V), 1.0, 1e-12)
        << r.preset;
  }
}

TEST(Flops, SelectiveRecomputeAddsOnlyCoreAttention) {
  // Selective recompute re-runs Q K^T and P V: 2*s*s*h + 2*s*s*h per sample and layer.
  const Scenario sel = preset_scenario("gpt3-175b", "tp: 8, global_batch: 8", 1,
                                       "recompute: selective");
  const StepFigures f = analyse_step(sel);
  const double B = 8, s = 2048, l = 96, h = 12288;
  EXPECT_NEAR(f.hardware_flops.value() - f.model_flops.value(), B * l * 4.0 * s * s * h,
              1e-9 * f.model_flops.value());
}

TEST(Flops, Llama3_8BWithGqaAndSwiGlu) {
  // Per token and layer, forward: 2*h*(h + 2*kv*d) (QKV) + 2*h*h (output) + 2*3*h*f
  // (SwiGLU) + 4*s*h (Q K^T and P V); plus the LM head 2*h*V. Model FLOPs = 3x forward.
  const double h = 4096, kvd = 8 * 128, f = 14336, s = 8192, l = 32, V = 128256, B = 8;
  const double per_token =
      l * (2 * h * (h + 2 * kvd) + 2 * h * h + 6 * h * f + 4 * s * h) + 2 * h * V;
  const StepFigures fig =
      analyse_step(preset_scenario("llama3-8b", "tp: 1, global_batch: 8", 1, "", "dgx-h100"));
  EXPECT_NEAR(fig.model_flops.value() / (3.0 * per_token * B * s), 1.0, 1e-12);
  // No recompute: hardware FLOPs equal model FLOPs.
  EXPECT_DOUBLE_EQ(fig.hardware_flops.value(), fig.model_flops.value());
}

TEST(Flops, MixtralCountsTopKExpertsAndRouter) {
  // Mixtral: attention as Llama (kv = 8, d = 128), 2 of 8 SwiGLU experts per token,
  // router 2*h*E.
  const double h = 4096, kvd = 1024, f = 14336, s = 4096, l = 32, V = 32000, E = 8, k = 2;
  const double per_token =
      l * (2 * h * (h + 2 * kvd) + 2 * h * h + k * 6 * h * f + 2 * h * E + 4 * s * h) +
      2 * h * V;
  const StepFigures fig = analyse_step(
      preset_scenario("mixtral-8x7b", "tp: 1, global_batch: 8", 1, "", "dgx-h100"));
  EXPECT_NEAR(fig.model_flops.value() / (3.0 * per_token * 8 * s), 1.0, 1e-12);
}

TEST(Flops, CapacityFactorPadsHardwareButNotModelFlops) {
  const std::string yaml = R"(
cluster: {preset: dgx-h100}
model: {preset: mixtral-8x7b, moe: {capacity_factor: 1.25, pad_to_capacity: true,
                                  load_imbalance: 1}}
parallelism: {tp: 1, global_batch: 8}
)";
  const StepFigures padded = analyse_step(load_scenario_text(yaml, "cf.yaml"));
  const StepFigures dropless = analyse_step(
      preset_scenario("mixtral-8x7b", "tp: 1, global_batch: 8", 1, "", "dgx-h100"));
  EXPECT_DOUBLE_EQ(padded.model_flops.value(), dropless.model_flops.value());
  // Expert GEMMs: 3 (fwd+bwd) * 2 * k*T * 3*h*f per layer, 25 % more when padded.
  const double expert = 3.0 * 2.0 * 2 * (8 * 4096.0) * 3 * 4096.0 * 14336 * 32;
  EXPECT_NEAR(padded.hardware_flops.value() - dropless.hardware_flops.value(), 0.25 * expert,
              1e-9 * expert);
}

TEST(Flops, DroppedTokensAreNeitherExecutedNorCounted) {
  // Uniform routing under a capacity of 0.8: 1 - 0.8 = 20 % of the expert rows dropped,
  // from both the executed and the model FLOPs (expert GEMMs as in the test above).
  const std::string yaml = R"(
cluster: {preset: dgx-h100}
model: {preset: mixtral-8x7b, moe: {capacity_factor: 0.8, load_imbalance: 1}}
parallelism: {tp: 1, global_batch: 8}
)";
  const StepFigures dropped = analyse_step(load_scenario_text(yaml, "cf.yaml"));
  const StepFigures dropless =
      analyse_step(preset_scenario("mixtral-8x7b", "tp: 1, global_batch: 8", 1, "", "dgx-h100"));
  const double expert = 3.0 * 2.0 * 2 * (8 * 4096.0) * 3 * 4096.0 * 14336 * 32;
  EXPECT_NEAR(dropless.hardware_flops.value() - dropped.hardware_flops.value(), 0.2 * expert,
              1e-9 * expert);
  EXPECT_NEAR(dropless.model_flops.value() - dropped.model_flops.value(), 0.2 * expert,
              1e-9 * expert);
}

TEST(Flops, PerGpuIsTotalOverGpus) {
  const StepFigures f = analyse_step(preset_scenario("gpt3-175b", "tp: 8, pp: 8, global_batch: 1536",
                                                     128, "recompute: full"));
  EXPECT_DOUBLE_EQ(f.model_flops_per_gpu.value() * 1024, f.model_flops.value());
}

}  // namespace
}  // namespace orrery
