// The `sweep:` section (scenario/sweep_spec.h): which fields take which values, the
// constraints and the objectives, read as strictly as the rest of the file. Expanding it
// into candidates is sweep/sweep.h's business.
#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "scenario/load_sections.h"
#include "scenario/presets.h"
#include "scenario/sweep_spec.h"

namespace orrery {

const char* to_string(Objective o) { return name_of(o); }
const char* to_string(RankBy r) { return name_of(r); }

InputLocation SweepSpec::where(const std::string& key) const {
  auto it = origin.find(key);
  if (it != origin.end()) return it->second;
  it = origin.find("sweep");
  return it != origin.end() ? it->second : InputLocation{};
}

namespace detail {
namespace {

using namespace field;

// sweep.FIELD for an integer field: a whole number, a list of them, a range
// {from, to, step} (arithmetic, step 1 by default) or {from, to, factor} (geometric),
// or `auto` where `allow_auto`. Values are kept in the order written, without repeats.
constexpr int kMaxSweepValues = 4096;

int sweep_int(const YAML::Node& n, const std::string& file, const std::string& key, int lo,
              int hi) {
  const std::string v = describe(n);
  if (!n.IsScalar()) throw InputError(location_of(file, n), key, v, "expected a whole number");
  bool digits = !v.empty();
  for (char c : v) digits = digits && c >= '0' && c <= '9';
  if (!digits) throw InputError(location_of(file, n), key, v, "expected a whole number");
  const long long x = std::strtoll(v.c_str(), nullptr, 10);
  if (v.size() > 9 || x < lo || x > hi) {
    throw InputError(location_of(file, n), key, v,
                     fmt::format("must be between {} and {}", lo, hi));
  }
  return static_cast<int>(x);
}

// sweep.FIELD as a range within [lo, hi]: from and to, and step or factor.
struct IntRange {
  int lo = 0, hi = 0;
  int from = 0, to = 0, step = 1, factor = 1;
};

constexpr const char* kFrom = "from";
constexpr const char* kTo = "to";
constexpr const char* kFactor = "factor";

// A bound of the range, in [lo, hi]; from and to are both checked given before either
// is read.
ReadFn<IntRange> range_bound(int IntRange::*m) {
  return [m](MapReader& r, const std::string& key, Origin*, IntRange& g) {
    if (key == kFrom) {
      r.require(kFrom);
      r.require(kTo);
    }
    r.read_int(key, g.lo, g.hi, g.*m);
  };
}

// Every key of a range, in the order its unknown-key error lists them.
const FieldTable<IntRange>& range_fields() {
  static const FieldTable<IntRange> table = {
      {kFrom, range_bound(&IntRange::from)},
      {kTo, range_bound(&IntRange::to)},
      {"step",
       [](MapReader& r, const std::string& key, Origin*, IntRange& g) {
         if (r.has(key) && r.has(kFactor)) r.fail(kFactor, "give step or factor, not both");
         r.read_int(key, 1, g.hi, g.step);
       }},
      {kFactor, [](MapReader& r, const std::string& key, Origin*,
                   IntRange& g) { r.read_int(key, 2, g.hi, g.factor); }},
  };
  return table;
}

IntAxis read_int_axis(const YAML::Node& n, const std::string& file, const std::string& key, int lo,
                      int hi, bool allow_auto) {
  IntAxis axis;
  auto add = [&](int x) {
    if (std::find(axis.values.begin(), axis.values.end(), x) == axis.values.end())
      axis.values.push_back(x);
    if (axis.values.size() > kMaxSweepValues) {
      throw InputError(location_of(file, n), key, "",
                       fmt::format("more than {} values", kMaxSweepValues));
    }
  };
  if (n.IsScalar() && n.Scalar() == "auto") {
    if (!allow_auto) {
      throw InputError(location_of(file, n), key, "auto",
                       "auto applies to tp, pp, vp and microbatch; list the values");
    }
    axis.automatic = true;
    return axis;
  }
  if (n.IsScalar()) {
    add(sweep_int(n, file, key, lo, hi));
  } else if (n.IsSequence()) {
    for (const auto& item : n) add(sweep_int(item, file, key, lo, hi));
  } else if (n.IsMap()) {
    MapReader r(n, file, key, keys_of(range_fields()), nullptr);
    IntRange range{.lo = lo, .hi = hi};
    read_fields(r, nullptr, range_fields(), range);
    if (range.to < range.from) r.fail(kTo, fmt::format("is below from ({})", range.from));
    for (long long x = range.from; x <= range.to;
         x = r.has(kFactor) ? x * range.factor : x + range.step) {
      add(static_cast<int>(x));
    }
  }
  if (axis.values.empty()) {
    throw InputError(location_of(file, n), key, describe(n),
                     "an empty sweep: give at least one value");
  }
  return axis;
}

// sweep.FIELD for an enumerated field: one name or a list of names. `names`: the
// field's table (names_of<E>()), offered in its order when a value is unknown.
template <class E>
std::vector<E> read_enum_axis(const YAML::Node& n, const std::string& file, const std::string& key,
                              std::span<const Named<E>> names) {
  std::vector<E> out;
  std::vector<std::string> choices;
  for (const Named<E>& c : names) choices.push_back(c.name);
  auto add = [&](const YAML::Node& item) {
    const std::string v = describe(item);
    for (const Named<E>& c : names) {
      if (v == c.name) {
        if (std::find(out.begin(), out.end(), c.value) == out.end()) out.push_back(c.value);
        return;
      }
    }
    std::string list;
    for (const auto& c : choices) list += (list.empty() ? "" : ", ") + c;
    std::string why = "unknown value";
    const std::string hint = closest_match(v, choices);
    if (!hint.empty()) why += fmt::format(" (did you mean '{}'?)", hint);
    throw InputError(location_of(file, item), key, v, why + "; choices: " + list);
  };
  if (n.IsSequence()) {
    for (const auto& item : n) add(item);
  } else {
    add(n);
  }
  if (out.empty()) {
    throw InputError(location_of(file, n), key, "", "an empty sweep: give at least one value");
  }
  return out;
}

using W = SweepSpec;

// An integer field swept (read_int_axis).
ReadFn<W> int_axis(IntAxis W::*m, int lo, int hi, bool allow_auto) {
  return [m, lo, hi, allow_auto](MapReader& r, const std::string& key, Origin*, W& w) {
    if (!r.has(key)) return;
    w.*m = read_int_axis(r.node(key), r.file(), r.key_path(key), lo, hi, allow_auto);
    r.mark(key);
  };
}

// An enumerated field swept over its names (read_enum_axis).
template <class E>
ReadFn<W> enum_axis(std::vector<E> W::*m) {
  return [m](MapReader& r, const std::string& key, Origin*, W& w) {
    if (!r.has(key)) return;
    w.*m = read_enum_axis<E>(r.node(key), r.file(), r.key_path(key), names_of<E>());
    r.mark(key);
  };
}

// The GPU presets swept over, by name.
void read_gpu_axis(MapReader& r, const std::string& key, Origin*, W& w) {
  if (!r.has(key)) return;
  const std::vector<std::string> presets = gpu_presets().names();
  std::vector<Named<std::string>> names;
  for (const auto& g : presets) names.push_back({g, g.c_str()});
  w.gpu = read_enum_axis<std::string>(r.node(key), r.file(), r.key_path(key), names);
  r.mark(key);
}

// The system presets swept over, by name: each candidate takes the whole preset (GPU,
// NVLink, NICs, topology, bus-bandwidth curve) in place of the file's cluster preset.
void read_system_axis(MapReader& r, const std::string& key, Origin*, W& w) {
  if (!r.has(key)) return;
  if (r.has("gpu")) r.fail(key, "sweep gpu or system, not both: a system brings its own GPU");
  const std::vector<std::string> presets = system_presets().names();
  std::vector<Named<std::string>> names;
  for (const auto& g : presets) names.push_back({g, g.c_str()});
  w.system = read_enum_axis<std::string>(r.node(key), r.file(), r.key_path(key), names);
  r.mark(key);
}

// sequence_parallel: true, false or both.
void read_bool_axis(MapReader& r, const std::string& key, Origin*, W& w) {
  if (!r.has(key)) return;
  static constexpr Named<bool> kBools[] = {{false, "false"}, {true, "true"}};
  w.sequence_parallel = read_enum_axis<bool>(r.node(key), r.file(), r.key_path(key), kBools);
  r.mark(key);
}

// NIC line rates: one quantity or a list, each between 1 Mb/s and kMaxBandwidth.
void read_bandwidth_axis(MapReader& r, const std::string& key, Origin*, W& w) {
  if (!r.has(key)) return;
  const YAML::Node n = r.node(key);
  auto add = [&](const YAML::Node& item) {
    const std::string v = describe(item);
    double x = 0;
    std::string why;
    if (!item.IsScalar() || !parse_quantity(item.Scalar(), Dimension::bandwidth, x, why)) {
      throw InputError(location_of(r.file(), item), r.key_path(key), v,
                       why.empty() ? "expected a bandwidth such as \"400 Gb/s\"" : why);
    }
    if (!(x >= 1e6 && x <= kMaxBandwidth)) {
      throw InputError(location_of(r.file(), item), r.key_path(key), v,
                       "must be between 1 MB/s and 1 PB/s");
    }
    for (const auto& [b, text] : w.nic_bandwidth)
      if (b.value() == x) return;
    w.nic_bandwidth.emplace_back(Bandwidth(x), v);
  };
  if (n.IsSequence()) {
    for (const auto& item : n) add(item);
  } else {
    add(n);
  }
  if (w.nic_bandwidth.empty()) {
    throw InputError(location_of(r.file(), n), r.key_path(key), "",
                     "an empty sweep: give at least one value");
  }
  r.mark(key);
}

// sweep.global_batch_tokens: a token count, instead of global_batch (never both), with
// a microbatch that is not `auto` (auto lists the divisors of a fixed global batch).
void global_batch_tokens(MapReader& r, const std::string& key, Origin*, W& w) {
  if (!r.has(key)) return;
  if (r.has("global_batch")) r.fail(key, "give global_batch or global_batch_tokens, not both");
  if (w.microbatch.automatic) {
    r.fail(key, "rounds to dp x microbatch: list sweep.microbatch values instead of auto");
  }
  double v = 0;
  r.read_double(key, 1.0, 1e15, v);
  w.global_batch_tokens = v;
}

const FieldTable<W>& constraint_fields() {
  static const FieldTable<W> table = {
      {"fits_memory", flag(&W::fits_memory)},
      {"max_gpus", whole(&W::max_gpus, 1, kMaxCount)},
      {"max_cost_usd", number(&W::max_cost_usd, 0.0, 1e15)},
      {"max_tco_usd", number(&W::max_tco_usd, 0.0, 1e15)},
      {"max_time_to_train", quantity(&W::max_time_to_train, Dimension::seconds, 1.0, 1e10)},
      {"max_power", quantity(&W::max_power, Dimension::power, 1.0, 1e11)},
      {"max_nodes", whole(&W::max_nodes, 1, kMaxCount)},
  };
  return table;
}

// The keys that do not vary anything.
constexpr const char* kConstraints = "constraints";
constexpr const char* kObjectives = "objectives";
constexpr const char* kTop = "top";

// Every key of sweep:, in the order its unknown-key error lists them; nodes is read
// before the late rows. Compression's schemes keep their settings' defaults
// (training.gradient_compression).
const FieldTable<W>& sweep_fields() {
  using S = CompressionSpec::Scheme;
  static const FieldTable<W> table = {
      {"tp", int_axis(&W::tp, 1, kMaxCount, true)},
      {"pp", int_axis(&W::pp, 1, kMaxCount, true)},
      {"dp", int_axis(&W::dp, 1, kMaxCount, false)},
      {"vp", int_axis(&W::vp, 1, kMaxCount, true)},
      {"microbatch", int_axis(&W::microbatch, 1, kMaxCount, true)},
      {"global_batch", int_axis(&W::global_batch, 1, 1 << 30, false)},
      {"global_batch_tokens", global_batch_tokens},
      {"zero_stage", int_axis(&W::zero_stage, 0, 3, false)},
      {"recompute", enum_axis<Recompute>(&W::recompute), true},
      {"precision", enum_axis<Precision>(&W::precision), true},
      {"compression", enum_axis<S>(&W::compression), true},
      {"nodes", int_axis(&W::nodes, 1, kMaxCount, false)},
      {"gpu", read_gpu_axis, true},
      {"system", read_system_axis, true},
      {"gpus_per_node", int_axis(&W::gpus_per_node, 1, 1024, false), true},
      {"nics_per_node", int_axis(&W::nics_per_node, 1, kMaxNicsPerNode, false), true},
      {"nic_bandwidth", read_bandwidth_axis, true},
      {"cp", int_axis(&W::cp, 1, kMaxCount, false), true},
      {"ep", int_axis(&W::ep, 1, kMaxCount, false), true},
      {"schedule", enum_axis<PipelineSchedule>(&W::schedule), true},
      {"sequence_parallel", read_bool_axis, true},
      {"fsdp", enum_axis<ParallelismSpec::FsdpImpl>(&W::fsdp), true},
      {"sharding", enum_axis<ParallelismSpec::Sharding>(&W::sharding), true},
      {"stack", enum_axis<StackSpec::Preset>(&W::stack), true},
      {kConstraints, nested(constraint_fields, false), true},
      {kObjectives, enum_axis<Objective>(&W::objectives), true},
      {kTop, whole(&W::top, 1, 1 << 20), true},
      {"rank_by", choice(&W::rank_by), true},
  };
  return table;
}

}  // namespace

KeyLists sweep_key_lists() {
  return {{"sweep", keys_of(sweep_fields())},
          {"sweep.constraints", keys_of(constraint_fields())},
          {"sweep.[field]", keys_of(range_fields())}};
}

void read_sweep(const YAML::Node& node, const std::string& file, SweepSpec& w) {
  MapReader r(node, file, "sweep", keys_of(sweep_fields()), &w.origin);
  w.origin["sweep"] = r.where();
  read_fields(r, &w.origin, sweep_fields(), w);
  // A sweep that varies nothing is the scenario itself: `orrery run` answers that.
  bool varies = false;
  for (const std::string& k : keys_of(sweep_fields())) {
    if (k != kConstraints && k != kObjectives && k != kTop) varies = varies || r.has(k);
  }
  if (!varies) {
    throw InputError(r.where(), "sweep", describe(node),
                     "an empty sweep: vary at least one of tp, pp, dp, vp, microbatch, "
                     "global_batch, global_batch_tokens, zero_stage, recompute, precision, "
                     "compression, nodes, gpu, system, gpus_per_node, nics_per_node, nic_bandwidth, "
                     "cp, ep, schedule, sequence_parallel, fsdp, sharding, stack "
                     "(or use `orrery run` for the scenario as written)");
  }
}

}  // namespace detail
}  // namespace orrery
