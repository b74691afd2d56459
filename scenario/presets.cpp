#include "scenario/presets.h"

#include <algorithm>

#include "core/error.h"
#include "scenario/presets_data.h"

namespace orrery {

PresetTable::PresetTable(std::string kind, std::string file, const char* yaml_text)
    : kind_(std::move(kind)), file_(std::move(file)), root_(YAML::Load(yaml_text)) {
  ORRERY_CHECK(root_.IsMap(), "preset file " + file_ + " must be a mapping of name to preset");
  for (auto it = root_.begin(); it != root_.end(); ++it) names_.push_back(it->first.Scalar());
  std::sort(names_.begin(), names_.end());
}

YAML::Node PresetTable::find(const std::string& name) const {
  for (auto it = root_.begin(); it != root_.end(); ++it) {
    if (it->first.Scalar() == name) return it->second;
  }
  return YAML::Node(YAML::NodeType::Undefined);
}

std::string PresetTable::file_for(const std::string& name) const {
  return file_ + " (built-in preset '" + name + "')";
}

const PresetTable& gpu_presets() {
  static const PresetTable table("GPU", "scenario/presets/gpus.yaml", kGpuPresetsYaml);
  return table;
}

const PresetTable& system_presets() {
  static const PresetTable table("system", "scenario/presets/systems.yaml", kSystemPresetsYaml);
  return table;
}

const PresetTable& model_presets() {
  static const PresetTable table("model", "scenario/presets/models.yaml", kModelPresetsYaml);
  return table;
}

}  // namespace orrery
