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

TEST(OptimizerOffload, AStragglerStretchesTheGpuShareOnly) {
  // A straggler at 0.5 on the one stage computes the GPU half's step (gpu) twice as long;
  // the copies down and up and the CPU step keep their time (d2h + gpu + h2d -> d2h + 2 gpu +
  // h2d), and the optimizer's breakdown grows by gpu alone; the same with optimizer_step_time's
  // GPU share asked for.
  const Scenario offload = eight_gpus(", optimizer_offload: {fraction: 0.5}");
  const auto model = make_roofline_model(offload);
  Seconds share;
  const double step = detail::optimizer_step_time(offload, *model, kShard, {}, &share).value();
  const double gpu = model->optimizer_time(kShard / 2).value();
  EXPECT_DOUBLE_EQ(share.value(), gpu);
  Scenario slow = offload;
  slow.faults.push_back([] {
    FaultSpec f;
    f.kind = FaultSpec::Kind::straggler;
    f.stage = 0;
    f.factor = 0.5;
    return f;
  }());
  // The breakdown also holds Megatron-Core's per-step passes on the GPU, stretched too: the
  // fp32 gradient buffer of the 92,279,808 parameters zeroed and the shard's main gradients
  // read for the norm, 4 x 92,279,808 + 4 x kShard bytes at H100 HBM x memory_efficiency
  // (detail::megatron_step_passes).
  const double hbm =
      offload.cluster.gpu.memory_bandwidth.value() * *offload.cluster.gpu.memory_efficiency;
  const double passes = (4 * 92279808.0 + 4 * kShard) / hbm;
  const double healthy = predict(offload).step.stages.at(0).breakdown.optimizer.value();
  const double straggling = predict(slow).step.stages.at(0).breakdown.optimizer.value();
  EXPECT_NEAR(healthy, step + passes, 1e-12);
  EXPECT_NEAR(straggling - healthy, gpu + passes, 1e-9);
}

}  // namespace
}  // namespace orrery

namespace orrery {
namespace {

// Activation offload (training.activation_offload): the same 8-GPU node with 8 such
// layers and 4 of them offloaded; a copy runs at the slower of the PCIe link and the GPU's
// eighth of the host memory bandwidth, both set per test. No host time per kernel
// (training.stack.host_overhead 0): these layers are small enough for it to lengthen
// their compute, and the tests are about the copies' links.
Scenario offloading(const std::string& pcie, int layers_offloaded,
                    const std::string& host_memory = "800 GB/s") {
  const std::string offload =
      layers_offloaded > 0
          ? fmt::format(", activation_offload: {{layers: {}}}", layers_offloaded)
          : std::string();
  const std::string yaml = fmt::format(R"(
cluster: {{preset: dgx-h100, nodes: 1,
          host: {{pcie_bandwidth: "{}", memory_bandwidth: "{}", memory: "1024 GiB"}}}}
model: {{family: decoder, layers: 8, hidden: 1024, heads: 16, ffn: 4096, vocab: 32768,
        seq_len: 256, activation: gelu, norm: rmsnorm, position_embedding: rope,
        tied_embeddings: false, bias: false, dropout: false}}
parallelism: {{tp: 1, pp: 1, dp: 8, zero_stage: 1, microbatch: 1, global_batch: 8}}
training: {{precision: bf16, optimizer: adamw, recompute: none,
           stack: {{host_overhead: 0 s}}{}}}
)",
                                       pcie, host_memory, offload);
  return load_scenario_text(yaml, "offloading.yaml");
}

TEST(ActivationOffload, TheFirstLayersActivationsMoveToTheHost) {
  // Transformer Engine keeps (L - N) x T on the GPU: 4 of the 8 equal layers' saved bytes
  // T leave HBM and take the same in host memory.
  const MemoryReport plain = estimate_memory(offloading("10 GB/s", 0));
  const MemoryReport on = estimate_memory(offloading("10 GB/s", 4));
  const double T = plain.stages[0].activations_per_layer.value();
  EXPECT_GT(T, 0);
  EXPECT_NEAR(plain.stages[0].memory.activations.value() - on.stages[0].memory.activations.value(),
              4 * T, 1e-9 * T);
  EXPECT_NEAR(on.stages[0].offloaded_activations.value(), 4 * T, 1e-9 * T);
  EXPECT_NEAR(on.stages[0].host.value(), 4 * T, 1e-9 * T);
  EXPECT_DOUBLE_EQ(on.stages[0].layers_in_flight, 4.0);
}

TEST(ActivationOffload, HiddenOnAFastLinkExposedOnASlowOne) {
  // Fast link and host memory: layer i's copy (T / 125 TB/s, the host's 1 PB/s over 8
  // GPUs) is done long before the forward of layer 4 + i needs its memory and the reload
  // before the backward of layer i: nothing waits. With the host's 800 GB/s shared by 8
  // GPUs (100 GB/s each) the same copies take T / 100 GB/s, longer than a layer's compute
  // here, and some are exposed.
  const StepResult fast = simulate_step(offloading("1000 TB/s", 4, "1000 TB/s"));
  EXPECT_EQ(fast.stages[0].breakdown.offload_exposed.value(), 0.0);
  EXPECT_GT(simulate_step(offloading("1000 TB/s", 4)).stages[0].breakdown.offload_exposed.value(),
            0.0);
  // Slow link, c = T / 10 MB/s per copy, far above any layer's compute: the 4 copies run
  // one after another in forward and again in backward, with at most the micro-batch's
  // compute C hidden under them: 2 x 4 c - C <= exposed <= 2 x 4 c (one micro-batch).
  const double T = estimate_memory(offloading("10 MB/s", 0)).stages[0].activations_per_layer.value();
  const double c = T / 10e6;
  const StepResult plain = simulate_step(offloading("10 MB/s", 0));
  const StepResult slow = simulate_step(offloading("10 MB/s", 4));
  const double C = plain.stages[0].breakdown.compute.value();
  const double exposed = slow.stages[0].breakdown.offload_exposed.value();
  EXPECT_LE(exposed, 8 * c * (1 + 1e-9));
  EXPECT_GE(exposed, 8 * c - C);
  EXPECT_GT(8 * c, 100 * C);  // the bounds are tight
  // The step grows by the wait, less the plain step's exposed reduction that now hides
  // under it.
  EXPECT_NEAR(slow.step_time.value() - plain.step_time.value(), exposed,
              plain.stages[0].breakdown.dp_exposed.value() + 1e-9);
}

}  // namespace
}  // namespace orrery
