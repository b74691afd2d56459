#include "calibrate/profile_model.h"

#include <fmt/format.h>

#include "core/env.h"
#include "core/error.h"
#include "scenario/load.h"

#include <algorithm>
#include <map>
#include <cmath>
#include <mutex>
#include <optional>
#include <cctype>
#include <set>

namespace orrery {
namespace {

const GemmFit* gemm_for(const Profile& p, Dtype dtype) {
  for (const auto& g : p.gemm)
    if (g.dtype == dtype) return &g;
  return nullptr;
}

const MemoryFit* memory_for(const Profile& p, std::initializer_list<const char*> prefer) {
  for (const char* k : prefer)
    for (const auto& m : p.memory)
      if (m.kernel == k) return &m;
  return nullptr;
}

double max_held_out(const std::vector<HeldOutPoint>& pts) {
  double m = 0;
  for (const auto& x : pts) m = std::max(m, std::abs(x.held_out_error));
  return m;
}

// The profile's single-node all-reduce over the node's GPUs, if it has one.
const CollectiveFit* node_all_reduce(const Profile& p, int gpus_per_node) {
  for (const CollectiveFit& c : p.collectives)
    if (c.op == CollectiveOp::all_reduce && c.nodes == 1 && c.gpus == gpus_per_node) return &c;
  return nullptr;
}

// The profile's all-reduce across nodes shaped like the cluster's (nodes >= 2, gpus =
// nodes x gpus_per_node): the one over the most nodes, if any.
const CollectiveFit* fabric_all_reduce(const Profile& p, int gpus_per_node) {
  const CollectiveFit* best = nullptr;
  for (const CollectiveFit& c : p.collectives)
    if (c.op == CollectiveOp::all_reduce && c.nodes >= 2 && c.gpus == c.nodes * gpus_per_node &&
        (!best || c.nodes > best->nodes))
      best = &c;
  return best;
}

// NCCL's ring all-reduce across nodes runs one ring per NIC (rail) and moves every byte
// of a ring once through a NIC each way, so its bus bandwidth is nics x NIC line rate x
// the fabric's efficiency (the NDR guidance in the shared data: 46-48 GB/s per 400 Gb/s
// NIC). The measured peak bus bandwidth over that line rate, at most 1 (a tree or
// in-network reduction can beat the ring), is the efficiency; none without NICs.
std::optional<double> fabric_efficiency(const CollectiveFit& ar, const ClusterSpec& c) {
  const double line = c.inter_node.nics_per_node * c.inter_node.nic_bandwidth.value();
  if (line <= 0) return std::nullopt;
  double peak = 0;
  for (const HeldOutPoint& pt : ar.points) peak = std::max(peak, ar.busbw(Bytes(pt.x)).value());
  return std::min(1.0, peak / line);
}

// Upper-cased alphanumeric words of a GPU name: "NVIDIA A100-SXM4-80GB" ->
// {NVIDIA, A100, SXM4, 80GB}.
std::vector<std::string> name_words(const std::string& name) {
  std::vector<std::string> words(1);
  for (char ch : name) {
    if (std::isalnum(static_cast<unsigned char>(ch))) {
      words.back() += static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    } else if (!words.back().empty()) {
      words.emplace_back();
    }
  }
  if (words.back().empty()) words.pop_back();
  return words;
}

// The first word of letters then digits with at most one letter after them (V100, A100,
// H100, H200, B200, L40S, GB200, MI300X), or empty.
std::string model_word(const std::vector<std::string>& words) {
  for (const std::string& w : words) {
    std::size_t i = 0;
    while (i < w.size() && std::isalpha(static_cast<unsigned char>(w[i]))) ++i;
    std::size_t j = i;
    while (j < w.size() && std::isdigit(static_cast<unsigned char>(w[j]))) ++j;
    if (i >= 1 && j - i >= 2 && w.size() - j <= 1) return w;
  }
  return "";
}

// The first memory size word ("80GB", "141GB"), or empty.
std::string memory_word(const std::vector<std::string>& words) {
  for (const std::string& w : words)
    if (w.size() > 2 && w.compare(w.size() - 2, 2, "GB") == 0 &&
        std::all_of(w.begin(), w.end() - 2,
                    [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }))
      return w;
  return "";
}

}  // namespace

bool same_gpu(const std::string& a, const std::string& b) {
  const auto wa = name_words(a), wb = name_words(b);
  const std::string ma = model_word(wa), mb = model_word(wb);
  if (ma.empty() || mb.empty()) return true;  // cannot tell: not refused
  if (ma != mb) return false;
  const std::string ga = memory_word(wa), gb = memory_word(wb);
  return ga.empty() || gb.empty() || ga == gb;
}

namespace {

[[noreturn]] void refuse(const Scenario& s, const std::string& why) {
  throw InputError(s.where("cluster.calibration"), "cluster.calibration", *s.cluster.calibration,
                   why);
}

// The built-in GPU preset named like `gpu` (same_gpu), exactly one, or a refusal.
GpuSpec preset_for(const Scenario& s, const std::string& gpu, const std::string& file) {
  std::vector<GpuSpec> found;
  for (const std::string& name : gpu_preset_names()) {
    GpuSpec g = gpu_preset_spec(name);
    if (same_gpu(gpu, g.name)) found.push_back(std::move(g));
  }
  if (found.size() == 1) return found.front();
  std::string names;
  for (const GpuSpec& g : found) names += (names.empty() ? "" : ", ") + g.preset;
  refuse(s, fmt::format("the profile was measured on '{}' (its input '{}'), not the scenario's "
                        "GPU '{}' (cluster.gpu), and {}, so its figures cannot be projected by "
                        "datasheet ratios",
                        gpu, file, s.cluster.gpu.name,
                        found.empty() ? "no GPU preset names that GPU"
                                      : "several GPU presets name it (" + names + ")"));
}

// One scaled resource: A's and B's datasheet figure, their measured achievable fractions.
struct Ratio {
  std::string label;  // "bf16 compute 989.4 / 989.4 TFLOP/s"
  double scale = 1;   // time factor: A's figure / B's
  double spread = 0;  // |eff_B / eff_A - 1|
};

}  // namespace

Profile project_profile(const Scenario& s, Profile p) {
  if (!s.cluster.calibration) return p;
  const InputProvenance* other = nullptr;
  for (const InputProvenance& in : p.inputs) {
    if (in.gpu.empty() || same_gpu(in.gpu, s.cluster.gpu.name)) continue;
    if (other && !same_gpu(in.gpu, other->gpu))
      refuse(s, fmt::format("the profile's inputs were measured on two GPUs, '{}' ('{}') and "
                            "'{}' ('{}'): one profile projects from one GPU",
                            other->gpu, other->file, in.gpu, in.file));
    if (!other) other = &in;
  }
  if (!other) return p;
  const GpuSpec a = preset_for(s, other->gpu, other->file);
  const GpuSpec& b = s.cluster.gpu;
  const std::string from = fmt::format("'{}' (preset {})", other->gpu, a.preset);

  std::map<std::string, Ratio> used;  // by label, for the lines and the half-width
  auto hbm = [&] {
    const double ea = a.memory_efficiency.value_or(0), eb = b.memory_efficiency.value_or(0);
    Ratio r{fmt::format("HBM {:.4g} / {:.4g} TB/s", a.memory_bandwidth.value() / 1e12,
                        b.memory_bandwidth.value() / 1e12),
            a.memory_bandwidth.value() / b.memory_bandwidth.value(),
            ea > 0 && eb > 0 ? std::abs(eb / ea - 1) : 0.0};
    used[r.label] = r;
    return r;
  };
  auto compute = [&](Dtype d, const std::string& figure, bool attention) {
    const auto pa = a.peak.find(d), pb = b.peak.find(d);
    if (pa == a.peak.end() || pb == b.peak.end())
      refuse(s,
             fmt::format("the profile's {} was measured on {} and cannot be projected to "
                         "'{}': {} has no {} peak (no datasheet ratio)",
                         figure, from, b.name, pa == a.peak.end() ? a.name : b.name, to_string(d)));
    double spread = 0;
    if (attention) {
      // The fraction of the kernel the scenario runs (training.stack.attention).
      const auto& ea = fused_attention_efficiency(s, a);
      const auto& eb = fused_attention_efficiency(s, b);
      if (ea && eb) spread = std::abs(*eb / *ea - 1);
    } else {
      const auto ea = a.gemm_efficiency.find(d), eb = b.gemm_efficiency.find(d);
      if (ea != a.gemm_efficiency.end() && eb != b.gemm_efficiency.end())
        spread = std::abs(eb->second / ea->second - 1);
    }
    Ratio r{fmt::format("{} {} {:.5g} / {:.5g} TFLOP/s", to_string(d),
                        attention ? "attention" : "compute", pa->second.value() / 1e12,
                        pb->second.value() / 1e12),
            pa->second.value() / pb->second.value(), spread};
    used[r.label] = r;
    return r;
  };

  for (MeasuredKernel& m : p.measured) {
    Ratio r;
    if (m.cls == "gemm") {
      const std::string figure = fmt::format("measured gemm {} m={} n={} k={}", to_string(m.dtype),
                                             m.shape.m, m.shape.n, m.shape.k);
      const auto pa = a.peak.find(m.dtype);
      const double ridge = pa == a.peak.end() ? 0 : pa->second.value() / a.memory_bandwidth.value();
      r = m.flops / gemm_bytes(m.shape, m.dtype) >= ridge ? compute(m.dtype, figure, false) : hbm();
    } else if (m.cls == "attention") {
      r = compute(
          m.dtype,
          fmt::format("measured attention {} {} {:.6g} FLOP", to_string(m.dtype), m.pass, m.flops),
          true);
    } else if (m.cls == "collective") {
      continue;  // dropped below
    } else {
      r = hbm();
    }
    m.time = Seconds(m.time.value() * r.scale);
    m.projection = fmt::format("x {:.4g} ({}) from {}", r.scale, r.label, a.preset);
  }
  for (GemmFit& g : p.gemm) {
    const Ratio c = compute(g.dtype, fmt::format("gemm {} fit", to_string(g.dtype)), false);
    for (auto& [f, rate] : g.compute_roof) rate /= c.scale;
    if (g.memory_roof.value() > 0) g.memory_roof = Bandwidth(g.memory_roof.value() / hbm().scale);
  }
  for (MemoryFit& m : p.memory) m.bandwidth = Bandwidth(m.bandwidth.value() / hbm().scale);

  p.projected.push_back(fmt::format("measured on {}, projected to '{}'", from, b.name));
  for (const auto& [label, r] : used)
    p.projected.push_back(fmt::format("time x {:.4g}: {}; measured fractions differ by {:.1f} %",
                                      r.scale, label, 100 * r.spread));
  if (p.launch) {
    p.launch.reset();
    p.projected.push_back(
        "launch fit dropped (no datasheet figure): the scenario GPU's "
        "kernel_launch");
  }
  // A measured NCCL time is the traced GPU's NVLink and NICs at their achieved rate, with
  // no datasheet ratio that carries it to B's: the entries are dropped, and the simulator's
  // plan (on B's own line rates, with the curves below) times those collectives.
  const auto nccl =
      std::count_if(p.measured.begin(), p.measured.end(),
                    [](const MeasuredKernel& m) { return m.cls == "collective" && m.nodes > 0; });
  if (nccl > 0) {
    p.measured.erase(std::remove_if(p.measured.begin(), p.measured.end(),
                                    [](const MeasuredKernel& m) {
                                      return m.cls == "collective" && m.nodes > 0;
                                    }),
                     p.measured.end());
    p.projected.push_back(fmt::format(
        "{} measured NCCL entr{} dropped (no datasheet ratio carries a measured collective time "
        "to another GPU's links): the simulator's plan times those collectives",
        nccl, nccl == 1 ? "y" : "ies"));
  }
  if (!p.collectives.empty())
    p.projected.push_back(
        "collective curves carried as fractions of the scenario's own "
        "NVLink and NIC line rates");
  double u = 0;
  for (const auto& [label, r] : used) u = std::max(u, r.spread);
  p.projection_half_width = u;
  return p;
}

std::vector<std::pair<Bytes, double>> bus_bandwidth_curve(const CollectiveFit& c) {
  std::vector<std::pair<Bytes, double>> out;
  if (c.points.empty()) return out;
  const double peak = c.busbw(Bytes(c.points.back().x)).value();
  for (const HeldOutPoint& pt : c.points) {
    if (pt.x < 1048576.0) continue;
    out.emplace_back(Bytes(pt.x), std::min(1.0, c.busbw(Bytes(pt.x)).value() / peak));
  }
  return out;
}

namespace {

// How far a measured entry's size (FLOPs, bytes) may be from an op's for the entry's rate
// to time the op: within a factor of 2 (docs/model.md, "Measured kernels").
constexpr double kNearestFactor = 2.0;

// A GEMM of an op as the trace records it: k the reduced dimension, {a, b} the others in
// either order (a transposed operand is the same GEMM).
struct GemmKey {
  double k = 0, a = 0, b = 0;
};

bool is_whole(double x) { return x >= 1 && std::abs(x - std::round(x)) <= 1e-6 * x; }

bool matches(const GemmShape& s, const GemmKey& g) {
  const auto m = static_cast<double>(s.m), n = static_cast<double>(s.n);
  return static_cast<double>(s.k) == std::round(g.k) &&
         ((m == std::round(g.a) && n == std::round(g.b)) ||
          (m == std::round(g.b) && n == std::round(g.a)));
}

// The bandwidth a profile's optimizer entries measured: their bytes over their time
// (several traces: the sums); 0 when it holds none.
double optimizer_bandwidth(const Profile& p) {
  double bytes = 0, time = 0;
  for (const MeasuredKernel& m : p.measured) {
    if (m.cls != "optimizer") continue;
    bytes += m.bytes;
    time += m.time.value();
  }
  return bytes > 0 && time > 0 ? bytes / time : 0;
}

class ProfileModel final : public ComputeModel {
 public:
  ProfileModel(const Scenario& s, const Profile& p, const std::string& name)
      : roofline_(optimizer_bandwidth(p) > 0
                      ? make_roofline_model(s, Bandwidth(optimizer_bandwidth(p)))
                      : make_roofline_model(s)) {
    const Dtype d = compute_dtype(s.training.precision);
    const Dtype a = attention_dtype(s.training.precision);
    gemm_dtype_ = d;
    attn_dtype_ = a;
    unaligned_rate_ = unaligned_gemm_rate(s);
    if (const GemmFit* g = gemm_for(p, d)) gemm_ = *g;
    if (const GemmFit* g = gemm_for(p, a)) attn_gemm_ = *g;
    if (const MemoryFit* m = memory_for(p, {"row_reduce", "elementwise", "copy"})) rows_ = *m;
    if (const MemoryFit* m = memory_for(p, {"elementwise", "copy", "row_reduce"})) other_ = *m;
    Op empty;
    empty.kind = OpKind::elementwise;
    roofline_floor_ = roofline_->op_time(empty, Pass::forward).value();
    floor_ = p.launch ? p.launch->overhead.value() : roofline_floor_;

    // What times each op class: the profile entry, or the roofline's line for the class.
    std::map<std::string, std::string> roof;
    for (const auto& [cls, src] : roofline_->explain()) roof[cls] = src;
    auto roof_line = [&](const std::string& prefix) {
      for (const auto& [cls, src] : roof)
        if (cls.rfind(prefix, 0) == 0) return src;
      return std::string("roofline");
    };
    auto gemm_line = [&](const std::optional<GemmFit>& g, Dtype dt,
                         const std::string& roof_class) {
      return g ? fmt::format("profile {} gemm {}: F / min(P(F), {:.0f} GB/s x F / bytes), "
                             "{} shapes, held-out max {:.1f} %",
                             name, to_string(g->dtype), g->memory_roof.value() / 1e9,
                             g->points.size(), 100 * max_held_out(g->points))
               : fmt::format("{} (profile has no {} GEMMs)", roof_line(roof_class), to_string(dt));
    };
    auto memory_line = [&](const std::optional<MemoryFit>& m) {
      return m ? fmt::format("profile {} memory_bound {}: {:.2f} us + bytes / {:.0f} GB/s, "
                             "held-out max {:.1f} %",
                             name, m->kernel, m->alpha.value() * 1e6, m->bandwidth.value() / 1e9,
                             100 * max_held_out(m->points))
               : roof_line("norm") + " (profile has no memory-bound fit)";
    };
    explanation_ = {
        {fmt::format("GEMM ({})", to_string(d)), gemm_line(gemm_, d, "GEMM")},
        {fmt::format("attention GEMMs ({})", to_string(a)),
         gemm_line(attn_gemm_, a, "attention GEMMs")},
        {"fused attention", roof_line("fused attention") + " (no attention family is fitted)"},
        {"norm, softmax", memory_line(rows_)},
        {"other ops", memory_line(other_)},
        {"kernel floor",
         p.launch ? fmt::format("profile {} launch: {:.2f} us, held-out max {:.1f} %", name,
                                floor_ * 1e6, 100 * max_held_out(p.launch->points))
                  : roof_line("kernel floor") + " (profile has no launch fit)"},
        {"optimizer", roof_line("optimizer")}};
    // Optimizer entries: the traced step's optimizer bytes over its optimizer kernels' time
    // give the bandwidth the roofline's optimizer passes stream at.
    if (optimizer_bandwidth(p) > 0) {
      std::string entries;
      for (const MeasuredKernel& m : p.measured) {
        if (m.cls != "optimizer") continue;
        entries += fmt::format(
            "{}{} kernel '{}' ({}): {} in {:.2f} us a step{}", entries.empty() ? "" : "; ", m.file,
            m.kernel, m.op.empty() ? "no CPU op" : m.op, format_bytes(Bytes(m.bytes)),
            m.time.value() * 1e6, m.projection.empty() ? "" : " projected " + m.projection);
      }
      std::string opt_roof = roof_line("optimizer");
      if (opt_roof.rfind("roofline: ", 0) == 0) opt_roof = opt_roof.substr(10);
      explanation_.back().second = fmt::format(
          "profile {} measured optimizer ({}): {:.0f} GB/s in place of HBM x "
          "memory_efficiency; {}",
          name, entries, optimizer_bandwidth(p) / 1e9, opt_roof);
    }
    measured_ = p.measured;
    half_width_ = p.projection_half_width;
    if (!p.projected.empty()) {
      for (const std::string& line : p.projected) explanation_.emplace_back("projected", line);
      band_basis_ = fmt::format(
          "+/- {:.1f} % for the profile {} (the largest difference between the two GPUs' "
          "measured achievable fractions of the figures scaled)",
          100 * half_width_, p.projected.front());
    }
    if (!p.measured.empty()) {
      std::set<std::string> files;
      for (const MeasuredKernel& m : p.measured) files.insert(m.file);
      std::string list;
      for (const std::string& f : files) list += (list.empty() ? "" : ", ") + f;
      explanation_.insert(
          explanation_.begin(),
          {"measured kernels",
           fmt::format("profile {}: {} entries from {}; an op of the same class (GEMM: dtype "
                       "and m, n, k; attention: dtype, pass, FLOPs; norm/softmax/elementwise: "
                       "bytes) takes an entry's time when exact, else the nearest entry's rate "
                       "within {}x of its size; the lines below name each entry used",
                       name, p.measured.size(), list, kNearestFactor)});
    }
    // Measured NCCL entries: used where the node span is known, else kept and said why.
    int spanned = 0, unspanned = 0;
    for (const MeasuredKernel& m : p.measured) {
      if (m.cls != "collective") continue;
      (m.nodes > 0 ? spanned : unspanned) += 1;
    }
    if (spanned > 0)
      explanation_.emplace_back(
          "measured collectives",
          fmt::format("profile {}: {} NCCL entr{}; a collective of the same op, group size "
                      "and node span takes an entry's time when its bytes match, else the "
                      "nearest entry's bus bandwidth within {}x of its size, in place of the "
                      "simulator's plan (the lines below name each entry used)",
                      name, spanned, spanned == 1 ? "y" : "ies", kNearestFactor));
    if (unspanned > 0)
      explanation_.emplace_back(
          "measured collectives",
          fmt::format("profile {}: {} NCCL entr{} without a node span, not used: the trace "
                      "records no Process Group Ranks (a send/recv: no distributedInfo.rank "
                      "or peer rank) or the profile was calibrated without --gpus-per-node, "
                      "and a group's time depends on the nodes it spans",
                      name, unspanned, unspanned == 1 ? "y" : "ies"));
    has_collectives_ = spanned > 0;
    description_ = "profile " + name + ":";
    for (const auto& [cls, src] : explanation_) {
      if (cls == "projected") continue;  // said once, below
      const bool from_profile = src.rfind("profile ", 0) == 0;
      description_ += fmt::format(" {} from {};", cls, from_profile ? "profile" : "roofline");
    }
    description_.pop_back();
    if (!p.projected.empty()) description_ += "; " + p.projected.front();
    // Collectives are not the compute model's, but --explain says where their curve comes from.
    const CollectiveFit* ar = node_all_reduce(p, s.cluster.gpus_per_node);
    const auto curve = ar ? bus_bandwidth_curve(*ar) : std::vector<std::pair<Bytes, double>>{};
    explanation_.emplace_back(
        "intra-node collectives",
        curve.size() >= 2
            ? fmt::format("profile {} all_reduce over {} GPUs: bus-bandwidth curve from {} sizes "
                          "({} to {}); its peak efficiency from the system preset",
                          name, ar->gpus, curve.size(), format_bytes(curve.front().first),
                          format_bytes(curve.back().first))
            : fmt::format("system preset's bus-bandwidth curve (profile has no single-node "
                          "all_reduce over {} GPUs with 2 sizes of 1 MiB or more)",
                          s.cluster.gpus_per_node));
    const CollectiveFit* fab = fabric_all_reduce(p, s.cluster.gpus_per_node);
    const std::optional<double> eff = fab ? fabric_efficiency(*fab, s.cluster) : std::nullopt;
    explanation_.emplace_back(
        "inter-node collectives",
        eff ? fmt::format("profile {} all_reduce over {} GPUs on {} nodes: NIC efficiency {:.3f} "
                          "= its peak bus bandwidth / ({} NICs x {:.1f} GB/s), at most 1",
                          name, fab->gpus, fab->nodes, *eff, s.cluster.inter_node.nics_per_node,
                          s.cluster.inter_node.nic_bandwidth.value() / 1e9)
            : fmt::format("system preset's NIC efficiency {:.3f} (profile has no all_reduce "
                          "across nodes of {} GPUs)",
                          s.cluster.inter_node.efficiency, s.cluster.gpus_per_node));
    // Parameters fitted to measured runs replace the figures the lines above name.
    if (!p.parameters.empty()) {
      std::string list;
      for (const RunParameter& x : p.parameters) {
        list += fmt::format("{}{} {:.4g} (was {:.4g}{})", list.empty() ? "" : ", ", x.key, x.value,
                            x.start, x.at_bound ? ", on a bound" : "");
      }
      const auto runs = std::count_if(p.inputs.begin(), p.inputs.end(),
                                      [](const InputProvenance& in) { return in.kind == "run"; });
      explanation_.emplace_back(
          "fitted parameters",
          fmt::format("profile {}: {}; fitted to {} measured runs, in place of the scenario's "
                      "values wherever a line above uses them",
                      name, list, runs));
    }
  }

  Seconds op_time(const Op& op, Pass pass) const override {
    const bool fwd = pass == Pass::forward;
    const double bytes = fwd ? (op.fwd_read + op.fwd_written).value()
                             : (op.bwd_read + op.bwd_written).value();
    const double flops = (fwd ? op.fwd_flops : op.bwd_flops).value();
    double t = 0;
    if (const std::optional<double> m = measured_time(op, pass, flops, bytes)) {
      t = *m;
    } else {
      const std::optional<Seconds> f = fitted_time(op, pass, flops, bytes);
      if (!f) return roofline_->op_time(op, pass);
      t = f->value();
    }
    const double aux = (fwd ? op.aux_fwd_bytes : op.aux_bwd_bytes).value();
    if (aux > 0) {
      double aux_t = 0;
      if (other_) {
        aux_t = memory_time(*other_, aux);
      } else {
        Op a;
        a.kind = OpKind::elementwise;
        a.fwd_read = Bytes(aux);
        aux_t = roofline_->op_time(a, Pass::forward).value();
      }
      t = std::max(t, floor_) + std::max(aux_t, floor_);
    }
    return Seconds(std::max(t, floor_));
  }

  Seconds optimizer_time(double params) const override { return roofline_->optimizer_time(params); }
  Seconds optimizer_time_per_tensor(const std::vector<double>& tensors) const override {
    return roofline_->optimizer_time_per_tensor(tensors);
  }

  std::optional<Seconds> collective_time(CollectiveOp op, int ranks, int nodes,
                                         Bytes size) const override {
    if (!has_collectives_) return std::nullopt;
    const double bytes = size.value();
    const std::string what = fmt::format("{} of {} over {} GPUs on {} node{}", to_string(op),
                                         format_bytes(size), ranks, nodes, nodes == 1 ? "" : "s");
    std::optional<std::size_t> near;
    double best = std::log(kNearestFactor) + 1e-12;
    for (std::size_t i = 0; i < measured_.size() && bytes > 0; ++i) {
      const MeasuredKernel& m = measured_[i];
      if (m.cls != "collective" || m.collective != op || m.ranks != ranks || m.nodes != nodes)
        continue;
      const double dist = std::abs(std::log(m.bytes / bytes));
      if (dist < best) best = dist, near = i;
    }
    const std::lock_guard<std::mutex> lock(mutex_);
    if (!near) {
      unmeasured_collectives_.insert(what);
      return std::nullopt;
    }
    // Same op and group size: the bus-bandwidth factor is the same, so the entry's bus
    // bandwidth at another size is t = bytes x t_e / bytes_e.
    const MeasuredKernel& m = measured_[*near];
    const bool exact = m.bytes == bytes;
    Use& u = used_[*near];
    u.modes.insert(exact ? "exact" : "rate-scaled");
    u.ops.insert(what);
    return Seconds(exact ? m.time.value() : bytes * m.time.value() / m.bytes);
  }

  std::string describe() const override { return description_; }
  double band_half_width() const override { return half_width_; }
  std::string band_basis() const override { return band_basis_; }
  std::vector<std::pair<std::string, std::string>> explain() const override {
    std::vector<std::pair<std::string, std::string>> out = explanation_;
    if (measured_.empty()) return out;
    const std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& [i, use] : used_) {
      const MeasuredKernel& m = measured_[i];
      std::string shape;
      if (m.cls == "gemm")
        shape =
            fmt::format("{} m={} n={} k={}", to_string(m.dtype), m.shape.m, m.shape.n, m.shape.k);
      else if (m.cls == "attention")
        shape = fmt::format("{} {} {:.6g} FLOP", to_string(m.dtype), m.pass, m.flops);
      else if (m.cls == "collective")
        shape =
            fmt::format("{} of {} over {} GPUs on {} node{}", to_string(m.collective),
                        format_bytes(Bytes(m.bytes)), m.ranks, m.nodes, m.nodes == 1 ? "" : "s");
      else
        shape = format_bytes(Bytes(m.bytes));
      std::string ops;
      for (const std::string& o : use.ops) ops += (ops.empty() ? "" : ", ") + o;
      std::string modes;
      for (const std::string& o : use.modes) modes += (modes.empty() ? "" : " and ") + o;
      out.emplace_back(
          fmt::format("measured {}", m.cls),
          fmt::format("{} kernel '{}' ({}) {}: {:.2f} us{}, {}; for {}", m.file, m.kernel,
                      m.op.empty() ? "no CPU op" : m.op, shape, m.time.value() * 1e6,
                      m.projection.empty() ? "" : " projected " + m.projection, modes, ops));
    }
    if (!unmeasured_.empty()) {
      std::string ops;
      for (const std::string& o : unmeasured_) ops += (ops.empty() ? "" : ", ") + o;
      out.emplace_back("not measured", ops +
                                           ": no measured entry of their class and size; "
                                           "timed by the lines above (fit or roofline)");
    }
    if (!unmeasured_collectives_.empty()) {
      std::string list;
      for (const std::string& c : unmeasured_collectives_) list += (list.empty() ? "" : "; ") + c;
      out.emplace_back(
          "collectives not measured",
          list + ": no NCCL entry of their op, group size and node span within " +
              fmt::format("{}x of their size; timed by the simulator's plan", kNearestFactor));
    }
    return out;
  }

 private:
  struct Use {
    std::set<std::string> modes;  // "exact", "rate-scaled"
    std::set<std::string> ops;    // "attn.qkv forward"
  };

  void record(std::size_t entry, bool exact, const Op& op, Pass pass) const {
    const std::lock_guard<std::mutex> lock(mutex_);
    Use& u = used_[entry];
    u.modes.insert(exact ? "exact" : "rate-scaled");
    u.ops.insert(op.name + (pass == Pass::forward ? " fwd" : " bwd"));
  }
  void record_unmeasured(const Op& op, Pass pass) const {
    const std::lock_guard<std::mutex> lock(mutex_);
    unmeasured_.insert(op.name + (pass == Pass::forward ? " fwd" : " bwd"));
  }

  // The time of a GEMM of `flops` matching `key` (a null key: no shape known): an exact
  // entry's, else the rate of the entry of the nearest FLOPs within kNearestFactor.
  std::optional<std::pair<double, std::size_t>> measured_gemm(Dtype d, double flops,
                                                              const GemmKey* key,
                                                              bool* exact) const {
    std::optional<std::size_t> near;
    double best = std::log(kNearestFactor) + 1e-12;
    for (std::size_t i = 0; i < measured_.size(); ++i) {
      const MeasuredKernel& m = measured_[i];
      if (m.cls != "gemm" || m.dtype != d) continue;
      if (key && matches(m.shape, *key)) {
        *exact = true;
        return std::pair{m.time.value(), i};
      }
      const double dist = std::abs(std::log(m.flops / flops));
      if (dist < best) best = dist, near = i;
    }
    if (!near) return std::nullopt;
    *exact = false;
    const MeasuredKernel& m = measured_[*near];
    return std::pair{flops * m.time.value() / m.flops, *near};
  }

  // The op's time from the profile's measured kernels, or none.
  std::optional<double> measured_time(const Op& op, Pass pass, double flops, double bytes) const {
    if (measured_.empty() || flops < 0) return std::nullopt;
    const bool fwd = pass == Pass::forward;
    switch (op.kind) {
      case OpKind::gemm:
      case OpKind::router:
      case OpKind::conv: {
        const Dtype d = op.high_precision ? attn_dtype_ : gemm_dtype_;
        const double g = op.gemm_groups;
        const double per = op.fwd_flops.value() / g;  // one forward GEMM, 2 M K N
        const double K = op.weight_k, N = op.weight_n;
        const double M = K > 0 && N > 0 ? per / (2 * K * N) : 0;
        const bool shaped = is_whole(M) && is_whole(K) && is_whole(N);
        // Forward (M, N; k = K); backward data gradient (M, K; k = N) and weight gradient
        // (N, K; k = M), each of half the backward FLOPs.
        std::vector<std::pair<GemmKey, double>> gemms;
        if (fwd) {
          gemms.push_back({{K, M, N}, flops / g});
        } else {
          gemms.push_back({{N, M, K}, flops / (2 * g)});
          gemms.push_back({{M, N, K}, flops / (2 * g)});
        }
        double t = 0;
        std::vector<std::pair<std::size_t, bool>> uses;
        for (const auto& [key, f] : gemms) {
          bool exact = false;
          const auto r = measured_gemm(d, f, shaped ? &key : nullptr, &exact);
          if (!r) {
            record_unmeasured(op, pass);
            return std::nullopt;
          }
          t += r->first;
          uses.emplace_back(r->second, exact);
        }
        bool all_exact = true;
        for (const auto& [i, exact] : uses) {
          record(i, exact, op, pass);
          all_exact = all_exact && exact;
        }
        // An odd dimension: a kernel measured at this very shape ran cuBLAS's alignment-1
        // kernels already; one scaled from another shape's rate takes the roofline's floor
        // (max, so a measured alignment-1 neighbour is not counted twice).
        if (!all_exact) return unaligned_gemm_time(op, flops, g * t, unaligned_rate_);
        return g * t;
      }
      case OpKind::attention: {
        if (!is_op(op.name, "attn.core")) {
          record_unmeasured(op, pass);
          return std::nullopt;
        }
        // The entry's FLOPs are the forward's full product, for either pass.
        const double f = op.fwd_flops.value();
        const std::string p = fwd ? "forward" : "backward";
        std::optional<std::size_t> near;
        double best = std::log(kNearestFactor) + 1e-12;
        for (std::size_t i = 0; i < measured_.size(); ++i) {
          const MeasuredKernel& m = measured_[i];
          if (m.cls != "attention" || m.dtype != attn_dtype_ || m.pass != p) continue;
          const double dist = std::abs(std::log(m.flops / f));
          if (dist < best) best = dist, near = i;
        }
        if (!near || f <= 0) {
          record_unmeasured(op, pass);
          return std::nullopt;
        }
        const MeasuredKernel& m = measured_[*near];
        const bool exact = std::abs(m.flops - f) <= 1e-6 * f;
        record(*near, exact, op, pass);
        return exact ? m.time.value() : f * m.time.value() / m.flops;
      }
      case OpKind::norm:
      case OpKind::softmax:
      case OpKind::elementwise: {
        const std::string cls = to_string(op.kind);
        std::optional<std::size_t> near;
        double best = std::log(kNearestFactor) + 1e-12;
        for (std::size_t i = 0; i < measured_.size(); ++i) {
          const MeasuredKernel& m = measured_[i];
          if (m.cls != cls || bytes <= 0) continue;
          const double dist = std::abs(std::log(m.bytes / bytes));
          if (dist < best) best = dist, near = i;
        }
        if (!near) {
          record_unmeasured(op, pass);
          return std::nullopt;
        }
        const MeasuredKernel& m = measured_[*near];
        const bool exact = m.bytes == bytes;
        record(*near, exact, op, pass);
        return exact ? m.time.value() : bytes * m.time.value() / m.bytes;
      }
      default:
        record_unmeasured(op, pass);
        return std::nullopt;
    }
  }

  // The op's time from the profile's fitted families, or none (the roofline's).
  std::optional<Seconds> fitted_time(const Op& op, Pass pass, double flops, double bytes) const {
    const bool fwd = pass == Pass::forward;
    double t = 0;
    switch (op.kind) {
      case OpKind::gemm:
      case OpKind::router:
      case OpKind::conv:
      {
        // A GEMM the fp8 recipe keeps in 16 bits takes the bf16 fit (attention's).
        const std::optional<GemmFit>& fit = op.high_precision ? attn_gemm_ : gemm_;
        if (!fit) return std::nullopt;
        // A grouped GEMM: each expert's GEMM at its own size on the fit.
        const double g = op.gemm_groups;
        if (fwd) {
          // Row-wise fp8, MXFP8: the forward GEMM at a fraction of the fitted fp8 rate.
          t = g * gemm_time(*fit, flops / g, bytes / g, fwd) / op.fwd_rate_factor;
        } else if (op.wgrad_high_precision) {
          // rowwise_gw_hp: the data gradient on the fp8 fit, the weight gradient on bf16's.
          if (!attn_gemm_) return std::nullopt;
          const double f = flops / 2 / g, b = bytes / 2 / g;
          t = g * (gemm_time(*fit, f, b, true) + gemm_time(*attn_gemm_, f, b, true));
        } else {
          // MXFP8: the gradient GEMMs at a fraction of the fitted fp8 rate.
          t = g * gemm_time(*fit, flops / g, bytes / g, fwd) / op.bwd_rate_factor;
        }
        // An odd dimension: the fitted families are the aligned GEMMs' (as the roofline's
        // plateau), so the same alignment-1 floor.
        t = unaligned_gemm_time(op, flops, t, unaligned_rate_);
        break;
      }
      case OpKind::attention:
        if (is_op(op.name, "attn.core") || !attn_gemm_) return std::nullopt;
        // The fitted family is the aligned GEMMs': an odd head dimension takes the
        // alignment-1 floor, as a linear layer's GEMM does.
        t = unaligned_gemm_time(op, flops, gemm_time(*attn_gemm_, flops, bytes, fwd),
                                unaligned_rate_);
        break;
      case OpKind::norm:
      case OpKind::softmax:
        if (!rows_) return std::nullopt;
        t = memory_time(*rows_, bytes);
        break;
      default:
        if (!other_) return std::nullopt;
        t = memory_time(*other_, bytes);
        break;
    }
    return Seconds(t);
  }

  static double gemm_time(const GemmFit& g, double flops, double bytes, bool fwd) {
    if (flops <= 0) return 0;
    if (fwd) return flops / g.rate_at(Flop(flops), Bytes(bytes)).value();
    return 2 * (flops / 2) / g.rate_at(Flop(flops / 2), Bytes(bytes / 2)).value();
  }
  static double memory_time(const MemoryFit& m, double bytes) {
    return m.alpha.value() + bytes / m.bandwidth.value();
  }

  std::unique_ptr<ComputeModel> roofline_;
  std::optional<GemmFit> gemm_, attn_gemm_;
  double unaligned_rate_ = 0;  // GEMMs with an odd dimension (unaligned_gemm_rate; 0: none)
  std::optional<MemoryFit> rows_, other_;
  double floor_ = 0, roofline_floor_ = 0;
  std::vector<std::pair<std::string, std::string>> explanation_;
  std::string description_;
  Dtype gemm_dtype_ = Dtype::bf16, attn_dtype_ = Dtype::bf16;
  std::vector<MeasuredKernel> measured_;
  double half_width_ = 0;
  std::string band_basis_;
  mutable std::mutex mutex_;
  mutable std::map<std::size_t, Use> used_;
  mutable std::set<std::string> unmeasured_;
  mutable std::set<std::string> unmeasured_collectives_;
  bool has_collectives_ = false;  // measured NCCL entries with a node span
};

}  // namespace

std::unique_ptr<ComputeModel> make_profile_model(const Scenario& s, const Profile& p,
                                                 const std::string& name) {
  return std::make_unique<ProfileModel>(s, p, name);
}

namespace {

// The profile the scenario names, read and checked against its GPU; none without one.
std::optional<Profile> scenario_profile(const Scenario& s) {
  if (!s.cluster.calibration) return std::nullopt;
  if (!default_env().is_regular_file(*s.cluster.calibration)) {
    throw InputError(s.where("cluster.calibration"), "cluster.calibration", *s.cluster.calibration,
                     "cannot open the calibration profile (paths are relative to the scenario "
                     "file)");
  }
  return project_profile(s, read_profile_file(*s.cluster.calibration));
}

std::unique_ptr<ComputeModel> model_from(const Scenario& s, const std::optional<Profile>& p) {
  return p ? make_profile_model(s, *p, *s.cluster.calibration) : make_roofline_model(s);
}

ClusterSpec cluster_from(const Scenario& s, const std::optional<Profile>& p) {
  ClusterSpec c = s.cluster;
  if (!p) return c;
  if (const CollectiveFit* ar = node_all_reduce(*p, c.gpus_per_node)) {
    auto curve = bus_bandwidth_curve(*ar);
    if (curve.size() >= 2) c.intra_node.bus_bandwidth_curve = std::move(curve);
  }
  if (const CollectiveFit* fab = fabric_all_reduce(*p, c.gpus_per_node))
    if (const auto eff = fabric_efficiency(*fab, c)) c.inter_node.efficiency = *eff;
  // Fitted parameters go over everything the presets and the families set.
  double slowdown = s.simulation.compute_slowdown;
  apply_run_parameters(p->parameters, *s.cluster.calibration, c, slowdown);
  return c;
}

// The compute model on `cluster` (cluster_from's): with fitted parameters, built for the
// scenario with the GPU's fitted fractions, as the model reads them from its scenario.
std::unique_ptr<ComputeModel> fitted_model_from(const Scenario& s, const std::optional<Profile>& p,
                                                const ClusterSpec& cluster) {
  if (!p || p->parameters.empty()) return model_from(s, p);
  Scenario fitted = s;
  fitted.cluster.gpu = cluster.gpu;
  return model_from(fitted, p);
}

// The compute slowdown: the profile's fitted one, else the scenario's.
double slowdown_from(const Scenario& s, const std::optional<Profile>& p) {
  double slowdown = s.simulation.compute_slowdown;
  if (!p) return slowdown;
  ClusterSpec c = s.cluster;
  apply_run_parameters(p->parameters, *s.cluster.calibration, c, slowdown);
  return slowdown;
}

}  // namespace

std::unique_ptr<ComputeModel> make_compute_model(const Scenario& s) {
  const std::optional<Profile> p = scenario_profile(s);
  return fitted_model_from(s, p, cluster_from(s, p));
}

Hardware resolve_hardware(const Scenario& s) {
  const std::optional<Profile> p = scenario_profile(s);
  Hardware h;
  h.cluster = cluster_from(s, p);
  h.compute_slowdown = slowdown_from(s, p);
  h.model = fitted_model_from(s, p, h.cluster);
  return h;
}

ClusterSpec calibrated_cluster(const Scenario& s) { return cluster_from(s, scenario_profile(s)); }

std::string render_explanation(const ComputeModel& m) {
  std::string o = "\nexplain (what times each op class)\n";
  for (const auto& [cls, src] : m.explain()) o += fmt::format("  {:<25}{}\n", cls, src);
  return o;
}

}  // namespace orrery
