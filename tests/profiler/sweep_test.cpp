#include "profiler/sweep.h"

#include <gtest/gtest.h>

#include <sstream>

#include "profiler/fake_device.h"

namespace orrery::profiler {
namespace {

constexpr std::int64_t MiB = 1 << 20;

struct Fixture {
  std::ostringstream progress_text;
  Progress progress{progress_text, false};
  MeasurementFile f;
};

TEST(Sweep, StatisticsOfTheFakesRepetitions) {
  // bf16 GEMM 1024^3 on the fake: 2 * 1024^3 FLOP / 500e12 FLOP/s = 4.294967296 us.
  // Five repetitions scaled by 1, 1.02, 0.99, 1.04, 0.98; sorted 0.98 0.99 1 1.02 1.04:
  // median 1.00 t; p10 at position 0.4: 0.98 + 0.4 * 0.01 = 0.984 t;
  // p90 at position 3.6: 1.02 + 0.6 * 0.02 = 1.032 t.
  FakeDevice dev;
  Plan plan;
  plan.gemm.push_back({Dtype::bf16, 1024, 1024, 1024});
  Fixture x;
  run_sweep(dev, plan, {2, 5}, x.progress, x.f);
  ASSERT_EQ(x.f.gemm.size(), 1u);
  const double t = 2.0 * 1024 * 1024 * 1024 / 500e12;
  EXPECT_NEAR(x.f.gemm[0].time.median.value(), t, t * 1e-12);
  EXPECT_NEAR(x.f.gemm[0].time.p10.value(), 0.984 * t, t * 1e-12);
  EXPECT_NEAR(x.f.gemm[0].time.p90.value(), 1.032 * t, t * 1e-12);
  EXPECT_TRUE(x.f.skipped.empty());
}

TEST(Sweep, Fp8AccumulationIsPartOfTheCaseAndTheRecord) {
  // fp8 4096^3: 2 * 4096^3 FLOP = 137.438953472 GFLOP; split at 500e12 FLOP/s is
  // 274.877906944 us, fast at 1.25 x that rate 219.9023255552 us (the fake's figures).
  FakeDevice dev;
  Plan plan;
  plan.gemm = {{Dtype::fp8, 4096, 4096, 4096, Fp8Accumulation::fast},
               {Dtype::fp8, 4096, 4096, 4096, Fp8Accumulation::split}};
  Fixture x;
  run_sweep(dev, plan, {1, 5}, x.progress, x.f);
  ASSERT_EQ(x.f.gemm.size(), 2u);
  const double flop = 2.0 * 4096 * 4096 * 4096;
  EXPECT_EQ(x.f.gemm[0].accumulation, Fp8Accumulation::fast);
  EXPECT_NEAR(x.f.gemm[0].time.median.value(), flop / (1.25 * 500e12), 1e-15);
  EXPECT_EQ(x.f.gemm[1].accumulation, Fp8Accumulation::split);
  EXPECT_NEAR(x.f.gemm[1].time.median.value(), flop / 500e12, 1e-15);
  EXPECT_DOUBLE_EQ(x.f.gemm[0].sustained.value(), 0.0);  // an ordinary measurement
  EXPECT_EQ(describe(plan.gemm[0]), "gemm fp8 fast m=4096 n=4096 k=4096");
  EXPECT_EQ(describe(GemmCase{Dtype::bf16, 1, 2, 3}), "gemm bf16 m=1 n=2 k=3");
}

TEST(Sweep, SustainedGemmsRecordTheLoadAndTheClock) {
  // bf16 8192^3 on the fake under load: the clock settles at 0.9 x 1000 MHz = 900 MHz and
  // the GEMM takes 1 / 0.9 as long: 2 * 8192^3 / (500e12 * 0.9) = 2.443359...ms.
  FakeDevice dev;
  Plan plan;
  plan.gemm = {{Dtype::bf16, 8192, 8192, 8192}, {Dtype::bf16, 4096, 4096, 4096}};
  plan.gemm_sustained = Seconds(30);
  Fixture x;
  run_sweep(dev, plan, {2, 5}, x.progress, x.f);
  ASSERT_EQ(x.f.gemm.size(), 2u);
  const double t = 2.0 * 8192 * 8192 * 8192 / (500e12 * 0.9);
  EXPECT_NEAR(x.f.gemm[0].time.median.value(), t, t * 1e-12);
  EXPECT_DOUBLE_EQ(x.f.gemm[0].sustained.value(), 30.0);
  EXPECT_DOUBLE_EQ(x.f.gemm[0].sm_clock_mhz, 900.0);
  EXPECT_DOUBLE_EQ(dev.sustained_load().value(), 60.0);  // both cases, 30 s each
  EXPECT_TRUE(x.f.skipped.empty());
}

TEST(Sweep, AnUnreadableClockIsRecordedOnceAndTheTimesKept) {
  FakeDevice dev;
  dev.clock_unreadable("NVML not loaded: no driver");
  Plan plan;
  plan.gemm = {{Dtype::bf16, 1024, 1024, 1024}, {Dtype::bf16, 2048, 2048, 2048}};
  plan.gemm_sustained = Seconds(5);
  Fixture x;
  run_sweep(dev, plan, {1, 3}, x.progress, x.f);
  ASSERT_EQ(x.f.gemm.size(), 2u);
  EXPECT_DOUBLE_EQ(x.f.gemm[1].sm_clock_mhz, 0.0);
  EXPECT_DOUBLE_EQ(x.f.gemm[1].sustained.value(), 5.0);
  ASSERT_EQ(x.f.skipped.size(), 1u);
  EXPECT_EQ(x.f.skipped[0].what, "sm clock");
  EXPECT_EQ(x.f.skipped[0].reason, "NVML not loaded: no driver");
}

TEST(Sweep, ASustainedGemmThatFailsIsSkipped) {
  FakeDevice dev;
  dev.fail("gemm fp8 split m=1024 n=1024 k=1024", {FailureKind::device_error, "cublasLtMatmul"});
  Plan plan;
  plan.gemm = {{Dtype::fp8, 1024, 1024, 1024}};
  plan.gemm_sustained = Seconds(5);
  Fixture x;
  run_sweep(dev, plan, {1, 3}, x.progress, x.f);
  EXPECT_TRUE(x.f.gemm.empty());
  ASSERT_EQ(x.f.skipped.size(), 1u);
  EXPECT_EQ(x.f.skipped[0].what, "gemm fp8 split m=1024 n=1024 k=1024");
  EXPECT_EQ(x.f.skipped[0].reason, "device error: cublasLtMatmul");
}

TEST(Sweep, OutOfMemoryAtOneSizeSkipsOnlyThatSize) {
  FakeDevice dev;
  dev.memory_limit(100 * MiB);
  Plan plan;
  plan.memory_bound = {{MemoryKernel::copy, 64 * MiB}, {MemoryKernel::copy, 1024 * MiB},
                       {MemoryKernel::elementwise, 64 * MiB}};
  Fixture x;
  run_sweep(dev, plan, {1, 3}, x.progress, x.f);
  ASSERT_EQ(x.f.memory_bound.size(), 2u);
  EXPECT_EQ(x.f.memory_bound[1].kernel, MemoryKernel::elementwise);
  ASSERT_EQ(x.f.skipped.size(), 1u);
  EXPECT_EQ(x.f.skipped[0].what, "memory_bound copy bytes=1 GiB");
  EXPECT_EQ(x.f.skipped[0].reason, "out of memory: fake memory limit");
}

TEST(Sweep, UnsupportedTypeIsOneSkippedEntryAndNeverCalled) {
  FakeDevice dev;
  dev.unsupported(Dtype::fp8);
  Plan plan;
  plan.gemm = {{Dtype::fp8, 1024, 1024, 1024}, {Dtype::fp8, 2048, 2048, 2048},
               {Dtype::bf16, 1024, 1024, 1024}};
  Fixture x;
  run_sweep(dev, plan, {1, 3}, x.progress, x.f);
  EXPECT_EQ(dev.calls(), 1);  // only the bf16 GEMM ran
  ASSERT_EQ(x.f.skipped.size(), 1u);
  EXPECT_EQ(x.f.skipped[0].what, "gemm fp8");
  EXPECT_EQ(x.f.skipped[0].reason, "unsupported: not available on compute capability 9.0");
  EXPECT_EQ(x.f.gemm.size(), 1u);
}

TEST(Sweep, NcclInitFailureSkipsTheRestOfThatGroupSize) {
  FakeDevice dev;
  dev.collectives_unavailable(4);
  Plan plan;
  for (int g : {2, 4})
    for (std::int64_t b : {std::int64_t{1024}, 2 * std::int64_t{1024}})
      plan.collectives.push_back({CollectiveOp::all_reduce, g, 1, b});
  plan.collectives.push_back({CollectiveOp::broadcast, 4, 1, 1024});
  Fixture x;
  run_sweep(dev, plan, {1, 3}, x.progress, x.f);
  EXPECT_EQ(x.f.collectives.size(), 2u);  // both 2-GPU cases
  ASSERT_EQ(x.f.skipped.size(), 3u);      // all three 4-GPU cases
  EXPECT_EQ(dev.calls(), 3);              // the 4-GPU group was tried once
  for (const auto& s : x.f.skipped) EXPECT_EQ(s.reason, "unavailable: fake NCCL init failure");
  EXPECT_EQ(x.f.skipped[2].what, "broadcast gpus=4 nodes=1 bytes=1 KiB");
}

TEST(Sweep, ALostTimingIsADeviceErrorNotAShortStatistic) {
  FakeDevice dev;
  dev.drop_one_timing("launch empty");
  Plan plan;
  plan.launch = true;
  Fixture x;
  run_sweep(dev, plan, {1, 4}, x.progress, x.f);
  EXPECT_TRUE(x.f.launch.empty());
  ASSERT_EQ(x.f.skipped.size(), 1u);
  EXPECT_EQ(x.f.skipped[0].reason, "device error: expected 4 timings, got 3");
}

TEST(Sweep, ScriptedDeviceErrorKeepsItsMessage) {
  FakeDevice dev;
  dev.fail("attention bf16 forward batch=1 heads=32 seq=2048 head_dim=128 causal",
           {FailureKind::device_error, "cublasLtMatmul: CUBLAS_STATUS_EXECUTION_FAILED"});
  Plan plan;
  plan.attention.push_back({Dtype::bf16, false, 1, 32, 2048, 128, true});
  Fixture x;
  run_sweep(dev, plan, {1, 3}, x.progress, x.f);
  ASSERT_EQ(x.f.skipped.size(), 1u);
  EXPECT_EQ(x.f.skipped[0].reason,
            "device error: cublasLtMatmul: CUBLAS_STATUS_EXECUTION_FAILED");
}

TEST(Progress, OneLinePerCaseRewrittenInPlace) {
  FakeDevice dev;
  Plan plan;
  plan.launch = true;
  plan.memory_bound = {{MemoryKernel::copy, 2 * 1000 * 1000 * 1000LL / 1000}};
  std::ostringstream text;
  Progress progress(text, true);
  MeasurementFile f;
  run_sweep(dev, plan, {0, 5}, progress, f);
  // copy of 2,000,000 B at 2e12 B/s = 1 us, below the 2 us floor: median 2 us.
  EXPECT_EQ(text.str(),
            "\r\x1b[K[1/2] memory_bound copy bytes=2000000 B: median 2 us"
            "\r\x1b[K[2/2] launch empty: median 2 us\n");
}

TEST(Progress, DisabledWritesNothing) {
  FakeDevice dev;
  Plan plan;
  plan.launch = true;
  std::ostringstream text;
  Progress progress(text, false);
  MeasurementFile f;
  run_sweep(dev, plan, {0, 5}, progress, f);
  EXPECT_EQ(text.str(), "");
  EXPECT_EQ(f.launch.size(), 1u);
}

}  // namespace
}  // namespace orrery::profiler
