// Built-in presets: GPUs, systems and models, written in the scenario format itself in
// scenario/presets/*.yaml (each figure with its public source in a comment) and
// compiled into the library, so the binary needs no data files at run time.
// Private to the scenario component.
#pragma once

#include <yaml-cpp/yaml.h>

#include <string>
#include <vector>

namespace orrery {

class PresetTable {
 public:
  PresetTable(std::string kind, std::string file, const char* yaml_text);
  const std::string& kind() const { return kind_; }
  // Sorted names.
  const std::vector<std::string>& names() const { return names_; }
  // The preset's mapping, or an undefined node.
  YAML::Node find(const std::string& name) const;
  // How errors refer to the preset's definition.
  std::string file_for(const std::string& name) const;

 private:
  std::string kind_;
  std::string file_;
  YAML::Node root_;
  std::vector<std::string> names_;
};

const PresetTable& gpu_presets();
const PresetTable& system_presets();
const PresetTable& model_presets();

}  // namespace orrery
