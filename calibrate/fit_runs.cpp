#include "calibrate/fit_runs.h"

#include <fmt/format.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <set>

#include "calibrate/profile_model.h"
#include "core/error.h"
#include "simulator/predict.h"

namespace orrery {

namespace {

// Parameters move in u = (value - min) / (max - min), in [0, 1].
struct Space {
  std::vector<std::string> keys;
  std::vector<ParameterRange> ranges;
  double value(std::size_t j, double u) const {
    return ranges[j].min + u * (ranges[j].max - ranges[j].min);
  }
  double unit(std::size_t j, double v) const {
    const double u = (v - ranges[j].min) / (ranges[j].max - ranges[j].min);
    return std::clamp(u, 0.0, 1.0);
  }
};

class Evaluator {
 public:
  Evaluator(const std::vector<Scenario>& runs, const Space& space, int& count)
      : runs_(runs), space_(space), count_(count) {}

  double predict_one(std::size_t i, const Eigen::VectorXd& u) const {
    Scenario s = runs_[i];
    for (std::size_t j = 0; j < space_.keys.size(); ++j)
      set_run_parameter(s, space_.keys[j], space_.value(j, u[static_cast<Eigen::Index>(j)]));
    ++count_;
    return metric_value(predict(s).step, s, s.measured->metric);
  }
  // log(predicted / measured) of the runs `which`.
  Eigen::VectorXd residuals(const std::vector<std::size_t>& which, const Eigen::VectorXd& u) const {
    Eigen::VectorXd r(static_cast<Eigen::Index>(which.size()));
    for (std::size_t k = 0; k < which.size(); ++k) {
      r[static_cast<Eigen::Index>(k)] =
          std::log(predict_one(which[k], u) / runs_[which[k]].measured->value);
    }
    return r;
  }

 private:
  const std::vector<Scenario>& runs_;
  const Space& space_;
  int& count_;
};

// Levenberg-Marquardt on the box [0, 1]^k: the Jacobian by forward differences (1e-3 of
// each range, backward at the upper end); a parameter on a bound that the gradient pushes
// outward is held there for the step (projected, active-set); steps are clamped into the
// box and accepted only when they lower the sum of squares. Stops when a step gains less
// than 1e-10 in the sum of squared log errors, moves less than 1e-6 of a range, or after
// 30 steps.
Eigen::VectorXd least_squares(const Evaluator& ev, const std::vector<std::size_t>& which,
                              Eigen::VectorXd u) {
  const Eigen::Index k = u.size();
  constexpr double kStep = 1e-3;
  Eigen::VectorXd r = ev.residuals(which, u);
  double cost = r.squaredNorm();
  double lambda = 1e-3;
  for (int iter = 0; iter < 30 && cost > 1e-20; ++iter) {
    Eigen::MatrixXd J(r.size(), k);
    for (Eigen::Index j = 0; j < k; ++j) {
      Eigen::VectorXd v = u;
      const double h = u[j] + kStep <= 1.0 ? kStep : -kStep;
      v[j] += h;
      J.col(j) = (ev.residuals(which, v) - r) / h;
    }
    const Eigen::VectorXd g = J.transpose() * r;
    std::vector<Eigen::Index> free;
    for (Eigen::Index j = 0; j < k; ++j)
      if (!((u[j] <= 0.0 && g[j] > 0) || (u[j] >= 1.0 && g[j] < 0))) free.push_back(j);
    if (free.empty()) break;
    const auto f = static_cast<Eigen::Index>(free.size());
    Eigen::MatrixXd Jf(r.size(), f);
    Eigen::VectorXd gf(f);
    for (Eigen::Index a = 0; a < f; ++a) {
      Jf.col(a) = J.col(free[static_cast<std::size_t>(a)]);
      gf[a] = g[free[static_cast<std::size_t>(a)]];
    }
    const Eigen::MatrixXd A = Jf.transpose() * Jf;
    bool accepted = false;
    for (int tries = 0; tries < 8 && !accepted; ++tries) {
      Eigen::MatrixXd M = A;
      for (Eigen::Index a = 0; a < f; ++a) M(a, a) += lambda * (A(a, a) + 1e-9);
      const Eigen::VectorXd step = M.ldlt().solve(-gf);
      Eigen::VectorXd next = u;
      for (Eigen::Index a = 0; a < f; ++a) {
        const Eigen::Index j = free[static_cast<std::size_t>(a)];
        next[j] = std::clamp(u[j] + step[a], 0.0, 1.0);
      }
      const Eigen::VectorXd rn = ev.residuals(which, next);
      const double c = rn.squaredNorm();
      if (c < cost) {
        const double moved = (next - u).cwiseAbs().maxCoeff();
        const double gain = cost - c;
        u = next;
        r = rn;
        cost = c;
        lambda = std::max(lambda / 3, 1e-9);
        accepted = true;
        if (moved < 1e-6 || gain < 1e-10) return u;
      } else {
        lambda *= 8;
      }
    }
    if (!accepted) break;
  }
  return u;
}

double signed_pct(double predicted, double measured) {
  return 100.0 * (predicted - measured) / measured;
}

std::string fmt_value(double v) { return fmt::format("{:.4g}", v); }

}  // namespace

bool looks_like_scenario(const std::string& text) {
  if (text.find("orrery-measurements") != std::string::npos) return false;
  for (const char* key : {"cluster:", "model:", "name:"}) {
    const std::string k(key);
    if (text.compare(0, k.size(), k) == 0 || text.find("\n" + k) != std::string::npos) return true;
  }
  return false;
}

RunFit fit_runs(const std::vector<Scenario>& runs, const std::vector<std::string>& only) {
  if (runs.empty()) {
    throw InputError({"orrery calibrate", std::nullopt}, "", "", "no run given");
  }
  for (const Scenario& s : runs) {
    if (!s.measured) {
      throw InputError({s.file, std::nullopt}, "measured", "",
                       "missing key: a run to calibrate on needs a measured: block (metric, "
                       "and value or log)");
    }
    if (!s.measured->rate) {
      throw InputError(s.where("measured"), "measured.metric", "",
                       "missing key: a run to calibrate on needs a measured rate (its memory "
                       "figure alone fits no efficiency)");
    }
  }
  const Scenario& first = runs.front();
  for (const Scenario& s : runs) {
    if (!same_gpu(s.cluster.gpu.name, first.cluster.gpu.name)) {
      throw InputError({s.file, std::nullopt}, "cluster.gpu", s.cluster.gpu.name,
                       fmt::format("the runs are on different GPUs ({} in {}): one profile "
                                   "holds one GPU's parameters",
                                   first.cluster.gpu.name, first.file));
    }
    if (s.cluster.calibration != first.cluster.calibration) {
      throw InputError({s.file, std::nullopt}, "cluster.calibration",
                       s.cluster.calibration.value_or("(none)"),
                       fmt::format("the runs name different calibration profiles ({} in {})",
                                   first.cluster.calibration.value_or("none"), first.file));
    }
  }
  RunFit out;
  if (first.cluster.calibration) {
    out.profile = read_profile_file(*first.cluster.calibration);
    if (!out.profile.parameters.empty()) {
      throw InputError({first.file, std::nullopt}, "cluster.calibration",
                       *first.cluster.calibration,
                       "the profile already holds parameters fitted to runs: calibrate on the "
                       "runs against a profile without them");
    }
  }

  // Candidate keys in one canonical order: run_parameter_keys() of each run, merged.
  std::vector<std::string> candidates;
  {
    std::set<std::string> seen;
    std::vector<std::string> all;
    for (const Scenario& s : runs)
      for (const std::string& k : run_parameter_keys(s))
        if (seen.insert(k).second) all.push_back(k);
    // gemm keys first (by name), then the rest in run_parameter_keys() order.
    std::stable_sort(all.begin(), all.end(), [](const std::string& a, const std::string& b) {
      const bool ga = a.find("gemm_efficiency") != std::string::npos;
      const bool gb = b.find("gemm_efficiency") != std::string::npos;
      if (ga != gb) return ga;
      return ga && a < b;
    });
    for (const std::string& k : only) {
      if (std::find(all.begin(), all.end(), k) == all.end()) {
        std::string known;
        for (const auto& x : all) known += (known.empty() ? "" : ", ") + x;
        throw InputError({"orrery calibrate", std::nullopt}, "--fit", k,
                         "not a parameter these runs' predictions read; they read: " + known);
      }
    }
    for (const std::string& k : all)
      if (only.empty() || std::find(only.begin(), only.end(), k) != only.end())
        candidates.push_back(k);
  }

  // Start from the first run's values (its presets'), inside the ranges.
  Space all_space;
  std::vector<double> start;
  for (const std::string& k : candidates) {
    const ParameterRange r = *run_parameter_range(k);
    all_space.keys.push_back(k);
    all_space.ranges.push_back(r);
    start.push_back(std::clamp(run_parameter_value(first, k), r.min, r.max));
  }

  std::vector<std::size_t> every(runs.size());
  for (std::size_t i = 0; i < runs.size(); ++i) every[i] = i;
  Eigen::VectorXd u0(static_cast<Eigen::Index>(candidates.size()));
  for (std::size_t j = 0; j < candidates.size(); ++j)
    u0[static_cast<Eigen::Index>(j)] = all_space.unit(j, start[j]);

  // A candidate no prediction depends on is left as it is: a step of a tenth of its
  // range that moves no run's prediction by 0.1 % says nothing about it.
  Space space;
  std::vector<double> kept_start;
  {
    const Evaluator ev(runs, all_space, out.evaluations);
    const Eigen::VectorXd r0 = ev.residuals(every, u0);
    for (std::size_t j = 0; j < candidates.size(); ++j) {
      Eigen::VectorXd v = u0;
      const auto jj = static_cast<Eigen::Index>(j);
      v[jj] += v[jj] + 0.1 <= 1.0 ? 0.1 : -0.1;
      const double moved = (ev.residuals(every, v) - r0).cwiseAbs().maxCoeff();
      if (moved < std::log1p(1e-3)) {
        out.not_fitted.push_back(fmt::format(
            "{}: no run's prediction moves by 0.1 % when it moves by a tenth of its range "
            "(largest {:.3f} %); left at {}",
            candidates[j], 100 * std::expm1(moved), fmt_value(start[j])));
        continue;
      }
      space.keys.push_back(candidates[j]);
      space.ranges.push_back(all_space.ranges[j]);
      kept_start.push_back(start[j]);
    }
  }
  const std::size_t k = space.keys.size();
  if (k == 0) {
    throw InputError({"orrery calibrate", std::nullopt}, "", "",
                     "no parameter to fit: no run's prediction depends on any of " +
                         std::to_string(candidates.size()) + " candidates");
  }
  if (runs.size() < k + 1) {
    std::string keys;
    for (const auto& x : space.keys) keys += (keys.empty() ? "" : ",") + x;
    throw InputError({"orrery calibrate", std::nullopt}, "", "",
                     fmt::format("{} run{} given; {} parameters need at least {} (each "
                                 "leave-one-run-out fit needs as many runs as parameters): give "
                                 "more runs or fewer parameters with --fit (these runs move: {})",
                                 runs.size(), runs.size() == 1 ? "" : "s", k, k + 1, keys));
  }

  const Evaluator ev(runs, space, out.evaluations);
  Eigen::VectorXd u(static_cast<Eigen::Index>(k));
  for (std::size_t j = 0; j < k; ++j)
    u[static_cast<Eigen::Index>(j)] = space.unit(j, kept_start[j]);
  const Eigen::VectorXd before = u;
  const Eigen::VectorXd fitted = least_squares(ev, every, u);

  for (std::size_t i = 0; i < runs.size(); ++i) {
    RunFitCase c;
    c.file = runs[i].file;
    c.name = runs[i].name;
    c.metric = runs[i].measured->metric;
    c.measured = runs[i].measured->value;
    c.before = ev.predict_one(i, before);
    c.predicted = ev.predict_one(i, fitted);
    // Leave run i out: fit the others, from the full fit, and predict run i.
    std::vector<std::size_t> others;
    for (std::size_t o = 0; o < runs.size(); ++o)
      if (o != i) others.push_back(o);
    c.held_out = ev.predict_one(i, least_squares(ev, others, fitted));
    out.runs.push_back(c);
  }
  for (std::size_t j = 0; j < k; ++j) {
    RunParameter p;
    p.key = space.keys[j];
    const double uj = fitted[static_cast<Eigen::Index>(j)];
    p.value = space.value(j, uj);
    p.start = kept_start[j];
    p.min = space.ranges[j].min;
    p.max = space.ranges[j].max;
    p.at_bound = uj <= 1e-6 || uj >= 1 - 1e-6;
    out.parameters.push_back(p);
  }

  out.profile.parameters = out.parameters;
  for (const RunFitCase& c : out.runs) {
    out.profile.inputs.push_back(
        {c.file, "run", first.cluster.gpu.name,
         fmt::format("{} measured {}, predicted {} before the fit, {} after ({:+.2f} %), {} "
                     "left out ({:+.2f} %)",
                     to_string(c.metric), fmt_value(c.measured), fmt_value(c.before),
                     fmt_value(c.predicted), signed_pct(c.predicted, c.measured),
                     fmt_value(c.held_out), signed_pct(c.held_out, c.measured))});
  }
  for (const std::string& n : out.not_fitted) out.profile.not_fitted.push_back(n);
  return out;
}

std::string render_run_fit(const RunFit& f) {
  std::string o = fmt::format(
      "parameters fitted to {} runs (least squares on log(predicted / "
      "measured), {} predictions)\n",
      f.runs.size(), f.evaluations);
  o += fmt::format("  {:<36}{:>9}{:>9}   {:<16}{}\n", "parameter", "fitted", "start", "range",
                   "at bound");
  for (const RunParameter& p : f.parameters) {
    o += fmt::format(
        "  {:<36}{:>9}{:>9}   {:<16}{}\n", p.key, fmt_value(p.value), fmt_value(p.start),
        fmt::format("[{}, {}]", fmt_value(p.min), fmt_value(p.max)), p.at_bound ? "yes" : "no");
  }
  for (const std::string& n : f.not_fitted) o += "  not fitted: " + n + "\n";
  o += fmt::format("\n  {:<30}{:<24}{:>10}{:>10}{:>10}{:>9}{:>12}{:>9}\n", "run", "metric",
                   "measured", "before", "fitted", "error", "left out", "error");
  double mean_before = 0, mean_fit = 0, mean_held = 0, max_held = 0;
  for (const RunFitCase& c : f.runs) {
    const double eb = signed_pct(c.before, c.measured);
    const double ef = signed_pct(c.predicted, c.measured);
    const double eh = signed_pct(c.held_out, c.measured);
    o += fmt::format("  {:<30}{:<24}{:>10}{:>10}{:>10}{:>+8.1f}%{:>12}{:>+8.1f}%\n", c.name,
                     to_string(c.metric), fmt_value(c.measured), fmt_value(c.before),
                     fmt_value(c.predicted), ef, fmt_value(c.held_out), eh);
    mean_before += std::abs(eb);
    mean_fit += std::abs(ef);
    mean_held += std::abs(eh);
    max_held = std::max(max_held, std::abs(eh));
  }
  const double n = static_cast<double>(f.runs.size());
  o += fmt::format(
      "\n  mean |error|: before the fit {:.1f} %, fitted {:.1f} %, leave-one-run-out {:.1f} % "
      "(max {:.1f} %)\n",
      mean_before / n, mean_fit / n, mean_held / n, max_held);
  return o;
}

}  // namespace orrery
