// What `orrery validate` prints: predicted against published figures, case by case,
// with the signed error, and the summary.
#pragma once

#include <string>
#include <vector>

#include "scenario/spec.h"

namespace orrery {

struct ValidationCase {
  std::string id;      // the scenario's name: the published row's id
  std::string file;
  Metric metric = Metric::step_time_s;
  double measured = 0;
  double predicted = 0;
  std::string source;
  double error_pct() const { return 100.0 * (predicted - measured) / measured; }
};

std::string render_validation_table(const std::vector<ValidationCase>& cases);
std::string render_validation_json(const std::vector<ValidationCase>& cases);

}  // namespace orrery
