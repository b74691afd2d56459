#include "report/validate_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "simulator/predict.h"

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

ValidationCase validation_case(const Scenario& s, const std::string& file) {
  if (!s.measured) {
    throw InputError({file, std::nullopt}, "measured", "",
                     "missing key: a validation case needs a measured: block "
                     "(metric, value, source)");
  }
  const Prediction p = predict(s);
  ValidationCase c;
  c.id = s.name;
  c.file = file;
  c.metric = s.measured->metric;
  c.measured = s.measured->value;
  c.source = s.measured->source;
  c.predicted = metric_value(p.step, s, c.metric);
  c.family = family_of(s);
  c.cp = s.parallelism.cp;
  c.ep = s.parallelism.ep;
  c.zero_stage = s.parallelism.zero_stage;
  c.precision = to_string(s.training.precision);
  c.mfu = p.step.mfu;
  c.hfu = p.step.hfu;
  const MemoryReport& m = p.step.figures.memory;
  c.memory_fraction = m.worst().memory.total().value() / m.capacity.value();
  c.fits = m.fits;
  return c;
}

std::string render_validation_table(const std::vector<ValidationCase>& cases) {
  std::string o = fmt::format("{:<34} {:<24} {:>12} {:>12} {:>9} {:>5}\n", "case", "metric",
                              "measured", "predicted", "error", "fits");
  int not_fitting = 0;
  for (const auto& c : cases) {
    o += fmt::format("{:<34} {:<24} {:>12.4g} {:>12.4g} {:>+8.1f}% {:>5}\n", c.id,
                     to_string(c.metric), c.measured, c.predicted, c.error_pct(),
                     c.fits ? "yes" : "NO");
    not_fitting += c.fits ? 0 : 1;
  }
  const Summary s = summarise(cases);
  if (not_fitting > 0) {
    o += fmt::format("\n{} case{} the memory model says do not fit, though each ran as published\n",
                     not_fitting, not_fitting == 1 ? "" : "s");
  }
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
                    {"fits", c.fits},
                    {"memory_fraction", c.memory_fraction},
                    {"family",
                     {{"gpu_generation", c.family.generation},
                      {"framework", c.family.framework},
                      {"parallel_kind", c.family.kind}}},
                    {"source", c.source}});
  }
  j["cases"] = list;
  const Summary s = summarise(cases);
  j["summary"] = {{"count", cases.size()},
                  {"mean_abs_error_pct", s.mean},
                  {"max_abs_error_pct", s.max}};
  return j.dump(2) + "\n";
}

std::string render_validation_csv(const std::vector<ValidationCase>& cases) {
  // Six significant digits: the table is compared as text with what validate computes
  // now (tests/report/band_test.cpp), and the band needs no more.
  std::string o =
      "id,gpu_generation,framework,parallel_kind,cp,ep,zero_stage,precision,metric,measured,"
      "predicted,error,time_error,mfu,hfu,memory_fraction,fits\n";
  for (const auto& c : cases) {
    std::string id = c.id;
    for (char& ch : id)
      if (ch == ',' || ch == '\n') ch = ';';
    const double e = (c.predicted - c.measured) / c.measured;
    o += fmt::format(
        "{},{},{},{},{},{},{},{},{},{:.6g},{:.6g},{:.6g},{:.6g},{:.6g},{:.6g},{:.6g},{}\n", id,
        c.family.generation, c.family.framework, c.family.kind, c.cp, c.ep, c.zero_stage,
        c.precision, to_string(c.metric), c.measured, c.predicted, e, time_error(c.metric, e),
        c.mfu, c.hfu, c.memory_fraction, c.fits ? "true" : "false");
  }
  return o;
}

}  // namespace orrery
