// Helpers shared by the tests: scenarios from inline YAML.
#pragma once

#include <fmt/format.h>

#include <string>

#include "scenario/load.h"

namespace orrery::testing {

// A scenario on `nodes` DGX A100 nodes with the given model preset and parallelism
// mapping body (e.g. "tp: 8, pp: 2, global_batch: 16"), plus optional training keys.
inline Scenario preset_scenario(const std::string& model, const std::string& parallelism,
                                int nodes = 1, const std::string& training = "",
                                const std::string& system = "dgx-a100") {
  std::string yaml = fmt::format(
      "cluster: {{preset: {}, nodes: {}}}\nmodel: {{preset: {}}}\nparallelism: {{{}}}\n", system,
      nodes, model, parallelism);
  if (!training.empty()) yaml += fmt::format("training: {{{}}}\n", training);
  return load_scenario_text(yaml, "test.yaml");
}

}  // namespace orrery::testing
