// The swept fields as data: one row per axis of a sweep section. A row says how the axis
// expands (its values given the outer axes), how it sets a candidate's scenario, how it
// rewrites the scenario file, and what the CSV and JSON write for it; expansion,
// candidate_scenario, candidate_settings, the baseline and the outputs all walk this
// table, so a new axis is a new row (and its field in Assignment and its key in the sweep
// reader, scenario/load_sweep.cpp). Private to sweep/.
#pragma once

#include <span>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "sweep/sweep.h"

namespace orrery::detail {

// A value as the outputs write it: a number, or a name (a GPU, an enum's name).
using Cell = std::variant<int, std::string>;
using Settings = std::vector<std::pair<std::string, std::string>>;

struct Axis {
  const char* column;  // the CSV column and JSON key
  // Position among the expansion's nested loops, 0 the slowest (sweep.h gives the
  // order); -1: a column derived from the others, which nothing expands or sets.
  int nesting;
  // The values for a candidate whose slower axes are already set in `a` (a scenario's
  // own value when the axis is not swept), written into `out` (emptied first).
  void (*values)(const SweepInput& in, const Assignment& a, std::vector<int>& out);
  void (*set)(Assignment& a, int value);
  // The scenario's own value (for the baseline, the scenario as written).
  int (*of_scenario)(const Scenario& s);
  // Sets the candidate's field in `raw` when the sweep names the axis, recording the
  // sweep key as where the value came from.
  void (*apply)(const SweepInput& in, const Assignment& a, RawScenario& raw);
  // The (key path, value) pairs that rewrite the scenario file into the candidate.
  void (*settings)(const SweepInput& in, const CandidateResult& c, Settings& out);
  Cell (*cell)(const SweepInput& in, const CandidateResult& c);
};

// Every axis, in the order of the CSV columns and of the rewritten settings.
std::span<const Axis> axes();

// A cell as the CSV writes it: a number, or a name quoted when it needs it (csv_quote).
std::string csv_cell(const Cell& cell);
// `s` as one CSV field: as it is, or in double quotes (doubled inside) when it holds a
// comma, a quote or a newline.
std::string csv_quote(const std::string& s);

}  // namespace orrery::detail
