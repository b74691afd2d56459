// The fitted hardware families a profile holds and how each times an op: the runtime
// half of calibrate/ (what the simulator's compute model evaluates). Fitting them from
// measurements is the offline half, calibrate/fit.h.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/collective.h"
#include "core/number_format.h"
#include "core/units.h"

namespace orrery {

// A measured point of a family and the prediction for it by the family's model fitted
// without it. `held_out_error` is (predicted - measured) / measured of the family's
// headline figure (bus bandwidth for collectives, FLOP/s for GEMMs, bandwidth for
// memory-bound kernels, time for launch overhead).
struct HeldOutPoint {
  double x = 0;  // size in bytes (collectives, memory) or FLOPs (GEMM)
  Seconds time;  // measured
  double held_out_error = 0;
};

// Collective time vs message size for one (op, ranks, nodes):
//   alpha-beta   t = alpha + size / beta, least squares in relative time error
//                (Hockney's model; beta is the algorithm bandwidth size / t at large sizes);
//   curve        log t as a monotone piecewise-cubic (Fritsch-Carlson PCHIP) function of
//                log size through the measured points: time never falls as the size grows,
//                and the curve follows NCCL's protocol and algorithm switches between
//                measured sizes instead of one alpha-beta line. Below the smallest size the
//                time of the smallest; above the largest, the largest size's bus bandwidth.
struct CollectiveFit {
  CollectiveOp op = CollectiveOp::all_reduce;
  int gpus = 0, nodes = 0;
  Seconds alpha;
  Bandwidth beta;
  std::vector<HeldOutPoint> points;         // sorted by size; held-out error of `curve`
  std::vector<double> alpha_beta_held_out;  // per point, same order
  std::vector<std::string> sources;         // input files, sorted
  Seconds time(Bytes size) const;           // the curve
  Bandwidth busbw(Bytes size) const;        // size / time x busbw_factor
};

// The curve of CollectiveFit through points (size in bytes, time in seconds), sizes
// strictly ascending, at least two: the time in seconds at `size` bytes.
double collective_curve_time(const std::vector<std::pair<double, double>>& points, double size);

// GEMM time vs shape for one dtype, a roofline with two fitted roofs:
//   rate(m, n, k) = min(P(F), W x I),  F = 2mnk,  I = F / bytes,
//   bytes = e_in (mk + kn) + e_out mn  (e_in: gemm_input_bytes, fp32/tf32 4, bf16/fp16 2,
//   fp8 1 byte; e_out: gemm_output_bytes, 4 for fp32/tf32, else 2: fp8 GEMMs write bf16).
// P(F), the compute roof, is interpolated linearly in log F between its points and flat
// beyond them; W = 0 means no memory roof.
struct GemmShape {
  std::int64_t m = 0, n = 0, k = 0;
};
struct GemmFit {
  Dtype dtype = Dtype::bf16;  // one of kGemmDtypes (core/measurement_file.h)
  Bandwidth memory_roof;      // W; 0 when no point is memory-bound
  std::vector<std::pair<double, double>> compute_roof;  // (FLOPs, FLOP/s), F ascending
  std::vector<GemmShape> shapes;                        // same order as points
  std::vector<bool> memory_bound;                       // same order as points
  std::vector<HeldOutPoint> points;                     // x = FLOPs; held-out error of the rate
  std::vector<double> in_sample_error;                  // the fitted model at each point
  FlopRate rate(const GemmShape& s) const;
  Seconds time(const GemmShape& s) const;
  // The same roofline for a GEMM known by its FLOPs and the bytes it moves.
  FlopRate rate_at(Flop flops, Bytes bytes) const;
};

// F = 2mnk and the bytes of GemmFit's roofline for a GEMM of `dtype`, one of kGemmDtypes
// (checked).
double gemm_flops(const GemmShape& s);
double gemm_bytes(const GemmShape& s, Dtype dtype);
// GemmFit's rate in FLOP/s for `flops` moving `bytes`, from its roofs: `memory_roof` in
// bytes/s (0: none) and `compute_roof` as in GemmFit.
double gemm_roofline_rate(double memory_roof,
                          const std::vector<std::pair<double, double>>& compute_roof, double flops,
                          double bytes);

// Memory-bound kernel time vs bytes moved: t = alpha + bytes / bandwidth.
struct MemoryFit {
  std::string kernel;
  Seconds alpha;
  Bandwidth bandwidth;
  std::vector<HeldOutPoint> points;  // held-out error of the effective bandwidth bytes / t
};

// Launch overhead: the time of an empty kernel.
struct LaunchFit {
  Seconds overhead;
  std::vector<HeldOutPoint> points;
};

// Monotone piecewise-cubic Hermite interpolation (Fritsch & Carlson 1980, with the
// Fritsch-Butland harmonic-mean slopes) of y(x) at `at`; x strictly ascending, at least
// two points; linear beyond the ends with the end secant slopes.
double pchip(const std::vector<double>& x, const std::vector<double>& y, double at);

}  // namespace orrery
