// Faults and slow machines in the simulated step: stragglers, failed nodes and links as
// engine changes, the slow-machine blend (cluster.slow_nodes), and how the breakdown reads
// the time they add (docs/simulator.md, "Faults" and "Slow nodes").
#include <gtest/gtest.h>

#include <cmath>
#include <fmt/format.h>

#include "core/error.h"
#include "simulator/breakdown.h"
#include "simulator/step.h"
#include "tests/simulator/pipelines.h"
#include "tests/test_util.h"

namespace orrery {
namespace {

TEST(Step, StragglerOnTheLastStageAddsItsWholeCompute) {
  // 1F1B, 4 stages, 8 micro-batches. The last stage runs F and B of each micro-batch
  // back to back without ever waiting for the others (they wait for it); at half speed it
  // takes 2 m T_3 instead of m T_3, and the fill ((p-1) T_F) and drain ((p-1) T_B) of the
  // other stages around it do not change: the step grows by exactly m T_3, the stage's
  // compute at full speed.
  const Scenario base = uniform_pipeline(4, 8, "1f1b");
  // The faults appended to the same text, so they are read and checked like a user's.
  const Scenario faulted =
      load_scenario_text(uniform_pipeline_yaml(4, 8, "1f1b") +
                             "faults:\n  - {kind: straggler, stage: 3, factor: 0.5}\n",
                         "faults.yaml");
  const StepResult healthy = simulate_step(base);
  const StepResult slow = simulate_step(faulted);
  const double stage_compute = healthy.stages.at(3).breakdown.compute.value();
  EXPECT_NEAR(slow.step_time.value() - healthy.step_time.value(), stage_compute,
              1e-3 * stage_compute);
  ASSERT_TRUE(slow.baseline_step_time.has_value());
  EXPECT_DOUBLE_EQ(slow.baseline_step_time->value(), healthy.step_time.value());
  // --full slows the stage's one GPU alone: the same here (one GPU per stage).
  SimulationOptions full;
  full.full = true;
  EXPECT_NEAR(simulate_step(faulted, full).step_time.value(),
              slow.step_time.value(), 1e-6 * slow.step_time.value());
}

TEST(Step, SlowNodesBlendTheStepWithOneSlowNodeOnTheBusiestStage) {
  // The pipeline of StragglerOnTheLastStageAddsItsWholeCompute, a stage per node (4 nodes of
  // one GPU, links with no cost). A node is slow with probability 1/2 and computes at half
  // speed: p = 1 - (1 - 1/2)^4 = 15/16 that at least one of the 4 is. The busiest stage is
  // the last (it never waits), and one slow node there adds m T_3, the stage's compute at
  // full speed, so the step is T + 15/16 m T_3.
  auto yaml = [](const std::string& slow_nodes) { return four_node_pipeline(slow_nodes); };
  const StepResult healthy = simulate_step(yaml("{fraction: 0}"));
  EXPECT_FALSE(healthy.slow_nodes.has_value());
  ASSERT_EQ(healthy.critical_stage, 3);
  const double t = healthy.step_time.value();
  const double stage_compute = healthy.stages.at(3).breakdown.compute.value();
  const StepResult r = simulate_step(yaml("{fraction: 0.5, speed: 0.5}"));
  ASSERT_TRUE(r.slow_nodes.has_value());
  EXPECT_DOUBLE_EQ(r.slow_nodes->probability, 15.0 / 16.0);
  EXPECT_EQ(r.slow_nodes->stage, 3);
  EXPECT_DOUBLE_EQ(r.slow_nodes->without.value(), t);
  EXPECT_NEAR(r.slow_nodes->with.value() - t, stage_compute, 1e-3 * stage_compute);
  EXPECT_NEAR(r.step_time.value(), t + 15.0 / 16.0 * stage_compute, 1e-3 * stage_compute);
  // --full takes the term from the symmetric step and adds it: here, a GPU a stage, the same.
  SimulationOptions full;
  full.full = true;
  const StepResult f = simulate_step(yaml("{fraction: 0.5, speed: 0.5}"), full);
  EXPECT_NEAR(f.step_time.value(), r.step_time.value(), 1e-9 * t);
  ASSERT_TRUE(f.slow_nodes.has_value());
  EXPECT_NEAR(f.slow_nodes->with.value(), r.slow_nodes->with.value(), 1e-9 * t);
  EXPECT_NEAR(f.stages.at(3).breakdown.compute.value(), r.stages.at(3).breakdown.compute.value(),
              1e-9 * t);
  // The rates follow the blended step: the same tokens in more time.
  EXPECT_NEAR(r.tokens_per_s * r.step_time.value(), healthy.tokens_per_s * t, 1e-6 * t);
  // The default, MegaScale's fleet (0.5 % of nodes at 1 / 1.1 of the speed): 1 - 0.995^4.
  const StepResult d = simulate_step(yaml("{}"));
  ASSERT_TRUE(d.slow_nodes.has_value());
  EXPECT_NEAR(d.slow_nodes->probability, 1 - std::pow(0.995, 4), 1e-15);
  // At 1 / 1.1 of the speed the last stage's compute takes 1.1 times as long.
  EXPECT_NEAR(d.slow_nodes->with.value() - t, 0.1 * stage_compute, 1e-3 * stage_compute);
  // One node: nothing faster to hold up, no blend (docs/simulator.md, "Slow nodes").
  const StepResult one = simulate_step(load_scenario_text(
      "cluster: {preset: dgx-h100}\nmodel: {preset: llama3-8b}\n"
      "parallelism: {tp: 8, microbatch: 1, global_batch: 8}\n", "one.yaml"));
  EXPECT_FALSE(one.slow_nodes.has_value());
}

TEST(Step, SlowNodesCountMachinesNotNvlinkDomains) {
  // A node of the gb200-nvl72 preset is a rack of 72 GPUs, a machine a compute tray of 4
  // (cluster.slow_nodes.machine_gpus): one rack is 18 machines, p = 1 - 0.995^18, and it is
  // blended although it is one node; 512 GPUs in NVLink domains of 64 are 128 trays.
  auto cluster = [](const std::string& c) {
    return load_scenario_text("cluster: " + c +
                                  "\nmodel: {preset: llama3-8b}\n"
                                  "parallelism: {tp: 8, microbatch: 1, global_batch: 576}\n",
                              "nvl.yaml")
        .cluster;
  };
  const ClusterSpec rack = cluster("{preset: gb200-nvl72}");
  EXPECT_EQ(slow_node_machines(rack), 18);
  EXPECT_DOUBLE_EQ(slow_node_probability(rack), 1 - std::pow(0.995, 18));
  const ClusterSpec mlperf = cluster(
      "{preset: gb200-nvl72, nodes: 8, gpus_per_node: 64, inter_node: {nics_per_node: 64}}");
  EXPECT_EQ(slow_node_machines(mlperf), 128);
  EXPECT_DOUBLE_EQ(slow_node_probability(mlperf), 1 - std::pow(0.995, 128));
  // Eight-GPU servers: a machine is a node, and one node blends nothing.
  EXPECT_EQ(slow_node_machines(cluster("{preset: dgx-h100, nodes: 16}")), 16);
  EXPECT_EQ(slow_node_probability(cluster("{preset: dgx-h100}")), 0.0);
  // machine_gpus 2 on one node of 8: four machines.
  EXPECT_DOUBLE_EQ(
      slow_node_probability(cluster("{preset: dgx-h100, slow_nodes: {machine_gpus: 2}}")),
      1 - std::pow(0.995, 4));
  // Nodes of 2 GPUs of the same preset, smaller than a tray: each counts as a machine.
  const ClusterSpec pairs =
      load_scenario_text("cluster: {preset: gb200-nvl72, nodes: 4, gpus_per_node: 2}\n"
                         "model: {preset: llama3-8b}\n"
                         "parallelism: {tp: 2, microbatch: 1, global_batch: 4}\n",
                         "pairs.yaml")
          .cluster;
  EXPECT_EQ(slow_node_machines(pairs), 4);
  // The rack's step blends the step with a slow tray: its busiest GPU's compute at 1 / 1.1.
  const StepResult r = simulate_step(load_scenario_text(
      "cluster: {preset: gb200-nvl72}\nmodel: {preset: llama3-8b}\n"
      "parallelism: {tp: 8, dp: 9, microbatch: 1, global_batch: 72}\n",
      "rack.yaml"));
  ASSERT_TRUE(r.slow_nodes.has_value());
  EXPECT_DOUBLE_EQ(r.slow_nodes->probability, 1 - std::pow(0.995, 18));
  EXPECT_GT(r.slow_nodes->with.value(), r.slow_nodes->without.value());
}

TEST(Step, ASlowNodeCompoundsWithAStragglerAndSlowsComputeNotCommunication) {
  // The four-node pipeline above. A straggler fault at 0.5 on the last stage, whose GPU is also
  // the slow node at 0.5: it computes at 0.25, 3 m T_3 longer, where the fault alone costs
  // m T_3 (StragglerOnTheLastStageAddsItsWholeCompute); the blend at p = 15/16.
  auto pipeline = [](const std::string& faults) {
    return four_node_pipeline("{fraction: 0.5, speed: 0.5}", faults);
  };
  Scenario healthy_s = pipeline("");
  healthy_s.cluster.slow_nodes.fraction = 0;
  const StepResult healthy = simulate_step(healthy_s);
  const double t = healthy.step_time.value();
  const double c = healthy.stages.at(3).breakdown.compute.value();
  const StepResult r =
      simulate_step(pipeline("faults:\n  - {kind: straggler, stage: 3, factor: 0.5}\n"));
  ASSERT_TRUE(r.slow_nodes.has_value());
  EXPECT_EQ(r.slow_nodes->stage, 3);
  EXPECT_NEAR(r.slow_nodes->without.value(), t + c, 1e-3 * c);
  EXPECT_NEAR(r.slow_nodes->with.value(), t + 3 * c, 1e-3 * c);
  EXPECT_NEAR(r.step_time.value(), t + c / 16 + 45.0 / 16 * c, 1e-3 * c);

  // Two GPUs a node at tp 2 over a slow NVLink: the layers' tensor-parallel collectives are
  // exposed inside each block. A slow node at half speed doubles the stage's compute and
  // leaves the communication it waits for as it was: in the blend, compute (1 + p) C and the
  // exposed TP time unchanged.
  const StepResult base = simulate_step(tp2_over_slow_nvlink("0"));
  const StepResult slow = simulate_step(tp2_over_slow_nvlink("0.5"));
  ASSERT_TRUE(slow.slow_nodes.has_value());
  const int st = slow.slow_nodes->stage;
  const Breakdown &b0 = base.stages.at(st).breakdown, &b1 = slow.stages.at(st).breakdown;
  ASSERT_GT(b0.tp_exposed.value(), 0.05 * b0.compute.value());
  EXPECT_NEAR(b1.compute.value(), (1 + 15.0 / 16) * b0.compute.value(), 1e-3 * b0.compute.value());
  EXPECT_NEAR(b1.tp_exposed.value(), b0.tp_exposed.value(), 1e-3 * b0.tp_exposed.value());
}

TEST(Step, AStragglerSlowsItsComputeNotTheCommunicationItWaitsFor) {
  // The tp 2 pipeline over a slow NVLink above, no slow nodes: a straggler at 0.5 on stage 1
  // doubles that stage's compute, C -> 2 C, and its tensor-parallel collectives, folded into
  // the same tasks, take as long as before (a slow GPU computes slowly, its links do not).
  const StepResult base = simulate_step(tp2_over_slow_nvlink("0"));
  const StepResult r = simulate_step(
      tp2_over_slow_nvlink("0", "faults:\n  - {kind: straggler, stage: 1, factor: 0.5}\n"));
  const Breakdown &b0 = base.stages.at(1).breakdown, &b1 = r.stages.at(1).breakdown;
  ASSERT_GT(b0.tp_exposed.value(), 0.05 * b0.compute.value());
  EXPECT_NEAR(b1.compute.value(), 2 * b0.compute.value(), 1e-3 * b0.compute.value());
  EXPECT_NEAR(b1.tp_exposed.value(), b0.tp_exposed.value(), 1e-3 * b0.tp_exposed.value());
  // A stage without the fault computes as before.
  EXPECT_NEAR(r.stages.at(0).breakdown.compute.value(), base.stages.at(0).breakdown.compute.value(),
              1e-9 * b0.compute.value());
}

TEST(Step, AStoppedGpuIsIdleNotComputing) {
  // A failed node inside a window (factor 0 from `from` to `until`) stops its GPU; the time
  // it stood still is idle (bubble), not compute: stage 1's compute is what it was, and the
  // stage's parts still sum to the step.
  const StepResult base = simulate_step(tp2_over_slow_nvlink("0"));
  const StepResult r = simulate_step(tp2_over_slow_nvlink(
      "0", "faults:\n  - {kind: failed_node, node: 1, from: 0.05 s, until: 0.09 s}\n"));
  ASSERT_FALSE(r.stalled_at.has_value());
  const Breakdown &b0 = base.stages.at(1).breakdown, &b1 = r.stages.at(1).breakdown;
  EXPECT_NEAR(b1.compute.value(), b0.compute.value(), 1e-9);
  EXPECT_NEAR(b1.tp_exposed.value(), b0.tp_exposed.value(), 1e-9);
  EXPECT_GT(r.step_time.value(), base.step_time.value() + 0.01);
  const Breakdown& b = b1;
  EXPECT_NEAR((b.compute + b.recompute + b.tp_exposed + b.ep_exposed + b.cp_exposed +
               b.pp_exposed + b.dp_exposed + b.offload_exposed + b.bubble + b.optimizer)
                  .value(),
              r.step_time.value(), 1e-9);
}

TEST(Step, AFaultThatStopsOnlyTheSlowerStepLeavesTheSlowMachineOut) {
  // Slow nodes at p = 15/16 and half speed; a node fails after the healthy step would have
  // ended but before the one with a slow machine would: that step never finishes, so there is
  // none to blend, and a note says why (no breakdown of a stalled timeline is read).
  const StepResult healthy = simulate_step(four_node_pipeline("{fraction: 0}"));
  const double t = healthy.step_time.value();
  const double c = healthy.stages.at(3).breakdown.compute.value();
  const StepResult r = simulate_step(four_node_pipeline(
      "{fraction: 0.5, speed: 0.5}",
      fmt::format("faults:\n  - {{kind: failed_node, node: 0, from: {} s}}\n", t + c / 2)));
  ASSERT_FALSE(r.stalled_at.has_value());
  EXPECT_FALSE(r.slow_nodes.has_value());
  EXPECT_DOUBLE_EQ(r.step_time.value(), t);
  bool noted = false;
  for (const std::string& n : r.notes) noted = noted || n.find("not blended") != std::string::npos;
  EXPECT_TRUE(noted);
}

TEST(Step, EveryStageBreakdownInOnePassIsEachRanksOwn) {
  // TimelineReader::breakdowns reads all stages in one pass; each must equal the reading of
  // its rank alone, to the bit (a pipeline with TP exposure, recompute and a straggler).
  const StepResult r = simulate_step(tp2_over_slow_nvlink(
      "0", "faults:\n  - {kind: straggler, stage: 2, factor: 0.7, from: 0.01 s, until: 0.2 s}\n"));
  const TimelineReader reader(r.graph, r.timeline);
  const std::vector<int> ranks = {3, 0, 2, 1};
  const std::vector<Breakdown> all = reader.breakdowns(ranks, r.timeline.end);
  ASSERT_EQ(all.size(), ranks.size());
  for (size_t k = 0; k < ranks.size(); ++k) {
    const Breakdown one = reader.breakdown(ranks[k], r.timeline.end);
    EXPECT_EQ(all[k].compute.value(), one.compute.value());
    EXPECT_EQ(all[k].tp_exposed.value(), one.tp_exposed.value());
    EXPECT_EQ(all[k].pp_exposed.value(), one.pp_exposed.value());
    EXPECT_EQ(all[k].bubble.value(), one.bubble.value());
    EXPECT_EQ(all[k].dp_exposed.value(), one.dp_exposed.value());
  }
  EXPECT_GT(all[2].compute.value(), all[1].compute.value());  // the straggler's stage (rank 2)
}

TEST(Step, SlowNodesReachTheWarmUpStepsAndTheLocalSgdPeriodInBothModes) {
  // 1-bit Adam's uncompressed warm-up steps carry the term in --full as in the symmetric step
  // (the two agree on a symmetric cluster); local SGD's with/without are period means, so the
  // step time is their blend.
  auto scenario = [](const std::string& compression) {
    return load_scenario_text(
        "cluster: {preset: dgx-h100, nodes: 2, slow_nodes: {fraction: 0.25}}\n"
        "model: {preset: llama3-8b}\n"
        "parallelism: {tp: 8, dp: 2, microbatch: 1, global_batch: 8}\n"
        "training: {precision: bf16, gradient_compression: " + compression + "}\n",
        "compress.yaml");
  };
  const Scenario onebit = scenario("{scheme: onebit, warmup_steps: 100}");
  SimulationOptions full;
  full.full = true;
  const StepResult sym = simulate_step(onebit), fl = simulate_step(onebit, full);
  ASSERT_TRUE(sym.warmup_step_time && fl.warmup_step_time);
  EXPECT_NEAR(fl.warmup_step_time->value(), sym.warmup_step_time->value(),
              1e-6 * sym.warmup_step_time->value());
  EXPECT_NEAR(fl.step_time.value(), sym.step_time.value(), 1e-6 * sym.step_time.value());
  Scenario plain = scenario("{scheme: none}");
  const StepResult none = simulate_step(plain);
  EXPECT_NEAR(sym.warmup_step_time->value(), none.step_time.value(), 1e-9 * none.step_time.value());
  const StepResult lsgd = simulate_step(scenario("{scheme: local_sgd, period: 4}"));
  ASSERT_TRUE(lsgd.slow_nodes.has_value());
  const double q = lsgd.slow_nodes->probability;
  EXPECT_DOUBLE_EQ(q, 1 - 0.75 * 0.75);
  EXPECT_NEAR(lsgd.step_time.value(),
              (1 - q) * lsgd.slow_nodes->without.value() + q * lsgd.slow_nodes->with.value(),
              1e-9 * lsgd.step_time.value());
}

TEST(Step, FailedSpineLinksSlowTheAllReduceByTheRemainingBisection) {
  // 8 DGX H100 on a 2:1 fat tree: 64 NICs, two leaves of 32 downlinks, each leaf with
  // 32 / 2 = 16 uplinks of 400 Gb/s (50 GB/s). The gradient all-reduce runs 8 rings (one
  // per tensor-parallel rank) over the 8 nodes, each crossing leaf 0's uplink once each
  // way. Losing 8 uplinks leaves 8 x 50 GB/s for 8 flows: 50 GB/s each, the NIC's own
  // rate, so nothing changes. Losing 12 leaves 4 x 50 / 8 = 25 GB/s per flow: the
  // all-reduce's bandwidth term doubles, its latency term (2 (8 - 1) = 14 ring steps of the
  // preset's 14 us inter-node latency per bucket) does not: with exposed time L + B
  // healthy and L + 2B after, 2 x healthy - after = L = buckets x 14 x 14 us.
  auto scenario = [](int lost) {
    std::string yaml = R"(
cluster:
  preset: dgx-h100
  nodes: 8
  inter_node: {topology: fat-tree, oversubscription: 2}
model: {preset: llama3-8b}
parallelism: {tp: 8, dp: 8, microbatch: 1, global_batch: 8}
training: {precision: bf16, overlap_grad_reduce: false}
)";
    if (lost > 0)
      yaml += fmt::format("faults:\n  - {{kind: failed_link, link: spine, leaf: 0, lost: {}}}\n",
                          lost);
    return load_scenario_text(yaml, "spine.yaml");
  };
  auto dp = [](const StepResult& r) { return r.stages.at(0).breakdown.dp_exposed.value(); };
  const StepResult base = simulate_step(scenario(0));
  const double healthy = dp(base);
  int buckets = 0;
  for (const Task& t : base.graph.tasks) buckets += t.kind == TaskKind::dp_comm ? 1 : 0;
  EXPECT_DOUBLE_EQ(dp(simulate_step(scenario(8))), healthy);
  const double halved = dp(simulate_step(scenario(12)));
  EXPECT_NEAR(2 * healthy - halved, buckets * 14 * 14e-6, 1e-6);
  // All 16 lost: no path between the leaves; the step never completes.
  const StepResult cut = simulate_step(scenario(16));
  ASSERT_TRUE(cut.stalled_at.has_value());
}

TEST(Step, AFailedNicSendsItsTrafficThroughAPeerGpusNic) {
  // 2 DGX H100 (8 GPUs, 8 NICs of 400 Gb/s each, GPU i on NIC i), tp 8, dp 2: the gradient
  // all-reduce runs 8 two-rank rings, ring i between GPU i of each node on NIC i. With
  // NIC 3 of node 0 failed, PXN sends ring 3 over NVLink to GPU 4 and out of NIC 4 (and
  // back in the same way), so NIC 4 carries rings 3 and 4 in each direction: both get
  // half its rate, the all-reduce's bandwidth term doubles and the step waits for them.
  // Its latency term (2 (2 - 1) = 2 ring steps of the preset's 14 us inter-node latency
  // per bucket) is unchanged, so with exposed time L + B healthy and L + 2B after,
  // 2 x healthy - after = L = buckets x 2 x 14 us.
  auto scenario = [](const std::string& faults) {
    const std::string yaml = R"(
cluster: {preset: dgx-h100, nodes: 2, slow_nodes: {fraction: 0}}
model: {preset: llama3-8b}
parallelism: {tp: 8, dp: 2, microbatch: 1, global_batch: 8}
training: {precision: bf16, overlap_grad_reduce: false}
)" + faults;
    return load_scenario_text(yaml, "nic.yaml");
  };
  auto dp = [](const StepResult& r) { return r.stages.at(0).breakdown.dp_exposed.value(); };
  const StepResult base = simulate_step(scenario(""));
  const double healthy = dp(base);
  int buckets = 0;
  for (const Task& t : base.graph.tasks) buckets += t.kind == TaskKind::dp_comm ? 1 : 0;
  const std::string one = "faults:\n  - {kind: failed_link, link: nic, node: 0, nic: 3}\n";
  const StepResult failed = simulate_step(scenario(one));
  ASSERT_FALSE(failed.stalled_at.has_value());
  EXPECT_NEAR(2 * healthy - dp(failed), buckets * 2 * 14e-6, 1e-6);
  // The symmetric step follows the GPU behind the failed NIC; --full simulates all 16.
  SimulationOptions full;
  full.full = true;
  EXPECT_NEAR(simulate_step(scenario(one), full).step_time.value(), failed.step_time.value(),
              1e-6 * failed.step_time.value());
  // Every NIC of node 0 failed: no way out of the node; the step never completes.
  std::string all = "faults:\n";
  for (int k = 0; k < 8; ++k)
    all += fmt::format("  - {{kind: failed_link, link: nic, node: 0, nic: {}}}\n", k);
  ASSERT_TRUE(simulate_step(scenario(all)).stalled_at.has_value());
}

TEST(Step, ASpineFaultNeedsASpine) {
  // 2 DGX H100 on a fat tree: 16 NIC ports fill one leaf switch, so there is no spine
  // (regression: this threw std::out_of_range, a crash with exit code 1, not bad input).
  // On 80 nodes (20 leaves), leaf 20 is one too many.
  auto faulted = [](int nodes, const std::string& fault) {
    return load_scenario_text(
        fmt::format("cluster: {{preset: dgx-h100, nodes: {}, inter_node: {{topology: fat-tree}}}}\n"
                    "model: {{preset: llama3-8b}}\nparallelism: {{tp: 8, dp: {}, global_batch: {}}}\n"
                    "faults:\n  - {}\n",
                    nodes, nodes, 8 * nodes, fault),
        "spine.yaml");
  };
  for (const char* fault : {"{kind: failed_link, link: spine, leaf: 0, lost: 2}",
                            "{kind: slow_link, link: spine, leaf: 0, factor: 0.5}"}) {
    try {
      simulate_step(faulted(2, fault));
      ADD_FAILURE() << fault << ": no error";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("single leaf switch and no spine"), std::string::npos)
          << e.what();
    }
  }
  try {
    simulate_step(faulted(80, "{kind: failed_link, link: spine, leaf: 20}"));
    ADD_FAILURE() << "leaf 20: no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("the fabric has 20 leaf switches"), std::string::npos)
        << e.what();
  }
}

TEST(Step, AFailedNodeStallsTheStep) {
  const std::string yaml = R"(
cluster: {preset: dgx-h100, nodes: 2}
model: {preset: llama3-8b}
parallelism: {tp: 8, pp: 2, microbatch: 1, global_batch: 8}
faults:
  - {kind: failed_node, node: 1, from: "20 ms"}
)";
  const StepResult r = simulate_step(load_scenario_text(yaml, "node.yaml"));
  ASSERT_TRUE(r.stalled_at.has_value());
  EXPECT_GE(r.stalled_at->value(), 0.020);
  EXPECT_LT(r.stalled_at->value(), r.baseline_step_time->value());
}

TEST(Step, ASlowNicWindowOnlyCostsWhileItLasts) {
  // The whole step with every NIC of node 0 at a quarter of its rate from 0 until the
  // step's end equals the slow step; a window that closes before any inter-node traffic
  // starts (the first microsecond) changes nothing.
  std::string base = R"(
cluster: {preset: dgx-h100, nodes: 2}
model: {preset: llama3-8b}
parallelism: {tp: 8, dp: 2, microbatch: 1, global_batch: 8}
training: {precision: bf16, overlap_grad_reduce: false}
)";
  const double healthy = simulate_step(load_scenario_text(base, "a.yaml")).step_time.value();
  const double slow = simulate_step(load_scenario_text(
      base + "faults:\n  - {kind: slow_link, link: nic, node: 0, factor: 0.25}\n", "b.yaml"))
                          .step_time.value();
  EXPECT_GT(slow, healthy);
  const double blip = simulate_step(load_scenario_text(
      base + "faults:\n  - {kind: slow_link, link: nic, node: 0, factor: 0.25, until: \"1 us\"}\n",
      "c.yaml")).step_time.value();
  EXPECT_DOUBLE_EQ(blip, healthy);
}

}  // namespace
}  // namespace orrery
