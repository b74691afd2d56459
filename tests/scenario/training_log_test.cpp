// Megatron-LM training logs as measured runs: the iteration lines read, the first two
// skipped as warm-up, the median taken; bad logs refused.
#include "scenario/training_log.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "scenario/load.h"

namespace orrery {
namespace {

// Five iteration lines in Megatron-LM's format (training_log(), megatron/training/
// training.py, NVIDIA/Megatron-LM d98e8a64), with other lines between them. Made-up
// numbers: the first holds start-up (21.9 s), the second still part of it.
const char* kLog =
    "[2026-11-02 10:00:01] using world size: 8\n"
    " [2026-11-02 10:01:10.000000] iteration        1/      50 | consumed samples:            8 "
    "| elapsed time per iteration (ms): 21873.2 | throughput per GPU (TFLOP/s/GPU): 55.2 | "
    "learning rate: 3.000000E-06 | global batch size:     8 |\n"
    "[Rank 0] (after 1 iterations) memory (MB) | allocated: 20000\n"
    " [2026-11-02 10:01:40.000000] iteration       10/      50 | consumed samples:           80 "
    "| elapsed time per iteration (ms): 5101.5 | throughput per GPU (TFLOP/s/GPU): 236.9 |\n"
    " [2026-11-02 10:02:10.000000] iteration       20/      50 | consumed samples:          160 "
    "| elapsed time per iteration (ms): 3000.0 | throughput per GPU (TFLOP/s/GPU): 400.1 |\n"
    " [2026-11-02 10:02:40.000000] iteration       30/      50 | consumed samples:          240 "
    "| elapsed time per iteration (ms): 3010.0 | throughput per GPU (TFLOP/s/GPU): 398.0 |\n"
    " [2026-11-02 10:03:10.000000] iteration       40/      50 | consumed samples:          320 "
    "| elapsed time per iteration (ms): 2990.0 | throughput per GPU (TFLOP/s/GPU): 401.5 |\n";

TEST(TrainingLog, ReadsEveryIterationLine) {
  const auto lines = read_training_log_text(kLog, "run.log");
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(lines[0].line, 2);
  EXPECT_EQ(lines[0].iteration, 1);
  EXPECT_DOUBLE_EQ(lines[0].step_ms, 21873.2);
  EXPECT_EQ(lines[1].line, 4);
  EXPECT_EQ(lines[4].iteration, 40);
  ASSERT_TRUE(lines[4].tflops_per_gpu);
  EXPECT_DOUBLE_EQ(*lines[4].tflops_per_gpu, 401.5);
}

TEST(TrainingLog, MedianAfterTheTwoWarmupLines) {
  const auto lines = read_training_log_text(kLog, "run.log");
  // Lines 3-5: 3000.0, 3010.0, 2990.0 ms; median 3000.0 ms = 3.0 s. With the warm-up
  // lines kept it would be 3010.0 ms (median of five), and the mean 7 s.
  EXPECT_DOUBLE_EQ(training_log_median(lines, Metric::step_time_s, "run.log"), 3.0);
  // 400.1, 398.0, 401.5 TFLOP/s: median 400.1.
  EXPECT_DOUBLE_EQ(training_log_median(lines, Metric::tflops_per_gpu_model, "run.log"), 400.1);
}

TEST(TrainingLog, BadLogsAreRefused) {
  EXPECT_THROW(read_training_log_text("building GPT model ...\ntraining ...\n", "x.log"),
               InputError);
  const auto lines = read_training_log_text(kLog, "run.log");
  EXPECT_THROW(training_log_median(lines, Metric::mfu, "run.log"), InputError);
  const std::vector<TrainingLogLine> two(lines.begin(), lines.begin() + 2);
  EXPECT_THROW(training_log_median(two, Metric::step_time_s, "run.log"), InputError);
  // No throughput printed (no --log-throughput): a TFLOP/s metric cannot be read.
  const std::string no_tp =
      " iteration 1/5 | elapsed time per iteration (ms): 9.0 |\n"
      " iteration 2/5 | elapsed time per iteration (ms): 5.0 |\n"
      " iteration 3/5 | elapsed time per iteration (ms): 4.0 |\n";
  const auto l3 = read_training_log_text(no_tp, "n.log");
  EXPECT_DOUBLE_EQ(training_log_median(l3, Metric::step_time_s, "n.log"), 0.004);
  EXPECT_THROW(training_log_median(l3, Metric::tflops_per_gpu_model, "n.log"), InputError);
  try {
    read_training_log_text(" iteration 1/5 | elapsed time per iteration (ms): abc |\n", "b.log");
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    EXPECT_EQ(e.where().line, 1);
  }
}

TEST(TrainingLog, AScenarioReadsItsMeasuredValueFromTheLog) {
  const auto dir = std::filesystem::temp_directory_path() /
                   fmt::format("orrery_training_log_test_{}", static_cast<long>(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "run.log", std::ios::binary) << kLog;
  const std::string body =
      "cluster: {preset: dgx-h100}\nmodel: {preset: llama3-8b}\n"
      "parallelism: {tp: 8, global_batch: 8}\n";
  const std::string file = (dir / "run.yaml").string();
  // The log's path is relative to the scenario file.
  const Scenario s =
      load_scenario_text(body + "measured: {metric: step_time_s, log: run.log}\n", file);
  ASSERT_TRUE(s.measured);
  EXPECT_DOUBLE_EQ(s.measured->value, 3.0);
  EXPECT_EQ(s.measured->log, (dir / "run.log").string());
  EXPECT_NE(s.measured->source.find("median of 3 iteration lines after 2 warm-up lines"),
            std::string::npos)
      << s.measured->source;
  EXPECT_THROW(
      load_scenario_text(body + "measured: {metric: step_time_s, log: run.log, value: 3}\n", file),
      InputError);
  EXPECT_THROW(load_scenario_text(body + "measured: {metric: step_time_s, log: none.log}\n", file),
               InputError);
  EXPECT_THROW(load_scenario_text(body + "measured: {metric: step_time_s, source: x}\n", file),
               InputError);  // neither value nor log
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace orrery
