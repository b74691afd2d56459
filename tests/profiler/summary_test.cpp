#include "profiler/summary.h"

#include <gtest/gtest.h>

namespace orrery::profiler {
namespace {

TimingStats at(double median) { return {Seconds(median), Seconds(median), Seconds(median)}; }

TEST(Summary, RatesFromMedians) {
  MeasurementFile f;
  f.provenance.gpu = "Fake GPU";
  f.provenance.gpu_count = 2;
  f.provenance.timing = "fake";
  // 2 * 1024^3 FLOP in 4.294967296 us = 500 TFLOP/s; the slower 2048^3 case is not the best.
  f.gemm.push_back({Dtype::bf16, 1024, 1024, 1024, at(4.294967296e-6)});
  f.gemm.push_back({Dtype::bf16, 2048, 2048, 2048, at(1e-3)});
  // 1 GiB in 0.5 ms = 1073741824 / 5e-4 / 1e9 = 2147.48 GB/s.
  f.memory_bound.push_back({MemoryKernel::copy, Bytes(double(std::int64_t{1} << 30)), at(5e-4)});
  // Backward, causal: 8 * 1 * 32 * 2048^2 * 128 * 0.5 FLOP = 68.72e9 FLOP in 1 ms
  // = 68.7 TFLOP/s.
  f.attention.push_back(
      {AttentionImpl::unfused, Dtype::bf16, true, 1, 32, 2048, 128, true, at(1e-3)});
  f.launch.push_back({at(2.5e-6)});
  // Reduce-scatter of 64 MiB on 2 GPUs in 1 ms: 67108864 * (2-1)/2 / 1e-3 / 1e9 = 33.6 GB/s.
  f.collectives.push_back({CollectiveOp::reduce_scatter, 2, 1, Bytes(64 << 20), at(1e-3)});
  f.skipped.push_back({"gemm fp8", "unsupported"});
  EXPECT_EQ(render_summary(f),
            "Fake GPU (2 GPUs), timing: fake\n"
            "  gemm bf16       500.0 TFLOP/s  best of 2 at m=1024 n=1024 k=1024\n"
            "  copy                  2147 GB/s     best of 1 at 1 GiB\n"
            "  attention unfused      68.7 TFLOP/s  bf16 backward batch=1 heads=32 seq=2048 "
            "head_dim=128 causal\n"
            "  launch (empty kernel) 2.5 us\n"
            "  reduce_scatter 2 GPUs    33.6 GB/s bus  best of 1 at 64 MiB\n"
            "  skipped: 1\n");
}

}  // namespace
}  // namespace orrery::profiler
