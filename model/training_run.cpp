#include "model/training_run.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "model/analysis.h"
#include "model/memory.h"

namespace orrery {

Seconds daly_interval(Seconds delta, Seconds mtbf) {
  const double d = delta.value(), m = mtbf.value();
  if (d >= 2 * m) return mtbf;
  const double x = d / (2 * m);
  return Seconds(std::sqrt(2 * d * m) * (1 + std::sqrt(x) / 3 + x / 9) - d);
}

Seconds expected_wall_time(Seconds solve, Seconds tau, Seconds delta, Seconds restart,
                           Seconds mtbf) {
  const double m = mtbf.value();
  return Seconds(m * std::exp(restart.value() / m) *
                 std::expm1((tau.value() + delta.value()) / m) * solve.value() / tau.value());
}

Watts peak_facility_power(const Scenario& s) {
  return Watts(
      (s.cluster.gpu.tdp.value() * s.cluster.gpus() + s.cost.node_power.value() * s.cluster.nodes) *
      s.cost.pue);
}

std::optional<Tco> cost_of_ownership(const Scenario& s, Seconds time, double energy_kwh) {
  const PriceSpec& p = s.cluster.price;
  const CostSpec& c = s.cost;
  if (!c.amortization_years || !p.node_usd) return std::nullopt;
  constexpr double kHoursPerYear = 8760.0;
  Tco t;
  t.fabric = count_fabric(s.cluster);
  t.nodes_usd = s.cluster.nodes * *p.node_usd + t.fabric.nics * p.nic_usd;
  t.network_usd = t.fabric.switches * p.switch_usd.value_or(0) +
                  t.fabric.transceivers * p.transceiver_usd.value_or(0) +
                  t.fabric.cables * p.cable_usd.value_or(0);
  t.capex_usd = t.nodes_usd + t.network_usd;
  const double peak_kw = peak_facility_power(s).value() / 1000.0;
  const double facility_year = c.facility_usd_per_kw_month * peak_kw * 12.0;
  const double usd_kwh = c.electricity_usd_per_kwh.value_or(0);
  const double hours = time.value() / 3600.0;
  // A year's electricity at the run's average facility power (energy / hours).
  const double year_kwh = hours > 0 ? energy_kwh / hours * kHoursPerYear : 0.0;
  t.per_year_usd = t.capex_usd / *c.amortization_years + facility_year + year_kwh * usd_kwh;
  const double years = hours / kHoursPerYear;
  t.capex_run_usd = t.capex_usd * years / *c.amortization_years;
  t.facility_run_usd = facility_year * years;
  t.electricity_run_usd = energy_kwh * usd_kwh;
  t.run_usd = t.capex_run_usd + t.facility_run_usd + t.electricity_run_usd;
  return t;
}

RunEstimate estimate_run(const Scenario& s, Seconds step_time, double utilization,
                         std::optional<Seconds> warmup_step_time) {
  ORRERY_CHECK(s.training.target.has_value(), "estimate_run needs training.target");
  const TargetSpec& t = *s.training.target;
  const double batch = s.parallelism.global_batch;
  const double seq = s.model.is_transformer() ? static_cast<double>(s.model.seq_len) : 0.0;
  RunEstimate r;
  switch (t.kind) {
    case TargetSpec::Kind::tokens:
      r.steps = std::ceil(t.amount / (batch * seq));
      break;
    case TargetSpec::Kind::samples:
      r.steps = std::ceil(t.amount / batch);
      break;
    case TargetSpec::Kind::steps:
      r.steps = std::ceil(t.amount);
      break;
    case TargetSpec::Kind::critical_batch: {
      // McCandlish et al. 2018, eqs. 2.11-2.12: S = S_min (1 + B_noise / B) and
      // E = E_min (1 + B / B_noise), consistent through S * B = E.
      CriticalBatch c;
      c.b_noise = t.b_noise;
      c.e_min = t.e_min;
      c.s_min = t.e_min / t.b_noise;
      c.batch = batch;
      c.steps_factor = 1.0 + t.b_noise / batch;
      c.examples_factor = 1.0 + batch / t.b_noise;
      r.steps = std::ceil(c.s_min * c.steps_factor);
      r.critical = c;
      break;
    }
  }
  // Compression that needs more steps to reach the same target (1.0: none).
  r.steps = std::ceil(r.steps * s.training.compression.convergence);
  // Dynamic loss scaling in its steady state: the scale doubles after `window` clean
  // steps, overflows, and `hysteresis` overflowing steps (each skipped: forward and
  // backward run, the update does not) later halves back; so `hysteresis` extra steps
  // per `window` useful ones. The descent from the initial scale is not counted.
  const LossScalingSpec& ls = s.training.loss_scaling;
  if (ls.effective(s.training.precision) == LossScalingSpec::Kind::dynamic) {
    r.skipped_steps = std::ceil(r.steps * ls.hysteresis / ls.window);
    r.steps += r.skipped_steps;
  }
  r.samples = r.steps * batch;
  r.tokens = r.samples * seq;
  r.time = Seconds(r.steps * step_time.value());
  if (warmup_step_time) {
    r.warmup_steps = std::min<double>(s.training.compression.warmup_steps, r.steps);
    r.time += Seconds(r.warmup_steps * (warmup_step_time->value() - step_time.value()));
  }
  const int gpus = s.cluster.gpus();
  const double hours = r.time.value() / 3600.0;
  r.gpu_hours = hours * gpus;
  if (s.cost.usd_per_gpu_hour) r.usd = r.gpu_hours * *s.cost.usd_per_gpu_hour;
  const double draw = s.cost.gpu_power.value();
  r.gpu_draw = s.cost.gpu_idle_power
                   ? Watts(s.cost.gpu_idle_power->value() +
                           (draw - s.cost.gpu_idle_power->value()) * utilization)
                   : Watts(draw);
  r.cluster_power = r.gpu_draw * gpus + s.cost.node_power * s.cluster.nodes;
  r.energy_kwh = r.cluster_power.value() * hours / 1000.0 * s.cost.pue;
  r.peak_power = peak_facility_power(s);
  r.tco = cost_of_ownership(s, r.time, r.energy_kwh);
  if (s.cost.grid_gco2_per_kwh) r.co2_kg = r.energy_kwh * *s.cost.grid_gco2_per_kwh / 1000.0;

  if (s.reliability) {
    const ReliabilitySpec& rel = *s.reliability;
    Goodput gp;
    gp.job_mtbf = rel.gpu_mtbf / gpus;
    // A checkpoint holds every parameter once: its weights and its optimizer state
    // (fp32 master and moments); gradients are not saved.
    const StateBytes sb = state_bytes_per_param(s.training);
    gp.checkpoint = Bytes(analyse_step(s).params_total * (sb.weight + sb.optimizer));
    gp.checkpoint_time = gp.checkpoint / rel.checkpoint_bandwidth;
    gp.young_interval = Seconds(std::sqrt(2 * gp.checkpoint_time.value() * gp.job_mtbf.value()));
    gp.daly_interval = daly_interval(gp.checkpoint_time, gp.job_mtbf);
    gp.interval = rel.checkpoint_interval.value_or(gp.daly_interval);
    gp.wall_time = expected_wall_time(r.time, gp.interval, gp.checkpoint_time, rel.restart_time,
                                      gp.job_mtbf);
    gp.interruptions = gp.wall_time.value() / gp.job_mtbf.value();
    gp.goodput = r.time.value() / gp.wall_time.value();
    gp.gpu_hours = gp.wall_time.value() / 3600.0 * gpus;
    if (s.cost.usd_per_gpu_hour) gp.usd = gp.gpu_hours * *s.cost.usd_per_gpu_hour;
    r.goodput = gp;
  }

  // Learning-rate advice: the rules the large-batch literature reports, not a model.
  switch (s.training.optimizer) {
    case Optimizer::sgd:
      r.advice.push_back(
          "SGD: scale the learning rate linearly with the global batch, with a gradual "
          "warm-up over the first 5 epochs (Goyal et al. 2017, sections 2.1-2.2)");
      break;
    case Optimizer::lars:
      r.advice.push_back(
          "LARS: layer-wise trust ratios keep the base rate stable to batch 32k on ResNet-50, "
          "with warm-up (You et al. 2017)");
      break;
    case Optimizer::lamb:
      r.advice.push_back(
          "LAMB: square-root scaling of the learning rate with the batch and a linear warm-up "
          "(You et al. 2019, section 4)");
      break;
    case Optimizer::adafactor:
      r.advice.push_back(
          "Adafactor: use the paper's relative step size (scaled by each parameter's RMS) "
          "with update clipping and warm-up rather than a hand-scaled rate (Shazeer & Stern "
          "2018)");
      break;
    case Optimizer::adam:
    case Optimizer::adamw:
      r.advice.push_back(
          "Adam: square-root scaling of the learning rate with the batch (Malladi et al. 2022, "
          "the SDE scaling rule for adaptive methods), with warm-up");
      break;
  }
  if (r.critical) {
    const CriticalBatch& c = *r.critical;
    r.advice.push_back(fmt::format(
        "batch {:.0f} is {:.2f} x B_noise: {:.2f} x the fewest steps and {:.2f} x the fewest "
        "samples; past B_noise, doubling the batch saves under half the steps (McCandlish et "
        "al. 2018)",
        c.batch, c.batch / c.b_noise, c.steps_factor, c.examples_factor));
  }
  return r;
}

}  // namespace orrery
