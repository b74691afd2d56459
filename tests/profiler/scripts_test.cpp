// profiler/sustained_check.sh: its GEMM list is GPT-3 175B's layer GEMMs at TP 4 as the
// plan derives them, and its table reads a measurement file as the format defines it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "profiler/plan.h"

namespace orrery::profiler {
namespace {

const std::filesystem::path kRoot = ORRERY_SOURCE_DIR;

std::string read(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The shapes of the script's `gpt3_shapes=MxNxK,...` line.
std::set<LinearShape> script_shapes() {
  const std::string text = read(kRoot / "profiler" / "sustained_check.sh");
  const auto at = text.find("\ngpt3_shapes=");
  EXPECT_NE(at, std::string::npos);
  std::istringstream line(text.substr(at + 13, text.find('\n', at + 1) - at - 13));
  std::set<LinearShape> out;
  std::string item;
  while (std::getline(line, item, ',')) {
    LinearShape s;
    char x1 = 0, x2 = 0;
    std::istringstream(item) >> s.m >> x1 >> s.n >> x2 >> s.k;
    EXPECT_EQ(x1, 'x') << item;
    EXPECT_EQ(x2, 'x') << item;
    out.insert(s);
  }
  return out;
}

TEST(SustainedCheck, ShapesAreGpt3LayersAtTp4WithoutTheLogits) {
  const std::set<LinearShape> script = script_shapes();
  const auto preset = preset_gemm_shapes("gpt3-175b", 4, true);
  // qkv, proj, fc1, fc2 forward, dgrad, wgrad: 12 GEMMs, 8 distinct shapes (fc1 and fc2
  // share 2048 x 12288 x 12288 and 12288 x 12288 x 2048 at TP 4).
  EXPECT_EQ(script.size(), 8u);
  std::vector<LinearShape> rest;
  for (const auto& s : preset)
    if (!script.count(s)) rest.push_back(s);
  EXPECT_EQ(preset.size(), script.size() + rest.size());  // every script shape is the plan's
  // What is left is the vocabulary projection's three GEMMs: a dimension of vocab / 4.
  const std::set<std::int64_t> layer_dims = {2048, 3072, 9216, 12288};
  ASSERT_EQ(rest.size(), 3u);
  for (const auto& s : rest)
    EXPECT_FALSE(layer_dims.count(s.m) && layer_dims.count(s.n) && layer_dims.count(s.k))
        << s.m << "x" << s.n << "x" << s.k;
}

TEST(SustainedCheck, TableOfAMeasurementFile) {
  // 8192^3: 2 x 8192^3 = 1.0995e12 FLOP; bf16 in 1.5 ms = 733.0 TFLOP/s = 0.741 of 989.4;
  // fp8 fast in 0.75 ms = 1466.0 = 0.741 of 1979; clock 1755 / 1980 = 0.886.
  // 2048 x 12288 x 9216 (qkv dgrad): 463.856e9 FLOP in 400 us = 1159.6 = 0.586 of 1979.
  const std::string cmd =
      "bash '" + (kRoot / "profiler" / "sustained_check.sh").string() + "' --table '" +
      (kRoot / "tests" / "profiler" / "data" / "sustained-sample.yaml").string() + "'";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[512];
  while (std::fgets(buf, sizeof buf, p)) out += buf;
  ASSERT_EQ(pclose(p), 0) << out;
  EXPECT_EQ(out,
            "GPU: NVIDIA H100 80GB HBM3 (max SM clock 1980 MHz); peaks bf16 989.4, fp8 1979 "
            "TFLOP/s\n"
            "shape (m x n x k)  layer              type       load       TFLOP/s  of peak  SM "
            "MHz   of max\n"
            "8192x8192x8192     square             bf16       12 s         733.0    0.741    "
            "1755    0.886\n"
            "8192x8192x8192     square             fp8 fast   12 s        1466.0    0.741    "
            "1755    0.886\n"
            "2048x12288x9216    qkv dgrad          fp8 split  12 s        1159.6    0.586       "
            "-        -\n"
            "skipped: {what: \"sm clock\", reason: \"NVML not loaded: libnvidia-ml.so.1: cannot "
            "open shared object file\"}\n");
}

}  // namespace
}  // namespace orrery::profiler
