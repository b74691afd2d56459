// What orrery run prints about the simulation's size and the prediction band.
#include "report/run_report.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "report/band.h"
#include "report/check_report.h"
#include "scenario/load.h"
#include "simulator/predict.h"
#include "tests/test_util.h"

namespace orrery {
namespace {

TEST(RunReport, SizeLineCountsTheSimulatedGpus) {
  // tp2 pp2 on one 8-GPU node: dp = 8 / 4 = 2. One GPU per stage stands for its peers (2
  // simulated); --full simulates all 2 x 2 x 2 = 8.
  const Scenario s = testing::preset_scenario("narayanan-1.7b", "tp: 2, pp: 2, global_batch: 16");
  SimulationOptions full;
  full.full = true;
  EXPECT_NE(render_run_table(s, predict(s)).find("2 GPUs simulated for 8 ("), std::string::npos);
  EXPECT_NE(render_run_table(s, predict(s, full)).find("8 GPUs simulated for 8 ("),
            std::string::npos);
}

TEST(RunReport, UnfusedActivationNamesTheKernelsOfThisModel) {
  // --explain names the kernels model/transformer.cpp (add_dense_mlp) times when the MLP
  // activation is not fused: narayanan-1.7b is a GPT (GeLU with biases): a bias add and the
  // GeLU; llama3-8b (SwiGLU, no biases): silu and the product, no bias add.
  const std::string eager = "stack: {activation_fusion: false}";
  const std::string gpt = render_stack_explanation(
      testing::preset_scenario("narayanan-1.7b", "global_batch: 16", 1, eager));
  EXPECT_NE(gpt.find("unfused: bias add and gelu as kernels of their own"), std::string::npos)
      << gpt;
  const std::string llama = render_stack_explanation(
      testing::preset_scenario("llama3-8b", "global_batch: 16", 1, eager));
  EXPECT_NE(llama.find("unfused: silu and the product as kernels of their own"),
            std::string::npos)
      << llama;
}

// DeepSpeed's overlap defaults, as --explain names them: after the last backward at
// ZeRO-1, inside every micro-batch's backward at ZeRO-2; the updated weights gathered in the
// optimizer step; a value the file sets is said to be the file's.
TEST(RunReport, ExplainNamesDeepSpeedsOverlapDefaults) {
  const auto explain = [](const std::string& parallelism, const std::string& training) {
    return render_stack_explanation(testing::preset_scenario(
        "narayanan-1.7b", "dp: 8, global_batch: 16, " + parallelism, 1,
        "stack: deepspeed" + training));
  };
  const std::string z1 = explain("zero_stage: 1", "");
  EXPECT_NE(z1.find("  gradient reduction       after the last backward (DeepSpeed's default)"),
            std::string::npos)
      << z1;
  EXPECT_NE(z1.find("  updated-weight gather    inside the optimizer step, before the next "
                    "forward (DeepSpeed's default)"),
            std::string::npos)
      << z1;
  const std::string z2 = explain("zero_stage: 2", ", overlap_grad_reduce: true");
  EXPECT_NE(z2.find("  gradient reduction       in every micro-batch's backward, on its own "
                    "stream (overlap_comm on) (set in the file)"),
            std::string::npos)
      << z2;
  // ZeRO-3 keeps its unit passes; no such line.
  EXPECT_EQ(explain("zero_stage: 3", "").find("gradient reduction"), std::string::npos);
}

TEST(RunReport, ExplainListsTheFsdpGradientPasses) {
  // FSDP1 over the 8 GPUs of one node, bf16 weights (w = 2 bytes), fp32 gradients (g = 4):
  // the flat gradient's assembly 2w = 4 B, the cast to fp32 w + g = 6 B, the pre-divide by
  // FSDP's factor for world 8 (1 -> 2 -> 4, since 8 / 4 = 2 is not above 4) 2g = 8 B, and the
  // shard's post-divide by 8 / 4 = 2, 2g / 8 = 1 B an element of the unsharded gradient.
  const std::string fsdp1 = render_stack_explanation(testing::preset_scenario(
      "narayanan-1.7b", "dp: 8, global_batch: 16, fsdp: true", 1,
      "stack: {preset: fsdp1}, gradient_dtype: fp32"));
  EXPECT_NE(fsdp1.find("assembly of the flat gradient (4 B), cast to the reduce dtype (6 B), "
                       "pre-divide by 4 (8 B), post-divide of the shard by 2 (1 B)"),
            std::string::npos)
      << fsdp1;
  // FSDP2 with bf16 gradients divides inside NCCL: the copy-in alone, w + g = 4 B.
  const std::string fsdp2 = render_stack_explanation(testing::preset_scenario(
      "narayanan-1.7b", "dp: 8, global_batch: 16, fsdp: {implementation: fsdp2}", 1,
      "stack: {preset: fsdp2}, gradient_dtype: bf16"));
  EXPECT_NE(fsdp2.find("FSDP gradient passes     copy-in to the reduce-scatter input (4 B): "),
            std::string::npos)
      << fsdp2;
  // torchtitan's [norm, output] unit (narayanan-1.7b ties its embeddings: the embedding's
  // too), and the same written in the file the other way.
  EXPECT_NE(fsdp2.find("FSDP2 output unit        the embedding, final norm and output layer: "
                       "kept gathered from its forward to its backward (training.stack "
                       "fsdp2: torchtitan's default policy)"),
            std::string::npos)
      << fsdp2;
  const std::string always = render_stack_explanation(testing::preset_scenario(
      "narayanan-1.7b",
      "dp: 8, global_batch: 16, fsdp: {implementation: fsdp2}, "
      "reshard_output_after_forward: true",
      1, "stack: {preset: fsdp2}, gradient_dtype: bf16"));
  EXPECT_NE(always.find("FSDP2 output unit        the embedding, final norm and output layer: "
                        "freed after its forward and gathered again for its backward (set in "
                        "the file)"),
            std::string::npos)
      << always;
}

// A PyTorch-native stack without sharding: --explain says how gradients accumulate and
// why. bf16 gradients of bf16 parameters: autograd's in-place add, the stack's default;
// fp32 gradients of bf16 parameters: nothing counted, param.grad not the optimizer's;
// fused written in the file with bf16 gradients: nothing counted, as the file says, not
// blamed on a dtype that does not differ.
TEST(RunReport, PlainPyTorchGradientAccumulationSaysWhy) {
  const auto stack = [](const std::string& training) {
    return render_stack_explanation(testing::preset_scenario(
        "narayanan-1.7b", "dp: 8, global_batch: 32", 1, "stack: {preset: fsdp1" + training));
  };
  const std::string autograd = stack("}, gradient_dtype: bf16");
  EXPECT_NE(autograd.find("gradient accumulation    autograd: param.grad += grad from the second "
                          "micro-batch on (a PyTorch-native stack without sharding)"),
            std::string::npos)
      << autograd;
  const std::string fp32 = stack("}, gradient_dtype: fp32");
  EXPECT_NE(fp32.find("gradient accumulation    not counted: param.grad is not the gradient the "
                      "optimizer reads (gradient_dtype differs"),
            std::string::npos)
      << fp32;
  const std::string fused = stack(", gradient_accumulation: fused}, gradient_dtype: bf16");
  EXPECT_NE(fused.find("gradient accumulation    fused: not counted (no accumulation pass) (set "
                       "in the file)"),
            std::string::npos)
      << fused;
}

// GPT-2's 50,257-token head is the one GEMM with an odd dimension; --explain names it and
// its rate, 989.4 x 0.125 = 123.7 TFLOP/s on the H200 (calibrate/compute_model.cpp), and
// says where the GPU gives no figure (the A100).
TEST(RunReport, OddDimensionGemmsAreNamedWithTheirRate) {
  const auto gpt2 = [](const std::string& system) {
    return load_scenario_text(
        "cluster: {preset: " + system + ", nodes: 1, gpus_per_node: 1}\n"
        "model: {family: decoder, layers: 2, hidden: 768, heads: 12, ffn: 3072, vocab: 50257, "
        "seq_len: 1024, activation: gelu, norm: layernorm, position_embedding: learned, "
        "tied_embeddings: true, bias: true, dropout: false}\n"
        "parallelism: {microbatch: 8, global_batch: 8}\n",
        "gpt2.yaml");
  };
  const std::string h200 = render_stack_explanation(gpt2("dgx-h200"));
  EXPECT_NE(h200.find("  odd-dimension GEMMs      head.output: a dimension is odd; cuBLAS's "
                      "alignment-1 kernels at 123.7 TFLOP/s (16-bit peak x "
                      "unaligned_gemm_efficiency 0.125)"),
            std::string::npos)
      << h200;
  // The default stack is Megatron-Core's, whose tokenizer pads the vocabulary to a multiple
  // of 128 x tp: 50,257 -> 393 x 128 = 50,304 at tp 1.
  EXPECT_NE(h200.find("Megatron-LM would pad the 50257-token vocabulary to 50304"),
            std::string::npos)
      << h200;
  const std::string a100 = render_stack_explanation(gpt2("dgx-a100"));
  EXPECT_NE(a100.find("head.output: a dimension is odd; timed as aligned"), std::string::npos)
      << a100;
  // An even vocabulary: no such line.
  const Scenario even = testing::preset_scenario("narayanan-1.7b", "tp: 2, global_batch: 16");
  EXPECT_EQ(render_stack_explanation(even).find("odd-dimension"), std::string::npos);
  EXPECT_EQ(render_stack_explanation(even).find("part-aligned"), std::string::npos);
  // BERT-large's 30,522-token vocabulary (2 x 15,261) is even, not a multiple of 8: its head
  // is named on the part-aligned line, and no other GEMM (hidden 1,024, 3,072, 4,096).
  const Scenario bert = testing::preset_scenario("bert-large", "dp: 8, global_batch: 64");
  const std::string b = render_stack_explanation(bert);
  EXPECT_NE(b.find("  part-aligned GEMMs       head.output (2-element): rows not 16-byte "
                   "aligned, nor odd; timed as aligned"),
            std::string::npos)
      << b;
  EXPECT_EQ(b.find("odd-dimension"), std::string::npos) << b;
}

// What the host time per kernel costs the step, by simulating it again with none: on the
// tiny compiled model of tests/simulator/stack_test.cpp (HostTermCountsTheKernelsOfEachRun),
// where every run is host-bound: its 66 kernels issued at 13.48 us against 171 us of GPU
// time on the 3 us floor (57 op passes), 66 x 13.48 - 171 = 718.68 us; a CUDA-graphed step
// (host_overhead 0) has no such line.
TEST(RunReport, TheHostBoundTimeIsTheStepWithoutHostTime) {
  const auto tiny = [](const std::string& stack) {
    return load_scenario_text(
        "cluster: {preset: dgx-h100, gpus_per_node: 1}\n"
        "model: {family: decoder, layers: 2, hidden: 64, heads: 2, ffn: 256, vocab: 64, "
        "seq_len: 128, activation: swiglu, norm: rmsnorm, position_embedding: rope, "
        "tied_embeddings: false, bias: false, dropout: false}\n"
        "parallelism: {tp: 1, pp: 1, dp: 1, microbatch: 1, global_batch: 1}\n"
        "training: {precision: bf16, recompute: none, stack: " + stack + "}\n",
        "tiny.yaml");
  };
  const std::string host = render_stack_explanation(tiny("{preset: fsdp2, compile: true}"));
  EXPECT_NE(host.find("  host-bound time          718.680 us of the "), std::string::npos)
      << host;
  const std::string graphed =
      render_stack_explanation(tiny("{preset: fsdp2, compile: true, host_overhead: 0 s}"));
  EXPECT_EQ(graphed.find("host-bound time"), std::string::npos) << graphed;
}

TEST(RunReport, AssumedFiguresAreNamedInRunAndCheck) {
  // dgx-b200: the B200 preset's efficiencies, the host's time per op and the NVLink ring
  // efficiency are the DGX H100's (scenario/presets, assumed:); a DGX A100 whose host time is
  // written in the file has none.
  const Scenario b200 = load_scenario_text(
      "cluster: {preset: dgx-b200, nodes: 1}\nmodel: narayanan-1.7b\nparallelism: {tp: 2, "
      "global_batch: 16}\n",
      "b.yaml");
  const std::string line =
      "cluster.gpu.gemm_efficiency, cluster.gpu.gemm_ramp, cluster.gpu.attention_efficiency, "
      "cluster.gpu.memory_efficiency, cluster.gpu.host_overhead, cluster.intra_node.efficiency: "
      "not measured";
  const std::string run = render_run_table(b200, predict(b200));
  EXPECT_NE(run.find("  assumed                  " + line), std::string::npos) << run;
  const StepFigures f = analyse_step(b200);
  EXPECT_NE(render_check_table(b200, f).find("  assumed                  " + line),
            std::string::npos);
  const auto json = nlohmann::json::parse(render_run_json(b200, predict(b200)));
  EXPECT_EQ(json.at("assumed").size(), 6u);
  const Scenario a100 = load_scenario_text(
      "cluster: {preset: dgx-a100, nodes: 1, gpu: {host_overhead: 13.48 us}}\nmodel: "
      "narayanan-1.7b\nparallelism: {tp: 2, pp: 2, global_batch: 16}\n",
      "a.yaml");
  EXPECT_EQ(render_run_table(a100, predict(a100)).find("assumed"), std::string::npos);
}

TEST(RunReport, CheckNamesTheFabricAndThePods) {
  const Scenario s = load_scenario_text(
      "cluster: {preset: hgx-h100-roce, nodes: 512, inter_node: {fabric: roce}}\nmodel: "
      "narayanan-1.7b\nparallelism: {tp: 8, global_batch: 512}\n",
      "r.yaml");
  const std::string t = render_check_table(s, analyse_step(s));
  EXPECT_NE(t.find("8 x 50.00 GB/s NICs, 14.000 us, fat-tree, oversubscription 1:1, pods of 3072 "
                   "GPUs at 7:1 above them, fabric roce"),
            std::string::npos)
      << t;
  // roce's efficiency is NDR's (fabrics.yaml, assumed): the fabric's list replaces the
  // system's entry for the same key.
  EXPECT_NE(t.find("  assumed                  cluster.gpu.cudnn_attention_efficiency, "
                   "cluster.gpu.fp8_split_accumulation, cluster.gpu.unaligned_gemm_efficiency, "
                   "cluster.inter_node.efficiency: not measured"),
            std::string::npos)
      << t;
}

TEST(RunReport, BandIsThePredictionOverTheShippedResiduals) {
  const Scenario s = testing::preset_scenario("narayanan-1.7b", "tp: 2, pp: 2, global_batch: 16");
  const Prediction p = predict(s);
  const Band b = band_for(family_of(s), shipped_residuals());
  ASSERT_GT(b.cases, 0);
  const auto j = nlohmann::json::parse(render_run_json(s, p));
  const double t = p.step.step_time.value();
  // measured = predicted / (1 + e): fast end at e_max, slow end at e_min.
  EXPECT_DOUBLE_EQ(j["band"]["step_time_s"]["low"].get<double>(), t / (1 + b.e_max));
  EXPECT_DOUBLE_EQ(j["band"]["step_time_s"]["high"].get<double>(), t / (1 + b.e_min));
  EXPECT_DOUBLE_EQ(j["band"]["mfu"]["low"].get<double>(), p.step.mfu * (1 + b.e_min));
  EXPECT_EQ(j["band"]["cases"].get<int>(), b.cases);
  EXPECT_EQ(j["validated_region"]["inside"].get<bool>(),
            j["validated_region"]["outside_because"].empty());
}

}  // namespace
}  // namespace orrery
