// A Kineto trace's optimizer kernels and pipeline SendRecv kernels, and what they time in
// `run` (docs/calibration-format.md, "measured_kernels"; docs/model.md, "Measured kernels
// from a trace").
//
// The fixture tests/calibrate/data/kineto_llama3_8b_pp2_optimizer.json is hand-written in the
// shape of torch.profiler's Chrome trace of rank 0 (distributedInfo.rank) of the job in
// tests/calibrate/data/llama3_8b_tp4_pp2.yaml (Llama 3 8B, tp 4, pp 2 on one DGX H100):
//   - three NCCL SendRecv kernels linked to record_param_comms ops, with the args Kineto
//     copies onto them (pytorch/kineto libkineto/src/output_json.cpp at 002d9919): a send
//     ("Dst Rank": 4) of 400 us, a recv ("Src Rank": 4) of 420 us and a send of 2000 us,
//     each of 8388608 bf16 elements (16 MiB) in the pipeline group [0, 4];
//   - two optimizer steps, each an `Optimizer.step#FusedAdam.step` annotation around two
//     Transformer Engine Adam kernels (multi_tensor_apply_kernel<..., AdamFunctorMaster<...>>,
//     launched from its extension: no CPU op): 6000 + 4000 us and 6100 + 3900 us.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "calibrate/calibrate.h"
#include "calibrate/compute_model.h"
#include "calibrate/kernel_classes.h"
#include "calibrate/kineto.h"
#include "calibrate/profile_model.h"
#include "core/error.h"
#include "scenario/load.h"
#include "simulator/predict.h"

namespace orrery {
namespace {

const std::string kData = std::string(ORRERY_SOURCE_DIR) + "/tests/calibrate/data/";
const std::string kTrace = kData + "kineto_llama3_8b_pp2_optimizer.json";
const std::string kTraced = kData + "llama3_8b_tp4_pp2.yaml";

std::string write_temp(const std::string& name, const std::string& text) {
  const auto dir = std::filesystem::temp_directory_path() /
                   fmt::format("orrery_trace_optimizer_{}", static_cast<long>(::getpid()));
  std::filesystem::create_directories(dir);
  const auto path = (dir / name).string();
  std::ofstream(path) << text;
  return path;
}

Scenario scenario(const std::string& profile, const std::string& parallelism) {
  return load_scenario_text(
      fmt::format("cluster: {{preset: dgx-h100{}}}\nmodel: {{preset: llama3-8b}}\n"
                  "parallelism: {{{}}}\ntraining: {{precision: bf16}}\n",
                  profile.empty() ? "" : ", calibration: " + profile, parallelism),
      "s.yaml");
}
const std::string kPp2 = "tp: 4, pp: 2, dp: 1, microbatch: 1, global_batch: 4";

// Per GPU of stage 0 (tp 4): 16 of the 32 layers and the word embedding, the matrices split
// four ways, the two RMSNorm weights of each layer whole:
//   a layer's matrices: qkv 4096 x (4096 + 2 x 1024) = 25,165,824; proj 4096 x 4096 =
//   16,777,216; fc1 4096 x 2 x 14336 = 117,440,512; fc2 14336 x 4096 = 58,720,256; sum
//   218,103,808; x 16 = 3,489,660,928; embedding 128256 x 4096 = 525,336,576;
//   (3,489,660,928 + 525,336,576) / 4 = 1,003,749,376; norms 16 x 2 x 4096 = 131,072:
//   P0 = 1,003,880,448 parameters.
// bf16 AdamW with fp32 main gradients, master weights and moments (fused, one kernel): the
// gradient read (4), the master read and written (8), both moments read and written (16),
// the bf16 weight written (2): 30 bytes a parameter.
constexpr double kP0 = 1003880448.0;
constexpr double kBytes0 = kP0 * 30.0;  // 30,116,413,440 B

TEST(TraceOptimizer, TheTracedScenarioSizesTheOptimizerKernels) {
  EXPECT_DOUBLE_EQ(optimizer_bytes_per_param(scenario("", kPp2)), 30.0);
  const KinetoTrace t = read_kineto_file(kTrace);
  EXPECT_EQ(t.rank, 0);
  EXPECT_EQ(t.optimizer_steps, 2);  // the gpu_user_annotation copies are not counted
  const OptimizerKernels ok = optimizer_kernels(t);
  EXPECT_EQ(ok.kernels, 4);
  EXPECT_NEAR(ok.time.value(), 20000e-6, 1e-12);
  const Profile p = calibrate({{kTrace, "", 8, kTraced}});
  ASSERT_EQ(p.measured.size(), 2u);
  const MeasuredKernel& o = p.measured[1];
  EXPECT_EQ(o.cls, "optimizer");
  EXPECT_EQ(o.calls, 2);
  // 20,000 us over two steps: 10,000 us a step.
  EXPECT_NEAR(o.time.value(), 10000e-6, 1e-12);
  EXPECT_DOUBLE_EQ(o.bytes, kBytes0);
  // Written and read back.
  const std::string text = render_profile(p);
  EXPECT_NE(text.find("{class: optimizer, bytes: 30116413440 B, calls: 2, time: 10000 us"),
            std::string::npos)
      << text;
  const Profile back = read_profile_text(text, "back.yaml");
  ASSERT_EQ(back.measured.size(), 2u);
  EXPECT_DOUBLE_EQ(back.measured[1].bytes, kBytes0);
  EXPECT_NE(render_profile_summary(p).find("10000.00 us (2 steps): 3012 GB/s"), std::string::npos)
      << render_profile_summary(p);
}

TEST(TraceOptimizer, TheMeasuredBandwidthTimesTheOptimizerAndTheSendRecvThePipeline) {
  const std::string profile =
      write_temp("pp2.yaml", render_profile(calibrate({{kTrace, "", 8, kTraced}})));
  const Prediction with = predict(scenario(profile, kPp2));
  const Prediction without = predict(scenario("", kPp2));
  // The optimizer's bandwidth: B = 30,116,413,440 B / 10 ms = 3011.64 GB/s (in place of the
  // roofline's H100 HBM x memory_efficiency, 2914 GB/s). The traced GPU's stage takes the
  // trace's time exactly: P0 x 30 B / B = 10 ms. Stage 1 holds the same layers' share, the
  // output layer in place of the embedding (the same 128256 x 4096 / 4) and the final norm
  // (4096): P1 = P0 + 4096, so 10 ms x (P0 + 4096) / P0.
  // Beside it, Megatron-Core's per-step passes at the roofline's HBM rate (no ZeRO: the fp32
  // gradient buffer zeroed and read for the norm, 8 bytes a parameter;
  // detail::megatron_step_passes).
  const Scenario h100 = scenario("", kPp2);
  const double hbm = h100.cluster.gpu.memory_bandwidth.value() * *h100.cluster.gpu.memory_efficiency;
  EXPECT_NEAR(with.step.stages[0].breakdown.optimizer.value(), 10e-3 + 8 * kP0 / hbm, 1e-12);
  EXPECT_NEAR(with.step.stages[1].breakdown.optimizer.value(),
              10e-3 * (kP0 + 4096) / kP0 + 8 * (kP0 + 4096) / hbm, 1e-12);
  // Without the profile: P0 x 30 B / 2914 GB/s (HBM 3.35 TB/s x memory_efficiency),
  // longer than the measured 10 ms.
  EXPECT_GT(without.step.stages[0].breakdown.optimizer.value(), 10.3e-3);
  // Every pipeline transfer (16 MiB between GPUs 0 and 4, one node) takes the SendRecv
  // entry's time: the median of 400, 420 and 2000 us, 420 us, and with no flows.
  int transfers = 0;
  const TaskGraph& g = with.step.graph;
  for (std::size_t i = 0; i < g.tasks.size(); ++i) {
    if (g.tasks[i].kind != TaskKind::pp_comm) continue;
    ++transfers;
    EXPECT_NEAR(with.step.timeline.timing[i].duration().value(), 420e-6, 1e-12);
    const PlannedComm& c = g.comms[static_cast<std::size_t>(*g.tasks[i].comm)];
    EXPECT_EQ(c.algorithm, "measured");
  }
  // 4 micro-batches: 4 activations from stage 0 to 1 and 4 gradients back.
  EXPECT_EQ(transfers, 8);
  // Without the profile the plan times them: 16 MiB over NVLink, far under 420 us.
  const TaskGraph& plain = without.step.graph;
  for (std::size_t i = 0; i < plain.tasks.size(); ++i) {
    if (plain.tasks[i].kind != TaskKind::pp_comm) continue;
    EXPECT_LT(without.step.timeline.timing[i].duration().value(), 200e-6);
  }
  // Compute and TP are untouched.
  EXPECT_NEAR(with.step.stages[1].breakdown.compute.value(),
              without.step.stages[1].breakdown.compute.value(), 1e-12);
  // --explain names both entries.
  std::string explained;
  for (const auto& [cls, line] : with.hardware.model->explain())
    explained += cls + ": " + line + "\n";
  EXPECT_NE(explained.find("optimizer: profile " + profile + " measured optimizer (" + kTrace +
                           " kernel 'void multi_tensor_apply_kernel<TensorListMetadata<5, false>, "
                           "AdamFunctorMaster<"),
            std::string::npos)
      << explained;
  EXPECT_NE(explained.find("28.05 GiB in 10000.00 us a step): 3012 GB/s in place of HBM x "
                           "memory_efficiency; 30 bytes per parameter / 3012 GB/s (one fused "
                           "kernel)"),
            std::string::npos)
      << explained;
  EXPECT_NE(explained.find("measured collective: " + kTrace +
                           " kernel 'ncclDevKernel_SendRecv(ncclDevKernelArgsStorage<4096ul>)' "
                           "(record_param_comms) send_recv of 16.00 MiB over 2 GPUs on 1 node: "
                           "420.00 us, exact; for send_recv of 16.00 MiB over 2 GPUs on 1 node"),
            std::string::npos)
      << explained;
}

TEST(TraceOptimizer, AnotherScenarioOnTheSameGpuScalesByItsOptimizerBytes) {
  const std::string profile =
      write_temp("pp2b.yaml", render_profile(calibrate({{kTrace, "", 8, kTraced}})));
  // tp 8, pp 1: every layer, the embedding and the output layer, the matrices split eight
  // ways: (2 x 3,489,660,928 + 2 x 525,336,576) / 8 = 1,003,749,376, plus the norms
  // 32 x 2 x 4096 + 4096 = 266,240: P = 1,004,015,616; its optimizer moves P x 30 B at the
  // measured 3011.64 GB/s: 10 ms x P / P0, and the per-step passes 8 P / HBM (above).
  const Prediction p =
      predict(scenario(profile, "tp: 8, pp: 1, dp: 1, microbatch: 1, global_batch: 1"));
  const Scenario h100 = scenario("", kPp2);
  const double hbm = h100.cluster.gpu.memory_bandwidth.value() * *h100.cluster.gpu.memory_efficiency;
  EXPECT_NEAR(p.step.stages[0].breakdown.optimizer.value(),
              10e-3 * 1004015616.0 / kP0 + 8 * 1004015616.0 / hbm, 1e-12);
}

TEST(TraceOptimizer, WhatCannotBeUsedIsSaid) {
  // No traced scenario: the kernels are reported, not used.
  const Profile bare = calibrate({{kTrace, "", 8}});
  ASSERT_EQ(bare.measured.size(), 1u);
  ASSERT_EQ(bare.not_fitted.size(), 1u);
  EXPECT_NE(bare.not_fitted[0].find("4 kernels, 20000.00 us; not used: give --traced-scenario"),
            std::string::npos)
      << bare.not_fitted[0];
  // No step annotations: the steps cannot be counted.
  std::string text;
  std::getline(std::ifstream(kTrace), text, '\0');
  for (std::size_t at; (at = text.find("Optimizer.step#")) != std::string::npos;)
    text.replace(at, 15, "Other.thing####");
  const std::string unmarked = write_temp("unmarked.json", text);
  const Profile u = calibrate({{unmarked, "", 8, kTraced}});
  ASSERT_EQ(u.not_fitted.size(), 1u);
  EXPECT_NE(u.not_fitted[0].find("no Optimizer.step# annotation"), std::string::npos);
  // A traced scenario whose optimizer the kernels cannot stand for.
  const std::string sgd =
      write_temp("sgd.yaml",
                 "cluster: {preset: dgx-h100}\nmodel: {preset: llama3-8b}\n"
                 "parallelism: {tp: 4, pp: 2, dp: 1, microbatch: 1, global_batch: 4}\n"
                 "training: {precision: bf16, optimizer: sgd}\n");
  try {
    calibrate({{kTrace, "", 8, sgd}});
    ADD_FAILURE() << "an SGD traced scenario was accepted";
  } catch (const InputError& e) {
    EXPECT_EQ(e.key(), "training.optimizer");
    EXPECT_NE(std::string(e.what()).find("Adam's optimizer kernels"), std::string::npos);
  }
  // A traced rank outside the scenario's GPUs.
  std::string far = text;
  far.replace(far.find("\"rank\": 0"), 9, "\"rank\": 8");
  for (std::size_t at; (at = far.find("Other.thing####")) != std::string::npos;)
    far.replace(at, 15, "Optimizer.step#");
  EXPECT_THROW(calibrate({{write_temp("far.json", far), "", 8, kTraced}}), InputError);
  // --traced-scenario with no trace among the inputs.
  const std::string nccl = kData + "nd-h100-v5_all_reduce_perf.log";
  EXPECT_THROW(calibrate({{nccl, "", 0, kTraced}}), InputError);
}

TEST(TraceOptimizer, AnIterationOfSeveralOptimizersIsOneStep) {
  // Two profiler steps (ProfilerStep#3 over 0-100 us, #4 over 100-200 us), each holding the
  // step annotations of two optimizers (a chained optimizer: dense and expert parameters),
  // and a third optimizer annotation outside any profiler step: two steps.
  std::string events;
  auto annotation = [&](const std::string& name, double ts, double dur) {
    events += fmt::format(
        R"({{"ph": "X", "cat": "user_annotation", "name": "{}", "ts": {}, "dur": {}}}, )", name, ts,
        dur);
  };
  annotation("ProfilerStep#3", 0, 100);
  annotation("ProfilerStep#4", 100, 100);
  for (double ts : {10.0, 40.0, 110.0, 140.0, 300.0})
    annotation("Optimizer.step#Adam.step", ts, 20);
  const std::string kernel =
      R"({"ph": "X", "cat": "kernel", "name": "multi_tensor_apply_kernel<Adam>", "ts": 1, "dur": 5})";
  EXPECT_EQ(
      read_kineto_text("{\"traceEvents\": [" + events + kernel + "]}", "t.json").optimizer_steps,
      2);
  // Without profiler steps, every optimizer annotation is a step.
  events.clear();
  for (double ts : {10.0, 40.0, 110.0}) annotation("Optimizer.step#Adam.step", ts, 20);
  EXPECT_EQ(
      read_kineto_text("{\"traceEvents\": [" + events + kernel + "]}", "t.json").optimizer_steps,
      3);
}

// A SendRecv kernel of `collective` with the peer key `peer` (empty: none) in a trace of
// rank `rank` (negative: no distributedInfo).
std::vector<MeasuredKernel> sendrecv(const std::string& collective, const std::string& peer,
                                     int rank, int gpus_per_node) {
  const std::string info =
      rank < 0 ? "" : fmt::format("\"distributedInfo\": {{\"rank\": {}}}, ", rank);
  const std::string text = fmt::format(
      R"j({{{}"traceEvents": [
  {{"ph": "X", "cat": "kernel", "name": "ncclDevKernel_SendRecv(ncclDevKernelArgsStorage<4096ul>)",
   "ts": 0, "dur": 10, "args": {{"Collective name": "{}", "In msg nelems": 1024,
   "Out msg nelems": 1024, "Group size": 4, "dtype": "BFloat16",
   "Process Group Ranks": "[0, 8, 16, 24]"{}}}}}]}})j",
      info, collective, peer.empty() ? "" : ", " + peer);
  return measured_kernels(read_kineto_text(text, "t.json"), gpus_per_node);
}

TEST(TraceOptimizer, ASendOrReceiveIsBetweenTheTracedRankAndItsPeer) {
  // Rank 8 sends to rank 16 on 8-GPU nodes: nodes 1 and 2, a pair across two nodes,
  // whatever the pipeline group's size (4).
  auto m = sendrecv("send", "\"Dst Rank\": 16", 8, 8);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].collective, CollectiveOp::send_recv);
  EXPECT_EQ(m[0].ranks, 2);
  EXPECT_EQ(m[0].nodes, 2);
  EXPECT_DOUBLE_EQ(m[0].bytes, 2048.0);
  // A receive from a rank on the same 16-GPU node.
  m = sendrecv("recv", "\"Src Rank\": 0", 8, 16);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].nodes, 1);
  // Without the traced rank, the peer or --gpus-per-node the span is not known (kept, unused).
  EXPECT_EQ(sendrecv("send", "\"Dst Rank\": 16", -1, 8)[0].nodes, 0);
  EXPECT_EQ(sendrecv("send", "", 8, 8)[0].nodes, 0);
  EXPECT_EQ(sendrecv("send", "\"Dst Rank\": 16", 8, 0)[0].nodes, 0);
  // PyTorch's all-to-all runs as grouped sends and receives in the same kernel: it stays
  // an all-to-all of its group.
  m = sendrecv("all_to_allv", "", 8, 8);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].collective, CollectiveOp::all_to_all);
  EXPECT_EQ(m[0].ranks, 4);
  EXPECT_EQ(m[0].nodes, 4);
  // A SendRecv kernel no record_param_comms names (a coalesced batch) is not sized.
  EXPECT_TRUE(sendrecv("coalesced", "", 8, 8).empty());
}

}  // namespace
}  // namespace orrery
