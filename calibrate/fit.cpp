#include "calibrate/fit.h"

#include <fmt/format.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <map>

#include "core/error.h"

namespace orrery {

namespace {

double median_of(std::vector<double> v) {
  ORRERY_CHECK(!v.empty(), "median of nothing");
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

[[noreturn]] void too_few(const std::string& family, const std::string& what, std::size_t need,
                          std::size_t got, const std::string& unit) {
  throw InputError({"orrery calibrate", std::nullopt}, family, what,
                   fmt::format("too few points to fit this family and hold one out: it needs at "
                               "least {} {}, the inputs give {}",
                               need, unit, got));
}

// Samples at one size merged by their median time; ascending size.
std::vector<std::pair<double, double>> merge_by_size(const std::vector<CollectiveSample>& s) {
  std::map<double, std::vector<double>> by;
  for (const auto& x : s) by[x.size.value()].push_back(x.time.value());
  std::vector<std::pair<double, double>> out;
  for (const auto& [size, times] : by) out.emplace_back(size, median_of(times));
  return out;
}

// t = alpha + size * inv_beta minimizing sum ((pred - t) / t)^2; alpha >= 0.
std::pair<double, double> alpha_beta(const std::vector<std::pair<double, double>>& pts) {
  const Eigen::Index n = static_cast<Eigen::Index>(pts.size());
  Eigen::MatrixXd a(n, 2);
  Eigen::VectorXd b = Eigen::VectorXd::Ones(n);
  for (Eigen::Index i = 0; i < n; ++i) {
    const auto& [s, t] = pts[static_cast<std::size_t>(i)];
    a(i, 0) = 1.0 / t;
    a(i, 1) = s / t;
  }
  Eigen::Vector2d x = a.colPivHouseholderQr().solve(b);
  if (x(0) < 0 || x(1) <= 0) {
    // A negative latency is unphysical: the bandwidth-only fit through the origin.
    const double inv_beta = a.col(1).dot(b) / a.col(1).squaredNorm();
    x << 0.0, inv_beta;
  }
  return {x(0), x(1)};
}

template <class T>
std::vector<T> without(const std::vector<T>& v, std::size_t i) {
  std::vector<T> out = v;
  out.erase(out.begin() + static_cast<long>(i));
  return out;
}

struct GemmRoofs {
  double w = 0;                                  // memory roof, bytes/s
  std::vector<std::pair<double, double>> compute;  // (F, rate) ascending, non-decreasing
  std::vector<bool> memory_bound;
};

constexpr double kMemoryBoundWithin = 0.9;  // a point within 10 % of the memory roof
// A GEMM more than 10 % slower than one of no more FLOPs is a memory-roof candidate;
// within 10 % it is taken as the compute roof's noise (pooled by isotonic regression).
constexpr double kSlowerThanSize = 0.9;

GemmRoofs gemm_roofs(Dtype dtype, const std::vector<GemmSample>& s) {
  GemmRoofs r;
  std::vector<double> flops, rate, per_intensity;  // F, F / t, rate / (F / bytes)
  for (const auto& x : s) {
    flops.push_back(gemm_flops(x.shape));
    rate.push_back(flops.back() / x.time.value());
    per_intensity.push_back(rate.back() / (flops.back() / gemm_bytes(x.shape, dtype)));
  }
  // Candidates for the memory roof: points more than 10 % slower than a point of no more
  // FLOPs, which size alone cannot explain, that also move their bytes within 10 % of the
  // fastest any point moves them. A roof far under some point's bytes per second would call
  // that point impossible (it explains nothing), so a slow point that moves far fewer bytes
  // than the fastest is slow for another reason and stays on the compute roof: on the H200
  // sweep (calibrate/data/h200-20261204) the vocabulary GEMM 8192 x 128256 x 4096 at 703
  // TFLOP/s moves 263 GB/s where 1024^3 moves 1,017, and taken as the roof it had capped
  // every other shape, 1024^3 74 % under its measurement.
  double fastest_bytes = 0;
  for (double w : per_intensity) fastest_bytes = std::max(fastest_bytes, w);
  std::vector<bool> candidate(s.size(), false);
  for (std::size_t i = 0; i < s.size(); ++i)
    for (std::size_t j = 0; j < s.size(); ++j)
      if (j != i && flops[j] <= flops[i] && rate[i] < kSlowerThanSize * rate[j] &&
          per_intensity[i] >= kMemoryBoundWithin * fastest_bytes)
        candidate[i] = true;
  for (std::size_t i = 0; i < s.size(); ++i)
    if (candidate[i]) r.w = std::max(r.w, per_intensity[i]);
  std::map<double, std::vector<double>> by_flops;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const bool mb = candidate[i] && per_intensity[i] >= kMemoryBoundWithin * r.w;
    r.memory_bound.push_back(mb);
    if (!mb) by_flops[flops[i]].push_back(rate[i]);
  }
  // Pool adjacent violators: blocks of (sum of rates, count), merged while decreasing.
  std::vector<std::pair<double, double>> xs;
  for (const auto& [f, rates] : by_flops) {
    double sum = 0;
    for (double v : rates) sum += v;
    xs.emplace_back(f, sum / static_cast<double>(rates.size()));
  }
  struct Block { double sum, count; std::size_t first, last; };
  std::vector<Block> blocks;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    blocks.push_back({xs[i].second, 1.0, i, i});
    while (blocks.size() > 1 &&
           blocks[blocks.size() - 2].sum / blocks[blocks.size() - 2].count >
               blocks.back().sum / blocks.back().count) {
      Block b = blocks.back();
      blocks.pop_back();
      blocks.back().sum += b.sum;
      blocks.back().count += b.count;
      blocks.back().last = b.last;
    }
  }
  for (const auto& b : blocks)
    for (std::size_t i = b.first; i <= b.last; ++i) r.compute.emplace_back(xs[i].first, b.sum / b.count);
  return r;
}

// GemmFit's rate of shape `s` under the roofs `r` (calibrate/families.h).
double gemm_rate(const GemmRoofs& r, Dtype dtype, const GemmShape& s) {
  return gemm_roofline_rate(r.w, r.compute, gemm_flops(s), gemm_bytes(s, dtype));
}

}  // namespace

HeldOutSummary summarize(const std::vector<double>& errors) {
  HeldOutSummary s;
  for (double e : errors) {
    s.max_abs = std::max(s.max_abs, std::abs(e));
    s.mean_abs += std::abs(e);
  }
  s.points = static_cast<int>(errors.size());
  if (!errors.empty()) s.mean_abs /= static_cast<double>(errors.size());
  return s;
}

CollectiveFit fit_collective(CollectiveOp op, int gpus, int nodes,
                             const std::vector<CollectiveSample>& samples) {
  const auto pts = merge_by_size(samples);
  const std::string what = fmt::format("{} on {} GPUs, {} node{}", to_string(op), gpus, nodes,
                                       nodes == 1 ? "" : "s");
  if (pts.size() < 3) too_few("collectives", what, 3, pts.size(), "distinct message sizes");
  CollectiveFit f;
  f.op = op;
  f.gpus = gpus;
  f.nodes = nodes;
  const auto [alpha, inv_beta] = alpha_beta(pts);
  f.alpha = Seconds(alpha);
  f.beta = Bandwidth(1.0 / inv_beta);
  for (std::size_t i = 0; i < pts.size(); ++i) {
    const auto rest = without(pts, i);
    const auto [s, t] = pts[i];
    // busbw error = measured time / predicted time - 1.
    f.points.push_back({s, Seconds(t), t / collective_curve_time(rest, s) - 1.0});
    const auto [a, ib] = alpha_beta(rest);
    f.alpha_beta_held_out.push_back(t / (a + s * ib) - 1.0);
  }
  for (const auto& x : samples) f.sources.push_back(x.source);
  std::sort(f.sources.begin(), f.sources.end());
  f.sources.erase(std::unique(f.sources.begin(), f.sources.end()), f.sources.end());
  return f;
}

GemmFit fit_gemm(Dtype dtype, const std::vector<GemmSample>& samples) {
  // One sample per shape: repeated shapes are merged by their median time.
  std::map<std::tuple<std::int64_t, std::int64_t, std::int64_t>, std::vector<double>> by;
  for (const auto& s : samples) by[{s.shape.m, s.shape.n, s.shape.k}].push_back(s.time.value());
  std::vector<GemmSample> merged;
  for (const auto& [k, times] : by) {
    merged.push_back({{std::get<0>(k), std::get<1>(k), std::get<2>(k)}, Seconds(median_of(times)), ""});
  }
  if (merged.size() < 3) too_few("gemm", to_string(dtype), 3, merged.size(), "distinct shapes");
  const GemmRoofs all = gemm_roofs(dtype, merged);
  GemmFit f;
  f.dtype = dtype;
  f.memory_roof = Bandwidth(all.w);
  f.compute_roof = all.compute;
  f.memory_bound = all.memory_bound;
  for (std::size_t i = 0; i < merged.size(); ++i) {
    const GemmShape& s = merged[i].shape;
    const double measured = gemm_flops(s) / merged[i].time.value();
    const GemmRoofs rest = gemm_roofs(dtype, without(merged, i));
    f.shapes.push_back(s);
    f.points.push_back({gemm_flops(s), merged[i].time, gemm_rate(rest, dtype, s) / measured - 1.0});
    f.in_sample_error.push_back(gemm_rate(all, dtype, s) / measured - 1.0);
  }
  return f;
}

MemoryFit fit_memory(const std::string& kernel, const std::vector<CollectiveSample>& samples) {
  const auto pts = merge_by_size(samples);
  if (pts.size() < 3) too_few("memory_bound", kernel, 3, pts.size(), "distinct sizes");
  MemoryFit f;
  f.kernel = kernel;
  const auto [alpha, inv_bw] = alpha_beta(pts);
  f.alpha = Seconds(alpha);
  f.bandwidth = Bandwidth(1.0 / inv_bw);
  for (std::size_t i = 0; i < pts.size(); ++i) {
    const auto [a, ib] = alpha_beta(without(pts, i));
    const auto [s, t] = pts[i];
    f.points.push_back({s, Seconds(t), t / (a + s * ib) - 1.0});
  }
  return f;
}

LaunchFit fit_launch(const std::vector<CollectiveSample>& samples) {
  if (samples.size() < 2) too_few("launch", "empty kernel", 2, samples.size(), "measurements");
  LaunchFit f;
  std::vector<double> t;
  for (const auto& s : samples) t.push_back(s.time.value());
  f.overhead = Seconds(median_of(t));
  for (std::size_t i = 0; i < t.size(); ++i) {
    f.points.push_back({0.0, Seconds(t[i]), median_of(without(t, i)) / t[i] - 1.0});
  }
  return f;
}

}  // namespace orrery
