// The swept systems and the axes beyond the split: each candidate carries its value into
// the scenario it is simulated as and into the scenario file it is written back as.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/error.h"
#include "scenario/load.h"
#include "sweep/output.h"
#include "sweep/sweep.h"

namespace orrery {
namespace {

// 8 GPUs of one node, the 1.7B model of Narayanan et al. 2021 Table 1, global batch 16.
const std::string kBase = R"(name: axes
cluster: {preset: dgx-h100, nodes: 1}
model: {preset: narayanan-1.7b}
parallelism: {tp: 2, pp: 1, microbatch: 1, global_batch: 16}
training: {precision: bf16}
)";

SweepInput load(const std::string& sweep, const std::string& base = kBase) {
  return load_sweep_text(base + sweep, "t.yaml");
}

// Each candidate as simulated, and as its rewritten file loads (invalid ones skipped).
struct Pair {
  Assignment a;
  Scenario simulated, written;
};
std::vector<Pair> candidates(const SweepInput& in) {
  std::vector<Pair> out;
  const SweepResult r = run_sweep(in, SweepOptions{});
  for (const CandidateResult& c : r.candidates) {
    if (c.status == Status::invalid) continue;
    out.push_back(
        {c.a, candidate_scenario(in, c.a),
         load_scenario_text(rewrite_scenario_yaml(in.yaml, candidate_settings(in, c)), "c.yaml")});
  }
  return out;
}

TEST(SystemSweep, EachCandidateTakesTheWholeSystem) {
  // DGX H100: H100 SXM, 900 GB/s NVLink bidirectional = 450 GB/s per direction; DGX B200:
  // B200, 1.8 TB/s = 900 GB/s (scenario/presets/systems.yaml, their user guides). The B200
  // must not keep H100's NVLink, as sweep.gpu did.
  const SweepInput in = load("sweep: {system: [dgx-h100, dgx-b200]}\n");
  const auto cs = candidates(in);
  ASSERT_EQ(cs.size(), 2u);
  for (const Scenario* s : {&cs[0].simulated, &cs[0].written}) {
    EXPECT_EQ(s->cluster.preset, "dgx-h100");
    EXPECT_EQ(s->cluster.gpu.preset, "h100-sxm5-80gb");
    EXPECT_DOUBLE_EQ(s->cluster.intra_node.bandwidth.value(), 450e9);
  }
  for (const Scenario* s : {&cs[1].simulated, &cs[1].written}) {
    EXPECT_EQ(s->cluster.preset, "dgx-b200");
    EXPECT_EQ(s->cluster.gpu.preset, "b200");
    EXPECT_DOUBLE_EQ(s->cluster.intra_node.bandwidth.value(), 900e9);
    EXPECT_EQ(s->cluster.intra_node.bus_bandwidth_curve.back().first.value(), 16.0 * (1 << 30));
  }
}

TEST(SystemSweep, TheSystemIsAColumnOfTheTableCsvAndJson) {
  const SweepInput in = load("sweep: {system: [dgx-h100, dgx-b200]}\n");
  const SweepResult r = run_sweep(in, SweepOptions{});
  const std::string table = render_sweep_table(in, r);
  EXPECT_NE(table.find("system"), std::string::npos);
  EXPECT_NE(table.find("dgx-b200"), std::string::npos);
  const std::string csv = render_sweep_csv(in, r);
  EXPECT_EQ(csv.rfind("index,status,system,gpu,", 0), 0u) << csv.substr(0, 80);
  EXPECT_NE(csv.find("\n0,simulated,dgx-h100,NVIDIA H100 SXM5 80GB,"), std::string::npos);
  EXPECT_NE(csv.find("\n1,simulated,dgx-b200,NVIDIA B200 (HGX/DGX B200),"), std::string::npos);
  const std::string json = render_sweep_json(in, r);
  EXPECT_NE(json.find("\"system\": \"dgx-b200\""), std::string::npos);
  // Each system's assumed figures are named: the B200's, and the H100's three measured on an
  // H200.
  EXPECT_NE(table.find("\nassumed      dgx-b200: cluster.gpu.gemm_efficiency, "),
            std::string::npos);
  EXPECT_NE(table.find("\nassumed      dgx-h100: cluster.gpu.cudnn_attention_efficiency, "
                       "cluster.gpu.fp8_split_accumulation, "
                       "cluster.gpu.unaligned_gemm_efficiency: "),
            std::string::npos)
      << table;
}

TEST(SystemSweep, NodeCountsAndFabricSettingsApplyToEverySystem) {
  // Keys written beside the preset stay: two nodes and a 2:1 leaf for both systems.
  const SweepInput in =
      load("sweep: {system: [dgx-a100, dgx-h200]}\n",
           R"(cluster: {preset: dgx-h100, nodes: 2, inter_node: {oversubscription: 2}}
model: {preset: narayanan-1.7b}
parallelism: {tp: 2, pp: 1, microbatch: 1, global_batch: 16}
)");
  const auto cs = candidates(in);
  ASSERT_EQ(cs.size(), 2u);
  EXPECT_EQ(cs[0].simulated.cluster.gpu.preset, "a100-sxm4-80gb");
  EXPECT_EQ(cs[1].written.cluster.gpu.preset, "h200-sxm-141gb");
  for (const auto& c : cs) {
    EXPECT_EQ(c.simulated.cluster.nodes, 2);
    EXPECT_EQ(c.written.cluster.nodes, 2);
    EXPECT_DOUBLE_EQ(c.written.cluster.inter_node.oversubscription, 2.0);
  }
}

TEST(SystemSweep, EachSystemTakesItsOwnHostTimePerKernel) {
  // training.stack.host_overhead defaults to the system's cluster.gpu.host_overhead
  // (scenario/presets/gpus.yaml, NVIDIA/TransformerEngine issue 2053): 13.48 us on the DGX
  // H100's Xeon host, 37.08 us on the GB200's Grace, each candidate its own. 576 sequences
  // split over 8 and 72 GPUs alike.
  const SweepInput in = load("sweep: {system: [dgx-h100, gb200-nvl72]}\n",
                             R"(cluster: {preset: dgx-h100, nodes: 1}
model: {preset: narayanan-1.7b}
parallelism: {tp: 1, pp: 1, microbatch: 1, global_batch: 576}
training: {precision: bf16}
)");
  const auto cs = candidates(in);
  ASSERT_EQ(cs.size(), 2u);
  for (const Scenario* s : {&cs[0].simulated, &cs[0].written})
    EXPECT_DOUBLE_EQ(s->training.stack.host_overhead.value(), 13.48e-6);
  for (const Scenario* s : {&cs[1].simulated, &cs[1].written})
    EXPECT_DOUBLE_EQ(s->training.stack.host_overhead.value(), 37.08e-6);
}

TEST(SystemSweep, GpuOverASystemPresetIsRefused) {
  EXPECT_THROW(load("sweep: {gpu: [h100-sxm5-80gb, b200]}\n"), InputError);
  EXPECT_THROW(load("sweep: {gpu: [b200], system: [dgx-b200]}\n"), InputError);
}

TEST(AxisSweep, ClusterAxesCarryTheirValues) {
  const SweepInput in = load(
      "sweep: {gpus_per_node: [4, 8], nics_per_node: [4, 8], nic_bandwidth: [\"200 Gb/s\", "
      "\"800 Gb/s\"]}\n",
      R"(cluster: {preset: dgx-h100, nodes: 2}
model: {preset: narayanan-1.7b}
parallelism: {tp: 2, pp: 1, microbatch: 1, global_batch: 16}
)");
  const auto cs = candidates(in);
  // 2 x 2 x 2 = 8; dp follows the GPU count (8 or 16 GPUs / tp 2 = 4 or 8).
  ASSERT_EQ(cs.size(), 8u);
  for (const auto& c : cs) {
    for (const Scenario* s : {&c.simulated, &c.written}) {
      EXPECT_EQ(s->cluster.gpus_per_node, c.a.gpus_per_node);
      EXPECT_EQ(s->parallelism.dp, 2 * c.a.gpus_per_node / 2);
      EXPECT_EQ(s->cluster.inter_node.nics_per_node, c.a.nics_per_node);
      // 200 Gb/s = 25e9 B/s, 800 Gb/s = 100e9 B/s.
      EXPECT_DOUBLE_EQ(s->cluster.inter_node.nic_bandwidth.value(),
                       c.a.nic_bandwidth == 0 ? 25e9 : 100e9);
    }
  }
  EXPECT_EQ(cs[0].a.gpus_per_node, 4);  // the slowest of the three
  EXPECT_EQ(cs[7].a.gpus_per_node, 8);
}

TEST(AxisSweep, ParallelismAxesCarryTheirValues) {
  // cp 1, 2 x sequence parallel x schedule: cp 2 with tp 2 uses 4 of the 8 GPUs, dp 2.
  const SweepInput in =
      load("sweep: {cp: [1, 2], sequence_parallel: [false, true], schedule: [1f1b, gpipe]}\n",
           R"(cluster: {preset: dgx-h100, nodes: 1}
model: {preset: narayanan-1.7b}
parallelism: {tp: 2, pp: 2, microbatch: 1, global_batch: 16}
)");
  const auto cs = candidates(in);
  ASSERT_EQ(cs.size(), 8u);
  for (const auto& c : cs) {
    for (const Scenario* s : {&c.simulated, &c.written}) {
      EXPECT_EQ(s->parallelism.cp, c.a.cp);
      EXPECT_EQ(s->parallelism.dp, 8 / (2 * 2 * c.a.cp));
      EXPECT_EQ(s->parallelism.sequence_parallel, c.a.sequence_parallel);
      EXPECT_EQ(s->parallelism.schedule, c.a.schedule);
    }
  }
}

TEST(AxisSweep, ExpertParallelismCarriesItsValue) {
  // Mixtral 8x7B on 2 nodes of 8 with tp 2 pp 4: dp 2; ep must divide dp*cp = 2.
  const SweepInput in = load("sweep: {ep: [1, 2, 4]}\n",
                             R"(cluster: {preset: dgx-h100, nodes: 2}
model: {preset: mixtral-8x7b}
parallelism: {tp: 2, pp: 4, microbatch: 1, global_batch: 16}
)");
  const SweepResult r = run_sweep(in, SweepOptions{});
  ASSERT_EQ(r.candidates.size(), 3u);
  EXPECT_EQ(r.candidates[2].status, Status::invalid);  // ep 4 does not divide dp*cp = 2
  const auto cs = candidates(in);
  ASSERT_EQ(cs.size(), 2u);
  for (const auto& c : cs) {
    EXPECT_EQ(c.simulated.parallelism.ep, c.a.ep);
    EXPECT_EQ(c.written.parallelism.ep, c.a.ep);
  }
}

TEST(AxisSweep, FsdpImplementationAndShardingCarryTheirValues) {
  // 2 nodes of 8, tp 1: dp 16; each implementation full or hybrid (8 ranks of a node
  // tile the 16).
  const SweepInput in = load(
      "sweep: {fsdp: [deepspeed, fsdp2, megatron_fsdp], sharding: [full, "
      "hybrid]}\n",
      R"(cluster: {preset: dgx-h100, nodes: 2}
model: {preset: narayanan-1.7b}
parallelism: {tp: 1, pp: 1, microbatch: 1, global_batch: 32, fsdp: true}
)");
  const auto cs = candidates(in);
  ASSERT_EQ(cs.size(), 6u);
  for (const auto& c : cs) {
    for (const Scenario* s : {&c.simulated, &c.written}) {
      EXPECT_EQ(s->parallelism.zero_stage, 3);
      EXPECT_EQ(s->parallelism.fsdp_impl, c.a.fsdp);
      EXPECT_EQ(s->parallelism.sharding, c.a.sharding);
    }
  }
  EXPECT_EQ(cs[0].a.fsdp, ParallelismSpec::FsdpImpl::deepspeed);
  EXPECT_EQ(cs[5].a.fsdp, ParallelismSpec::FsdpImpl::megatron_fsdp);
}

TEST(AxisSweep, StageThreeRunsTheStacksImplementation) {
  // zero_stage 3 swept: PyTorch FSDP2 (the Megatron-LM line's) without a stack; under a
  // stack, written or swept, the stack's own, as the same file would resolve.
  using Impl = ParallelismSpec::FsdpImpl;
  const std::string base = R"(cluster: {preset: dgx-h100, nodes: 2}
model: {preset: narayanan-1.7b}
parallelism: {tp: 1, pp: 1, microbatch: 1, global_batch: 32}
)";
  const auto impl = [&](const std::string& sweep, const std::string& training) {
    std::vector<std::pair<std::string, Impl>> out;
    for (const auto& c : candidates(load(sweep, base + training)))
      out.emplace_back(to_string(c.simulated.training.stack.preset),
                       c.simulated.parallelism.fsdp_impl);
    return out;
  };
  using V = std::vector<std::pair<std::string, Impl>>;
  EXPECT_EQ(impl("sweep: {zero_stage: [3]}\n", ""), (V{{"megatron-core", Impl::fsdp2}}));
  EXPECT_EQ(impl("sweep: {zero_stage: [3]}\n", "training: {stack: deepspeed}\n"),
            (V{{"deepspeed", Impl::deepspeed}}));
  EXPECT_EQ(impl("sweep: {zero_stage: [3], stack: [deepspeed, fsdp1, megatron-core]}\n", ""),
            (V{{"deepspeed", Impl::deepspeed},
               {"fsdp1", Impl::fsdp1},
               {"megatron-core", Impl::megatron_fsdp}}));
}

}  // namespace
}  // namespace orrery
