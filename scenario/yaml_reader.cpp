#include "scenario/yaml_reader.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fmt/format.h>

#include "core/error.h"

namespace orrery::detail {

InputLocation location_of(const std::string& file, const YAML::Node& node) {
  InputLocation where{file, std::nullopt};
  if (node.IsDefined()) {
    const YAML::Mark m = node.Mark();
    if (!m.is_null() && m.line >= 0) where.line = m.line + 1;
  }
  return where;
}

namespace {

// Throws InputError at the first key or value under `node` that is not UTF-8 (`path`: the
// key path to `node`, "" at the top). yaml-cpp writes the double-quoted escapes \_ and \N
// as the single bytes 0xA0 and 0x85, which are not UTF-8 though the text itself was.
void require_utf8_scalars(const YAML::Node& node, const std::string& file,
                          const std::string& path) {
  if (node.IsScalar()) {
    if (!is_utf8(node.Scalar())) {
      throw InputError(location_of(file, node), path, utf8_or_marks(node.Scalar()),
                       "not UTF-8 once its escapes are read (yaml-cpp turns \\_ and \\N into "
                       "bytes that are not UTF-8): write the character itself");
    }
  } else if (node.IsSequence()) {
    for (std::size_t i = 0; i < node.size(); ++i)
      require_utf8_scalars(node[i], file, fmt::format("{}[{}]", path, i));
  } else if (node.IsMap()) {
    for (auto it = node.begin(); it != node.end(); ++it) {
      const YAML::Node k = it->first;
      require_utf8_scalars(k, file, path);
      const std::string key = k.IsScalar() ? utf8_or_marks(k.Scalar()) : "?";
      require_utf8_scalars(it->second, file, path.empty() ? key : path + "." + key);
    }
  }
}

}  // namespace

YAML::Node load_yaml_text(const std::string& text, const std::string& file) {
  // YAML files are Unicode; orrery reads them as UTF-8, and what it echoes from them
  // (names, values in messages, JSON output) must stay valid UTF-8.
  require_utf8(text, file);
  // YAML allows no control character but tab, line feed and carriage return (YAML 1.2,
  // c-printable); yaml-cpp reads some of them into bytes that are not UTF-8 (a NUL before
  // an underscore became 0xA0 in a name, found by fuzz/simulate_fuzz).
  int line = 1;
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7F) {
      throw InputError(InputLocation{file, line}, "", "",
                       fmt::format("control character 0x{:02X}: YAML allows none but tab, line "
                                   "feed and carriage return",
                                   c));
    }
    if (c == '\n') ++line;
  }
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    InputLocation where{file, std::nullopt};
    if (!e.mark.is_null()) where.line = e.mark.line + 1;
    throw InputError(where, "", "", "malformed YAML: " + e.msg);
  }
  require_utf8_scalars(root, file, "");
  return root;
}

std::string describe(const YAML::Node& node) {
  if (!node.IsDefined() || node.IsNull()) return "";
  if (node.IsScalar()) return node.Scalar();
  if (node.IsSequence()) return "<a list>";
  return "<a mapping>";
}

MapReader::MapReader(const YAML::Node& node, std::string file, std::string path,
                     std::vector<std::string> allowed,
                     std::map<std::string, InputLocation>* origin)
    : file_(std::move(file)), path_(std::move(path)), where_(location_of(file_, node)),
      origin_(origin) {
  if (!node.IsMap()) {
    throw InputError(location_of(file_, node), path_, describe(node),
                     "expected a mapping of keys to values");
  }
  for (auto it = node.begin(); it != node.end(); ++it) {
    const YAML::Node k = it->first;  // a copy: the iterator yields a temporary pair
    if (!k.IsScalar()) {
      throw InputError(location_of(file_, k), path_, "", "keys must be plain words");
    }
    const std::string name = k.Scalar();
    if (entries_.count(name)) {
      throw InputError(location_of(file_, k), key_path(name), "",
                       "key given twice in the same mapping");
    }
    bool known = false;
    for (const auto& a : allowed) known = known || a == name;
    if (!known) {
      std::string why = "unknown key";
      const std::string hint = closest_match(name, allowed);
      if (!hint.empty()) why += fmt::format(" (did you mean '{}'?)", hint);
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      why += fmt::format("; '{}' accepts: {}", path_.empty() ? "the top level" : path_, list);
      throw InputError(location_of(file_, k), key_path(name), "", why);
    }
    const YAML::Node v = it->second;
    entries_.emplace(name, v);
  }
}

std::string MapReader::key_path(const std::string& key) const {
  return path_.empty() ? key : path_ + "." + key;
}

bool MapReader::has(const std::string& key) const { return entries_.count(key) > 0; }

void MapReader::require(const std::string& key) const {
  if (!has(key)) throw InputError(where_, key_path(key), "", "required key is missing");
}

YAML::Node MapReader::node(const std::string& key) const {
  auto it = entries_.find(key);
  return it == entries_.end() ? YAML::Node(YAML::NodeType::Undefined) : it->second;
}

void MapReader::fail(const std::string& key, const std::string& why) const {
  const YAML::Node n = node(key);
  throw InputError(location_of(file_, n), key_path(key), describe(n), why);
}

const YAML::Node& MapReader::scalar(const std::string& key) const {
  const YAML::Node& n = entries_.at(key);
  if (n.IsNull()) fail(key, "value is missing");
  if (!n.IsScalar()) fail(key, "expected a single value, not a list or mapping");
  return n;
}

void MapReader::record(const std::string& key) {
  if (origin_) (*origin_)[key_path(key)] = location_of(file_, entries_.at(key));
}

bool MapReader::read_string(const std::string& key, std::string& out) {
  if (!has(key)) return false;
  out = scalar(key).Scalar();
  record(key);
  return true;
}

bool MapReader::read_bool(const std::string& key, bool& out) {
  if (!has(key)) return false;
  const std::string& s = scalar(key).Scalar();
  if (s == "true") {
    out = true;
  } else if (s == "false") {
    out = false;
  } else {
    fail(key, "expected true or false");
  }
  record(key);
  return true;
}

bool MapReader::read_int(const std::string& key, std::int64_t lo, std::int64_t hi,
                         std::int64_t& out) {
  if (!has(key)) return false;
  const std::string& s = scalar(key).Scalar();
  size_t i = (!s.empty() && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
  bool digits = i < s.size();
  for (size_t j = i; j < s.size(); ++j) digits = digits && (s[j] >= '0' && s[j] <= '9');
  if (!digits) fail(key, "expected a whole number");
  errno = 0;
  const long long v = std::strtoll(s.c_str(), nullptr, 10);
  if (errno == ERANGE || v < lo || v > hi) {
    fail(key, fmt::format("must be between {} and {}", lo, hi));
  }
  out = v;
  record(key);
  return true;
}

bool MapReader::read_int(const std::string& key, int lo, int hi, int& out) {
  std::int64_t v = 0;
  if (!read_int(key, std::int64_t{lo}, std::int64_t{hi}, v)) return false;
  out = static_cast<int>(v);
  return true;
}

bool MapReader::read_double(const std::string& key, double lo, double hi, double& out) {
  if (!has(key)) return false;
  const std::string& s = scalar(key).Scalar();
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size()) fail(key, "expected a number without a unit");
  if (!std::isfinite(v)) fail(key, "the number is not finite");
  if (v < lo || v > hi) fail(key, fmt::format("must be between {} and {}", lo, hi));
  out = v;
  record(key);
  return true;
}

bool MapReader::read_quantity_si(const std::string& key, Dimension dim, double lo, double hi,
                                 double& out) {
  if (!has(key)) return false;
  const std::string& s = scalar(key).Scalar();
  std::string why;
  double v = 0;
  if (!parse_quantity(s, dim, v, why)) fail(key, why);
  if (v < lo || v > hi) {
    fail(key, fmt::format("{} out of range: must be between {} and {} (in {})",
                          dimension_name(dim), lo, hi, accepted_units(dim)));
  }
  out = v;
  record(key);
  return true;
}

bool MapReader::read_choice(const std::string& key, const std::vector<std::string>& choices,
                            std::string& out) {
  if (!has(key)) return false;
  const std::string& s = scalar(key).Scalar();
  for (const auto& c : choices) {
    if (c == s) {
      out = s;
      record(key);
      return true;
    }
  }
  std::string list;
  for (const auto& c : choices) list += (list.empty() ? "" : ", ") + c;
  std::string why = fmt::format("expected one of: {}", list);
  const std::string hint = closest_match(s, choices);
  if (!hint.empty()) why += fmt::format(" (did you mean '{}'?)", hint);
  fail(key, why);
}

}  // namespace orrery::detail
