// Reading scenario files: YAML in, a validated Scenario out. yaml-cpp stays inside
// this component's .cpp files. Every failure is an InputError naming file, line, key
// and value; nothing is printed or written here.
#pragma once

#include <string>
#include <vector>

#include "scenario/spec.h"

namespace orrery {

// Reads, resolves presets, applies overrides and validates a scenario file.
Scenario load_scenario_file(const std::string& path);
// Same from text; `display_name` is used as the file name in error messages.
Scenario load_scenario_text(const std::string& yaml, const std::string& display_name);

// The scenario files `paths` name: files as given, each directory searched recursively
// for *.yaml, sorted; InputError naming a directory that holds none. `orrery validate`
// and the Python module's validate() read their cases from this list.
std::vector<std::string> scenario_files(const std::vector<std::string>& paths);

// Every key the format accepts, as "section.key" ("model.moe.top_k"), in the order
// the reader checks them. docs/scenario-format.md documents each; a test keeps the two
// in step.
std::vector<std::string> scenario_keys();

// Names of the built-in presets of each kind.
std::vector<std::string> gpu_preset_names();
std::vector<std::string> system_preset_names();
std::vector<std::string> model_preset_names();
std::vector<std::string> fabric_preset_names();

// The built-in GPU preset `preset` (one of gpu_preset_names()) as cluster.gpu would hold it;
// throws InputError for an unknown name.
GpuSpec gpu_preset_spec(const std::string& preset);

}  // namespace orrery
