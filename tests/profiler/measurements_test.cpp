#include "profiler/measurements.h"

#include "core/env.h"
#include "core/units.h"

#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <sstream>

namespace orrery::profiler {
namespace {

TEST(Format, DurationsHaveFourSignificantDigitsAndAUnit) {
  EXPECT_EQ(format_duration(Seconds(1.252e-3)), "1.252 ms");
  EXPECT_EQ(format_duration(Seconds(221e-6)), "221 us");
  EXPECT_EQ(format_duration(Seconds(2.1e-6)), "2.1 us");
  EXPECT_EQ(format_duration(Seconds(999.96e-6)), "1000 us");  // rounding stays in us
  EXPECT_EQ(format_duration(Seconds(12.3456)), "12.35 s");
  EXPECT_EQ(format_duration(Seconds(850e-9)), "850 ns");
  EXPECT_EQ(format_duration(Seconds(0.5)), "500 ms");
}

TEST(Format, SizesAreExact) {
  EXPECT_EQ(format_size(std::int64_t{2} << 30), "2 GiB");
  EXPECT_EQ(format_size(64 << 20), "64 MiB");
  EXPECT_EQ(format_size(1536), "1536 B");  // not a whole KiB: no rounding
  EXPECT_EQ(format_size(1020), "1020 B");
  EXPECT_EQ(format_size(3 << 10), "3 KiB");
}

TEST(Format, YamlQuoteEscapes) {
  EXPECT_EQ(yaml_quote("a \"b\" \\ c"), "\"a \\\"b\\\" \\\\ c\"");
  EXPECT_EQ(yaml_quote("tab\there"), "\"tab\\x09here\"");
}

MeasurementFile sample() {
  MeasurementFile f;
  const RunInfo run = {"orrery-profile 0.1.0", "2026-11-27T01:23:45Z", "node-1", {5, 20}};
  DeviceInfo d;
  d.gpu = "NVIDIA H100 80GB HBM3";
  d.gpu_count = 8;
  d.sm_count = 132;
  d.sm_clock_mhz = 1980;
  d.memory_clock_mhz = 2619;
  d.memory = Bytes(79.6 * 1024 * 1024 * 1024);
  d.cc_major = 9;
  d.cc_minor = 0;
  d.driver = "580.65.06";
  d.cuda_runtime = "13.0";
  d.cublas = "13.0.2";
  d.cudnn = "none";
  d.nccl = "2.27.7";
  d.timing = "cupti";
  f.provenance = provenance(run, d);
  const auto s = [](double med, double p10, double p90) {
    return TimingStats{Seconds(med), Seconds(p10), Seconds(p90)};
  };
  f.gemm.push_back({Dtype::bf16, 8192, 8192, 8192, s(1.252e-3, 1.249e-3, 1.26e-3)});
  f.memory_bound.push_back(
      {MemoryKernel::copy, Bytes(double(std::int64_t{2} << 30)), s(0.716e-3, 0.714e-3, 0.72e-3)});
  f.attention.push_back(
      {AttentionImpl::unfused, Dtype::bf16, false, 4, 32, 2048, 128, true,
       s(0.81e-3, 0.8e-3, 0.83e-3)});
  f.launch.push_back({s(2.1e-6, 2.0e-6, 2.3e-6)});
  f.collectives.push_back({CollectiveOp::all_reduce, 8, 1, Bytes(64 << 20), s(221e-6, 219e-6, 225e-6)});
  f.skipped.push_back({"gemm fp8 m=16384 n=16384 k=16384", "out of memory"});
  return f;
}

// The contract's example (docs/calibration-format.md), as this writer renders it.
TEST(Render, MatchesTheContractExample) {
  const std::string expected = R"(format: orrery-measurements
version: 1
provenance:
  tool: "orrery-profile 0.1.0"
  date: "2026-11-27T01:23:45Z"
  host: "node-1"
  gpu: "NVIDIA H100 80GB HBM3"
  gpu_count: 8
  sm_count: 132
  sm_clock_mhz: 1980
  memory_clock_mhz: 2619
  memory: 79.6 GiB
  compute_capability: "9.0"
  driver: "580.65.06"
  cuda_runtime: "13.0"
  cublas: "13.0.2"
  cudnn: "none"
  nccl: "2.27.7"
  timing: cupti
  warmup: 5
  repetitions: 20
gemm:
  - {dtype: bf16, m: 8192, n: 8192, k: 8192, median: 1.252 ms, p10: 1.249 ms, p90: 1.26 ms}
memory_bound:
  - {kernel: copy, bytes: 2 GiB, median: 716 us, p10: 714 us, p90: 720 us}
attention:
  - {implementation: unfused, dtype: bf16, pass: forward, batch: 4, heads: 32, seq: 2048, head_dim: 128, causal: true, median: 810 us, p10: 800 us, p90: 830 us}
launch:
  - {kernel: empty, median: 2.1 us, p10: 2 us, p90: 2.3 us}
collectives:
  - {op: all_reduce, gpus: 8, nodes: 1, bytes: 64 MiB, median: 221 us, p10: 219 us, p90: 225 us}
skipped:
  - {what: "gemm fp8 m=16384 n=16384 k=16384", reason: "out of memory"}
)";
  EXPECT_EQ(render_measurements(sample()), expected);
}

// Every figure carries a unit that orrery's own quantity parser (core/units.h, the one
// the calibration reader uses) reads back to the value written, within the four
// significant digits of the text.
TEST(Render, EveryFigureParsesBackWithItsUnit) {
  const std::string text = render_measurements(sample());
  const std::regex time_re(R"((median|p10|p90): ([^,}]+))");
  int times = 0;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), time_re);
       it != std::sregex_iterator(); ++it, ++times) {
    double v = 0;
    std::string why;
    EXPECT_TRUE(parse_quantity((*it)[2].str(), Dimension::seconds, v, why))
        << (*it)[0].str() << ": " << why;
    EXPECT_GT(v, 0.0);
  }
  EXPECT_EQ(times, 15);  // 5 entries x 3 statistics
  const std::regex size_re(R"((bytes|memory): ([^,}\n]+))");
  const std::vector<double> sizes = {79.6 * 1024 * 1024 * 1024, 2.0 * 1024 * 1024 * 1024,
                                     64.0 * 1024 * 1024};
  std::size_t n = 0;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), size_re);
       it != std::sregex_iterator(); ++it, ++n) {
    double v = 0;
    std::string why;
    ASSERT_TRUE(parse_quantity((*it)[2].str(), Dimension::bytes, v, why)) << why;
    ASSERT_LT(n, sizes.size());
    EXPECT_NEAR(v, sizes[n], sizes[n] * 1e-3) << (*it)[0].str();
  }
  EXPECT_EQ(n, sizes.size());
  double v = 0;
  std::string why;
  ASSERT_TRUE(parse_quantity(format_duration(Seconds(1.2524e-3)), Dimension::seconds, v, why));
  EXPECT_NEAR(v, 1.252e-3, 1e-12);  // "1.252 ms"
}

TEST(Render, EmptyListsAreWrittenEmpty) {
  MeasurementFile f = sample();
  f.gemm.clear();
  f.skipped.clear();
  const std::string text = render_measurements(f);
  EXPECT_NE(text.find("\ngemm: []\n"), std::string::npos);
  EXPECT_NE(text.find("\nskipped: []\n"), std::string::npos);
}

TEST(WriteFile, WritesWholeAndLeavesNoTemporary) {
  const std::string path = ::testing::TempDir() + "prof_write_test.yaml";
  const auto why = default_env().write_file_atomically(path, "abc\n");
  ASSERT_FALSE(why.has_value()) << *why;
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_EQ(ss.str(), "abc\n");
  EXPECT_FALSE(std::ifstream(path + ".tmp").good());
}

TEST(WriteFile, ReportsAnUnwritablePath) {
  const auto why = default_env().write_file_atomically("/nonexistent-dir/x.yaml", "abc");
  ASSERT_TRUE(why.has_value());
  EXPECT_NE(why->find("/nonexistent-dir/x.yaml.tmp"), std::string::npos) << *why;
}

}  // namespace
}  // namespace orrery::profiler
