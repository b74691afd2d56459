// `orrery validate`'s speedup cases (a pair of runs and a measured ratio), on two small
// synthetic scenarios written to a temporary folder: the predicted ratio derived by hand,
// the other run read from the case's folder and not counted as a case, the per-family
// summary, and each refused pairing (missing file, a cycle, a ratio of a ratio).
#include "report/validate_report.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"

namespace orrery {
namespace {

// One GPU of a DGX A100, a 4-layer model: no collective anywhere in the step.
const char* const kRun = R"(cluster: {preset: dgx-a100, nodes: 1, gpus_per_node: 1}
model: {family: decoder, layers: 4, hidden: 1024, heads: 16, ffn: 4096, vocab: 32000,
        seq_len: 1024, activation: gelu, norm: layernorm, position_embedding: rope,
        tied_embeddings: false, bias: true, dropout: false}
parallelism: {tp: 1, pp: 1, dp: 1, microbatch: 2, global_batch: 8}
training: {precision: bf16, recompute: none}
)";

class SpeedupCases : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("orrery-validate-" + std::to_string(static_cast<long>(::getpid())) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_ / "bases");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& text) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path) << text;
    return path;
  }

  std::filesystem::path dir_;
};

// The same run with its only GPU a straggler at half speed for the whole step: every
// kernel of the step (forward, backward, optimizer) runs at 0.5 x, and with one GPU there
// is no collective or transfer to wait for, so its step time is exactly twice the healthy
// run's and, with the same 8 x 1024 tokens a step, its tokens/s half: the healthy run's
// speedup over it is 2.
const char* const kStraggler = "faults: [{kind: straggler, stage: 0, factor: 0.5}]\n";

TEST_F(SpeedupCases, PredictsTheRatioOfTokensPerSecond) {
  // measured 2.5, predicted 2: error (2 - 2.5) / 2.5 = -20 %; as a step-time error
  // 1 / (1 - 0.2) - 1 = +25 % (a rate predicted low is a step predicted long).
  write("bases/slow.yaml", std::string("name: slow\n") + kRun + kStraggler);
  const std::string fast =
      write("fast.yaml", std::string("name: fast\n") + kRun +
                             "measured: {metric: speedup, over: bases/slow.yaml, value: 2.5, "
                             "source: hand}\n");
  const std::vector<ValidationCase> cases =
      validation_cases({fast, (dir_ / "bases/slow.yaml").string()});
  ASSERT_EQ(cases.size(), 1u);  // the base has no measured: block: it is not a case
  const ValidationCase& c = cases[0];
  EXPECT_EQ(c.metric, Metric::speedup);
  EXPECT_NEAR(c.predicted, 2.0, 1e-9);
  EXPECT_NEAR(c.error_pct(), -20.0, 1e-7);
  EXPECT_EQ(c.over, (dir_ / "bases/slow.yaml").string());

  const std::string table = render_validation_table(cases);
  EXPECT_NE(table.find(" speedup                           2.5            2    -20.0%   yes\n"),
            std::string::npos)
      << table;
  EXPECT_NE(table.find("Ampere x Megatron-Core x 3d                      1           +25.0%"
                       "         20.0%\n"),
            std::string::npos)
      << table;
  EXPECT_NE(table.find("1 cases, mean |error| 20.0 %, max |error| 20.0 %"), std::string::npos);
  const std::string json = render_validation_json(cases);
  EXPECT_NE(json.find("\"metric\": \"speedup\""), std::string::npos);
  EXPECT_NE(json.find("\"signed_step_time_error_pct\": 25.0"), std::string::npos) << json;
  EXPECT_NE(render_validation_csv(cases).find(",speedup,2.5,2,-0.2,0.25,"), std::string::npos);
}

TEST_F(SpeedupCases, TheSlowRunOverTheFastIsOneHalf) {
  // The other direction, with the base an absolute case of its own: it counts as a case.
  write("fast.yaml", std::string("name: fast\n") + kRun +
                         "measured: {metric: step_time_s, value: 0.04, source: hand}\n");
  const std::string slow =
      write("slow.yaml",
            std::string("name: slow\n") + kRun + kStraggler +
                "measured: {metric: speedup, over: ./fast.yaml, value: 0.5, source: hand}\n");
  const auto cases = validation_cases({(dir_ / "fast.yaml").string(), slow});
  ASSERT_EQ(cases.size(), 2u);
  EXPECT_NEAR(cases[1].predicted, 0.5, 1e-9);
  EXPECT_NEAR(cases[1].error_pct(), 0.0, 1e-7);
}

// The message of the InputError validation_cases throws, "" when none.
std::string error_of(const std::vector<std::string>& files) {
  try {
    validation_cases(files);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST_F(SpeedupCases, RefusesAMissingOtherRun) {
  const std::string f = write(
      "a.yaml", std::string("name: a\n") + kRun +
                    "measured: {metric: speedup, over: nope.yaml, value: 1.2, source: hand}\n");
  const std::string e = error_of({f});
  EXPECT_NE(e.find("measured.over"), std::string::npos) << e;
  EXPECT_NE(e.find("no scenario file"), std::string::npos) << e;
}

TEST_F(SpeedupCases, RefusesACycle) {
  const std::string self =
      write("a.yaml", std::string("name: a\n") + kRun + "measured: {metric: speedup, over: ../" +
                          dir_.filename().string() + "/a.yaml, value: 1.2, source: hand}\n");
  EXPECT_NE(error_of({self}).find("a cycle: the run is compared with itself"), std::string::npos)
      << error_of({self});
  write("b.yaml", std::string("name: b\n") + kRun +
                      "measured: {metric: speedup, over: c.yaml, value: 1.2, source: hand}\n");
  write("c.yaml", std::string("name: c\n") + kRun +
                      "measured: {metric: speedup, over: b.yaml, value: 0.8, source: hand}\n");
  const std::string e = error_of({(dir_ / "b.yaml").string(), (dir_ / "c.yaml").string()});
  EXPECT_NE(e.find("a cycle: that run is itself a speedup over this one"), std::string::npos) << e;
}

TEST_F(SpeedupCases, RefusesARatioOfARatio) {
  write("base.yaml", std::string("name: base\n") + kRun);
  write("mid.yaml", std::string("name: mid\n") + kRun +
                        "measured: {metric: speedup, over: base.yaml, value: 1.1, source: hand}\n");
  const std::string top = write(
      "top.yaml", std::string("name: top\n") + kRun +
                      "measured: {metric: speedup, over: mid.yaml, value: 1.1, source: hand}\n");
  const std::string e = error_of({top});
  EXPECT_NE(e.find("a ratio of a ratio"), std::string::npos) << e;
}

TEST_F(SpeedupCases, AFileWithoutMeasuredThatNoCaseNamesIsStillAnError) {
  const std::string f = write("lone.yaml", std::string("name: lone\n") + kRun);
  EXPECT_NE(error_of({f}).find("a validation case needs a measured: block"), std::string::npos);
}

// measured.memory: the published peak against the memory model's figure of the same
// definition (the fullest stage's, as `check` prints them), in a table of its own.
TEST_F(SpeedupCases, MemoryCasesCompareTheFigureOfTheirDefinition) {
  const std::string measured = "measured: {metric: tokens_per_s, value: 1000, source: test, "
                               "memory: {peak: PEAK, value: 10 GiB}}\n";
  auto with = [&](const std::string& peak) {
    std::string m = measured;
    m.replace(m.find("PEAK"), 4, peak);
    return m;
  };
  const std::string dev = write("dev.yaml", std::string("name: dev\n") + kRun + with("device"));
  const std::string res =
      write("res.yaml", std::string("name: res\n") + kRun + with("reserved"));
  const std::string alloc =
      write("alloc.yaml", std::string("name: alloc\n") + kRun + with("allocated"));
  const std::string plain = write("plain.yaml", std::string("name: plain\n") + kRun +
                                                    "measured: {metric: tokens_per_s, value: "
                                                    "1000, source: test}\n");
  const std::vector<ValidationCase> cases = validation_cases({dev, res, alloc, plain});
  ASSERT_EQ(cases.size(), 4u);
  ASSERT_TRUE(cases[0].memory && cases[1].memory && cases[2].memory);
  EXPECT_FALSE(cases[3].memory);
  // One scenario, three definitions: allocated < reserved <= device, each 10 GiB measured;
  // the error is (predicted - 10 GiB) / 10 GiB.
  const double gib10 = 10.0 * 1073741824.0;
  EXPECT_DOUBLE_EQ(cases[0].memory->measured.value(), gib10);
  EXPECT_LT(cases[2].memory->predicted.value(), cases[1].memory->predicted.value());
  EXPECT_LE(cases[1].memory->predicted.value(), cases[0].memory->predicted.value());
  EXPECT_NEAR(cases[0].memory->error_pct(),
              100.0 * (cases[0].memory->predicted.value() - gib10) / gib10, 1e-9);
  const std::string table = render_validation_table(cases);
  EXPECT_NE(table.find("memory case"), std::string::npos) << table;
  EXPECT_NE(table.find("\n3 memory cases, mean |error| "), std::string::npos) << table;
  const nlohmann::json j = nlohmann::json::parse(render_validation_json(cases));
  EXPECT_EQ(j["cases"][1]["memory"]["peak"], "reserved");
  EXPECT_DOUBLE_EQ(j["cases"][1]["memory"]["measured_bytes"].get<double>(), gib10);
  EXPECT_FALSE(j["cases"][3].contains("memory"));
  // A memory figure alone (no metric): in the memory table, not among the rate cases, the
  // families or the residuals.
  const std::string only = write("only.yaml", std::string("name: only\n") + kRun +
                                                  "measured: {source: test, memory: {peak: "
                                                  "device, value: 10 GiB}}\n");
  const std::vector<ValidationCase> mixed = validation_cases({only, plain});
  ASSERT_EQ(mixed.size(), 2u);
  EXPECT_FALSE(mixed[0].rate);
  const std::string t2 = render_validation_table(mixed);
  EXPECT_NE(t2.find("\n1 cases, mean |error|"), std::string::npos) << t2;
  EXPECT_NE(t2.find("\n1 memory case, mean |error|"), std::string::npos) << t2;
  EXPECT_EQ(render_validation_csv(mixed).find("only,"), std::string::npos);
  EXPECT_TRUE(nlohmann::json::parse(render_validation_json(mixed))["cases"][0]["metric"].is_null());
  // No memory case, no memory table.
  EXPECT_EQ(render_validation_table({cases[3]}).find("memory case"), std::string::npos);
}

}  // namespace
}  // namespace orrery
