#include "profiler/summary.h"

#include <fmt/format.h>

#include <map>

#include "profiler/buffers.h"
#include "profiler/sweep.h"

namespace orrery::profiler {

namespace {

// The best rate of a group and the case that reached it.
struct Best {
  double rate = 0;
  std::string where;
  int count = 0;
};

void offer(Best& b, double rate, const std::string& where) {
  ++b.count;
  if (rate > b.rate) {
    b.rate = rate;
    b.where = where;
  }
}

}  // namespace

std::string render_summary(const MeasurementFile& f) {
  std::string o = fmt::format("{} ({} GPU{}), timing: {}\n", f.device.gpu, f.device.gpu_count,
                              f.device.gpu_count == 1 ? "" : "s", f.device.timing);
  std::map<Dtype, Best> gemm;
  for (const auto& r : f.gemm)
    offer(gemm[r.c.dtype], 2.0 * r.c.m * r.c.n * r.c.k / r.s.median.value() / 1e12,
          fmt::format("m={} n={} k={}", r.c.m, r.c.n, r.c.k));
  for (Dtype d : kGemmDtypes)  // in the order measured, not Dtype's
    if (const auto it = gemm.find(d); it != gemm.end())
      o += fmt::format("  gemm {:<6} {:>9.1f} TFLOP/s  best of {} at {}\n", to_string(d),
                       it->second.rate, it->second.count, it->second.where);
  std::map<MemoryKernel, Best> mem;
  for (const auto& r : f.memory_bound)
    offer(mem[r.c.kernel], double(r.c.bytes) / r.s.median.value() / 1e9, format_size(r.c.bytes));
  for (const auto& [k, b] : mem)
    o += fmt::format("  {:<18} {:>7.0f} GB/s     best of {} at {}\n", to_string(k), b.rate,
                     b.count, b.where);
  for (const auto& r : f.attention) {
    const double flop = (r.c.backward ? 8.0 : 4.0) * r.c.batch * r.c.heads * double(r.c.seq) *
                        double(r.c.seq) * r.c.head_dim * (r.c.causal ? 0.5 : 1.0);
    o += fmt::format("  attention {} {:>9.1f} TFLOP/s  {}\n", to_string(r.impl),
                     flop / r.s.median.value() / 1e12, describe(r.c).substr(10));
  }
  for (const auto& r : f.launch)
    o += fmt::format("  launch (empty kernel) {}\n", format_duration(r.s.median));
  std::map<std::pair<CollectiveOp, int>, Best> coll;
  for (const auto& r : f.collectives)
    offer(coll[{r.c.op, r.c.gpus}],
          double(r.c.bytes) * busbw_factor(r.c.op, r.c.gpus) / r.s.median.value() / 1e9,
          format_size(r.c.bytes));
  for (const auto& [key, b] : coll)
    o += fmt::format("  {:<14} {} GPUs {:>7.1f} GB/s bus  best of {} at {}\n",
                     to_string(key.first), key.second, b.rate, b.count, b.where);
  o += fmt::format("  skipped: {}\n", f.skipped.size());
  return o;
}

}  // namespace orrery::profiler
