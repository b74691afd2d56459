// Fits on hand-made points whose answer is known, and the refusal of too few points.
#include <gtest/gtest.h>

#include <cmath>

#include "calibrate/fit.h"
#include "core/error.h"

namespace orrery {
namespace {

TEST(Pchip, HandDerivedValueAndMonotonicity) {
  // x = 0, 1, 2; y = 0, 1, 3: secants d = 1, 2; interior slope (Fritsch-Butland with
  // h = 1): (3 + 3) / (3/1 + 3/2) = 4/3; end slopes 1 and 2. At x = 0.5 (s = 0.5):
  // h00 = 0.5, h10 = 0.125, h01 = 0.5, h11 = -0.125 -> 0.125 * 1 + 0.5 * 1 - 0.125 * 4/3
  // = 0.458333.
  const std::vector<double> x = {0, 1, 2}, y = {0, 1, 3};
  EXPECT_NEAR(pchip(x, y, 0.5), 0.4583333333, 1e-9);
  EXPECT_DOUBLE_EQ(pchip(x, y, 1.0), 1.0);
  // Monotone data give a monotone curve, even across a jump (where a cubic spline
  // overshoots).
  const std::vector<double> xs = {0, 1, 2, 3, 4}, ys = {0, 0.1, 0.2, 5, 5.1};
  double last = -1;
  for (double t = 0; t <= 4; t += 0.01) {
    const double v = pchip(xs, ys, t);
    EXPECT_GE(v, last - 1e-12) << t;
    last = v;
  }
}

std::vector<CollectiveSample> alpha_beta_samples(double alpha_s, double beta) {
  std::vector<CollectiveSample> s;
  for (double size : {1048576.0, 4194304.0, 16777216.0, 67108864.0})
    s.push_back({Bytes(size), Seconds(alpha_s + size / beta), "test"});
  return s;
}

TEST(CollectiveFit, RecoversAlphaAndBetaOfExactData) {
  // t = 5 us + size / 100 GB/s at four sizes: least squares returns the line itself and
  // every held-out alpha-beta prediction is exact.
  const CollectiveFit f =
      fit_collective(CollectiveOp::all_reduce, 8, 1, alpha_beta_samples(5e-6, 100e9));
  EXPECT_NEAR(f.alpha.value(), 5e-6, 1e-12);
  EXPECT_NEAR(f.beta.value(), 100e9, 1e3);
  for (double e : f.alpha_beta_held_out) EXPECT_NEAR(e, 0.0, 1e-9);
  // The curve goes through every measured point.
  EXPECT_NEAR(f.time(Bytes(4194304.0)).value(), 5e-6 + 4194304.0 / 100e9, 1e-15);
  // busbw at 64 MiB: algbw = 67108864 / (5 us + 671.09 us) = 99.26 GB/s, x 1.75 = 173.7.
  EXPECT_NEAR(f.busbw(Bytes(67108864.0)).value() / 1e9,
              67108864.0 / (5e-6 + 67108864.0 / 100e9) * 1.75 / 1e9, 1e-9);
  // Beyond the largest size the bus bandwidth stays the largest size's.
  EXPECT_NEAR(f.busbw(Bytes(4.0 * 67108864.0)).value(), f.busbw(Bytes(67108864.0)).value(), 1e-3);
}

TEST(CollectiveFit, SamplesAtOneSizeAreMergedByTheirMedian) {
  auto s = alpha_beta_samples(5e-6, 100e9);
  s.push_back({Bytes(1048576.0), Seconds(1.0), "outlier"});
  s.push_back({Bytes(1048576.0), s[0].time, "again"});
  const CollectiveFit f = fit_collective(CollectiveOp::all_reduce, 8, 1, s);
  ASSERT_EQ(f.points.size(), 4u);
  EXPECT_DOUBLE_EQ(f.points[0].time.value(), s[0].time.value());  // median of t, 1 s, t
}

TEST(CollectiveFit, TooFewSizesAreRefusedSayingHowMany) {
  auto s = alpha_beta_samples(5e-6, 100e9);
  s.resize(2);
  try {
    fit_collective(CollectiveOp::all_gather, 16, 2, s);
    FAIL() << "two sizes fitted";
  } catch (const InputError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("all_gather on 16 GPUs, 2 nodes"), std::string::npos) << m;
    EXPECT_NE(m.find("needs at least 3 distinct message sizes, the inputs give 2"),
              std::string::npos)
        << m;
  }
}

TEST(GemmFit, RooflineOfHandMadePoints) {
  // bf16 (2-byte inputs and output). Three square GEMMs at 100, 200, 250 TFLOP/s and a
  // skinny one on a 1 TB/s memory roof: m = 1e6, n = k = 64: F = 2*1e6*64*64 = 8.192e9
  // FLOP, bytes = 2*(1e6*64 + 64*64) + 2*1e6*64 = 256,008,192 B, t = bytes / 1e12, a rate
  // of 32 TFLOP/s: slower than the smaller 1024^3 GEMM, so a memory-roof candidate.
  auto t_at = [](double m, double n, double k, double tflops) {
    return Seconds(2 * m * n * k / (tflops * 1e12));
  };
  const double skinny_bytes = 2 * (1e6 * 64 + 64 * 64) + 2 * 1e6 * 64;
  const std::vector<GemmSample> s = {
      {{1024, 1024, 1024}, t_at(1024, 1024, 1024, 100), ""},
      {{4096, 4096, 4096}, t_at(4096, 4096, 4096, 200), ""},
      {{8192, 8192, 8192}, t_at(8192, 8192, 8192, 250), ""},
      {{1000000, 64, 64}, Seconds(skinny_bytes / 1e12), ""},
  };
  const GemmFit f = fit_gemm(Dtype::bf16, s);
  // W = 1 TB/s from the skinny one, the only point slower than a smaller GEMM.
  EXPECT_NEAR(f.memory_roof.value(), 1e12, 1e3);
  int memory_bound = 0;
  for (bool b : f.memory_bound) memory_bound += b;
  EXPECT_EQ(memory_bound, 1);
  for (double e : f.in_sample_error) EXPECT_NEAR(e, 0.0, 1e-12);
  // 2048^3 lies halfway between 1024^3 and 4096^3 in log F: 150 TFLOP/s (its memory roof,
  // 683 TFLOP/s, is higher).
  EXPECT_NEAR(f.rate({2048, 2048, 2048}).value(), 150e12, 1e3);
  // Beyond the largest measured FLOPs the compute roof stays flat.
  EXPECT_NEAR(f.rate({16384, 16384, 16384}).value(), 250e12, 1e3);
  // Held out, 4096^3 is interpolated between 100 and 250 TFLOP/s at u = log(64)/log(512)
  // = 2/3: 200 TFLOP/s exactly, since 100 + 2/3 * 150 = 200.
  ASSERT_EQ(f.shapes[1].m, 4096);  // shapes are in (m, n, k) order
  EXPECT_NEAR(f.points[1].held_out_error, 0.0, 1e-9);
}

TEST(GemmFit, RatesFallingWithSizeArePooled) {
  // fp16: 100, 300, 200 TFLOP/s at growing F, and the skinny GEMM of the test above at
  // 32 TFLOP/s setting W = 1 TB/s. 4096^3 is slower than 2048^3, but its rate / intensity
  // (200e12 / 1365.3 = 0.15 TB/s) is far below W: not memory-bound, so the compute roof
  // pools it with 2048^3 to (300 + 200) / 2 = 250 TFLOP/s.
  auto t_at = [](double n, double tflops) { return Seconds(2 * n * n * n / (tflops * 1e12)); };
  const double skinny_bytes = 2 * (1e6 * 64 + 64 * 64) + 2 * 1e6 * 64;
  const GemmFit f = fit_gemm(Dtype::fp16, {{{1024, 1024, 1024}, t_at(1024, 100), ""},
                                      {{2048, 2048, 2048}, t_at(2048, 300), ""},
                                      {{4096, 4096, 4096}, t_at(4096, 200), ""},
                                      {{1000000, 64, 64}, Seconds(skinny_bytes / 1e12), ""}});
  ASSERT_EQ(f.compute_roof.size(), 3u);
  EXPECT_NEAR(f.compute_roof[0].second, 100e12, 1e3);
  EXPECT_NEAR(f.compute_roof[1].second, 250e12, 1e3);
  EXPECT_NEAR(f.compute_roof[2].second, 250e12, 1e3);
  EXPECT_NEAR(f.in_sample_error[2], 250.0 / 200.0 - 1.0, 1e-9);  // 4096^3: +25 %
}

TEST(MemoryFit, RecoversAlphaAndBandwidth) {
  // t = 3 us + bytes / 2 TB/s.
  std::vector<CollectiveSample> s;
  for (double b : {1e6, 1e7, 1e8, 1e9}) s.push_back({Bytes(b), Seconds(3e-6 + b / 2e12), ""});
  const MemoryFit f = fit_memory("copy", s);
  EXPECT_NEAR(f.alpha.value(), 3e-6, 1e-12);
  EXPECT_NEAR(f.bandwidth.value(), 2e12, 1e3);
  for (const auto& p : f.points) EXPECT_NEAR(p.held_out_error, 0.0, 1e-9);
}

TEST(LaunchFit, MedianAndHeldOutErrors) {
  // 2, 3, 4 us: overhead 3 us. Without 2 us the median is 3.5 us: +75 %; without 3 us,
  // 3 us: 0 %; without 4 us, 2.5 us: -37.5 %.
  const LaunchFit f = fit_launch({{Bytes(0), Seconds(2e-6), ""}, {Bytes(0), Seconds(3e-6), ""},
                                  {Bytes(0), Seconds(4e-6), ""}});
  EXPECT_NEAR(f.overhead.value(), 3e-6, 1e-15);
  EXPECT_NEAR(f.points[0].held_out_error, 0.75, 1e-12);
  EXPECT_NEAR(f.points[1].held_out_error, 0.0, 1e-12);
  EXPECT_NEAR(f.points[2].held_out_error, -0.375, 1e-12);
  EXPECT_THROW(fit_launch({{Bytes(0), Seconds(2e-6), ""}}), InputError);
}

}  // namespace
}  // namespace orrery
