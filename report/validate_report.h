// What `orrery validate` prints: predicted against published figures, case by case,
// with the signed error, whether the memory model says the case fits, and the summary;
// as a table, JSON, or CSV (the residual table report/band.h ships).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "report/band.h"
#include "scenario/spec.h"

namespace orrery {

// A published peak memory per GPU against the memory model's figure of the same definition
// (measured.memory; the fullest stage's).
struct MemoryComparison {
  MemoryPeak peak = MemoryPeak::device;
  Bytes measured, predicted;
  double error_pct() const {
    return 100.0 * (predicted.value() - measured.value()) / measured.value();
  }
};

struct ValidationCase {
  std::string id;      // the scenario's name: the published row's id
  std::string file;
  Metric metric = Metric::step_time_s;
  double measured = 0;
  double predicted = 0;
  std::string source;
  std::string over;  // metric speedup: the other run's file, resolved; "" otherwise
  Family family;
  int cp = 1, ep = 1, zero_stage = 0;
  // report/band.h schedule_label, cp_comm where cp > 1 ("-" otherwise), layout_label.
  std::string schedule = "-", cp_comm = "-", layout = "-";
  std::string precision;       // training.precision: MFU is compared within one
  double mfu = 0, hfu = 0;     // predicted
  double memory_fraction = 0;  // predicted memory per GPU (busiest stage) / capacity
  bool fits = true;            // the memory model's verdict: the run was published, so a
                               // case that does not fit shows a memory-model error
  std::optional<MemoryComparison> memory;  // measured.memory given
  // false: a memory figure only (measured.memory without a metric): not in the rate table,
  // its families or the residuals; metric, measured and predicted unset.
  bool rate = true;
  double error_pct() const { return 100.0 * (predicted - measured) / measured; }
};

// Predicts `s` (which carries a measured: block; InputError naming `file` otherwise) and
// compares.
// For a speedup case, `over` is the other run: measured and predicted are then ratios,
// this run's tokens per second over the other's (InputError when `over` is missing for a
// speedup or given for another metric).
ValidationCase validation_case(const Scenario& s, const std::string& file,
                               const Scenario* over = nullptr);

// The cases of `files` (scenario files, in order), as `orrery validate` takes them. A
// speedup case's measured.over is read from that path taken from the case file's folder;
// InputError naming the case file and measured.over when it names no file, the case file
// itself (a cycle), or another speedup case (a ratio of a ratio). A file of `files`
// without a measured: block is the base of a speedup case when one of them names it (and
// not a case itself); otherwise it is an InputError, as for validation_case.
std::vector<ValidationCase> validation_cases(const std::vector<std::string>& files);

std::string render_validation_table(const std::vector<ValidationCase>& cases);
std::string render_validation_json(const std::vector<ValidationCase>& cases);
// One header row and one row per case with a rate (memory-only cases have none): the
// residual table (report/band.h), errors as
// fractions. tools/update_residuals.sh writes it to report/validation_residuals.csv.
std::string render_validation_csv(const std::vector<ValidationCase>& cases);

}  // namespace orrery
