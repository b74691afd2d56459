// The `sweep:` section of a scenario: which fields take which values, which candidates
// count (constraints) and what is minimised (objectives). Read strictly like the rest of
// the file (scenario/load_sweep.cpp); expanded into candidates by sweep/sweep.h. Every key
// is documented in docs/scenario-format.md ("sweep").
#pragma once

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "scenario/spec.h"
#include "scenario/validate.h"

namespace orrery {

enum class Objective { step_time, time_to_train, cost, energy, tco };
const char* to_string(Objective o);
// What the objectives are compared on: the predicted values, or the slow end of each
// candidate's prediction band (report/band.h), every objective scaled by measured /
// predicted step time there.
enum class RankBy { predicted, pessimistic };
const char* to_string(RankBy r);

// An integer field's values: a list (a scalar, a list, or a {from, to, step|factor}
// range, expanded when read) or `auto`, which the expansion fills in per candidate
// (sweep/sweep.h says what auto means for each field). Empty and not auto: not swept.
struct IntAxis {
  std::vector<int> values;
  bool automatic = false;
  bool swept() const { return automatic || !values.empty(); }
};

struct SweepSpec {
  IntAxis tp, pp, dp, vp, microbatch, global_batch, zero_stage, nodes;
  IntAxis cp, ep, gpus_per_node, nics_per_node;
  std::vector<Recompute> recompute;
  std::vector<Precision> precision;
  std::vector<CompressionSpec::Scheme> compression;
  std::vector<PipelineSchedule> schedule;
  std::vector<bool> sequence_parallel;
  std::vector<ParallelismSpec::FsdpImpl> fsdp;  // ZeRO-3 implementations
  std::vector<ParallelismSpec::Sharding> sharding;
  std::vector<StackSpec::Preset> stack;  // training stacks (training.stack presets)
  // NIC line rates, each with the text it was written as (for the outputs and the
  // rewritten scenario).
  std::vector<std::pair<Bandwidth, std::string>> nic_bandwidth;
  std::vector<std::string> gpu;     // GPU preset names (a cluster written in full only)
  std::vector<std::string> system;  // system presets, each the whole cluster (scenario/presets)
  // Constraints.
  bool fits_memory = true;                 // drop candidates the memory model rejects
  std::optional<int> max_gpus;             // drop candidates using more GPUs
  std::optional<double> max_cost_usd;      // drop candidates whose whole run costs more (rent)
  std::optional<double> max_tco_usd;       // ... whose run costs more to own (TCO)
  std::optional<Seconds> max_time_to_train;  // the deadline
  std::optional<Watts> max_power;            // peak facility power (model/training_run.h)
  std::optional<int> max_nodes;              // drop candidates using more nodes
  // The global batch in tokens: each candidate's rounded to the nearest multiple of
  // dp x microbatch sequences (at least one), replacing parallelism.global_batch.
  std::optional<double> global_batch_tokens;
  // Minimised, in this order of priority for ties; several: the Pareto front.
  std::vector<Objective> objectives = {Objective::step_time};
  int top = 10;  // rows of the ranked table; pruning keeps every candidate that can reach them
  RankBy rank_by = RankBy::predicted;
  // "sweep.tp" -> where it was written.
  std::map<std::string, InputLocation> origin;
  InputLocation where(const std::string& key) const;
};

// A scenario file with a sweep section, read for `orrery sweep`.
struct SweepInput {
  std::string file;
  std::string yaml;      // the file's text, for writing candidates back as scenarios
  SweepSpec spec;
  Scenario baseline;     // the scenario as written (sweep section aside), validated
  // The scenario as read (before resolve()), once per sweep.gpu or sweep.system value
  // in order (or once, the file's own cluster, when neither is swept). Candidates are copies with
  // fields replaced, then resolved.
  std::vector<RawScenario> raw;
};

// Throws InputError for bad input, and when the file has no sweep section.
SweepInput load_sweep_file(const std::string& path);
SweepInput load_sweep_text(const std::string& yaml, const std::string& display_name);

// The scenario text `yaml` with its sweep section removed and each (key path, value)
// written in ("parallelism.tp" -> "8", "cluster.gpu" -> "h100-sxm5-80gb"); a value of ""
// removes the key. The result loads as an ordinary scenario.
std::string rewrite_scenario_yaml(const std::string& yaml,
                                  const std::vector<std::pair<std::string, std::string>>& set);

}  // namespace orrery
