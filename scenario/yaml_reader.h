// Strict reading of one YAML mapping: unknown and duplicated keys are errors (with a
// did-you-mean), every value is checked for type, unit and range, and every value read
// records where it came from. Used by the scenario and calibrate components from their
// .cpp files only (it includes yaml-cpp, which stays out of public headers).
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <iterator>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/units.h"

namespace orrery::detail {

// Location of a node: file name and 1-based line (when yaml-cpp knows it).
InputLocation location_of(const std::string& file, const YAML::Node& node);

// Parses YAML text; a syntax error becomes an InputError naming `file` and the line.
YAML::Node load_yaml_text(const std::string& text, const std::string& file);

// Text of a node for error messages: its scalar, or a short description.
std::string describe(const YAML::Node& node);

class MapReader {
 public:
  // `path` is the dotted key path of this mapping ("cluster.gpu"); `origin` receives
  // "path.key" -> location for every key read. Throws InputError if `node` is not a
  // mapping, has a duplicated key or a key not in `allowed`.
  MapReader(const YAML::Node& node, std::string file, std::string path,
            std::vector<std::string> allowed, std::map<std::string, InputLocation>* origin);

  bool has(const std::string& key) const;
  // Throws InputError at this mapping's line when `key` is absent.
  void require(const std::string& key) const;
  // Where this mapping starts.
  const InputLocation& where() const { return where_; }
  YAML::Node node(const std::string& key) const;  // undefined node when absent
  const std::string& file() const { return file_; }
  std::string key_path(const std::string& key) const;

  // Each read_* returns false when the key is absent and leaves `out` untouched.
  bool read_string(const std::string& key, std::string& out);
  bool read_bool(const std::string& key, bool& out);
  bool read_int(const std::string& key, std::int64_t lo, std::int64_t hi, std::int64_t& out);
  bool read_int(const std::string& key, int lo, int hi, int& out);
  bool read_double(const std::string& key, double lo, double hi, double& out);
  template <class Tag>
  bool read_quantity(const std::string& key, Dimension dim, double lo, double hi,
                     Quantity<Tag>& out) {
    double v = 0;
    if (!read_quantity_si(key, dim, lo, hi, v)) return false;
    out = Quantity<Tag>(v);
    return true;
  }
  // `names`: an enum's table (scenario/names.h names_of<E>()), entries with .value and
  // .name; an unknown value's error offers the names in the table's order.
  template <class Table, class E>
    requires requires(const Table& t) { std::begin(t)->name; }
  bool read_enum(const std::string& key, const Table& names, E& out) {
    std::vector<std::string> choices;
    for (const auto& n : names) choices.push_back(n.name);
    std::string s;
    if (!read_choice(key, choices, s)) return false;
    for (const auto& n : names)
      if (s == n.name) out = n.value;
    return true;
  }
  // The same for a list of (name, value) pairs that is not an enum's table.
  template <class E>
  bool read_enum(const std::string& key, const std::vector<std::pair<std::string, E>>& names,
                 E& out) {
    std::vector<std::string> choices;
    for (const auto& [n, e] : names) choices.push_back(n);
    std::string s;
    if (!read_choice(key, choices, s)) return false;
    for (const auto& [n, e] : names)
      if (n == s) out = e;
    return true;
  }

  [[noreturn]] void fail(const std::string& key, const std::string& why) const;
  // Records where `key` was set, for values read by hand (lists).
  void mark(const std::string& key) { record(key); }

 private:
  bool read_quantity_si(const std::string& key, Dimension dim, double lo, double hi, double& out);
  bool read_choice(const std::string& key, const std::vector<std::string>& choices,
                   std::string& out);
  const YAML::Node& scalar(const std::string& key) const;
  void record(const std::string& key);

  std::string file_;
  std::string path_;
  InputLocation where_;
  std::map<std::string, YAML::Node> entries_;
  std::map<std::string, InputLocation>* origin_;
};

}  // namespace orrery::detail
