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

InputLocation SweepSpec::where(const std::string& key) const {
  auto it = origin.find(key);
  if (it != origin.end()) return it->second;
  it = origin.find("sweep");
  return it != origin.end() ? it->second : InputLocation{};
}

namespace detail {
namespace {

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
    throw InputError(location_of(file, n), key, v, fmt::format("must be between {} and {}", lo, hi));
  }
  return static_cast<int>(x);
}

IntAxis read_int_axis(const YAML::Node& n, const std::string& file, const std::string& key,
                      int lo, int hi, bool allow_auto) {
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
    MapReader r(n, file, key, kSweepRangeKeys, nullptr);
    r.require("from");
    r.require("to");
    int from = 0, to = 0, step = 1, factor = 1;
    r.read_int("from", lo, hi, from);
    r.read_int("to", lo, hi, to);
    if (r.has("step") && r.has("factor")) r.fail("factor", "give step or factor, not both");
    r.read_int("step", 1, hi, step);
    r.read_int("factor", 2, hi, factor);
    if (to < from) r.fail("to", fmt::format("is below from ({})", from));
    for (long long x = from; x <= to; x = r.has("factor") ? x * factor : x + step) {
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

}  // namespace

void read_sweep(const YAML::Node& node, const std::string& file, SweepSpec& w) {
  MapReader r(node, file, "sweep", kSweepKeys, &w.origin);
  w.origin["sweep"] = r.where();
  auto ints = [&](const char* key, int lo, int hi, bool allow_auto, IntAxis& axis) {
    if (!r.has(key)) return;
    axis = read_int_axis(r.node(key), file, r.key_path(key), lo, hi, allow_auto);
    r.mark(key);
  };
  ints("tp", 1, kMaxCount, true, w.tp);
  ints("pp", 1, kMaxCount, true, w.pp);
  ints("dp", 1, kMaxCount, false, w.dp);
  ints("vp", 1, kMaxCount, true, w.vp);
  ints("microbatch", 1, kMaxCount, true, w.microbatch);
  ints("global_batch", 1, 1 << 30, false, w.global_batch);
  ints("zero_stage", 0, 3, false, w.zero_stage);
  ints("nodes", 1, kMaxCount, false, w.nodes);
  if (r.has("recompute")) {
    w.recompute = read_enum_axis<Recompute>(r.node("recompute"), file, "sweep.recompute",
                                            names_of<Recompute>());
    r.mark("recompute");
  }
  if (r.has("precision")) {
    w.precision = read_enum_axis<Precision>(r.node("precision"), file, "sweep.precision",
                                            names_of<Precision>());
    r.mark("precision");
  }
  if (r.has("compression")) {
    using S = CompressionSpec::Scheme;
    // Schemes whose settings keep their defaults (training.gradient_compression).
    w.compression =
        read_enum_axis<S>(r.node("compression"), file, "sweep.compression", names_of<S>());
    r.mark("compression");
  }
  if (r.has("gpu")) {
    const std::vector<std::string> presets = gpu_presets().names();
    std::vector<Named<std::string>> names;
    for (const auto& g : presets) names.push_back({g, g.c_str()});
    w.gpu = read_enum_axis<std::string>(r.node("gpu"), file, "sweep.gpu", names);
    r.mark("gpu");
  }
  if (r.has("constraints")) {
    MapReader c(r.node("constraints"), file, "sweep.constraints", kSweepConstraintKeys,
                &w.origin);
    c.read_bool("fits_memory", w.fits_memory);
    int g = 0;
    if (c.read_int("max_gpus", 1, kMaxCount, g)) w.max_gpus = g;
    double usd = 0;
    if (c.read_double("max_cost_usd", 0.0, 1e15, usd)) w.max_cost_usd = usd;
  }
  if (r.has("objectives")) {
    w.objectives = read_enum_axis<Objective>(r.node("objectives"), file, "sweep.objectives",
                                             names_of<Objective>());
    r.mark("objectives");
  }
  r.read_int("top", 1, 1 << 20, w.top);
  // A sweep that varies nothing is the scenario itself: `orrery run` answers that.
  bool varies = false;
  for (const std::string& k : kSweepKeys) {
    if (k != "constraints" && k != "objectives" && k != "top") varies = varies || r.has(k);
  }
  if (!varies) {
    throw InputError(r.where(), "sweep", describe(node),
                     "an empty sweep: vary at least one of tp, pp, dp, vp, microbatch, "
                     "global_batch, zero_stage, recompute, precision, compression, nodes, gpu "
                     "(or use `orrery run` for the scenario as written)");
  }
}

}  // namespace detail
}  // namespace orrery
