// Kineto kernels mapped to op classes, stored in the profile, and the times the profile's
// compute model gives the scenario's own ops from them, on this GPU and projected to
// another (docs/model.md, "Measured kernels" and "Projection to another GPU").
#include "calibrate/kernel_classes.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "calibrate/calibrate.h"
#include "calibrate/profile_model.h"
#include "core/error.h"
#include "model/workload.h"
#include "tests/test_util.h"

namespace orrery {
namespace {

const std::string kFixture =
    std::string(ORRERY_SOURCE_DIR) + "/tests/calibrate/data/kineto_llama3_8b_h100.json";

std::string write_temp(const std::string& name, const std::string& text) {
  const auto dir = std::filesystem::temp_directory_path() /
                   fmt::format("orrery_kernel_classes_{}", static_cast<long>(::getpid()));
  std::filesystem::create_directories(dir);
  const auto path = (dir / name).string();
  std::ofstream(path) << text;
  return path;
}

// Llama 3 8B, micro-batch 1 of 8192 tokens, no tensor parallelism, bf16 (the fixture's
// shapes): attn.qkv is [8192, 4096] x [4096, 6144], attn.proj [8192, 4096] x [4096, 4096],
// mlp.fc2 [8192, 14336] x [14336, 4096]; attn.core 32 heads of 128 over 8192 x 8192.
Scenario scenario(const std::string& system, const std::string& profile) {
  return load_scenario_text(
      fmt::format("cluster: {{preset: {}, calibration: {}}}\nmodel: {{preset: llama3-8b}}\n"
                  "parallelism: {{tp: 1, dp: 8, microbatch: 1, global_batch: 8}}\n"
                  "training: {{precision: bf16}}\n",
                  system, profile),
      system + ".yaml");
}

const Op& op_named(const Workload& w, const std::string& name) {
  for (const Op& op : w.layers[1].ops)
    if (op.name == name) return op;
  throw std::runtime_error("no op " + name);
}

TEST(MeasuredKernels, TheFixtureMapsToOneEntryPerClassAndShape) {
  const std::vector<MeasuredKernel> m = measured_kernels(read_kineto_file(kFixture));
  ASSERT_EQ(m.size(), 6u);
  // Two calls of the forward GEMM (650 and 660 us): median 655 us; then the data-gradient
  // GEMM (k = 6144) of one call.
  EXPECT_EQ(m[0].cls, "gemm");
  EXPECT_EQ(m[0].dtype, Dtype::bf16);
  EXPECT_EQ(m[0].shape.m, 8192);
  EXPECT_EQ(m[0].shape.n, 6144);
  EXPECT_EQ(m[0].shape.k, 4096);
  EXPECT_EQ(m[0].calls, 2);
  EXPECT_NEAR(m[0].time.value(), 655e-6, 1e-12);
  EXPECT_EQ(m[1].shape.k, 6144);
  EXPECT_NEAR(m[1].time.value(), 700e-6, 1e-12);
  // Attention: F = 4 x 1 x 32 x 8192 x 8192 x 128 = 1099511627776 for both passes; the
  // backward's three kernels summed: 100 + 5800 + 100 = 6000 us.
  EXPECT_EQ(m[2].cls, "attention");
  EXPECT_EQ(m[2].pass, "forward");
  EXPECT_DOUBLE_EQ(m[2].flops, 1099511627776.0);
  EXPECT_NEAR(m[2].time.value(), 2500e-6, 1e-12);
  EXPECT_EQ(m[3].pass, "backward");
  EXPECT_DOUBLE_EQ(m[3].flops, 1099511627776.0);
  EXPECT_NEAR(m[3].time.value(), 6000e-6, 1e-12);
  // Layer norm: input 8192 x 4096 bf16 (67108864 B) + weight and bias 2 x 8192 B + an
  // output like the input (67108864 B) = 134234112 B.
  EXPECT_EQ(m[4].cls, "norm");
  EXPECT_DOUBLE_EQ(m[4].bytes, 134234112.0);
  // NCCL all-reduce of 16777216 bf16 elements over 8 ranks: 33554432 B.
  EXPECT_EQ(m[5].cls, "collective");
  EXPECT_EQ(m[5].collective, CollectiveOp::all_reduce);
  EXPECT_EQ(m[5].ranks, 8);
  EXPECT_DOUBLE_EQ(m[5].bytes, 33554432.0);
  EXPECT_NEAR(m[5].time.value(), 400e-6, 1e-12);
  EXPECT_EQ(m[5].gpu, "NVIDIA H100 80GB HBM3");
}

TEST(MeasuredKernels, LinearAndElementwiseAreSizedAndUnsizedKernelsLeftOut) {
  const char* trace = R"({"traceEvents": [
  {"ph": "X", "cat": "cpu_op", "name": "aten::linear", "ts": 0, "dur": 1,
   "args": {"External id": 1, "Input Dims": [[2, 512, 1024], [3072, 1024], [3072]],
            "Input type": ["c10::Half", "c10::Half", "c10::Half"]}},
  {"ph": "X", "cat": "kernel", "name": "ampere_fp16_s16816gemm", "ts": 1, "dur": 40,
   "args": {"External id": 1}},
  {"ph": "X", "cat": "cpu_op", "name": "aten::add", "ts": 2, "dur": 1,
   "args": {"External id": 2, "Input Dims": [[8, 8], [8, 8], []],
            "Input type": ["float", "float", "Scalar"]}},
  {"ph": "X", "cat": "kernel", "name": "vectorized_elementwise_kernel<4, AddFunctor<float>>",
   "ts": 3, "dur": 2, "args": {"External id": 2}},
  {"ph": "X", "cat": "kernel", "name": "flash_fwd_kernel", "ts": 5, "dur": 9, "args": {}},
  {"ph": "X", "cat": "kernel", "name": "ncclDevKernel_AllGather_RING_LL", "ts": 6, "dur": 9,
   "args": {}}
  ]})";
  const std::vector<MeasuredKernel> m = measured_kernels(read_kineto_text(trace, "t.json"));
  ASSERT_EQ(m.size(), 2u);
  // aten::linear: x [2, 512, 1024], W [3072, 1024]: m = 2 x 512 = 1024, n = 3072, k = 1024.
  EXPECT_EQ(m[0].cls, "gemm");
  EXPECT_EQ(m[0].dtype, Dtype::fp16);
  EXPECT_EQ(m[0].shape.m, 1024);
  EXPECT_EQ(m[0].shape.n, 3072);
  EXPECT_EQ(m[0].shape.k, 1024);
  // aten::add of two fp32 8 x 8 tensors (the scalar alpha skipped): 2 x 256 B read + 256 B
  // written = 768 B.
  EXPECT_EQ(m[1].cls, "elementwise");
  EXPECT_DOUBLE_EQ(m[1].bytes, 768.0);
  // The flash kernel without its SDPA op and the NCCL kernel without collective metadata
  // have no size: left out.
}

TEST(MeasuredKernels, TheProfileWritesThemAndReadsThemBack) {
  const Profile p = calibrate({{kFixture, ""}});
  const Profile back = read_profile_text(render_profile(p), "back.yaml");
  ASSERT_EQ(back.measured.size(), p.measured.size());
  for (std::size_t i = 0; i < p.measured.size(); ++i) {
    EXPECT_EQ(back.measured[i].cls, p.measured[i].cls);
    EXPECT_EQ(back.measured[i].kernel, p.measured[i].kernel);
    EXPECT_DOUBLE_EQ(back.measured[i].flops, p.measured[i].flops);
    EXPECT_DOUBLE_EQ(back.measured[i].bytes, p.measured[i].bytes);
    EXPECT_NEAR(back.measured[i].time.value(), p.measured[i].time.value(), 1e-12);
  }
  EXPECT_THROW(read_profile_text("format: orrery-profile\nversion: 1\nprovenance: {inputs: []}\n"
                                 "measured_kernels:\n  - {class: gemm, dtype: bf16, m: 1, n: 1, "
                                 "calls: 1, time: 1 us, kernel: k, file: f}\n",
                                 "bad.yaml"),
               InputError);  // a GEMM without k
}

TEST(MeasuredKernels, TheScenariosOpsTakeTheTraceTimesAsDerivedByHand) {
  const std::string text = render_profile(calibrate({{kFixture, ""}}));
  const std::string path = write_temp("h100.yaml", text);
  const Scenario s = scenario("dgx-h100", path);
  const auto model = make_compute_model(s);
  // The same profile without its measured kernels: what times the ops no entry covers.
  Profile bare = read_profile_text(text, path);
  bare.measured.clear();
  const auto fallback = make_profile_model(s, bare, path);
  const Workload w = build_workload(s.model, s.training, shard_of(s.parallelism));
  const double us = 1e-6;
  // attn.qkv forward: the exact entry (m 8192, n 6144, k 4096), median 655 us.
  const Op& qkv = op_named(w, "attn.qkv");
  EXPECT_NEAR(model->op_time(qkv, Pass::forward).value(), 655 * us, 1e-12);
  // Backward: data gradient [8192, 6144] x [6144, 4096] exact, 700 us; weight gradient
  // (k 8192) not measured: the nearest FLOPs, all three GEMM entries at 2 x 8192 x 4096 x
  // 6144, the first (655 us) at its rate: 655 us. 700 + 655 = 1355 us.
  EXPECT_NEAR(model->op_time(qkv, Pass::backward).value(), 1355 * us, 1e-12);
  // attn.proj: 2 x 8192 x 4096 x 4096 = 274877906944 FLOP, 2/3 of the entry's
  // 412316860416, within 2x: at its rate, 655 x 2/3 = 436.667 us.
  const Op& proj = op_named(w, "attn.proj");
  EXPECT_NEAR(model->op_time(proj, Pass::forward).value(), 655.0 * 2 / 3 * us, 1e-12);
  // mlp.fc2: 962072674304 FLOP, 2.33x the entries: not measured, timed as without them.
  const Op& fc2 = op_named(w, "mlp.fc2");
  EXPECT_EQ(model->op_time(fc2, Pass::forward), fallback->op_time(fc2, Pass::forward));
  // attn.core: exact FLOPs, 2500 us forward and 6000 us backward.
  const Op& core = op_named(w, "attn.core");
  EXPECT_NEAR(model->op_time(core, Pass::forward).value(), 2500 * us, 1e-12);
  EXPECT_NEAR(model->op_time(core, Pass::backward).value(), 6000 * us, 1e-12);
  // attn.norm moves 134217728 B forward (entry 134234112 B, 60 us): 60 x 134217728 /
  // 134234112 = 59.99268 us; backward 201326592 B, 1.4998x: 60 x 201326592 / 134234112 =
  // 89.98902 us.
  const Op& norm = op_named(w, "attn.norm");
  EXPECT_NEAR(model->op_time(norm, Pass::forward).value(), 60 * us * 134217728 / 134234112, 1e-12);
  EXPECT_NEAR(model->op_time(norm, Pass::backward).value(), 60 * us * 201326592 / 134234112, 1e-12);
  // The residual add: no elementwise entry.
  const Op& add = op_named(w, "attn.residual");
  EXPECT_EQ(model->op_time(add, Pass::forward), fallback->op_time(add, Pass::forward));

  std::string explained;
  for (const auto& [cls, line] : model->explain()) explained += cls + ": " + line + "\n";
  EXPECT_NE(explained.find("measured gemm: " + kFixture +
                           " kernel 'sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x256x64_"
                           "cublas' (aten::mm) bf16 m=8192 n=6144 k=4096: 655.00 us, exact and "
                           "rate-scaled; for attn.proj fwd, attn.qkv bwd, attn.qkv fwd"),
            std::string::npos)
      << explained;
  EXPECT_NE(explained.find("not measured: attn.residual fwd"), std::string::npos) << explained;
  EXPECT_NE(explained.find("mlp.fc2 fwd"), std::string::npos) << explained;
  EXPECT_EQ(model->band_half_width(), 0);
}

TEST(Projection, AnH100TraceTimesAnH200ScenarioByDatasheetRatios) {
  const std::string path = write_temp("h100p.yaml", render_profile(calibrate({{kFixture, ""}})));
  const auto h100 = make_compute_model(scenario("dgx-h100", path));
  const Scenario s = scenario("dgx-h200", path);
  const auto h200 = make_compute_model(s);
  const Workload w = build_workload(s.model, s.training, shard_of(s.parallelism));
  // Memory-bound: HBM 3.35 TB/s (NVIDIA H100 datasheet, SXM) against 4.8 TB/s (NVIDIA H200
  // datasheet, SXM): the norm's time x 3.35 / 4.8.
  const Op& norm = op_named(w, "attn.norm");
  EXPECT_NEAR(h200->op_time(norm, Pass::forward).value(),
              h100->op_time(norm, Pass::forward).value() * 3.35 / 4.8, 1e-12);
  // attn.qkv is compute-bound on the H100 (412316860416 FLOP over 2 x (8192 x 4096 + 4096 x
  // 6144 + 8192 x 6144) = 218103808 B: 1890 FLOP/B against the ridge 989.4 / 3.35 = 295):
  // bf16 989.4 TFLOP/s on both datasheets, so 655 us stays.
  EXPECT_NEAR(h200->op_time(op_named(w, "attn.qkv"), Pass::forward).value(), 655e-6, 1e-12);
  EXPECT_NEAR(h200->op_time(op_named(w, "attn.core"), Pass::forward).value(), 2500e-6, 1e-12);
  // The band: the presets' measured fractions differ most for HBM, STREAM copy 0.835 of
  // 4.8 TB/s on the H200 against 0.87 of 3.35 TB/s on the H100: |0.835 / 0.87 - 1| = 4.02 %
  // (bf16 GEMM plateau 0.690 / 0.698: 1.15 %; attention 0.33 both: 0).
  EXPECT_NEAR(h200->band_half_width(), 1 - 0.835 / 0.87, 1e-12);
  std::string explained;
  for (const auto& [cls, line] : h200->explain()) explained += cls + ": " + line + "\n";
  EXPECT_NE(explained.find("projected: measured on 'NVIDIA H100 80GB HBM3' (preset "
                           "h100-sxm5-80gb), projected to 'NVIDIA H200 SXM 141GB'"),
            std::string::npos)
      << explained;
  EXPECT_NE(explained.find("projected: time x 0.6979: HBM 3.35 / 4.8 TB/s; measured fractions "
                           "differ by 4.0 %"),
            std::string::npos)
      << explained;
  // The entry's own 60 us, projected: 60 x 3.35 / 4.8 = 41.875 us.
  EXPECT_NE(explained.find("128.02 MiB: 41.87 us projected x 0.6979 (HBM 3.35 / 4.8 TB/s) from "
                           "h100-sxm5-80gb, rate-scaled; for attn.norm fwd"),
            std::string::npos)
      << explained;
}

TEST(Projection, AFigureWithNoDatasheetRatioIsRefusedByName) {
  // An fp8 GEMM measured on an H100 cannot be projected to an A100: no fp8 peak there.
  Profile p;
  p.inputs.push_back({"t.json", "kineto", "NVIDIA H100 80GB HBM3", ""});
  MeasuredKernel m;
  m.cls = "gemm";
  m.dtype = Dtype::fp8;
  m.shape = {4096, 4096, 4096};
  m.flops = gemm_flops(m.shape);
  m.time = Seconds(1e-4);
  m.kernel = "k";
  m.file = "t.json";
  p.measured.push_back(m);
  const Scenario a100 = scenario("dgx-a100", "unused.yaml");
  try {
    project_profile(a100, p);
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    EXPECT_EQ(e.key(), "cluster.calibration");
    EXPECT_NE(e.why().find("measured gemm fp8 m=4096 n=4096 k=4096"), std::string::npos) << e.why();
    EXPECT_NE(e.why().find("has no fp8 peak"), std::string::npos) << e.why();
  }
  // A GPU no preset names cannot be projected at all.
  p.inputs[0].gpu = "NVIDIA L40S";
  p.measured[0].dtype = Dtype::bf16;
  try {
    project_profile(a100, p);
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(e.why().find("no GPU preset names that GPU"), std::string::npos) << e.why();
  }
  // The scenario's own GPU: nothing projected.
  p.inputs[0].gpu = "NVIDIA A100-SXM4-80GB";
  const Profile same = project_profile(a100, p);
  EXPECT_TRUE(same.projected.empty());
  EXPECT_EQ(same.measured[0].time, p.measured[0].time);
}

}  // namespace
}  // namespace orrery
