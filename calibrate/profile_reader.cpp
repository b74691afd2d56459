// Reading a profile back (docs/calibration-format.md, "Profile"), with the scenario's
// strict YAML reader.
#include <fmt/format.h>
#include <yaml-cpp/yaml.h>


#include "calibrate/profile.h"
#include "core/collective.h"
#include "core/error.h"
#include "core/measurement_file.h"
#include "core/number_format.h"
#include "scenario/yaml_reader.h"

namespace orrery {

namespace {

using detail::MapReader;

constexpr double kBig = 1e30;

template <class F>
void each(const YAML::Node& parent, const MapReader& owner, const std::string& key,
          const std::vector<std::string>& allowed, F&& f) {
  const YAML::Node list = parent[key];
  if (!list.IsDefined() || list.IsNull()) return;
  if (!list.IsSequence()) owner.fail(key, "expected a list");
  for (std::size_t i = 0; i < list.size(); ++i) {
    MapReader r(list[i], owner.file(), fmt::format("{}[{}]", owner.key_path(key), i), allowed,
                nullptr);
    f(r, list[i]);
  }
}

std::string str(MapReader& r, const std::string& key) {
  r.require(key);
  std::string s;
  r.read_string(key, s);
  return s;
}
int integer(MapReader& r, const std::string& key, int lo, int hi) {
  r.require(key);
  int v = 0;
  r.read_int(key, lo, hi, v);
  return v;
}
std::int64_t dim(MapReader& r, const std::string& key) {
  r.require(key);
  std::int64_t v = 0;
  r.read_int(key, std::int64_t{1}, std::int64_t{1} << 40, v);
  return v;
}
double number(MapReader& r, const std::string& key, double lo, double hi) {
  r.require(key);
  double v = 0;
  r.read_double(key, lo, hi, v);
  return v;
}
double fraction(MapReader& r, const std::string& key) {
  return number(r, key, -1e6, 1e6) / 100.0;  // written in percent
}
template <class Q>
Q quantity(MapReader& r, const std::string& key, Dimension d, double lo = 0.0) {
  r.require(key);
  Q q;
  r.read_quantity(key, d, lo, kBig, q);
  return q;
}

const std::vector<std::string> kHeldOut = {"max_error_pct", "mean_error_pct", "points"};

// A held_out summary: checked for shape; the figures are recomputed from the points.
void held_out(const YAML::Node& parent, MapReader& owner, const std::string& key) {
  owner.require(key);
  MapReader r(parent[key], owner.file(), owner.key_path(key), kHeldOut, nullptr);
  number(r, "max_error_pct", 0, 1e6);
  number(r, "mean_error_pct", 0, 1e6);
  integer(r, "points", 0, 1 << 30);
}

InputProvenance read_input(MapReader& r) {
  InputProvenance in;
  in.file = str(r, "file");
  in.kind = str(r, "kind");
  r.read_string("gpu", in.gpu);
  r.read_string("detail", in.detail);
  return in;
}

CollectiveFit read_collective(MapReader& r, const YAML::Node& n) {
  CollectiveFit f;
  const std::optional<CollectiveOp> op = parse_collective(str(r, "op"));
  if (!op) r.fail("op", "not a collective orrery knows");
  f.op = *op;
  f.gpus = integer(r, "gpus", 1, 1 << 24);
  f.nodes = integer(r, "nodes", 1, 1 << 24);
  if (n["sources"].IsDefined()) {
    if (!n["sources"].IsSequence()) r.fail("sources", "expected a list of file:line");
    for (const auto& s : n["sources"]) f.sources.push_back(s.as<std::string>(""));
  }
  f.alpha = quantity<Seconds>(r, "alpha", Dimension::seconds);
  f.beta = quantity<Bandwidth>(r, "beta", Dimension::bandwidth, 1.0);
  held_out(n, r, "alpha_beta_held_out");
  held_out(n, r, "curve_held_out");
  r.require("points");
  each(n, r, "points",
       {"size", "time", "busbw", "held_out_error_pct", "alpha_beta_held_out_error_pct"},
       [&](MapReader& q, const YAML::Node&) {
         HeldOutPoint pt;
         pt.x = quantity<Bytes>(q, "size", Dimension::bytes, 1.0).value();
         pt.time = quantity<Seconds>(q, "time", Dimension::seconds, 1e-12);
         quantity<Bandwidth>(q, "busbw", Dimension::bandwidth);
         pt.held_out_error = fraction(q, "held_out_error_pct");
         if (!f.points.empty() && pt.x <= f.points.back().x)
           q.fail("size", "points must ascend in size");
         f.points.push_back(pt);
         f.alpha_beta_held_out.push_back(fraction(q, "alpha_beta_held_out_error_pct"));
       });
  if (f.points.size() < 3) r.fail("points", "a collective curve needs 3 sizes or more");
  return f;
}

GemmFit read_gemm(MapReader& r, const YAML::Node& n) {
  GemmFit g;
  const std::optional<Dtype> dtype = parse_dtype(str(r, "dtype"));
  if (!dtype || !is_gemm_dtype(*dtype)) r.fail("dtype", "expected fp32, tf32, bf16, fp16 or fp8");
  g.dtype = *dtype;
  g.memory_roof = quantity<Bandwidth>(r, "memory_roof", Dimension::bandwidth);
  held_out(n, r, "held_out");
  r.require("compute_roof");
  each(n, r, "compute_roof", {"flop", "rate"}, [&](MapReader& q, const YAML::Node&) {
    const double f = number(q, "flop", 1.0, kBig);
    const double rate = quantity<FlopRate>(q, "rate", Dimension::flop_rate, 1.0).value();
    if (!g.compute_roof.empty() &&
        (f < g.compute_roof.back().first || rate < g.compute_roof.back().second))
      q.fail("flop", "the compute roof must not fall as FLOPs grow");
    g.compute_roof.emplace_back(f, rate);
  });
  r.require("points");
  each(n, r, "points",
       {"m", "n", "k", "time", "rate", "memory_bound", "fit_error_pct",
        "held_out_error_pct"},
       [&](MapReader& q, const YAML::Node&) {
         GemmShape s{dim(q, "m"), dim(q, "n"), dim(q, "k")};
         HeldOutPoint pt;
         pt.x = 2.0 * static_cast<double>(s.m) * static_cast<double>(s.n) *
                static_cast<double>(s.k);
         pt.time = quantity<Seconds>(q, "time", Dimension::seconds, 1e-12);
         quantity<FlopRate>(q, "rate", Dimension::flop_rate);
         bool mb = false;
         q.require("memory_bound");
         q.read_bool("memory_bound", mb);
         g.in_sample_error.push_back(fraction(q, "fit_error_pct"));
         pt.held_out_error = fraction(q, "held_out_error_pct");
         g.shapes.push_back(s);
         g.memory_bound.push_back(mb);
         g.points.push_back(pt);
       });
  if (g.compute_roof.empty() && g.memory_roof.value() <= 0)
    r.fail("compute_roof", "a GEMM fit needs a compute roof or a memory roof");
  return g;
}

MemoryFit read_memory_fit(MapReader& r, const YAML::Node& n) {
  MemoryFit m;
  m.kernel = str(r, "kernel");
  m.alpha = quantity<Seconds>(r, "alpha", Dimension::seconds);
  m.bandwidth = quantity<Bandwidth>(r, "bandwidth", Dimension::bandwidth, 1.0);
  held_out(n, r, "held_out");
  each(n, r, "points", {"bytes", "time", "held_out_error_pct"},
       [&](MapReader& q, const YAML::Node&) {
         HeldOutPoint pt;
         pt.x = quantity<Bytes>(q, "bytes", Dimension::bytes, 1.0).value();
         pt.time = quantity<Seconds>(q, "time", Dimension::seconds, 1e-12);
         pt.held_out_error = fraction(q, "held_out_error_pct");
         m.points.push_back(pt);
       });
  return m;
}

LaunchFit read_launch(const YAML::Node& node, const std::string& file) {
  MapReader r(node, file, "launch", {"overhead", "held_out", "points"}, nullptr);
  LaunchFit l;
  l.overhead = quantity<Seconds>(r, "overhead", Dimension::seconds, 1e-12);
  held_out(node, r, "held_out");
  each(node, r, "points", {"time", "held_out_error_pct"},
       [&](MapReader& q, const YAML::Node&) {
         HeldOutPoint pt;
         pt.time = quantity<Seconds>(q, "time", Dimension::seconds, 1e-12);
         pt.held_out_error = fraction(q, "held_out_error_pct");
         l.points.push_back(pt);
       });
  return l;
}

OpTime read_op_time(MapReader& r) {
  OpTime t;
  t.op = str(r, "op");
  r.read_string("shapes", t.shapes);
  r.read_string("types", t.types);
  t.calls = integer(r, "calls", 1, 1 << 30);
  t.median = quantity<Seconds>(r, "median", Dimension::seconds);
  t.min = quantity<Seconds>(r, "min", Dimension::seconds);
  t.max = quantity<Seconds>(r, "max", Dimension::seconds);
  return t;
}

MeasuredKernel read_measured(MapReader& r, const YAML::Node& n) {
  MeasuredKernel m;
  m.cls = str(r, "class");
  // optimizer: bytes the traced GPU's optimizer step moved (orrery's optimizer model of the
  // traced scenario) and the step's optimizer kernels' time.
  const bool memory =
      m.cls == "norm" || m.cls == "softmax" || m.cls == "elementwise" || m.cls == "optimizer";
  if (m.cls != "gemm" && m.cls != "attention" && m.cls != "collective" && !memory)
    r.fail("class",
           "expected gemm, attention, norm, softmax, elementwise, collective or optimizer");
  auto dtype = [&] {
    const std::optional<Dtype> d = parse_dtype(str(r, "dtype"));
    if (!d || !is_gemm_dtype(*d)) r.fail("dtype", "expected fp32, tf32, bf16, fp16 or fp8");
    return *d;
  };
  if (m.cls == "gemm") {
    m.dtype = dtype();
    m.shape = {dim(r, "m"), dim(r, "n"), dim(r, "k")};
    m.flops = gemm_flops(m.shape);
  } else if (m.cls == "attention") {
    m.pass = str(r, "pass");
    if (m.pass != "forward" && m.pass != "backward") r.fail("pass", "expected forward or backward");
    m.dtype = dtype();
    m.flops = number(r, "flop", 1, kBig);
  } else if (m.cls == "collective") {
    const std::optional<CollectiveOp> op = parse_collective(str(r, "collective"));
    if (!op) r.fail("collective", "not a collective orrery knows");
    m.collective = *op;
    m.ranks = integer(r, "ranks", 2, 1 << 24);
    if (n["nodes"].IsDefined()) m.nodes = integer(r, "nodes", 1, m.ranks);
    m.bytes = quantity<Bytes>(r, "bytes", Dimension::bytes, 1.0).value();
  } else {
    m.bytes = quantity<Bytes>(r, "bytes", Dimension::bytes, 1.0).value();
  }
  m.calls = integer(r, "calls", 1, 1 << 30);
  m.time = quantity<Seconds>(r, "time", Dimension::seconds, 1e-12);
  m.kernel = str(r, "kernel");
  r.read_string("op", m.op);
  m.file = str(r, "file");
  r.read_string("gpu", m.gpu);
  return m;
}

}  // namespace

Profile read_profile_text(const std::string& text, const std::string& file) {
  const YAML::Node root = detail::load_yaml_text(text, file);
  MapReader top(root, file, "",
                {"format", "version", "provenance", "collectives", "gemm", "memory_bound", "launch",
                 "op_times", "measured_kernels", "not_fitted", "parameters"},
                nullptr);
  if (str(top, "format") != "orrery-profile")
    top.fail("format", "expected 'orrery-profile' (a profile written by orrery calibrate)");
  if (integer(top, "version", 0, 1 << 20) != 1) top.fail("version", "this orrery reads version 1 only");
  Profile p;

  top.require("provenance");
  MapReader prov(root["provenance"], file, "provenance", {"inputs"}, nullptr);
  each(root["provenance"], prov, "inputs", {"file", "kind", "gpu", "detail"},
       [&](MapReader& r, const YAML::Node&) { p.inputs.push_back(read_input(r)); });

  each(root, top, "collectives",
       {"op", "gpus", "nodes", "sources", "alpha", "beta", "alpha_beta_held_out",
        "curve_held_out", "points"},
       [&](MapReader& r, const YAML::Node& n) {
         p.collectives.push_back(read_collective(r, n));
       });
  each(root, top, "gemm", {"dtype", "memory_roof", "held_out", "compute_roof", "points"},
       [&](MapReader& r, const YAML::Node& n) { p.gemm.push_back(read_gemm(r, n)); });
  each(root, top, "memory_bound", {"kernel", "alpha", "bandwidth", "held_out", "points"},
       [&](MapReader& r, const YAML::Node& n) { p.memory.push_back(read_memory_fit(r, n)); });
  if (root["launch"].IsDefined() && !root["launch"].IsNull()) {
    p.launch = read_launch(root["launch"], file);
  }
  each(root, top, "op_times", {"op", "shapes", "types", "calls", "median", "min", "max"},
       [&](MapReader& r, const YAML::Node&) { p.op_times.push_back(read_op_time(r)); });
  each(root, top, "measured_kernels",
       {"class", "pass", "dtype", "m", "n", "k", "flop", "collective", "ranks", "nodes", "bytes",
        "calls", "time", "kernel", "op", "file", "gpu"},
       [&](MapReader& r, const YAML::Node& n) { p.measured.push_back(read_measured(r, n)); });

  const YAML::Node nf = root["not_fitted"];
  if (nf.IsDefined() && !nf.IsNull()) {
    if (!nf.IsSequence()) top.fail("not_fitted", "expected a list of lines");
    for (const auto& x : nf) p.not_fitted.push_back(x.as<std::string>(""));
  }
  each(root, top, "parameters", {"key", "value", "start", "min", "max", "at_bound"},
       [&](MapReader& r, const YAML::Node&) {
         RunParameter x;
         x.key = str(r, "key");
         const auto range = run_parameter_range(x.key);
         if (!range) {
           r.fail("key",
                  "not a fitted parameter: cluster.gpu.gemm_efficiency.FORMAT, "
                  "cluster.gpu.attention_efficiency, cluster.gpu.cudnn_attention_efficiency, "
                  "cluster.inter_node.efficiency or simulation.compute_slowdown");
         }
         x.value = number(r, "value", range->min, range->max);
         x.start = number(r, "start", 0, 1);
         x.min = number(r, "min", 0, 1);
         x.max = number(r, "max", 0, 1);
         r.require("at_bound");
         r.read_bool("at_bound", x.at_bound);
         p.parameters.push_back(x);
       });
  return p;
}

Profile read_profile_file(const std::string& path, Env& env) {
  return read_profile_text(read_file_or_throw(env, path, "the calibration profile"), path);
}

}  // namespace orrery