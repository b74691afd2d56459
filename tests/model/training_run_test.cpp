// Whole-run figures (model/training_run.h): steps from the target, time, GPU-hours, cost,
// energy and CO2, each checked against arithmetic done by hand.
#include <gtest/gtest.h>

#include <cmath>

#include "model/training_run.h"
#include "scenario/load.h"

namespace orrery {
namespace {

// Llama 3 8B (seq_len 8192) on one DGX H100 (8 x 700 W TDP), global batch 64 sequences.
Scenario run_scenario(const std::string& target, const std::string& cost = "") {
  std::string yaml =
      "cluster: {preset: dgx-h100}\nmodel: {preset: llama3-8b}\n"
      "parallelism: {tp: 8, global_batch: 64}\n"
      "training: {precision: bf16, target: " + target + "}\n";
  if (!cost.empty()) yaml += "cost: " + cost + "\n";
  return load_scenario_text(yaml, "run.yaml");
}

TEST(TrainingRun, TokenBudgetRoundsUpToWholeSteps) {
  // 1e9 tokens / (64 x 8192 = 524,288 tokens per step) = 1907.35 -> 1908 steps; at 2 s
  // a step, 3816 s; 8 GPUs x 3816 s / 3600 = 8.48 GPU-hours.
  const RunEstimate e = estimate_run(run_scenario("{tokens: 1e9}"), Seconds(2.0), 0.5);
  EXPECT_EQ(e.steps, 1908);
  EXPECT_DOUBLE_EQ(e.samples, 1908.0 * 64);
  EXPECT_DOUBLE_EQ(e.tokens, 1908.0 * 64 * 8192);
  EXPECT_DOUBLE_EQ(e.time.value(), 3816.0);
  EXPECT_NEAR(e.gpu_hours, 8.48, 1e-9);
  // No cost section: the rent of the dgx-h100 preset's price block, $4.916 per GPU-hour.
  ASSERT_TRUE(e.usd.has_value());
  EXPECT_NEAR(*e.usd, 8.48 * 4.916, 1e-9);
  EXPECT_FALSE(e.co2_kg.has_value());
}

TEST(TrainingRun, DynamicLossScalingSkipsHysteresisStepsPerWindow) {
  // fp16's default dynamic loss scaling, Megatron-LM's window 1000 and hysteresis 2:
  // 10,000 useful steps + ceil(10,000 x 2 / 1000) = 20 skipped = 10,020 steps of 2 s.
  auto scenario = [](const std::string& extra) {
    return load_scenario_text(
        "cluster: {preset: dgx-h100}\nmodel: {preset: llama3-8b}\n"
        "parallelism: {tp: 8, global_batch: 64}\n"
        "training: {precision: fp16, target: {steps: 10000}" + extra + "}\n",
        "ls.yaml");
  };
  const RunEstimate e = estimate_run(scenario(""), Seconds(2.0), 0.5);
  EXPECT_EQ(e.skipped_steps, 20);
  EXPECT_EQ(e.steps, 10020);
  EXPECT_DOUBLE_EQ(e.time.value(), 20040.0);
  // A window of 300 with hysteresis 1: ceil(10,000 / 300) = 34 skipped.
  EXPECT_EQ(estimate_run(scenario(", loss_scaling: {kind: dynamic, window: 300, hysteresis: 1}"),
                         Seconds(2.0), 0.5).skipped_steps, 34);
  // Static scaling skips nothing counted here; bf16 has no loss scaling by default.
  EXPECT_EQ(estimate_run(scenario(", loss_scaling: {kind: static}"), Seconds(2.0), 0.5).steps,
            10000);
  EXPECT_EQ(estimate_run(run_scenario("{steps: 10000}"), Seconds(2.0), 0.5).skipped_steps, 0);
}

TEST(TrainingRun, CostEnergyAndCo2) {
  // 100 steps of 36 s = 1 h on 8 GPUs: 8 GPU-hours x $2.50 = $20. Energy: (8 x 700 W TDP
  // + 1 node x 2 kW) x 1 h = 7.6 kWh, x PUE 1.25 = 9.5 kWh; at 400 g/kWh, 3.8 kg CO2.
  const RunEstimate e = estimate_run(
      run_scenario("{steps: 100}", "{usd_per_gpu_hour: 2.5, node_power: \"2 kW\", pue: 1.25, "
                                   "grid_gco2_per_kwh: 400}"),
      Seconds(36.0), 0.5);
  EXPECT_DOUBLE_EQ(e.gpu_hours, 8.0);
  ASSERT_TRUE(e.usd.has_value());
  EXPECT_DOUBLE_EQ(*e.usd, 20.0);
  EXPECT_DOUBLE_EQ(e.cluster_power.value(), 7600.0);
  EXPECT_NEAR(e.energy_kwh, 9.5, 1e-12);
  ASSERT_TRUE(e.co2_kg.has_value());
  EXPECT_NEAR(*e.co2_kg, 3.8, 1e-12);
}

TEST(TrainingRun, IdleDrawGivesALinearUtilizationModel) {
  // idle 100 W, average draw 700 W, utilization 0.75: 100 + 600 x 0.75 = 550 W per GPU.
  const RunEstimate e = estimate_run(
      run_scenario("{steps: 1}", "{gpu_power: \"700 W\", gpu_idle_power: \"100 W\"}"),
      Seconds(1.0), 0.75);
  EXPECT_DOUBLE_EQ(e.gpu_draw.value(), 550.0);
  EXPECT_DOUBLE_EQ(e.cluster_power.value(), 8 * 550.0);
}

TEST(TrainingRun, CriticalBatchStepsAndExamples) {
  // McCandlish et al. 2018: B = 64 samples, B_noise = 64, E_min = 1e5 samples:
  // S_min = 1e5 / 64 = 1562.5; S = S_min (1 + 64/64) = 3125 steps; E = 2 E_min = 2e5.
  const RunEstimate e = estimate_run(
      run_scenario("{critical_batch: {e_min_samples: 1e5, b_noise_samples: 64}}"), Seconds(1.0),
      1.0);
  ASSERT_TRUE(e.critical.has_value());
  EXPECT_DOUBLE_EQ(e.critical->s_min, 1562.5);
  EXPECT_DOUBLE_EQ(e.critical->steps_factor, 2.0);
  EXPECT_DOUBLE_EQ(e.critical->examples_factor, 2.0);
  EXPECT_EQ(e.steps, 3125);
  EXPECT_DOUBLE_EQ(e.samples, 2e5);
  // A quarter of B_noise: 5 x S_min steps, 1.25 x E_min samples.
  const RunEstimate small = estimate_run(
      run_scenario("{critical_batch: {e_min_samples: 1e5, b_noise_samples: 256}}"),
      Seconds(1.0), 1.0);
  EXPECT_DOUBLE_EQ(small.critical->steps_factor, 5.0);
  EXPECT_DOUBLE_EQ(small.critical->examples_factor, 1.25);
}

TEST(TrainingRun, TokensAndKaplanLossBecomeSamples) {
  // E_min 8192e5 tokens / 8192 = 1e5 samples. Loss 2.0 nats: B_crit = 2.1e8 x 2^-4.8 =
  // 7.538e6 tokens (Kaplan et al. 2020), / 8192 = 920.2 samples.
  const Scenario s =
      run_scenario("{critical_batch: {e_min_tokens: 8.192e8, loss_nats: 2.0}}");
  const TargetSpec& t = *s.training.target;
  EXPECT_DOUBLE_EQ(t.e_min, 1e5);
  EXPECT_NEAR(t.b_noise, 2.1e8 * std::pow(2.0, -4.8) / 8192, 1e-9);
  EXPECT_NEAR(t.b_noise, 920.2, 0.1);
}

TEST(TrainingRun, LearningRateAdviceNamesItsSource) {
  const RunEstimate e = estimate_run(run_scenario("{steps: 1}"), Seconds(1.0), 1.0);
  ASSERT_EQ(e.advice.size(), 1u);
  EXPECT_NE(e.advice[0].find("Malladi et al. 2022"), std::string::npos);
}

}  // namespace
}  // namespace orrery

namespace orrery {
namespace {

TEST(TrainingRun, YoungAndDalyCheckpointIntervals) {
  // A 60 s checkpoint on a job failing every 24 h (86,400 s) on average:
  // Young 1974: sqrt(2 x 60 x 86400) = sqrt(10,368,000) = 3219.94 s.
  // Daly 2006: x = 60 / 172,800 = 3.472e-4; 3219.94 (1 + sqrt(x)/3 + x/9) - 60
  //   = 3219.94 x 1.0062499 - 60 = 3180.06 s.
  EXPECT_NEAR(std::sqrt(2 * 60.0 * 86400), 3219.94, 0.01);
  EXPECT_NEAR(daly_interval(Seconds(60), Seconds(86400)).value(), 3180.06, 0.01);
  // A checkpoint longer than twice the MTBF: checkpoint every MTBF.
  EXPECT_DOUBLE_EQ(daly_interval(Seconds(500), Seconds(200)).value(), 200.0);
  // 1e6 s of work at that interval with 10-minute restarts: 86400 e^(600/86400)
  // (e^((3180.06 + 60)/86400) - 1) 1e6 / 3180.06 = 1,045,448 s, 12.1 failures expected.
  const Seconds wall = expected_wall_time(Seconds(1e6), Seconds(3180.0621), Seconds(60),
                                          Seconds(600), Seconds(86400));
  EXPECT_NEAR(wall.value(), 1045448, 1.0);
}

TEST(TrainingRun, GoodputFromTheScenario) {
  // 8 GPUs of 800 h MTBF each: the job fails every 100 h. Llama 3 8B in bf16 with Adam:
  // a checkpoint is 8,030,261,248 params x (2 + 12) bytes = 112.42 GB, at 1 GB/s 112.42 s.
  Scenario s = run_scenario("{steps: 1000}");
  s.reliability = ReliabilitySpec{};
  s.reliability->gpu_mtbf = Seconds(800 * 3600.0);
  s.reliability->checkpoint_bandwidth = Bandwidth(1e9);
  s.reliability->restart_time = Seconds(900);
  const RunEstimate e = estimate_run(s, Seconds(36.0), 1.0);  // 36,000 s of work
  ASSERT_TRUE(e.goodput.has_value());
  const Goodput& g = *e.goodput;
  EXPECT_DOUBLE_EQ(g.job_mtbf.value(), 100 * 3600.0);
  EXPECT_DOUBLE_EQ(g.checkpoint.value(), 8030261248.0 * 14);
  EXPECT_NEAR(g.checkpoint_time.value(), 112.42, 0.01);
  EXPECT_DOUBLE_EQ(g.interval.value(), daly_interval(g.checkpoint_time, g.job_mtbf).value());
  EXPECT_DOUBLE_EQ(g.wall_time.value(),
                   expected_wall_time(Seconds(36000), g.interval, g.checkpoint_time,
                                      Seconds(900), g.job_mtbf)
                       .value());
  EXPECT_DOUBLE_EQ(g.interruptions, g.wall_time.value() / (100 * 3600.0));
  EXPECT_DOUBLE_EQ(g.goodput, 36000 / g.wall_time.value());
  EXPECT_LT(g.goodput, 1.0);
  // A given interval is used as given.
  s.reliability->checkpoint_interval = Seconds(3600);
  EXPECT_DOUBLE_EQ(estimate_run(s, Seconds(36.0), 1.0).goodput->interval.value(), 3600.0);
}

TEST(TrainingRun, DefaultGpuMtbfIsLlama3s) {
  // 54 days x 24 h x 16,384 GPUs / 419 unexpected interruptions = 50,677.0 h per GPU.
  EXPECT_NEAR(ReliabilitySpec{}.gpu_mtbf.value() / 3600, 50677.0, 0.1);
}

}  // namespace
}  // namespace orrery

namespace orrery {
namespace {

Scenario owned_cluster(const std::string& cost) {
  return load_scenario_text(
      "cluster: {preset: dgx-h100, nodes: 4,\n"
      "  price: {node_usd: 300000, switch_usd: 25000, transceiver_usd: 1000, cable_usd: 100,\n"
      "          source: example}}\n"
      "model: {preset: llama3-8b}\n"
      "parallelism: {tp: 8, global_batch: 64}\n"
      "training: {precision: bf16, target: {steps: 876}}\n"
      "cost: " +
          cost + "\n",
      "own.yaml");
}

TEST(TrainingRun, CostOfOwningASmallClusterByHand) {
  // 4 DGX H100 nodes, rail-optimized (8 NICs): 8 leaves (one per rail) of 4 NICs and
  // 4 uplinks each = 32 uplinks on 1 spine: 9 switches, 32 + 32 = 64 cables, 128
  // transceivers. Purchase: 4 x $300,000 = $1,200,000 + 9 x $25,000 + 128 x $1,000 +
  // 64 x $100 = $359,400 of network = $1,559,400.
  // Peak facility power: (32 x 700 W + 4 x 2 kW) x 1.25 = 38 kW.
  // 876 steps of 3600 s = 876 h = 0.1 year. Energy (no idle draw: TDP throughout):
  // 30.4 kW x 876 h x 1.25 = 33,288 kWh.
  // Run: capex 1,559,400 x 0.1 / 4 = 38,985; facility $150/kW-month x 38 kW x 12 x 0.1 =
  // 6,840; electricity 33,288 x $0.10 = 3,328.80; total 49,153.80.
  // Per year: 1,559,400 / 4 = 389,850 + 150 x 38 x 12 = 68,400 + 332,880 kWh x 0.10 =
  // 33,288: 491,538.
  const RunEstimate e =
      estimate_run(owned_cluster("{node_power: \"2 kW\", pue: 1.25, amortization_years: 4, "
                                 "facility_usd_per_kw_month: 150, electricity_usd_per_kwh: 0.10}"),
                   Seconds(3600.0), 0.5);
  EXPECT_NEAR(e.peak_power.value(), 38000.0, 1e-9);
  EXPECT_NEAR(e.energy_kwh, 33288.0, 1e-6);
  ASSERT_TRUE(e.tco.has_value());
  const Tco& t = *e.tco;
  EXPECT_EQ(t.fabric.switches, 9);
  EXPECT_EQ(t.fabric.cables, 64);
  EXPECT_EQ(t.fabric.transceivers, 128);
  EXPECT_NEAR(t.nodes_usd, 1200000.0, 1e-6);
  EXPECT_NEAR(t.network_usd, 359400.0, 1e-6);
  EXPECT_NEAR(t.capex_usd, 1559400.0, 1e-6);
  EXPECT_NEAR(t.capex_run_usd, 38985.0, 1e-6);
  EXPECT_NEAR(t.facility_run_usd, 6840.0, 1e-6);
  EXPECT_NEAR(t.electricity_run_usd, 3328.8, 1e-6);
  EXPECT_NEAR(t.run_usd, 49153.8, 1e-6);
  EXPECT_NEAR(t.per_year_usd, 491538.0, 1e-6);
  // Rent from the preset's price block: 876 h x 32 GPUs x $4.916.
  ASSERT_TRUE(e.usd.has_value());
  EXPECT_NEAR(*e.usd, 876.0 * 32 * 4.916, 1e-6);
}

TEST(TrainingRun, NoCostOfOwningWithoutAnAmortizationPeriod) {
  const RunEstimate e = estimate_run(owned_cluster("{pue: 1.25}"), Seconds(3600.0), 0.5);
  EXPECT_FALSE(e.tco.has_value());
  // Peak: 32 x 700 W x 1.25 (node_power 0) = 28 kW.
  EXPECT_NEAR(e.peak_power.value(), 28000.0, 1e-9);
}

}  // namespace
}  // namespace orrery
