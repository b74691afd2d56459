// Scenario reading: sections, presets and overrides. The order of application for a
// section is: defaults, then the named preset (if any), then the keys written beside
// `preset:` in the user's file. A preset is written in the same format as a user's
// section, so one reader serves both.
#include "scenario/load.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <map>

#include "core/env.h"
#include "scenario/load_sections.h"
#include "scenario/presets.h"
#include "scenario/sweep_spec.h"
#include "scenario/training_log.h"
#include "scenario/validate.h"
#include "scenario/yaml_reader.h"

namespace orrery {
namespace detail {
namespace {

// The preset named by `name` in `presets`, or an error at the user's `key`.
YAML::Node find_preset(const MapReader* r, const std::string& key, const YAML::Node& name_node,
                       const std::string& file, const std::string& path,
                       const PresetTable& presets) {
  const std::string name = name_node.Scalar();
  YAML::Node p = presets.find(name);
  if (!p.IsDefined()) {
    std::string why = fmt::format("no {} preset named '{}'", presets.kind(), name);
    const std::string hint = closest_match(name, presets.names());
    if (!hint.empty()) why += fmt::format(" (did you mean '{}'?)", hint);
    why += "; known: ";
    std::string list;
    for (const auto& n : presets.names()) list += (list.empty() ? "" : ", ") + n;
    why += list;
    if (r) r->fail(key, why);
    throw InputError(location_of(file, name_node), path, name, why);
  }
  return p;
}

}  // namespace

std::string apply_section(const YAML::Node& node, const std::string& file, const std::string& path,
                          const std::vector<std::string>& keys, const PresetTable& presets,
                          Origin* origin, const std::function<void()>& reset,
                          const std::function<void(MapReader&)>& apply) {
  std::string preset_name;
  (*origin)[path] = location_of(file, node);
  auto apply_preset = [&](const MapReader* r, const YAML::Node& name_node) {
    if (!name_node.IsScalar()) {
      throw InputError(location_of(file, name_node), path + ".preset", "",
                       "expected a preset name");
    }
    YAML::Node p = find_preset(r, "preset", name_node, file, path, presets);
    preset_name = name_node.Scalar();
    reset();
    std::vector<std::string> preset_keys;
    for (const auto& k : keys)
      if (k != "preset") preset_keys.push_back(k);
    MapReader pr(p, presets.file_for(preset_name), path, preset_keys, origin);
    apply(pr);
  };
  if (node.IsScalar()) {
    apply_preset(nullptr, node);
    (*origin)[path + ".preset"] = location_of(file, node);
    return preset_name;
  }
  MapReader r(node, file, path, keys, origin);
  if (r.has("preset")) {
    apply_preset(&r, r.node("preset"));
    std::string ignored;
    r.read_string("preset", ignored);
  }
  apply(r);
  return preset_name;
}

}  // namespace detail

namespace {

using namespace detail;

using namespace detail::field;

// measured: a published figure to compare the prediction with: metric, and value and
// source, or a training log the value is read from (source then optional); `over`, which a
// speedup (a ratio of two runs) needs and every other metric refuses.
// measured.memory: both keys required (a figure without its definition cannot be compared).
const FieldTable<MeasuredMemory>& measured_memory_fields() {
  using M = MeasuredMemory;
  static const FieldTable<M> table = {
      {"peak", required(choice(&M::peak))},
      {"value", required(quantity(&M::value, Dimension::bytes, 1.0, kMaxBytes))},
  };
  return table;
}

const FieldTable<Measured>& measured_fields() {
  using M = Measured;
  static const FieldTable<M> table = {
      // Required unless `memory` is given (read_measured).
      {"metric", choice(&M::metric)},
      {"over", text(&M::over), 0,
       [](const M& m) {
         return m.metric == Metric::speedup
                    ? std::string()
                    : std::string("only a speedup (a ratio of two runs) names another run");
       },
       [](const M& m) { return m.metric == Metric::speedup; }},
      {"value", number(&M::value, 1e-12, 1e18)},
      {"source",
       [](MapReader& r, const std::string& key, Origin*, M& m) {
         if (r.read_string(key, m.source) && m.source.empty()) {
           throw InputError(r.where(), r.key_path(key), "",
                            "empty: say where the figure was published");
         }
       }},
      // A path, relative to the scenario file like every path a user writes in it.
      {"log",
       [](MapReader& r, const std::string& key, Origin*, M& m) {
         if (std::string log; r.read_string(key, log)) {
           if (log.empty()) r.fail(key, "expected the path of a Megatron-LM training log");
           const std::filesystem::path p(log);
           m.log =
               (p.is_relative() ? std::filesystem::path(r.file()).parent_path() / p : p).string();
         }
       }},
      {"memory", nested(&M::memory, measured_memory_fields, true)},
  };
  return table;
}

const FieldTable<SimulationSpec>& simulation_fields() {
  using S = SimulationSpec;
  static const FieldTable<S> table = {
      {"compute_slowdown", number(&S::compute_slowdown, 0.0, 0.99)},
      {"comm_slowdown", number(&S::comm_slowdown, 0.0, 0.99)},
  };
  return table;
}

const FieldTable<CostSpec>& cost_fields() {
  using C = CostSpec;
  static const FieldTable<C> table = {
      {"usd_per_gpu_hour", number(&C::usd_per_gpu_hour, 0.0, 1e4)},
      {"gpu_power", quantity(&C::gpu_power, Dimension::power, 1.0, kMaxPower)},
      {"gpu_idle_power", quantity(&C::gpu_idle_power, Dimension::power, 0.0, kMaxPower)},
      {"node_power", quantity(&C::node_power, Dimension::power, 0.0, kMaxPower)},
      {"pue", number(&C::pue, 1.0, 10.0)},
      {"grid_gco2_per_kwh", number(&C::grid_gco2_per_kwh, 0.0, 1e4)},
      {"amortization_years", number(&C::amortization_years, 0.1, 50.0)},
      {"facility_usd_per_kw_month", number(&C::facility_usd_per_kw_month, 0.0, 1e5)},
      {"electricity_usd_per_kwh", number(&C::electricity_usd_per_kwh, 0.0, 100.0)},
  };
  return table;
}

// Reads the top-level section `path` with `table` into `spec`.
template <class Spec>
void read_section(const YAML::Node& node, const std::string& file, const std::string& path,
                  Origin* origin, const FieldTable<Spec>& table, Spec& spec) {
  MapReader r(node, file, path, keys_of(table), origin);
  read_fields(r, origin, table, spec);
}

void read_measured(const YAML::Node& node, const std::string& file, Origin* origin,
                   std::optional<Measured>& out) {
  Measured m;
  MapReader r(node, file, "measured", keys_of(measured_fields()), origin);
  read_keyed_by_first(r, origin, measured_fields(), m, false);
  if (!r.has("metric")) {
    // A memory figure alone: no rate to compare, so nothing that goes with one.
    if (!r.has("memory")) throw InputError(r.where(), "measured.metric", "", "missing key");
    m.rate = false;
    for (const char* k : {"value", "log"}) {
      if (r.has(k)) r.fail(k, "a rate's value, given without its metric (the memory's is "
                              "measured.memory.value)");
    }
    if (!r.has("source")) {
      throw InputError(r.where(), "measured.source", "",
                       "missing key: say where the figure was published");
    }
    out = m;
    return;
  }
  if (m.metric == Metric::speedup && m.over.empty()) {
    throw InputError(r.where(), r.key_path("over"), "", "name the other run's scenario file");
  }
  if (m.log.empty()) {
    if (!r.has("value")) throw InputError(r.where(), "measured.value", "", "missing key");
    if (!r.has("source")) {
      throw InputError(r.where(), "measured.source", "",
                       "missing key: say where the figure was published");
    }
  } else {
    if (r.has("value")) {
      r.fail("value", "give value or log, not both (the value is the log's median)");
    }
    const auto lines =
        read_training_log_text(read_file_or_throw(default_env(), m.log, "the training log"), m.log);
    m.value = training_log_median(lines, m.metric, m.log);
    if (!(m.value > 0)) {
      throw InputError({m.log, std::nullopt}, "measured.log", m.log,
                       "the median of its iteration lines is 0");
    }
    if (m.source.empty()) {
      m.source = fmt::format("{}: median of {} iteration lines after {} warm-up lines", m.log,
                             lines.size() - kTrainingLogWarmupLines, kTrainingLogWarmupLines);
    }
  }
  out = m;
}

// Defaults of values that are not presets' business. Each is an assumption stated in
// docs/scenario-format.md, not a measurement.
void apply_defaults(Scenario& s) {
  // training.runtime_reserve has no default: unset, the CUDA context and the NCCL buffers
  // are modelled (training.memory.cuda_context, nccl_channels; model/memory.h).
  s.training.runtime_reserve = Bytes(0.0);
  s.training.allocator_overhead = 0.0;
}

RawScenario parse_raw(const YAML::Node& root, const std::string& file, SweepSpec* sweep);

Scenario parse(const YAML::Node& root, const std::string& file, SweepSpec* sweep = nullptr) {
  return resolve(parse_raw(root, file, sweep));
}

// What the top level is read into: the scenario and its sweep: section.
struct TopLevel {
  Scenario& s;
  SweepSpec sweep;
};

constexpr const char* kCluster = "cluster";
constexpr const char* kModel = "model";
constexpr const char* kParallelism = "parallelism";

// A top-level section read by `read` into the member `m`; with `mark`, its own key records
// where it was written.
template <class M>
ReadFn<TopLevel> section(M Scenario::*m,
                         void (*read)(const YAML::Node&, const std::string&, Origin*, M&),
                         bool mark) {
  return [m, read, mark](MapReader& r, const std::string& key, Origin* origin, TopLevel& t) {
    if (!r.has(key)) return;
    if (mark) (*origin)[key] = location_of(r.file(), r.node(key));
    read(r.node(key), r.file(), origin, t.s.*m);
  };
}

void read_cost(const YAML::Node& node, const std::string& file, Origin* origin, CostSpec& c) {
  read_section(node, file, "cost", origin, cost_fields(), c);
}

void read_simulation(const YAML::Node& node, const std::string& file, Origin* origin,
                     SimulationSpec& sim) {
  read_section(node, file, "simulation", origin, simulation_fields(), sim);
}

void read_reliability_into(const YAML::Node& node, const std::string& file, Origin* origin,
                           std::optional<ReliabilitySpec>& rel) {
  rel = read_reliability(node, file, origin);
}

void read_name(MapReader& r, const std::string& key, Origin*, TopLevel& t) {
  r.read_string(key, t.s.name);
}

// Checked to be text, not kept.
void read_description(MapReader& r, const std::string& key, Origin*, TopLevel&) {
  std::string ignored;
  r.read_string(key, ignored);
}

void read_sweep_section(MapReader& r, const std::string& key, Origin*, TopLevel& t) {
  if (r.has(key)) read_sweep(r.node(key), r.file(), t.sweep);
}

// cluster: and model:, a preset's name or a mapping (apply_section), required with
// parallelism:, all three checked before any is read.
void read_cluster(MapReader& r, const std::string& key, Origin* origin, TopLevel& t) {
  for (const char* required : {kCluster, kModel, kParallelism}) {
    if (!r.has(required)) {
      throw InputError({r.file(), std::nullopt}, required, "",
                       "missing key: a scenario needs cluster, model and parallelism");
    }
  }
  Scenario& s = t.s;
  s.cluster.preset = apply_section(
      r.node(key), r.file(), key, cluster_keys(), system_presets(), origin,
      [&] { s.cluster = ClusterSpec{}; },
      [&](MapReader& cr) { read_cluster_keys(cr, origin, s.cluster); });
}

void read_model(MapReader& r, const std::string& key, Origin* origin, TopLevel& t) {
  Scenario& s = t.s;
  s.model.preset = apply_section(
      r.node(key), r.file(), key, model_keys(), model_presets(), origin,
      [&] { s.model = ModelSpec{}; }, [&](MapReader& mr) { read_model_keys(mr, origin, s.model); });
}

// Every top-level key, in the order its unknown-key error lists them; faults are read
// after cost, then reliability, then the rest.
const FieldTable<TopLevel>& top_fields() {
  using S = Scenario;
  static const FieldTable<TopLevel> table = {
      {"name", read_name},
      {"description", read_description},
      {kCluster, read_cluster},
      {kModel, read_model},
      {kParallelism, section(&S::parallelism, read_parallelism, true)},
      {"training", section(&S::training, read_training, true)},
      {"cost", section(&S::cost, read_cost, true)},
      {"simulation", section(&S::simulation, read_simulation, true), 2},
      {"measured", section(&S::measured, read_measured, false), 2},
      {"reliability", section(&S::reliability, read_reliability_into, true), 1},
      {"faults", section(&S::faults, read_faults, false)},
      {"sweep", read_sweep_section, 2},
  };
  return table;
}

// Everything but the cross-field rules; the sweep section is read into `sweep` (when
// given) and checked either way.
RawScenario parse_raw(const YAML::Node& root, const std::string& file, SweepSpec* sweep) {
  Scenario s;
  s.file = file;
  apply_defaults(s);
  if (!root.IsDefined() || root.IsNull()) {
    throw InputError({file, std::nullopt}, "", "", "the scenario file is empty");
  }
  Origin* origin = &s.origin;
  MapReader top(root, file, "", keys_of(top_fields()), origin);
  TopLevel t{s, {}};
  read_fields(top, origin, top_fields(), t);
  if (s.name.empty()) s.name = file;
  if (sweep) *sweep = std::move(t.sweep);
  return RawScenario(std::move(s));
}

}  // namespace

InputLocation Scenario::where(const std::string& key) const {
  auto it = origin.find(key);
  if (it != origin.end()) return it->second;
  return {file, std::nullopt};
}

Scenario load_scenario_text(const std::string& yaml, const std::string& display_name) {
  return parse(detail::load_yaml_text(yaml, display_name), display_name);
}

Scenario load_scenario_file(const std::string& path) {
  return load_scenario_text(read_file_or_throw(default_env(), path, "the scenario file"), path);
}

std::vector<std::string> scenario_files(const std::vector<std::string>& paths) {
  std::vector<std::string> files;
  for (const auto& p : paths) {
    std::error_code ec;
    if (std::filesystem::is_directory(p, ec)) {
      std::vector<std::string> found;
      for (const auto& e : std::filesystem::recursive_directory_iterator(p, ec)) {
        if (e.is_regular_file() && e.path().extension() == ".yaml")
          found.push_back(e.path().string());
      }
      std::sort(found.begin(), found.end());
      if (found.empty()) {
        throw InputError({p, std::nullopt}, "", "", "no .yaml scenario in this directory");
      }
      files.insert(files.end(), found.begin(), found.end());
    } else {
      files.push_back(p);
    }
  }
  return files;
}

std::vector<std::string> scenario_keys() {
  std::vector<std::string> out;
  auto add = [&](const std::string& section, const std::vector<std::string>& keys) {
    for (const auto& k : keys) out.push_back(section.empty() ? k : section + "." + k);
  };
  add("", keys_of(top_fields()));
  for (const auto& [path, keys] : cluster_key_lists()) add(path, keys);
  for (const auto& [path, keys] : model_key_lists()) add(path, keys);
  for (const auto& [path, keys] : parallelism_key_lists()) add(path, keys);
  for (const auto& [path, keys] : training_key_lists()) add(path, keys);
  add("cost", keys_of(cost_fields()));
  add("simulation", keys_of(simulation_fields()));
  add("measured", keys_of(measured_fields()));
  add("measured.memory", keys_of(measured_memory_fields()));
  for (const auto& [path, keys] : reliability_key_lists()) add(path, keys);
  for (const auto& [path, keys] : fault_key_lists()) add(path, keys);
  for (const auto& [path, keys] : sweep_key_lists()) add(path, keys);
  return out;
}

namespace {

// Sets root[a][b]... = value, turning a section written as a preset name into
// {preset: NAME} first; "" removes the key.
void set_path(YAML::Node root, const std::string& path, const std::string& value) {
  std::vector<std::string> parts;
  for (std::size_t start = 0;;) {
    const std::size_t dot = path.find('.', start);
    parts.push_back(path.substr(start, dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  // yaml-cpp nodes are references: assignment writes through, reset() rebinds.
  YAML::Node node;
  node.reset(root);
  for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
    const YAML::Node child = node[parts[i]];
    if (child.IsScalar()) {
      YAML::Node section(YAML::NodeType::Map);
      section["preset"] = child.Scalar();
      node[parts[i]] = section;
    } else if (!child.IsDefined() || child.IsNull()) {
      node[parts[i]] = YAML::Node(YAML::NodeType::Map);
    }
    YAML::Node next = node[parts[i]];
    node.reset(next);
  }
  if (value.empty()) {
    node.remove(parts.back());
  } else {
    node[parts.back()] = value;
  }
}

}  // namespace

std::string rewrite_scenario_yaml(const std::string& yaml,
                                  const std::vector<std::pair<std::string, std::string>>& set) {
  YAML::Node root = YAML::Clone(detail::load_yaml_text(yaml, "scenario"));
  root.remove("sweep");
  for (const auto& [path, value] : set) set_path(root, path, value);
  YAML::Emitter out;
  out << root;
  return std::string(out.c_str()) + "\n";
}

SweepInput load_sweep_text(const std::string& yaml, const std::string& display_name) {
  SweepInput in;
  in.file = display_name;
  in.yaml = yaml;
  const YAML::Node root = detail::load_yaml_text(yaml, display_name);
  if (!root.IsMap() || !root["sweep"]) {
    throw InputError({display_name, std::nullopt}, "sweep", "",
                     "missing key: orrery sweep needs a sweep: section (docs/scenario-format.md)");
  }
  in.baseline = parse(root, display_name, &in.spec);
  const ClusterSpec& cluster = in.baseline.cluster;
  // sweep.gpu replaces the GPU alone: with a system preset every candidate would keep
  // that system's NVLink, NICs and bus-bandwidth curve (a B200 at H100's 450 GB/s), which
  // no such machine has. Whole systems are swept with sweep.system.
  if (!in.spec.gpu.empty() && !cluster.preset.empty()) {
    throw InputError(in.spec.where("sweep.gpu"), "sweep.gpu", in.spec.gpu.front(),
                     fmt::format("the cluster is the system preset '{}', whose NVLink, NICs and "
                                 "bus-bandwidth curve are its own GPU's; sweep whole systems "
                                 "instead (sweep.system: [{}, ...]), or write the cluster out in "
                                 "full to keep one network for every GPU",
                                 cluster.preset, cluster.preset));
  }
  // sweep.system replaces the cluster's preset; the file may keep node counts and fabric
  // settings beside it, but a GPU of its own would undo the swap.
  if (!in.spec.system.empty() && in.baseline.origin.count("cluster.gpu") &&
      in.baseline.where("cluster.gpu").file == display_name) {
    throw InputError(in.baseline.where("cluster.gpu"), "cluster.gpu", cluster.gpu.preset,
                     "sweep.system gives each candidate its system's own GPU; remove "
                     "cluster.gpu from the file (or sweep gpu over a cluster written in full)");
  }
  // One raw scenario per swept system (cluster.preset) or GPU (cluster.gpu), the key
  // blamed on the sweep's line.
  auto swept = [&](const char* key, const char* sweep_key, const std::vector<std::string>& names) {
    for (const auto& name : names) {
      YAML::Node copy = YAML::Clone(root);
      set_path(copy, key, name);
      RawScenario raw = parse_raw(copy, display_name, nullptr);
      raw.set_by(key, in.spec.where(sweep_key));
      in.raw.push_back(std::move(raw));
    }
  };
  if (!in.spec.system.empty()) {
    swept("cluster.preset", "sweep.system", in.spec.system);
  } else if (!in.spec.gpu.empty()) {
    swept("cluster.gpu", "sweep.gpu", in.spec.gpu);
  } else {
    in.raw.push_back(parse_raw(root, display_name, nullptr));
  }
  return in;
}

SweepInput load_sweep_file(const std::string& path) {
  return load_sweep_text(read_file_or_throw(default_env(), path, "the scenario file"), path);
}

std::vector<std::string> gpu_preset_names() { return gpu_presets().names(); }
std::vector<std::string> system_preset_names() { return system_presets().names(); }
std::vector<std::string> model_preset_names() { return model_presets().names(); }
std::vector<std::string> fabric_preset_names() { return fabric_presets().names(); }

}  // namespace orrery
