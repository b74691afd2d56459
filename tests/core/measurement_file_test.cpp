// The measurement file's records (core/measurement_file.h) survive the trip through the
// file: what profiler/measurements.h writes, calibrate/measurements.h reads back equal.
#include "core/measurement_file.h"

#include <gtest/gtest.h>

#include "calibrate/measurements.h"
#include "profiler/measurements.h"

namespace orrery {
namespace {

TimingStats stats(double median, double p10, double p90) {
  return {Seconds(median), Seconds(p10), Seconds(p90)};
}

// Every field set to a value other than its default. Times have at most four significant
// digits and sizes are whole units, so the file's text holds them exactly; memory is a
// whole number of 0.1 GiB.
MeasurementFile sample() {
  MeasurementFile f;
  MeasurementProvenance& p = f.provenance;
  p.tool = "orrery-profile 0.1.0";
  p.date = "2026-11-27T01:23:45Z";
  p.host = "node \"7\"";  // quoted in the file
  p.gpu = "NVIDIA H100 80GB HBM3";
  p.gpu_count = 8;
  p.sm_count = 132;
  p.sm_clock_mhz = 1980;
  p.memory_clock_mhz = 2619;
  p.memory = Bytes(80.0 * 1024 * 1024 * 1024);
  p.compute_capability = "9.0";
  p.driver = "580.65.06";
  p.cuda_runtime = "13.0";
  p.cublas = "13.0.2";
  p.cudnn = "9.13.0";
  p.nccl = "2.27.7";
  p.timing = "cupti";
  p.warmup = 5;
  p.repetitions = 20;
  f.gemm.push_back({Dtype::bf16, 8192, 8192, 8192, stats(1.25e-3, 1e-3, 1.5e-3)});
  f.gemm.push_back({Dtype::fp8, 4096, 128256, 4096, stats(2e-3, 1e-3, 4e-3)});
  // fp8 with fast accumulation, under a sustained load with the SM clock read.
  f.gemm.push_back({Dtype::fp8, 8192, 8192, 8192, stats(0.75e-3, 0.5e-3, 1e-3),
                    Fp8Accumulation::fast, Seconds(30), 1755});
  // Sustained without a clock reading.
  f.gemm.push_back({Dtype::bf16, 2048, 9216, 12288, stats(0.5e-3, 0.25e-3, 1e-3),
                    Fp8Accumulation::split, Seconds(45), 0});
  f.memory_bound.push_back(
      {MemoryKernel::row_reduce, Bytes(64.0 * 1024 * 1024), stats(0.5e-3, 0.25e-3, 1e-3)});
  f.attention.push_back(
      {AttentionImpl::cudnn_fused, Dtype::fp16, true, 4, 32, 2048, 128, true, stats(1, 0.5, 2)});
  f.launch.push_back({stats(2e-6, 1e-6, 4e-6)});
  f.collectives.push_back(
      {CollectiveOp::reduce_scatter, 16, 2, Bytes(1024.0 * 1024 * 1024), stats(4e-3, 2e-3, 8e-3)});
  f.skipped.push_back({"gemm fp8 m=16384 n=16384 k=16384", "out of memory"});
  return f;
}

TEST(MeasurementFileRoundTrip, ProfilerWritesWhatCalibrateReadsBack) {
  const MeasurementFile written = sample();
  const std::string text = profiler::render_measurements(written);
  const MeasurementFile read = read_measurement_text(text, "h100.yaml");

  // The reader adds the file's name and each entry's line: the 3 header lines and 18 of
  // provenance come first, then each list's key line and its entries.
  MeasurementFile expected = written;
  expected.file = "h100.yaml";
  expected.gemm[0].line = 23;
  expected.gemm[1].line = 24;
  expected.gemm[2].line = 25;
  expected.gemm[3].line = 26;
  expected.memory_bound[0].line = 28;
  expected.attention[0].line = 30;
  expected.launch[0].line = 32;
  expected.collectives[0].line = 34;

  EXPECT_EQ(read.provenance, expected.provenance);
  EXPECT_EQ(read.gemm, expected.gemm);
  EXPECT_EQ(read.memory_bound, expected.memory_bound);
  EXPECT_EQ(read.attention, expected.attention);
  EXPECT_EQ(read.launch, expected.launch);
  EXPECT_EQ(read.collectives, expected.collectives);
  EXPECT_EQ(read.skipped, expected.skipped);
  EXPECT_TRUE(read == expected) << text;
  // The fields as the file spells them (docs/calibration-format.md).
  EXPECT_NE(text.find("  - {dtype: fp8, accumulation: split, m: 4096,"), std::string::npos);
  EXPECT_NE(text.find("  - {dtype: fp8, accumulation: fast, m: 8192, n: 8192, k: 8192, "
                      "sustained: 30 s, sm_clock_mhz: 1755, median: 750 us,"),
            std::string::npos);
  EXPECT_NE(text.find("  - {dtype: bf16, m: 2048, n: 9216, k: 12288, sustained: 45 s, median:"),
            std::string::npos);
  // Written again, the records give the same bytes.
  EXPECT_EQ(profiler::render_measurements(read), text);
}

}  // namespace
}  // namespace orrery
