// `orrery run --trace`: every simulated GPU's streams, the TP, PP and DP collectives as
// slices with their bytes and group, the link-utilisation counters, the event cap.
#include "report/trace.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "scenario/load.h"
#include "simulator/predict.h"

namespace orrery {
namespace {

using nlohmann::json;

// TP4 x PP2 x DP2 on two DGX A100 nodes: each TP group inside a node, the DP pairs
// (GPUs g and g + 4) inside a node, each pipeline transfer from node 0 to node 1.
const char* kSmall = R"(
cluster: {preset: dgx-a100, nodes: 2}
model: {preset: narayanan-3.6b}
parallelism: {tp: 4, pp: 2, dp: 2, microbatch: 2, global_batch: 8}
training: {precision: fp16}
)";

// The first complete slice whose args name `parallelism`.
const json* first_slice(const json& events, const std::string& parallelism) {
  for (const json& e : events)
    if (e["ph"] == "X" && e.contains("args") && e["args"].value("parallelism", "") == parallelism)
      return &e;
  return nullptr;
}

// Without the slow-node term the printed step is the timeline's, and otherData names no
// blend.
TEST(Trace, NoSlowNodeNoteWithoutTheTerm) {
  Scenario s = load_scenario_text(kSmall, "small.yaml");
  s.cluster.slow_nodes.fraction = 0;
  const Prediction p = predict(s);
  ASSERT_FALSE(p.step.slow_nodes.has_value());
  const json j = json::parse(render_trace(s, p, false).json);
  EXPECT_EQ(j["otherData"]["compute"], "per op");
  EXPECT_FALSE(j["otherData"].contains("slow_nodes"));
}

TEST(Trace, CollectivesAreSlicesWithBytesAndGroup) {
  const Scenario s = load_scenario_text(kSmall, "small.yaml");
  const Prediction p = predict(s);
  const Trace t = render_trace(s, p, false);
  EXPECT_TRUE(t.op_level);
  EXPECT_FALSE(t.note);
  const json j = json::parse(t.json);
  const json& ev = j["traceEvents"];
  EXPECT_EQ(j["otherData"]["compute"], "per op");
  // The printed step beside the op-level one (the two modes agree within 1 % here,
  // tests/simulator/step_test.cpp).
  EXPECT_EQ(j["otherData"]["predicted_step_time_us"].get<double>(), p.step.step_time.value() * 1e6);
  EXPECT_NEAR(j["otherData"]["step_time_us"].get<double>() / (p.step.step_time.value() * 1e6), 1.0,
              0.01);
  // Two machines: the printed step blends in one slow node (cluster.slow_nodes' default),
  // which the op-level timeline, simulated without it, does not show; otherData says so.
  ASSERT_TRUE(p.step.slow_nodes.has_value());
  EXPECT_TRUE(j["otherData"].contains("slow_nodes"));

  // A forward layer's tensor-parallel all-reduce: the whole activation of a micro-batch,
  // microbatch x seq x hidden x 2 bytes (fp16) = 2 x 2048 x 3072 x 2 = 25,165,824, over
  // the 4 GPUs of GPU 0's TP group.
  const json* tp = first_slice(ev, "tp");
  ASSERT_NE(tp, nullptr);
  EXPECT_EQ((*tp)["args"]["collective"], "all_reduce");
  EXPECT_EQ((*tp)["args"]["bytes"].get<double>(), 25165824.0);
  EXPECT_EQ((*tp)["args"]["group_gpus"], json({0, 1, 2, 3}));
  EXPECT_EQ((*tp)["tid"], 1);  // the tp stream

  // Stage 0 -> 1: Megatron sends 1/tp of the activation, 25,165,824 / 4 = 6,291,456 bytes,
  // GPU 0 -> GPU 8 over one HDR NIC each way. Alone on the network, it takes the NIC
  // latency plus bytes over the NIC's usable rate (scenario/presets/systems.yaml dgx-a100:
  // 200 Gb/s = 25 GB/s x efficiency 0.94 = 23.5 GB/s, latency 14 us):
  // 14 us + 6,291,456 / 23.5e9 s = 14 + 267.7215 = 281.7215 us.
  const json* pp = first_slice(ev, "pp");
  ASSERT_NE(pp, nullptr);
  EXPECT_EQ((*pp)["args"]["collective"], "send_recv");
  EXPECT_EQ((*pp)["args"]["bytes"].get<double>(), 6291456.0);
  EXPECT_EQ((*pp)["args"]["group_gpus"], json({0, 8}));
  EXPECT_NEAR((*pp)["dur"].get<double>(), 281.7215, 0.001);

  // Gradient buckets reduced over the data-parallel pair.
  const json* dp = first_slice(ev, "dp");
  ASSERT_NE(dp, nullptr);
  EXPECT_GT((*dp)["args"]["bytes"].get<double>(), 0.0);
  EXPECT_EQ((*dp)["args"]["group_size"], 2);
  EXPECT_EQ((*dp)["tid"], 2);  // the dp stream
  EXPECT_FALSE((*dp)["args"]["algorithm"].get<std::string>().empty());

  // Every simulated GPU (one per stage: GPUs 0 and 8) names all seven streams.
  std::set<std::pair<int, std::string>> streams;
  std::set<std::string> processes;
  for (const json& e : ev) {
    if (e["ph"] != "M") continue;
    if (e["name"] == "process_name") processes.insert(e["args"]["name"].get<std::string>());
    if (e["name"] == "thread_name" && e["pid"].get<int>() < 2)
      streams.insert({e["pid"].get<int>(), e["args"]["name"].get<std::string>()});
  }
  EXPECT_TRUE(processes.count("GPU 0 (stage 0)"));
  EXPECT_TRUE(processes.count("GPU 8 (stage 1)"));
  for (int pid : {0, 1})
    for (const char* st : {"compute", "tp", "dp", "pp", "ep", "gather", "cp"})
      EXPECT_TRUE(streams.count({pid, st})) << pid << " " << st;

  // The NIC counter while the first transfer runs alone: the 8 TP x DP pairs of stage 0
  // each send 6,291,456 bytes, 50,331,648 over 281.7215 us = 178.66 GB/s, against the 16
  // NICs' usable send rate 16 x 23.5 GB/s = 376 GB/s: 47.52 %.
  bool nvlink = false, nic_checked = false;
  for (const json& e : ev) {
    if (e["ph"] != "C") continue;
    const double u = e["args"]["utilisation"];
    EXPECT_GE(u, 0.0);
    EXPECT_LE(u, 100.0 + 1e-9);
    if (e["name"] == "nvlink utilisation (%)" && u > 0) nvlink = true;
    if (e["name"] == "nic utilisation (%)" && e["ts"] == (*pp)["ts"]) {
      EXPECT_NEAR(u, 47.515, 0.01);
      nic_checked = true;
    }
  }
  EXPECT_TRUE(nvlink);
  EXPECT_TRUE(nic_checked);
}

TEST(Trace, SameInputSameBytes) {
  const Scenario s = load_scenario_text(kSmall, "small.yaml");
  EXPECT_EQ(render_trace(s, predict(s), false).json, render_trace(s, predict(s), false).json);
}

TEST(Trace, CapCutsTheTimelineWithANote) {
  const Scenario s = load_scenario_text(kSmall, "small.yaml");
  TraceOptions small;
  small.max_events = 300;
  const Trace t = render_trace(s, predict(s), false, small);
  ASSERT_TRUE(t.note);
  EXPECT_NE(t.note->find("more than the cap of 300"), std::string::npos) << *t.note;
  EXPECT_LE(t.events, 300u);
  const json j = json::parse(t.json);
  EXPECT_EQ(j["traceEvents"].size(), t.events);
  EXPECT_EQ(j["otherData"]["truncated"], *t.note);
  // Under the default cap the same step is whole.
  EXPECT_FALSE(render_trace(s, predict(s), false).note);
}

TEST(Trace, FullModeShowsBlocksWithTheirExposedTensorParallelTime) {
  const Scenario s = load_scenario_text(kSmall, "small.yaml");
  SimulationOptions full;
  full.full = true;
  const Trace t = render_trace(s, predict(s, full), true);
  EXPECT_FALSE(t.op_level);
  const json j = json::parse(t.json);
  EXPECT_EQ(j["otherData"]["compute"], "per block");
  bool exposed = false;
  for (const json& e : j["traceEvents"])
    if (e["ph"] == "X" && e.contains("args") && e["args"].contains("exposed_tp_us")) exposed = true;
  EXPECT_TRUE(exposed);
  EXPECT_EQ(first_slice(j["traceEvents"], "tp"), nullptr);  // inside the blocks
  EXPECT_NE(first_slice(j["traceEvents"], "dp"), nullptr);
  EXPECT_NE(first_slice(j["traceEvents"], "pp"), nullptr);
}

}  // namespace
}  // namespace orrery
