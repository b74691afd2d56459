// Optimizer CPU offload (training.optimizer_offload): the memory it moves to the host and
// the time of its step, counted by hand on one DGX H100 with host figures set here.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "calibrate/compute_model.h"
#include "model/memory.h"
#include "scenario/load.h"
#include "simulator/predict.h"
#include "simulator/step.h"
#include "simulator/step_passes.h"

namespace orrery {
namespace {

// 8 H100s, data parallel with the distributed optimizer (ZeRO-1). A 2-layer decoder of
// hidden 1024, 16 heads, GeLU ffn 4096, vocabulary 32768 untied, RMSNorm, no biases:
// per layer qkv 1024 x 3072 = 3,145,728, proj 1,048,576, fc1 and fc2 4,194,304 each,
// norms 2 x 1024: 12,584,960; embedding and output 32768 x 1024 = 33,554,432 each, final
// norm 1024: 92,279,808 parameters, 11,534,976 in each rank's optimizer shard (/ 8).
// Host: PCIe 10 GB/s per direction, 800 GB/s host memory, 1 TiB.
Scenario eight_gpus(const std::string& offload) {
  const std::string yaml = fmt::format(R"(
cluster: {{preset: dgx-h100, nodes: 1,
          host: {{pcie_bandwidth: "10 GB/s", memory_bandwidth: "800 GB/s", memory: "1024 GiB"}}}}
model: {{family: decoder, layers: 2, hidden: 1024, heads: 16, ffn: 4096, vocab: 32768,
        seq_len: 256, activation: gelu, norm: rmsnorm, position_embedding: rope,
        tied_embeddings: false, bias: false, dropout: false}}
parallelism: {{tp: 1, pp: 1, dp: 8, zero_stage: 1, microbatch: 1, global_batch: 8}}
training: {{precision: bf16, optimizer: adamw{}}}
)",
                                       offload);
  return load_scenario_text(yaml, "eight-gpus.yaml");
}

constexpr double kShard = 92279808.0 / 8;  // 11,534,976

TEST(OptimizerOffload, HalfTheShardLeavesHbm) {
  // fraction 0.5: 5,767,488 parameters' master and moments (12 bytes) leave HBM and take
  // 16 bytes each in host memory (fp32 copy, two fp32 moments, the pinned gradient copy).
  const MemoryReport on = estimate_memory(eight_gpus(", optimizer_offload: {fraction: 0.5}"));
  const MemoryReport off = estimate_memory(eight_gpus(""));
  const StageMemory& st = on.stages[0];
  EXPECT_DOUBLE_EQ(off.stages[0].memory.optimizer.value(), 12 * kShard);
  EXPECT_DOUBLE_EQ(st.memory.optimizer.value(), 12 * kShard / 2);
  EXPECT_DOUBLE_EQ(st.offloaded_params, kShard / 2);
  EXPECT_DOUBLE_EQ(st.host.value(), 16 * kShard / 2);
  EXPECT_DOUBLE_EQ(on.host_capacity.value(), 1024.0 * (1 << 30) / 8);
  EXPECT_TRUE(on.fits);
}

TEST(OptimizerOffload, StepTimeAsMegatronOrdersIt) {
  // off = 5,767,488 parameters on the CPU; the other half on the GPU.
  //   gradients down: 4 B x off / 10 GB/s = 2,306.9952 us, parameters up the same;
  //   CPU AdamW: 28 B x off x 8 GPUs / 800 GB/s = 1,614.89664 us;
  //   GPU half: 30 B (bf16 Adam, fp32 gradients and master) x off / (3.35 TB/s x 0.87)
  //   = 59.3688... us.
  // Default (one stream): down + GPU + up = 4,673.36 us, above the CPU's time.
  // --overlap-cpu-optimizer-d2h-h2d: the slowest of the four, 2,306.9952 us.
  const double off = kShard / 2;
  const double d2h = 4 * off / 10e9, cpu = 28 * off * 8 / 800e9, gpu = 30 * off / (3.35e12 * 0.87);
  const Scenario plain = eight_gpus(", optimizer_offload: {fraction: 0.5}");
  const Scenario overlap = eight_gpus(", optimizer_offload: {fraction: 0.5, overlap: true}");
  const auto model = make_roofline_model(plain);
  EXPECT_NEAR(model->optimizer_time(off).value(), gpu, 1e-12);
  EXPECT_NEAR(detail::optimizer_step_time(plain, *model, kShard).value(), 2 * d2h + gpu, 1e-12);
  EXPECT_NEAR(detail::optimizer_step_time(overlap, *model, kShard).value(), d2h, 1e-12);
  EXPECT_GT(2 * d2h + gpu, cpu);
}

TEST(OptimizerOffload, CpuBoundWhenHostMemoryIsSlow) {
  // Host memory at 100 GB/s: CPU AdamW takes 28 x off x 8 / 100 GB/s = 12,919.17 us, more
  // than the transfers in either order.
  Scenario s = eight_gpus(", optimizer_offload: {fraction: 0.5}");
  s.cluster.host.memory_bandwidth = Bandwidth(100e9);
  const auto model = make_roofline_model(s);
  const double off = kShard / 2;
  EXPECT_NEAR(detail::optimizer_step_time(s, *model, kShard).value(), 28 * off * 8 / 100e9, 1e-12);
}

TEST(OptimizerOffload, TheStepWaitsForIt) {
  // The optimizer closes the step, so the step grows by the offloaded step's time less
  // the on-GPU step's (11,534,976 x 30 B / 2.9145 TB/s = 118.7 us).
  const Scenario plain = eight_gpus("");
  const Scenario offload = eight_gpus(", optimizer_offload: {fraction: 0.5}");
  const auto model = make_roofline_model(plain);
  const double before = predict(plain).step.step_time.value();
  const double after = predict(offload).step.step_time.value();
  const double grown = detail::optimizer_step_time(offload, *model, kShard).value() -
                       model->optimizer_time(kShard).value();
  EXPECT_NEAR(after - before, grown, 1e-9);
}

}  // namespace
}  // namespace orrery
