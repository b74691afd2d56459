// Presets: the set the issue asks for exists, each loads and validates, and each has
// its public source written beside it.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "scenario/load.h"

namespace orrery {
namespace {

bool contains(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

TEST(Presets, TheRequiredSetExists) {
  for (const char* g : {"v100-sxm2-32gb", "a100-sxm4-40gb", "a100-sxm4-80gb", "h100-sxm5-80gb",
                        "h200-sxm-141gb", "b200"}) {
    EXPECT_TRUE(contains(gpu_preset_names(), g)) << g;
  }
  for (const char* s : {"dgx-a100", "dgx-h100", "hgx-h100-roce"}) {
    EXPECT_TRUE(contains(system_preset_names(), s)) << s;
  }
  for (const char* m :
       {"gpt3-175b", "narayanan-1.7b", "narayanan-3.6b", "narayanan-7.5b", "narayanan-18.4b",
        "narayanan-39.1b", "narayanan-76.1b", "narayanan-145.6b", "narayanan-310.1b",
        "narayanan-529.6b", "narayanan-1008b", "megatron-22b", "mt-nlg-530b", "llama2-7b",
        "llama2-13b", "llama2-70b", "llama3-8b", "llama3-70b", "llama3-405b", "bert-large",
        "resnet50", "mixtral-8x7b", "deepseek-v3"}) {
    EXPECT_TRUE(contains(model_preset_names(), m)) << m;
  }
}

TEST(Presets, EveryModelAndSystemPresetValidates) {
  for (const auto& system : system_preset_names()) {
    for (const auto& model : model_preset_names()) {
      // 72 sequences: a multiple of dp on 8 GPUs and on gb200-nvl72's 72.
      const std::string yaml = "cluster: " + system + "\nmodel: " + model +
                               "\nparallelism: {global_batch: 72}\ntraining: {precision: fp16}\n";
      EXPECT_NO_THROW(load_scenario_text(yaml, system + "+" + model)) << system << " " << model;
    }
  }
}

// A file of the source tree, whole (empty when it cannot be read).
std::string source_text(const std::string& relative) {
  std::ifstream in(std::string(ORRERY_SOURCE_DIR) + "/" + relative);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Each top-level entry of a preset file carries at least one comment naming a source.
void expect_sourced(const std::string& file, const std::vector<std::string>& names) {
  const std::string text = source_text("scenario/presets/" + file);
  ASSERT_FALSE(text.empty()) << file;
  for (const auto& name : names) {
    const size_t start = text.find("\n" + name + ":\n");
    ASSERT_NE(start, std::string::npos) << name;
    size_t end = start + 1;
    // The entry runs to the next line that starts at column 0 with a key.
    while (true) {
      end = text.find('\n', end + 1);
      if (end == std::string::npos || (end + 1 < text.size() && text[end + 1] != ' ' &&
                                       text[end + 1] != '#' && text[end + 1] != '\n')) {
        break;
      }
    }
    const std::string block = text.substr(start, end == std::string::npos ? end : end - start);
    EXPECT_NE(block.find("  #"), std::string::npos) << name << " in " << file << " has no source";
  }
}

TEST(Presets, EachCitesItsSource) {
  expect_sourced("gpus.yaml", gpu_preset_names());
  expect_sourced("systems.yaml", system_preset_names());
  expect_sourced("models.yaml", model_preset_names());
  expect_sourced("fabrics.yaml", fabric_preset_names());
}

// README.md's preset paragraph names every GPU and system preset (it had fallen behind the
// files once: gb200 and gb200-nvl72 were missing from it).
TEST(Presets, TheReadmeNamesEveryGpuAndSystemPreset) {
  const std::string readme = source_text("README.md");
  ASSERT_FALSE(readme.empty());
  for (const auto& names : {gpu_preset_names(), system_preset_names()}) {
    for (const auto& name : names) {
      EXPECT_NE(readme.find("`" + name + "`"), std::string::npos) << name;
    }
  }
}

// The Blackwell presets carry their assumed figures as data (issue 16), and a figure the
// scenario sets again is no longer assumed.
TEST(Presets, AssumedFiguresAreListedAndDroppedWhenSetAgain) {
  const std::string rest = "model: narayanan-1.7b\nparallelism: {global_batch: 16}\n";
  const Scenario b200 =
      load_scenario_text("cluster: {preset: dgx-b200, nodes: 2}\n" + rest, "b.yaml");
  EXPECT_EQ(
      assumed_figures(b200.cluster),
      (std::vector<std::string>{"cluster.gpu.gemm_efficiency", "cluster.gpu.gemm_ramp",
                                "cluster.gpu.attention_efficiency", "cluster.gpu.memory_efficiency",
                                "cluster.gpu.host_overhead", "cluster.intra_node.efficiency"}));
  // Only bf16's plateau written: the other formats' stay assumed; the NVLink efficiency
  // written: no longer assumed.
  const Scenario own = load_scenario_text(
      "cluster: {preset: dgx-b200, nodes: 2, gpu: {preset: b200, gemm_efficiency: {bf16: 0.7}, "
      "attention_efficiency: 0.4}, intra_node: {efficiency: 0.8}}\n" +
          rest,
      "o.yaml");
  EXPECT_EQ(assumed_figures(own.cluster),
            (std::vector<std::string>{"cluster.gpu.gemm_efficiency", "cluster.gpu.gemm_ramp",
                                      "cluster.gpu.memory_efficiency",
                                      "cluster.gpu.host_overhead"}));
  // H100 on NDR: measured throughout but for the three figures measured on an H200 (the
  // cuDNN attention fraction, the fp8 split-accumulation factor and the odd-dimension GEMM
  // rate, scenario/presets/gpus.yaml).
  const std::vector<std::string> h200_figures = {"cluster.gpu.cudnn_attention_efficiency",
                                                 "cluster.gpu.fp8_split_accumulation",
                                                 "cluster.gpu.unaligned_gemm_efficiency"};
  const Scenario h100 =
      load_scenario_text("cluster: {preset: dgx-h100, nodes: 2}\n" + rest, "h.yaml");
  EXPECT_EQ(assumed_figures(h100.cluster), h200_figures);
  // A fabric preset replaces the NIC figures: ib-ndr's are measured, roce's efficiency not.
  const Scenario ndr = load_scenario_text(
      "cluster: {preset: hgx-h100-roce, nodes: 2, inter_node: {fabric: ib-ndr}}\n" + rest,
      "n.yaml");
  EXPECT_EQ(assumed_figures(ndr.cluster), h200_figures);
  EXPECT_DOUBLE_EQ(ndr.cluster.inter_node.nic_bandwidth.value(), 50e9);
  const Scenario xdr = load_scenario_text(
      "cluster: {preset: dgx-h100, nodes: 2, inter_node: {fabric: ib-xdr}}\n" + rest, "x.yaml");
  EXPECT_EQ(assumed_figures(xdr.cluster),
            (std::vector<std::string>{"cluster.gpu.cudnn_attention_efficiency",
                                      "cluster.gpu.fp8_split_accumulation",
                                      "cluster.gpu.unaligned_gemm_efficiency",
                                      "cluster.inter_node.efficiency"}));
  EXPECT_DOUBLE_EQ(xdr.cluster.inter_node.nic_bandwidth.value(), 100e9);  // 800 Gb/s
  // The Jean Zay A100 nodes' Omni-Path efficiency is BigScience's measurement (fabrics.yaml): the
  // A100 system's NIC figures are all measured then; the A100's host time stays assumed.
  const Scenario opa = load_scenario_text(
      "cluster: {preset: dgx-a100, nodes: 2, inter_node: {fabric: omni-path-jean-zay-a100, "
      "nics_per_node: 4}}\n" + rest,
      "p.yaml");
  EXPECT_EQ(assumed_figures(opa.cluster),
            (std::vector<std::string>{"cluster.gpu.host_overhead"}));
  // BigScience's log: 4 GB in 1.519-1.531 s over 32 ranks, 2 (n - 1) / n of it through
  // one 12.5 GB/s port each way: 0.405-0.408.
  EXPECT_NEAR(opa.cluster.inter_node.efficiency, 4e9 * 2 * 31 / 32 / 1.531 / 12.5e9, 0.001);
  EXPECT_DOUBLE_EQ(opa.cluster.inter_node.nic_bandwidth.value(), 12.5e9);  // 100 Gb/s
  // Keys written beside the fabric override it.
  const Scenario mine = load_scenario_text(
      "cluster: {preset: dgx-h100, nodes: 2, inter_node: {fabric: ib-xdr, efficiency: 0.9}}\n" +
          rest,
      "m.yaml");
  EXPECT_DOUBLE_EQ(mine.cluster.inter_node.efficiency, 0.9);
  EXPECT_EQ(assumed_figures(mine.cluster), h200_figures);
}

// The GB200's memory is nvidia-smi's total as NVIDIA's MLPerf v5.1 system file prints it
// (tyche: 189,471 MiB), a measured figure, so no longer listed as assumed.
TEST(Presets, Gb200MemoryIsTheMlperfSystemFilesTotal) {
  const Scenario s = load_scenario_text(
      "cluster: {preset: gb200-nvl72}\nmodel: llama3-8b\nparallelism: {global_batch: 72}\n", "g.yaml");
  EXPECT_DOUBLE_EQ(s.cluster.gpu.memory.value(), 189471.0 * 1024 * 1024);
  EXPECT_FALSE(contains(assumed_figures(s.cluster), "cluster.gpu.memory"));
}

TEST(Presets, Gb200Nvl72IsOneNvlinkDomainOf72) {
  // NVIDIA GB200 NVL72 page: 130 TB/s of NVLink over 72 GPUs = 1.8 TB/s bidirectional,
  // 900 GB/s per direction; BF16 360 PFLOPS sparse / 72 / 2 = 2.5 PFLOP/s dense.
  const Scenario s = load_scenario_text(
      "cluster: {preset: gb200-nvl72, nodes: 2}\nmodel: llama3-8b\nparallelism: {global_batch: "
      "144}\n",
      "g.yaml");
  EXPECT_EQ(s.cluster.gpus_per_node, 72);
  EXPECT_EQ(s.cluster.gpus(), 144);
  EXPECT_EQ(s.cluster.inter_node.nics_per_node, 72);
  EXPECT_DOUBLE_EQ(s.cluster.intra_node.bandwidth.value(), 900e9);
  EXPECT_DOUBLE_EQ(s.cluster.gpu.peak.at(Dtype::bf16).value(), 2.5e15);
}

// GB300 NVL72 (Verda's GB300 page; MLPerf v5.1 system files): the GB200's rack with
// Blackwell Ultra GPUs. Per GPU: FP4 1,080 PF dense over 72 = 15 PFLOP/s, 1.5x the GB200's
// 10; BF16 180 PF dense / 72 = 2.5, FP8 360 / 72 = 5, the GB200's; 284,208 MiB of HBM3e
// (nvidia-smi's total in NVIDIA's theia system file); one 800 Gb/s ConnectX-8 a GPU. No
// GB300 measurement exists here, so every efficiency is the GB200's and listed as assumed.
TEST(Presets, Gb300Nvl72IsTheGb200RackWithBlackwellUltra) {
  const std::string rest = "model: llama3-8b\nparallelism: {global_batch: 144}\n";
  const Scenario u =
      load_scenario_text("cluster: {preset: gb300-nvl72, nodes: 2}\n" + rest, "u.yaml");
  const Scenario g =
      load_scenario_text("cluster: {preset: gb200-nvl72, nodes: 2}\n" + rest, "g.yaml");
  const GpuSpec& ultra = u.cluster.gpu;
  EXPECT_EQ(u.cluster.gpus_per_node, 72);
  EXPECT_EQ(u.cluster.inter_node.nics_per_node, 72);
  EXPECT_DOUBLE_EQ(u.cluster.inter_node.nic_bandwidth.value(), 800e9 / 8);
  EXPECT_DOUBLE_EQ(ultra.peak.at(Dtype::fp4).value(), 1080e15 / 72);
  EXPECT_DOUBLE_EQ(ultra.peak.at(Dtype::fp4).value(), 1.5 * g.cluster.gpu.peak.at(Dtype::fp4).value());
  EXPECT_DOUBLE_EQ(ultra.peak.at(Dtype::bf16).value(), 180e15 / 72);
  EXPECT_DOUBLE_EQ(ultra.peak.at(Dtype::fp8).value(), 360e15 / 72);
  EXPECT_DOUBLE_EQ(ultra.peak.at(Dtype::tf32).value(), 1.25e15);
  EXPECT_DOUBLE_EQ(ultra.memory.value(), 284208.0 * 1024 * 1024);
  // 576 TB/s of HBM3e over 72 GPUs; 1.8 TB/s of NVLink a GPU bidirectional.
  EXPECT_DOUBLE_EQ(ultra.memory_bandwidth.value(), 576e12 / 72);
  EXPECT_DOUBLE_EQ(u.cluster.intra_node.bandwidth.value(), 1.8e12 / 2);
  EXPECT_TRUE(ultra.fp8_non_tn_gemm);
  for (Dtype d : {Dtype::bf16, Dtype::fp8, Dtype::fp4}) {
    EXPECT_DOUBLE_EQ(ultra.gemm_efficiency.at(d), g.cluster.gpu.gemm_efficiency.at(d));
  }
  EXPECT_EQ(ultra.attention_efficiency, g.cluster.gpu.attention_efficiency);
  EXPECT_DOUBLE_EQ(ultra.attention_efficiency.value_or(0), 0.33);
  EXPECT_DOUBLE_EQ(u.cluster.intra_node.efficiency, g.cluster.intra_node.efficiency);
  const auto ua = assumed_figures(u.cluster);
  for (const char* f : {"cluster.gpu.peak.fp4", "cluster.gpu.tdp", "cluster.gpu.gemm_efficiency",
                        "cluster.gpu.gemm_ramp", "cluster.gpu.attention_efficiency",
                        "cluster.gpu.memory_efficiency", "cluster.gpu.host_overhead",
                        "cluster.intra_node.efficiency", "cluster.intra_node.bus_bandwidth_curve",
                        "cluster.inter_node.efficiency"}) {
    EXPECT_TRUE(contains(ua, f)) << f;
  }
}

// An 8 x B300 server (NVIDIA's HGX B300 column: FP8 72, BF16 36 PFLOPS with sparsity for
// 8 GPUs, so 72e15 / 8 / 2 = 4.5 and 36e15 / 8 / 2 = 2.25 PFLOP/s a GPU dense, the B200's;
// 275,040 MiB from the MLPerf v5.1 system files; 8 ConnectX-8 NICs at 800 Gb/s). Its
// efficiencies are the B200's and listed as assumed, and so is the third-party fp4 peak.
TEST(Presets, DgxB300IsEightBlackwellUltraWithTheB200Efficiencies) {
  const std::string rest = "model: llama3-8b\nparallelism: {global_batch: 16}\n";
  const Scenario u = load_scenario_text("cluster: {preset: dgx-b300, nodes: 2}\n" + rest, "u.yaml");
  const Scenario b = load_scenario_text("cluster: {preset: dgx-b200, nodes: 2}\n" + rest, "b.yaml");
  const GpuSpec& g = u.cluster.gpu;
  EXPECT_EQ(u.cluster.gpus_per_node, 8);
  EXPECT_EQ(u.cluster.inter_node.nics_per_node, 8);
  EXPECT_DOUBLE_EQ(u.cluster.inter_node.nic_bandwidth.value(), 800e9 / 8);
  EXPECT_DOUBLE_EQ(g.peak.at(Dtype::fp8).value(), 72e15 / 8 / 2);
  EXPECT_DOUBLE_EQ(g.peak.at(Dtype::bf16).value(), 36e15 / 8 / 2);
  EXPECT_DOUBLE_EQ(g.peak.at(Dtype::bf16).value(), b.cluster.gpu.peak.at(Dtype::bf16).value());
  EXPECT_DOUBLE_EQ(g.memory.value(), 275040.0 * 1024 * 1024);
  EXPECT_DOUBLE_EQ(g.peak.at(Dtype::fp4).value(), 14e15);
  EXPECT_DOUBLE_EQ(g.memory_bandwidth.value(), 8e12);
  EXPECT_DOUBLE_EQ(u.cluster.intra_node.bandwidth.value(), 1.8e12 / 2);
  EXPECT_DOUBLE_EQ(g.gemm_efficiency.at(Dtype::fp8), b.cluster.gpu.gemm_efficiency.at(Dtype::fp8));
  EXPECT_EQ(g.host_overhead, b.cluster.gpu.host_overhead);
  EXPECT_DOUBLE_EQ(u.cluster.intra_node.efficiency, b.cluster.intra_node.efficiency);
  const auto ua = assumed_figures(u.cluster);
  for (const char* f : {"cluster.gpu.peak.fp4", "cluster.gpu.memory_bandwidth", "cluster.gpu.tdp",
                        "cluster.gpu.gemm_efficiency", "cluster.gpu.attention_efficiency",
                        "cluster.intra_node.efficiency", "cluster.inter_node.efficiency"}) {
    EXPECT_TRUE(contains(ua, f)) << f;
  }
}

// The Blackwell figures measured on a GB200 (Azure/AI-benchmarking-guide fa799957,
// Azure_Results/ND_GB200_v6_results.md), recomputed here from the page's numbers:
//  - cuBLASLt fp8 plateau 2,906.9 TFLOP/s (16384^3) of the 5,000 peak = 0.5814;
//  - the ramp's first point: 1024^3 takes 2 x 1024^3 / 2,906.9e12 = 0.7387 us at its
//    ideal rate and ran at 489.2 TFLOP/s = 0.1683 of the plateau; the 2048^3 point
//    5.910 us at 2,243.6 / 2,906.9 = 0.7718;
//  - NCCL ring all-reduce busbw 679.61 GB/s at 8 GB over 900 GB/s of NVLink 5 = 0.7551,
//    and 331.09 GB/s at 16M over 679.61 = 0.4872 on the bus-bandwidth curve.
// The B200 takes the GB200's fractions (an assumption the preset lists).
TEST(Presets, BlackwellFiguresAreTheAzureGb200Measurements) {
  const std::string rest = "model: llama3-8b\nparallelism: {global_batch: 144}\n";
  const Scenario gb =
      load_scenario_text("cluster: {preset: gb200-nvl72, nodes: 2}\n" + rest, "g.yaml");
  const Scenario b = load_scenario_text("cluster: {preset: dgx-b200, nodes: 2}\n" + rest, "b.yaml");
  for (const Scenario* s : {&gb, &b}) {
    const GpuSpec& g = s->cluster.gpu;
    EXPECT_NEAR(g.gemm_efficiency.at(Dtype::fp8), 2906.9 / 5000, 0.0005) << g.preset;
    EXPECT_NEAR(g.gemm_efficiency.at(Dtype::bf16), 2906.9 / 5000, 0.0005) << g.preset;
    ASSERT_GE(g.gemm_ramp.size(), 2u);
    EXPECT_NEAR(g.gemm_ramp[0].first.value(), 2 * std::pow(1024.0, 3) / 2906.9e12, 0.001e-6);
    EXPECT_NEAR(g.gemm_ramp[0].second, 489.2 / 2906.9, 0.0005);
    EXPECT_NEAR(g.gemm_ramp[1].first.value(), 2 * std::pow(2048.0, 3) / 2906.9e12, 0.01e-6);
    EXPECT_NEAR(g.gemm_ramp[1].second, 2243.6 / 2906.9, 0.0005);
    EXPECT_DOUBLE_EQ(g.gemm_ramp.back().second, 1.0);
    EXPECT_NEAR(s->cluster.intra_node.efficiency, 679.61 / 900, 0.0005);
  }
  ASSERT_EQ(gb.cluster.intra_node.bus_bandwidth_curve.size(), 7u);
  EXPECT_NEAR(gb.cluster.intra_node.bus_bandwidth_curve[2].second, 331.09 / 679.61, 0.0005);
  // Measured on the GB200: no longer in its assumed list; the B200 carries them as assumed.
  const auto ga = assumed_figures(gb.cluster);
  EXPECT_FALSE(contains(ga, "cluster.gpu.gemm_efficiency"));
  EXPECT_FALSE(contains(ga, "cluster.intra_node.efficiency"));
  const auto ba = assumed_figures(b.cluster);
  EXPECT_TRUE(contains(ba, "cluster.gpu.gemm_efficiency"));
  EXPECT_TRUE(contains(ba, "cluster.intra_node.efficiency"));
}

}  // namespace
}  // namespace orrery
