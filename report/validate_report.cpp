#include "report/validate_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "core/env.h"
#include "scenario/load.h"
#include "simulator/predict.h"

namespace orrery {
namespace {

struct Summary {
  double mean = 0, max = 0;
};

// The cases that compare a rate (the memory-only ones have none).
std::vector<ValidationCase> rate_cases(const std::vector<ValidationCase>& cases) {
  std::vector<ValidationCase> out;
  for (const auto& c : cases)
    if (c.rate) out.push_back(c);
  return out;
}

Summary summarise(const std::vector<ValidationCase>& all) {
  const std::vector<ValidationCase> cases = rate_cases(all);
  Summary s;
  for (const auto& c : cases) {
    s.mean += std::fabs(c.error_pct());
    s.max = std::max(s.max, std::fabs(c.error_pct()));
  }
  if (!cases.empty()) s.mean /= static_cast<double>(cases.size());
  return s;
}

// The memory cases (a source printed a peak): their count and the mean and largest
// |error| of the memory model's figure of the same definition.
struct MemorySummary {
  int count = 0;
  double mean = 0, max = 0;
};

MemorySummary summarise_memory(const std::vector<ValidationCase>& cases) {
  MemorySummary m;
  for (const auto& c : cases) {
    if (!c.memory) continue;
    const double e = std::fabs(c.memory->error_pct());
    m.mean += e;
    m.max = std::max(m.max, e);
    ++m.count;
  }
  if (m.count > 0) m.mean /= m.count;
  return m;
}

// One family's cases: their count, mean signed error in the step-time sense (a rate's
// error e is the step-time error 1 / (1 + e) - 1; negative: predicted faster than
// measured) and mean |error| as the cases print it.
struct FamilySummary {
  Family family;
  int count = 0;
  double signed_time_mean = 0, abs_mean = 0;
};

std::vector<FamilySummary> by_family(const std::vector<ValidationCase>& cases) {
  std::vector<FamilySummary> out;  // in order of each family's first case
  for (const auto& c : rate_cases(cases)) {
    auto it = std::find_if(out.begin(), out.end(),
                           [&](const FamilySummary& f) { return f.family == c.family; });
    if (it == out.end()) it = out.insert(out.end(), FamilySummary{c.family});
    ++it->count;
    it->signed_time_mean += 100.0 * time_error(c.metric, c.error_pct() / 100.0);
    it->abs_mean += std::fabs(c.error_pct());
  }
  for (auto& f : out) {
    f.signed_time_mean /= f.count;
    f.abs_mean /= f.count;
  }
  return out;
}

}  // namespace

ValidationCase validation_case(const Scenario& s, const std::string& file, const Scenario* over) {
  if (!s.measured) {
    throw InputError({file, std::nullopt}, "measured", "",
                     "missing key: a validation case needs a measured: block "
                     "(metric, value, source)");
  }
  const bool ratio = s.measured->rate && s.measured->metric == Metric::speedup;
  if (ratio != (over != nullptr)) {
    throw InputError(s.where("measured.over"), "measured.over", s.measured->over,
                     ratio ? "a speedup is compared with the run it names, which was not given"
                           : "only a speedup (a ratio of two runs) names another run");
  }
  const Prediction p = predict(s);
  ValidationCase c;
  c.id = s.name;
  c.file = file;
  c.metric = s.measured->metric;
  c.measured = s.measured->value;
  c.source = s.measured->source;
  c.rate = s.measured->rate;
  if (c.rate) c.predicted = metric_value(p.step, s, c.metric);
  if (over) {
    // Tokens per second of this run over the other's.
    c.over = over->file;
    c.predicted /= predict(*over).step.tokens_per_s;
  }
  c.family = family_of(s);
  c.cp = s.parallelism.cp;
  c.ep = s.parallelism.ep;
  c.zero_stage = s.parallelism.zero_stage;
  c.schedule = schedule_label(s.parallelism);
  c.layout = layout_label(s.parallelism);
  if (s.parallelism.cp > 1) c.cp_comm = to_string(s.parallelism.cp_comm);
  c.precision = to_string(s.training.precision);
  c.mfu = p.step.mfu;
  c.hfu = p.step.hfu;
  const MemoryReport& m = p.step.figures.memory;
  c.memory_fraction = m.worst().memory.total().value() / m.capacity.value();
  c.fits = m.fits;
  if (const auto& mm = s.measured->memory) {
    const StageMemory& w = m.worst();
    c.memory = MemoryComparison{mm->peak, mm->value,
                                mm->peak == MemoryPeak::allocated  ? w.allocated_peak()
                                : mm->peak == MemoryPeak::reserved ? w.reserved_peak()
                                                                   : w.device_total()};
  }
  return c;
}

namespace {

// `over` as written in `case_file`, taken from that file's folder.
std::string resolve_over(const std::string& case_file, const std::string& over) {
  const std::filesystem::path p(over);
  if (p.is_absolute()) return p.lexically_normal().string();
  return (std::filesystem::path(case_file).parent_path() / p).lexically_normal().string();
}

// One file for two spellings of it ("a/../b.yaml", "./b.yaml"): compared by absolute path.
std::string same_file_key(const std::string& path) {
  std::error_code ec;
  const std::filesystem::path abs = std::filesystem::weakly_canonical(path, ec);
  return ec ? std::filesystem::path(path).lexically_normal().string() : abs.string();
}

}  // namespace

std::vector<ValidationCase> validation_cases(const std::vector<std::string>& files) {
  std::vector<Scenario> scenarios;
  scenarios.reserve(files.size());
  for (const std::string& f : files) scenarios.push_back(load_scenario_file(f));

  // Each speedup case's other run, read once per file even when several cases name it.
  std::map<std::string, Scenario> others;
  std::vector<const Scenario*> over_of(files.size(), nullptr);
  std::set<std::string> bases;
  for (std::size_t i = 0; i < files.size(); ++i) {
    const Scenario& s = scenarios[i];
    if (!s.measured || !s.measured->rate || s.measured->metric != Metric::speedup) continue;
    const std::string path = resolve_over(files[i], s.measured->over);
    const InputLocation at = s.where("measured.over");
    if (!default_env().is_regular_file(path)) {
      throw InputError(at, "measured.over", s.measured->over,
                       "no scenario file '" + path + "' for the other run");
    }
    const std::string key = same_file_key(path);
    if (key == same_file_key(files[i])) {
      throw InputError(at, "measured.over", s.measured->over,
                       "a cycle: the run is compared with itself");
    }
    auto it = others.find(key);
    if (it == others.end()) it = others.emplace(key, load_scenario_file(path)).first;
    const Scenario& o = it->second;
    if (o.measured && o.measured->rate && o.measured->metric == Metric::speedup) {
      const bool back =
          same_file_key(resolve_over(path, o.measured->over)) == same_file_key(files[i]);
      throw InputError(at, "measured.over", s.measured->over,
                       back ? "a cycle: that run is itself a speedup over this one"
                            : "a ratio of a ratio: that run is itself a speedup case; "
                              "name a run with no measured: block or an absolute figure");
    }
    over_of[i] = &o;
    bases.insert(key);
  }

  std::vector<ValidationCase> cases;
  for (std::size_t i = 0; i < files.size(); ++i) {
    if (!scenarios[i].measured && bases.count(same_file_key(files[i]))) continue;
    cases.push_back(validation_case(scenarios[i], files[i], over_of[i]));
  }
  return cases;
}

std::string render_validation_table(const std::vector<ValidationCase>& cases) {
  std::string o = fmt::format("{:<34} {:<24} {:>12} {:>12} {:>9} {:>5}\n", "case", "metric",
                              "measured", "predicted", "error", "fits");
  int not_fitting = 0;
  for (const auto& c : rate_cases(cases)) {
    o += fmt::format("{:<34} {:<24} {:>12.4g} {:>12.4g} {:>+8.1f}% {:>5}\n", c.id,
                     to_string(c.metric), c.measured, c.predicted, c.error_pct(),
                     c.fits ? "yes" : "NO");
    not_fitting += c.fits ? 0 : 1;
  }
  const Summary s = summarise(cases);
  const std::vector<FamilySummary> families = by_family(cases);
  // The family column as wide as its longest label ("Blackwell Ultra x Megatron-Core x
  // context-parallel" is 50), never narrower than 44.
  size_t width = 44;
  for (const FamilySummary& f : families) width = std::max(width, f.family.label().size());
  o += fmt::format("\n{:<{}} {:>5} {:>16} {:>13}\n", "family", width, "cases", "signed step time",
                   "mean |error|");
  for (const FamilySummary& f : families) {
    o += fmt::format("{:<{}} {:>5} {:>+15.1f}% {:>12.1f}%\n", f.family.label(), width, f.count,
                     f.signed_time_mean, f.abs_mean);
  }
  o += "(signed step time: mean step-time error, a rate's error e counted as 1 / (1 + e) - 1; "
       "negative: predicted faster than measured)\n";
  if (not_fitting > 0) {
    o += fmt::format("\n{} case{} the memory model says do not fit, though each ran as published\n",
                     not_fitting, not_fitting == 1 ? "" : "s");
  }
  o += fmt::format("\n{} cases, mean |error| {:.1f} %, max |error| {:.1f} %\n",
                   rate_cases(cases).size(), s.mean, s.max);
  // The cases whose source printed a peak memory, against the memory model's figure of
  // the same definition (docs/model.md, "Memory per GPU").
  std::string rows;
  for (const auto& c : cases) {
    if (!c.memory) continue;
    const MemoryComparison& m = *c.memory;
    rows += fmt::format("{:<34} {:<10} {:>12} {:>12} {:>+8.1f}% {:>5}\n", c.id, to_string(m.peak),
                        format_bytes(m.measured), format_bytes(m.predicted), m.error_pct(),
                        c.fits ? "yes" : "NO");
  }
  const MemorySummary ms = summarise_memory(cases);
  if (ms.count > 0) {
    o += fmt::format("\n{:<34} {:<10} {:>12} {:>12} {:>9} {:>5}\n", "memory case", "peak",
                     "measured", "predicted", "error", "fits");
    o += rows;
    o += "(peak: allocated = torch.cuda.max_memory_allocated, reserved = "
         "torch.cuda.max_memory_reserved, device = nvidia-smi's used memory; the fullest stage)\n";
    o += fmt::format("\n{} memory case{}, mean |error| {:.1f} %, max |error| {:.1f} %\n",
                     ms.count, ms.count == 1 ? "" : "s", ms.mean, ms.max);
  }
  return o;
}

std::string render_validation_json(const std::vector<ValidationCase>& cases) {
  nlohmann::ordered_json j;
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  using nlohmann::ordered_json;
  for (const auto& c : cases) {
    // A memory-only case has no rate: its rate fields are null.
    const auto rate = [&](auto v) { return c.rate ? ordered_json(v) : ordered_json(nullptr); };
    list.push_back({{"id", c.id},
                    {"file", c.file},
                    {"metric", rate(to_string(c.metric))},
                    {"measured", rate(c.measured)},
                    {"predicted", rate(c.predicted)},
                    {"error_pct", rate(c.rate ? c.error_pct() : 0.0)},
                    {"over", c.over},
                    {"fits", c.fits},
                    {"memory_fraction", c.memory_fraction},
                    {"family",
                     {{"gpu_generation", c.family.generation},
                      {"framework", c.family.framework},
                      {"parallel_kind", c.family.kind}}},
                    {"split",
                     {{"cp", c.cp},
                      {"ep", c.ep},
                      {"zero_stage", c.zero_stage},
                      {"schedule", c.schedule},
                      {"cp_comm", c.cp_comm},
                      {"layout", c.layout}}},
                    {"precision", c.precision},
                    {"source", c.source}});
    if (c.memory) {
      list.back()["memory"] = {{"peak", to_string(c.memory->peak)},
                               {"measured_bytes", c.memory->measured.value()},
                               {"predicted_bytes", c.memory->predicted.value()},
                               {"error_pct", c.memory->error_pct()}};
    }
  }
  j["cases"] = list;
  nlohmann::ordered_json families = nlohmann::ordered_json::array();
  for (const FamilySummary& f : by_family(cases)) {
    families.push_back({{"gpu_generation", f.family.generation},
                        {"framework", f.family.framework},
                        {"parallel_kind", f.family.kind},
                        {"count", f.count},
                        {"signed_step_time_error_pct", f.signed_time_mean},
                        {"mean_abs_error_pct", f.abs_mean}});
  }
  j["families"] = families;
  const Summary s = summarise(cases);
  j["summary"] = {{"count", rate_cases(cases).size()},
                  {"mean_abs_error_pct", s.mean},
                  {"max_abs_error_pct", s.max}};
  // The memory table's line, as the text prints it (null means with no memory case).
  const MemorySummary ms = summarise_memory(cases);
  const auto or_null = [&](double v) {
    return ms.count > 0 ? nlohmann::ordered_json(v) : nlohmann::ordered_json(nullptr);
  };
  j["memory_summary"] = {{"count", ms.count},
                         {"mean_abs_error_pct", or_null(ms.mean)},
                         {"max_abs_error_pct", or_null(ms.max)}};
  return j.dump(2) + "\n";
}

std::string render_validation_csv(const std::vector<ValidationCase>& cases) {
  // Six significant digits: the table is compared as text with what validate computes
  // now (tests/report/band_test.cpp), and the band needs no more.
  std::string o =
      "id,gpu_generation,framework,parallel_kind,cp,ep,zero_stage,precision,metric,measured,"
      "predicted,error,time_error,mfu,hfu,memory_fraction,fits,schedule,cp_comm,layout\n";
  for (const auto& c : rate_cases(cases)) {
    std::string id = c.id;
    for (char& ch : id)
      if (ch == ',' || ch == '\n') ch = ';';
    const double e = (c.predicted - c.measured) / c.measured;
    o += fmt::format(
        "{},{},{},{},{},{},{},{},{},{:.6g},{:.6g},{:.6g},{:.6g},{:.6g},{:.6g},{:.6g},{},{},{},{}\n",
        id,
        c.family.generation, c.family.framework, c.family.kind, c.cp, c.ep, c.zero_stage,
        c.precision, to_string(c.metric), c.measured, c.predicted, e, time_error(c.metric, e),
        c.mfu, c.hfu, c.memory_fraction, c.fits ? "true" : "false", c.schedule, c.cp_comm,
        c.layout);
  }
  return o;
}

}  // namespace orrery
