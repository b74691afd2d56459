// The whole calibrate path on every input kind, the profile read back, and the
// ComputeModel built from a profile with its roofline fallbacks.
#include <gtest/gtest.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "calibrate/calibrate.h"
#include "calibrate/profile_model.h"
#include "core/error.h"
#include "tests/test_util.h"

namespace orrery {
namespace {

std::string write_temp(const std::string& name, const std::string& text) {
  const auto dir = std::filesystem::temp_directory_path() /
                   fmt::format("orrery_profile_test_{}", static_cast<long>(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string p = (dir / name).string();
  std::ofstream(p, std::ios::binary) << text;
  return p;
}

// Two calls of aten::mm (4096x1024 @ 1024x2048, bf16): one launches two kernels (27.25 +
// 2.75 us = 30 us), one a single kernel of 34 us; an unlinked elementwise kernel of 3 us.
// Made-up numbers.
const char* kTrace = R"({"traceEvents": [
  {"ph": "X", "cat": "cpu_op", "name": "aten::mm", "ts": 1, "dur": 9,
   "args": {"External id": 7, "Input Dims": [[4096, 1024], [1024, 2048]],
            "Input type": ["c10::BFloat16", "c10::BFloat16"]}},
  {"ph": "X", "cat": "kernel", "name": "gemm_a", "ts": 2, "dur": 27.25, "args": {"External id": 7}},
  {"ph": "X", "cat": "kernel", "name": "splitk_reduce", "ts": 30, "dur": 2.75, "args": {"External id": 7}},
  {"ph": "X", "cat": "cpu_op", "name": "aten::mm", "ts": 40, "dur": 9,
   "args": {"External id": 8, "Input Dims": [[4096, 1024], [1024, 2048]],
            "Input type": ["c10::BFloat16", "c10::BFloat16"]}},
  {"ph": "X", "cat": "kernel", "name": "gemm_a", "ts": 50, "dur": 34, "args": {"External id": 8}},
  {"ph": "X", "cat": "kernel", "name": "vectorized_elementwise_kernel", "ts": 90, "dur": 3}
]})";

// Memory-bound copies on t = 3 us + bytes / 2 TB/s, launch 2, 3, 4 us, one attention row.
const char* kMeasurements = R"(format: orrery-measurements
version: 1
provenance: {tool: orrery-profile 0.1.0, date: "2026-11-27T01:23:45Z", host: h, gpu: G,
  gpu_count: 1, sm_count: 1, sm_clock_mhz: 1, memory_clock_mhz: 1, memory: 1 GiB,
  compute_capability: "9.0", driver: "1", cuda_runtime: "1", cublas: "1", cudnn: none,
  nccl: "1", timing: fake, warmup: 1, repetitions: 1}
memory_bound:
  - {kernel: copy, bytes: 1 MB, median: 3.5 us, p10: 3.5 us, p90: 3.5 us}
  - {kernel: copy, bytes: 10 MB, median: 8 us, p10: 8 us, p90: 8 us}
  - {kernel: copy, bytes: 100 MB, median: 53 us, p10: 53 us, p90: 53 us}
launch:
  - {kernel: empty, median: 2 us, p10: 2 us, p90: 2 us}
  - {kernel: empty, median: 3 us, p10: 3 us, p90: 3 us}
  - {kernel: empty, median: 4 us, p10: 4 us, p90: 4 us}
attention:
  - {implementation: cudnn_fused, dtype: bf16, pass: forward, batch: 1, heads: 1, seq: 128,
     head_dim: 64, causal: true, median: 10 us, p10: 10 us, p90: 10 us}
)";

std::string as_matmul(std::string t) {
  for (auto at = t.find("aten::mm"); at != std::string::npos; at = t.find("aten::mm"))
    t.replace(at, 8, "aten::matmul");
  return t;
}

TEST(Calibrate, TraceGivesOpTimesAndMeasurementsGiveMemoryAndLaunch) {
  // aten::matmul calls are timed per op but not harvested as GEMM samples.
  const Profile p = calibrate({{write_temp("t.json", as_matmul(kTrace)), ""},
                               {write_temp("m.yaml", kMeasurements), ""}});
  ASSERT_EQ(p.inputs.size(), 2u);
  EXPECT_EQ(p.inputs[0].kind, "kineto");
  EXPECT_EQ(p.inputs[1].kind, "measurements");
  ASSERT_EQ(p.op_times.size(), 2u);
  // Sorted by op name: "aten::mm" before the unlinked kernel.
  EXPECT_EQ(p.op_times[0].op, "aten::matmul");
  EXPECT_EQ(p.op_times[0].shapes, "[[4096, 1024], [1024, 2048]]");
  EXPECT_EQ(p.op_times[0].calls, 2);
  EXPECT_NEAR(p.op_times[0].median.value(), 32e-6, 1e-12);  // median of 30 and 34 us
  EXPECT_NEAR(p.op_times[0].min.value(), 30e-6, 1e-12);
  EXPECT_EQ(p.op_times[1].op, "vectorized_elementwise_kernel");
  ASSERT_EQ(p.memory.size(), 1u);
  EXPECT_NEAR(p.memory[0].alpha.value(), 3e-6, 1e-12);
  EXPECT_NEAR(p.memory[0].bandwidth.value(), 2e12, 1e3);
  ASSERT_TRUE(p.launch);
  EXPECT_NEAR(p.launch->overhead.value(), 3e-6, 1e-15);
  ASSERT_EQ(p.not_fitted.size(), 1u);
  EXPECT_NE(p.not_fitted[0].find("attention: 1 measured rows"), std::string::npos);
}

TEST(Calibrate, Fp8FastAccumulationRowsAreReadButNotFitted) {
  // Two fp8 shapes with split accumulation (one row without the field: split) and one
  // with fast: the fp8 family sees 2 shapes, too few (it needs 3), and the fast row is
  // reported on its own; neither mixes the two modes into one fit.
  std::string m = kMeasurements;
  m += "gemm:\n"
       "  - {dtype: fp8, m: 4096, n: 4096, k: 4096, median: 100 us, p10: 100 us, p90: 100 us}\n"
       "  - {dtype: fp8, accumulation: split, m: 8192, n: 8192, k: 8192, median: 700 us, "
       "p10: 700 us, p90: 700 us}\n"
       "  - {dtype: fp8, accumulation: fast, m: 2048, n: 2048, k: 2048, median: 20 us, "
       "p10: 20 us, p90: 20 us}\n";
  const Profile p = calibrate({{write_temp("fp8.yaml", m), ""}});
  EXPECT_TRUE(p.gemm.empty());
  ASSERT_EQ(p.not_fitted.size(), 3u);
  EXPECT_EQ(p.not_fitted[0],
            "gemm fp8: too few points to fit this family and hold one out: it needs at least 3 "
            "distinct shapes, the inputs give 2");
  EXPECT_EQ(p.not_fitted[1],
            "gemm fp8 fast accumulation: 1 measured rows read; the fp8 family is fitted from "
            "split accumulation only");
}

TEST(Calibrate, AFamilyWithTooFewPointsIsRefusedAndTheRestFitted) {
  // Two aten::mm calls of one shape are one shape: too few to fit and hold one out. The
  // per-op times are still kept.
  const Profile p = calibrate({{write_temp("t.json", kTrace), ""}});
  EXPECT_TRUE(p.gemm.empty());
  EXPECT_EQ(p.op_times.size(), 2u);
  ASSERT_EQ(p.not_fitted.size(), 1u);
  EXPECT_EQ(p.not_fitted[0],
            "gemm bf16: too few points to fit this family and hold one out: it needs at least 3 "
            "distinct shapes, the inputs give 1");
  // One launch row (as in the contract's example) is refused; the copies are fitted.
  std::string one = kMeasurements;
  one.erase(one.find("  - {kernel: empty, median: 3 us"), std::string("  - {kernel: empty, median: 3 us, p10: 3 us, p90: 3 us}\n").size());
  one.erase(one.find("  - {kernel: empty, median: 4 us"), std::string("  - {kernel: empty, median: 4 us, p10: 4 us, p90: 4 us}\n").size());
  const Profile q = calibrate({{write_temp("one.yaml", one), ""}});
  EXPECT_FALSE(q.launch);
  EXPECT_EQ(q.memory.size(), 1u);
  ASSERT_GE(q.not_fitted.size(), 1u);
  EXPECT_EQ(q.not_fitted[0],
            "launch empty kernel: too few points to fit this family and hold one out: it needs "
            "at least 2 measurements, the inputs give 1");
}

TEST(Calibrate, TraceGemmsJoinTheGemmFit) {
  // One GEMM shape from the trace (two calls, median 32 us) and two more from a second
  // trace make three shapes: enough to fit bf16.
  std::string t2 = kTrace;
  t2.replace(t2.find("[[4096, 1024], [1024, 2048]]"), 28, "[[8192, 1024], [1024, 2048]]");
  t2.replace(t2.find("[[4096, 1024], [1024, 2048]]"), 28, "[[1024, 1024], [1024, 1024]]");
  const Profile p = calibrate({{write_temp("a.json", kTrace), ""}, {write_temp("b.json", t2), ""}});
  ASSERT_EQ(p.gemm.size(), 1u);
  EXPECT_EQ(p.gemm[0].dtype, Dtype::bf16);
  ASSERT_EQ(p.gemm[0].points.size(), 3u);
  // 4096 x 2048 x 1024 (m x n x k): F = 2 * 4096 * 2048 * 1024 = 1.718e10 in 32 us.
  EXPECT_EQ(p.gemm[0].shapes[1].m, 4096);
  EXPECT_EQ(p.gemm[0].shapes[1].n, 2048);
  EXPECT_EQ(p.gemm[0].shapes[1].k, 1024);
  EXPECT_NEAR(p.gemm[0].points[1].time.value(), 32e-6, 1e-12);
}

// A GEMM with an odd dimension (GPT-2's 50,257-token head: n odd in the forward, m in the
// weight gradient's aten::mm of dY^T, a transposed view, by X) runs cuBLAS's alignment-1 kernels, about a fifth of the rate of its
// aligned neighbours (calibrate/data/h200-20261204): it stays an op time, measured at its
// own shape, but does not join the family fit. With the three aligned shapes of
// TraceGemmsJoinTheGemmFit and two odd ones, the fit still has those three points.
TEST(Calibrate, GemmsWithAnOddDimensionStayOutOfTheFit) {
  std::string t2 = kTrace;
  t2.replace(t2.find("[[4096, 1024], [1024, 2048]]"), 28, "[[8192, 1024], [1024, 2048]]");
  t2.replace(t2.find("[[4096, 1024], [1024, 2048]]"), 28, "[[1024, 1024], [1024, 1024]]");
  std::string odd = kTrace;
  odd.replace(odd.find("[[4096, 1024], [1024, 2048]]"), 28, "[[8192, 768], [768, 50257]]");
  odd.replace(odd.find("[[4096, 1024], [1024, 2048]]"), 28, "[[50257, 8192], [8192, 768]]");
  const Profile p = calibrate({{write_temp("a.json", kTrace), ""},
                               {write_temp("b.json", t2), ""},
                               {write_temp("odd.json", odd), ""}});
  ASSERT_EQ(p.gemm.size(), 1u);
  EXPECT_EQ(p.gemm[0].points.size(), 3u);
  for (const GemmShape& s : p.gemm[0].shapes) {
    EXPECT_NE(s.n, 50257);
    EXPECT_NE(s.m, 50257);
  }
  bool named = false;
  for (const auto& in : p.inputs)
    if (in.detail.find("2 GEMM calls (aten::mm, aten::addmm; 2 with an odd dimension, left out of "
                     "the GEMM fit)") != std::string::npos)
      named = true;
  EXPECT_TRUE(named);
}

TEST(Calibrate, NoInputAndAnUnknownInputAreErrors) {
  EXPECT_THROW(calibrate({}), InputError);
  try {
    calibrate({{write_temp("x.csv", "a,b\n1,2\n"), ""}});
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("not a known input"), std::string::npos);
  }
}

const std::string kLog = std::string(ORRERY_SOURCE_DIR) +
                         "/tests/calibrate/data/nd-h100-v5_all_reduce_perf.log";
const std::string kGemm = std::string(ORRERY_SOURCE_DIR) +
                          "/tests/calibrate/data/nd-h100-v5_gemm_fp8.yaml";

TEST(ProfileFile, ReadsBackWhatItWrote) {
  const Profile p = calibrate({{kLog, ""}, {kGemm, ""}, {write_temp("m.yaml", kMeasurements), ""}});
  const std::string text = render_profile(p);
  const Profile q = read_profile_text(text, "p.yaml");
  ASSERT_EQ(q.inputs.size(), 3u);
  EXPECT_EQ(q.inputs[0].kind, "nccl-tests");
  ASSERT_EQ(q.collectives.size(), 1u);
  ASSERT_EQ(q.collectives[0].points.size(), 24u);
  // Written to six significant digits: predictions agree to 1e-5.
  for (double size : {3e3, 1048576.0, 5e6, 3e8, 8589934592.0, 2e10}) {
    EXPECT_NEAR(q.collectives[0].busbw(Bytes(size)) / p.collectives[0].busbw(Bytes(size)), 1.0,
                1e-5)
        << size;
  }
  EXPECT_NEAR(q.collectives[0].points[10].held_out_error, -0.0372, 1e-9);  // 1 MiB: -3.72 %
  ASSERT_EQ(q.gemm.size(), 1u);
  for (const auto& s : p.gemm[0].shapes)
    EXPECT_NEAR(q.gemm[0].rate(s) / p.gemm[0].rate(s), 1.0, 1e-5);
  EXPECT_EQ(q.gemm[0].memory_bound, p.gemm[0].memory_bound);
  ASSERT_EQ(q.memory.size(), 1u);
  EXPECT_NEAR(q.memory[0].bandwidth.value(), 2e12, 2e12 * 1e-5);
  ASSERT_TRUE(q.launch);
  EXPECT_EQ(q.launch->points.size(), 3u);
  EXPECT_EQ(q.not_fitted, p.not_fitted);
  // Rendered again, the collectives are the same bytes (held-out means recomputed from
  // rounded points may move in the last digit elsewhere).
  const std::string again = render_profile(q);
  EXPECT_EQ(again.substr(0, again.find("gemm:")), text.substr(0, text.find("gemm:")));
}

std::string profile_error(const std::string& text) {
  try {
    read_profile_text(text, "p.yaml");
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(ProfileFile, NamesWithQuotesAndControlCharactersReadBack) {
  Profile p;
  p.op_times.push_back({"k<\"q\">\\x\n\ty\x01", "", "", 1, Seconds(1e-6), Seconds(1e-6),
                        Seconds(1e-6)});
  const Profile q = read_profile_text(render_profile(p), "p.yaml");
  ASSERT_EQ(q.op_times.size(), 1u);
  EXPECT_EQ(q.op_times[0].op, p.op_times[0].op);
}

TEST(ProfileFile, BadProfilesAreErrorsNamingLineAndKey) {
  const std::string text = render_profile(calibrate({{kLog, ""}}));
  std::string typo = text;
  typo.replace(typo.find("alpha: "), 7, "alfa: ");
  const std::string e = profile_error(typo);
  EXPECT_NE(e.find("p.yaml:12"), std::string::npos) << e;
  EXPECT_NE(e.find("did you mean 'alpha'"), std::string::npos) << e;
  std::string unit = text;
  unit.replace(unit.find("beta: 246.927 GB/s"), 18, "beta: 246.927 GB");
  EXPECT_NE(profile_error(unit).find("'collectives[0].beta' = '246.927 GB'"), std::string::npos)
      << profile_error(unit);
  EXPECT_NE(profile_error("format: orrery-measurements\nversion: 1\n").find("orrery-profile"),
            std::string::npos);
}

// A profile made by hand: bf16 GEMMs on a compute roof rising from 100 TFLOP/s at 1e9
// FLOP to 200 TFLOP/s at 1e12 FLOP, no memory roof; elementwise t = 2 us + bytes / 1 TB/s;
// launch 3 us.
Profile hand_profile() {
  Profile p;
  GemmFit g;
  g.dtype = Dtype::bf16;
  g.compute_roof = {{1e9, 100e12}, {1e12, 200e12}};
  p.gemm.push_back(g);
  MemoryFit m;
  m.kernel = "elementwise";
  m.alpha = Seconds(2e-6);
  m.bandwidth = Bandwidth(1e12);
  p.memory.push_back(m);
  LaunchFit l;
  l.overhead = Seconds(3e-6);
  p.launch = l;
  return p;
}

TEST(ProfileModel, TimesOpsFromTheProfileAndFallsBackToTheRoofline) {
  const Scenario s = testing::preset_scenario("llama3-8b", "tp: 8, global_batch: 8", 1,
                                              "precision: bf16", "dgx-h100");
  const auto model = make_profile_model(s, hand_profile(), "hand.yaml");
  const auto roofline = make_roofline_model(s);
  Op gemm;
  gemm.kind = OpKind::gemm;
  gemm.fwd_flops = Flop(1e12);
  gemm.bwd_flops = Flop(2e12);
  // Forward: 1e12 / 200e12 = 5 ms. Backward: two GEMMs of 1e12 FLOP: 10 ms.
  EXPECT_NEAR(model->op_time(gemm, Pass::forward).value(), 5e-3, 1e-12);
  EXPECT_NEAR(model->op_time(gemm, Pass::backward).value(), 10e-3, 1e-12);
  // 1e10.5 FLOP sits halfway in log F: 150 TFLOP/s.
  gemm.fwd_flops = Flop(std::pow(10.0, 10.5));
  EXPECT_NEAR(model->op_time(gemm, Pass::forward).value(), std::pow(10.0, 10.5) / 150e12, 1e-12);
  Op add;
  add.kind = OpKind::elementwise;
  add.fwd_read = Bytes(6e8);
  add.fwd_written = Bytes(4e8);
  EXPECT_NEAR(model->op_time(add, Pass::forward).value(), 2e-6 + 1e-3, 1e-12);
  // A tiny op: 2 us by the fit, raised to the 3 us launch floor.
  add.fwd_read = Bytes(8);
  add.fwd_written = Bytes(0);
  EXPECT_NEAR(model->op_time(add, Pass::forward).value(), 3e-6, 1e-12);
  // Norms fall back to elementwise (no row_reduce fit): the same formula.
  Op norm = add;
  norm.kind = OpKind::norm;
  norm.fwd_read = Bytes(1e9);
  EXPECT_NEAR(model->op_time(norm, Pass::forward).value(), 2e-6 + 1e-3, 1e-12);
  // The fused attention core is not in the profile: the roofline's time exactly.
  Op core;
  core.kind = OpKind::attention;
  core.name = "attn.core";
  core.fwd_flops = Flop(1e12);
  EXPECT_EQ(model->op_time(core, Pass::forward), roofline->op_time(core, Pass::forward));
  EXPECT_EQ(model->optimizer_time(1e9), roofline->optimizer_time(1e9));
  EXPECT_EQ(model->describe(),
            "profile hand.yaml: GEMM (bf16) from profile; attention GEMMs (bf16) from profile; "
            "fused attention from roofline; norm, softmax from profile; other ops from profile; "
            "kernel floor from profile; optimizer from roofline");
  const auto lines = model->explain();
  ASSERT_EQ(lines.size(), 9u);
  EXPECT_EQ(lines[0].second,
            "profile hand.yaml gemm bf16: F / min(P(F), 0 GB/s x F / bytes), 0 shapes, "
            "held-out max 0.0 %");
  EXPECT_EQ(lines[4].second,
            "profile hand.yaml memory_bound elementwise: 2.00 us + bytes / 1000 GB/s, held-out "
            "max 0.0 %");
  EXPECT_EQ(lines[5].second, "profile hand.yaml launch: 3.00 us, held-out max 0.0 %");
  EXPECT_EQ(lines[2].second.rfind("roofline: F / ", 0), 0u) << lines[2].second;
}

// A GEMM with an odd dimension (Op::odd_dimension) takes the roofline's alignment-1 floor
// on the profile's fit too, the fit being the aligned GEMMs': on the H100, 989.4 TFLOP/s x
// unaligned_gemm_efficiency 0.125 = 123.675 TFLOP/s, so 1e12 FLOP forward takes
// 1e12 / 123.675e12 = 8.0857 ms (the fit's 5 ms is an aligned GEMM's) and 2e12 backward
// 16.171 ms. Kernels measured at the op's own shape (GPT-2's head, 8192 x 768 x 50257,
// F = 632,379,408,384) already ran the alignment-1 kernels: their backward, 4.4901 +
// 4.2623 = 8.7524 ms, stands under the floor's 2F / 123.675e12 = 10.2266 ms.
TEST(ProfileModel, AnOddDimensionTakesTheAlignmentOneFloor) {
  const Scenario s = testing::preset_scenario("llama3-8b", "tp: 8, global_batch: 8", 1,
                                              "precision: bf16", "dgx-h100");
  const double rate = 989.4e12 * 0.125;
  Op gemm;
  gemm.kind = OpKind::gemm;
  gemm.fwd_flops = Flop(1e12);
  gemm.bwd_flops = Flop(2e12);
  gemm.alignment = 1;
  const auto fitted = make_profile_model(s, hand_profile(), "hand.yaml");
  EXPECT_NEAR(fitted->op_time(gemm, Pass::forward).value(), 1e12 / rate, 1e-12);
  EXPECT_NEAR(fitted->op_time(gemm, Pass::backward).value(), 2e12 / rate, 1e-12);
  gemm.alignment = 8;
  EXPECT_NEAR(fitted->op_time(gemm, Pass::forward).value(), 5e-3, 1e-12);

  Profile p = hand_profile();
  const double F = 2.0 * 8192 * 768 * 50257;
  const auto kernel = [&](std::int64_t m, std::int64_t n, std::int64_t k, double ms) {
    MeasuredKernel e;
    e.cls = "gemm";
    e.dtype = Dtype::bf16;
    e.shape = {m, n, k};
    e.flops = F;
    e.time = Seconds(ms * 1e-3);
    p.measured.push_back(e);
  };
  kernel(8192, 50257, 768, 6.6106);   // forward (k = 768)
  kernel(8192, 768, 50257, 4.4901);   // data gradient (k = 50257)
  kernel(50257, 768, 8192, 4.2623);   // weight gradient (k = 8192)
  const auto measured = make_profile_model(s, p, "measured.yaml");
  Op head;
  head.kind = OpKind::gemm;
  head.name = "head.output";
  head.weight_k = 768;
  head.weight_n = 50257;
  head.fwd_flops = Flop(F);
  head.bwd_flops = Flop(2 * F);
  head.alignment = 1;
  EXPECT_NEAR(measured->op_time(head, Pass::forward).value(), 6.6106e-3, 1e-12);
  EXPECT_NEAR(measured->op_time(head, Pass::backward).value(), 8.7524e-3, 1e-12);
  EXPECT_LT(8.7524e-3, 2 * F / rate);
}

TEST(ProfileModel, APrecisionTheProfileLacksUsesTheRoofline) {
  const Scenario s = testing::preset_scenario("llama3-8b", "tp: 8, global_batch: 8", 1,
                                              "precision: fp8", "dgx-h100");
  const auto model = make_profile_model(s, hand_profile(), "hand.yaml");
  const auto roofline = make_roofline_model(s);
  Op gemm;
  gemm.kind = OpKind::gemm;
  gemm.fwd_flops = Flop(1e12);
  gemm.fwd_read = Bytes(1e8);
  EXPECT_EQ(model->op_time(gemm, Pass::forward), roofline->op_time(gemm, Pass::forward));
  EXPECT_NE(model->describe().find("GEMM (fp8) from roofline;"), std::string::npos)
      << model->describe();
  EXPECT_NE(model->explain()[0].second.find("(profile has no fp8 GEMMs)"), std::string::npos)
      << model->explain()[0].second;
  // Attention GEMMs run in bf16 under fp8: those come from the profile.
  Op scores;
  scores.kind = OpKind::attention;
  scores.name = "attn.scores";
  scores.fwd_flops = Flop(1e12);
  EXPECT_NEAR(model->op_time(scores, Pass::forward).value(), 5e-3, 1e-12);
  // A linear layer the fp8 recipe keeps in bf16 takes the profile's bf16 fit too:
  // 1e12 / 200e12 = 5 ms forward, where the fp8 GEMM above fell back to the roofline.
  Op kept = gemm;
  kept.high_precision = true;
  EXPECT_NEAR(model->op_time(kept, Pass::forward).value(), 5e-3, 1e-12);
}

}  // namespace
}  // namespace orrery

namespace orrery {
namespace {

TEST(ProfileModel, ANodeAllReduceCurveReplacesThePresetCurve) {
  // The nccl-tests fixture of row azure-nd-h100-v5-allreduce-1node: busbw 43.7 GB/s at
  // 1 MiB and 478.87 GB/s at 8 GiB, so the curve starts at 43.7 / 478.87 = 0.0913 and
  // ends at 1 (the dgx-h100 preset rounds the same row to 0.091 at 1 MiB).
  const std::string log = std::string(ORRERY_SOURCE_DIR) +
                          "/tests/calibrate/data/nd-h100-v5_all_reduce_perf.log";
  const std::string profile = write_temp("node.yaml", render_profile(calibrate({{log, ""}})));
  const Scenario s = load_scenario_text(
      "cluster: {preset: dgx-h100, calibration: " + profile +
          "}\nmodel: {preset: llama3-8b}\nparallelism: {tp: 8, global_batch: 8}\n",
      "node.yaml");
  const ClusterSpec c = calibrated_cluster(s);
  const auto& curve = c.intra_node.bus_bandwidth_curve;
  ASSERT_GE(curve.size(), 10u);  // 1 MiB .. 8 GiB, doubling
  EXPECT_DOUBLE_EQ(curve.front().first.value(), 1048576.0);
  EXPECT_NEAR(curve.front().second, 43.7 / 478.87, 2e-3);
  EXPECT_DOUBLE_EQ(curve.back().second, 1.0);
  EXPECT_EQ(c.intra_node.efficiency, s.cluster.intra_node.efficiency);
  const auto lines = make_compute_model(s)->explain();
  EXPECT_EQ(lines[lines.size() - 2].first, "intra-node collectives");
  EXPECT_NE(lines[lines.size() - 2].second.find("all_reduce over 8 GPUs"), std::string::npos)
      << lines[lines.size() - 2].second;
  // Without a profile the preset's curve stays.
  const Scenario plain = testing::preset_scenario("llama3-8b", "tp: 8, global_batch: 8", 1, "",
                                                  "dgx-h100");
  EXPECT_EQ(calibrated_cluster(plain).intra_node.bus_bandwidth_curve,
            plain.cluster.intra_node.bus_bandwidth_curve);
}

TEST(ProfileModel, AnAllReduceAcrossNodesSetsTheNicEfficiency) {
  // A 4-node, 32-GPU all_reduce_perf log peaking at 330.93 GB/s bus bandwidth, the 4-node
  // H100 figure of row voltagepark-h100-4node (the smaller sizes' figures are made up). A
  // ring across nodes runs one ring per NIC: 8 NICs x 50 GB/s (400 Gb/s) = 400 GB/s of
  // line rate, so the NIC efficiency is 330.93 / 400 = 0.8273.
  std::string log =
      "# nThread 1 nGpus 1 minBytes 67108864 maxBytes 8589934592 step: 2(factor) warmup "
      "iters: 5 iters: 20 agg iters: 1 validation: 1 graph: 0\n#\n# Using devices\n";
  for (int r = 0; r < 32; ++r)
    log += fmt::format("#  Rank {:2d} Group  0 Pid {:5d} on     node-{} device {:2d} [0x00] NVIDIA "
                       "H100 80GB HBM3\n",
                       r, 1000 + r, r / 8, r % 8);
  log += "#\n#       size         count      type   redop    root     time   algbw   busbw "
         "#wrong     time   algbw   busbw #wrong\n";
  const std::vector<std::pair<double, double>> rows = {
      {67108864, 250.0}, {268435456, 300.0}, {1073741824, 320.0}, {8589934592, 330.93}};
  for (const auto& [size, busbw] : rows) {
    const double algbw = busbw * 32 / 62;  // busbw = algbw x 2 (n - 1) / n
    const std::string g =
        fmt::format("{:10.2f} {:7.2f} {:7.2f}      0", size / algbw / 1e3, algbw, busbw);
    log += fmt::format("{:12.0f} {:13.0f}     float     sum      -1 {} {}\n", size, size / 4, g, g);
  }
  log += "# Out of bounds values : 0 OK\n";
  const std::string profile = write_temp(
      "fabric.yaml", render_profile(calibrate({{write_temp("fabric_all_reduce_perf.log", log), ""}})));
  const Scenario s = load_scenario_text(
      "cluster: {preset: dgx-h100, nodes: 4, calibration: " + profile +
          "}\nmodel: {preset: llama3-8b}\nparallelism: {tp: 8, dp: 4, global_batch: 32}\n",
      "fabric.yaml");
  const ClusterSpec c = calibrated_cluster(s);
  EXPECT_NEAR(c.inter_node.efficiency, 330.93 / 400, 1e-3);
  const auto lines = make_compute_model(s)->explain();
  EXPECT_EQ(lines.back().first, "inter-node collectives");
  EXPECT_NE(lines.back().second.find("all_reduce over 32 GPUs on 4 nodes: NIC efficiency 0.827"),
            std::string::npos)
      << lines.back().second;
  // Without it, the preset's efficiency stays and --explain says so.
  const Scenario plain = testing::preset_scenario("llama3-8b", "tp: 8, dp: 4, global_batch: 32",
                                                  4, "", "dgx-h100");
  EXPECT_EQ(calibrated_cluster(plain).inter_node.efficiency,
            plain.cluster.inter_node.efficiency);
}

}  // namespace
}  // namespace orrery

namespace orrery {
namespace {

// The rule of docs/errors.md ("Calibration profile for another GPU"), on the names CUDA
// reports (nvidia-smi) against the presets' names.
TEST(ProfileGpu, NamesMatchByModelAndMemory) {
  EXPECT_TRUE(same_gpu("NVIDIA H100 80GB HBM3", "NVIDIA H100 SXM5 80GB"));
  EXPECT_TRUE(same_gpu("NVIDIA A100-SXM4-80GB", "NVIDIA A100 SXM4 80GB"));
  EXPECT_TRUE(same_gpu("NVIDIA H200", "NVIDIA H200 SXM 141GB"));  // no size on one side
  EXPECT_FALSE(same_gpu("NVIDIA H100 80GB HBM3", "NVIDIA A100 SXM4 80GB"));
  EXPECT_FALSE(same_gpu("NVIDIA A100-SXM4-40GB", "NVIDIA A100 SXM4 80GB"));
  EXPECT_FALSE(same_gpu("NVIDIA H200", "NVIDIA H100 SXM5 80GB"));
  EXPECT_TRUE(same_gpu("NVIDIA L40S", "nvidia l40s"));
  EXPECT_TRUE(same_gpu("fake", "NVIDIA H100 SXM5 80GB"));  // no model word: cannot tell
}

TEST(ProfileGpu, AProfileFromAnotherGpuIsProjected) {
  // The nccl-tests fixture was measured on "NVIDIA H100 80GB HBM3"; dgx-a100's GPU is an
  // A100. Its all-reduce curve is a shape over the scenario's own line rates, so it is
  // carried as it is, and --explain says from where.
  const std::string log = std::string(ORRERY_SOURCE_DIR) +
                          "/tests/calibrate/data/nd-h100-v5_all_reduce_perf.log";
  const std::string profile = write_temp("h100.yaml", render_profile(calibrate({{log, ""}})));
  const std::string body = "}\nmodel: {preset: llama3-8b}\nparallelism: {tp: 8, global_batch: 8}\n";
  const Scenario a100 =
      load_scenario_text("cluster: {preset: dgx-a100, calibration: " + profile + body, "a.yaml");
  const auto model = make_compute_model(a100);
  std::string explained;
  for (const auto& [cls, line] : model->explain()) explained += cls + ": " + line + "\n";
  EXPECT_NE(explained.find("projected: measured on 'NVIDIA H100 80GB HBM3' (preset "
                           "h100-sxm5-80gb), projected to 'NVIDIA A100 SXM4 80GB'"),
            std::string::npos)
      << explained;
  EXPECT_NE(explained.find("collective curves carried"), std::string::npos) << explained;
  // Nothing was scaled by a datasheet ratio: no band added.
  EXPECT_EQ(model->band_half_width(), 0);
  EXPECT_EQ(calibrated_cluster(a100).intra_node.bus_bandwidth_curve.size() >= 10, true);
  const Scenario h100 =
      load_scenario_text("cluster: {preset: dgx-h100, calibration: " + profile + body, "h.yaml");
  EXPECT_TRUE(make_profile_model(h100, read_profile_file(profile), profile)->explain().size() > 0);
  EXPECT_EQ(make_compute_model(h100)->band_half_width(), 0);
}

// The profiler's first file from a GPU (one H200, 2026-12-04, profiler/gpu_check.sh without
// collectives; calibrate/data/h200-20261204/measurements-quick.yaml) reads and fits: five
// GEMM types, the three memory-bound kernels. By hand from the file: bf16 8192^3 median
// 1.388 ms, 2 x 8192^3 / 1.388e-3 = 792.155 TFLOP/s, which the compute roof holds within
// 2 % (its neighbours at 801-817 TFLOP/s pooled with it). No bf16 point is memory-bound:
// the slow vocabulary GEMM (8192 x 128256 x 4096, 12.24 ms, 703.2 TFLOP/s) moves
// 2 (mk + kn + mn) = 3,219,128,320 bytes, 263.0 GB/s, against 1024^3's 6,291,456 bytes in
// 6.192 us, 1,016.1 GB/s: a memory roof at the former would make the latter impossible
// (calibrate/fit.cpp; before that rule the fit set the roof at 263 GB/s and put 1024^3 74 %
// under its measurement).
TEST(ProfileFile, TheFirstMeasurementsFromAGpuFit) {
  const std::string file =
      std::string(ORRERY_SOURCE_DIR) + "/calibrate/data/h200-20261204/measurements-quick.yaml";
  const Profile p = calibrate({{file, ""}});
  ASSERT_EQ(p.inputs.size(), 1u);
  EXPECT_EQ(p.inputs[0].gpu, "NVIDIA H200");
  EXPECT_EQ(p.gemm.size(), 5u);
  EXPECT_EQ(p.memory.size(), 3u);
  const double measured = 2.0 * 8192 * 8192 * 8192 / 1.388e-3;  // 792.155 TFLOP/s
  bool found = false;
  for (const GemmFit& g : p.gemm) {
    if (g.dtype != Dtype::bf16) continue;
    found = true;
    EXPECT_NEAR(g.rate(GemmShape{8192, 8192, 8192}).value() / measured, 1.0, 0.02);
    EXPECT_EQ(g.memory_roof.value(), 0.0);
  }
  EXPECT_TRUE(found);
}

}  // namespace
}  // namespace orrery
