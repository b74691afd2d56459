// NCCL kernels of a Kineto trace: the node span of their process group, the measured
// collective entries in the profile, and the scenario collectives they time in `run`
// (docs/model.md, "Measured collectives"; docs/calibration-format.md, "measured_kernels").
//
// The fixture tests/calibrate/data/kineto_llama3_8b_tp8_nccl.json is hand-written in the
// shape torch.profiler's Chrome trace has: kernel events linked to their CPU op by
// `External id`, and on each NCCL kernel the args Kineto copies from its
// record_param_comms op, with the key names of pytorch/kineto
// libkineto/src/output_json.cpp at 114171df ("Collective name", "In msg nelems",
// "Out msg nelems", "Group size", "dtype", "Process Group Name", "Process Group
// Description", "Process Group Ranks", the last a quoted list as appendCollectiveArgs
// writes it with addQuoted).
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "calibrate/calibrate.h"
#include "calibrate/kernel_classes.h"
#include "calibrate/kineto.h"
#include "calibrate/profile_model.h"
#include "core/error.h"
#include "model/workload.h"
#include "scenario/load.h"
#include "simulator/predict.h"

namespace orrery {
namespace {

const std::string kFixture =
    std::string(ORRERY_SOURCE_DIR) + "/tests/calibrate/data/kineto_llama3_8b_tp8_nccl.json";
const std::string kOldFixture =
    std::string(ORRERY_SOURCE_DIR) + "/tests/calibrate/data/kineto_llama3_8b_h100.json";

std::string write_temp(const std::string& name, const std::string& text) {
  const auto dir = std::filesystem::temp_directory_path() /
                   fmt::format("orrery_nccl_trace_{}", static_cast<long>(::getpid()));
  std::filesystem::create_directories(dir);
  const auto path = (dir / name).string();
  std::ofstream(path) << text;
  return path;
}

// An NCCL kernel of an all-reduce over the group `ranks` (a JSON list as Kineto writes it,
// or absent when empty), 1024 bf16 elements.
std::string nccl_trace(const std::string& ranks, int group_size) {
  const std::string pg =
      ranks.empty() ? "" : fmt::format(", \"Process Group Ranks\": \"{}\"", ranks);
  return fmt::format(
      R"({{"traceEvents": [
  {{"ph": "X", "cat": "kernel", "name": "ncclDevKernel_AllReduce_Sum_bf16_RING_LL", "ts": 0,
   "dur": 10, "args": {{"Collective name": "allreduce", "In msg nelems": 1024,
   "Out msg nelems": 1024, "Group size": {}, "dtype": "BFloat16"{}}}}}]}})",
      group_size, pg);
}

int span(const std::string& ranks, int group_size, int gpus_per_node) {
  const std::vector<MeasuredKernel> m =
      measured_kernels(read_kineto_text(nccl_trace(ranks, group_size), "t.json"), gpus_per_node);
  EXPECT_EQ(m.size(), 1u);
  return m.empty() ? -1 : m[0].nodes;
}

TEST(NcclTrace, TheNodeSpanFollowsTheGroupsRanksAndTheGpusPerNode) {
  // torchrun numbers workers node by node (rank = node x nproc_per_node + local rank), so
  // with 8 GPUs per node ranks 0-7 are node 0 and 8-15 node 1.
  EXPECT_EQ(span("[0, 1, 2, 3, 4, 5, 6, 7]", 8, 8), 1);
  EXPECT_EQ(span("[8, 9, 10, 11, 12, 13, 14, 15]", 8, 8), 1);
  EXPECT_EQ(span("[4, 5, 6, 7, 8, 9, 10, 11]", 8, 8), 2);  // straddles nodes 0 and 1
  // A data-parallel group of a tp 8 job: ranks 0, 8, 16, 24, one per node: 4 nodes.
  EXPECT_EQ(span("[0, 8, 16, 24]", 4, 8), 4);
  // Non-contiguous within a node: ranks 0, 2, 4, 6 all on node 0; on 4-GPU nodes, 2 nodes.
  EXPECT_EQ(span("[0, 2, 4, 6]", 4, 8), 1);
  EXPECT_EQ(span("[0, 2, 4, 6]", 4, 4), 2);
  // Unknown: no --gpus-per-node, no ranks, ranks that are not the group's (a shortened
  // list), or not whole numbers.
  EXPECT_EQ(span("[0, 1, 2, 3, 4, 5, 6, 7]", 8, 0), 0);
  EXPECT_EQ(span("", 8, 8), 0);
  EXPECT_EQ(span("[0, 1, 2, 3, 4, 5, 6]", 8, 8), 0);
  EXPECT_EQ(span("[0, 1, 2, x]", 4, 8), 0);
  EXPECT_EQ(group_nodes({0, 1, 8, 9, 16}, 8), 3);
  EXPECT_EQ(group_nodes({}, 8), 0);
}

TEST(NcclTrace, TheFixtureGivesOneSpannedEntryAtTheMedianCall) {
  const std::vector<MeasuredKernel> m = measured_kernels(read_kineto_file(kFixture), 8);
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m[0].cls, "gemm");
  EXPECT_EQ(m[1].cls, "attention");
  // Three calls of the all-reduce of 33554432 bf16 elements (64 MiB) over ranks 0-7 of
  // 8-GPU nodes: 520, 480 and 2000 us (the last waited for a late peer); the median, 520 us.
  EXPECT_EQ(m[2].cls, "collective");
  EXPECT_EQ(m[2].collective, CollectiveOp::all_reduce);
  EXPECT_EQ(m[2].ranks, 8);
  EXPECT_EQ(m[2].nodes, 1);
  EXPECT_DOUBLE_EQ(m[2].bytes, 67108864.0);
  EXPECT_EQ(m[2].calls, 3);
  EXPECT_NEAR(m[2].time.value(), 520e-6, 1e-12);
  // Written with its span and read back.
  const Profile p = calibrate({{kFixture, "", 8}});
  const std::string text = render_profile(p);
  EXPECT_NE(text.find("{class: collective, collective: all_reduce, ranks: 8, nodes: 1, bytes: "
                      "67108864 B, calls: 3, time: 520 us"),
            std::string::npos)
      << text;
  const Profile back = read_profile_text(text, "back.yaml");
  ASSERT_EQ(back.measured.size(), 3u);
  EXPECT_EQ(back.measured[2].nodes, 1);
  // A span larger than the group is refused.
  std::string bad = text;
  bad.replace(bad.find("nodes: 1"), 8, "nodes: 9");
  EXPECT_THROW(read_profile_text(bad, "bad.yaml"), InputError);
}

TEST(NcclTrace, ATraceWithoutGroupRanksKeepsTodaysProfileBytes) {
  // The older fixture's NCCL kernel has no Process Group Ranks: with or without
  // --gpus-per-node the profile is the same bytes, with no nodes key.
  const std::string without = render_profile(calibrate({{kOldFixture, "", 0}}));
  const std::string with = render_profile(calibrate({{kOldFixture, "", 8}}));
  EXPECT_EQ(with, without);
  EXPECT_EQ(without.find("nodes: "), std::string::npos);
  EXPECT_NE(render_profile_summary(calibrate({{kOldFixture, "", 8}}))
                .find("measured collectives: 1 entry without a node span"),
            std::string::npos);
}

// Llama 3 8B, tp 8 on one DGX H100, micro-batch 1 of 8192 tokens, one micro-batch a step,
// no sequence parallelism: the tensor-parallel all-reduces move the activations,
// 8192 x 4096 x 2 B = 64 MiB. The input gradients' all-reduces run after their GEMMs
// (training.stack.tp_dgrad_overlap false), so none overlaps compute.
Scenario tp8(const std::string& profile) {
  return load_scenario_text(
      fmt::format("cluster: {{preset: dgx-h100, calibration: {}}}\nmodel: {{preset: llama3-8b}}\n"
                  "parallelism: {{tp: 8, dp: 1, microbatch: 1, global_batch: 1}}\n"
                  "training: {{precision: bf16, stack: {{tp_dgrad_overlap: false}}}}\n",
                  profile),
      "tp8.yaml");
}

TEST(NcclTrace, TheTraceTimesRunsCollectivesAndOpsAsDerivedByHand) {
  const std::string text = render_profile(calibrate({{kFixture, "", 8}}));
  const std::string path = write_temp("tp8.yaml", text);
  Profile bare = read_profile_text(text, path);
  bare.measured.pop_back();  // the NCCL entry
  const std::string bare_path = write_temp("tp8_bare.yaml", render_profile(bare));
  const Scenario s = tp8(path);
  const Prediction with = predict(s);
  const Prediction without = predict(tp8(bare_path));
  const Breakdown& a = with.step.stages[0].breakdown;
  const Breakdown& b = without.step.stages[0].breakdown;
  // All-reduces of 64 MiB over the node's 8 GPUs: 32 layers x 4 (attn.proj and mlp.fc2
  // forward, attn.qkv and mlp.fc1 input gradients backward), plus the vocabulary-parallel
  // embedding's forward and the output layer's input gradient (model/transformer.cpp):
  // 130, each the entry's 520 us, none overlapped with compute: 130 x 520 us = 67.6 ms.
  EXPECT_NEAR(a.tp_exposed.value(), 130 * 520e-6, 1e-9);
  // Nothing else moves: the step changes by exactly the exposed TP time's change.
  EXPECT_NEAR(a.compute.value(), b.compute.value(), 1e-12);
  EXPECT_NEAR(with.step.step_time.value() - without.step.step_time.value(),
              a.tp_exposed.value() - b.tp_exposed.value(), 1e-9);
  // The GEMM and attention entries time their ops exactly (per TP rank: attn.qkv
  // [8192, 4096] x [4096, 768], 90 us; attn.core 4 heads, 1 kv head, 8192 x 8192 x 128:
  // F = 4 x 4 x 8192 x 8192 x 128 = 137438953472, 350 us).
  const auto model = make_compute_model(s);
  const Workload w = build_workload(s.model, s.training, shard_of(s.parallelism));
  auto op = [&](const std::string& name) -> const Op& {
    for (const Op& o : w.layers[1].ops)
      if (o.name == name) return o;
    throw std::runtime_error("no op " + name);
  };
  EXPECT_NEAR(model->op_time(op("attn.qkv"), Pass::forward).value(), 90e-6, 1e-12);
  EXPECT_NEAR(model->op_time(op("attn.core"), Pass::forward).value(), 350e-6, 1e-12);
  // --explain names the entry and what it timed.
  std::string explained;
  for (const auto& [cls, line] : with.hardware.model->explain())
    explained += cls + ": " + line + "\n";
  EXPECT_NE(explained.find("measured collective: " + kFixture +
                           " kernel 'ncclDevKernel_AllReduce_Sum_bf16_RING_LL("
                           "ncclDevKernelArgsStorage<4096ul>)' (record_param_comms) all_reduce of "
                           "64.00 MiB over 8 GPUs on 1 node: 520.00 us, exact; for all_reduce of "
                           "64.00 MiB over 8 GPUs on 1 node"),
            std::string::npos)
      << explained;
}

TEST(NcclTrace, ANearbySizeTakesTheEntrysBusBandwidthAndAFarOneThePlan) {
  Profile p;
  p.inputs.push_back({"t.json", "kineto", "NVIDIA H100 80GB HBM3", ""});
  MeasuredKernel m;
  m.cls = "collective";
  m.collective = CollectiveOp::all_reduce;
  m.ranks = 8;
  m.nodes = 1;
  m.bytes = 67108864;
  m.time = Seconds(520e-6);
  m.kernel = "k";
  m.file = "t.json";
  p.measured.push_back(m);
  const Scenario s = tp8("unused.yaml");
  const auto model = make_profile_model(s, p, "p.yaml");
  // 32 MiB, half the entry: at its bus bandwidth, 520 x 0.5 = 260 us.
  EXPECT_NEAR(model->collective_time(CollectiveOp::all_reduce, 8, 1, Bytes(33554432))->value(),
              260e-6, 1e-15);
  // 16 MiB, a quarter: beyond 2x, the plan times it; so does another span, group or op.
  EXPECT_FALSE(model->collective_time(CollectiveOp::all_reduce, 8, 1, Bytes(16777216)));
  EXPECT_FALSE(model->collective_time(CollectiveOp::all_reduce, 8, 2, Bytes(67108864)));
  EXPECT_FALSE(model->collective_time(CollectiveOp::all_reduce, 4, 1, Bytes(67108864)));
  EXPECT_FALSE(model->collective_time(CollectiveOp::all_gather, 8, 1, Bytes(67108864)));
  std::string explained;
  for (const auto& [cls, line] : model->explain()) explained += cls + ": " + line + "\n";
  EXPECT_NE(explained.find("collectives not measured: all_gather of 64.00 MiB over 8 GPUs on 1 "
                           "node; all_reduce of 16.00 MiB"),
            std::string::npos)
      << explained;
  // An entry without a span is kept and not used, and --explain says why.
  p.measured[0].nodes = 0;
  const auto unspanned = make_profile_model(s, p, "p.yaml");
  EXPECT_FALSE(unspanned->collective_time(CollectiveOp::all_reduce, 8, 1, Bytes(67108864)));
  explained.clear();
  for (const auto& [cls, line] : unspanned->explain()) explained += cls + ": " + line + "\n";
  EXPECT_NE(explained.find("1 NCCL entry without a node span, not used"), std::string::npos)
      << explained;
  // Projected to another GPU, a spanned entry is dropped: no datasheet ratio carries it.
  p.measured[0].nodes = 1;
  const Profile h200 = project_profile(
      load_scenario_text("cluster: {preset: dgx-h200, calibration: p.yaml}\nmodel: {preset: "
                         "llama3-8b}\nparallelism: {tp: 8, dp: 1, microbatch: 1, global_batch: "
                         "1}\n",
                         "h200.yaml"),
      p);
  EXPECT_TRUE(h200.measured.empty());
}

}  // namespace
}  // namespace orrery
