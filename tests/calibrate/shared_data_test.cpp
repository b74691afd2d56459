// The issue-5 acceptance criteria on published measurements
// (/work/shared/data/collectives_and_gemm.yaml; rows cited by id below):
//  - single-node all-reduce curves of A100, H100 and H200, turned into nccl-tests logs and
//    calibrated, predict the held-out bus bandwidth at every size >= 1 MiB within 5 %,
//    except where the measured curve itself jumps (A100, stated below with its numbers);
//  - the GEMM fit reproduces the published GEMM rows within 5 %.
#include <gtest/gtest.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "calibrate/calibrate.h"
#include "calibrate/nccl_tests.h"

namespace orrery {
namespace {

// In-place busbw (GB/s) by message size of the Azure AI-benchmarking-guide rows. The
// source labels sizes 1K, 2K, ..., 65K, 132K, ..., 8G; they are nccl-tests' powers of two
// 2^10 .. 2^33 bytes (65K = 65536, 132K = 131072, 33M = 33554432, ...).
struct Curve {
  const char* id;
  const char* gpu;
  std::vector<double> busbw;  // at 2^10 .. 2^33 bytes
};
const Curve kA100 = {"azure-nd-a100-v4-allreduce-1node", "A100-SXM4-80GB",
                     {0.04, 0.08, 0.17, 0.33, 0.67, 1.37, 2.7, 5.15, 10.11, 19.24, 36.22, 53.54,
                      71.43, 89.99, 109.22, 132.77, 166.63, 174.18, 213.87, 221.58, 228.1,
                      230.22, 230.48, 231.58}};
const Curve kH100 = {"azure-nd-h100-v5-allreduce-1node", "H100-80GB-HBM3",
                     {0.07, 0.14, 0.27, 0.53, 0.95, 1.71, 2.72, 5.4, 10.86, 21.35, 43.7, 81.93,
                      128.73, 172.13, 234.45, 295.53, 361.78, 400.61, 423.38, 438.46, 466.35,
                      472.36, 475.54, 478.87}};
const Curve kH200 = {"azure-nd-h200-v5-allreduce-1node", "H200-141GB",
                     {0.06, 0.12, 0.23, 0.47, 0.93, 1.84, 3.72, 7.39, 14.75, 29.38, 52.96,
                      88.78, 138.44, 181.94, 240.41, 300.91, 368.11, 412.45, 432.24, 442.72,
                      467.58, 472.57, 477.41, 479.98}};

// The curve as all_reduce_perf on 8 GPUs of one node prints it: time = size / algbw,
// algbw = busbw / (2 * 7 / 8); both column groups carry the published (in-place) figure.
std::string nccl_tests_log(const Curve& c) {
  std::string log = "# Collective test starting: all_reduce_perf\n";
  log += "# nThread 1 nGpus 8 minBytes 1024 maxBytes 8589934592 step: 2(factor) warmup iters: "
         "5 iters: 20 agg iters: 1 validation: 1 graph: 0\n#\n# Using devices\n";
  for (int r = 0; r < 8; ++r)
    log += fmt::format("#  Rank {:2d} Group  0 Pid  1000 on  node-1 device {:2d} [0x00] {}\n", r,
                       r, c.gpu);
  log += "#\n#       size         count      type   redop    root     time   algbw   busbw "
         "#wrong     time   algbw   busbw #wrong\n";
  for (std::size_t i = 0; i < c.busbw.size(); ++i) {
    const double size = std::ldexp(1.0, static_cast<int>(10 + i));
    const double algbw = c.busbw[i] / 1.75;
    const double t_us = size / (algbw * 1e9) * 1e6;
    const std::string g = fmt::format("{:10.2f} {:7.2f} {:7.2f}      0", t_us, algbw, c.busbw[i]);
    log += fmt::format("{:12.0f} {:13.0f}     float     sum      -1 {} {}\n", size, size / 4, g, g);
  }
  return log + "# Out of bounds values : 0 OK\n";
}

std::string temp_path(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() /
                   fmt::format("orrery_calibrate_test_{}", static_cast<long>(::getpid()));
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

std::string write_temp(const std::string& name, const std::string& text) {
  const std::string p = temp_path(name);
  std::ofstream(p, std::ios::binary) << text;
  return p;
}

// Held-out busbw error at each size >= 1 MiB, printed beside the measured busbw.
std::map<double, double> held_out_errors(const Curve& c) {
  const Profile p = calibrate({{write_temp(std::string(c.id) + ".log", nccl_tests_log(c)), ""}});
  EXPECT_EQ(p.collectives.size(), 1u);
  if (p.collectives.empty()) return {};
  const CollectiveFit& f = p.collectives[0];
  EXPECT_EQ(f.op, CollectiveOp::all_reduce);
  EXPECT_EQ(f.gpus, 8);
  EXPECT_EQ(f.nodes, 1);
  EXPECT_EQ(f.points.size(), c.busbw.size());
  std::map<double, double> out;
  std::printf("%s: size, measured busbw, held-out curve error, held-out alpha-beta error\n", c.id);
  for (std::size_t i = 0; i < f.points.size(); ++i) {
    const auto& pt = f.points[i];
    if (pt.x < 1048576.0) continue;
    out[pt.x] = pt.held_out_error;
    std::printf("  %12.0f B  %8.2f GB/s  %+6.2f %%  %+7.2f %%\n", pt.x, c.busbw[i],
                100 * pt.held_out_error, 100 * f.alpha_beta_held_out[i]);
  }
  return out;
}

TEST(SharedData, H100AllReduceHeldOutWithinFivePercentFromOneMiB) {
  const auto e = held_out_errors(kH100);
  EXPECT_EQ(e.size(), 14u);  // 1 MiB .. 8 GiB
  for (const auto& [size, err] : e) EXPECT_LE(std::abs(err), 0.05) << size;
}

TEST(SharedData, H200AllReduceHeldOutWithinFivePercentFromOneMiB) {
  const auto e = held_out_errors(kH200);
  EXPECT_EQ(e.size(), 14u);
  for (const auto& [size, err] : e) EXPECT_LE(std::abs(err), 0.05) << size;
}

// The A100 curve does not meet 5 % at four sizes, and no honest model of the others can:
// busbw rises 132.8 -> 166.6 GB/s from 32 to 64 MiB, then only to 174.2 at 128 MiB, then
// jumps 23 % to 213.9 at 256 MiB (an NCCL algorithm or protocol switch; the source's
// algorithm label is noted as unreliable). Left out, 128 MiB is predicted from 64 and
// 256 MiB about 11 % high, and 64 and 256 MiB about 9 % and 8 % low; 1 MiB (36.2 GB/s
// between 19.2 and 53.5) about 7 % low. The test pins exactly these exceptions, each
// within 12 %, and every other size within 5 %.
TEST(SharedData, A100AllReduceHeldOutWithinFivePercentExceptAtItsJump) {
  const auto e = held_out_errors(kA100);
  EXPECT_EQ(e.size(), 14u);
  const std::set<double> jump = {1048576.0, 67108864.0, 134217728.0, 268435456.0};
  for (const auto& [size, err] : e) {
    if (jump.count(size)) {
      EXPECT_GT(std::abs(err), 0.05) << size << ": now within 5 %; drop it from the exceptions";
      EXPECT_LE(std::abs(err), 0.12) << size;
    } else {
      EXPECT_LE(std::abs(err), 0.05) << size;
    }
  }
}

// TFLOP/s by m x n x k of the Azure AI-benchmarking-guide cuBLASLt rows.
struct GemmRow {
  const char* id;
  const char* dtype;
  std::vector<std::pair<std::array<std::int64_t, 3>, double>> tflops;
};
const GemmRow kGemm[] = {
    {"azure-a100-cublaslt-fp16", "fp16",
     {{{1024, 1024, 1024}, 119.4}, {{2048, 2048, 2048}, 221.8}, {{4096, 4096, 4096}, 228.0},
      {{8192, 8192, 8192}, 253.7}, {{16384, 16384, 16384}, 256.5}, {{1024, 2145, 1024}, 132.8},
      {{6144, 12288, 12288}, 250.8}, {{802816, 192, 768}, 157.8}}},
    {"azure-h100-cublaslt-fp8", "fp8",
     {{{1024, 1024, 1024}, 274.1}, {{2048, 2048, 2048}, 1011.3}, {{4096, 4096, 4096}, 1216.9},
      {{8192, 8192, 8192}, 1290.1}, {{16384, 16384, 16384}, 1377.3},
      {{32768, 32768, 32768}, 1382.2}, {{1024, 2145, 1024}, 410.7},
      {{6144, 12288, 12288}, 1351.4}, {{802816, 192, 768}, 663.8}}},
    {"azure-h200-cublaslt-fp8", "fp8",
     {{{1024, 1024, 1024}, 290.8}, {{2048, 2048, 2048}, 1013.4}, {{4096, 4096, 4096}, 1249.1},
      {{8192, 8192, 8192}, 1300.6}, {{16384, 16384, 16384}, 1366.3},
      {{32768, 32768, 32768}, 1349.5}, {{1024, 2145, 1024}, 407.9},
      {{6144, 12288, 12288}, 1318.0}, {{802816, 192, 768}, 717.5}}},
};

// A measurement file holding one GEMM row set: median = 2mnk / rate.
std::string measurement_file(const GemmRow& row) {
  std::string y = fmt::format(
      "format: orrery-measurements\nversion: 1\nprovenance:\n  tool: \"{}\"\n  date: "
      "\"2026-11-27T00:00:00Z\"\n  host: published\n  gpu: published\n  gpu_count: 8\n  "
      "sm_count: 1\n  sm_clock_mhz: 1\n  memory_clock_mhz: 1\n  memory: 80 GiB\n  "
      "compute_capability: \"0.0\"\n  driver: \"n/a\"\n  cuda_runtime: \"n/a\"\n  cublas: "
      "\"n/a\"\n  cudnn: \"none\"\n  nccl: \"n/a\"\n  timing: fake\n  warmup: 0\n  "
      "repetitions: 1\ngemm:\n",
      row.id);
  for (const auto& [s, tf] : row.tflops) {
    const std::string t = fmt::format("{:.9g} us", 2.0 * s[0] * s[1] * s[2] / (tf * 1e12) * 1e6);
    y += fmt::format("  - {{dtype: {}, m: {}, n: {}, k: {}, median: {}, p10: {}, p90: {}}}\n",
                     row.dtype, s[0], s[1], s[2], t, t, t);
  }
  return y;
}

TEST(SharedData, GemmFitReproducesThePublishedRowsWithinFivePercent) {
  for (const GemmRow& row : kGemm) {
    const Profile p = calibrate({{write_temp(std::string(row.id) + ".yaml", measurement_file(row)), ""}});
    ASSERT_EQ(p.gemm.size(), 1u);
    const GemmFit& g = p.gemm[0];
    EXPECT_EQ(g.points.size(), row.tflops.size());
    std::printf("%s (%s): m x n x k, TFLOP/s, fit error, held-out error\n", row.id, row.dtype);
    for (std::size_t i = 0; i < g.points.size(); ++i) {
      const auto& s = g.shapes[i];
      const double measured = g.points[i].x / g.points[i].time.value();
      // The fitted model evaluated at the published shape.
      const double fitted = g.rate(s).value();
      EXPECT_LE(std::abs(fitted / measured - 1.0), 0.05) << row.id << " " << s.m << "x" << s.n
                                                        << "x" << s.k;
      std::printf("  %6lld x %5lld x %5lld  %7.1f  %+6.2f %%  %+7.2f %%%s\n",
                  static_cast<long long>(s.m), static_cast<long long>(s.n),
                  static_cast<long long>(s.k), measured / 1e12, 100 * (fitted / measured - 1.0),
                  100 * g.points[i].held_out_error, g.memory_bound[i] ? "  (memory-bound)" : "");
    }
  }
}

}  // namespace
}  // namespace orrery
