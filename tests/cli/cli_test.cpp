// End-to-end tests of the `orrery` binary: exit codes, output formats, determinism.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/cli/run.h"

namespace orrery {
namespace {

using testing::run_orrery;

TEST(Cli, CheckQuickstartTable) {
  const auto r = run_orrery("check scenarios/quickstart.yaml");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(r.err.empty()) << r.err;
  EXPECT_NE(r.out.find("memory per GPU"), std::string::npos);
  EXPECT_NE(r.out.find("verdict: "), std::string::npos);
}

TEST(Cli, CheckJsonHasTheDocumentedKeys) {
  const auto r = run_orrery("check scenarios/quickstart.yaml --format json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  for (const char* k : {"params_total", "flops_per_step_model", "flops_per_step_hardware",
                        "memory_per_gpu_bytes", "fits", "scenario", "stages"}) {
    EXPECT_TRUE(j.contains(k)) << k;
  }
  for (const char* k : {"weights", "gradients", "optimizer", "activations", "other", "total"}) {
    EXPECT_TRUE(j["memory_per_gpu_bytes"].contains(k)) << k;
  }
  // Llama 3 70B: 70,553,706,496 parameters (tests/model/params_test.cpp).
  EXPECT_DOUBLE_EQ(j["params_total"].get<double>(), 70553706496.0);
  const auto& m = j["memory_per_gpu_bytes"];
  EXPECT_DOUBLE_EQ(m["total"].get<double>(),
                   m["weights"].get<double>() + m["gradients"].get<double>() +
                       m["optimizer"].get<double>() + m["activations"].get<double>() +
                       m["other"].get<double>());
}

TEST(Cli, SameInputSameBytes) {
  for (const char* fmt : {"table", "json"}) {
    const auto a = run_orrery(std::string("check scenarios/quickstart.yaml --format ") + fmt);
    const auto b = run_orrery(std::string("check scenarios/quickstart.yaml --format ") + fmt);
    EXPECT_EQ(a.out, b.out) << fmt;
  }
}

TEST(Cli, BadScenarioExitsTwoAndWritesNothingToStdout) {
  const std::string path = ::testing::TempDir() + "bad_scenario.yaml";
  {
    std::ofstream f(path);
    f << "cluster: {preset: dgx-h100}\nmodel: {preset: llama3-8b}\n"
         "parallelism: {tp: 8, global_bach: 8}\n";
  }
  const auto r = run_orrery("check '" + path + "' --format json");
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(r.out.empty());
  EXPECT_NE(r.err.find(path + ":3: key 'parallelism.global_bach'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("did you mean 'global_batch'?"), std::string::npos) << r.err;
}

TEST(Cli, MissingFileExitsTwo) {
  const auto r = run_orrery("check no/such/file.yaml");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("no/such/file.yaml: cannot open"), std::string::npos) << r.err;
}

TEST(Cli, BadFlagsExitTwo) {
  EXPECT_EQ(run_orrery("check scenarios/quickstart.yaml --format xml").code, 2);
  EXPECT_EQ(run_orrery("check").code, 2);
  EXPECT_EQ(run_orrery("").code, 2);
  EXPECT_EQ(run_orrery("frobnicate").code, 2);
}

TEST(Cli, HelpListsOnlyWorkingSubcommands) {
  const auto r = run_orrery("--help");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("check"), std::string::npos);
  EXPECT_NE(r.out.find("presets"), std::string::npos);
  EXPECT_NE(r.out.find("run"), std::string::npos);
  EXPECT_NE(r.out.find("validate"), std::string::npos);
  for (const char* later : {"sweep", "calibrate", "report", "merge"}) {
    EXPECT_EQ(r.out.find(std::string("  ") + later), std::string::npos) << later;
  }
}

TEST(Cli, PresetsListsEveryKind) {
  const auto r = run_orrery("presets");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("h100-sxm5-80gb"), std::string::npos);
  EXPECT_NE(r.out.find("dgx-a100"), std::string::npos);
  EXPECT_NE(r.out.find("deepseek-v3"), std::string::npos);
}

TEST(Cli, EveryShippedScenarioChecks) {
  for (const char* f : {"scenarios/quickstart.yaml", "scenarios/gpt3-175b-a100-1024.yaml",
                        "scenarios/llama3-405b-h100-16k.yaml", "scenarios/resnet50-dgx-a100.yaml",
                        "scenarios/mixtral-8x7b-h100-64.yaml"}) {
    const auto r = run_orrery(std::string("check ") + f);
    EXPECT_EQ(r.code, 0) << f << ": " << r.err;
  }
}

}  // namespace
}  // namespace orrery
