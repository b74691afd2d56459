// What every import shares (scenario/import_common.h): the settings read from a launch or
// config under Megatron-LM's argument names, the line helpers, and the scenario assembled
// from its three sections, each written in a file of its own: the model
// (scenario/import_model.cpp), the parallel layout and batch (import_parallelism.cpp), and
// precision, recompute, offload and overlaps (import_training.cpp). The mapping's defaults
// are Megatron-LM's at NVIDIA/Megatron-LM d98e8a64, as each file cites; NeMo 1.x takes the
// same defaults for the keys it passes through (scenario/import_nemo.cpp).
#include "scenario/import_common.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <sstream>

#include "scenario/load.h"
#include "scenario/presets.h"

namespace orrery::detail {

void ImportSettings::set(const std::string& name, std::string value, std::string label,
                         std::optional<int> line) {
  values_[name] = Entry{std::move(value), std::move(label), line};
}

void ImportSettings::set_flag(const std::string& name, std::string label, std::optional<int> line) {
  flags_[name] = Entry{"", std::move(label), line};
}

std::string ImportSettings::label(const std::string& name) const {
  if (const auto v = values_.find(name); v != values_.end()) return v->second.label;
  if (const auto f = flags_.find(name); f != flags_.end()) return f->second.label;
  if (const auto n = names_.find(name); n != names_.end()) return n->second;
  return name;
}

std::string ImportSettings::source(const std::string& name, const std::string& megatron) const {
  const std::string l = label(name);
  return l == name ? megatron : l;
}

std::string ImportSettings::absent(const std::string& name, const std::string& fallback) const {
  const auto a = absent_.find(name);
  return a == absent_.end() ? fallback : a->second;
}

InputLocation ImportSettings::at(const std::string& name) const {
  if (const auto v = values_.find(name); v != values_.end()) return {where_, v->second.line};
  if (const auto f = flags_.find(name); f != flags_.end()) return {where_, f->second.line};
  return {where_, std::nullopt};
}

std::int64_t ImportSettings::parse_whole(const std::string& name, std::int64_t least) const {
  const std::string& v = text(name);
  std::int64_t out = 0;
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || end != v.data() + v.size() || out < least) {
    throw InputError(at(name), label(name), v, fmt::format("expected a whole number >= {}", least));
  }
  return out;
}

std::int64_t ImportSettings::whole(const std::string& name) const { return parse_whole(name, 1); }

std::int64_t ImportSettings::count(const std::string& name, std::int64_t fallback) const {
  return has(name) ? parse_whole(name, 0) : fallback;
}

// `text` as a number when all of it is one.
std::optional<double> parse_number(const std::string& text) {
  try {
    std::size_t used = 0;
    const double d = std::stod(text, &used);
    if (used == text.size()) return d;
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

double ImportSettings::number(const std::string& name, double fallback) const {
  if (!has(name)) return fallback;
  if (const auto d = parse_number(text(name)); d && *d >= 0) return *d;
  throw InputError(at(name), label(name), text(name), "expected a number >= 0");
}

std::int64_t ImportSettings::required(const std::string& name) const {
  if (!has(name)) {
    throw InputError(
        at(name), label(name), "",
        fmt::format("missing {}: the model's shape needs {}, {}, {}, {} and {}", missing_word_,
                    label("--num-layers"), label("--hidden-size"), label("--num-attention-heads"),
                    label("--seq-length"), label("--vocab-size")));
  }
  return whole(name);
}

void ImportSettings::refuse(const std::string& name, const std::string& why) const {
  throw InputError(at(name), label(name), has(name) ? text(name) : "", why);
}

void check_system_preset(const std::string& where, const std::string& key,
                         const std::string& cluster) {
  const std::vector<std::string> systems = system_preset_names();
  if (std::find(systems.begin(), systems.end(), cluster) == systems.end()) {
    throw InputError(
        {where, std::nullopt}, key, cluster,
        fmt::format("no system preset of that name; known: {}", fmt::join(systems, ", ")));
  }
}

std::string read_import_file(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError({path, std::nullopt}, "", "", "cannot open the " + what);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

int system_gpus_per_node(const std::string& cluster) {
  return system_presets().find(cluster)["gpus_per_node"].as<int>();
}

std::string scenario_line(const std::string& key, const std::string& value,
                          const std::string& source) {
  return fmt::format("  {}: {}  # {}\n", key, value, source);
}

std::string flow_line(const std::string& key, const std::vector<std::string>& entries,
                      const std::vector<std::string>& sources) {
  return fmt::format("{}: {{{}}}  # {}", key, fmt::join(entries, ", "), fmt::join(sources, ", "));
}

std::string given_or(const ImportSettings& a, const std::string& name,
                     const std::string& fallback) {
  return a.has(name) || a.flag(name) ? a.label(name) : fallback;
}

// The words of a value given as several (an nargs='+' argument's, joined by spaces).
std::vector<std::string> words_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

// The MoE token dispatcher (transformer_config.py at d98e8a64: allgather by default) and the
// flex dispatcher's backend (deepep by default; --moe-enable-deepep, deprecated, is deepep).
std::string megatron_fsdp_strategy(const ImportSettings& a) {
  const char* key = "--data-parallel-sharding-strategy";
  return a.has(key) ? a.text(key) : "optim_grads_params";
}

std::string moe_dispatcher(const ImportSettings& a) {
  return a.has("--moe-token-dispatcher-type") ? a.text("--moe-token-dispatcher-type") : "allgather";
}
std::string flex_backend(const ImportSettings& a) {
  const char* kBackend = "--moe-flex-dispatcher-backend";
  return a.has(kBackend) && !a.flag("--moe-enable-deepep") ? a.text(kBackend) : "deepep";
}

std::string write_imported_scenario(const ImportSettings& a, const ImportSource& source) {
  const ImportedModel model = write_model_section(a);
  const std::string p = write_parallelism_section(a, source, model);
  const std::string t = write_training_section(a, source, model);
  std::string out = source.header;
  if (a.unmapped().empty()) {
    out += source.all_mapped;
  } else {
    out += source.not_mapped;
    for (const auto& u : a.unmapped()) out += "#   " + u + "\n";
  }
  if (!model.differences.empty()) {
    out +=
        "# Differs from what orrery times (the prediction is for orrery's form; "
        "docs/import.md):\n";
    for (const auto& d : model.differences) out += "#   " + d + "\n";
  }
  out += fmt::format("cluster: {{preset: {}, nodes: {}}}  # {}\n", source.cluster, source.nodes,
                     source.nodes_source);
  out += "model:\n" + model.lines + "parallelism:\n" + p + "training:\n" + t;
  return out;
}

}  // namespace orrery::detail
