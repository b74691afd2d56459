#include "calibrate/profile_model.h"

#include <fmt/format.h>

#include "core/env.h"
#include "core/error.h"

#include <algorithm>
#include <map>
#include <cmath>
#include <optional>
#include <cctype>

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

void check_profile_gpu(const Scenario& s, const Profile& p) {
  if (!s.cluster.calibration) return;
  for (const InputProvenance& in : p.inputs) {
    if (in.gpu.empty() || same_gpu(in.gpu, s.cluster.gpu.name)) continue;
    throw InputError(s.where("cluster.calibration"), "cluster.calibration",
                     *s.cluster.calibration,
                     fmt::format("the profile was measured on '{}' (its input '{}'), but the "
                                 "scenario's GPU is '{}' (cluster.gpu): a profile times ops on "
                                 "the GPU it was measured on only",
                                 in.gpu, in.file, s.cluster.gpu.name));
  }
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

class ProfileModel final : public ComputeModel {
 public:
  ProfileModel(const Scenario& s, const Profile& p, const std::string& name)
      : roofline_(make_roofline_model(s)) {
    const Dtype d = compute_dtype(s.training.precision);
    const Dtype a = attention_dtype(s.training.precision);
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
    description_ = "profile " + name + ":";
    for (const auto& [cls, src] : explanation_) {
      const bool from_profile = src.rfind("profile ", 0) == 0;
      description_ += fmt::format(" {} from {};", cls, from_profile ? "profile" : "roofline");
    }
    description_.pop_back();
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
    switch (op.kind) {
      case OpKind::gemm:
      case OpKind::router:
      case OpKind::conv:
      {
        // A GEMM the fp8 recipe keeps in 16 bits takes the bf16 fit (attention's).
        const std::optional<GemmFit>& fit = op.high_precision ? attn_gemm_ : gemm_;
        if (!fit) return roofline_->op_time(op, pass);
        // A grouped GEMM: each expert's GEMM at its own size on the fit.
        const double g = op.gemm_groups;
        t = g * gemm_time(*fit, flops / g, bytes / g, fwd);
        break;
      }
      case OpKind::attention:
        if (op.name == "attn.core" || !attn_gemm_) return roofline_->op_time(op, pass);
        t = gemm_time(*attn_gemm_, flops, bytes, fwd);
        break;
      case OpKind::norm:
      case OpKind::softmax:
        if (!rows_) return roofline_->op_time(op, pass);
        t = memory_time(*rows_, bytes);
        break;
      default:
        if (!other_) return roofline_->op_time(op, pass);
        t = memory_time(*other_, bytes);
        break;
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

  std::string describe() const override { return description_; }
  std::vector<std::pair<std::string, std::string>> explain() const override {
    return explanation_;
  }

 private:
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
  std::optional<MemoryFit> rows_, other_;
  double floor_ = 0, roofline_floor_ = 0;
  std::vector<std::pair<std::string, std::string>> explanation_;
  std::string description_;
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
  Profile p = read_profile_file(*s.cluster.calibration);
  check_profile_gpu(s, p);
  return p;
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
