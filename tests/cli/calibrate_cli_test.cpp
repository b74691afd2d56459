// `orrery calibrate`: exit codes, the profile written whole and byte for byte the same.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "tests/cli/run.h"

namespace orrery {
namespace {

using testing::read_file;
using testing::run_orrery;

const std::string kLog = "tests/calibrate/data/nd-h100-v5_all_reduce_perf.log";
const std::string kGemm = "tests/calibrate/data/nd-h100-v5_gemm_fp8.yaml";

std::string temp(const std::string& name) {
  return ::testing::TempDir() + "calibrate_cli_" + std::to_string(getpid()) + "_" + name;
}

TEST(CliCalibrate, WritesTheProfileAndSummarizesEachFamily) {
  const std::string out = temp("profile.yaml");
  const auto r = run_orrery("calibrate " + kLog + " " + kGemm + " -o '" + out + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("collective all_reduce on 8 GPUs, 1 node: 24 sizes"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("gemm fp8: 9 shapes"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("wrote " + out), std::string::npos) << r.out;
  const std::string profile = read_file(out);
  EXPECT_EQ(profile.rfind("# Fitted by orrery calibrate", 0), 0u);
  for (const char* k : {"format: orrery-profile", "kind: nccl-tests", "kind: measurements",
                        "curve_held_out:", "alpha_beta_held_out:", "memory_roof:",
                        "compute_roof:", "launch: null"}) {
    EXPECT_NE(profile.find(k), std::string::npos) << k;
  }
  // H100 busbw at 1 GiB as measured (the row azure-nd-h100-v5-allreduce-1node: 466.35 GB/s).
  EXPECT_NE(profile.find("{size: 1073741824 B, time: 4029.27 us, busbw: 466.35 GB/s"),
            std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(out + ".tmp"));
  std::remove(out.c_str());
}

// A Kineto trace's kernels time `run`'s ops and --explain names them; on another GPU the
// profile is projected and the band widened (docs/model.md, "Measured kernels from a
// trace", "Projection to another GPU"; the times themselves: tests/calibrate/
// kernel_classes_test.cpp).
TEST(CliCalibrate, ATraceTimesRunsOpsAndExplainNamesItsKernels) {
  const std::string out = temp("trace_profile.yaml");
  const auto c =
      run_orrery("calibrate tests/calibrate/data/kineto_llama3_8b_h100.json -o '" + out + "'");
  ASSERT_EQ(c.code, 0) << c.err;
  EXPECT_NE(c.out.find("measured kernels: 6 entries"), std::string::npos) << c.out;
  for (const std::string system : {"dgx-h100", "dgx-h200"}) {
    const std::string scenario = temp(system + ".yaml");
    std::ofstream(scenario) << "cluster: {preset: " << system << ", calibration: '" << out
                            << "'}\nmodel: {preset: llama3-8b}\nparallelism: {tp: 1, dp: 8, "
                               "microbatch: 1, global_batch: 8}\ntraining: {precision: bf16}\n";
    const auto r = run_orrery("run '" + scenario + "' --explain");
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("measured attention"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("m=8192 n=6144 k=4096: 655.00 us"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("not measured"), std::string::npos) << r.out;
    const bool projected = system == "dgx-h200";
    EXPECT_EQ(r.out.find("band widened             +/- 4.0 %") != std::string::npos, projected)
        << r.out;
    std::remove(scenario.c_str());
  }
  std::remove(out.c_str());
}

// --traced-scenario sizes a pipeline trace's optimizer kernels; `run` then times the
// optimizer at the measured bandwidth and the pipeline transfers by the SendRecv entry, and
// --explain names both (the times by hand: tests/calibrate/trace_optimizer_test.cpp).
TEST(CliCalibrate, ATracedScenarioSizesTheOptimizerAndRunUsesItAndTheSendRecv) {
  const std::string out = temp("pp2_profile.yaml");
  const auto c = run_orrery(
      "calibrate tests/calibrate/data/kineto_llama3_8b_pp2_optimizer.json --gpus-per-node 8 "
      "--traced-scenario tests/calibrate/data/llama3_8b_tp4_pp2.yaml -o '" +
      out + "'");
  ASSERT_EQ(c.code, 0) << c.err;
  EXPECT_NE(c.out.find("28.05 GiB a step in 10000.00 us (2 steps): 3012 GB/s"), std::string::npos)
      << c.out;
  const std::string scenario = temp("pp2.yaml");
  std::ofstream(scenario) << "cluster: {preset: dgx-h100, calibration: '" << out
                          << "'}\nmodel: {preset: llama3-8b}\nparallelism: {tp: 4, pp: 2, dp: 1, "
                             "microbatch: 1, global_batch: 4}\ntraining: {precision: bf16}\n";
  const auto r = run_orrery("run '" + scenario + "' --explain");
  ASSERT_EQ(r.code, 0) << r.err;
  // The traced 10 ms and Megatron-Core's per-step passes at the roofline's HBM rate: the
  // fp32 gradient buffer of 1,003,880,448 parameters (+ 4096 on stage 1) zeroed and read for
  // the norm, 8 bytes each at 3.35 TB/s x 0.87: 2.756 ms (detail::megatron_step_passes).
  EXPECT_NE(r.out.find("optimizer                   12.756 ms"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("measured optimizer"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("send_recv of 16.00 MiB over 2 GPUs on 1 node: 420.00 us, exact"),
            std::string::npos)
      << r.out;
  // Without the flag the optimizer kernels are reported, not used.
  const auto bare = run_orrery(
      "calibrate tests/calibrate/data/kineto_llama3_8b_pp2_optimizer.json -o '" + out + "'");
  ASSERT_EQ(bare.code, 0) << bare.err;
  EXPECT_NE(bare.out.find("not used: give --traced-scenario"), std::string::npos) << bare.out;
  std::remove(scenario.c_str());
  std::remove(out.c_str());
}

TEST(CliCalibrate, SameInputsSameBytes) {
  const std::string a = temp("a.yaml"), b = temp("b.yaml");
  ASSERT_EQ(run_orrery("calibrate " + kLog + " " + kGemm + " -o '" + a + "'").code, 0);
  ASSERT_EQ(run_orrery("calibrate " + kLog + " " + kGemm + " -o '" + b + "'").code, 0);
  EXPECT_EQ(read_file(a), read_file(b));
  EXPECT_FALSE(read_file(a).empty());
  std::remove(a.c_str());
  std::remove(b.c_str());
}

TEST(CliCalibrate, BadInputExitsTwoAndLeavesTheOldProfileAlone) {
  const std::string out = temp("kept.yaml");
  std::ofstream(out) << "previous profile\n";
  // A truncated row on line 5 of a log.
  const std::string bad = temp("all_reduce_perf.log");
  std::ofstream(bad) << "# nThread 1 nGpus 2 minBytes 8 maxBytes 16 step: 2(factor)\n"
                        "#       size         count      type   redop    root     time   algbw"
                        "   busbw #wrong     time   algbw   busbw #wrong\n"
                        "           8             2     float     sum      -1    10.00    0.00"
                        "    0.00      0    10.00    0.00    0.00      0\n"
                        "          16             4     float     sum      -1    10.00    0.00"
                        "    0.00      0    10.00    0.00    0.00      0\n"
                        "          32             8     float     sum\n";
  const auto r = run_orrery("calibrate '" + bad + "' -o '" + out + "'");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find(bad + ":5"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("truncated or malformed row"), std::string::npos) << r.err;
  EXPECT_EQ(read_file(out), "previous profile\n");
  std::remove(bad.c_str());
  std::remove(out.c_str());
}

TEST(CliCalibrate, TooFewSizesAndUnknownInputsAreRefused) {
  const std::string out = temp("none.yaml");
  const std::string two = temp("two.log");
  std::ofstream(two) << "# nThread 1 nGpus 2 minBytes 8 maxBytes 16 step: 2(factor)\n"
                        "#       size         count      type   redop    root     time   algbw"
                        "   busbw #wrong     time   algbw   busbw #wrong\n"
                        "     1048576        262144     float     sum      -1   100.00   10.49"
                        "   10.49      0   100.00   10.49   10.49      0\n"
                        "     2097152        524288     float     sum      -1   150.00   13.98"
                        "   13.98      0   150.00   13.98   13.98      0\n";
  auto r = run_orrery("calibrate '" + two + "' --op all_reduce -o '" + out + "'");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("needs at least 3 distinct message sizes, the inputs give 2"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(std::filesystem::exists(out));
  r = run_orrery("calibrate README.md -o '" + out + "'");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("README.md: not a known input"), std::string::npos) << r.err;
  r = run_orrery("calibrate " + kLog);
  EXPECT_EQ(r.code, 2);  // -o is required
  std::remove(two.c_str());
}

// A scenario naming a profile (relative to the scenario file) is timed from it: the fp8
// GEMMs of the fixture profile replace the roofline's, the rest keeps the roofline.
TEST(CliCalibrate, RunTimesOpsFromTheProfileTheScenarioNames) {
  const std::string profile = temp("h100.yaml");
  ASSERT_EQ(run_orrery("calibrate " + kLog + " " + kGemm + " -o '" + profile + "'").code, 0);
  const std::string name = std::filesystem::path(profile).filename().string();
  const std::string body =
      "model: {preset: llama3-8b}\nparallelism: {tp: 8, global_batch: 8}\n"
      "training: {precision: fp8}\n";
  const std::string with = temp("with.yaml"), without = temp("without.yaml");
  std::ofstream(with) << "cluster: {preset: dgx-h100, calibration: " << name << "}\n" << body;
  std::ofstream(without) << "cluster: {preset: dgx-h100}\n" << body;
  const auto a = run_orrery("run '" + with + "'");
  const auto b = run_orrery("run '" + without + "'");
  ASSERT_EQ(a.code, 0) << a.err;
  ASSERT_EQ(b.code, 0) << b.err;
  EXPECT_NE(a.out.find("compute model"), std::string::npos);
  EXPECT_NE(a.out.find("GEMM (fp8) from profile; attention GEMMs (bf16) from roofline"),
            std::string::npos)
      << a.out;
  EXPECT_NE(b.out.find("roofline: GEMM plateau"), std::string::npos) << b.out;
  EXPECT_NE(a.out, b.out);
  // --explain: one line per op class naming the profile entry or the roofline default.
  const auto e = run_orrery("run '" + with + "' --explain");
  ASSERT_EQ(e.code, 0) << e.err;
  EXPECT_NE(e.out.find("explain (what times each op class)"), std::string::npos) << e.out;
  EXPECT_NE(e.out.find("  GEMM (fp8)               profile " + with.substr(0, with.rfind('/') + 1) +
                       name + " gemm fp8: F / min(P(F), 2593 GB/s x F / bytes), 9 shapes, "
                       "held-out max 86.2 %"),
            std::string::npos)
      << e.out;
  EXPECT_NE(e.out.find("(profile has no launch fit)"), std::string::npos) << e.out;
  EXPECT_EQ(run_orrery("run '" + with + "' --explain --format json").code, 2);
  // A profile that is not there: exit 2 naming the scenario's line and key.
  std::ofstream(with) << "cluster: {preset: dgx-h100, calibration: missing.yaml}\n" << body;
  const auto c = run_orrery("run '" + with + "'");
  EXPECT_EQ(c.code, 2);
  EXPECT_NE(c.err.find(with + ":1: key 'cluster.calibration'"), std::string::npos) << c.err;
  std::remove(profile.c_str());
  std::remove(with.c_str());
  std::remove(without.c_str());
}

}  // namespace
}  // namespace orrery
