#include "profiler/measurements.h"

#include <fmt/format.h>

#include <cmath>

namespace orrery::profiler {

std::string format_duration(Seconds t) {
  const double s = t.value();
  const double a = std::fabs(s);
  double v = s;
  const char* unit = "s";
  if (a < 1e-6) {
    v = s * 1e9;
    unit = "ns";
  } else if (a < 1e-3) {
    v = s * 1e6;
    unit = "us";
  } else if (a < 1.0) {
    v = s * 1e3;
    unit = "ms";
  }
  // Four significant digits, no exponent: digits after the point = 4 - digits before.
  const double av = std::fabs(v);
  const int before = av >= 1.0 ? static_cast<int>(std::floor(std::log10(av))) + 1 : 1;
  const int after = std::max(0, 4 - before);
  std::string num = fmt::format("{:.{}f}", v, after);
  if (num.find('.') != std::string::npos) {
    while (num.back() == '0') num.pop_back();
    if (num.back() == '.') num.pop_back();
  }
  if (num == "-0") num = "0";
  return num + " " + unit;
}

std::string format_size(std::int64_t bytes) {
  constexpr std::int64_t KiB = 1024, MiB = KiB * KiB, GiB = MiB * KiB;
  if (bytes > 0 && bytes % GiB == 0) return fmt::format("{} GiB", bytes / GiB);
  if (bytes > 0 && bytes % MiB == 0) return fmt::format("{} MiB", bytes / MiB);
  if (bytes > 0 && bytes % KiB == 0) return fmt::format("{} KiB", bytes / KiB);
  return fmt::format("{} B", bytes);
}

std::string yaml_quote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

namespace {

std::string stats(const TimingStats& s) {
  return fmt::format("median: {}, p10: {}, p90: {}", format_duration(s.median),
                     format_duration(s.p10), format_duration(s.p90));
}

std::string memory_gib(Bytes b) {
  return fmt::format("{:.1f} GiB", b.value() / (1024.0 * 1024.0 * 1024.0));
}

std::string size(Bytes b) { return format_size(static_cast<std::int64_t>(b.value())); }

}  // namespace

MeasurementProvenance provenance(const RunInfo& run, const DeviceInfo& d) {
  MeasurementProvenance p;
  p.tool = run.tool;
  p.date = run.date;
  p.host = run.host;
  p.gpu = d.gpu;
  p.gpu_count = d.gpu_count;
  p.sm_count = d.sm_count;
  p.sm_clock_mhz = d.sm_clock_mhz;
  p.memory_clock_mhz = d.memory_clock_mhz;
  p.memory = d.memory;
  p.compute_capability = fmt::format("{}.{}", d.cc_major, d.cc_minor);
  p.driver = d.driver;
  p.cuda_runtime = d.cuda_runtime;
  p.cublas = d.cublas;
  p.cudnn = d.cudnn;
  p.nccl = d.nccl;
  p.timing = d.timing;
  p.warmup = run.reps.warmup;
  p.repetitions = run.reps.timed;
  return p;
}

std::string render_measurements(const MeasurementFile& f) {
  const MeasurementProvenance& d = f.provenance;
  std::string o;
  o += "format: orrery-measurements\nversion: 1\nprovenance:\n";
  o += fmt::format("  tool: {}\n", yaml_quote(d.tool));
  o += fmt::format("  date: {}\n", yaml_quote(d.date));
  o += fmt::format("  host: {}\n", yaml_quote(d.host));
  o += fmt::format("  gpu: {}\n", yaml_quote(d.gpu));
  o += fmt::format("  gpu_count: {}\n", d.gpu_count);
  o += fmt::format("  sm_count: {}\n", d.sm_count);
  o += fmt::format("  sm_clock_mhz: {}\n", d.sm_clock_mhz);
  o += fmt::format("  memory_clock_mhz: {}\n", d.memory_clock_mhz);
  o += fmt::format("  memory: {}\n", memory_gib(d.memory));
  o += fmt::format("  compute_capability: \"{}\"\n", d.compute_capability);
  o += fmt::format("  driver: {}\n", yaml_quote(d.driver));
  o += fmt::format("  cuda_runtime: {}\n", yaml_quote(d.cuda_runtime));
  o += fmt::format("  cublas: {}\n", yaml_quote(d.cublas));
  o += fmt::format("  cudnn: {}\n", yaml_quote(d.cudnn));
  o += fmt::format("  nccl: {}\n", yaml_quote(d.nccl));
  o += fmt::format("  timing: {}\n", d.timing);
  o += fmt::format("  warmup: {}\n", d.warmup);
  o += fmt::format("  repetitions: {}\n", d.repetitions);

  o += f.gemm.empty() ? "gemm: []\n" : "gemm:\n";
  for (const auto& r : f.gemm) {
    const std::string acc =
        r.dtype == Dtype::fp8 ? fmt::format("accumulation: {}, ", to_string(r.accumulation)) : "";
    std::string load;
    if (r.sustained.value() > 0) {
      load = fmt::format("sustained: {}, ", format_duration(r.sustained));
      if (r.sm_clock_mhz > 0) load += fmt::format("sm_clock_mhz: {}, ", r.sm_clock_mhz);
    }
    o += fmt::format("  - {{dtype: {}, {}m: {}, n: {}, k: {}, {}{}}}\n", to_string(r.dtype), acc,
                     r.m, r.n, r.k, load, stats(r.time));
  }
  o += f.memory_bound.empty() ? "memory_bound: []\n" : "memory_bound:\n";
  for (const auto& r : f.memory_bound)
    o += fmt::format("  - {{kernel: {}, bytes: {}, {}}}\n", to_string(r.kernel), size(r.bytes),
                     stats(r.time));
  o += f.attention.empty() ? "attention: []\n" : "attention:\n";
  for (const auto& r : f.attention)
    o += fmt::format(
        "  - {{implementation: {}, dtype: {}, pass: {}, batch: {}, heads: {}, seq: {}, "
        "head_dim: {}, causal: {}, {}}}\n",
        to_string(r.implementation), to_string(r.dtype), r.backward ? "backward" : "forward",
        r.batch, r.heads, r.seq, r.head_dim, r.causal ? "true" : "false", stats(r.time));
  o += f.launch.empty() ? "launch: []\n" : "launch:\n";
  for (const auto& r : f.launch) o += fmt::format("  - {{kernel: empty, {}}}\n", stats(r.time));
  o += f.collectives.empty() ? "collectives: []\n" : "collectives:\n";
  for (const auto& r : f.collectives)
    o += fmt::format("  - {{op: {}, gpus: {}, nodes: {}, bytes: {}, {}}}\n", to_string(r.op),
                     r.gpus, r.nodes, size(r.bytes), stats(r.time));
  o += f.skipped.empty() ? "skipped: []\n" : "skipped:\n";
  for (const auto& s : f.skipped)
    o += fmt::format("  - {{what: {}, reason: {}}}\n", yaml_quote(s.what), yaml_quote(s.reason));
  return o;
}

}  // namespace orrery::profiler
