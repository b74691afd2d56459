// Fitted hardware models, each with its leave-one-out held-out error: the fit is redone
// without each measured point in turn and the left-out point predicted. A family with
// too few points to fit and hold one out is refused (InputError saying how many it
// needs and how many it got).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/units.h"

namespace orrery {

// A measured point of a family and the prediction for it by the family's model fitted
// without it. `held_out_error` is (predicted - measured) / measured of the family's
// headline figure (bus bandwidth for collectives, FLOP/s for GEMMs, bandwidth for
// memory-bound kernels, time for launch overhead).
struct HeldOutPoint {
  double x = 0;           // size in bytes (collectives, memory) or FLOPs (GEMM)
  Seconds time;           // measured
  double held_out_error = 0;
};

struct HeldOutSummary {
  double max_abs = 0, mean_abs = 0;  // fractions (0.05 = 5 %)
  int points = 0;
};
HeldOutSummary summarize(const std::vector<double>& errors);

// Collective time vs message size for one (op, ranks, nodes):
//   alpha-beta   t = alpha + size / beta, least squares in relative time error
//                (Hockney's model; beta is the algorithm bandwidth size / t at large sizes);
//   curve        log t as a monotone piecewise-cubic (Fritsch-Carlson PCHIP) function of
//                log size through the measured points: time never falls as the size grows,
//                and the curve follows NCCL's protocol and algorithm switches between
//                measured sizes instead of one alpha-beta line. Below the smallest size the
//                time of the smallest; above the largest, the largest size's bus bandwidth.
struct CollectiveFit {
  std::string op;
  int gpus = 0, nodes = 0;
  Seconds alpha;
  Bandwidth beta;
  std::vector<HeldOutPoint> points;             // sorted by size; held-out error of `curve`
  std::vector<double> alpha_beta_held_out;      // per point, same order
  std::vector<std::string> sources;             // input files, sorted
  Seconds time(Bytes size) const;               // the curve
  Bandwidth busbw(Bytes size) const;            // size / time x busbw_factor
};

struct CollectiveSample {
  Bytes size;
  Seconds time;
  std::string source;  // file:line
};
// Several samples at one size are combined by their median. Needs 3 distinct sizes.
CollectiveFit fit_collective(const std::string& op, int gpus, int nodes,
                             const std::vector<CollectiveSample>& samples);

// GEMM time vs shape for one dtype, a roofline whose two roofs are fitted:
//   rate(m, n, k) = min(P(F), W x I),  F = 2mnk,  I = F / bytes,
//   bytes = e_in (mk + kn) + e_out mn  (e_in: fp32/tf32 4, bf16/fp16 2, fp8 1 byte;
//   e_out: 4 for fp32/tf32, else 2: fp8 GEMMs write bf16).
// The memory roof W is fitted from the points that size alone cannot explain (more than
// 10 % slower than a GEMM of no more FLOPs): the largest rate / I among them; those within
// 10 % of it are memory-bound (no such point: no memory roof). The other points give the
// compute roof P(F): their rates made non-decreasing in F by isotonic regression (pool
// adjacent violators), interpolated linearly in log F, flat beyond the measured FLOPs.
// Needs 3 shapes.
struct GemmShape {
  std::int64_t m = 0, n = 0, k = 0;
};
struct GemmSample {
  GemmShape shape;
  Seconds time;
  std::string source;
};
struct GemmFit {
  std::string dtype;
  Bandwidth memory_roof;                         // W; 0 when no point is memory-bound
  std::vector<std::pair<double, double>> compute_roof;  // (FLOPs, FLOP/s), F ascending
  std::vector<GemmShape> shapes;                 // same order as points
  std::vector<bool> memory_bound;                // same order as points
  std::vector<HeldOutPoint> points;              // x = FLOPs; held-out error of the rate
  std::vector<double> in_sample_error;           // the fitted model at each point
  FlopRate rate(const GemmShape& s) const;
  Seconds time(const GemmShape& s) const;
  // The same roofline for a GEMM known by its FLOPs and the bytes it moves.
  FlopRate rate_at(Flop flops, Bytes bytes) const;
};
GemmFit fit_gemm(const std::string& dtype, const std::vector<GemmSample>& samples);

// Memory-bound kernel time vs bytes moved: t = alpha + bytes / bandwidth, least squares
// in relative time error. Needs 3 distinct sizes.
struct MemoryFit {
  std::string kernel;
  Seconds alpha;
  Bandwidth bandwidth;
  std::vector<HeldOutPoint> points;  // held-out error of the effective bandwidth bytes / t
};
MemoryFit fit_memory(const std::string& kernel, const std::vector<CollectiveSample>& samples);

// Launch overhead: the median of the measured empty-kernel medians. Needs 2.
struct LaunchFit {
  Seconds overhead;
  std::vector<HeldOutPoint> points;
};
LaunchFit fit_launch(const std::vector<CollectiveSample>& samples);

// Monotone piecewise-cubic Hermite interpolation (Fritsch & Carlson 1980, with the
// Fritsch-Butland harmonic-mean slopes) of y(x) at `at`; x strictly ascending, at least
// two points; linear beyond the ends with the end secant slopes.
double pchip(const std::vector<double>& x, const std::vector<double>& y, double at);

}  // namespace orrery
