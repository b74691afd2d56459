// Megatron-LM training logs (`measured: {log: FILE}`): the per-iteration figures a
// training run prints, read so that a user's own runs can be compared with, and
// calibrated against, orrery's prediction (docs/scenario-format.md, "measured").
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "scenario/spec.h"

namespace orrery {

// One iteration line as Megatron-LM's training_log() prints it
// (megatron/training/training.py, NVIDIA/Megatron-LM d98e8a64):
//   " [date] iteration      100/    1000 | consumed samples: ... | elapsed time per
//    iteration (ms): 1234.5 | throughput per GPU (TFLOP/s/GPU): 456.7 | ..."
// The elapsed time is the mean over the iterations since the previous line
// (--log-interval); throughput only with --log-throughput.
struct TrainingLogLine {
  int line = 0;  // 1-based, in the log file
  long iteration = 0;
  double step_ms = 0;
  std::optional<double> tflops_per_gpu;
};

// The lines skipped as warm-up: the first two iteration lines. Megatron-LM prints the
// first iteration alone (is_first_iteration, "to document initialization overhead") without
// resetting its interval timer, so the second line's mean still holds the first
// iteration; older versions print no first-iteration line, and their first line's
// interval holds it. Skipping two lines drops it in both.
inline constexpr int kTrainingLogWarmupLines = 2;

// The iteration lines of a log, in order. Throws InputError naming `file` when it holds
// none ("no Megatron-LM iteration lines").
std::vector<TrainingLogLine> read_training_log_text(const std::string& text,
                                                    const std::string& file);

// The median over the lines after the warm-up of the figure `metric` asks for:
// step_time_s from "elapsed time per iteration (ms)", tflops_per_gpu_model from
// "throughput per GPU (TFLOP/s/GPU)" (Megatron-LM's num_floating_point_operations: model
// FLOPs, forward and backward, no recomputation). Throws InputError naming `file` for
// another metric, for fewer than kTrainingLogWarmupLines + 1 lines, or for a throughput
// asked of a log that does not print it.
double training_log_median(const std::vector<TrainingLogLine>& lines, Metric metric,
                           const std::string& file);

}  // namespace orrery
