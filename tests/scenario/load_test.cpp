// Reading scenarios: presets, overrides beside `preset:`, full specs without presets,
// derived defaults and where each value came from.
#include <gtest/gtest.h>

#include "scenario/load.h"

namespace orrery {
namespace {

TEST(Load, IssueExampleResolvesPresets) {
  const Scenario s = load_scenario_text(R"(cluster: {preset: dgx-h100, nodes: 2}
model: {preset: llama3-70b}
parallelism: {tp: 8, pp: 2, dp: 1, microbatch: 1, global_batch: 16}
training: {precision: bf16, recompute: selective}
)",
                                        "example.yaml");
  EXPECT_EQ(s.cluster.preset, "dgx-h100");
  EXPECT_EQ(s.cluster.gpu.preset, "h100-sxm5-80gb");
  EXPECT_EQ(s.cluster.gpus(), 16);
  // H100 SXM datasheet: 989.4 TFLOP/s dense bf16, 3.35 TB/s.
  EXPECT_DOUBLE_EQ(s.cluster.gpu.peak.at(Dtype::bf16).value(), 989.4e12);
  EXPECT_DOUBLE_EQ(s.cluster.gpu.memory_bandwidth.value(), 3.35e12);
  // 8 x 400 Gb/s NDR = 50 GB/s per NIC.
  EXPECT_DOUBLE_EQ(s.cluster.inter_node.nic_bandwidth.value(), 50e9);
  EXPECT_EQ(s.model.layers, 80);
  EXPECT_EQ(s.model.kv_heads, 8);
  EXPECT_EQ(s.parallelism.microbatches(), 16);
  EXPECT_EQ(s.parallelism.schedule, PipelineSchedule::one_f_one_b);
  EXPECT_EQ(s.training.recompute, Recompute::selective);
  EXPECT_DOUBLE_EQ(s.cost.gpu_power.value(), 700.0);  // defaults to the GPU's TDP
}

TEST(Load, OverridesBesidePresetWin) {
  const Scenario s = load_scenario_text(R"(cluster:
  preset: dgx-h100
  nodes: 4
  gpu: {preset: h100-sxm5-80gb, memory: "96 GiB"}
  inter_node: {oversubscription: 2}
model: {preset: llama3-8b, seq_len: 4096, layers: 16}
parallelism: {tp: 8, global_batch: 32}
)",
                                        "override.yaml");
  EXPECT_DOUBLE_EQ(s.cluster.gpu.memory.value(), 96.0 * 1073741824.0);
  EXPECT_DOUBLE_EQ(s.cluster.inter_node.oversubscription, 2.0);
  EXPECT_EQ(s.cluster.inter_node.nics_per_node, 8);  // kept from the preset
  EXPECT_EQ(s.model.seq_len, 4096);
  EXPECT_EQ(s.model.layers, 16);
  EXPECT_EQ(s.model.hidden, 4096);
  EXPECT_EQ(s.parallelism.dp, 4);  // derived: 32 GPUs / tp 8
  // Origins: the override from the file, the rest from the preset.
  EXPECT_EQ(s.origin.at("model.seq_len").file, "override.yaml");
  EXPECT_EQ(s.origin.at("model.seq_len").line, 6);
  EXPECT_NE(s.origin.at("model.hidden").file.find("presets/models.yaml"), std::string::npos);
}

TEST(Load, GpuPresetInsideSystemReplacesTheSystemsGpu) {
  // Swapping a DGX H100's GPUs for A100s must not leave the H100's fp8 peak behind.
  const Scenario s = load_scenario_text(R"(cluster: {preset: dgx-h100, gpu: a100-sxm4-80gb}
model: llama3-8b
parallelism: {tp: 8, global_batch: 8}
)",
                                        "swap.yaml");
  EXPECT_EQ(s.cluster.gpu.preset, "a100-sxm4-80gb");
  EXPECT_EQ(s.cluster.gpu.peak.count(Dtype::fp8), 0u);
  EXPECT_DOUBLE_EQ(s.cluster.gpu.peak.at(Dtype::bf16).value(), 312e12);
}

TEST(Load, FullSpecificationWithoutPresets) {
  const Scenario s = load_scenario_text(R"(name: tiny
cluster:
  gpu:
    name: Some GPU
    peak: {bf16: "500 TFLOP/s", fp32: "50 TFLOP/s"}
    memory: "48 GiB"
    memory_bandwidth: "2 TB/s"
    tdp: "500 W"
  nodes: 2
  gpus_per_node: 4
  intra_node: {bandwidth: "200 GB/s", latency: "1 us", nvls: false}
  inter_node: {nics_per_node: 4, nic_bandwidth: "200 Gb/s", latency: "3 us",
               topology: fat-tree, oversubscription: 2}
model:
  family: decoder
  layers: 12
  hidden: 768
  heads: 12
  ffn: 3072
  vocab: 50304
  seq_len: 1024
  activation: gelu
  norm: layernorm
  position_embedding: learned
  tied_embeddings: true
  bias: true
  dropout: false
parallelism: {tp: 2, pp: 2, global_batch: 32, microbatch: 4}
training: {precision: bf16, recompute: none, optimizer: adamw}
cost: {usd_per_gpu_hour: 2.5, pue: 1.2}
)",
                                        "tiny.yaml");
  EXPECT_EQ(s.name, "tiny");
  EXPECT_EQ(s.cluster.gpus(), 8);
  EXPECT_EQ(s.cluster.inter_node.topology, InterNodeTopology::fat_tree);
  EXPECT_DOUBLE_EQ(s.cluster.inter_node.nic_bandwidth.value(), 25e9);
  EXPECT_EQ(s.model.kv_heads, 12);  // defaults to heads
  EXPECT_EQ(s.parallelism.dp, 2);
  EXPECT_EQ(s.parallelism.microbatches(), 4);
  EXPECT_DOUBLE_EQ(*s.cost.usd_per_gpu_hour, 2.5);
  EXPECT_DOUBLE_EQ(s.cost.gpu_power.value(), 500.0);
}

TEST(Load, DerivedDefaults) {
  const Scenario s = load_scenario_text(R"(cluster: {preset: dgx-a100, nodes: 16}
model: gpt3-175b
parallelism: {tp: 8, pp: 8, virtual_pipeline_stages: 2, fsdp: false, global_batch: 512}
)",
                                        "d.yaml");
  EXPECT_EQ(s.parallelism.dp, 2);
  EXPECT_EQ(s.parallelism.schedule, PipelineSchedule::interleaved_1f1b);
  const Scenario f = load_scenario_text(R"(cluster: {preset: dgx-h100}
model: llama3-8b
parallelism: {fsdp: true, global_batch: 8}
)",
                                        "f.yaml");
  EXPECT_EQ(f.parallelism.zero_stage, 3);
  EXPECT_EQ(f.parallelism.dp, 8);
}

TEST(Load, EveryKeyIsListedOnce) {
  const std::vector<std::string> keys = scenario_keys();
  std::set<std::string> unique(keys.begin(), keys.end());
  EXPECT_EQ(unique.size(), keys.size());
  EXPECT_TRUE(unique.count("parallelism.global_batch"));
  EXPECT_TRUE(unique.count("model.moe.capacity_factor"));
}

TEST(Load, AttentionMaskFollowsTheFamily) {
  // A decoder predicts the next token: causal; an encoder sees every position: full.
  const std::string base =
      "cluster: {preset: dgx-h100, nodes: 1}\nparallelism: {tp: 1, global_batch: 8}\n";
  const Scenario dec = load_scenario_text(base + "model: {preset: llama3-8b}\n", "d.yaml");
  EXPECT_EQ(dec.model.attention_mask, AttentionMask::causal);
  const Scenario enc = load_scenario_text(base + "model: {preset: bert-large}\n", "e.yaml");
  EXPECT_EQ(enc.model.attention_mask, AttentionMask::full);
  const Scenario sw = load_scenario_text(
      base + "model: {preset: llama3-8b, attention_mask: sliding-window, attention_window: 4096}\n",
      "w.yaml");
  EXPECT_EQ(sw.model.attention_mask, AttentionMask::sliding_window);
  EXPECT_EQ(sw.model.attention_window, 4096);
  const Scenario doc = load_scenario_text(
      base + "model: {preset: bert-large, attention_mask: document, document_length: 128}\n",
      "c.yaml");
  EXPECT_EQ(doc.model.attention_mask, AttentionMask::document);
  EXPECT_EQ(doc.model.document_length, 128);
}

TEST(Load, RecomputeModulesOffloadAndHost) {
  // The modules' bits; the offload section's defaults (fraction 1.0, overlap off:
  // Megatron-LM's); a host key given beside a preset replaces that key only (DGX H100:
  // 64 GB/s PCIe, 614.4 GB/s host memory, 2048 GiB).
  const Scenario s =
      load_scenario_text(R"(cluster: {preset: dgx-h100, host: {pcie_bandwidth: "50 GB/s"}}
model: {preset: deepseek-v3}
parallelism: {tp: 1, pp: 1, dp: 8, ep: 8, zero_stage: 1, global_batch: 8}
training: {recompute: selective, recompute_modules: [mla_up_proj, layernorm, moe_act],
           optimizer: adamw, optimizer_offload: {}}
)",
                         "t.yaml");
  EXPECT_EQ(s.training.recompute_modules,
            kRecomputeMlaUpProj | kRecomputeLayernorm | kRecomputeMoeAct);
  EXPECT_EQ(describe_recompute_modules(s.training.recompute_modules),
            "moe_act, layernorm, mla_up_proj");
  ASSERT_TRUE(s.training.optimizer_offload);
  EXPECT_EQ(s.training.optimizer_offload->fraction, 1.0);
  EXPECT_FALSE(s.training.optimizer_offload->overlap);
  EXPECT_EQ(s.cluster.host.pcie_bandwidth.value(), 50e9);
  EXPECT_EQ(s.cluster.host.memory_bandwidth.value(), 614.4e9);
  EXPECT_EQ(s.cluster.host.memory.value(), 2048.0 * (1ull << 30));
}

}  // namespace
}  // namespace orrery

namespace orrery {
namespace {

// Without a written load_imbalance, the busiest rank's share follows the balancing:
// 1 + MaxVio_global of arXiv:2408.15664 Table 2 (3B model), 0.52 under an auxiliary loss
// and 0.04 with loss-free bias balancing; a written value is kept.
TEST(Load, MoeLoadImbalanceDefaultsByBalancing) {
  auto imbalance = [](const std::string& moe) {
    const Scenario s = load_scenario_text(
        "cluster: {preset: dgx-h100}\nmodel: {preset: mixtral-8x7b" + moe +
            "}\nparallelism: {tp: 1, global_batch: 8}\n",
        "moe.yaml");
    return s.model.moe->load_imbalance;
  };
  EXPECT_DOUBLE_EQ(imbalance(""), 1.52);
  EXPECT_DOUBLE_EQ(imbalance(", moe: {aux_loss: false}"), 1.04);
  EXPECT_DOUBLE_EQ(imbalance(", moe: {load_imbalance: 1.2}"), 1.2);
}

}  // namespace
}  // namespace orrery
