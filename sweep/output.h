// What a sweep writes: the ranked table (or Pareto front), CSV and JSON of every
// candidate, and the shard files `orrery sweep --shard` writes and `orrery merge` reads.
// Every renderer is a pure function of its inputs: same sweep, same bytes.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "scenario/sweep_spec.h"
#include "sweep/sweep.h"

namespace orrery {

// Receives a stream's text piece by piece, in order.
using Sink = std::function<void(const std::string& text)>;

std::string render_sweep_table(const SweepInput& in, const SweepResult& r);
// One header row, then one row per candidate in candidate order.
std::string render_sweep_csv(const SweepInput& in, const SweepResult& r);
// {"summary": {...}, "baseline": {...}, "ranked": [indices], "pareto": [indices],
//  "candidates": [one object per candidate, the CSV's columns]}.
std::string render_sweep_json(const SweepInput& in, const SweepResult& r);
// The CSV and the JSON (either sink may be empty) in one pass over the candidates
// (for_each_candidate), handed on in pieces as they are made: the same bytes as
// render_sweep_csv and render_sweep_json, with memory for one chunk of candidates.
void write_sweep_streams(const SweepInput& in, const SweepResult& r, const Sink& csv,
                         const Sink& json);
// The best candidate (first ranked, or first on the front) as a scenario YAML file.
std::string best_scenario_yaml(const SweepInput& in, const SweepResult& r);

// A shard's simulated and unsupported candidates, with a fingerprint of the sweep.
std::string write_shard(const SweepInput& in, const SweepResult& r, int shard, int shards);
// Throws InputError (naming `file`) for a malformed file or one from another sweep.
SweepResult read_shard(const SweepInput& in, const std::string& text, const std::string& file);

}  // namespace orrery
