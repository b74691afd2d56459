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
  const MeasurementProvenance& p = f.provenance;
  std::string o = fmt::format("{} ({} GPU{}), timing: {}\n", p.gpu, p.gpu_count,
                              p.gpu_count == 1 ? "" : "s", p.timing);
  std::map<Dtype, Best> gemm;
  for (const auto& r : f.gemm)
    offer(gemm[r.dtype], 2.0 * r.m * r.n * r.k / r.time.median.value() / 1e12,
          fmt::format("m={} n={} k={}", r.m, r.n, r.k));
  for (Dtype d : kGemmDtypes)  // in the order measured, not Dtype's
    if (const auto it = gemm.find(d); it != gemm.end())
      o += fmt::format("  gemm {:<6} {:>9.1f} TFLOP/s  best of {} at {}\n", to_string(d),
                       it->second.rate, it->second.count, it->second.where);
  std::map<MemoryKernel, Best> mem;
  for (const auto& r : f.memory_bound)
    offer(mem[r.kernel], r.bytes.value() / r.time.median.value() / 1e9,
          format_size(static_cast<std::int64_t>(r.bytes.value())));
  for (const auto& [k, b] : mem)
    o += fmt::format("  {:<18} {:>7.0f} GB/s     best of {} at {}\n", to_string(k), b.rate,
                     b.count, b.where);
  for (const auto& r : f.attention) {
    const double flop = (r.backward ? 8.0 : 4.0) * r.batch * r.heads * double(r.seq) *
                        double(r.seq) * r.head_dim * (r.causal ? 0.5 : 1.0);
    const AttentionCase c{r.dtype, r.backward, r.batch, r.heads, r.seq, r.head_dim, r.causal};
    o += fmt::format("  attention {} {:>9.1f} TFLOP/s  {}\n", to_string(r.implementation),
                     flop / r.time.median.value() / 1e12, describe(c).substr(10));
  }
  for (const auto& r : f.launch)
    o += fmt::format("  launch (empty kernel) {}\n", format_duration(r.time.median));
  std::map<std::pair<CollectiveOp, int>, Best> coll;
  for (const auto& r : f.collectives)
    offer(coll[{r.op, r.gpus}],
          r.bytes.value() * busbw_factor(r.op, r.gpus) / r.time.median.value() / 1e9,
          format_size(static_cast<std::int64_t>(r.bytes.value())));
  for (const auto& [key, b] : coll)
    o += fmt::format("  {:<14} {} GPUs {:>7.1f} GB/s bus  best of {} at {}\n",
                     to_string(key.first), key.second, b.rate, b.count, b.where);
  o += fmt::format("  skipped: {}\n", f.skipped.size());
  return o;
}

}  // namespace orrery::profiler
