// The measurement file (docs/calibration-format.md): the contract's example reads with
// every figure in SI units; bad files are errors naming file, line, key and value.
#include <gtest/gtest.h>

#include <string>

#include "calibrate/measurements.h"
#include "core/error.h"

namespace orrery {
namespace {

// The example of docs/calibration-format.md.
const char* kExample = R"(format: orrery-measurements
version: 1
provenance:
  tool: orrery-profile 0.1.0
  date: "2026-11-27T01:23:45Z"
  host: gpu-node-1
  gpu: NVIDIA H100 80GB HBM3
  gpu_count: 8
  sm_count: 132
  sm_clock_mhz: 1980
  memory_clock_mhz: 2619
  memory: 79.6 GiB
  compute_capability: "9.0"
  driver: "580.65.06"
  cuda_runtime: "13.0"
  cublas: "13.0.2"
  cudnn: "9.13.0"
  nccl: "2.27.7"
  timing: cupti
  warmup: 5
  repetitions: 20
gemm:
  - {dtype: bf16, m: 8192, n: 8192, k: 8192, median: 1.252 ms, p10: 1.249 ms, p90: 1.260 ms}
memory_bound:
  - {kernel: copy, bytes: 2 GiB, median: 0.716 ms, p10: 0.714 ms, p90: 0.720 ms}
attention:
  - {implementation: cudnn_fused, dtype: bf16, pass: forward, batch: 4, heads: 32,
     seq: 2048, head_dim: 128, causal: true, median: 0.81 ms, p10: 0.80 ms, p90: 0.83 ms}
launch:
  - {kernel: empty, median: 2.1 us, p10: 2.0 us, p90: 2.3 us}
collectives:
  - {op: all_reduce, gpus: 8, nodes: 1, bytes: 64 MiB, median: 221 us, p10: 219 us, p90: 225 us}
skipped:
  - {what: "gemm fp8 m=16384 n=16384 k=16384", reason: "out of memory"}
)";

TEST(MeasurementFile, TheContractExampleReads) {
  const MeasurementFile m = read_measurement_text(kExample, "h100.yaml");
  EXPECT_EQ(m.provenance.gpu, "NVIDIA H100 80GB HBM3");
  EXPECT_EQ(m.provenance.gpu_count, 8);
  EXPECT_EQ(m.provenance.cudnn, "9.13.0");
  EXPECT_EQ(m.provenance.repetitions, 20);
  EXPECT_DOUBLE_EQ(m.provenance.memory.value(), 79.6 * 1073741824.0);
  ASSERT_EQ(m.gemm.size(), 1u);
  EXPECT_EQ(m.gemm[0].m, 8192);
  EXPECT_DOUBLE_EQ(m.gemm[0].time.median.value(), 1.252e-3);
  EXPECT_EQ(m.gemm[0].line, 23);
  ASSERT_EQ(m.memory_bound.size(), 1u);
  EXPECT_DOUBLE_EQ(m.memory_bound[0].bytes.value(), 2.0 * 1073741824.0);
  ASSERT_EQ(m.attention.size(), 1u);
  EXPECT_TRUE(m.attention[0].causal);
  EXPECT_EQ(m.attention[0].head_dim, 128);
  ASSERT_EQ(m.launch.size(), 1u);
  EXPECT_DOUBLE_EQ(m.launch[0].time.p90.value(), 2.3e-6);
  ASSERT_EQ(m.collectives.size(), 1u);
  EXPECT_DOUBLE_EQ(m.collectives[0].bytes.value(), 64.0 * 1048576.0);
  EXPECT_DOUBLE_EQ(m.collectives[0].time.median.value(), 221e-6);
  ASSERT_EQ(m.skipped.size(), 1u);
  EXPECT_EQ(m.skipped[0].reason, "out of memory");
}

std::string error_of(const std::string& text) {
  try {
    read_measurement_text(text, "m.yaml");
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

std::string replaced(const std::string& from, const std::string& to) {
  std::string t = kExample;
  const auto at = t.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return t.replace(at, from.size(), to);
}

TEST(MeasurementFile, MisspeltKeyIsRejectedWithAHint) {
  const std::string e = error_of(replaced("median: 1.252 ms", "medain: 1.252 ms"));
  EXPECT_NE(e.find("m.yaml:23"), std::string::npos) << e;
  EXPECT_NE(e.find("gemm[0].medain"), std::string::npos) << e;
  EXPECT_NE(e.find("did you mean 'median'"), std::string::npos) << e;
}

TEST(MeasurementFile, BadUnitNamesLineKeyAndValue) {
  const std::string e = error_of(replaced("median: 221 us", "median: 221 GB"));
  EXPECT_NE(e.find("m.yaml:32"), std::string::npos) << e;
  EXPECT_NE(e.find("collectives[0].median' = '221 GB'"), std::string::npos) << e;
}

TEST(MeasurementFile, PercentilesOutOfOrderAreAnError) {
  const std::string e = error_of(replaced("p10: 0.714 ms", "p10: 0.9 ms"));
  EXPECT_NE(e.find("memory_bound[0].p10"), std::string::npos) << e;
  EXPECT_NE(e.find("exceeds the median"), std::string::npos) << e;
}

TEST(MeasurementFile, MissingKeysAreErrors) {
  EXPECT_NE(error_of(replaced("  nccl: \"2.27.7\"\n", "")).find("'provenance.nccl'"),
            std::string::npos);
  const std::string e = error_of(replaced("k: 8192, ", ""));
  EXPECT_NE(e.find("m.yaml:23"), std::string::npos) << e;
  EXPECT_NE(e.find("'gemm[0].k'"), std::string::npos) << e;
  EXPECT_NE(e.find("required key is missing"), std::string::npos) << e;
}

TEST(MeasurementFile, WrongFormatVersionOpAndTruncationAreErrors) {
  EXPECT_NE(error_of(replaced("format: orrery-measurements", "format: orrery-profile"))
                .find("expected 'orrery-measurements'"),
            std::string::npos);
  EXPECT_NE(error_of(replaced("version: 1", "version: 2")).find("version 1 only"),
            std::string::npos);
  EXPECT_NE(error_of(replaced("op: all_reduce", "op: allreduce")).find("'collectives[0].op'"),
            std::string::npos);
  // A file cut off inside a flow mapping is malformed YAML, reported with its line.
  std::string cut = kExample;
  cut = cut.substr(0, cut.find("p90: 225 us}"));
  const std::string e = error_of(cut);
  EXPECT_NE(e.find("malformed YAML"), std::string::npos) << e;
  EXPECT_NE(e.find("m.yaml:"), std::string::npos) << e;
}

// The gemm entry's optional fields: fp8 accumulation (absent: split, cuBLASLt's default
// that earlier files were measured with) and a sustained load with its SM clock.
TEST(MeasurementFile, GemmAccumulationAndSustainedLoad) {
  const std::string bf16 = "  - {dtype: bf16, m: 8192, n: 8192, k: 8192, median: 1.252 ms";
  const MeasurementFile old = read_measurement_text(
      replaced(bf16, "  - {dtype: fp8, m: 8192, n: 8192, k: 8192, median: 1.252 ms"), "m.yaml");
  ASSERT_EQ(old.gemm.size(), 1u);
  EXPECT_EQ(old.gemm[0].accumulation, Fp8Accumulation::split);
  EXPECT_DOUBLE_EQ(old.gemm[0].sustained.value(), 0.0);
  EXPECT_DOUBLE_EQ(old.gemm[0].sm_clock_mhz, 0.0);

  const MeasurementFile m = read_measurement_text(
      replaced(bf16,
               "  - {dtype: fp8, accumulation: fast, m: 8192, n: 8192, k: 8192, "
               "sustained: 1 min, sm_clock_mhz: 1755, median: 1.252 ms"),
      "m.yaml");
  ASSERT_EQ(m.gemm.size(), 1u);
  EXPECT_EQ(m.gemm[0].accumulation, Fp8Accumulation::fast);
  EXPECT_DOUBLE_EQ(m.gemm[0].sustained.value(), 60.0);
  EXPECT_DOUBLE_EQ(m.gemm[0].sm_clock_mhz, 1755.0);
}

TEST(MeasurementFile, BadAccumulationAndSustainedFieldsAreErrors) {
  std::string e =
      error_of(replaced("dtype: bf16, m: 8192", "dtype: bf16, accumulation: fast, m: 8192"));
  EXPECT_NE(e.find("m.yaml:23"), std::string::npos) << e;
  EXPECT_NE(e.find("'gemm[0].accumulation'"), std::string::npos) << e;
  EXPECT_NE(e.find("only fp8 GEMMs have an accumulation mode"), std::string::npos) << e;
  e = error_of(replaced("dtype: bf16, m: 8192", "dtype: fp8, accumulation: quick, m: 8192"));
  EXPECT_NE(e.find("'gemm[0].accumulation' = 'quick'"), std::string::npos) << e;
  e = error_of(replaced("k: 8192, median", "k: 8192, sm_clock_mhz: 1755, median"));
  EXPECT_NE(e.find("'gemm[0].sm_clock_mhz'"), std::string::npos) << e;
  EXPECT_NE(e.find("only with `sustained`"), std::string::npos) << e;
  e = error_of(replaced("k: 8192, median", "k: 8192, sustained: 0 s, median"));
  EXPECT_NE(e.find("'gemm[0].sustained'"), std::string::npos) << e;
  e = error_of(replaced("k: 8192, median", "k: 8192, sustained: 30 GB, median"));
  EXPECT_NE(e.find("'gemm[0].sustained' = '30 GB'"), std::string::npos) << e;
}

}  // namespace
}  // namespace orrery
