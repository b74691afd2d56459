#include "scenario/training_log.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <string_view>

#include "core/error.h"

namespace orrery {

namespace {

constexpr std::string_view kElapsed = "elapsed time per iteration (ms):";
constexpr std::string_view kThroughput = "throughput per GPU (TFLOP/s/GPU):";
constexpr std::string_view kIteration = "iteration";

// The number after `label` in `line`; none when the label is absent. A label followed
// by no number is bad input.
std::optional<double> number_after(std::string_view line, std::string_view label,
                                   const std::string& file, int at) {
  const std::size_t p = line.find(label);
  if (p == std::string_view::npos) return std::nullopt;
  const std::string rest(line.substr(p + label.size()));
  const char* begin = rest.c_str();
  char* end = nullptr;
  const double v = std::strtod(begin, &end);
  if (end == begin || !(v >= 0) || v > 1e15) {
    throw InputError({file, at}, std::string(label), rest.substr(0, 24),
                     "expected a number (a Megatron-LM iteration line)");
  }
  return v;
}

}  // namespace

std::vector<TrainingLogLine> read_training_log_text(const std::string& text,
                                                    const std::string& file) {
  require_utf8(text, file);  // parts of a line are echoed into messages
  std::vector<TrainingLogLine> out;
  int at = 0;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string_view line(text.data() + start, end - start);
    ++at;
    start = end + 1;
    const auto ms = number_after(line, kElapsed, file, at);
    if (!ms) continue;
    TrainingLogLine l;
    l.line = at;
    l.step_ms = *ms;
    l.tflops_per_gpu = number_after(line, kThroughput, file, at);
    // "iteration       100/    1000 |": the number before the slash.
    if (const std::size_t p = line.find(kIteration); p != std::string_view::npos) {
      const std::string rest(line.substr(p + kIteration.size()));
      l.iteration = std::strtol(rest.c_str(), nullptr, 10);
    }
    if (l.step_ms <= 0) {
      throw InputError({file, at}, std::string(kElapsed), fmt::format("{}", l.step_ms),
                       "an iteration takes more than 0 ms");
    }
    out.push_back(l);
  }
  if (out.empty()) {
    throw InputError({file, std::nullopt}, "", "",
                     "no Megatron-LM iteration lines (' iteration N/M | ... | elapsed time per "
                     "iteration (ms): T |', as megatron/training/training.py prints them)");
  }
  return out;
}

double training_log_median(const std::vector<TrainingLogLine>& lines, Metric metric,
                           const std::string& file) {
  if (metric != Metric::step_time_s && metric != Metric::tflops_per_gpu_model) {
    throw InputError({file, std::nullopt}, "measured.metric", to_string(metric),
                     "a training log gives step_time_s (elapsed time per iteration) or "
                     "tflops_per_gpu_model (throughput per GPU)");
  }
  const std::size_t n = lines.size();
  if (n <= static_cast<std::size_t>(kTrainingLogWarmupLines)) {
    throw InputError(
        {file, std::nullopt}, "", "",
        fmt::format("{} iteration line{}, needs at least {}: the first {} are "
                    "warm-up (they hold the first iteration's start-up)",
                    n, n == 1 ? "" : "s", kTrainingLogWarmupLines + 1, kTrainingLogWarmupLines));
  }
  std::vector<double> v;
  for (std::size_t i = kTrainingLogWarmupLines; i < n; ++i) {
    const TrainingLogLine& l = lines[i];
    if (metric == Metric::step_time_s) {
      v.push_back(l.step_ms / 1000.0);
    } else if (l.tflops_per_gpu) {
      v.push_back(*l.tflops_per_gpu);
    } else {
      throw InputError({file, l.line}, std::string(kThroughput), "",
                       "missing: tflops_per_gpu_model needs the throughput Megatron-LM prints "
                       "with --log-throughput");
    }
  }
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size();
  return m % 2 ? v[m / 2] : 0.5 * (v[m / 2 - 1] + v[m / 2]);
}

}  // namespace orrery
