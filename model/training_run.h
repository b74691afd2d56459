// What a whole training run takes, from one simulated step: optimizer steps (a fixed
// budget, or the critical-batch model of McCandlish et al. 2018), time to train,
// GPU-hours, cost, energy and CO2. docs/model.md ("Whole run") gives each equation.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/units.h"
#include "scenario/spec.h"

namespace orrery {

struct CriticalBatch {
  double b_noise = 0;    // gradient noise scale, samples
  double e_min = 0;      // samples at a vanishing batch
  double s_min = 0;      // steps at an unbounded batch: E_min / B_noise
  double batch = 0;      // the scenario's global batch, samples
  double steps_factor = 0;     // S / S_min = 1 + B_noise / B
  double examples_factor = 0;  // E / E_min = 1 + B / B_noise
};

// Failures and checkpoints over the run (reliability:), after Young 1974 and Daly 2006
// ("A higher order estimate of the optimum checkpoint interval for restart dumps").
struct Goodput {
  Seconds job_mtbf;          // gpu_mtbf / GPUs
  Bytes checkpoint;          // weights + optimizer state, every parameter once
  Seconds checkpoint_time;   // checkpoint / checkpoint_bandwidth (delta)
  Seconds interval;          // compute time between checkpoints (tau)
  Seconds young_interval;    // sqrt(2 delta M)
  Seconds daly_interval;     // Daly's higher-order optimum
  Seconds wall_time;         // expected, with checkpoints, failures and restarts
  double interruptions = 0;  // expected failures: wall_time / M
  double goodput = 0;        // time to train without failures / wall_time
  double gpu_hours = 0;      // over wall_time
  std::optional<double> usd;
};

struct RunEstimate {
  double steps = 0;    // optimizer steps, rounded up to whole steps (x convergence)
  double warmup_steps = 0;  // of them, uncompressed warm-up steps (1-bit compression)
  double skipped_steps = 0; // of them, steps dynamic loss scaling skips on overflow
  double samples = 0;  // steps * global batch
  double tokens = 0;   // samples * seq_len (transformers; 0 for CNNs)
  Seconds time;        // steps * step time
  double gpu_hours = 0;
  std::optional<double> usd;  // gpu_hours * cost.usd_per_gpu_hour
  Watts gpu_draw;             // average per GPU over the step
  Watts cluster_power;        // GPUs and nodes, before PUE
  double energy_kwh = 0;      // facility energy: cluster_power * time * PUE
  std::optional<double> co2_kg;
  std::optional<CriticalBatch> critical;
  std::optional<Goodput> goodput;  // with reliability:
  std::vector<std::string> advice;  // learning-rate scaling and warm-up, with sources
};

// `utilization`: the fraction of the step the GPUs compute, averaged over stages (used
// only with cost.gpu_idle_power). `warmup_step_time`: the step time of 1-bit
// compression's uncompressed warm-up steps. The steps the target takes are multiplied by
// the compression's convergence factor. Requires s.training.target.
RunEstimate estimate_run(const Scenario& s, Seconds step_time, double utilization,
                         std::optional<Seconds> warmup_step_time = std::nullopt);

// Daly 2006: the optimum compute time between checkpoints of length delta on a job
// with mean time between failures M: sqrt(2 delta M) [1 + sqrt(delta / 2M) / 3 +
// (delta / 2M) / 9] - delta for delta < 2M, else M.
Seconds daly_interval(Seconds delta, Seconds mtbf);
// Daly 2006: expected wall time of `solve` seconds of work checkpointed every tau
// (checkpoints delta long), failures at mean interval M (exponential), each costing a
// restart R: M e^(R/M) (e^((tau + delta)/M) - 1) solve / tau.
Seconds expected_wall_time(Seconds solve, Seconds tau, Seconds delta, Seconds restart,
                           Seconds mtbf);

}  // namespace orrery
