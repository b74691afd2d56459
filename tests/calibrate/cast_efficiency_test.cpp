// cluster.gpu.cast_efficiency (scenario/presets/gpus.yaml; docs/model.md, "Dtype casts in
// eager PyTorch"): PyTorch's dtype-converting copies run TensorIterator's dynamic-cast path
// (no vectorized loads) at a measured fraction of the HBM bandwidth. Checked here: the
// presets' figures, one cast kernel's time, the cast kernels of an eager step derived by
// hand, the gradient casts of FSDP1, and a bad value.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <string>

#include "calibrate/compute_model.h"
#include "core/error.h"
#include "model/workload.h"
#include "scenario/load.h"
#include "simulator/fsdp_gradient_passes.h"
#include "simulator/step.h"

namespace orrery {
namespace {

// One H100 (every op in series on one stream), a two-layer Llama-style model (RMSNorm,
// RoPE, SwiGLU, kv_heads = heads), bf16, one sequence of 4096 tokens, h = 1024, under
// `stack`. No host time (host_overhead 0), so the step is the sum of the kernels' times.
Scenario eager_h100(const std::string& stack) {
  return load_scenario_text(fmt::format(R"(
cluster: {{preset: dgx-h100, gpus_per_node: 1}}
model: {{family: decoder, layers: 2, hidden: 1024, heads: 8, ffn: 4096, vocab: 32768,
        seq_len: 4096, activation: swiglu, norm: rmsnorm, position_embedding: rope,
        tied_embeddings: false, bias: false, dropout: false}}
parallelism: {{tp: 1, pp: 1, dp: 1, microbatch: 1, global_batch: 1}}
training: {{precision: bf16, recompute: none, stack: {}}}
)",
                                        stack),
                            "cast.yaml");
}

// The A100 presets: PR 195542's bf16 -> fp32 copy, 322.09 us vectorized against 362.46 us
// on the dynamic-cast path (0.8886), times the STREAM fraction 0.79: 0.702. The H100 SXM:
// PR 137053's fp32 -> fp16 copy of 2^31 elements, 6.943 ms against 9.108 ms (0.7623), times
// 0.87: 0.663. Both below the preset's memory_efficiency.
TEST(CastEfficiency, PresetsCarryTheMeasuredFractions) {
  const Scenario a100 = load_scenario_text(
      "cluster: {preset: dgx-a100}\nmodel: {preset: llama2-7b}\n"
      "parallelism: {tp: 1, dp: 8, global_batch: 8}\n",
      "a100.yaml");
  ASSERT_TRUE(a100.cluster.gpu.cast_efficiency.has_value());
  EXPECT_DOUBLE_EQ(*a100.cluster.gpu.cast_efficiency, 0.702);
  EXPECT_NEAR(0.79 * 322.09 / 362.46, 0.702, 0.0005);
  const Scenario h100 = eager_h100("fsdp1");
  ASSERT_TRUE(h100.cluster.gpu.cast_efficiency.has_value());
  EXPECT_DOUBLE_EQ(*h100.cluster.gpu.cast_efficiency, 0.663);
  EXPECT_NEAR(0.87 * 6.942723749671131 / 9.108047320041805, 0.663, 0.0005);
  EXPECT_LT(*h100.cluster.gpu.cast_efficiency, *h100.cluster.gpu.memory_efficiency);
}

// One kernel of 100 MB: a cast at 3.35 TB/s x 0.663 = 2,221 GB/s, 45.02 us; the same bytes
// as another element-wise kernel at 3.35 TB/s x 0.87 = 2,914.5 GB/s, 34.31 us.
TEST(CastEfficiency, ACastKernelStreamsAtItsOwnRate) {
  const Scenario s = eager_h100("fsdp1");
  const auto model = make_roofline_model(s);
  Op op;
  op.kind = OpKind::elementwise;
  op.fwd_read = Bytes(40e6);
  op.fwd_written = Bytes(60e6);
  const double other = model->op_time(op, Pass::forward).value();
  op.dtype_cast = true;
  const double cast = model->op_time(op, Pass::forward).value();
  EXPECT_NEAR(other, 100e6 / (3.35e12 * 0.87), 1e-15);
  EXPECT_NEAR(cast, 100e6 / (3.35e12 * 0.663), 1e-15);
  EXPECT_NEAR(cast * 1e6, 45.02, 0.01);
}

// Eager fms-fsdp-style step (fsdp1 preset: unfused RMSNorm; rope rotation_matrix) with the
// preset's cast rate against the same step with the casts at the STREAM rate. The cast
// kernels, per element of the tensor they convert (n = T h = 4096 x 1024 = 4,194,304 for
// the norms' input and for q and for k), e = 2:
//  - each norm: x.float() (e n read, 4 n written) and type_as back (4 n, e n) forward, and
//    their gradients' casts backward (4 n, e n; e n, 4 n): 24 n; five norms (two a layer,
//    the final one): 120 n;
//  - RoPE rotation_matrix, each of q and k: the upcast and the cast back each way, 24 n;
//    two tensors, two layers: 96 n.
// 216 n = 905,969,664 bytes; every one of these kernels moves 6 n = 25 MB, above the
// kernel floor at either rate. The difference: 216 n x (1 / (3.35 TB/s x 0.663) - 1 /
// (3.35 TB/s x 0.87)) = 905,969,664 x 1.0712e-13 s = 97.05 us.
TEST(CastEfficiency, EagerStepPaysItsCastKernelsAtTheCastRate) {
  const Scenario s = eager_h100("{preset: fsdp1, rope: rotation_matrix, host_overhead: 0 s}");
  ASSERT_EQ(s.training.stack.norm, StackSpec::NormKernels::unfused);
  Scenario stream = s;
  stream.cluster.gpu.cast_efficiency = *s.cluster.gpu.memory_efficiency;
  const double n = 4096.0 * 1024;
  const double bytes = 216 * n;
  EXPECT_DOUBLE_EQ(bytes, 905969664.0);
  ASSERT_GT(6 * n / (3.35e12 * 0.663), s.cluster.gpu.kernel_launch->value());
  const double want = bytes * (1 / (3.35e12 * 0.663) - 1 / (3.35e12 * 0.87));
  EXPECT_NEAR(want * 1e6, 97.05, 0.01);
  const double got =
      simulate_step(s).step_time.value() - simulate_step(stream).step_time.value();
  EXPECT_NEAR(got, want, 1e-9 * want);
  // The flagged ops are exactly the chains' casts: 5 norms x 2 + 2 layers x 2 tensors x 2.
  const Workload w = build_workload(s.model, s.training, shard_of(s.parallelism));
  int casts = 0;
  for (const Layer& l : w.layers)
    for (const Op& op : l.ops) casts += op.dtype_cast;
  EXPECT_EQ(casts, 5 * 2 + 2 * 2 * 2);
}

// Compiled, Inductor fuses the chains: no cast kernel of their own, and the rate changes
// nothing.
TEST(CastEfficiency, CompiledStepHasNoCastKernels) {
  const Scenario s = eager_h100("{preset: fsdp1, compile: true, host_overhead: 0 s}");
  Scenario stream = s;
  stream.cluster.gpu.cast_efficiency = *s.cluster.gpu.memory_efficiency;
  EXPECT_DOUBLE_EQ(simulate_step(s).step_time.value(),
                   simulate_step(stream).step_time.value());
}

// FSDP1's cast of the unit's gradient to a different reduce dtype is a dtype-converting
// copy (flat_param.grad.to(reduce_dtype)); the assembly is not.
TEST(CastEfficiency, Fsdp1GradientCastIsACast) {
  const Scenario s = load_scenario_text(
      "cluster: {preset: dgx-h100}\nmodel: {preset: llama2-7b}\n"
      "parallelism: {tp: 1, dp: 8, global_batch: 8, fsdp: true}\n"
      "training: {precision: bf16, gradient_dtype: fp32, stack: fsdp1}\n",
      "fsdp.yaml");
  const std::vector<FsdpGradientPass> passes = fsdp_gradient_passes(s);
  ASSERT_GE(passes.size(), 2u);
  EXPECT_FALSE(passes[0].dtype_cast);
  EXPECT_EQ(passes[1].what, "cast to the reduce dtype");
  EXPECT_TRUE(passes[1].dtype_cast);
}

// A fraction outside (0.01, 1] is an input error naming the key and the value.
TEST(CastEfficiency, BadValueIsAnError) {
  std::string what = "no error";
  try {
    load_scenario_text(
        "cluster: {preset: dgx-h100, gpu: {preset: h100-sxm5-80gb, cast_efficiency: 1.5}}\n"
        "model: {preset: llama2-7b}\nparallelism: {tp: 1, dp: 8, global_batch: 8}\n",
        "bad.yaml");
  } catch (const InputError& e) {
    what = e.what();
  }
  EXPECT_NE(what.find("cast_efficiency"), std::string::npos) << what;
  EXPECT_NE(what.find("1.5"), std::string::npos) << what;
}

}  // namespace
}  // namespace orrery
