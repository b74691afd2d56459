#include "report/validate_report.h"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>

#include <nlohmann/json.hpp>

namespace orrery {
namespace {

struct Summary {
  double mean = 0, max = 0;
};

Summary summarise(const std::vector<ValidationCase>& cases) {
  Summary s;
  for (const auto& c : cases) {
    s.mean += std::fabs(c.error_pct());
    s.max = std::max(s.max, std::fabs(c.error_pct()));
  }
  if (!cases.empty()) s.mean /= static_cast<double>(cases.size());
  return s;
}

}  // namespace

std::string render_validation_table(const std::vector<ValidationCase>& cases) {
  std::string o = fmt::format("{:<34} {:<24} {:>12} {:>12} {:>9}\n", "case", "metric",
                              "measured", "predicted", "error");
  for (const auto& c : cases) {
    o += fmt::format("{:<34} {:<24} {:>12.4g} {:>12.4g} {:>+8.1f}%\n", c.id, to_string(c.metric),
                     c.measured, c.predicted, c.error_pct());
  }
  const Summary s = summarise(cases);
  o += fmt::format("\n{} cases, mean |error| {:.1f} %, max |error| {:.1f} %\n", cases.size(), s.mean,
                   s.max);
  return o;
}

std::string render_validation_json(const std::vector<ValidationCase>& cases) {
  nlohmann::ordered_json j;
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (const auto& c : cases) {
    list.push_back({{"id", c.id},
                    {"file", c.file},
                    {"metric", to_string(c.metric)},
                    {"measured", c.measured},
                    {"predicted", c.predicted},
                    {"error_pct", c.error_pct()},
                    {"source", c.source}});
  }
  j["cases"] = list;
  const Summary s = summarise(cases);
  j["summary"] = {{"count", cases.size()},
                  {"mean_abs_error_pct", s.mean},
                  {"max_abs_error_pct", s.max}};
  return j.dump(2) + "\n";
}

}  // namespace orrery
