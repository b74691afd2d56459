#include "calibrate/measurements.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>


#include "core/collective.h"
#include "core/error.h"
#include "scenario/yaml_reader.h"

namespace orrery {

namespace {

using detail::MapReader;

constexpr double kMaxSeconds = 3600.0;
constexpr std::int64_t kMaxDim = std::int64_t{1} << 40;

int line_of(const std::string& file, const YAML::Node& n) {
  return detail::location_of(file, n).line.value_or(0);
}

void require(const MapReader& r, const std::string& key) { r.require(key); }

template <class F>
void read_required(MapReader& r, const std::string& key, F&& read) {
  require(r, key);
  read();
}

// median, p10, p90 of one entry, with p10 <= median <= p90.
TimingStats read_stats(MapReader& r) {
  TimingStats t;
  for (const char* k : {"median", "p10", "p90"}) require(r, k);
  r.read_quantity("median", Dimension::seconds, 0.0, kMaxSeconds, t.median);
  r.read_quantity("p10", Dimension::seconds, 0.0, kMaxSeconds, t.p10);
  r.read_quantity("p90", Dimension::seconds, 0.0, kMaxSeconds, t.p90);
  if (t.median.value() <= 0) r.fail("median", "a measured time must be positive");
  if (t.p10 > t.median) r.fail("p10", "the 10th percentile exceeds the median");
  if (t.p90 < t.median) r.fail("p90", "the 90th percentile is below the median");
  return t;
}

std::string read_choice(MapReader& r, const std::string& key,
                        const std::vector<std::string>& choices) {
  require(r, key);
  std::vector<std::pair<std::string, std::string>> names;
  for (const auto& c : choices) names.emplace_back(c, c);
  std::string out;
  r.read_enum(key, names, out);
  return out;
}

std::int64_t read_dim(MapReader& r, const std::string& key) {
  require(r, key);
  std::int64_t v = 0;
  r.read_int(key, std::int64_t{1}, kMaxDim, v);
  return v;
}

// Calls `each(reader, node)` for every entry of the list `key` of the top level.
template <class F>
void each_entry(const YAML::Node& root, const std::string& file, const std::string& key,
                const std::vector<std::string>& allowed, F&& each) {
  const YAML::Node list = root[key];
  if (!list.IsDefined() || list.IsNull()) return;
  if (!list.IsSequence()) {
    throw InputError(detail::location_of(file, list), key, detail::describe(list),
                     "expected a list of measurements");
  }
  for (std::size_t i = 0; i < list.size(); ++i) {
    MapReader r(list[i], file, fmt::format("{}[{}]", key, i), allowed, nullptr);
    each(r, list[i]);
  }
}

MeasurementProvenance read_provenance(const YAML::Node& node, const std::string& file) {
  if (!node.IsDefined()) {
    throw InputError({file, std::nullopt}, "provenance", "", "required key is missing");
  }
  const std::vector<std::string> keys = {
      "tool",   "date",           "host",   "gpu",     "gpu_count", "sm_count",
      "sm_clock_mhz", "memory_clock_mhz", "memory", "compute_capability", "driver",
      "cuda_runtime", "cublas", "cudnn",   "nccl",     "timing",    "warmup", "repetitions"};
  MapReader r(node, file, "provenance", keys, nullptr);
  for (const auto& k : keys) require(r, k);
  MeasurementProvenance p;
  for (auto [k, out] : {std::pair{"tool", &p.tool}, {"date", &p.date}, {"host", &p.host},
                        {"gpu", &p.gpu}, {"compute_capability", &p.compute_capability},
                        {"driver", &p.driver}, {"cuda_runtime", &p.cuda_runtime},
                        {"cublas", &p.cublas}, {"cudnn", &p.cudnn}, {"nccl", &p.nccl}}) {
    r.read_string(k, *out);
    if (out->empty()) r.fail(k, "must not be empty");
  }
  r.read_int("gpu_count", 1, 1 << 20, p.gpu_count);
  r.read_int("sm_count", 1, 1 << 16, p.sm_count);
  r.read_double("sm_clock_mhz", 1.0, 1e5, p.sm_clock_mhz);
  r.read_double("memory_clock_mhz", 1.0, 1e5, p.memory_clock_mhz);
  r.read_quantity("memory", Dimension::bytes, 1.0, 1e15, p.memory);
  p.timing = read_choice(r, "timing", {"cupti", "fake"});
  r.read_int("warmup", 0, 1 << 20, p.warmup);
  r.read_int("repetitions", 1, 1 << 20, p.repetitions);
  return p;
}

// Reads `key`, one of `values` by its to_string name; the names are offered in that order.
template <class E, class List>
E read_named(MapReader& r, const std::string& key, const List& values) {
  require(r, key);
  std::vector<std::pair<std::string, E>> names;
  for (E v : values) names.emplace_back(to_string(v), v);
  E out = names.front().second;
  r.read_enum(key, names, out);
  return out;
}

}  // namespace

MeasurementFile read_measurement_text(const std::string& text, const std::string& file) {
  const YAML::Node root = detail::load_yaml_text(text, file);
  MapReader top(root, file, "",
                {"format", "version", "provenance", "gemm", "memory_bound", "attention",
                 "launch", "collectives", "skipped"},
                nullptr);
  std::string format;
  read_required(top, "format", [&] { top.read_string("format", format); });
  if (format != "orrery-measurements") {
    top.fail("format", "expected 'orrery-measurements' (a measurement file written by "
                       "orrery-profile)");
  }
  int version = 0;
  read_required(top, "version", [&] { top.read_int("version", 0, 1 << 20, version); });
  if (version != 1) top.fail("version", "this orrery reads version 1 only");

  MeasurementFile m;
  m.file = file;
  m.provenance = read_provenance(root["provenance"], file);

  const std::vector<std::string> stats = {"median", "p10", "p90"};
  auto with_stats = [&](std::vector<std::string> keys) {
    keys.insert(keys.end(), stats.begin(), stats.end());
    return keys;
  };
  each_entry(root, file, "gemm",
             with_stats({"dtype", "accumulation", "m", "n", "k", "sustained", "sm_clock_mhz"}),
             [&](MapReader& r, const YAML::Node& n) {
               GemmMeasurement g;
               g.dtype = read_named<Dtype>(r, "dtype", kGemmDtypes);
               // Optional: absent is split, cuBLASLt's default, which files written before
               // the field existed were measured with.
               if (r.has("accumulation")) {
                 if (g.dtype != Dtype::fp8)
                   r.fail("accumulation", "only fp8 GEMMs have an accumulation mode");
                 g.accumulation =
                     read_named<Fp8Accumulation>(r, "accumulation", kAllFp8Accumulations);
               }
               g.m = read_dim(r, "m");
               g.n = read_dim(r, "n");
               g.k = read_dim(r, "k");
               r.read_quantity("sustained", Dimension::seconds, 0.0, kMaxSeconds, g.sustained);
               if (r.has("sustained") && g.sustained.value() <= 0)
                 r.fail("sustained", "a sustained load lasts a positive time");
               if (r.has("sm_clock_mhz")) {
                 if (!r.has("sustained"))
                   r.fail("sm_clock_mhz", "an SM clock is recorded only with `sustained`");
                 r.read_double("sm_clock_mhz", 1.0, 1e5, g.sm_clock_mhz);
               }
               g.time = read_stats(r);
               g.line = line_of(file, n);
               m.gemm.push_back(g);
             });
  each_entry(root, file, "memory_bound", with_stats({"kernel", "bytes"}),
             [&](MapReader& r, const YAML::Node& n) {
               MemoryBoundMeasurement b;
               b.kernel = read_named<MemoryKernel>(r, "kernel", kAllMemoryKernels);
               require(r, "bytes");
               r.read_quantity("bytes", Dimension::bytes, 1.0, 1e15, b.bytes);
               b.time = read_stats(r);
               b.line = line_of(file, n);
               m.memory_bound.push_back(b);
             });
  each_entry(root, file, "attention",
             with_stats({"implementation", "dtype", "pass", "batch", "heads", "seq",
                         "head_dim", "causal"}),
             [&](MapReader& r, const YAML::Node& n) {
               AttentionMeasurement a;
               a.implementation =
                   read_named<AttentionImpl>(r, "implementation", kAllAttentionImpls);
               a.dtype = read_named<Dtype>(r, "dtype", kGemmDtypes);
               a.backward = read_choice(r, "pass", {"forward", "backward"}) == "backward";
               for (auto [k, out] : {std::pair{"batch", &a.batch}, {"heads", &a.heads}}) {
                 require(r, k);
                 r.read_int(k, 1, 1 << 30, *out);
               }
               require(r, "seq");
               r.read_int("seq", std::int64_t{1}, std::int64_t{1} << 30, a.seq);
               require(r, "head_dim");
               r.read_int("head_dim", 1, 1 << 30, a.head_dim);
               require(r, "causal");
               r.read_bool("causal", a.causal);
               a.time = read_stats(r);
               a.line = line_of(file, n);
               m.attention.push_back(a);
             });
  each_entry(root, file, "launch", with_stats({"kernel"}),
             [&](MapReader& r, const YAML::Node& n) {
               LaunchMeasurement l;
               read_choice(r, "kernel", {"empty"});
               l.time = read_stats(r);
               l.line = line_of(file, n);
               m.launch.push_back(l);
             });
  each_entry(root, file, "collectives", with_stats({"op", "gpus", "nodes", "bytes"}),
             [&](MapReader& r, const YAML::Node& n) {
               CollectiveMeasurement c;
               c.op = read_named<CollectiveOp>(r, "op", kAllCollectives);
               require(r, "gpus");
               r.read_int("gpus", 1, 1 << 24, c.gpus);
               require(r, "nodes");
               r.read_int("nodes", 1, 1 << 24, c.nodes);
               if (c.nodes > c.gpus) r.fail("nodes", "more nodes than GPUs");
               require(r, "bytes");
               r.read_quantity("bytes", Dimension::bytes, 1.0, 1e15, c.bytes);
               c.time = read_stats(r);
               c.line = line_of(file, n);
               m.collectives.push_back(c);
             });
  each_entry(root, file, "skipped", {"what", "reason"}, [&](MapReader& r, const YAML::Node&) {
    SkippedMeasurement s;
    read_required(r, "what", [&] { r.read_string("what", s.what); });
    read_required(r, "reason", [&] { r.read_string("reason", s.reason); });
    m.skipped.push_back(s);
  });
  return m;
}

MeasurementFile read_measurement_file(const std::string& path, Env& env) {
  return read_measurement_text(read_file_or_throw(env, path, "the measurement file"), path);
}

}  // namespace orrery
