// Built-in presets: GPUs, systems and models, written in the scenario format itself in
// scenario/presets/*.yaml (each figure with its public source in a comment) and
// compiled into the library, so the binary needs no data files at run time. A table
// parses only the presets asked for: at construction it finds each top-level key (a
// line at column 0 that is not a comment: the files are mappings of name to preset),
// and `find` parses that entry's lines alone, at their own line numbers, once.
// Private to the scenario component.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstddef>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace orrery {

class PresetTable {
 public:
  PresetTable(std::string kind, std::string file, const char* yaml_text);
  const std::string& kind() const { return kind_; }
  // Sorted names.
  const std::vector<std::string>& names() const { return names_; }
  // The preset's mapping, or an undefined node. Safe to call from several threads.
  YAML::Node find(const std::string& name) const;
  // How errors refer to the preset's definition.
  std::string file_for(const std::string& name) const;

 private:
  // One preset's lines: [begin, end) of the text, starting at 0-based line `line`.
  struct Entry {
    std::string name;
    std::size_t begin = 0, end = 0;
    int line = 0;
  };
  std::string kind_;
  std::string file_;
  const char* text_;
  std::vector<Entry> entries_;  // in file order
  std::vector<std::string> names_;
  mutable std::mutex mutex_;
  mutable std::map<std::string, YAML::Node> parsed_;
};

const PresetTable& gpu_presets();
const PresetTable& system_presets();
const PresetTable& model_presets();
const PresetTable& fabric_presets();

}  // namespace orrery
