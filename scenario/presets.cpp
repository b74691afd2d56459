#include "scenario/presets.h"

#include <algorithm>
#include <string_view>
#include <utility>

#include "core/error.h"
#include "scenario/presets_data.h"

namespace orrery {

PresetTable::PresetTable(std::string kind, std::string file, const char* yaml_text)
    : kind_(std::move(kind)), file_(std::move(file)), text_(yaml_text) {
  const std::string_view text(yaml_text);
  int line = 0;
  for (std::size_t at = 0; at < text.size(); ++line) {
    std::size_t next = text.find('\n', at);
    next = next == std::string_view::npos ? text.size() : next + 1;
    const char c = text[at];
    if (c != '#' && c != ' ' && c != '\t' && c != '\n' && c != '\r') {
      const std::size_t colon = text.find(':', at);
      ORRERY_CHECK(colon < next, "preset file " + file_ + " must be a mapping of name to preset");
      if (!entries_.empty()) entries_.back().end = at;
      entries_.push_back({std::string(text.substr(at, colon - at)), at, text.size(), line});
    }
    at = next;
  }
  ORRERY_CHECK(!entries_.empty(), "preset file " + file_ + " must be a mapping of name to preset");
  for (const Entry& e : entries_) names_.push_back(e.name);
  std::sort(names_.begin(), names_.end());
}

YAML::Node PresetTable::find(const std::string& name) const {
  const auto entry = std::find_if(entries_.begin(), entries_.end(),
                                  [&](const Entry& e) { return e.name == name; });
  if (entry == entries_.end()) return YAML::Node(YAML::NodeType::Undefined);
  const std::lock_guard<std::mutex> lock(mutex_);
  auto it = parsed_.find(name);
  if (it == parsed_.end()) {
    // The entry's lines at their own line numbers, so that marks point into the file.
    std::string lines(static_cast<std::size_t>(entry->line), '\n');
    lines.append(text_ + entry->begin, entry->end - entry->begin);
    const YAML::Node root = YAML::Load(lines);
    ORRERY_CHECK(root.IsMap() && root.size() == 1,
                 "preset file " + file_ + " must be a mapping of name to preset");
    it = parsed_.emplace(name, root.begin()->second).first;
  }
  return it->second;
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

const PresetTable& fabric_presets() {
  static const PresetTable table("fabric", "scenario/presets/fabrics.yaml", kFabricPresetsYaml);
  return table;
}

}  // namespace orrery
