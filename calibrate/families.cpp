#include "calibrate/families.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/measurement_file.h"

namespace orrery {

double pchip(const std::vector<double>& x, const std::vector<double>& y, double at) {
  const std::size_t n = x.size();
  ORRERY_CHECK(n >= 2 && y.size() == n, "pchip needs two points or more");
  std::vector<double> h(n - 1), d(n - 1), m(n, 0.0);
  for (std::size_t i = 0; i + 1 < n; ++i) {
    h[i] = x[i + 1] - x[i];
    ORRERY_CHECK(h[i] > 0, "pchip abscissae must ascend strictly");
    d[i] = (y[i + 1] - y[i]) / h[i];
  }
  for (std::size_t i = 1; i + 1 < n; ++i) {
    if (d[i - 1] * d[i] <= 0) continue;  // a local extremum: flat, keeps the shape
    const double w1 = 2 * h[i] + h[i - 1], w2 = h[i] + 2 * h[i - 1];
    m[i] = (w1 + w2) / (w1 / d[i - 1] + w2 / d[i]);
  }
  m[0] = d[0];
  m[n - 1] = d[n - 2];
  if (at <= x[0]) return y[0] + m[0] * (at - x[0]);
  if (at >= x[n - 1]) return y[n - 1] + m[n - 1] * (at - x[n - 1]);
  std::size_t i = 0;
  while (x[i + 1] < at) ++i;
  const double s = (at - x[i]) / h[i];
  const double h00 = 2 * s * s * s - 3 * s * s + 1, h10 = s * s * s - 2 * s * s + s;
  const double h01 = -2 * s * s * s + 3 * s * s, h11 = s * s * s - s * s;
  return h00 * y[i] + h10 * h[i] * m[i] + h01 * y[i + 1] + h11 * h[i] * m[i + 1];
}

double collective_curve_time(const std::vector<std::pair<double, double>>& pts, double size) {
  if (size <= pts.front().first) return pts.front().second;
  if (size >= pts.back().first) return pts.back().second * size / pts.back().first;
  std::vector<double> lx, ly;
  for (const auto& [s, t] : pts) {
    lx.push_back(std::log(s));
    ly.push_back(std::log(t));
  }
  return std::exp(pchip(lx, ly, std::log(size)));
}

Seconds CollectiveFit::time(Bytes size) const {
  std::vector<std::pair<double, double>> pts;
  for (const auto& p : points) pts.emplace_back(p.x, p.time.value());
  return Seconds(collective_curve_time(pts, size.value()));
}

Bandwidth CollectiveFit::busbw(Bytes size) const {
  return Bandwidth(size.value() / time(size).value() * busbw_factor(op, gpus));
}

double gemm_flops(const GemmShape& s) {
  return 2.0 * static_cast<double>(s.m) * static_cast<double>(s.n) * static_cast<double>(s.k);
}
double gemm_bytes(const GemmShape& s, Dtype dtype) {
  const double m = static_cast<double>(s.m), n = static_cast<double>(s.n),
               k = static_cast<double>(s.k);
  return gemm_input_bytes(dtype) * (m * k + k * n) + gemm_output_bytes(dtype) * m * n;
}

double gemm_roofline_rate(double memory_roof,
                          const std::vector<std::pair<double, double>>& compute_roof, double f,
                          double bytes) {
  // No memory-bound point measured: no memory roof.
  const double memory = memory_roof > 0 ? memory_roof * f / bytes : HUGE_VAL;
  if (compute_roof.empty()) return memory;
  double p = 0;
  const auto& c = compute_roof;
  if (f <= c.front().first) {
    p = c.front().second;
  } else if (f >= c.back().first) {
    p = c.back().second;
  } else {
    std::size_t j = 1;
    while (c[j].first < f) ++j;
    const double u = std::log(f / c[j - 1].first) / std::log(c[j].first / c[j - 1].first);
    p = c[j - 1].second + u * (c[j].second - c[j - 1].second);
  }
  return std::min(p, memory);
}

FlopRate GemmFit::rate(const GemmShape& s) const {
  return FlopRate(
      gemm_roofline_rate(memory_roof.value(), compute_roof, gemm_flops(s), gemm_bytes(s, dtype)));
}

Seconds GemmFit::time(const GemmShape& s) const { return Seconds(gemm_flops(s) / rate(s).value()); }

FlopRate GemmFit::rate_at(Flop flops, Bytes bytes) const {
  return FlopRate(
      gemm_roofline_rate(memory_roof.value(), compute_roof, flops.value(), bytes.value()));
}

}  // namespace orrery
