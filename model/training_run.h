// What a whole training run takes, from one simulated step: optimizer steps (a fixed
// budget, or the critical-batch model of McCandlish et al. 2018), time to train,
// GPU-hours, cost, energy and CO2. docs/model.md ("Whole run") gives each equation.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/units.h"
#include "model/fabric.h"
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

// Owning the cluster for the run (cost.amortization_years with cluster.price): the
// purchase (nodes, NICs and the fabric of model/fabric.h) written off linearly, the
// facility's capacity rent on the peak facility power, and the run's electricity. A year
// is 8,760 hours.
struct Tco {
  FabricCount fabric;
  double nodes_usd = 0;            // nodes x node_usd + NICs x nic_usd
  double network_usd = 0;          // switches, transceivers and cables
  double capex_usd = 0;            // nodes_usd + network_usd
  double per_year_usd = 0;         // capex / years + facility x peak kW x 12 + a year's electricity
  double capex_run_usd = 0;        // capex x run time / (years x 8760 h)
  double facility_run_usd = 0;     // facility_usd_per_kw_month x peak kW x 12 x run time / year
  double electricity_run_usd = 0;  // energy_kwh x electricity_usd_per_kwh
  double run_usd = 0;              // the three above
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
  Watts peak_power;           // facility: (GPUs x TDP + nodes x node_power) x PUE
  std::optional<Tco> tco;     // with cost.amortization_years
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

// The facility's peak power: every GPU at its board power (TDP) and every node at
// cost.node_power, times the PUE. Needs no simulation.
Watts peak_facility_power(const Scenario& s);

// The cost of owning the cluster over a run of `time` that uses `energy_kwh` (Tco);
// none without cost.amortization_years.
std::optional<Tco> cost_of_ownership(const Scenario& s, Seconds time, double energy_kwh);

}  // namespace orrery
