// The `cluster:` section (scenario/spec.h, ClusterSpec): the GPU, as a preset or its
// specs, node counts and the intra- and inter-node fabrics. Whether the cluster has every
// figure a run needs is checked by validation (scenario/validate.cpp).
#include <fmt/format.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "scenario/load_sections.h"
#include "scenario/presets.h"

namespace orrery::detail {
namespace {

void read_peak(const YAML::Node& node, const std::string& file, const std::string& path,
               Origin* origin, GpuSpec& gpu) {
  MapReader r(node, file, path, kPeakKeys, origin);
  for (Dtype dtype : kAllDtypes) {
    FlopRate rate;
    if (r.read_quantity(to_string(dtype), Dimension::flop_rate, 1e9, kMaxFlopRate, rate)) {
      gpu.peak[dtype] = rate;
    }
  }
}

void read_gemm_efficiency(const YAML::Node& node, const std::string& file,
                          const std::string& path, Origin* origin, GpuSpec& gpu) {
  MapReader r(node, file, path, kPeakKeys, origin);
  for (Dtype dtype : kAllDtypes) {
    double e = 0;
    if (r.read_double(to_string(dtype), 0.01, 1.0, e)) gpu.gemm_efficiency[dtype] = e;
  }
}

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

void read_gpu_keys(MapReader& r, Origin* origin, GpuSpec& gpu) {
  r.read_string("name", gpu.name);
  if (r.has("peak")) read_peak(r.node("peak"), r.file(), r.key_path("peak"), origin, gpu);
  r.read_quantity("memory", Dimension::bytes, 1 << 20, kMaxBytes, gpu.memory);
  r.read_quantity("memory_bandwidth", Dimension::bandwidth, 1e6, kMaxBandwidth,
                  gpu.memory_bandwidth);
  r.read_quantity("tdp", Dimension::power, 1.0, kMaxPower, gpu.tdp);
  if (r.has("gemm_efficiency")) {
    read_gemm_efficiency(r.node("gemm_efficiency"), r.file(), r.key_path("gemm_efficiency"),
                         origin, gpu);
  }
  if (r.has("gemm_ramp")) {
    gpu.gemm_ramp.clear();
    for (const auto& [t, f] : read_curve(r, "gemm_ramp", Dimension::seconds, false)) {
      gpu.gemm_ramp.emplace_back(Seconds(t), f);
    }
  }
  Seconds t;
  double e = 0;
  if (r.read_double("attention_efficiency", 0.01, 1.0, e)) gpu.attention_efficiency = e;
  if (r.read_double("memory_efficiency", 0.01, 1.0, e)) gpu.memory_efficiency = e;
  if (r.read_quantity("kernel_launch", Dimension::seconds, 0.0, 1.0, t)) gpu.kernel_launch = t;
}

void read_gpu(const YAML::Node& node, const std::string& file, const std::string& path,
              Origin* origin, GpuSpec& gpu) {
  const std::string preset =
      apply_section(node, file, path, kGpuKeys, gpu_presets(), origin, [&] { gpu = GpuSpec{}; },
                    [&](MapReader& r) { read_gpu_keys(r, origin, gpu); });
  if (!preset.empty()) gpu.preset = preset;
}

}  // namespace

void read_cluster_keys(MapReader& r, Origin* origin, ClusterSpec& c) {
  if (r.has("gpu")) read_gpu(r.node("gpu"), r.file(), r.key_path("gpu"), origin, c.gpu);
  r.read_int("nodes", 1, kMaxCount, c.nodes);
  r.read_int("gpus_per_node", 1, 1024, c.gpus_per_node);
  // A profile path is relative to the scenario file, like any path a user writes in it.
  if (std::string cal; r.read_string("calibration", cal)) {
    const std::filesystem::path p(cal);
    c.calibration = (p.is_relative() ? std::filesystem::path(r.file()).parent_path() / p : p).string();
  }
  if (r.has("intra_node")) {
    MapReader ir(r.node("intra_node"), r.file(), r.key_path("intra_node"), kIntraKeys, origin);
    ir.read_quantity("bandwidth", Dimension::bandwidth, 1e6, kMaxBandwidth,
                     c.intra_node.bandwidth);
    ir.read_quantity("latency", Dimension::seconds, 0.0, kMaxLatency, c.intra_node.latency);
    ir.read_bool("nvls", c.intra_node.nvls);
    ir.read_double("efficiency", 0.01, 1.0, c.intra_node.efficiency);
    if (ir.has("bus_bandwidth_curve")) {
      c.intra_node.bus_bandwidth_curve.clear();
      for (const auto& [b, f] : read_curve(ir, "bus_bandwidth_curve", Dimension::bytes, true)) {
        c.intra_node.bus_bandwidth_curve.emplace_back(Bytes(b), f);
      }
    }
  }
  if (r.has("inter_node")) {
    MapReader nr(r.node("inter_node"), r.file(), r.key_path("inter_node"), kInterKeys, origin);
    nr.read_int("nics_per_node", 1, 64, c.inter_node.nics_per_node);
    nr.read_quantity("nic_bandwidth", Dimension::bandwidth, 1e6, kMaxBandwidth,
                     c.inter_node.nic_bandwidth);
    nr.read_quantity("latency", Dimension::seconds, 0.0, kMaxLatency, c.inter_node.latency);
    nr.read_enum("topology", names_of<InterNodeTopology>(), c.inter_node.topology);
    nr.read_double("oversubscription", 1.0, 64.0, c.inter_node.oversubscription);
    nr.read_double("efficiency", 0.01, 1.0, c.inter_node.efficiency);
    nr.read_double("background_load", 0.0, 0.99, c.inter_node.background_load);
  }
}

}  // namespace orrery::detail
