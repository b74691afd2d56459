#include "calibrate/calibrate.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <string_view>
#include <tuple>

#include "calibrate/compute_model.h"
#include "calibrate/fit.h"
#include "calibrate/kernel_classes.h"
#include "calibrate/kineto.h"
#include "calibrate/measurements.h"
#include "calibrate/nccl_tests.h"
#include "core/error.h"
#include "scenario/load.h"
#include "simulator/step.h"

namespace orrery {

namespace {

using CollectiveKey = std::tuple<CollectiveOp, int, int>;  // op, ranks, nodes

// Orders formats by name (to_string), not by enum order; collectives by op name, then
// ranks, then nodes.
struct ByName {
  bool operator()(Dtype a, Dtype b) const { return std::string_view(to_string(a)) < to_string(b); }
  bool operator()(const CollectiveKey& a, const CollectiveKey& b) const {
    const auto named = [](const CollectiveKey& k) {
      const auto& [op, gpus, nodes] = k;
      return std::tuple(std::string_view(to_string(op)), gpus, nodes);
    };
    return named(a) < named(b);
  }
};

// Ordered by name (to_string), so the profile lists its fits in name order.
struct Collected {
  std::map<CollectiveKey, std::vector<CollectiveSample>, ByName> collectives;
  std::map<Dtype, std::vector<GemmSample>, ByName> gemm;
  std::map<std::string, std::vector<CollectiveSample>> memory;
  std::vector<CollectiveSample> launch;
  std::map<std::tuple<std::string, std::string, std::string>, std::vector<double>> op_times;
  int attention_rows = 0;
  int fp8_fast_rows = 0;
};

std::string src(const std::string& file, int line) { return fmt::format("{}:{}", file, line); }

void add_measurements(const MeasurementFile& m, Collected& c, Profile& p) {
  const auto& v = m.provenance;
  p.inputs.push_back(
      {m.file, "measurements", v.gpu,
       fmt::format("{}, {}, driver {}, CUDA {}, cuBLAS {}, cuDNN {}, NCCL {}, timing {}, "
                   "{} repetitions after {} warm-up",
                   v.tool, v.date, v.driver, v.cuda_runtime, v.cublas, v.cudnn, v.nccl, v.timing,
                   v.repetitions, v.warmup)});
  for (const auto& g : m.gemm) {
    // One fp8 family: from split accumulation, which Transformer Engine uses for two of a
    // layer's three GEMMs (dgrad, wgrad: `_2X_ACC_DGRAD`/`_2X_ACC_WGRAD`, TE v1.8
    // module/base.py) and cuBLASLt by default; fast-accumulation rows are reported only.
    if (g.dtype == Dtype::fp8 && g.accumulation == Fp8Accumulation::fast) {
      ++c.fp8_fast_rows;
      continue;
    }
    c.gemm[g.dtype].push_back({{g.m, g.n, g.k}, g.time.median, src(m.file, g.line)});
  }
  for (const auto& b : m.memory_bound)
    c.memory[to_string(b.kernel)].push_back({b.bytes, b.time.median, src(m.file, b.line)});
  for (const auto& l : m.launch) c.launch.push_back({Bytes(0), l.time.median, src(m.file, l.line)});
  for (const auto& x : m.collectives)
    c.collectives[{x.op, x.gpus, x.nodes}].push_back({x.bytes, x.time.median, src(m.file, x.line)});
  c.attention_rows += static_cast<int>(m.attention.size());
}

void add_nccl_tests(const std::vector<NcclTestsRun>& runs, Collected& c, Profile& p) {
  std::string detail;
  for (const auto& r : runs) {
    detail += fmt::format("{}{} on {} GPUs, {} node{} (line {})", detail.empty() ? "" : "; ",
                          to_string(r.op), r.gpus, r.nodes, r.nodes == 1 ? "" : "s", r.line);
    for (const auto& row : r.rows) {
      // The in-place column, as published curves quote it; out-of-place where in-place is N/A.
      const auto& g = row.in_place ? row.in_place : row.out_of_place;
      if (!g || row.size.value() <= 0) continue;
      c.collectives[{r.op, r.gpus, r.nodes}].push_back(
          {row.size, g->time, src(r.file, r.line)});
    }
  }
  p.inputs.push_back({runs.front().file, "nccl-tests", runs.front().gpu, detail});
}

std::string join_dims(const std::vector<std::vector<std::int64_t>>& dims) {
  std::string s = "[";
  for (std::size_t i = 0; i < dims.size(); ++i) {
    s += i ? ", [" : "[";
    for (std::size_t j = 0; j < dims[i].size(); ++j) s += fmt::format("{}{}", j ? ", " : "", dims[i][j]);
    s += "]";
  }
  return s + "]";
}

std::string join_types(const std::vector<std::string>& types) {
  std::string s = "[";
  for (std::size_t i = 0; i < types.size(); ++i) s += (i ? ", " : "") + types[i];
  return s + "]";
}

// aten::mm (A[m,k] x B[k,n]) and aten::addmm (bias, A, B) calls as GEMM samples.
std::optional<std::pair<Dtype, GemmShape>> gemm_of(const TraceKernel& k) {
  std::size_t a = 0;
  if (k.op == "aten::mm") a = 0;
  else if (k.op == "aten::addmm") a = 1;
  else return std::nullopt;
  if (k.dims.size() < a + 2 || k.types.size() < a + 2) return std::nullopt;
  const auto& x = k.dims[a];
  const auto& y = k.dims[a + 1];
  if (x.size() != 2 || y.size() != 2 || x[1] != y[0] || x[0] <= 0 || y[1] <= 0 || x[1] <= 0)
    return std::nullopt;
  const std::string& t = k.types[a];
  Dtype dtype = Dtype::bf16;
  if (t == "c10::BFloat16") dtype = Dtype::bf16;
  else if (t == "c10::Half") dtype = Dtype::fp16;
  else if (t == "float") dtype = Dtype::fp32;
  else return std::nullopt;
  return std::pair{dtype, GemmShape{x[0], y[1], x[1]}};
}

// Forwards to the scenario's own model and records the parameter counts the step's
// optimizer pass asks it to time, one per simulated rank in rank order.
class OptimizerParams final : public ComputeModel {
 public:
  explicit OptimizerParams(std::shared_ptr<const ComputeModel> inner) : inner_(std::move(inner)) {}
  Seconds op_time(const Op& op, Pass pass) const override { return inner_->op_time(op, pass); }
  Seconds optimizer_time(double params) const override {
    const std::lock_guard<std::mutex> lock(mutex_);
    params_.push_back(params);
    return inner_->optimizer_time(params);
  }
  std::string describe() const override { return inner_->describe(); }
  std::vector<std::pair<std::string, std::string>> explain() const override {
    return inner_->explain();
  }
  std::optional<Seconds> collective_time(CollectiveOp op, int ranks, int nodes,
                                         Bytes bytes) const override {
    return inner_->collective_time(op, ranks, nodes, bytes);
  }
  std::vector<double> params() const {
    const std::lock_guard<std::mutex> lock(mutex_);
    return params_;
  }

 private:
  std::shared_ptr<const ComputeModel> inner_;
  mutable std::mutex mutex_;
  mutable std::vector<double> params_;
};

// The bytes the optimizer step of the traced GPU (global rank `rank`; 0 when the trace
// records none) moves in orrery's model of the scenario at `path`: the parameters that
// GPU's optimizer updates (its pipeline stage's, in the simulation of the scenario's step)
// times the optimizer's bytes per parameter (optimizer_bytes_per_param). Throws InputError
// for a scenario whose optimizer step the trace's kernels cannot stand for.
double traced_optimizer_bytes(const std::string& path, std::int64_t rank,
                              const std::string& trace) {
  const Scenario s = load_scenario_file(path);
  const TrainingSpec& tr = s.training;
  if (tr.optimizer != Optimizer::adam && tr.optimizer != Optimizer::adamw)
    throw InputError(s.where("training.optimizer"), "training.optimizer", to_string(tr.optimizer),
                     "--traced-scenario: orrery reads Adam's optimizer kernels from a trace; "
                     "this scenario's optimizer runs other kernels");
  if (tr.stack.optimizer != StackSpec::OptimizerKernels::fused)
    throw InputError(s.where("training.stack.optimizer"), "training.stack.optimizer",
                     to_string(tr.stack.optimizer),
                     "--traced-scenario: orrery reads the fused Adam kernels from a trace; the "
                     "foreach passes are not told apart from other foreach kernels");
  if (tr.optimizer_offload)
    throw InputError(s.where("training.optimizer_offload"), "training.optimizer_offload", "",
                     "--traced-scenario: an offloaded optimizer steps partly on the CPU, which "
                     "the trace's GPU kernels do not time");
  const ParallelismSpec& par = s.parallelism;
  const std::int64_t per_stage = static_cast<std::int64_t>(par.tp) * par.cp * par.dp;
  const std::int64_t r = rank < 0 ? 0 : rank;
  if (r >= per_stage * par.pp)
    throw InputError({trace, std::nullopt}, "distributedInfo.rank", std::to_string(r),
                     fmt::format("the traced rank is not one of the {} GPUs of the traced "
                                 "scenario '{}'",
                                 per_stage * par.pp, path));
  const int stage = static_cast<int>(r / per_stage);  // Megatron's order: tp, cp, dp, pp
  // One plain step: faults and gradient compression change no GPU's parameters, but their
  // variants of the step would time the optimizer again.
  Scenario plain = s;
  plain.faults.clear();
  plain.training.compression.scheme = CompressionSpec::Scheme::none;
  Hardware hw = resolve_hardware(plain);
  const auto recorder = std::make_shared<OptimizerParams>(hw.model);
  hw.model = recorder;
  const StepResult step = simulate_step(plain, hw);
  const std::vector<double> params = recorder->params();
  ORRERY_CHECK(params.size() == step.stage_of_rank.size(), "one optimizer step per simulated GPU");
  std::size_t i = 0;
  while (i < params.size() && step.stage_of_rank[i] != stage) ++i;
  ORRERY_CHECK(i < params.size(), "every stage is simulated");
  return params[i] * optimizer_bytes_per_param(s);
}

void add_kineto(const KinetoTrace& t, int gpus_per_node, const std::string& traced_scenario,
                Collected& c, Profile& p) {
  // One CPU op call = the kernels sharing its External id, summed.
  std::map<std::int64_t, std::pair<const TraceKernel*, double>> calls;
  for (const auto& k : t.kernels) {
    if (k.op_id && !k.op.empty()) {
      auto& call = calls[*k.op_id];
      if (!call.first) call.first = &k;
      call.second += k.duration.value();
    } else {
      c.op_times[{k.name, "", ""}].push_back(k.duration.value());
    }
  }
  int gemms = 0, odd = 0;
  for (const auto& [id, call] : calls) {
    const TraceKernel& k = *call.first;
    c.op_times[{k.op, k.dims.empty() ? "" : join_dims(k.dims),
                k.types.empty() ? "" : join_types(k.types)}]
        .push_back(call.second);
    if (const auto g = gemm_of(k)) {
      ++gemms;
      // An odd dimension runs cuBLAS's alignment-1 kernels, another family (docs/model.md,
      // "GEMMs with an odd dimension"), which would drag the family's fit down; the call
      // stays a measured kernel at its shape. Any of m, n, k: the trace records shapes, not
      // strides, and a transposed view's odd m is a leading dimension (the weight gradient
      // dY^T X of an odd vocabulary, aten::mm of [50257, 8192] and [8192, 768]).
      if (g->second.m % 2 != 0 || g->second.k % 2 != 0 || g->second.n % 2 != 0) {
        ++odd;
        continue;
      }
      c.gemm[g->first].push_back({g->second, Seconds(call.second), src(t.file, 0)});
    }
  }
  std::vector<MeasuredKernel> measured = measured_kernels(t, gpus_per_node);
  p.inputs.push_back(
      {t.file, "kineto", t.gpu,
       fmt::format("{} kernels, {} op calls, {} GEMM calls (aten::mm, aten::addmm; {} with an "
                   "odd dimension, left out of the GEMM fit), {} measured kernel entries",
                   t.kernels.size(), calls.size(), gemms, odd, measured.size())});
  for (MeasuredKernel& m : measured) p.measured.push_back(std::move(m));
  // The optimizer's kernels: a bandwidth once the traced scenario says what they moved.
  const OptimizerKernels ok = optimizer_kernels(t);
  if (ok.kernels == 0) {
    if (!traced_scenario.empty())
      p.not_fitted.push_back(fmt::format(
          "optimizer in {}: --traced-scenario given, but the trace holds no optimizer kernels "
          "(fused Adam's multi_tensor_apply_kernel, aten::_fused_adam_ / _fused_adamw_)",
          t.file));
    return;
  }
  const std::string what =
      fmt::format("optimizer in {}: {} kernel{}, {:.2f} us", t.file, ok.kernels,
                  ok.kernels == 1 ? "" : "s", ok.time.value() * 1e6);
  if (traced_scenario.empty()) {
    p.not_fitted.push_back(what +
                           "; not used: give --traced-scenario (the scenario the trace was taken "
                           "from) for the bytes they moved");
    return;
  }
  if (t.optimizer_steps == 0) {
    p.not_fitted.push_back(what +
                           "; not used: the trace holds no Optimizer.step# annotation to count "
                           "the optimizer steps they belong to");
    return;
  }
  MeasuredKernel m;
  m.cls = "optimizer";
  m.kernel = ok.first;
  m.op = ok.op;
  m.file = t.file;
  m.gpu = t.gpu;
  m.calls = t.optimizer_steps;
  m.time = Seconds(ok.time.value() / t.optimizer_steps);
  m.bytes = std::round(traced_optimizer_bytes(traced_scenario, t.rank, t.file));
  if (m.bytes <= 0 || m.time.value() <= 0) {
    p.not_fitted.push_back(what + "; not used: no bytes or no time to divide");
    return;
  }
  p.measured.push_back(std::move(m));
}

}  // namespace

Profile calibrate(const std::vector<CalibrationInput>& inputs, Env& env) {
  if (inputs.empty()) {
    throw InputError({"orrery calibrate", std::nullopt}, "", "", "no input files given");
  }
  Profile p;
  Collected c;
  int traces = 0;
  for (const auto& in : inputs) {
    if (!in.traced_scenario.empty() && traces == 0) {
      const std::string text = read_file_or_throw(env, in.path, "the input file");
      if (looks_like_chrome_trace(text)) ++traces;
    }
  }
  const auto traced = std::find_if(inputs.begin(), inputs.end(), [](const CalibrationInput& in) {
    return !in.traced_scenario.empty();
  });
  if (traced != inputs.end() && traces == 0) {
    throw InputError({"orrery calibrate", std::nullopt}, "--traced-scenario",
                     traced->traced_scenario,
                     "--traced-scenario sizes a Kineto trace's optimizer kernels: no input is a "
                     "trace");
  }
  for (const auto& in : inputs) {
    const std::string text = read_file_or_throw(env, in.path, "the input file");
    if (text.find("orrery-measurements") != std::string::npos) {
      add_measurements(read_measurement_text(text, in.path), c, p);
    } else if (looks_like_nccl_tests(text)) {
      add_nccl_tests(read_nccl_tests_text(text, in.path, in.op_hint), c, p);
    } else if (looks_like_chrome_trace(text)) {
      add_kineto(read_kineto_text(text, in.path), in.gpus_per_node, in.traced_scenario, c, p);
    } else {
      throw InputError({in.path, std::nullopt}, "", "",
                       "not a known input: expected an orrery-profile measurement file "
                       "(format: orrery-measurements), nccl-tests output (a '# nThread .. "
                       "nGpus ..' header) or a Chrome trace JSON with traceEvents");
    }
  }
  // A family with too few points is refused and listed under not_fitted; the families
  // that can be fitted still are. Nothing fitted at all is an error.
  std::vector<std::string> refused;
  auto attempt = [&](auto&& fit) {
    try {
      fit();
    } catch (const InputError& e) {
      refused.push_back(fmt::format("{} {}: {}", e.key(), e.value(), e.why()));
    }
  };
  // Map entries, not structured bindings, go into the lambdas: clang before 16 cannot
  // capture a structured binding.
  for (const auto& entry : c.collectives) {
    attempt([&] {
      const auto& [op, gpus, nodes] = entry.first;
      p.collectives.push_back(fit_collective(op, gpus, nodes, entry.second));
    });
  }
  for (const auto& entry : c.gemm)
    attempt([&] { p.gemm.push_back(fit_gemm(entry.first, entry.second)); });
  for (const auto& entry : c.memory)
    attempt([&] { p.memory.push_back(fit_memory(entry.first, entry.second)); });
  if (!c.launch.empty()) attempt([&] { p.launch = fit_launch(c.launch); });
  for (const auto& [key, times] : c.op_times) {
    std::vector<double> t = times;
    std::sort(t.begin(), t.end());
    const std::size_t n = t.size();
    const double median = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
    p.op_times.push_back({std::get<0>(key), std::get<1>(key), std::get<2>(key),
                          static_cast<int>(n), Seconds(median), Seconds(t.front()),
                          Seconds(t.back())});
  }
  p.not_fitted.insert(p.not_fitted.begin(), refused.begin(), refused.end());
  if (p.collectives.empty() && p.gemm.empty() && p.memory.empty() && !p.launch &&
      p.op_times.empty() && p.measured.empty()) {
    std::string why = "nothing could be fitted";
    for (const auto& r : refused) why += "; " + r;
    throw InputError({"orrery calibrate", std::nullopt}, "", "", why);
  }
  if (c.fp8_fast_rows > 0) {
    p.not_fitted.push_back(fmt::format(
        "gemm fp8 fast accumulation: {} measured rows read; the fp8 family is fitted from "
        "split accumulation only",
        c.fp8_fast_rows));
  }
  if (c.attention_rows > 0) {
    p.not_fitted.push_back(fmt::format(
        "attention: {} measured rows read; no attention family is fitted yet (the roofline's "
        "attention_efficiency stays in use)",
        c.attention_rows));
  }
  return p;
}

namespace {

// Numbers in the profile: six significant digits, the same bytes on every run.
std::string num(double v) { return fmt::format("{:.6g}", v); }
std::string us(Seconds s) { return num(s.value() * 1e6) + " us"; }
std::string gbps(Bandwidth b) { return num(b.value() / 1e9) + " GB/s"; }
std::string tflops(double r) { return num(r / 1e12) + " TFLOP/s"; }
// Percent with two decimals; never "-0.00".
std::string pct(double fraction) {
  const double v = std::round(fraction * 1e4) / 100.0;
  return fmt::format("{:.2f}", v == 0.0 ? 0.0 : v);
}
// Byte counts are whole numbers: written in full.
std::string bytes(double b) { return fmt::format("{:.0f} B", b); }

// A YAML double-quoted string.
std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '\n') {
      out += "\\n";
    } else if (ch == '\t') {
      out += "\\t";
    } else if (static_cast<unsigned char>(ch) < 0x20) {
      out += fmt::format("\\x{:02x}", static_cast<unsigned char>(ch));
    } else {
      if (ch == '"' || ch == '\\') out += '\\';
      out += ch;
    }
  }
  return out + "\"";
}

std::string held_out(const std::vector<double>& errors) {
  const HeldOutSummary s = summarize(errors);
  return fmt::format("{{max_error_pct: {}, mean_error_pct: {}, points: {}}}", pct(s.max_abs),
                     pct(s.mean_abs), s.points);
}

}  // namespace

std::string render_profile(const Profile& p) {
  std::string o;
  o += "# Fitted by orrery calibrate; format in docs/calibration-format.md (\"Profile\").\n";
  o += "format: orrery-profile\nversion: 1\nprovenance:\n  inputs:\n";
  for (const auto& in : p.inputs) {
    o += fmt::format("    - {{file: {}, kind: {}, gpu: {}, detail: {}}}\n", quoted(in.file),
                     in.kind, quoted(in.gpu), quoted(in.detail));
  }
  o += "collectives:";
  o += p.collectives.empty() ? " []\n" : "\n";
  for (const auto& f : p.collectives) {
    std::vector<double> curve;
    for (const auto& pt : f.points) curve.push_back(pt.held_out_error);
    o += fmt::format("  - op: {}\n    gpus: {}\n    nodes: {}\n", to_string(f.op), f.gpus,
                     f.nodes);
    o += "    sources: [";
    for (std::size_t i = 0; i < f.sources.size(); ++i) o += (i ? ", " : "") + quoted(f.sources[i]);
    o += "]\n";
    o += fmt::format("    alpha: {}\n    beta: {}\n", us(f.alpha), gbps(f.beta));
    o += fmt::format("    alpha_beta_held_out: {}\n", held_out(f.alpha_beta_held_out));
    o += fmt::format("    curve_held_out: {}\n", held_out(curve));
    o += "    points:\n";
    for (std::size_t i = 0; i < f.points.size(); ++i) {
      const auto& pt = f.points[i];
      o += fmt::format(
          "      - {{size: {}, time: {}, busbw: {}, held_out_error_pct: {}, "
          "alpha_beta_held_out_error_pct: {}}}\n",
          bytes(pt.x), us(pt.time),
          gbps(Bandwidth(pt.x / pt.time.value() * busbw_factor(f.op, f.gpus))),
          pct(pt.held_out_error), pct(f.alpha_beta_held_out[i]));
    }
  }
  o += "gemm:";
  o += p.gemm.empty() ? " []\n" : "\n";
  for (const auto& g : p.gemm) {
    std::vector<double> errs;
    for (const auto& pt : g.points) errs.push_back(pt.held_out_error);
    o += fmt::format("  - dtype: {}\n    memory_roof: {}\n    held_out: {}\n",
                     to_string(g.dtype), gbps(g.memory_roof), held_out(errs));
    o += "    compute_roof:\n";
    for (const auto& [f, r] : g.compute_roof)
      o += fmt::format("      - {{flop: {}, rate: {}}}\n", num(f), tflops(r));
    o += "    points:\n";
    for (std::size_t i = 0; i < g.points.size(); ++i) {
      const auto& s = g.shapes[i];
      const auto& pt = g.points[i];
      o += fmt::format(
          "      - {{m: {}, n: {}, k: {}, time: {}, rate: {}, memory_bound: {}, "
          "fit_error_pct: {}, held_out_error_pct: {}}}\n",
          s.m, s.n, s.k, us(pt.time), tflops(pt.x / pt.time.value()),
          g.memory_bound[i] ? "true" : "false", pct(g.in_sample_error[i]),
          pct(pt.held_out_error));
    }
  }
  o += "memory_bound:";
  o += p.memory.empty() ? " []\n" : "\n";
  for (const auto& m : p.memory) {
    std::vector<double> errs;
    for (const auto& pt : m.points) errs.push_back(pt.held_out_error);
    o += fmt::format("  - kernel: {}\n    alpha: {}\n    bandwidth: {}\n    held_out: {}\n",
                     m.kernel, us(m.alpha), gbps(m.bandwidth), held_out(errs));
    o += "    points:\n";
    for (const auto& pt : m.points)
      o += fmt::format("      - {{bytes: {}, time: {}, held_out_error_pct: {}}}\n", bytes(pt.x),
                       us(pt.time), pct(pt.held_out_error));
  }
  if (p.launch) {
    std::vector<double> errs;
    for (const auto& pt : p.launch->points) errs.push_back(pt.held_out_error);
    o += fmt::format("launch:\n  overhead: {}\n  held_out: {}\n  points:\n",
                     us(p.launch->overhead), held_out(errs));
    for (const auto& pt : p.launch->points)
      o += fmt::format("    - {{time: {}, held_out_error_pct: {}}}\n", us(pt.time),
                       pct(pt.held_out_error));
  } else {
    o += "launch: null\n";
  }
  o += "op_times:";
  o += p.op_times.empty() ? " []\n" : "\n";
  for (const auto& t : p.op_times) {
    o += fmt::format(
        "  - {{op: {}, shapes: {}, types: {}, calls: {}, median: {}, min: {}, max: {}}}\n",
        quoted(t.op), quoted(t.shapes), quoted(t.types), t.calls, us(t.median), us(t.min),
        us(t.max));
  }
  o += "measured_kernels:";
  o += p.measured.empty() ? " []\n" : "\n";
  for (const MeasuredKernel& m : p.measured) {
    o += "  - {class: " + m.cls;
    if (m.cls == "gemm") {
      o += fmt::format(", dtype: {}, m: {}, n: {}, k: {}", to_string(m.dtype), m.shape.m, m.shape.n,
                       m.shape.k);
    } else if (m.cls == "attention") {
      o += fmt::format(", pass: {}, dtype: {}, flop: {:.0f}", m.pass, to_string(m.dtype), m.flops);
    } else if (m.cls == "collective") {
      o += fmt::format(", collective: {}, ranks: {}", to_string(m.collective), m.ranks);
      if (m.nodes > 0) o += fmt::format(", nodes: {}", m.nodes);  // absent: not known
      o += ", bytes: " + bytes(m.bytes);
    } else {
      o += ", bytes: " + bytes(m.bytes);
    }
    o += fmt::format(", calls: {}, time: {}, kernel: {}, op: {}, file: {}, gpu: {}}}\n", m.calls,
                     us(m.time), quoted(m.kernel), quoted(m.op), quoted(m.file), quoted(m.gpu));
  }
  o += "not_fitted:";
  o += p.not_fitted.empty() ? " []\n" : "\n";
  for (const auto& n : p.not_fitted) o += "  - " + quoted(n) + "\n";
  // Only profiles fitted to measured runs hold parameters; others keep their bytes.
  if (!p.parameters.empty()) o += "parameters:\n";
  for (const auto& x : p.parameters) {
    o += fmt::format("  - {{key: {}, value: {}, start: {}, min: {}, max: {}, at_bound: {}}}\n",
                     x.key, num(x.value), num(x.start), num(x.min), num(x.max),
                     x.at_bound ? "true" : "false");
  }
  return o;
}

std::string render_profile_summary(const Profile& p) {
  std::string o;
  auto errors = [](const std::vector<HeldOutPoint>& pts) {
    std::vector<double> e;
    for (const auto& x : pts) e.push_back(x.held_out_error);
    return summarize(e);
  };
  for (const auto& f : p.collectives) {
    const HeldOutSummary c = errors(f.points), ab = summarize(f.alpha_beta_held_out);
    o += fmt::format(
        "collective {} on {} GPUs, {} node{}: {} sizes; held-out busbw error: curve max {} % "
        "(mean {} %), alpha-beta (alpha {}, beta {}) max {} %\n",
        to_string(f.op), f.gpus, f.nodes, f.nodes == 1 ? "" : "s", f.points.size(), pct(c.max_abs),
        pct(c.mean_abs), us(f.alpha), gbps(f.beta), pct(ab.max_abs));
  }
  for (const auto& g : p.gemm) {
    const HeldOutSummary h = errors(g.points), fit = summarize(g.in_sample_error);
    o += fmt::format(
        "gemm {}: {} shapes; fit error max {} %; held-out FLOP/s error max {} % (mean {} %)\n",
        to_string(g.dtype), g.points.size(), pct(fit.max_abs), pct(h.max_abs), pct(h.mean_abs));
  }
  for (const auto& m : p.memory) {
    const HeldOutSummary h = errors(m.points);
    o += fmt::format("memory-bound {}: {} sizes, {} at large sizes; held-out error max {} %\n",
                     m.kernel, m.points.size(), gbps(m.bandwidth), pct(h.max_abs));
  }
  if (p.launch) {
    const HeldOutSummary h = errors(p.launch->points);
    o += fmt::format("launch overhead {}; held-out error max {} %\n", us(p.launch->overhead),
                     pct(h.max_abs));
  }
  if (!p.op_times.empty()) o += fmt::format("op times: {} op classes\n", p.op_times.size());
  if (!p.measured.empty())
    o += fmt::format(
        "measured kernels: {} entries (gemm, attention, memory-bound, collective, optimizer)\n",
        p.measured.size());
  for (const MeasuredKernel& m : p.measured) {
    if (m.cls != "optimizer") continue;
    o += fmt::format(
        "optimizer from {}: {} a step in {:.2f} us ({} steps): {:.0f} GB/s, the bandwidth that "
        "times the optimizer of a scenario naming this profile\n",
        m.file, format_bytes(Bytes(m.bytes)), m.time.value() * 1e6, m.calls,
        m.bytes / m.time.value() / 1e9);
  }
  const auto unspanned = std::count_if(p.measured.begin(), p.measured.end(), [](const auto& m) {
    return m.cls == "collective" && m.nodes == 0;
  });
  if (unspanned > 0)
    o += fmt::format(
        "measured collectives: {} entr{} without a node span (the trace records no Process "
        "Group Ranks, a send/recv no traced rank or peer, or no --gpus-per-node was given): "
        "kept, not used by the simulation\n",
        unspanned, unspanned == 1 ? "y" : "ies");
  for (const auto& n : p.not_fitted) o += "not fitted: " + n + "\n";
  return o;
}

}  // namespace orrery
