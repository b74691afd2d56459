// The `cluster:` section (scenario/spec.h, ClusterSpec): the GPU, as a preset or its
// specs, node counts and the intra- and inter-node fabrics. Whether the cluster has every
// figure a run needs is checked by validation (scenario/validate.cpp).
#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "scenario/load_sections.h"
#include "scenario/presets.h"

namespace orrery::detail {
namespace {

// A list of [quantity, fraction] pairs with quantities positive and increasing and
// fractions in (0, 1]; empty only when `allow_empty`.
std::vector<std::pair<double, double>> read_curve(MapReader& r, const std::string& key,
                                                  Dimension dim, bool allow_empty) {
  const YAML::Node list = r.node(key);
  if (!list.IsSequence() || (list.size() == 0 && !allow_empty)) {
    r.fail(key, fmt::format("expected a list of [{}, fraction] pairs", dimension_name(dim)));
  }
  std::vector<std::pair<double, double>> out;
  for (size_t i = 0; i < list.size(); ++i) {
    const YAML::Node pair = list[i];
    const std::string path = fmt::format("{}[{}]", r.key_path(key), i);
    auto bad = [&](const std::string& why) {
      throw InputError(location_of(r.file(), pair), path, describe(pair), why);
    };
    if (!pair.IsSequence() || pair.size() != 2 || !pair[0].IsScalar() || !pair[1].IsScalar()) {
      bad(fmt::format("expected [{}, fraction]", dimension_name(dim)));
    }
    double x = 0;
    std::string why;
    if (!parse_quantity(pair[0].Scalar(), dim, x, why)) bad(why);
    char* end = nullptr;
    const std::string& f = pair[1].Scalar();
    const double fraction = std::strtod(f.c_str(), &end);
    if (end != f.c_str() + f.size() || !(fraction > 0 && fraction <= 1)) {
      bad("the fraction must be a number in (0, 1]");
    }
    if (!(x > 0) || (!out.empty() && x <= out.back().first)) {
      bad("the first values must be positive and increasing");
    }
    out.emplace_back(x, fraction);
  }
  r.mark(key);
  return out;
}

using namespace field;
using G = GpuSpec;
using C = ClusterSpec;

// `assumed:` a list of the section's own key paths (`allowed`) whose figures the preset
// copied from another GPU or fabric instead of measuring them; kept with the file that
// says so (scenario/spec.h, GpuSpec::assumed).
template <class Spec>
ReadFn<Spec> assumed_list(std::vector<std::string> (*allowed)()) {
  return [allowed](MapReader& r, const std::string& key, Origin*, Spec& s) {
    if (!r.has(key)) return;
    const YAML::Node list = r.node(key);
    if (!list.IsSequence()) r.fail(key, "expected a list of key names");
    const std::vector<std::string> keys = allowed();
    s.assumed.clear();
    for (const auto& item : list) {
      const std::string v = describe(item);
      if (!item.IsScalar() || std::find(keys.begin(), keys.end(), v) == keys.end()) {
        std::string why = "not a figure of this section";
        const std::string hint = closest_match(v, keys);
        if (!hint.empty()) why += fmt::format(" (did you mean '{}'?)", hint);
        throw InputError(location_of(r.file(), item), r.key_path(key), v, why);
      }
      s.assumed.push_back(v);
    }
    s.assumed_file = r.file();
    r.mark(key);
  };
}

// One row per format of core's table (kAllDtypes), under its name, read by `read(dtype)`:
// the keys of cluster.gpu.peak and cluster.gpu.gemm_efficiency.
FieldTable<G> per_dtype(const std::function<ReadFn<G>(Dtype)>& read) {
  FieldTable<G> rows;
  for (const Dtype dtype : kAllDtypes) rows.push_back({to_string(dtype), read(dtype)});
  return rows;
}

// cluster.gpu.peak: the dense peak of each format.
const FieldTable<G>& peak_fields() {
  static const FieldTable<G> table = per_dtype([](Dtype dtype) -> ReadFn<G> {
    return [dtype](MapReader& r, const std::string& key, Origin*, G& gpu) {
      FlopRate rate;
      if (r.read_quantity(key, Dimension::flop_rate, 1e9, kMaxFlopRate, rate)) {
        gpu.peak[dtype] = rate;
      }
    };
  });
  return table;
}

// cluster.gpu.gemm_efficiency: the large-GEMM fraction of each format's peak.
const FieldTable<G>& gemm_efficiency_fields() {
  static const FieldTable<G> table = per_dtype([](Dtype dtype) -> ReadFn<G> {
    return [dtype](MapReader& r, const std::string& key, Origin*, G& gpu) {
      double e = 0;
      if (r.read_double(key, 0.01, 1.0, e)) gpu.gemm_efficiency[dtype] = e;
    };
  });
  return table;
}

// A curve read with read_curve into `m`, replacing any read before (a preset's).
template <class Spec, class X>
ReadFn<Spec> curve(std::vector<std::pair<X, double>> Spec::*m, Dimension dim, bool allow_empty) {
  return [m, dim, allow_empty](MapReader& r, const std::string& key, Origin*, Spec& s) {
    if (!r.has(key)) return;
    (s.*m).clear();
    for (const auto& [x, f] : read_curve(r, key, dim, allow_empty)) (s.*m).emplace_back(X(x), f);
  };
}

std::vector<std::string> gpu_figure_keys();

// Every key of cluster.gpu, in the order its unknown-key error lists them.
const FieldTable<G>& gpu_fields() {
  static const FieldTable<G> table = {
      {"preset", by_caller<G>()},
      {"name", text(&G::name)},
      {"peak", nested(peak_fields, false)},
      {"memory", quantity(&G::memory, Dimension::bytes, 1 << 20, kMaxBytes)},
      {"memory_bandwidth",
       quantity(&G::memory_bandwidth, Dimension::bandwidth, 1e6, kMaxBandwidth)},
      {"tdp", quantity(&G::tdp, Dimension::power, 1.0, kMaxPower)},
      {"gemm_efficiency", nested(gemm_efficiency_fields, false)},
      {"gemm_ramp", curve(&G::gemm_ramp, Dimension::seconds, false)},
      {"attention_efficiency", number(&G::attention_efficiency, 0.01, 1.0)},
      {"cudnn_attention_efficiency", number(&G::cudnn_attention_efficiency, 0.01, 1.0)},
      {"memory_efficiency", number(&G::memory_efficiency, 0.01, 1.0)},
      {"score_tensor_efficiency", number(&G::score_tensor_efficiency, 0.01, 1.0)},
      {"cast_efficiency", number(&G::cast_efficiency, 0.01, 1.0)},
      {"unaligned_gemm_efficiency", number(&G::unaligned_gemm_efficiency, 0.01, 1.0)},
      {"kernel_launch", quantity(&G::kernel_launch, Dimension::seconds, 0.0, 1.0)},
      {"host_overhead", quantity(&G::host_overhead, Dimension::seconds, 0.0, 1e-3)},
      {"fp8_split_accumulation", number(&G::fp8_split_accumulation, 0.01, 1.0)},
      {"nccl_channels", whole(&G::nccl_channels, 1, 64)},  // MAXCHANNELS, NCCL device.h
      {"fp8_non_tn_gemm", flag(&G::fp8_non_tn_gemm)},
      {"assumed", assumed_list<G>(gpu_figure_keys)},
  };
  return table;
}

// The figures of cluster.gpu an `assumed:` list may name: each key but the names, and
// each format of peak and gemm_efficiency.
std::vector<std::string> gpu_figure_keys() {
  std::vector<std::string> out;
  for (const std::string& k : keys_of(gpu_fields())) {
    if (k == "preset" || k == "name" || k == "assumed") continue;
    out.push_back(k);
    if (k == "peak" || k == "gemm_efficiency")
      for (const Dtype d : kAllDtypes) out.push_back(k + "." + to_string(d));
  }
  return out;
}

// cluster.gpu: a preset's name or a mapping (apply_section); the preset read is kept.
void read_gpu(MapReader& r, const std::string& key, Origin* origin, C& c) {
  if (!r.has(key)) return;
  GpuSpec& gpu = c.gpu;
  const std::string preset = apply_section(
      r.node(key), r.file(), r.key_path(key), keys_of(gpu_fields()), gpu_presets(), origin,
      [&] { gpu = GpuSpec{}; }, [&](MapReader& gr) { read_fields(gr, origin, gpu_fields(), gpu); });
  if (!preset.empty()) gpu.preset = preset;
}

// A profile path is relative to the scenario file, like any path a user writes in it.
void read_calibration(MapReader& r, const std::string& key, Origin*, C& c) {
  if (std::string cal; r.read_string(key, cal)) {
    const std::filesystem::path p(cal);
    c.calibration =
        (p.is_relative() ? std::filesystem::path(r.file()).parent_path() / p : p).string();
  }
}

const FieldTable<IntraNodeSpec>& intra_fields() {
  using I = IntraNodeSpec;
  static const FieldTable<I> table = {
      {"bandwidth", quantity(&I::bandwidth, Dimension::bandwidth, 1e6, kMaxBandwidth)},
      {"latency", quantity(&I::latency, Dimension::seconds, 0.0, kMaxLatency)},
      {"nvls", flag(&I::nvls)},
      {"efficiency", number(&I::efficiency, 0.01, 1.0)},
      {"bus_bandwidth_curve", curve(&I::bus_bandwidth_curve, Dimension::bytes, true)},
  };
  return table;
}

std::vector<std::string> fabric_figure_keys() { return {"nic_bandwidth", "latency", "efficiency"}; }

// The keys a fabric preset sets (scenario/presets/fabrics.yaml).
const FieldTable<InterNodeSpec>& fabric_fields() {
  using N = InterNodeSpec;
  static const FieldTable<N> table = {
      {"nic_bandwidth", quantity(&N::nic_bandwidth, Dimension::bandwidth, 1e6, kMaxBandwidth)},
      {"latency", quantity(&N::latency, Dimension::seconds, 0.0, kMaxLatency)},
      {"efficiency", number(&N::efficiency, 0.01, 1.0)},
      {"assumed", assumed_list<N>(fabric_figure_keys)},
  };
  return table;
}

// inter_node.fabric: a fabric preset's figures, read before the section's other keys so
// that those still override them.
void read_fabric(MapReader& r, const std::string& key, Origin* origin, InterNodeSpec& n) {
  std::string name;
  if (!r.read_string(key, name)) return;
  const PresetTable& fabrics = fabric_presets();
  const YAML::Node p = fabrics.find(name);
  if (!p.IsDefined()) {
    std::string known;
    for (const auto& f : fabrics.names()) known += (known.empty() ? "" : ", ") + f;
    std::string why = fmt::format("no fabric preset named '{}'", name);
    const std::string hint = closest_match(name, fabrics.names());
    if (!hint.empty()) why += fmt::format(" (did you mean '{}'?)", hint);
    r.fail(key, why + "; known: " + known);
  }
  MapReader fr(p, fabrics.file_for(name), r.key_path(key).substr(0, r.key_path(key).rfind('.')),
               keys_of(fabric_fields()), origin);
  n.assumed.clear();  // the fabric's own list replaces any other
  read_fields(fr, origin, fabric_fields(), n);
  n.fabric = name;
}

const FieldTable<InterNodeSpec>& inter_fields() {
  using N = InterNodeSpec;
  static const FieldTable<N> table = {
      {"fabric", read_fabric},
      {"nics_per_node", whole(&N::nics_per_node, 1, kMaxNicsPerNode)},
      {"nic_bandwidth", quantity(&N::nic_bandwidth, Dimension::bandwidth, 1e6, kMaxBandwidth)},
      {"latency", quantity(&N::latency, Dimension::seconds, 0.0, kMaxLatency)},
      {"topology", choice(&N::topology)},
      {"oversubscription", number(&N::oversubscription, 1.0, 64.0)},
      {"pod_size", whole(&N::pod_size, 1, kMaxCount)},
      {"pod_oversubscription", number(&N::pod_oversubscription, 1.0, 64.0)},
      {"efficiency", number(&N::efficiency, 0.01, 1.0)},
      {"background_load", number(&N::background_load, 0.0, 0.99)},
  };
  return table;
}

const FieldTable<HostSpec>& host_fields() {
  using H = HostSpec;
  static const FieldTable<H> table = {
      {"pcie_bandwidth", quantity(&H::pcie_bandwidth, Dimension::bandwidth, 1e6, kMaxBandwidth)},
      {"memory_bandwidth",
       quantity(&H::memory_bandwidth, Dimension::bandwidth, 1e6, kMaxBandwidth)},
      {"memory", quantity(&H::memory, Dimension::bytes, 1 << 20, kMaxBytes)},
  };
  return table;
}

const FieldTable<PriceSpec>& price_fields() {
  using P = PriceSpec;
  static const FieldTable<P> table = {
      {"usd_per_gpu_hour", number(&P::usd_per_gpu_hour, 0.0, 1e4)},
      {"node_usd", number(&P::node_usd, 0.0, 1e9)},
      {"nic_usd", number(&P::nic_usd, 0.0, 1e7)},
      {"switch_usd", number(&P::switch_usd, 0.0, 1e8)},
      {"transceiver_usd", number(&P::transceiver_usd, 0.0, 1e6)},
      {"cable_usd", number(&P::cable_usd, 0.0, 1e6)},
      {"source", text(&P::source)},
  };
  return table;
}

const FieldTable<SlowNodesSpec>& slow_node_fields() {
  using S = SlowNodesSpec;
  static const FieldTable<S> table = {
      {"fraction", number(&S::fraction, 0.0, 0.5)},
      {"speed", number(&S::speed, 0.01, 1.0)},
      {"machine_gpus", whole(&S::machine_gpus, 1, 1024)},
  };
  return table;
}

std::vector<std::string> cluster_figure_keys() {
  std::vector<std::string> out = {"gpus_per_node"};
  for (const std::string& k : keys_of(intra_fields())) out.push_back("intra_node." + k);
  for (const std::string& k : keys_of(inter_fields()))
    if (k != "fabric") out.push_back("inter_node." + k);
  return out;
}

// Every key of cluster:, in the order its unknown-key error lists them; the fabrics are
// read after the calibration profile's path.
const FieldTable<C>& cluster_fields() {
  static const FieldTable<C> table = {
      {"preset", by_caller<C>()},
      {"gpu", read_gpu},
      {"nodes", whole(&C::nodes, 1, kMaxCount)},
      {"gpus_per_node", whole(&C::gpus_per_node, 1, 1024)},
      {"intra_node", nested(&C::intra_node, intra_fields, false), true},
      {"inter_node", nested(&C::inter_node, inter_fields, false), true},
      {"host", nested(&C::host, host_fields, false), true},
      {"calibration", read_calibration},
      {"assumed", assumed_list<C>(cluster_figure_keys)},
      {"price", nested(&C::price, price_fields, false), true},
      {"slow_nodes", nested(&C::slow_nodes, slow_node_fields, false), true},
  };
  return table;
}

}  // namespace

KeyLists cluster_key_lists() {
  return {{"cluster", cluster_keys()},
          {"cluster.gpu", keys_of(gpu_fields())},
          {"cluster.gpu.peak", keys_of(peak_fields())},
          {"cluster.gpu.gemm_efficiency", keys_of(gemm_efficiency_fields())},
          {"cluster.intra_node", keys_of(intra_fields())},
          {"cluster.inter_node", keys_of(inter_fields())},
          {"cluster.host", keys_of(host_fields())},
          {"cluster.price", keys_of(price_fields())},
          {"cluster.slow_nodes", keys_of(slow_node_fields())}};
}

std::vector<std::string> cluster_keys() { return keys_of(cluster_fields()); }

void read_cluster_keys(MapReader& r, Origin* origin, ClusterSpec& c) {
  read_fields(r, origin, cluster_fields(), c);
}

}  // namespace orrery::detail

namespace orrery {

GpuSpec gpu_preset_spec(const std::string& preset) {
  detail::Origin origin;
  GpuSpec gpu;
  const std::string name = detail::apply_section(
      YAML::Node(preset), "gpu preset", "cluster.gpu", detail::keys_of(detail::gpu_fields()),
      gpu_presets(), &origin, [&] { gpu = GpuSpec{}; },
      [&](detail::MapReader& gr) { detail::read_fields(gr, &origin, detail::gpu_fields(), gpu); });
  gpu.preset = name;
  return gpu;
}

}  // namespace orrery
