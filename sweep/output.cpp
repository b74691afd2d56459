#include "sweep/output.h"

#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <variant>

#include "core/units.h"
#include "report/check_report.h"
#include "sweep/axes.h"

namespace orrery {
namespace {

using nlohmann::ordered_json;

std::string num(double v) { return fmt::format("{:.9g}", v); }
std::string opt(const std::optional<double>& v) { return v ? num(*v) : std::string(); }
std::string opt(const std::optional<Seconds>& v) { return v ? num(v->value()) : std::string(); }

// The FNV-1a hash of the scenario text: shards of another sweep are refused.
std::string fingerprint(const SweepInput& in) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : in.yaml) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return fmt::format("{:016x}", h);
}

constexpr double kGiB = 1073741824.0;

const std::vector<std::string> kBreakdownColumns = {
    "compute_s", "recompute_s", "tp_exposed_s", "ep_exposed_s", "cp_exposed_s",
    "pp_exposed_s", "dp_exposed_s", "bubble_s", "optimizer_s", "offload_exposed_s"};

// The breakdown in seconds, in the order of kBreakdownColumns; breakdown_from inverts it.
std::vector<double> breakdown_values(const Breakdown& b) {
  return {b.compute.value(),    b.recompute.value(),  b.tp_exposed.value(),
          b.ep_exposed.value(), b.cp_exposed.value(), b.pp_exposed.value(),
          b.dp_exposed.value(), b.bubble.value(),     b.optimizer.value(),
          b.offload_exposed.value()};
}

Breakdown breakdown_from(const std::vector<double>& v) {
  Breakdown b;
  b.compute = Seconds(v.at(0));
  b.recompute = Seconds(v.at(1));
  b.tp_exposed = Seconds(v.at(2));
  b.ep_exposed = Seconds(v.at(3));
  b.cp_exposed = Seconds(v.at(4));
  b.pp_exposed = Seconds(v.at(5));
  b.dp_exposed = Seconds(v.at(6));
  b.bubble = Seconds(v.at(7));
  b.optimizer = Seconds(v.at(8));
  b.offload_exposed = Seconds(v.at(9));
  return b;
}

std::string split_label(const CandidateResult& c) {
  std::string s = fmt::format("tp{} pp{} dp{}", c.a.tp, c.a.pp, c.dp);
  if (c.a.vp > 1) s += fmt::format(" vp{}", c.a.vp);
  if (c.a.vp_edges) s += " E+L";
  if (c.a.cp > 1) s += fmt::format(" cp{}", c.a.cp);
  if (c.a.ep > 1) s += fmt::format(" ep{}", c.a.ep);
  return s;
}

// Measured / predicted step time at the band's ends, "0.87-1.01".
std::string band_cell(const CandidateResult& c) {
  if (!c.band || c.band->cases == 0) return "-";
  return fmt::format("{:.2f}-{:.2f}", c.band->fast(), c.band->slow());
}

std::string outside_codes(const CandidateResult& c) {
  std::string out;
  for (const RegionFlag& f : c.outside) {
    if (!out.empty()) out += ';';
    out += f.code;
  }
  return out;
}

std::size_t counted(const SweepResult& r, Status s) { return r.count(s); }

// Dollars: cents below $10,000, then thousands and millions.
std::string usd_text(double v) {
  if (v >= 1e6) return fmt::format("${:.2f}M", v / 1e6);
  if (v >= 1e4) return fmt::format("${:.1f}K", v / 1e3);
  return fmt::format("${:.2f}", v);
}

std::string objective_text(Objective o, double v) {
  switch (o) {
    case Objective::step_time:
      return format_seconds(Seconds(v));
    case Objective::time_to_train:
      return format_long_duration(Seconds(v));
    case Objective::cost:
    case Objective::tco:
      return usd_text(v);
    case Objective::energy:
      if (v >= 1e6) return fmt::format("{:.2f} GWh", v / 1e6);
      return v >= 1e4 ? fmt::format("{:.1f} MWh", v / 1e3) : fmt::format("{:.1f} kWh", v);
  }
  return num(v);
}

// The system a candidate runs on: its cluster preset and GPU ("dgx-h100 / H100 SXM5 80GB").
std::string system_label(const std::string& system, const std::string& gpu) {
  return system.empty() ? gpu : system + " / " + gpu;
}

// The swept dimensions the split label does not show, as ranked-table columns: (header,
// width, cell).
struct Column {
  std::string header;
  int width;
  std::function<std::string(const CandidateResult& c)> cell;
};

std::vector<Column> swept_columns(const SweepSpec& w) {
  std::vector<Column> out;
  if (!w.gpu.empty() || !w.system.empty()) {
    out.push_back({"system", 38,
                   [](const CandidateResult& c) { return system_label(c.system, c.gpu_name); }});
  }
  auto number = [&](const char* header, int width, int Assignment::*field) {
    out.push_back({header, width, [field](const CandidateResult& c) {
                     return std::to_string(c.a.*field);
                   }});
  };
  if (w.nodes.swept()) number("nodes", 5, &Assignment::nodes);
  if (w.gpus_per_node.swept()) number("gpus/node", 9, &Assignment::gpus_per_node);
  if (w.nics_per_node.swept()) number("nics", 4, &Assignment::nics_per_node);
  if (!w.nic_bandwidth.empty()) {
    out.push_back({"nic", 10, [&w](const CandidateResult& c) {
                     return c.a.nic_bandwidth < 0
                                ? std::string("-")
                                : w.nic_bandwidth.at(static_cast<std::size_t>(c.a.nic_bandwidth))
                                      .second;
                   }});
  }
  if (w.global_batch.swept() || w.global_batch_tokens) number("batch", 6, &Assignment::global_batch);
  if (!w.compression.empty()) {
    out.push_back({"compression", 11, [](const CandidateResult& c) {
                     return std::string(to_string(c.a.compression));
                   }});
  }
  if (!w.schedule.empty()) {
    out.push_back({"schedule", 16, [](const CandidateResult& c) {
                     return std::string(to_string(c.a.schedule));
                   }});
  }
  if (!w.sequence_parallel.empty()) {
    out.push_back({"sp", 5, [](const CandidateResult& c) {
                     return std::string(c.a.sequence_parallel ? "true" : "false");
                   }});
  }
  if (!w.fsdp.empty()) {
    out.push_back({"fsdp", 13, [](const CandidateResult& c) {
                     return std::string(to_string(c.a.fsdp));
                   }});
  }
  if (!w.sharding.empty()) {
    out.push_back({"sharding", 8, [](const CandidateResult& c) {
                     return std::string(to_string(c.a.sharding));
                   }});
  }
  if (!w.stack.empty()) {
    out.push_back({"stack", 13, [](const CandidateResult& c) {
                     return std::string(to_string(c.a.stack));
                   }});
  }
  return out;
}

// The constraints in one line ("deadline 60.0 days, max power 30 MW"), "" when none.
std::string constraints_text(const SweepSpec& w) {
  std::vector<std::string> parts;
  if (w.max_time_to_train)
    parts.push_back("deadline " + format_long_duration(*w.max_time_to_train));
  if (w.max_power) parts.push_back("max power " + format_watts(*w.max_power));
  if (w.max_cost_usd) parts.push_back("rent budget " + usd_text(*w.max_cost_usd));
  if (w.max_tco_usd) parts.push_back("TCO budget " + usd_text(*w.max_tco_usd));
  if (w.max_nodes) parts.push_back(fmt::format("max {} nodes", *w.max_nodes));
  if (w.max_gpus) parts.push_back(fmt::format("max {} GPUs", *w.max_gpus));
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : ", ") + p;
  return out;
}

// The per-system comparison (SweepResult::systems) as a table.
std::string render_systems(const SweepInput& in, const SweepResult& r) {
  if (r.systems.empty()) return "";
  const SweepSpec& w = in.spec;
  const std::string cons = constraints_text(w);
  std::string out = fmt::format(
      "\nper system   the smallest cluster meeting the constraints ({}), its best candidate by "
      "{}\n",
      cons.empty() ? "none" : cons, to_string(w.objectives[0]));
  std::size_t width = 6;
  for (const SystemChoice& sc : r.systems)
    width = std::max(width, system_label(sc.system, sc.gpu_name).size());
  out += fmt::format(
      "{:<{}} {:>5} {:>6}  {:<22} {:>3} {:>6} {:>10} {:>10} {:>10} {:>10} "
      "{:>9} {:>8}  {}\n",
      "system", width, "nodes", "GPUs", "split", "mb", "batch", "time", "GPU-hours", "rent", "TCO",
      "energy", "peak", "band (time to train)");
  for (const SystemChoice& sc : r.systems) {
    const std::string label = system_label(sc.system, sc.gpu_name);
    if (!sc.best) {
      out += fmt::format("{:<{}} no candidate meets the constraints\n", label, width);
      continue;
    }
    const CandidateResult& c = r.at(*sc.best);
    const Figures& f = *c.figures;
    const double ttt = f.time_to_train ? f.time_to_train->value() : 0.0;
    std::string band = "-";
    if (c.band && c.band->cases > 0) {
      band = fmt::format("{} to {}", format_long_duration(Seconds(ttt * c.band->fast())),
                         format_long_duration(Seconds(ttt * c.band->slow())));
    }
    out += fmt::format(
        "{:<{}} {:>5} {:>6}  {:<22} {:>3} {:>6} {:>10} {:>10.0f} {:>10} {:>10} {:>9} {:>8}  {}\n",
        label, width, c.a.nodes, c.gpus, split_label(c), c.a.microbatch, c.a.global_batch,
        format_long_duration(Seconds(ttt)), ttt / 3600.0 * c.gpus,
        f.cost_usd ? usd_text(*f.cost_usd) : "-", f.tco_usd ? usd_text(*f.tco_usd) : "-",
        f.energy_kwh ? objective_text(Objective::energy, *f.energy_kwh) : "-",
        format_watts(Watts(f.peak_power_w)), band);
  }
  out +=
      "columns      time: time to train; rent: GPU-hours at the system's $/GPU-hour; TCO: "
      "owning it for the run (purchase written off, facility, electricity; "
      "docs/model.md \"Cost of ownership\"); energy and peak: facility, with the PUE";
  out += "\n";
  // Each system's prices with their source (cluster.price.source).
  for (const SystemChoice& sc : r.systems) {
    if (!sc.best) continue;
    const Scenario s = candidate_scenario(in, r.at(*sc.best).a);
    if (!s.cluster.price.source.empty()) {
      out += fmt::format("prices       {}: {}\n", system_label(sc.system, sc.gpu_name),
                         s.cluster.price.source);
    }
  }
  return out;
}

}  // namespace

std::string render_sweep_table(const SweepInput& in, const SweepResult& r) {
  const SweepSpec& w = in.spec;
  std::string out;
  out += fmt::format("sweep       {}\n", in.baseline.name);
  out += fmt::format("candidates  {} : {} invalid, {} over max_gpus", r.total,
                     counted(r, Status::invalid), counted(r, Status::over_gpus));
  if (w.max_nodes) out += fmt::format(", {} over max_nodes", counted(r, Status::over_nodes));
  if (w.max_power) out += fmt::format(", {} over max_power", counted(r, Status::over_power));
  out += fmt::format(", {} out of memory, {} over budget", counted(r, Status::out_of_memory),
                     counted(r, Status::over_budget));
  if (w.max_time_to_train)
    out += fmt::format(", {} past the deadline", counted(r, Status::over_deadline));
  out += fmt::format(", {} not modelled, {} pruned by the bound, {} simulated\n",
                     counted(r, Status::unsupported), r.pruned, r.simulated);
  std::string objs;
  for (Objective o : w.objectives) objs += (objs.empty() ? "" : ", ") + std::string(to_string(o));
  const bool single = w.objectives.size() == 1;
  out += fmt::format(
      "objective   {}{}{}\n\n", objs, single ? fmt::format(" (top {})", w.top) : " (Pareto front)",
      w.rank_by == RankBy::pessimistic ? ", ranked by the slow end of each candidate's band" : "");
  const std::vector<Column> extra = swept_columns(w);
  out += fmt::format("{:>5}  ", "rank");
  for (const Column& col : extra) out += fmt::format("{:<{}} ", col.header, col.width);
  out += fmt::format("{:<22} {:>3} {:>4} {:>4} {:<9} {:<6} {:>10}", "split", "mb", "zero", "prec",
                     "recompute", "gpus", "memory");
  for (Objective o : w.objectives) out += fmt::format(" {:>14}", to_string(o));
  out += fmt::format(" {:>7} {:>10}  {}\n", "MFU", "band", "outside");
  const std::vector<int>& rows = single ? r.ranked : r.pareto;
  const std::size_t n = single ? std::min(rows.size(), static_cast<std::size_t>(w.top)) : rows.size();
  for (std::size_t k = 0; k < n; ++k) {
    const CandidateResult& c = r.at(rows[k]);
    out += fmt::format("{:>5}  ", k + 1);
    for (const Column& col : extra) out += fmt::format("{:<{}} ", col.cell(c), col.width);
    out += fmt::format("{:<22} {:>3} {:>4} {:>4} {:<9} {:<6} {:>6.1f} GiB", split_label(c),
                       c.a.microbatch, c.a.zero_stage, to_string(c.a.precision),
                       to_string(c.a.recompute), c.gpus, c.memory->used.value() / kGiB);
    for (std::size_t i = 0; i < w.objectives.size(); ++i) {
      out += fmt::format(" {:>14}", objective_text(w.objectives[i], c.objective[i]));
    }
    out += fmt::format(" {:>6.1f}% {:>10}  {}\n", 100.0 * c.figures->mfu, band_cell(c),
                       c.outside.empty() ? "-" : outside_codes(c));
  }
  if (rows.empty()) out += "  (no candidate could be simulated)\n";
  out += render_systems(in, r);
  if (!rows.empty()) {
    out += fmt::format(
        "\ncolumns      band: measured / predicted step time over the validation residuals of "
        "the candidate's family{}; outside: why it lies outside the validated region (gpu, mfu, "
        "memory, cp, cp_comm, schedule, layout, moe, zero2, zero3, align; docs/simulator.md, \"Prediction band "
        "and the validated region\")\n",
        w.rank_by == RankBy::pessimistic ? " (objectives shown at its slow, right end)" : "");
  }
  const CandidateResult& b = r.baseline;
  if (b.status == Status::simulated) {
    out += fmt::format("\nas written   {}: {}", split_label(b),
                       objective_text(w.objectives[0], b.objective[0]));
    if (r.baseline_rank && *r.baseline_rank == *r.baseline_rank_max) {
      out += fmt::format(": rank {} (exact: no pruned candidate could beat it)", *r.baseline_rank);
    } else if (r.baseline_rank) {
      out += fmt::format(": rank {} to {} ({} pruned candidates could still beat it; raise "
                         "sweep.top for the exact rank)",
                         *r.baseline_rank, *r.baseline_rank_max,
                         *r.baseline_rank_max - *r.baseline_rank);
    }
    if (b.memory && b.memory->used > b.memory->capacity) {
      // Simulated all the same, so its time can be compared, but it would not run.
      out += fmt::format("; it does not fit in memory ({:.1f} of {:.1f} GiB per GPU), so it "
                         "would not run{}",
                         b.memory->used.value() / kGiB, b.memory->capacity.value() / kGiB,
                         w.fits_memory ? " (candidates like it are dropped)" : "");
    }
    out += "\n";
  } else {
    out += fmt::format("\nas written   not simulated: {}\n", b.reason);
  }
  if (!rows.empty()) {
    const CandidateResult& best = r.at(rows[0]);
    const Scenario s = candidate_scenario(in, best.a);
    out += fmt::format("best         {} ({} GPUs of {}{})\n", split_label(best), best.gpus,
                       best.gpu_name, w.system.empty() ? std::string() : ", " + best.system);
    if (best.band) out += fmt::format("band         {}\n", best.band->describe());
    for (const RegionFlag& f : best.outside) out += fmt::format("outside      {}\n", f.text);
    out += fmt::format("Megatron-LM  {}\n", megatron_arguments(s));
  }
  // Figures the presets assumed, once per swept GPU or system that has any.
  for (std::size_t i = 0; i < in.raw.size(); ++i) {
    const ClusterSpec& c = in.raw[i].draft().cluster;
    ClusterSpec resolved = c;  // entries the scenario sets again are not assumed
    try {
      resolved = resolve(RawScenario(in.raw[i])).cluster;
    } catch (const InputError&) {
    }
    for (int nodes : in.spec.nodes.values) resolved.nodes = std::max(resolved.nodes, nodes);
    if (const std::string a = assumed_line(resolved); !a.empty()) {
      const std::string who = !c.preset.empty() ? c.preset : c.gpu.name;
      out += fmt::format("assumed      {}{}\n", in.raw.size() > 1 ? who + ": " : "", a);
    }
  }
  out +=
      "pruned       candidates whose lower bound (GEMM and attention FLOPs at the fastest "
      "rate, TP and ZeRO-2/3 bytes at line rate, pipeline chain) cannot reach the table\n";
  return out;
}

namespace {

std::string csv_header(const SweepInput& in) {
  const SweepSpec& w = in.spec;
  std::string out = "index,status";
  for (const detail::Axis& axis : detail::axes()) out += fmt::format(",{}", axis.column);
  out += ",memory_gib,capacity_gib";
  for (Objective o : w.objectives) out += fmt::format(",bound_{}", to_string(o));
  out += ",step_time_s";
  for (const auto& col : kBreakdownColumns) out += "," + col;
  out +=
      ",tokens_per_s,mfu,time_to_train_s,cost_usd,energy_kwh,tco_usd,peak_power_w,"
      "time_to_train_days,wall_time_days,goodput,expected_failures,band_basis,"
      "band_cases,"
      "step_time_low_s,step_time_high_s,outside_validated_region,rank,system_choice,"
      "reason\n";
  return out;
}

// Which candidates the CSV marks: rank (1-based, ranked order) and each system's answer.
struct CsvMarks {
  std::map<int, int> rank;
  std::map<int, bool> chosen;
};

CsvMarks csv_marks(const SweepResult& r) {
  CsvMarks m;
  for (std::size_t k = 0; k < r.ranked.size(); ++k) m.rank[r.ranked[k]] = static_cast<int>(k) + 1;
  // 1 on each system's answer (SweepResult::systems).
  for (const SystemChoice& sc : r.systems)
    if (sc.best) m.chosen[*sc.best] = true;
  return m;
}

// One candidate's CSV row, appended to `out`.
void csv_row(const SweepInput& in, const CsvMarks& m, const CandidateResult& c, std::string& out) {
  const SweepSpec& w = in.spec;
  out += fmt::format("{},{},", *c.index, to_string(c.status));
  for (const detail::Axis& axis : detail::axes()) {
    out += detail::csv_cell(axis.cell(in, c));
    out += ',';
  }
  // (Appending piece by piece: `"," + std::string` trips GCC 12's -Wrestrict false positive.)
  if (c.memory) {
    out += num(c.memory->used.value() / kGiB);
    out += ',';
    out += num(c.memory->capacity.value() / kGiB);
  } else {
    out += ',';
  }
  for (std::size_t i = 0; i < w.objectives.size(); ++i) {
    out += ',';
    if (i < c.bound.size()) out += num(c.bound[i]);
  }
  if (c.figures && c.status != Status::pruned) {
    const Figures& f = *c.figures;
    auto field = [&out](const std::string& v) {
      out += ',';
      out += v;
    };
    field(num(f.step_time.value()));
    for (double v : breakdown_values(f.breakdown)) field(num(v));
    field(num(f.tokens_per_s));
    field(num(f.mfu));
    field(opt(f.time_to_train));
    field(opt(f.cost_usd));
    field(opt(f.energy_kwh));
    field(opt(f.tco_usd));
    field(num(f.peak_power_w));
    field(f.time_to_train ? num(f.time_to_train->value() / 86400.0) : std::string());
    field(f.wall_time ? num(f.wall_time->value() / 86400.0) : std::string());
    field(opt(f.goodput));
    field(opt(f.expected_failures));
  } else {
    out += std::string(12 + kBreakdownColumns.size(), ',');  // step, breakdown, 11 more
  }
  // The band and the region flags wherever the memory model ran; the step-time ends
  // once simulated.
  const bool simulated = c.figures && c.status != Status::pruned;
  out += ',';
  if (c.band) out += detail::csv_quote(c.band->basis);
  out += ',';
  if (c.band) out += std::to_string(c.band->cases);
  out += ',';
  if (c.band && simulated) out += num(c.figures->step_time.value() * c.band->fast());
  out += ',';
  if (c.band && simulated) out += num(c.figures->step_time.value() * c.band->slow());
  out += ',';
  out += outside_codes(c);
  auto it = m.rank.find(*c.index);
  out += ',';
  if (it != m.rank.end()) out += std::to_string(it->second);
  out += ',';
  if (m.chosen.count(*c.index)) out += '1';
  out += ',';
  out += detail::csv_quote(c.reason);
  out += '\n';
}

ordered_json figures_json(const Figures& f) {
  ordered_json j;
  j["step_time_s"] = f.step_time.value();
  ordered_json b;
  const std::vector<double> v = breakdown_values(f.breakdown);
  for (std::size_t i = 0; i < v.size(); ++i) b[kBreakdownColumns[i]] = v[i];
  j["breakdown"] = b;
  j["tokens_per_s"] = f.tokens_per_s;
  j["mfu"] = f.mfu;
  j["hfu"] = f.hfu;
  if (f.time_to_train) j["time_to_train_s"] = f.time_to_train->value();
  if (f.cost_usd) j["cost_usd"] = *f.cost_usd;
  if (f.energy_kwh) j["energy_kwh"] = *f.energy_kwh;
  if (f.tco_usd) j["tco_usd"] = *f.tco_usd;
  j["peak_power_w"] = f.peak_power_w;
  if (f.wall_time) j["wall_time_s"] = f.wall_time->value();
  if (f.goodput) j["goodput"] = *f.goodput;
  if (f.expected_failures) j["expected_failures"] = *f.expected_failures;
  return j;
}

Figures figures_from(const ordered_json& j) {
  Figures f;
  f.step_time = Seconds(j.at("step_time_s").get<double>());
  std::vector<double> v;
  for (const auto& col : kBreakdownColumns) v.push_back(j.at("breakdown").at(col).get<double>());
  f.breakdown = breakdown_from(v);
  f.tokens_per_s = j.at("tokens_per_s").get<double>();
  f.mfu = j.at("mfu").get<double>();
  f.hfu = j.at("hfu").get<double>();
  if (j.contains("time_to_train_s"))
    f.time_to_train = Seconds(j["time_to_train_s"].get<double>());
  if (j.contains("cost_usd")) f.cost_usd = j["cost_usd"].get<double>();
  if (j.contains("energy_kwh")) f.energy_kwh = j["energy_kwh"].get<double>();
  if (j.contains("tco_usd")) f.tco_usd = j["tco_usd"].get<double>();
  f.peak_power_w = j.at("peak_power_w").get<double>();
  if (j.contains("wall_time_s")) f.wall_time = Seconds(j["wall_time_s"].get<double>());
  if (j.contains("goodput")) f.goodput = j["goodput"].get<double>();
  if (j.contains("expected_failures")) f.expected_failures = j["expected_failures"].get<double>();
  return f;
}

ordered_json candidate_json(const SweepInput& in, const CandidateResult& c) {
  ordered_json j;
  if (c.index) j["index"] = *c.index;  // the baseline has none
  j["status"] = to_string(c.status);
  for (const detail::Axis& axis : detail::axes())
    std::visit([&](const auto& v) { j[axis.column] = v; }, axis.cell(in, c));
  if (c.memory) {
    j["memory_bytes"] = c.memory->used.value();
    j["capacity_bytes"] = c.memory->capacity.value();
  }
  if (!c.bound.empty()) j["bound"] = c.bound;
  if (c.figures && c.status != Status::pruned) j["figures"] = figures_json(*c.figures);
  if (c.band) {
    const Band& b = *c.band;
    j["band"] = {{"family",
                  {{"gpu_generation", b.family.generation},
                   {"framework", b.family.framework},
                   {"parallel_kind", b.family.kind}}},
                 {"family_cases", b.family_cases},
                 {"basis", b.basis},
                 {"cases", b.cases},
                 {"step_time_error_min", b.e_min},
                 {"step_time_error_max", b.e_max},
                 {"describe", b.describe()}};
    ordered_json flags = ordered_json::array();
    for (const RegionFlag& f : c.outside) flags.push_back({{"code", f.code}, {"text", f.text}});
    j["outside_validated_region"] = flags;
  }
  if (!c.reason.empty()) j["reason"] = c.reason;
  return j;
}

}  // namespace

namespace {

// The JSON up to its candidates: the whole document with "candidates" left out, its
// closing brace cut, so the candidates can follow one by one.
std::string json_head(const SweepInput& in, const SweepResult& r) {
  ordered_json j;
  ordered_json summary;
  summary["scenario"] = in.baseline.name;
  std::vector<std::string> objs;
  for (Objective o : in.spec.objectives) objs.emplace_back(to_string(o));
  summary["objectives"] = objs;
  summary["rank_by"] = to_string(in.spec.rank_by);
  summary["candidates"] = r.total;
  summary["valid"] = r.valid;
  for (Status s :
       {Status::invalid, Status::over_gpus, Status::over_nodes, Status::over_power,
        Status::out_of_memory, Status::over_budget, Status::over_deadline, Status::unsupported}) {
    summary[to_string(s)] = counted(r, s);
  }
  summary["pruned"] = r.pruned;
  summary["simulated"] = r.simulated;
  j["summary"] = summary;
  ordered_json b = candidate_json(in, r.baseline);
  if (r.baseline_rank) {
    b["rank_min"] = *r.baseline_rank;
    b["rank_max"] = *r.baseline_rank_max;
  }
  j["baseline"] = b;
  j["ranked"] = r.ranked;
  j["pareto"] = r.pareto;
  // The per-system comparison: each system's chosen candidate (index into candidates).
  ordered_json systems = ordered_json::array();
  for (const SystemChoice& sc : r.systems) {
    ordered_json e{{"system", sc.system}, {"gpu", sc.gpu_name}};
    e["best"] = sc.best ? ordered_json(*sc.best) : ordered_json(nullptr);
    if (sc.best) {
      const CandidateResult& c = r.at(*sc.best);
      e["nodes"] = c.a.nodes;
      e["gpus"] = c.gpus;
      const double ttt = c.figures->time_to_train ? c.figures->time_to_train->value() : 0.0;
      e["gpu_hours"] = ttt / 3600.0 * c.gpus;
    }
    systems.push_back(e);
  }
  j["systems"] = systems;
  if (!r.ranked.empty()) {
    const auto& best = r.at(in.spec.objectives.size() == 1 ? r.ranked[0] : r.pareto[0]);
    const Scenario bs = candidate_scenario(in, best.a);
    j["best_megatron_arguments"] = megatron_arguments(bs);
    // The best configuration's simulated timeline: every task that took time, as
    // [simulated GPU, stream, kind, start s, end s], for orrery report.
    const StepResult step = simulate_step(bs);
    ordered_json tl = ordered_json::array();
    for (std::size_t t = 0; t < step.graph.tasks.size(); ++t) {
      const Task& task = step.graph.tasks[t];
      const TaskTiming& when = step.timeline.timing.at(t);
      if (!when.end || *when.end <= *when.start) continue;  // no time, or never finished
      tl.push_back(ordered_json::array({task.rank, to_string(task.stream), to_string(task.kind),
                                        when.start->value(), when.end->value()}));
    }
    j["best_timeline"] = tl;
  }
  std::string head = j.dump(1);
  head.pop_back();  // "\n}"
  head.pop_back();
  return head + ",\n \"candidates\": [\n";
}

// One candidate as an element of the "candidates" array, indented as dump(1) indents it
// there (two levels: two spaces before every line).
void json_item(const SweepInput& in, const CandidateResult& c, bool first, std::string& out) {
  if (!first) out += ",\n";
  const std::string text = candidate_json(in, c).dump(1);
  out += "  ";
  for (char ch : text) {
    out += ch;
    if (ch == '\n') out += "  ";
  }
}

}  // namespace

void write_sweep_streams(const SweepInput& in, const SweepResult& r, const Sink& csv,
                         const Sink& json) {
  // Each stream's text is handed on in pieces of about a megabyte.
  constexpr std::size_t kPiece = 1 << 20;
  std::string csv_text, json_text;
  if (csv) csv_text = csv_header(in);
  if (json) json_text = json_head(in, r);
  const CsvMarks marks = csv ? csv_marks(r) : CsvMarks{};
  bool first = true;
  for_each_candidate(in, r, [&](const CandidateResult& c) {
    if (csv) {
      csv_row(in, marks, c, csv_text);
      if (csv_text.size() >= kPiece) {
        csv(csv_text);
        csv_text.clear();
      }
    }
    if (json) {
      json_item(in, c, first, json_text);
      if (json_text.size() >= kPiece) {
        json(json_text);
        json_text.clear();
      }
    }
    first = false;
  });
  if (csv) csv(csv_text);
  if (json) {
    json_text += "\n ]\n}\n";
    json(json_text);
  }
}

std::string render_sweep_csv(const SweepInput& in, const SweepResult& r) {
  std::string out;
  write_sweep_streams(in, r, [&](const std::string& t) { out += t; }, nullptr);
  return out;
}

std::string render_sweep_json(const SweepInput& in, const SweepResult& r) {
  std::string out;
  write_sweep_streams(in, r, nullptr, [&](const std::string& t) { out += t; });
  return out;
}

std::string best_scenario_yaml(const SweepInput& in, const SweepResult& r) {
  const std::vector<int>& rows = in.spec.objectives.size() == 1 ? r.ranked : r.pareto;
  if (rows.empty()) {
    throw InputError(in.spec.where("sweep"), "sweep", "", "no candidate was simulated");
  }
  const CandidateResult& best = r.at(rows[0]);
  return fmt::format("# The best candidate of the sweep in {} ({}).\n", in.file,
                     split_label(best)) +
         rewrite_scenario_yaml(in.yaml, candidate_settings(in, best));
}

std::string write_shard(const SweepInput& in, const SweepResult& r, int shard, int shards) {
  ordered_json j;
  j["orrery_sweep_shard"] = 1;
  j["scenario"] = in.file;
  j["fingerprint"] = fingerprint(in);
  j["shard"] = shard;
  j["shards"] = shards;
  j["candidates"] = r.total;
  ordered_json results = ordered_json::array();
  for (const auto& c : r.evaluated) {
    if (c.status != Status::simulated && c.status != Status::over_budget &&
        c.status != Status::over_deadline && c.status != Status::unsupported) {
      continue;
    }
    if (c.status != Status::unsupported && !c.figures) continue;
    ordered_json e;
    e["index"] = *c.index;
    if (c.status == Status::unsupported) {
      e["unsupported"] = c.reason;
    } else {
      e["figures"] = figures_json(*c.figures);
    }
    results.push_back(e);
  }
  j["results"] = results;
  return j.dump() + "\n";
}

SweepResult read_shard(const SweepInput& in, const std::string& text, const std::string& file) {
  SweepResult r;
  try {
    const ordered_json j = ordered_json::parse(text);
    if (!j.contains("orrery_sweep_shard")) {
      throw InputError({file, std::nullopt}, "", "", "not a shard file of orrery sweep --shard");
    }
    if (j.at("fingerprint").get<std::string>() != fingerprint(in)) {
      throw InputError({file, std::nullopt}, "fingerprint", j["fingerprint"].get<std::string>(),
                       fmt::format("written for another scenario text than {} ({})", in.file,
                                   fingerprint(in)));
    }
    for (const auto& e : j.at("results")) {
      CandidateResult c;
      c.index = e.at("index").get<int>();
      if (e.contains("unsupported")) {
        c.status = Status::unsupported;
        c.reason = e["unsupported"].get<std::string>();
      } else {
        c.status = Status::simulated;
        c.figures = figures_from(e.at("figures"));
      }
      r.evaluated.push_back(c);
    }
    r.total = j.at("candidates").get<std::size_t>();
    r.shard = j.at("shard").get<int>();
    r.shards = j.at("shards").get<int>();
  } catch (const nlohmann::json::exception& e) {
    throw InputError({file, std::nullopt}, "", "", std::string("malformed shard file: ") + e.what());
  }
  return r;
}

}  // namespace orrery
