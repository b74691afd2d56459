// Training stacks (training.stack, docs/model.md "Training stacks"): the step of an eager
// PyTorch stack against the same stack compiled, derived by hand from the unfused
// kernels' bytes; the presets' mechanisms and their link to the FSDP implementation.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <tuple>
#include <fmt/format.h>

#include "calibrate/compute_model.h"
#include "core/error.h"
#include "model/workload.h"
#include "report/run_report.h"
#include "scenario/load.h"
#include "simulator/step.h"

namespace orrery {
namespace {

// One H100 (no collectives: every op runs in series on one stream), a Llama-style dense
// model (SwiGLU, RMSNorm, RoPE, no bias, no dropout, kv_heads = heads), bf16, one
// sequence, under the stack `stack`.
Scenario one_gpu(int hidden, int heads, int ffn, int vocab, int seq, const std::string& stack) {
  const std::string yaml = fmt::format(R"(
cluster: {{preset: dgx-h100, gpus_per_node: 1}}
model: {{family: decoder, layers: 2, hidden: {}, heads: {}, ffn: {}, vocab: {}, seq_len: {},
        activation: swiglu, norm: rmsnorm, position_embedding: rope, tied_embeddings: false,
        bias: false, dropout: false}}
parallelism: {{tp: 1, pp: 1, dp: 1, microbatch: 1, global_batch: 1}}
training: {{precision: bf16, recompute: none, stack: {}}}
)",
                                       hidden, heads, ffn, vocab, seq, stack);
  Scenario s = load_scenario_text(yaml, "stack.yaml");
  // The chains' dtype casts at the STREAM rate like their other kernels, so that each test
  // here isolates its own bytes; tests/calibrate/cast_efficiency_test.cpp times the casts
  // at the preset's cast_efficiency.
  s.cluster.gpu.cast_efficiency.reset();
  return s;
}

double step(const Scenario& s) { return simulate_step(s).step_time.value(); }
double hbm(const Scenario& s) {
  return s.cluster.gpu.memory_bandwidth.value() * *s.cluster.gpu.memory_efficiency;
}

// Eager torchtitan (fsdp2) against compiled: the compiled step runs RoPE, the SwiGLU
// product and the loss as the fused kernels. With every kernel long enough to be
// bandwidth-bound, the difference is the extra bytes at the HBM rate. Per layer
// (T = 4096 tokens, h = 1024, f = 4096, e = 2 bytes; n = T h elements each of q and k):
//  - RoPE, complex form, per tensor: upcast (e n + 4 n) + product (8 n) + cast back
//    (4 n + e n) = 20 n forward, the same backward: 40 n; fused 2 e n each way: 8 n;
//    32 n more per tensor, 64 n for q and k;
//  - SwiGLU: silu (forward 2 f, backward 3 f) and the product (3 f, 6 f): 14 f; fused
//    (3 f, 5 f): 8 f; 6 f e = 12 f bytes more per token;
// and once, the loss: 52 against 28 bytes a logit, 24 T V more (V = 32768).
// Two layers: extra = 2 (64 n + 12 T f) + 24 T V
//   = 2 (64 x 4,194,304 + 12 x 4096 x 4096) + 24 x 4096 x 32768
//   = 2 (268,435,456 + 201,326,592) + 3,221,225,472 = 4,160,749,568 bytes.
TEST(Stack, EagerAgainstCompiledIsTheUnfusedBytesAtHbmRate) {
  const Scenario eager = one_gpu(1024, 8, 4096, 32768, 4096, "fsdp2");
  const Scenario compiled = one_gpu(1024, 8, 4096, 32768, 4096, "{preset: fsdp2, compile: true}");
  // Every op of the chains moves at least the fused RoPE's 2 e n = 16.8 MB, above the
  // kernel floor at the H100's HBM rate, so no op sits on kernel_launch.
  const double launch = compiled.cluster.gpu.kernel_launch->value();
  ASSERT_GT(2 * 2 * 4096.0 * 1024 / hbm(compiled), launch);
  const double extra = 2 * (64 * 4194304.0 + 12 * 4096.0 * 4096) + 24 * 4096.0 * 32768;
  EXPECT_DOUBLE_EQ(extra, 4160749568.0);
  const double want = extra / hbm(compiled);
  EXPECT_NEAR(step(eager) - step(compiled), want, 1e-9 * want);
}

// training.stack.rope rotation_matrix (ibm-fms) against complex (torchtitan), all else the
// same: both upcast and cast back (e n + 4 n and 4 n + e n each way); the complex product
// moves 8 n, the rotation matrix's broadcast product 12 n (4 n read, 8 n written: two fp32
// values an element) and its sum 12 n more (8 n read, 4 n written). (32 + 2e) n against
// (16 + 2e) n: 16 n more each way, per tensor. n = T h = 4096 x 1024 = 4,194,304 for q and
// for k (kv_heads = heads). Two layers, two tensors, two passes: 128 n = 536,870,912 bytes
// at the HBM rate (every kernel moves at least 6 n = 25 MB, above the kernel floor).
TEST(Stack, RotationMatrixRopeIsSixteenBytesAnElementMoreThanComplex) {
  const Scenario cplx = one_gpu(1024, 8, 4096, 32768, 4096, "{preset: fsdp2, rope: complex}");
  const Scenario mat =
      one_gpu(1024, 8, 4096, 32768, 4096, "{preset: fsdp2, rope: rotation_matrix}");
  EXPECT_EQ(mat.training.stack.rope, StackSpec::Rope::rotation_matrix);
  const double n = 4096.0 * 1024;
  ASSERT_GT(6 * n / hbm(mat), mat.cluster.gpu.kernel_launch->value());
  const double extra = 2 * 2 * 2 * 16 * n;
  EXPECT_DOUBLE_EQ(extra, 536870912.0);
  const double want = extra / hbm(mat);
  EXPECT_NEAR(step(mat) - step(cplx), want, 1e-9 * want);
  // Four kernels a tensor each way against three: two layers x two tensors more each way.
  const Workload w = build_workload(mat.model, mat.training, shard_of(mat.parallelism));
  size_t rope_ops = 0;
  for (const Layer& l : w.layers) {
    for (const Op& op : l.ops) rope_ops += op.name.rfind("attn.rope_", 0) == 0;
  }
  EXPECT_EQ(rope_ops, 2 * 2 * 4u);
}

// training.stack.projections separate (ibm-fms, Hugging Face, torchtitan models) against
// fused, all else the same: the forward is unchanged; backward, autograd adds the input
// gradients of the GEMMs that share an input, each add reading two b*s x h tensors and
// writing one (3 e n bytes, n = T h = 4096 x 1024 = 4,194,304, e = 2). Per layer: query,
// key and value, two adds (12 n bytes, one auxiliary kernel after the QKV GEMM's
// backward); the SwiGLU's gate and up, one add (6 n). Two layers: 2 x 18 n = 36 n =
// 150,994,944 bytes at the HBM rate; the smaller kernel, 6 n = 25 MB, is above the floor.
TEST(Stack, SeparateProjectionsAddTheirInputGradientsInBackward) {
  const Scenario fused = one_gpu(1024, 8, 4096, 32768, 4096, "fsdp2");
  const Scenario sep = one_gpu(1024, 8, 4096, 32768, 4096, "{preset: fsdp2, projections: separate}");
  EXPECT_EQ(fused.training.stack.projections, StackSpec::Projections::fused);  // every preset
  EXPECT_EQ(sep.training.stack.projections, StackSpec::Projections::separate);
  const double n = 4096.0 * 1024;
  ASSERT_GT(6 * n / hbm(sep), sep.cluster.gpu.kernel_launch->value());
  const double extra = 2 * (12 * n + 6 * n);
  EXPECT_DOUBLE_EQ(extra, 150994944.0);
  const double want = extra / hbm(sep);
  EXPECT_NEAR(step(sep) - step(fused), want, 1e-9 * want);
  // Only the backward moves: the forward bytes of every op are the same.
  const Workload wf = build_workload(fused.model, fused.training, shard_of(fused.parallelism));
  const Workload ws = build_workload(sep.model, sep.training, shard_of(sep.parallelism));
  double fwd_f = 0, fwd_s = 0, aux_f = 0, aux_s = 0;
  for (const Layer& l : wf.layers)
    for (const Op& op : l.ops) fwd_f += (op.fwd_read + op.fwd_written + op.aux_fwd_bytes).value(),
                                aux_f += op.aux_bwd_bytes.value();
  for (const Layer& l : ws.layers)
    for (const Op& op : l.ops) fwd_s += (op.fwd_read + op.fwd_written + op.aux_fwd_bytes).value(),
                                aux_s += op.aux_bwd_bytes.value();
  EXPECT_DOUBLE_EQ(fwd_s, fwd_f);
  EXPECT_DOUBLE_EQ(aux_s - aux_f, extra);
}

// training.stack.masked_softmax torch (Megatron's FusedScaleMaskSoftmax on its PyTorch
// path) against fused, unfused attention under the deepspeed stack, all else the same. Per
// score, the PyTorch path moves (32 + 2e) bytes forward (fp32 cast, scale, mask, softmax,
// cast back) and (36 + 2e) backward, where the fused kernel moves 2e and 3e; the mask
// ([1, 1, s, s] bytes) is read once each way. e = 2: 32 n + m more forward, 34 n + m
// backward, n = b heads s^2 = 8 x 4096^2 = 134,217,728 scores a layer, m = 4096^2 =
// 16,777,216. Two layers: 2 (66 n + 2 m) = 17,783,848,960 bytes, every one a score-tensor
// kernel, at HBM x score_tensor_efficiency (each moves at least 6 n = 805 MB, far above
// the kernel floor and the host's time to issue it). Kept for backward without dropout:
// the fused path's 16-bit softmax, e a score, which P V's backward reads; the PyTorch
// path's fp32 softmax (4) and, for P V, the 16-bit cast of it (e): 4 bytes a score more.
TEST(Stack, MaskedSoftmaxOnThePyTorchPathIsItsBytesAtTheScoreTensorRate) {
  const auto deepspeed = [](const std::string& softmax) {
    return one_gpu(1024, 8, 4096, 32768, 4096,
                   fmt::format("{{preset: deepspeed, masked_softmax: {}}}, flash_attention: false",
                               softmax));
  };
  const Scenario fused = deepspeed("fused");
  const Scenario torch = deepspeed("torch");
  const double n = 8 * 4096.0 * 4096, m = 4096.0 * 4096;
  const double extra = 2 * (66 * n + 2 * m);
  EXPECT_DOUBLE_EQ(extra, 17783848960.0);
  const GpuSpec& g = torch.cluster.gpu;
  ASSERT_TRUE(g.score_tensor_efficiency.has_value());
  const double want = extra / (g.memory_bandwidth.value() * *g.score_tensor_efficiency);
  EXPECT_NEAR(step(torch) - step(fused), want, 1e-9 * want);
  const auto kept = [](const Scenario& s) {
    const Workload w = build_workload(s.model, s.training, shard_of(s.parallelism));
    double k = 0;
    for (const Op& op : w.layers[1].ops)
      if (op.name.rfind("attn.", 0) == 0) k += op.saved_selective.value();
    return k;
  };
  EXPECT_DOUBLE_EQ(kept(torch) - kept(fused), 4 * n);
  // The mask GPT builds is one [1, 1, s, S] for the batch (att_mask_batch = 1): at a
  // micro-batch of 2 the mask kernel reads 4 bytes of each of 2n scores and s S mask bytes.
  Scenario two = torch;
  two.parallelism.microbatch = 2;
  two.parallelism.global_batch = 2;
  const Workload w2 = build_workload(two.model, two.training, shard_of(two.parallelism));
  int masks = 0;
  for (const Op& op : w2.layers[1].ops) {
    if (op.name != "attn.softmax.mask") continue;
    ++masks;
    EXPECT_DOUBLE_EQ(op.fwd_read.value(), 4 * 2 * n + m);
    EXPECT_TRUE(op.in_place);
  }
  EXPECT_EQ(masks, 1);
}

// swapped_check under a packed-document mask takes the causal branch, as Megatron keeps
// AttnMaskType.causal for it: at 8 heads a rank and a micro-batch of 1 (8 rows, not a
// multiple of the 32 a block) the softmax falls back; under the full mask at the same
// shape the branch asks 2048 queries for a multiple of 32, and the kernel runs. run
// --explain says which.
TEST(Stack, SwappedCheckTakesTheCausalBranchForPackedDocuments) {
  const auto scenario = [](const std::string& mask) {
    return load_scenario_text(
        fmt::format("cluster: {{preset: dgx-a100, gpus_per_node: 1}}\n"
                    "model: {{family: decoder, layers: 2, hidden: 1024, heads: 8, ffn: 4096, "
                    "vocab: 32768, seq_len: 2048, activation: gelu, norm: layernorm, "
                    "position_embedding: learned, tied_embeddings: true, bias: true, "
                    "dropout: false, {}}}\n"
                    "parallelism: {{tp: 1, pp: 1, dp: 1, microbatch: 1, global_batch: 1}}\n"
                    "training: {{precision: bf16, flash_attention: false, stack: {{preset: "
                    "deepspeed, masked_softmax: swapped_check}}}}\n",
                    mask),
        "d.yaml");
  };
  const auto falls_back = [](const Scenario& s) {
    const Workload w = build_workload(s.model, s.training, shard_of(s.parallelism));
    for (const Op& op : w.layers[1].ops)
      if (op.name == "attn.softmax.upcast") return true;
    return false;
  };
  const Scenario doc = scenario("attention_mask: document, document_length: 512");
  const Scenario full = scenario("attention_mask: full");
  EXPECT_TRUE(falls_back(doc));
  EXPECT_FALSE(falls_back(full));
  EXPECT_NE(render_stack_explanation(doc).find("at 1 x 8 heads a rank it fails"),
            std::string::npos);
  EXPECT_NE(render_stack_explanation(full).find("at 1 x 8 heads a rank it passes"),
            std::string::npos);
}

// Where masked_softmax's PyTorch path is not the one timed, a non-fused value is an error
// naming the key: fused attention (the softmax inside the kernel), a preset other than
// deepspeed (Megatron-Core's path is a 16-bit one since 94a3749f; PyTorch-native stacks run
// their own attention), context parallelism and a sliding window (neither in the 2021-22
// code), 32-bit precision (no casts). The same file with deepspeed, cp 1 and a causal
// mask loads.
TEST(Stack, MaskedSoftmaxOffItsPathIsAnError) {
  const auto load = [](const std::string& model, const std::string& par,
                       const std::string& training) {
    return load_scenario_text(
        fmt::format("cluster: {{preset: dgx-a100}}\nmodel: {{preset: gpt3-175b{}}}\n"
                    "parallelism: {{tp: 4, global_batch: 8, {}}}\n"
                    "training: {{flash_attention: false, {}}}\n",
                    model, par, training),
        "m.yaml");
  };
  const std::string ds = "stack: {preset: deepspeed, masked_softmax: swapped_check}";
  EXPECT_NO_THROW(load("", "dp: 2", ds));
  const auto rejects = [&](const std::string& model, const std::string& par,
                           const std::string& training) {
    try {
      load(model, par, training);
      ADD_FAILURE() << "no error: " << model << par << training;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("training.stack.masked_softmax"), std::string::npos)
          << e.what();
    }
  };
  rejects("", "dp: 2", "stack: {preset: megatron-core, masked_softmax: torch}");
  rejects("", "dp: 2", "stack: {preset: fsdp2, masked_softmax: torch}");
  rejects("", "cp: 2, dp: 1", ds);
  rejects(", attention_mask: sliding-window, attention_window: 1024", "dp: 2", ds);
  rejects("", "dp: 2", ds + ", precision: fp32");
}

// A model so small that every element-wise kernel takes less than the kernel floor
// (kernel_launch, 3 us on the H100 preset): the difference is the launch term alone,
// each extra kernel one floor forward and one backward. Per layer the eager step runs
// RoPE as 3 kernels a tensor (6 against the fused 2: 4 more) and SwiGLU as 2 (1 more);
// the loss is one op either way. 2 layers x 5 kernels x 2 passes x kernel_launch.
TEST(Stack, EagerAgainstCompiledOfATinyModelIsTheLaunchTerm) {
  // Without host time (a CUDA-graphed step), the kernel floor alone.
  const Scenario eager = one_gpu(64, 2, 256, 64, 128, "{preset: fsdp2, host_overhead: 0 s}");
  const Scenario compiled =
      one_gpu(64, 2, 256, 64, 128, "{preset: fsdp2, compile: true, host_overhead: 0 s}");
  const double launch = compiled.cluster.gpu.kernel_launch->value();
  // The largest of these kernels, the unfused loss: 52 bytes of each of 128 x 64 logits.
  ASSERT_LT(52 * 128.0 * 64 / hbm(compiled), launch);
  const double want = 2 * 5 * 2 * launch;
  EXPECT_NEAR(step(eager) - step(compiled), want, 1e-9 * want);
}

// The same tiny model under each preset's host time (training.stack.host_overhead,
// 13.48 us a kernel issued: a DGX H100 host's torch.nn.Linear forward,
// NVIDIA/TransformerEngine issue 2053), longer than the 3 us kernel floor.
// With no collective on one GPU, each layer's pass is one run of kernels, timed
// max(its GPU time, kernels x 13.48 us); every kernel here sits on the 3 us floor, so every
// run is host-bound and the step's difference is the extra kernels at 13.48 us: the same
// 2 layers x 5 kernels x 2 passes, 20 x 13.48 us = 269.6 us (the loss, the embedding and the
// head issue as many kernels either way; the fused optimizer is one call in both).
TEST(Stack, EagerAgainstCompiledOfATinyModelIsTheHostTerm) {
  const Scenario eager = one_gpu(64, 2, 256, 64, 128, "fsdp2");
  const Scenario compiled = one_gpu(64, 2, 256, 64, 128, "{preset: fsdp2, compile: true}");
  const double host = eager.training.stack.host_overhead.value();
  EXPECT_DOUBLE_EQ(host, 13.48e-6);
  EXPECT_DOUBLE_EQ(compiled.training.stack.host_overhead.value(), 13.48e-6);
  ASSERT_GT(host, compiled.cluster.gpu.kernel_launch->value());
  const double want = 2 * 5 * 2 * host;
  EXPECT_NEAR(want, 269.6e-6, 1e-15);
  EXPECT_NEAR(step(eager) - step(compiled), want, 1e-9 * want);
  // A CUDA-graphed step (host_overhead 0) is the kernel floor alone, and shorter.
  const Scenario graphed =
      one_gpu(64, 2, 256, 64, 128, "{preset: fsdp2, compile: true, host_overhead: 0 s}");
  EXPECT_LT(step(graphed), step(compiled));
}

// The host time per kernel is the system's own (cluster.gpu.host_overhead, measured in
// NVIDIA/TransformerEngine issue 2053 as a bf16 torch.nn.Linear forward's CPU time: 13.48 us
// on a DGX H100's Xeon 8480C, 37.08 us on a GB200's Grace), unless the stack sets it. On
// the tiny model, where every run is
// host-bound, the GB200's step is longer than with the DGX H100's figure by the same 66
// kernels (HostTermCountsTheKernelsOfEachRun) x (37.08 - 13.48) us = 1,557.6 us.
Scenario tiny_on(const std::string& cluster, const std::string& stack) {
  const std::string yaml = fmt::format(R"(
cluster: {{{}, gpus_per_node: 1}}
model: {{family: decoder, layers: 2, hidden: 64, heads: 2, ffn: 256, vocab: 128, seq_len: 64,
        activation: swiglu, norm: rmsnorm, position_embedding: rope, tied_embeddings: false,
        bias: false, dropout: false}}
parallelism: {{tp: 1, pp: 1, dp: 1, microbatch: 1, global_batch: 1}}
training: {{precision: bf16, recompute: none, stack: {}}}
)",
                                       cluster, stack);
  return load_scenario_text(yaml, "host.yaml");
}

TEST(Stack, HostTimeIsTheSystemsOwnByDefault) {
  const Scenario h100 = tiny_on("preset: dgx-h100", "{preset: fsdp2, compile: true}");
  const Scenario gb200 = tiny_on("preset: gb200-nvl72", "{preset: fsdp2, compile: true}");
  EXPECT_DOUBLE_EQ(h100.training.stack.host_overhead.value(), 13.48e-6);
  EXPECT_DOUBLE_EQ(gb200.training.stack.host_overhead.value(), 37.08e-6);
  // The stack's own figure wins over the system's; the system's can be set in the file.
  EXPECT_DOUBLE_EQ(
      tiny_on("preset: gb200-nvl72", "{preset: fsdp2, host_overhead: 5 us}")
          .training.stack.host_overhead.value(),
      5e-6);
  EXPECT_DOUBLE_EQ(tiny_on("preset: dgx-h100, gpu: {host_overhead: 20 us}", "fsdp2")
                       .training.stack.host_overhead.value(),
                   20e-6);
  // The GB200 step against the same step at the DGX H100 host's figure.
  const Scenario gb200_at_h100_host = tiny_on(
      "preset: gb200-nvl72", "{preset: fsdp2, compile: true, host_overhead: 13.48 us}");
  EXPECT_NEAR(step(gb200) - step(gb200_at_h100_host), 66 * (37.08e-6 - 13.48e-6), 1e-12);
}

// The kernels each run issues, counted by hand on the tiny compiled model, where every op
// sits on the 3 us kernel floor (one floor an op each way, a GEMM's backward included),
// against the same step without host time. A transformer layer has 12 ops (attn.norm,
// qkv, rope_q, rope_k, core, proj, residual; mlp.norm, fc1, act, fc2, residual), 4 of
// them GEMMs: forward 12 kernels, 12 x 13.48 = 161.76 us against 12 x 3 = 36 us of GPU
// time, 125.76 us more; backward 12 + 4 = 16 kernels, 215.68 us against 36 us, 179.68 us
// more; 305.44 us a layer, 610.88 us for two. The embedding, one lookup each way: 2 x
// (13.48 - 3) = 20.96 us. The head (norm, output GEMM, loss): forward 3 kernels, 40.44 - 9
// = 31.44 us; backward 4, 53.92 - 9 = 44.92 us. The fused optimizer step, one call:
// 13.48 - 3 = 10.48 us. In all 610.88 + 20.96 + 76.36 + 10.48 = 718.68 us.
TEST(Stack, HostTermCountsTheKernelsOfEachRun) {
  const Scenario host = one_gpu(64, 2, 256, 64, 128, "{preset: fsdp2, compile: true}");
  const Scenario none =
      one_gpu(64, 2, 256, 64, 128, "{preset: fsdp2, compile: true, host_overhead: 0 s}");
  const auto model = make_roofline_model(none);
  const Workload w = build_workload(none.model, none.training, shard_of(none.parallelism));
  size_t ops = 0;
  for (const Layer& l : w.layers) {
    for (const Op& op : l.ops) {
      ++ops;
      ASSERT_DOUBLE_EQ(model->op_time(op, Pass::forward).value(), 3e-6) << op.name;
      ASSERT_DOUBLE_EQ(model->op_time(op, Pass::backward).value(), 3e-6) << op.name;
    }
  }
  ASSERT_EQ(ops, 1 + 2 * 12 + 3u);
  EXPECT_NEAR(step(host) - step(none), 718.68e-6, 1e-12);
}

// Host time against bytes: the bandwidth-bound model of the first test. Each transformer
// layer's pass (hundreds of microseconds: about 2 x 4096 x 16.8e6 FLOPs forward at the
// H100's rate) is far longer than its kernels x 13.48 us (at most 30 kernels a pass here),
// so the host term adds nothing there, and the eager-compiled difference stays the bytes
// at the HBM rate. Only the embedding layer, one lookup kernel each way (its 8.4 MB
// written take about 3 us), is host-bound: it takes 13.48 us a pass instead of its GPU
// time, max(0, 13.48 us - t) more each way.
TEST(Stack, HostTimeHiddenByLargeKernels) {
  const Scenario eager = one_gpu(1024, 8, 4096, 32768, 4096, "fsdp2");
  const Scenario eager0 =
      one_gpu(1024, 8, 4096, 32768, 4096, "{preset: fsdp2, host_overhead: 0 s}");
  const double host = eager.training.stack.host_overhead.value();
  const auto model = make_roofline_model(eager);
  const Workload w = build_workload(eager.model, eager.training, shard_of(eager.parallelism));
  double want = 0;
  for (const Layer& l : w.layers) {
    if (l.kind != LayerKind::embedding) continue;
    ASSERT_EQ(l.ops.size(), 1u);
    for (Pass p : {Pass::forward, Pass::backward})
      want += std::max(0.0, host - model->op_time(l.ops[0], p).value());
  }
  EXPECT_GT(want, 0);
  EXPECT_LT(want, 2 * host);
  EXPECT_NEAR(step(eager) - step(eager0), want, 1e-12);
  // Compiled, the same: the difference of the first test holds with host time.
  const Scenario compiled = one_gpu(1024, 8, 4096, 32768, 4096, "{preset: fsdp2, compile: true}");
  const double extra = 4160749568.0 / hbm(compiled);
  EXPECT_NEAR(step(eager) - step(compiled), extra, 1e-9 * extra);
}

// training.stack.norm unfused against fused, every other mechanism the same (compiled
// fsdp2, whose RoPE, activation and loss are fused either way). Per norm (n = T h =
// 4096 x 1024 elements, e = 2): the unfused chain moves (28 + 4e) n = 36 n forward and
// (76 + 8e) n = 92 n backward, the fused kernel 2e n = 4 n and 3e n = 6 n: 118 n more.
// Five norms: two a layer and the final one before the head. Every op of the chain but
// the row statistics' (bytes left out) moves at least 4 n = 16.8 MB, above the kernel
// floor, so the difference is the bytes at the HBM rate plus that op's floor each way:
//   5 x 118 x 4,194,304 = 2,474,639,360 bytes, and 5 x 2 x kernel_launch.
TEST(Stack, UnfusedNormIsItsExtraBytesAtHbmRatePlusTheRowStatisticsFloor) {
  const Scenario fused = one_gpu(1024, 8, 4096, 32768, 4096, "{preset: fsdp2, compile: true}");
  const Scenario unfused =
      one_gpu(1024, 8, 4096, 32768, 4096, "{preset: fsdp2, compile: true, norm: unfused}");
  ASSERT_EQ(fused.training.stack.norm, StackSpec::NormKernels::fused);
  const double launch = fused.cluster.gpu.kernel_launch->value();
  ASSERT_GT(4 * 4096.0 * 1024 / hbm(fused), launch);
  const double extra = 5 * 118 * 4194304.0;
  EXPECT_DOUBLE_EQ(extra, 2474639360.0);
  const double want = extra / hbm(fused) + 5 * 2 * launch;
  EXPECT_NEAR(step(unfused) - step(fused), want, 1e-9 * want);
}

// A model too small for any kernel to leave the floor (n = 128 x 64 elements; the largest
// op, the product's backward, moves 36 n = 295 kB, about 0.1 us): the unfused chain is 7
// ops against one, 6 more floors each way at each of the 5 norms.
TEST(Stack, UnfusedNormOfATinyModelIsTheLaunchTerm) {
  const Scenario fused =
      one_gpu(64, 2, 256, 64, 128, "{preset: fsdp2, compile: true, host_overhead: 0 s}");
  const Scenario unfused = one_gpu(64, 2, 256, 64, 128,
                                   "{preset: fsdp2, compile: true, norm: unfused, "
                                   "host_overhead: 0 s}");
  const double launch = fused.cluster.gpu.kernel_launch->value();
  ASSERT_LT(36 * 128.0 * 64 / hbm(fused), launch);
  const double want = 5 * 6 * 2 * launch;
  EXPECT_NEAR(step(unfused) - step(fused), want, 1e-9 * want);
}

// The issue's case: eager FSDP1 (Hugging Face / fms-fsdp style) against the same stack
// compiled. T = 8192 tokens, h = 1024, f = 4096, V = 32768, e = 2, n = T h = 8,388,608.
// Compiled, Inductor fuses RoPE, SwiGLU, the loss and the norms; the optimizer stays
// foreach in both. Extra bytes of the eager step:
//  - RoPE rotate_half per tensor 10 e n each way against the fused 2 e n: 32 n, 64 n for
//    q and k, a layer;
//  - SwiGLU: 6 f e = 12 f bytes a token more, a layer;
//  - the norms: 118 n each, 5 of them (above);
//  - the loss: 52 against 28 bytes a logit, 24 T V.
//   2 (64 n + 12 T f) + 5 x 118 n + 24 T V
//   = 2 (536,870,912 + 402,653,184) + 4,949,278,720 + 6,442,450,944 = 13,270,777,856,
// at the HBM rate, every kernel above the floor (the smallest, rotate_half's neg, moves
// e n = 16.8 MB), plus the norms' row-statistics op: 5 x 2 x kernel_launch.
TEST(Stack, EagerFsdp1AgainstCompiledIsTheUnfusedBytesAtHbmRate) {
  const Scenario eager = one_gpu(1024, 8, 4096, 32768, 8192, "fsdp1");
  const Scenario compiled = one_gpu(1024, 8, 4096, 32768, 8192, "{preset: fsdp1, compile: true}");
  ASSERT_EQ(eager.training.stack.norm, StackSpec::NormKernels::unfused);
  ASSERT_EQ(compiled.training.stack.norm, StackSpec::NormKernels::fused);
  const double launch = compiled.cluster.gpu.kernel_launch->value();
  const double n = 8192.0 * 1024;
  ASSERT_GT(2 * n / hbm(compiled), launch);
  const double extra = 2 * (64 * n + 12 * 8192.0 * 4096) + 5 * 118 * n + 24 * 8192.0 * 32768;
  EXPECT_DOUBLE_EQ(extra, 13270777856.0);
  const double want = extra / hbm(compiled) + 5 * 2 * launch;
  EXPECT_NEAR(step(eager) - step(compiled), want, 1e-9 * want);
}

// The unfused chain's bytes per element and what it keeps for backward: xf in fp32 and y
// in 16 bits, (4 + e) n, against the fused kernel's input, e n.
TEST(Stack, UnfusedNormChainBytesAndSavedTensors) {
  const Scenario f = one_gpu(1024, 8, 4096, 32768, 4096, "{preset: fsdp2, norm: fused}");
  const Scenario u = one_gpu(1024, 8, 4096, 32768, 4096, "{preset: fsdp2, norm: unfused}");
  auto sums = [](const Scenario& s) {
    const Workload w = build_workload(s.model, s.training, shard_of(s.parallelism));
    double fwd = 0, bwd = 0, saved = 0;
    int ops = 0;
    for (const Op& op : w.layers.at(1).ops) {
      if (op.name.rfind("mlp.norm", 0) != 0) continue;
      ++ops;
      fwd += (op.fwd_read + op.fwd_written).value();
      bwd += (op.bwd_read + op.bwd_written).value();
      saved += op.saved.value();
    }
    return std::make_tuple(ops, fwd, bwd, saved);
  };
  const double n = 4096.0 * 1024;
  EXPECT_EQ(sums(f), std::make_tuple(1, 4 * n, 6 * n, 2 * n));
  EXPECT_EQ(sums(u), std::make_tuple(7, 36 * n, 92 * n, 6 * n));
}

TEST(Stack, NormFollowsThePresetAndTheModel) {
  using N = StackSpec::NormKernels;
  EXPECT_EQ(one_gpu(64, 2, 256, 64, 128, "fsdp1").training.stack.norm, N::unfused);
  EXPECT_EQ(one_gpu(64, 2, 256, 64, 128, "{preset: fsdp1, compile: true}").training.stack.norm,
            N::fused);
  EXPECT_EQ(one_gpu(64, 2, 256, 64, 128, "fsdp2").training.stack.norm, N::fused);
  EXPECT_EQ(one_gpu(64, 2, 256, 64, 128, "megatron-core").training.stack.norm, N::fused);
  EXPECT_EQ(one_gpu(64, 2, 256, 64, 128, "deepspeed").training.stack.norm, N::fused);
  EXPECT_EQ(one_gpu(64, 2, 256, 64, 128, "{preset: fsdp1, norm: fused}").training.stack.norm,
            N::fused);
  // A LayerNorm model under eager FSDP1 runs nn.LayerNorm: one kernel; unfused is an error.
  const std::string gpt =
      "cluster: {preset: dgx-h100}\nmodel: {preset: gpt3-175b}\n"
      "parallelism: {tp: 1, dp: 8, global_batch: 8}\ntraining: {stack: ";
  EXPECT_EQ(load_scenario_text(gpt + "fsdp1}\n", "g.yaml").training.stack.norm, N::fused);
  EXPECT_THROW(load_scenario_text(gpt + "{preset: fsdp1, norm: unfused}}\n", "g.yaml"), InputError);
}

// training.stack.attention flash1 against flash2 on one H100: only the fused-attention
// kernel's rate changes, to 0.41 of FlashAttention-2's (calibrate/compute_model.h: the
// FlashAttention-2 paper's Figures 4(b) and 7(b), 82 / 201 and 137 / 335 TFLOP/s). A full
// mask, so every score tile is computed. Per layer (b = 1, s = 4096, h = a d = 1024) the
// forward is 4 b s^2 h = 4 x 4096^2 x 1024 = 68,719,476,736 FLOPs, the backward 2.5x the
// forward's time: 3.5 F at each rate. FlashAttention-2's rate: 989.4 TFLOP/s x 0.33 =
// 326.502 TFLOP/s; the first FlashAttention's 0.41 of it, 133.866 TFLOP/s; each at its
// own kernel's rate at 4k without a mask over 8k (flash_shape_factor, the FlashAttention-2
// paper's Figure 7: 326 / 335 and 131 / 137): 317.730 and 128.003 TFLOP/s. Per layer
//   3.5 x 68.72e9 x (1 / 128.003e12 - 1 / 317.730e12) = 3.5 x 68.72e9 x 4.6650e-15
//   = 1.1220 ms, two layers 2.2440 ms.
// Each layer's pass (0.76 ms of attention alone under flash2) is far longer than its
// ~30 kernels x 13.48 us of host time (0.40 ms), so the host term adds nothing to either.
// The attention tests' model on one H100: two layers, h = 1024, 8 heads, s = 4096 with a
// full mask (every score tile computed), bf16, one sequence, under `stack`.
Scenario attention_h100(const std::string& stack, bool dropout = false) {
  return load_scenario_text(
      fmt::format(R"(
cluster: {{preset: dgx-h100, gpus_per_node: 1}}
model: {{family: decoder, layers: 2, hidden: 1024, heads: 8, ffn: 4096, vocab: 32768,
        seq_len: 4096, activation: swiglu, norm: rmsnorm, position_embedding: rope,
        tied_embeddings: false, bias: false, dropout: {}, attention_mask: full}}
parallelism: {{tp: 1, pp: 1, dp: 1, microbatch: 1, global_batch: 1}}
training: {{precision: bf16, recompute: none, stack: {}}}
)",
                  dropout, stack),
      "attention.yaml");
}

TEST(Stack, FirstFlashAttentionIsTheAttentionTimeAtItsRate) {
  const Scenario fa2 = attention_h100("fsdp1");
  const Scenario fa1 = attention_h100("{preset: fsdp1, attention: flash1}");
  EXPECT_EQ(fa2.training.stack.attention, StackSpec::AttentionKernel::flash2);
  EXPECT_EQ(fa1.training.stack.attention, StackSpec::AttentionKernel::flash1);
  const Workload w = build_workload(fa1.model, fa1.training, shard_of(fa1.parallelism));
  for (const Layer& l : w.layers) {
    for (const Op& op : l.ops) {
      if (op.name == "attn.core") {
        ASSERT_DOUBLE_EQ(op.computed_share, 1.0);
      }
    }
  }
  const double flops = 4 * 4096.0 * 4096 * 1024;
  EXPECT_DOUBLE_EQ(flops, 68719476736.0);
  const double rate2 = 989.4e12 * 0.33 * 326 / 335, rate1 = 989.4e12 * 0.33 * 0.41 * 131 / 137;
  const double want = 2 * 3.5 * flops * (1 / rate1 - 1 / rate2);
  EXPECT_NEAR(want, 2.2440e-3, 1e-6);
  EXPECT_NEAR(step(fa1) - step(fa2), want, 1e-9 * want);
}

// cuDNN's fused attention against FlashAttention-2 on one H100, the first test's model:
// only the fused-attention kernel's rate changes. cuDNN at 4k unmasked: 989.4 TFLOP/s x
// cudnn_attention_efficiency 0.556 x 568.55 / 550.35 (its curve measured on an H200,
// calibrate/data/h200-20261204) = 568.298 TFLOP/s; FlashAttention-2's 317.730 as above.
//   2 layers x 3.5 x 68.72e9 x (1 / 317.730e12 - 1 / 568.298e12) = 0.66753 ms.
// With attention dropout both kernels slow (kFlashDropout 0.863, kCudnnDropout 0.708,
// measured on that H200 at 2k / 4k / 8k causal, dropout 0.1), and the other dropout ops are
// the same in both runs: 2 x 3.5 x 68.72e9 x (1 / (0.863 x 317.730e12) - 1 / (0.708 x
// 568.298e12)) = 0.55877 ms.
TEST(Stack, CudnnAttentionIsTheAttentionTimeAtItsRate) {
  auto scenario = [](const std::string& attention, const std::string& dropout) {
    return attention_h100("{preset: megatron-core, attention: " + attention + "}",
                          dropout == "true");
  };
  const double flops = 4 * 4096.0 * 4096 * 1024;
  const double fa2 = 989.4e12 * 0.33 * 326 / 335, cudnn = 989.4e12 * 0.556 * 568.55 / 550.35;
  const double want = 2 * 3.5 * flops * (1 / fa2 - 1 / cudnn);
  EXPECT_NEAR(want, 0.66753e-3, 1e-8);
  EXPECT_NEAR(step(scenario("flash2", "false")) - step(scenario("cudnn", "false")), want,
              1e-9 * want);
  const double dropped = 2 * 3.5 * flops * (1 / (0.863 * fa2) - 1 / (0.708 * cudnn));
  EXPECT_NEAR(dropped, 0.55877e-3, 1e-8);
  EXPECT_NEAR(step(scenario("flash2", "true")) - step(scenario("cudnn", "true")), dropped,
              1e-9 * dropped);
}

// Transformer Engine's stacks (Megatron-Core, NeMo) run cuDNN's fused attention on a GPU
// whose preset measured its rate (the H100's), FlashAttention-2 elsewhere (the A100's: TE
// prefers cuDNN on Hopper and newer only) and under PyTorch's and DeepSpeed's presets.
TEST(Stack, AttentionKernelByPresetAndGpu) {
  for (const char* p : {"deepspeed", "fsdp1", "fsdp2", "{preset: fsdp2, compile: true}"}) {
    EXPECT_EQ(one_gpu(64, 2, 256, 64, 128, p).training.stack.attention,
              StackSpec::AttentionKernel::flash2)
        << p;
  }
  for (const char* p : {"megatron-core", "nemo"}) {
    EXPECT_EQ(one_gpu(64, 2, 256, 64, 128, p).training.stack.attention,
              StackSpec::AttentionKernel::cudnn)
        << p;
  }
  const std::string a100 =
      "cluster: {preset: dgx-a100}\nmodel: {preset: gpt3-175b}\n"
      "parallelism: {tp: 1, dp: 8, global_batch: 8}\ntraining: {stack: ";
  EXPECT_EQ(load_scenario_text(a100 + "megatron-core}\n", "g.yaml").training.stack.attention,
            StackSpec::AttentionKernel::flash2);
  // Named on a GPU without a cuDNN rate: refused, naming the missing figure.
  try {
    load_scenario_text(a100 + "{preset: megatron-core, attention: cudnn}}\n", "g.yaml");
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("cudnn_attention_efficiency"), std::string::npos)
        << e.what();
  }
  // Without fused attention there is no kernel to name.
  const std::string gpt =
      "cluster: {preset: dgx-h100}\nmodel: {preset: gpt3-175b}\n"
      "parallelism: {tp: 1, dp: 8, global_batch: 8}\ntraining: {flash_attention: false, stack: ";
  EXPECT_THROW(load_scenario_text(gpt + "{preset: fsdp1, attention: flash1}}\n", "g.yaml"),
               InputError);
  EXPECT_NO_THROW(load_scenario_text(gpt + "fsdp1}\n", "g.yaml"));
}

TEST(Stack, PresetsSetTheirMechanisms) {
  const Scenario mc = one_gpu(64, 2, 256, 64, 128, "megatron-core");
  EXPECT_EQ(mc.training.stack.rope, StackSpec::Rope::fused);
  EXPECT_TRUE(mc.training.stack.activation_fusion);
  EXPECT_FALSE(mc.training.cross_entropy_fusion);
  const Scenario nemo = one_gpu(64, 2, 256, 64, 128, "nemo");
  EXPECT_TRUE(nemo.training.cross_entropy_fusion);
  const Scenario ds = one_gpu(64, 2, 256, 64, 128, "deepspeed");
  EXPECT_EQ(ds.training.stack.rope, StackSpec::Rope::rotate_half);
  EXPECT_TRUE(ds.training.stack.activation_fusion);
  const Scenario f1 = one_gpu(64, 2, 256, 64, 128, "fsdp1");
  EXPECT_EQ(f1.training.stack.rope, StackSpec::Rope::rotate_half);
  EXPECT_FALSE(f1.training.stack.activation_fusion);
  const Scenario f2 = one_gpu(64, 2, 256, 64, 128, "fsdp2");
  EXPECT_EQ(f2.training.stack.rope, StackSpec::Rope::complex);
  EXPECT_FALSE(f2.training.cross_entropy_fusion);
  const Scenario f2c = one_gpu(64, 2, 256, 64, 128, "{preset: fsdp2, compile: true}");
  EXPECT_EQ(f2c.training.stack.rope, StackSpec::Rope::fused);
  EXPECT_TRUE(f2c.training.stack.activation_fusion);
  EXPECT_TRUE(f2c.training.cross_entropy_fusion);
  // An override wins over the preset, compiled or not.
  const Scenario o = one_gpu(64, 2, 256, 64, 128,
                             "{preset: fsdp2, compile: true, rope: rotate_half, "
                             "cross_entropy_fusion: false}");
  EXPECT_EQ(o.training.stack.rope, StackSpec::Rope::rotate_half);
  EXPECT_TRUE(o.training.stack.activation_fusion);
  EXPECT_FALSE(o.training.cross_entropy_fusion);
  // The training-level key keeps working beside the stack.
  const Scenario ce = load_scenario_text(
      "cluster: {preset: dgx-h100}\nmodel: {preset: llama2-7b}\n"
      "parallelism: {tp: 1, dp: 8, global_batch: 8}\n"
      "training: {stack: fsdp2, cross_entropy_fusion: true}\n",
      "ce.yaml");
  EXPECT_TRUE(ce.training.cross_entropy_fusion);
}

// The rotate_half chain: five kernels a tensor moving 10 e n each way.
TEST(Stack, RotateHalfMovesTenPassesOfEachTensor) {
  const Scenario s = one_gpu(1024, 8, 4096, 32768, 4096, "fsdp1");
  const Workload w = build_workload(s.model, s.training, shard_of(s.parallelism));
  double fwd = 0, bwd = 0;
  int kernels = 0;
  for (const Op& op : w.layers.at(1).ops) {
    if (op.name.rfind("attn.rope_q", 0) != 0) continue;
    ++kernels;
    fwd += (op.fwd_read + op.fwd_written).value();
    bwd += (op.bwd_read + op.bwd_written).value();
  }
  const double n = 4096.0 * 1024;
  EXPECT_EQ(kernels, 5);
  EXPECT_DOUBLE_EQ(fwd, 10 * 2 * n);
  EXPECT_DOUBLE_EQ(bwd, 10 * 2 * n);
}

// A stack named in the file runs its own ZeRO-3 / FSDP implementation.
TEST(Stack, NamesTheFsdpImplementation) {
  auto impl = [](const std::string& stack, const std::string& fsdp) {
    return load_scenario_text(
               fmt::format("cluster: {{preset: dgx-h100}}\nmodel: {{preset: llama2-7b}}\n"
                           "parallelism: {{tp: 1, dp: 8, global_batch: 8, {}}}\n"
                           "training: {{stack: {}}}\n",
                           fsdp, stack),
               "f.yaml")
        .parallelism.fsdp_impl;
  };
  using I = ParallelismSpec::FsdpImpl;
  EXPECT_EQ(impl("fsdp2", "zero_stage: 3"), I::fsdp2);
  EXPECT_EQ(impl("fsdp1", "zero_stage: 3"), I::fsdp1);
  EXPECT_EQ(impl("deepspeed", "fsdp: true"), I::deepspeed);
  EXPECT_EQ(impl("megatron-core", "zero_stage: 3"), I::megatron_fsdp);
  // The file's own implementation wins.
  EXPECT_EQ(impl("fsdp2", "fsdp: {implementation: fsdp1}"), I::fsdp1);
}

// DeepSpeed's ZeRO config turns overlap_comm on only at stage 3, and stages 1 and 2
// all-gather the updated weights inside the optimizer step: the deepspeed preset's
// defaults for orrery's two overlap switches, which a file still sets itself.
TEST(Stack, DeepSpeedOverlapsAsItsZeroConfigDefaults) {
  auto training = [](const std::string& stack, const std::string& parallelism,
                     const std::string& extra) {
    return load_scenario_text(
               fmt::format("cluster: {{preset: dgx-h100}}\nmodel: {{preset: llama2-7b}}\n"
                           "parallelism: {{tp: 1, global_batch: 8, {}}}\n"
                           "training: {{stack: {}{}}}\n",
                           parallelism, stack, extra),
               "o.yaml")
        .training;
  };
  for (const char* zero : {"dp: 8, zero_stage: 0", "dp: 8, zero_stage: 1", "dp: 8, zero_stage: 2"}) {
    const TrainingSpec t = training("deepspeed", zero, "");
    EXPECT_FALSE(t.overlap_grad_reduce) << zero;
    EXPECT_FALSE(t.overlap_param_gather) << zero;
  }
  for (const char* zero : {"dp: 8, zero_stage: 3", "dp: 8, fsdp: true"}) {
    const TrainingSpec t = training("deepspeed", zero, "");
    EXPECT_TRUE(t.overlap_grad_reduce) << zero;
    EXPECT_TRUE(t.overlap_param_gather) << zero;
  }
  // DeepSpeed's engine in bf16 shards as ZeRO-1 at stage 0 (its BF16_Optimizer); in fp16
  // (FP16_Optimizer) it does not.
  const auto stage = [](const std::string& precision) {
    return load_scenario_text("cluster: {preset: dgx-h100}\nmodel: {preset: llama2-7b}\n"
                              "parallelism: {tp: 1, pp: 2, dp: 4, global_batch: 8, "
                              "pipeline_engine: deepspeed}\n"
                              "training: {precision: " + precision + "}\n",
                              "o.yaml")
        .parallelism.zero_stage;
  };
  EXPECT_EQ(stage("bf16"), 1);
  EXPECT_EQ(stage("fp16"), 0);
  // DeepSpeed's pipeline engine reduces in its ReduceGrads step under any preset.
  const TrainingSpec engine = training("megatron-core", "pp: 2, dp: 4, pipeline_engine: deepspeed", "");
  EXPECT_FALSE(engine.overlap_grad_reduce);
  EXPECT_FALSE(engine.overlap_param_gather);
  // Megatron-LM's defaults under the other presets; the file's own value wins.
  EXPECT_TRUE(training("megatron-core", "dp: 8, zero_stage: 1", "").overlap_grad_reduce);
  EXPECT_TRUE(training("fsdp2", "dp: 8, zero_stage: 1", "").overlap_param_gather);
  const TrainingSpec set =
      training("deepspeed", "dp: 8, zero_stage: 2",
               ", overlap_grad_reduce: true, overlap_param_gather: true");
  EXPECT_TRUE(set.overlap_grad_reduce);
  EXPECT_TRUE(set.overlap_param_gather);
}

// The error loading one DGX H100 of `model` under training.stack `stack` gives, with
// `extra` appended to the parallelism section; "no error" when it loads.
std::string stack_error(const std::string& stack, const std::string& model,
                        const std::string& extra = "") {
  try {
    load_scenario_text(fmt::format("cluster: {{preset: dgx-h100}}\nmodel: {{preset: {}}}\n"
                                   "parallelism: {{tp: 1, dp: 8, global_batch: 8{}}}\n"
                                   "training: {{stack: {}}}\n",
                                   model, extra, stack),
                       "bad.yaml");
  } catch (const InputError& e) {
    return std::string(e.what());
  }
  return std::string("no error");
}

TEST(Stack, BadStacksAreErrors) {
  auto error = [](const std::string& stack, const std::string& model = "llama2-7b") {
    return stack_error(stack, model);
  };
  EXPECT_NE(error("megatron").find("training.stack"), std::string::npos);
  EXPECT_NE(error("{preset: megatron-core, compile: true}").find("training.stack.compile"),
            std::string::npos);
  EXPECT_NE(error("{preset: nemo, compile: true}").find("fsdp1 and fsdp2 only"),
            std::string::npos);
  EXPECT_NE(error("{preset: fsdp2, fuse: all}").find("training.stack.fuse"), std::string::npos);
  EXPECT_NE(error("{preset: fsdp2, rope: complex}", "gpt3-175b").find("training.stack.rope"),
            std::string::npos);
  // Separate projections count eager autograd's adds; compiled, Inductor's kernels differ.
  EXPECT_NE(error("{preset: fsdp1, compile: true, projections: separate}")
                .find("training.stack.projections"),
            std::string::npos);
  EXPECT_NE(error("{preset: fsdp1, projections: split}").find("split"), std::string::npos);
  EXPECT_EQ(error("{preset: fsdp1, projections: separate}"), "no error");
}

// training.stack.optimizer: the presets' kernel form, and foreach against fused derived by
// hand. bf16 training with Megatron's defaults: fp32 gradient G = 4, fp32 master P = 4,
// fp32 moments m = v = 4, the bf16 weights written (2 bytes), no loss scaling. Fused:
// G + 2P + 2m + 2v + 2 = 30 bytes a parameter in one kernel. Foreach (Adam, no weight
// decay pass): lerp 2m + G = 12, mul 2v = 8, addcmul 2v + G = 12, sqrt 8, div 8, add 8,
// addcdiv 2P + m + v = 16, then the bf16 write 2: 8 passes, 74 bytes. AdamW adds its
// weight-decay pass 2P = 8: 9 passes, 82 bytes.
// A two-layer Llama-style model on one H100 with the given parallelism and training
// sections (their values, as YAML flow maps).
Scenario one_h100(const std::string& parallelism, const std::string& training,
                  const std::string& file) {
  return load_scenario_text(fmt::format(R"(
cluster: {{preset: dgx-h100, gpus_per_node: 1}}
model: {{family: decoder, layers: 2, hidden: 1024, heads: 8, ffn: 4096, vocab: 32768,
        seq_len: 4096, activation: swiglu, norm: rmsnorm, position_embedding: rope,
        tied_embeddings: false, bias: false, dropout: false}}
parallelism: {}
training: {}
)",
                                        parallelism, training),
                            file);
}

Scenario with_optimizer(const std::string& optimizer, const std::string& stack) {
  return one_h100("{tp: 1, pp: 1, dp: 1, microbatch: 1, global_batch: 1}",
                  fmt::format("{{precision: bf16, optimizer: {}, stack: {}}}", optimizer, stack),
                  "opt.yaml");
}

TEST(Stack, OptimizerKernelsFollowThePreset) {
  using K = StackSpec::OptimizerKernels;
  EXPECT_EQ(with_optimizer("adam", "fsdp1").training.stack.optimizer, K::foreach);
  EXPECT_EQ(with_optimizer("adamw", "{preset: fsdp1, compile: true}").training.stack.optimizer,
            K::foreach);
  EXPECT_EQ(with_optimizer("adamw", "fsdp2").training.stack.optimizer, K::fused);
  EXPECT_EQ(with_optimizer("adamw", "megatron-core").training.stack.optimizer, K::fused);
  EXPECT_EQ(with_optimizer("adamw", "deepspeed").training.stack.optimizer, K::fused);
  EXPECT_EQ(with_optimizer("sgd", "fsdp1").training.stack.optimizer, K::fused);
  EXPECT_EQ(with_optimizer("adam", "{preset: fsdp1, optimizer: fused}").training.stack.optimizer,
            K::fused);
  EXPECT_THROW(with_optimizer("lamb", "{preset: fsdp2, optimizer: foreach}"), InputError);
}

// Bandwidth-bound (1e9 parameters: the smallest pass, 2 bytes a parameter, takes 2e9 / HBM,
// about 0.5 ms, far above kernel_launch): foreach - fused = (74 - 30) e9 / HBM.
TEST(Stack, ForeachOptimizerIsItsExtraBytesAtHbmRate) {
  const Scenario foreach = with_optimizer("adam", "fsdp1");
  const Scenario fused = with_optimizer("adam", "{preset: fsdp1, optimizer: fused}");
  const Scenario adamw = with_optimizer("adamw", "fsdp1");
  const double h = hbm(fused), n = 1e9;
  ASSERT_GT(2 * n / h, 100 * fused.cluster.gpu.kernel_launch->value());
  const double t_fused = make_roofline_model(fused)->optimizer_time(n).value();
  const double t_foreach = make_roofline_model(foreach)->optimizer_time(n).value();
  const double t_adamw = make_roofline_model(adamw)->optimizer_time(n).value();
  EXPECT_NEAR(t_fused, 30 * n / h, 1e-12);
  EXPECT_NEAR(t_foreach - t_fused, 44 * n / h, 1e-12);
  EXPECT_NEAR(t_adamw, 82 * n / h, 1e-12);
}

// Launch-bound: a model of two tensors of 1,000 elements (2,000 parameters, at most 148 kB a
// pass, about 0.04 us at the H100's HBM rate, under the 3 us floor): the fused step is one
// kernel launch, foreach one launch a pass: 8 (Adam), 9 (AdamW). The tensor count does not
// enter: each foreach op is one multi-tensor launch over the whole list.
TEST(Stack, ForeachOptimizerOnATinyModelIsOneLaunchAPass) {
  // Without host time (host_overhead 0, a CUDA-graphed step): the kernel floor.
  const Scenario foreach = with_optimizer("adam", "{preset: fsdp1, host_overhead: 0 s}");
  const double launch = foreach.cluster.gpu.kernel_launch->value();
  const double n = 2 * 1000.0;
  ASSERT_LT(82 * n / hbm(foreach), launch);
  EXPECT_NEAR(make_roofline_model(
                  with_optimizer("adam", "{preset: fsdp1, optimizer: fused, host_overhead: 0 s}"))
                  ->optimizer_time(n)
                  .value(),
              launch, 1e-15);
  EXPECT_NEAR(make_roofline_model(foreach)->optimizer_time(n).value(), 8 * launch, 1e-15);
  EXPECT_NEAR(make_roofline_model(with_optimizer("adamw", "{preset: fsdp1, host_overhead: 0 s}"))
                  ->optimizer_time(n)
                  .value(),
              9 * launch, 1e-15);
}

// The same tiny optimizer step under the preset's host time (13.48 us a Python call,
// NVIDIA/TransformerEngine issue 2053), longer than the 3 us kernel floor: each pass is one
// call, so the fused step takes 13.48 us and foreach 8 x 13.48 = 107.84 us (AdamW
// 9 x 13.48 = 121.32 us).
TEST(Stack, ForeachOptimizerOnATinyModelIsOneHostCallAPass) {
  const Scenario foreach = with_optimizer("adam", "fsdp1");
  const double host = foreach.training.stack.host_overhead.value();
  EXPECT_DOUBLE_EQ(host, 13.48e-6);
  ASSERT_GT(host, foreach.cluster.gpu.kernel_launch->value());
  const double n = 2 * 1000.0;
  EXPECT_NEAR(make_roofline_model(with_optimizer("adam", "{preset: fsdp1, optimizer: fused}"))
                  ->optimizer_time(n)
                  .value(),
              13.48e-6, 1e-15);
  EXPECT_NEAR(make_roofline_model(foreach)->optimizer_time(n).value(), 107.84e-6, 1e-15);
  EXPECT_NEAR(make_roofline_model(with_optimizer("adamw", "fsdp1"))->optimizer_time(n).value(),
              121.32e-6, 1e-15);
}

// A tiny MoE model (2 layers, 4 experts of width 64, top 2, uniform load) on `gpus` H100s
// of one node with ep = dp = gpus, every kernel on the 3 us floor and every run of kernels
// host-bound (13.48 us a kernel issued, Megatron-Core's preset), under `moe` (extra MoE
// keys), `exchange` (parallelism.ep_alltoall) and `precision`.
Scenario tiny_moe(int gpus, const std::string& moe, const std::string& exchange,
                  const std::string& precision) {
  const std::string yaml = fmt::format(R"(
cluster: {{preset: dgx-h100, gpus_per_node: {0}}}
model: {{family: decoder, layers: 2, hidden: 64, heads: 2, ffn: 256, vocab: 128, seq_len: 64,
        activation: swiglu, norm: rmsnorm, position_embedding: rope, tied_embeddings: false,
        bias: false, dropout: false,
        moe: {{experts: 4, top_k: 2, expert_ffn: 64, load_imbalance: 1{1}}}}}
parallelism: {{tp: 1, pp: 1, dp: {0}, ep: {0}, ep_alltoall: {2}, microbatch: 1, global_batch: {0}}}
training: {{precision: {3}, recompute: none, stack: megatron-core}}
)",
                                       gpus, moe, exchange, precision);
  return load_scenario_text(yaml, "moe.yaml");
}

// The host's wait for the expert counts (model/moe_routing.h), dropless against padded to
// capacity 1.0 (with uniform load the same rows: capacity T k / E, nothing dropped, so
// every kernel is the same). On one GPU the all-to-all dispatcher's wait comes after it
// issued the permutation, which runs meanwhile: per layer's forward the GPU idles
// max(0, copy + host - permutation) = 3 + 13.48 - 3 = 13.48 us (the copy and the
// permutation on the 3 us floor): 2 layers, 26.96 us. No wait in the backward.
TEST(Stack, DroplessAllToAllDispatcherWaitsBehindThePermutation) {
  const Scenario dropless = tiny_moe(1, "", "direct", "bf16");
  const Scenario padded =
      tiny_moe(1, ", capacity_factor: 1.0, pad_to_capacity: true", "direct", "bf16");
  const double launch = dropless.cluster.gpu.kernel_launch->value();
  ASSERT_DOUBLE_EQ(launch, 3e-6);
  EXPECT_NEAR(step(dropless) - step(padded), 2 * 13.48e-6, 1e-12);
}

// The flex dispatcher (hierarchical exchange; 2 GPUs, ep 2) waits inside the dispatch with
// nothing queued: the copy's floor and the host's next issue, 3 + 13.48 = 16.48 us a
// layer's forward, 32.96 us for two (the exchanges themselves the same bytes either way).
TEST(Stack, DroplessFlexDispatcherWaitIsExposed) {
  const Scenario dropless = tiny_moe(2, "", "hierarchical", "bf16");
  const Scenario padded =
      tiny_moe(2, ", capacity_factor: 1.0, pad_to_capacity: true", "hierarchical", "bf16");
  EXPECT_NEAR(step(dropless) - step(padded), 2 * 16.48e-6, 1e-12);
}

// The tiny MoE model padded to capacity 1.0 (no host wait: model/moe_routing.h) on `gpus`
// H100s, `per_node` to a node, ep = dp = gpus, under the exchange `exchange` and the flex
// dispatcher's `backend`, at the host time `host` per kernel.
Scenario tiny_flex(int gpus, int per_node, const std::string& exchange, const std::string& backend,
                   const std::string& host) {
  const std::string yaml = fmt::format(R"(
cluster: {{preset: dgx-h100, nodes: {5}, gpus_per_node: {1}, slow_nodes: {{fraction: 0}}}}
model: {{family: decoder, layers: 2, hidden: 64, heads: 2, ffn: 256, vocab: 128, seq_len: 64,
        activation: swiglu, norm: rmsnorm, position_embedding: rope, tied_embeddings: false,
        bias: false, dropout: false,
        moe: {{experts: 4, top_k: 2, expert_ffn: 64, load_imbalance: 1, capacity_factor: 1.0,
              pad_to_capacity: true}}}}
parallelism: {{tp: 1, pp: 1, dp: {0}, ep: {0}, ep_alltoall: {2}, ep_backend: {3}, microbatch: 1,
              global_batch: {0}}}
training: {{precision: bf16, recompute: none, stack: {{preset: megatron-core, host_overhead: {4}}}}}
)",
                                       gpus, per_node, exchange, backend, host, gpus / per_node);
  return load_scenario_text(yaml, "flex.yaml");
}

// What the host's issue of the step's kernels adds: the step at 13.48 us a kernel against
// the same step at none. Every kernel of the tiny model sits on the 3 us floor and every
// run is host-bound, so each kernel adds 13.48 - 3 = 10.48 us, and the collectives (the
// same in both steps) drop out.
double host_term(int gpus, int per_node, const std::string& exchange, const std::string& backend) {
  return step(tiny_flex(gpus, per_node, exchange, backend, "13.48 us")) -
         step(tiny_flex(gpus, per_node, exchange, backend, "0 s"));
}

// The flex dispatcher's own kernels (model/moe_routing.h, flex_exchange_kernels), counted
// by hand from the libraries' code, beyond the exchange kernels (timed as collectives) and
// the permutation and unpermutation (moe.permute, moe.unpermute), per layer:
//  - DeepEP (deepseek-ai/DeepEP dd758caf): the forward dispatch's top-k over the routing
//    map, get_dispatch_layout and notify_dispatch (3), one notification kernel before the
//    forward combine and before each backward exchange (3), and after the dispatch
//    Megatron-Core's _indices_to_multihot, 13 kernels and 3 host waits: 19 kernels.
//  - HybridEP (hybrid-ep 94a9f8f6) inside one node: every exchange kernel has an
//    update_expected_value and a device_sync kernel before it and a device_sync after it
//    (3 each, 4 exchanges: 12), and the forward dispatch's metadata preprocessing adds the
//    memset, the scan and pad_tokens_per_expert (3): 15.
//  - HybridEP across 2 nodes: an rdma_sync kernel after each exchange (4), the staging
//    copies of the tokens and probabilities before the forward dispatch (2) and of the
//    gradients before the combine's backward (1): 15 + 7 = 22.
//  - Megatron-Core's all-to-all dispatcher (ep_alltoall direct), the baseline: with 2 local
//    experts it sorts the received rows by expert and back (moe.sort_by_expert,
//    moe.unsort_by_expert, one kernel each way each): 4.
// Each kernel adds 10.48 us; each host wait 13.48 us (3 + 13.48 against the copy's 3 us
// alone without host time). Two layers, against the all-to-all dispatcher on the same GPUs:
//   DeepEP, one node:    2 x ((19 - 4) x 10.48 + 3 x 13.48) = 395.28 us
//   HybridEP, one node:  2 x (15 - 4) x 10.48               = 230.56 us
//   HybridEP, two nodes: 2 x (22 - 4) x 10.48               = 377.28 us
TEST(Stack, FlexDispatcherIssuesItsOwnKernels) {
  const double one_node = host_term(2, 2, "direct", "deepep");
  EXPECT_NEAR(host_term(2, 2, "hierarchical", "deepep") - one_node, 395.28e-6, 1e-12);
  EXPECT_NEAR(host_term(2, 2, "hierarchical", "hybridep") - one_node, 230.56e-6, 1e-12);
  EXPECT_NEAR(host_term(2, 1, "hierarchical", "hybridep") - host_term(2, 1, "direct", "deepep"),
              377.28e-6, 1e-12);
}

// Transformer Engine's GroupedLinear quantizes each expert's rows on its own unless every
// quantizer is a delayed-scaling one (one fused multi_cast_transpose), and a
// current-scaling quantization is 4 kernels (the amax zeroed, the amax, the scale, the
// cast: launch_amax_kernel in common/recipe/current_scaling.cu and quantize_impl in
// csrc/quantizer.cpp at NVIDIA/TransformerEngine d0067d0d): with 4 local experts an expert
// GEMM's input (forward) or output gradient (backward) is 16 kernels against 1, and an
// ungrouped fp8 GEMM's (QKV, output projection) 4 against 1. Two expert GEMMs a layer
// (fc1, fc2) and two ungrouped ones, each way: 4 x 15 + 4 x 3 = 72 kernels more a layer,
// at 13.48 us in host-bound runs: 970.56 us, 1941.12 us for two layers. Every other op and
// every kernel time is the same (all on the floor).
TEST(Stack, GroupedCurrentScalingQuantizesEachExpert) {
  const std::string padded = ", capacity_factor: 1.0, pad_to_capacity: true";
  const Scenario current = tiny_moe(1, padded, "direct", "fp8, fp8: {scaling: current}");
  const Scenario delayed = tiny_moe(1, padded, "direct", "fp8, fp8: {scaling: delayed}");
  EXPECT_NEAR(step(current) - step(delayed), 2 * 72 * 13.48e-6, 1e-12);
}

}  // namespace
}  // namespace orrery

namespace orrery {
namespace {

// The tiny model (h = 64, 2 layers, vocab 64) with Adam on `dp` GPUs of one node, ZeRO
// stage `zero`, under the stack `stack`.
Scenario tiny_adam(int dp, int zero, const std::string& stack) {
  return load_scenario_text(fmt::format(R"(
cluster: {{preset: dgx-h100, gpus_per_node: {}}}
model: {{family: decoder, layers: 2, hidden: 64, heads: 2, ffn: 256, vocab: 64, seq_len: 128,
        activation: swiglu, norm: rmsnorm, position_embedding: rope, tied_embeddings: false,
        bias: false, dropout: false}}
parallelism: {{tp: 1, pp: 1, dp: {}, zero_stage: {}, microbatch: 1, global_batch: {}}}
training: {{precision: bf16, optimizer: adam, stack: {}}}
)",
                                        dp, dp, zero, dp, stack),
                            "tiny_adam.yaml");
}

double optimizer_of(const Scenario& s) {
  const StepResult r = simulate_step(s);
  return r.stages.at(r.critical_stage).breakdown.optimizer.value();
}

// The parameter tensors of the tiny model as it stores them: the embedding table; per
// layer the two norms' weights, the fused QKV, the output projection, SwiGLU's fused gate
// and up, the down projection (6); the final norm and the output layer: 1 + 12 + 2 = 15,
// their sizes summing to the model's parameters.
TEST(Stack, ParameterTensorsOfTheTinyModel) {
  const Scenario s = tiny_adam(1, 0, "{preset: fsdp2, optimizer: per_parameter}");
  const Workload w = build_workload(s.model, s.training, shard_of(s.parallelism));
  size_t n = 0;
  double sum = 0, params = 0;
  for (const Layer& l : w.layers) {
    const std::vector<double> t = l.parameter_tensors();
    n += t.size();
    for (double x : t) sum += x;
    params += l.params();
  }
  EXPECT_EQ(n, 15u);
  EXPECT_DOUBLE_EQ(sum, params);
}

// torch's per-parameter Adam (_single_tensor_adam) on the tiny model: each tensor runs the
// 7 update kernels on its own, every one on the 3 us kernel floor (the largest tensor,
// 64 x 512, moves 16 bytes a parameter in its largest pass: 0.5 MB, about 0.2 us), 21 us
// of GPU time, against 8 host calls (the 7 and the CPU step counter's += 1) x 13.48 us =
// 107.84 us: 107.84 us a tensor. The pass over all parameters that the fused count adds
// (the 16-bit weights written) is one call more, 13.48 us. The foreach step is 8 calls,
// 107.84 us.
//   one GPU, no sharding: 15 tensors, 15 x 107.84 + 13.48 = 1631.08 us;
//   FSDP1 on 2 GPUs: one flat parameter a unit (embedding, 2 layers, head), this rank's
//     half of each: 4 x 107.84 + 13.48 = 444.84 us;
//   FSDP2 on 2 GPUs: each of the 15 parameters' halves: 1631.08 us.
TEST(Stack, PerParameterOptimizerOfATinyModelIsItsHostCallsPerTensor) {
  EXPECT_NEAR(optimizer_of(tiny_adam(1, 0, "{preset: fsdp2, optimizer: foreach}")), 107.84e-6,
              1e-12);
  EXPECT_NEAR(optimizer_of(tiny_adam(1, 0, "{preset: fsdp2, optimizer: per_parameter}")),
              1631.08e-6, 1e-12);
  EXPECT_NEAR(optimizer_of(tiny_adam(2, 3, "{preset: fsdp1, optimizer: per_parameter}")),
              444.84e-6, 1e-12);
  EXPECT_NEAR(optimizer_of(tiny_adam(2, 3, "{preset: fsdp2, optimizer: per_parameter}")),
              1631.08e-6, 1e-12);
  // Without host time, the kernel floors alone: 15 x 7 x 3 + 3 = 318 us.
  EXPECT_NEAR(optimizer_of(tiny_adam(
                  1, 0, "{preset: fsdp2, optimizer: per_parameter, host_overhead: 0 s}")),
              318e-6, 1e-12);
}

// Bandwidth-bound tensors: tensor by tensor, the foreach bytes. Two tensors of 5e8
// parameters take what foreach's passes over 1e9 take; a 10-parameter tensor beside them
// adds its 8 host calls, 107.84 us.
TEST(Stack, PerParameterOptimizerOfLargeTensorsIsTheForeachBytes) {
  const Scenario per = with_optimizer("adam", "{preset: fsdp2, optimizer: per_parameter}");
  const Scenario foreach = with_optimizer("adam", "{preset: fsdp2, optimizer: foreach}");
  const double big = make_roofline_model(foreach)->optimizer_time(1e9).value();
  const auto model = make_roofline_model(per);
  EXPECT_NEAR(model->optimizer_time_per_tensor({5e8, 5e8}).value(), big, 1e-12);
  EXPECT_NEAR(model->optimizer_time_per_tensor({5e8, 5e8, 10}).value(), big + 107.84e-6,
              1e-9);
}

TEST(Stack, PerParameterOptimizerIsCountedWhereTheTensorsAreKnown) {
  EXPECT_THROW(tiny_adam(2, 1, "{preset: fsdp2, optimizer: per_parameter}"), InputError);
  EXPECT_THROW(tiny_adam(2, 3, "{preset: deepspeed, optimizer: per_parameter}"), InputError);
  EXPECT_THROW(with_optimizer("sgd", "{preset: fsdp2, optimizer: per_parameter}"), InputError);
}

// Chunked cross-entropy (training.stack.cross_entropy_chunks) changes the memory the loss
// holds, not its kernels' bytes or FLOPs (docs/model.md, "Memory per GPU"): the same step
// time to the last bit.
TEST(Stack, ChunkedCrossEntropyKeepsTheStepTime) {
  const Scenario whole = one_gpu(1024, 8, 4096, 32000, 4096, "fsdp2");
  const Scenario chunked =
      one_gpu(1024, 8, 4096, 32000, 4096, "{preset: fsdp2, cross_entropy_chunks: 8}");
  EXPECT_EQ(chunked.training.stack.cross_entropy_chunks, 8);
  EXPECT_DOUBLE_EQ(step(chunked), step(whole));
}

// training.stack.gradient_accumulation (docs/simulator.md "Gradient accumulation"). One
// H100, 16-bit training, 4 micro-batches of one sequence, a 2-layer Llama-style model:
// per layer 4 h^2 attention + 3 h f SwiGLU + 2 h norms = 4 x 1,048,576 + 3 x 1024 x 4096
// + 2048 = 16,779,264 parameters; the embedding and the untied head V h = 33,554,432
// each, the final norm h = 1024: P = 2 x 16,779,264 + 2 x 33,554,432 + 1024 = 100,668,416.
// Each unfused kernel covers one layer's parameters, the smallest (a transformer layer's
// 16.8 M) far above the kernel floor, so the step grows by bytes / HBM:
//  hook, fp32 main gradient: (2 + 4 + 4) bytes a parameter, every micro-batch:
//    4 x 10 x P = 4,026,736,640 bytes;
//  autograd (bf16 gradients): (2 + 2 + 2) bytes a parameter from the second micro-batch
//    on: 3 x 6 x P = 1,812,031,488 bytes.
// The fused step already runs the hook on the embedding table (its backward is no GEMM,
// simulator/pipeline_pass.cpp): Vh = 33,554,432 parameters every micro-batch, in the
// main gradient's dtype. So hook - fused = 4 x 10 x (P - Vh) = 4 x 10 x 67,113,984 =
// 2,684,559,360 bytes, and autograd - fused (bf16) = 3 x 6 x P - 4 x 6 x Vh =
// 1,812,031,488 - 805,306,368 = 1,006,725,120 bytes.
Scenario accumulating(const std::string& how, const std::string& grad_dtype) {
  return one_h100("{tp: 1, pp: 1, dp: 1, microbatch: 1, global_batch: 4}",
                  fmt::format("{{precision: bf16, gradient_dtype: {}, stack: {{preset: "
                              "megatron-core, host_overhead: 0 s, gradient_accumulation: {}}}}}",
                              grad_dtype, how),
                  "acc.yaml");
}

TEST(Stack, UnfusedGradientAccumulationIsItsBytesAtHbmRate) {
  const Scenario fused = accumulating("fused", "fp32");
  const Workload w = build_workload(fused.model, fused.training, shard_of(fused.parallelism));
  const double P = 2 * 16779264.0 + 2 * 33554432.0 + 1024;
  EXPECT_DOUBLE_EQ(w.params(), P);
  EXPECT_DOUBLE_EQ(P, 100668416.0);
  // The smallest kernel: 6 bytes of a transformer layer's parameters, far above the floor.
  ASSERT_GT(6 * 16779264.0 / hbm(fused), 10 * fused.cluster.gpu.kernel_launch->value());
  const double base = step(fused);

  const double Vh = 32768.0 * 1024;
  const double hook_bytes = 4 * 10 * (P - Vh);
  EXPECT_DOUBLE_EQ(hook_bytes, 2684559360.0);
  const Scenario hook = accumulating("hook", "fp32");
  EXPECT_NEAR(step(hook) - base, hook_bytes / hbm(hook), 1e-9 * base);

  // Against the fused step with the same bf16 gradients (the optimizer reads them).
  const double fused16 = step(accumulating("fused", "bf16"));
  const double autograd_bytes = 3 * 6 * P - 4 * 6 * Vh;
  EXPECT_DOUBLE_EQ(autograd_bytes, 1006725120.0);
  const Scenario autograd = accumulating("autograd", "bf16");
  EXPECT_NEAR(step(autograd) - fused16, autograd_bytes / hbm(autograd), 1e-9 * base);

  // Every op in the graph (no layer templates): the same passes.
  SimulationOptions ops;
  ops.op_level = true;
  EXPECT_NEAR(
      simulate_step(hook, ops).step_time.value() - simulate_step(fused, ops).step_time.value(),
      hook_bytes / hbm(hook), 1e-6 * base);
  EXPECT_NEAR(simulate_step(autograd, ops).step_time.value() -
                  simulate_step(accumulating("fused", "bf16"), ops).step_time.value(),
              autograd_bytes / hbm(autograd), 1e-6 * base);
}

// A PyTorch-native stack without sharding accumulates as autograd does (AccumulateGrad's
// in-place add into param.grad), its default where the optimizer reads param.grad (bf16
// gradients under bf16 here): the same model as above under fsdp1 with zero_stage 0 adds
// (2 + 2 + 2) bytes a parameter from the second micro-batch on, 3 x 6 x P =
// 1,812,031,488 bytes over its explicit fused step (which, outside the Megatron presets,
// adds nothing: no embedding hook). Under FSDP the default stays fused, and the hook
// (Megatron's main_grad) is refused.
TEST(Stack, PlainPyTorchAccumulatesThroughAutograd) {
  auto torch = [](const std::string& parallel, const std::string& stack) {
    return one_h100(parallel,
                    "{precision: bf16, gradient_dtype: bf16, stack: {preset: fsdp1, "
                    "host_overhead: 0 s" + stack + "}}",
                    "torch.yaml");
  };
  const std::string unsharded = "{tp: 1, pp: 1, dp: 1, microbatch: 1, global_batch: 4}";
  const Scenario by_default = torch(unsharded, "");
  EXPECT_EQ(by_default.training.stack.gradient_accumulation, StackSpec::GradAccumulation::autograd);
  const Scenario fused = torch(unsharded, ", gradient_accumulation: fused");
  const double P = 100668416.0;
  const double bytes = 3 * 6 * P;
  EXPECT_DOUBLE_EQ(bytes, 1812031488.0);
  EXPECT_NEAR(step(by_default) - step(fused), bytes / hbm(fused), 1e-9 * step(fused));
  const Scenario sharded =
      load_scenario_text(R"(
cluster: {preset: dgx-h100, gpus_per_node: 8}
model: {family: decoder, layers: 2, hidden: 1024, heads: 8, ffn: 4096, vocab: 32768,
        seq_len: 4096, activation: swiglu, norm: rmsnorm, position_embedding: rope,
        tied_embeddings: false, bias: false, dropout: false}
parallelism: {tp: 1, pp: 1, dp: 8, microbatch: 1, global_batch: 32, fsdp: true}
training: {precision: bf16, gradient_dtype: bf16, stack: {preset: fsdp1}}
)",
                         "fsdp.yaml");
  EXPECT_EQ(sharded.training.stack.gradient_accumulation, StackSpec::GradAccumulation::fused);
  EXPECT_THROW(torch(unsharded, ", gradient_accumulation: hook"), InputError);
}

// One micro-batch a step: autograd keeps the gradient as it is, nothing is added; the
// fused step still adds the embedding table's dense gradient into the main gradient
// through the hook: (2 + 2 + 2) bytes x V h = 6 x 33,554,432 = 201,326,592 bytes (bf16
// main gradient), about 69 us at H100's 2.91 TB/s, far above the 3 us kernel floor.
TEST(Stack, AutogradAccumulationOfOneMicrobatchAddsNothing) {
  auto one = [](const std::string& how) {
    return load_scenario_text(fmt::format(R"(
cluster: {{preset: dgx-h100, gpus_per_node: 1}}
model: {{family: decoder, layers: 2, hidden: 1024, heads: 8, ffn: 4096, vocab: 32768,
        seq_len: 4096, activation: swiglu, norm: rmsnorm, position_embedding: rope,
        tied_embeddings: false, bias: false, dropout: false}}
parallelism: {{tp: 1, pp: 1, dp: 1, microbatch: 1, global_batch: 1}}
training: {{precision: bf16, gradient_dtype: bf16, stack: {{gradient_accumulation: {}}}}}
)",
                                          how),
                              "one.yaml");
  };
  const Scenario fused = one("fused");
  const double embedding_hook = 6 * 32768.0 * 1024;
  EXPECT_DOUBLE_EQ(embedding_hook, 201326592.0);
  EXPECT_NEAR(step(fused) - step(one("autograd")), embedding_hook / hbm(fused), 1e-9 * step(fused));
  EXPECT_GT(step(one("hook")), step(fused));
}

TEST(Stack, UnfusedAccumulationOutsideMegatronIsAnError) {
  auto error = [](const std::string& stack, const std::string& extra) {
    return stack_error(stack, "llama2-7b", extra);
  };
  EXPECT_EQ(error("{preset: megatron-core, gradient_accumulation: hook}", ""), "no error");
  EXPECT_EQ(error("{preset: nemo, gradient_accumulation: hook}", ""), "no error");
  for (const char* preset : {"deepspeed", "fsdp1", "fsdp2"}) {
    EXPECT_NE(error(fmt::format("{{preset: {}, gradient_accumulation: hook}}", preset), "")
                  .find("Megatron's data-parallel wrappers"),
              std::string::npos)
        << preset;
  }
  EXPECT_NE(error("{preset: megatron-core, gradient_accumulation: hook}", ", zero_stage: 3")
                .find("zero_stage 3"),
            std::string::npos);
  // bf16 training keeps fp32 main gradients by default: autograd cannot hold them.
  EXPECT_NE(error("{preset: megatron-core, gradient_accumulation: autograd}", "")
                .find("gradient_dtype fp32"),
            std::string::npos);
  EXPECT_NE(error("{preset: megatron-core, gradient_accumulation: sometimes}", "")
                .find("training.stack.gradient_accumulation"),
            std::string::npos);
}

}  // namespace
}  // namespace orrery
