#include "scenario/schema.h"

#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "scenario/load.h"
#include "scenario/names.h"
#include "scenario/scenario_format_doc.h"

namespace orrery {
namespace {

using Json = nlohmann::ordered_json;

std::string trim(const std::string& s) {
  const auto a = s.find_first_not_of(' ');
  if (a == std::string::npos) return "";
  return s.substr(a, s.find_last_not_of(' ') - a + 1);
}

struct Row {
  std::string unit, fallback, range, meaning;
};

// The key rows of docs/scenario-format.md: "| `key` | unit | default | range | meaning |".
std::map<std::string, Row> doc_rows() {
  std::map<std::string, Row> rows;
  std::string doc;
  for (const char* const* part = kScenarioFormatDoc; *part != nullptr; ++part) doc += *part;
  for (std::size_t at = 0; at < doc.size();) {
    std::size_t end = doc.find('\n', at);
    if (end == std::string::npos) end = doc.size();
    const std::string line = doc.substr(at, end - at);
    at = end + 1;
    if (line.rfind("| `", 0) != 0) continue;
    std::vector<std::string> cells;
    for (std::size_t from = 1; from < line.size();) {
      const std::size_t bar = line.find('|', from);
      if (bar == std::string::npos) break;
      cells.push_back(trim(line.substr(from, bar - from)));
      from = bar + 1;
    }
    if (cells.size() < 5 || cells[0].size() < 3) continue;
    rows[cells[0].substr(1, cells[0].size() - 2)] = {cells[1], cells[2], cells[3], cells[4]};
  }
  return rows;
}

std::string describe(const Row& r) {
  std::string d = r.unit.empty() ? "" : r.unit;
  if (!r.fallback.empty()) d += "; default: " + r.fallback;
  if (!r.range.empty()) d += "; range: " + r.range;
  if (!r.meaning.empty()) d += ". " + r.meaning;
  return d;
}

Json any_of(std::vector<Json> options) {
  Json j = Json::object();
  j["anyOf"] = std::move(options);
  return j;
}

// A leaf's value, from the unit column: an enum row (only backticked names, "or a list"
// allowing a list of them), a switch, a list, text, a quantity with its unit (text such as
// "80 GB"), a plain number; anything else (the sweep's "list or range") is
// left open.
Json leaf_type(const std::string& unit) {
  static const std::regex name("`([^`]+)`");
  std::vector<std::string> names;
  for (auto it = std::sregex_iterator(unit.begin(), unit.end(), name); it != std::sregex_iterator();
       ++it) {
    names.push_back((*it)[1].str());
  }
  std::string rest = std::regex_replace(unit, name, "");
  const bool or_list = rest.find("or a list") != std::string::npos;
  if (or_list) rest.erase(rest.find("or a list"), 9);
  if (!names.empty() && rest.find_first_not_of(", or") == std::string::npos) {
    Json one = Json::object();
    one["enum"] = names;
    if (!or_list) return one;
    Json list = Json::object();
    list["type"] = "array";
    list["items"] = one;
    return any_of({one, list});
  }
  static const std::set<std::string> switches = {"switch", "true/false", "bool"};
  static const std::set<std::string> texts = {"text", "name", "path"};
  static const std::set<std::string> quantities = {"bandwidth", "duration", "compute rate", "power",
                                                   "size",      "bytes",    "time"};
  static const std::set<std::string> numbers = {
      "count", "ratio",    "US dollars",       "steps", "index", "tokens",       "layers",
      "GPUs",  "elements", "count (elements)", "years", "nats",  "g CO2 per kWh"};
  Json j = Json::object();
  if (switches.count(unit)) {
    j["type"] = "boolean";
  } else if (texts.count(unit)) {
    j["type"] = "string";
  } else if (quantities.count(unit)) {
    j["type"] = "string";  // a number with its unit: a bare number is refused (missing unit)
  } else if (numbers.count(unit)) {
    j["type"] = "number";
  } else if (unit.rfind("list", 0) == 0) {
    j["type"] = "array";
  } else if (unit == "switch or mapping") {
    j["type"] = Json::array({"boolean", "object"});
  }
  return j;
}

// The presets a section (or a name key) may name.
std::vector<std::string> preset_names(const std::string& path) {
  if (path == "cluster") return system_preset_names();
  if (path == "cluster.gpu") return gpu_preset_names();
  if (path == "model") return model_preset_names();
  if (path == "cluster.inter_node.fabric") return fabric_preset_names();
  if (path == "training.stack") {
    std::vector<std::string> names;
    for (const auto& n : names_of<StackSpec::Preset>()) names.emplace_back(n.name);
    return names;
  }
  return {};
}

struct Node {
  std::vector<std::string> order;  // children in the reader's order
  std::map<std::string, Node> children;
  bool list = false;  // a list of mappings: "faults[]"
};

Json schema_of(const std::string& path, const Node& node, const std::map<std::string, Row>& rows) {
  const auto row = rows.find(path);
  Json j = Json::object();
  if (row != rows.end()) j["description"] = describe(row->second);
  if (node.children.empty()) {
    Json t = leaf_type(row == rows.end() ? "" : row->second.unit);
    // A preset key ("model.preset") names one of its section's presets.
    const std::string suffix = ".preset";
    const bool is_preset = path.size() > suffix.size() &&
                           path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0;
    const std::string owner = is_preset ? path.substr(0, path.size() - suffix.size()) : path;
    if (const auto names = preset_names(owner); !names.empty()) t = Json{{"enum", names}};
    for (auto& [k, v] : t.items()) j[k] = v;
    return j;
  }
  Json object = Json::object();
  object["type"] = "object";
  Json props = Json::object();
  for (const auto& key : node.order) {
    const Node& child = node.children.at(key);
    props[key] = schema_of(path.empty() ? key : path + "." + key, child, rows);
  }
  object["properties"] = props;
  object["additionalProperties"] = false;
  if (node.list) {
    // "faults" is a list of mappings whose keys are documented as "faults[].kind".
    Json items = object;
    object = Json::object();
    object["type"] = "array";
    object["items"] = items;
  }
  if (node.children.count("preset") && !node.list && !preset_names(path).empty()) {
    // A section may be written as a preset's name (apply_section).
    Json name = Json::object();
    name["enum"] = preset_names(path);
    object = any_of({name, object});
  } else if (row != rows.end() && row->second.unit == "switch or mapping") {
    // parallelism.fsdp: true, or a mapping of its settings.
    Json flag = Json::object();
    flag["type"] = "boolean";
    object = any_of({flag, object});
  }
  for (auto& [k, v] : object.items()) j[k] = v;
  return j;
}

}  // namespace

std::string scenario_schema() {
  Node root;
  for (const std::string& key : scenario_keys()) {
    // "sweep.[field].from" stands for any swept key written as a range; the swept keys
    // themselves are left open (a value, a list or a range).
    if (key.find(".[field]") != std::string::npos) continue;
    Node* at = &root;
    for (std::size_t from = 0;;) {
      const std::size_t dot = key.find('.', from);
      std::string part =
          key.substr(from, dot == std::string::npos ? std::string::npos : dot - from);
      bool list = false;
      if (part.size() > 2 && part.compare(part.size() - 2, 2, "[]") == 0) {
        part.resize(part.size() - 2);
        list = true;
      }
      if (!at->children.count(part)) at->order.push_back(part);
      at = &at->children[part];
      at->list = at->list || list;
      if (dot == std::string::npos) break;
      from = dot + 1;
    }
  }
  // Paths in the docs spell a list's items "faults[].kind"; the tree has "faults.kind".
  std::map<std::string, Row> rows;
  for (auto& [k, v] : doc_rows()) {
    std::string plain = k;
    for (std::size_t p; (p = plain.find("[]")) != std::string::npos;) plain.erase(p, 2);
    rows[plain] = v;
  }
  Json top = Json::object();
  top["$schema"] = "http://json-schema.org/draft-07/schema#";
  top["title"] = "orrery scenario";
  top["description"] =
      "A scenario of orrery (docs/scenario-format.md), made by `orrery schema` from the keys "
      "the reader accepts. Which keys are required and the checks across fields are left "
      "to `orrery check`.";
  const Json body = schema_of("", root, rows);
  for (const auto& [k, v] : body.items()) top[k] = v;
  return top.dump(2) + "\n";
}

}  // namespace orrery
