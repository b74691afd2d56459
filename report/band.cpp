#include "report/band.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <functional>
#include <sstream>

#include "calibrate/compute_model.h"
#include "model/workload.h"
#include "report/residuals_data.h"
#include "scenario/names.h"
#include "scenario/pipeline_layout.h"

namespace orrery {
namespace {

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

std::vector<std::string> split(const std::string& line, char sep) {
  std::vector<std::string> out;
  std::string cell;
  std::istringstream in(line);
  while (std::getline(in, cell, sep)) out.push_back(cell);
  if (!line.empty() && line.back() == sep) out.emplace_back();
  return out;
}

const std::vector<std::string> kColumns = {"id",         "gpu_generation",
                                           "framework",  "parallel_kind",
                                           "cp",         "ep",
                                           "zero_stage", "precision",
                                           "metric",     "measured",
                                           "predicted",  "error",
                                           "time_error", "mfu",
                                           "hfu",        "memory_fraction",
                                           "fits",       "schedule",
                                           "cp_comm",    "layout"};

std::string pct(double fraction) { return fmt::format("{:.1f} %", 100 * fraction); }

// schedule_label's mark of flexible groups in effect (interleaved-1f1b only).
constexpr const char* kFlexibleSuffix = "-flexible-groups";

}  // namespace

std::string schedule_label(const ParallelismSpec& p) {
  // At pp 1 a schedule other than 1F1B still changes the step (GPipe holds every
  // micro-batch's activations, ZB-H1 moves the TP input-gradient reductions).
  if (p.pp == 1 && p.schedule == PipelineSchedule::one_f_one_b) return "-";
  return std::string(to_string(p.schedule)) + (p.one_short_group() ? kFlexibleSuffix : "");
}

std::string layout_label(const ParallelismSpec& p) {
  if (p.pipeline_layout.empty()) return "-";
  if (standalone_mtp_stage(p.pipeline_layout) >= 0) return "mtp-stage";
  const LayoutParse parsed = parse_pipeline_layout(p.pipeline_layout);
  const bool empty = std::any_of(parsed.stages.begin(), parsed.stages.end(),
                                 [](const std::string& st) { return st.empty(); });
  return empty ? "empty-stage" : "-";
}

std::string Family::label() const { return generation + " x " + framework + " x " + kind; }

std::string gpu_generation(const GpuSpec& gpu) {
  const std::string text = upper(gpu.preset + " " + gpu.name);
  struct Rule {
    const char* token;
    const char* generation;
  };
  // Blackwell first: "GB200" also contains "B200", "GH200" "H200". Blackwell Ultra (B300,
  // GB300; compute capability 10.3) is a generation of its own: its presets copy the
  // Blackwell parts' efficiencies as assumptions (scenario/presets/gpus.yaml), so its
  // residuals measure those assumptions and must not widen or narrow a B200's band.
  static const Rule rules[] = {{"B300", "Blackwell Ultra"},
                               {"B100", "Blackwell"},
                               {"B200", "Blackwell"},
                               {"H100", "Hopper"},
                               {"H200", "Hopper"},
                               {"H800", "Hopper"},
                               {"H20", "Hopper"},
                               {"A100", "Ampere"},
                               {"A800", "Ampere"},
                               {"A40", "Ampere"},
                               {"A30", "Ampere"},
                               {"A10", "Ampere"},
                               {"V100", "Volta"}};
  for (const Rule& r : rules)
    if (text.find(r.token) != std::string::npos) return r.generation;
  return "other";
}

Family family_of(const Scenario& s) {
  const ParallelismSpec& p = s.parallelism;
  Family f;
  f.generation = gpu_generation(s.cluster.gpu);
  // ZeRO-3 names its implementation (parallelism.fsdp.implementation); Megatron-FSDP
  // belongs with Megatron-Core.
  using Impl = ParallelismSpec::FsdpImpl;
  const bool zero3 = p.zero_stage >= 3;
  // A PyTorch-native stack without ZeRO-3 (Hugging Face's Trainer, plain DDP).
  const bool pytorch_native = s.training.stack.pytorch_native();
  f.framework = p.pipeline_engine == PipelineEngine::deepspeed || p.zero_hpz ? "Megatron-DeepSpeed"
                : zero3 && p.fsdp_impl == Impl::deepspeed                    ? "DeepSpeed"
                : zero3 && p.torch_fsdp()                                    ? "PyTorch FSDP"
                : !zero3 && pytorch_native                                   ? "PyTorch"
                                                                             : "Megatron-Core";
  f.kind = (s.model.moe && s.model.moe->experts > 0) || p.ep > 1 ? "moe"
           : p.cp > 1                                            ? "context-parallel"
           : p.zero_stage >= 3                                   ? "zero-3"
                                                                 : "3d";
  return f;
}

double time_error(Metric metric, double error) {
  return metric == Metric::step_time_s ? error : 1 / (1 + error) - 1;
}

std::vector<Residual> parse_residuals(const std::string& csv, const std::string& where) {
  std::vector<Residual> out;
  std::istringstream in(csv);
  std::string line;
  int n = 0;
  auto bad = [&](const std::string& why) { return InputError({where, n}, "", line, why); };
  while (std::getline(in, line)) {
    ++n;
    if (line.empty()) continue;
    const std::vector<std::string> cells = split(line, ',');
    if (n == 1) {
      if (cells != kColumns) throw bad("not a residual table: the header differs");
      continue;
    }
    if (cells.size() != kColumns.size()) {
      throw bad(fmt::format("{} cells, expected {}", cells.size(), kColumns.size()));
    }
    Residual r;
    try {
      r.id = cells[0];
      r.family = {cells[1], cells[2], cells[3]};
      r.cp = std::stoi(cells[4]);
      r.ep = std::stoi(cells[5]);
      r.zero_stage = std::stoi(cells[6]);
      r.precision = cells[7];
      r.metric = cells[8];
      r.measured = std::stod(cells[9]);
      r.predicted = std::stod(cells[10]);
      r.error = std::stod(cells[11]);
      r.time_error = std::stod(cells[12]);
      r.mfu = std::stod(cells[13]);
      r.hfu = std::stod(cells[14]);
      r.memory_fraction = std::stod(cells[15]);
    } catch (const std::exception&) {
      throw bad("a number does not parse");
    }
    if (cells[16] != "true" && cells[16] != "false") throw bad("fits is true or false");
    r.fits = cells[16] == "true";
    r.schedule = cells[17];
    r.cp_comm = cells[18];
    r.layout = cells[19];
    if (r.layout != "-" && r.layout != "mtp-stage" && r.layout != "empty-stage") {
      throw bad("layout is '-', mtp-stage or empty-stage");
    }
    // A misspelt name would match no scenario and flag every one silently. Flexible groups
    // exist under the interleaved schedule only.
    const bool known_schedule =
        r.schedule == "-" || value_of<PipelineSchedule>(r.schedule) ||
        r.schedule == std::string(to_string(PipelineSchedule::interleaved_1f1b)) + kFlexibleSuffix;
    if (!known_schedule) throw bad("schedule is '-' or a pipeline schedule's name");
    if (r.cp_comm != "-" && !value_of<ParallelismSpec::CpComm>(r.cp_comm)) {
      throw bad("cp_comm is '-', ring or all-gather");
    }
    out.push_back(r);
  }
  return out;
}

const std::vector<Residual>& shipped_residuals() {
  static const std::vector<Residual> table =
      parse_residuals(kValidationResidualsCsv, "report/validation_residuals.csv");
  return table;
}

std::string Band::describe() const {
  auto count = [](int n) { return fmt::format("{} case{}", n, n == 1 ? "" : "s"); };
  if (cases == 0) return family.label() + ": no validation residuals";
  std::string out = fmt::format("{}, {}", family.label(), count(family_cases));
  if (basis != family.label()) {
    out += fmt::format(" (< {}): band from {}, {}", kMinBandCases, basis, count(cases));
  }
  return out;
}

Band band_for(const Family& f, const std::vector<Residual>& table) {
  Band b;
  b.family = f;
  struct Level {
    std::string basis;
    std::function<bool(const Family&)> match;
  };
  const std::vector<Level> levels = {
      {f.label(), [&](const Family& c) { return c == f; }},
      {f.generation + " x " + f.kind + " (any framework)",
       [&](const Family& c) { return c.generation == f.generation && c.kind == f.kind; }},
      {f.generation + " (any framework and kind)",
       [&](const Family& c) { return c.generation == f.generation; }},
      {"every validation case", [](const Family&) { return true; }}};
  for (const Residual& r : table) b.family_cases += r.family == f ? 1 : 0;
  for (std::size_t k = 0; k < levels.size(); ++k) {
    std::vector<double> e;
    for (const Residual& r : table)
      if (levels[k].match(r.family)) e.push_back(r.time_error);
    if (static_cast<int>(e.size()) < kMinBandCases && k + 1 < levels.size()) continue;
    if (e.empty()) return b;
    b.basis = levels[k].basis;
    b.cases = static_cast<int>(e.size());
    b.e_min = *std::min_element(e.begin(), e.end());
    b.e_max = *std::max_element(e.begin(), e.end());
    return b;
  }
  return b;
}

std::string precision_class(const std::string& precision) {
  if (precision == "fp16" || precision == "bf16") return "16-bit";
  if (precision == "fp32" || precision == "tf32") return "32-bit";
  return precision;
}

std::optional<RegionFlag> mfu_flag(const Family& family, const std::string& precision, double mfu,
                                   double hfu, const std::vector<Residual>& table) {
  const std::string cls = precision_class(precision);
  // The highest measured HFU of the cases that pass `pred` in this generation and class.
  auto top_of = [&](const std::function<bool(const Residual&)>& pred) {
    std::optional<double> top;
    for (const Residual& r : table) {
      // A speedup case measured a ratio of two runs, not this run's own speed.
      if (r.metric == to_string(Metric::speedup)) continue;
      if (r.family.generation == family.generation && precision_class(r.precision) == cls &&
          pred(r))
        top = std::max(top.value_or(0.0), r.measured_hfu());
    }
    return top;
  };
  // A stack's cases bound that stack's utilisation: a PyTorch FSDP run's measured HFU says
  // nothing about how fast a Megatron-Core candidate may go. Only when its framework has
  // no case in this generation and class do the other frameworks' cases bound it.
  std::string scope = family.generation + " " + family.framework;
  std::optional<double> top =
      top_of([&](const Residual& r) { return r.family.framework == family.framework; });
  if (!top) {
    scope = family.generation;
    top = top_of([](const Residual&) { return true; });
  }
  if (!top) {
    return RegionFlag{"mfu",
                      fmt::format("no validated {} case trains in {}", family.generation, cls)};
  }
  if (hfu <= *top) return std::nullopt;
  return RegionFlag{"mfu", fmt::format("FLOP utilisation {} (MFU {}) above every validated {} {} "
                                       "case (highest measured {})",
                                       pct(hfu), pct(mfu), scope, cls, pct(*top))};
}

std::optional<RegionFlag> alignment_flag(const Scenario& s) {
  const bool odd_measured = unaligned_gemm_rate(s) > 0;
  const int aligned = aligned_elements(s.training.precision);
  const auto unmeasured_rate = [&](int alignment) {
    return alignment < aligned && (alignment > 1 || !odd_measured);
  };
  const Workload w = build_workload(s.model, s.training, shard_of(s.parallelism));
  // Only where they carry kAlignmentFlagShare of the forward FLOPs: a classifier of two
  // classes or a router of 60 experts changes nothing a band could show.
  double share = 0;
  for (const Layer& l : w.layers)
    for (const Op& op : l.ops)
      if (unmeasured_rate(op.alignment)) share += op.fwd_flops.value();
  const double total = w.fwd_flops().value();
  if (total <= 0 || share < kAlignmentFlagShare * total) return std::nullopt;
  std::vector<std::string> unmeasured;
  for (const MisalignedGemm& g : misaligned_gemms(w))
    if (unmeasured_rate(g.alignment))
      unmeasured.push_back(fmt::format("{} ({}-element)", g.name, g.alignment));
  return RegionFlag{"align", fmt::format("GEMMs on rows not 16-byte aligned, {}, {} of the "
                                         "FLOPs: no rate of such kernels is measured on this "
                                         "GPU, timed as aligned",
                                         fmt::join(unmeasured, ", "), pct(share / total))};
}

std::vector<RegionFlag> region_flags(const Scenario& s, double memory_fraction,
                                     std::optional<Utilisation> use,
                                     const std::vector<Residual>& table) {
  const ParallelismSpec& p = s.parallelism;
  const Family f = family_of(s);
  std::vector<RegionFlag> out;
  auto any = [&](const std::function<bool(const Residual&)>& pred) {
    return std::any_of(table.begin(), table.end(), pred);
  };
  if (!any([&](const Residual& r) { return r.family.generation == f.generation; })) {
    out.push_back({"gpu", fmt::format("no validation case on {} GPUs ({})", f.generation,
                                      s.cluster.gpu.name)});
  } else if (use) {
    if (auto flag = mfu_flag(f, to_string(s.training.precision), use->mfu, use->hfu, table))
      out.push_back(*flag);
  }
  // Near capacity: above 1 - training.memory.margin of it (kMemoryNearFull by default).
  const double near_full = 1.0 - s.training.memory.margin;
  if (memory_fraction > near_full) {
    out.push_back({"memory", memory_fraction > 1.0
                                 ? fmt::format("memory {} of capacity: over it in the memory model",
                                               pct(memory_fraction))
                                 : fmt::format("memory {} of capacity, above {}: within the memory "
                                               "model's unmeasured terms of the limit",
                                               pct(memory_fraction), pct(near_full))});
  }
  int max_cp = 1;
  for (const Residual& r : table) max_cp = std::max(max_cp, r.cp);
  if (p.cp > max_cp) {
    out.push_back({"cp", max_cp == 1 ? fmt::format("context parallelism (cp {}): no validation "
                                                   "case uses it",
                                                   p.cp)
                                     : fmt::format("context parallelism cp {}: above every "
                                                   "validation case's (largest cp {})",
                                                   p.cp, max_cp)});
  }
  // How the keys and values travel (a ring of exchanges or one all-gather) is a different
  // timing path; checked only where some case has context parallelism at all.
  const std::string cp_comm = to_string(p.cp_comm);
  if (p.cp > 1 && max_cp > 1 &&
      !any([&](const Residual& r) { return r.cp > 1 && r.cp_comm == cp_comm; })) {
    out.push_back({"cp_comm", fmt::format("context parallelism by {} (parallelism.cp_comm): no "
                                          "validation case exchanges keys and values that way",
                                          cp_comm)});
  }
  const std::string schedule = schedule_label(p);
  if (schedule != "-" && !any([&](const Residual& r) { return r.schedule == schedule; })) {
    out.push_back(
        {"schedule", fmt::format("pipeline schedule {}: no validation case runs it", schedule)});
  }
  const std::string layout = layout_label(p);
  if (layout != "-" && !any([&](const Residual& r) { return r.layout == layout; })) {
    out.push_back({"layout", fmt::format("pipeline layout with {}: no validation case runs one",
                                         layout == "mtp-stage"
                                             ? "a multi-token-prediction stage of its own"
                                             : "an empty virtual stage")});
  }
  if (f.kind == "moe" && !any([](const Residual& r) { return r.family.kind == "moe"; })) {
    out.push_back({"moe", "mixture of experts / expert parallelism: no validation case uses it"});
  }
  if (p.zero_stage == 2 && !any([](const Residual& r) { return r.zero_stage == 2; })) {
    out.push_back({"zero2", "ZeRO-2 (sharded gradients): no validation case uses it"});
  }
  if (p.zero_stage >= 3 && !any([](const Residual& r) { return r.zero_stage >= 3; })) {
    out.push_back({"zero3", fmt::format("ZeRO-3 ({}, sharded parameters): no validation case "
                                        "uses it",
                                        to_string(p.fsdp_impl))});
  }
  // torchtitan's FSDP2 under a pipeline reduces once a step from unsharded gradients
  // (fsdp_pipeline_deferred): checked only by a PyTorch FSDP case with ZeRO-3 and a
  // pipeline schedule.
  if (fsdp_pipeline_deferred(p, s.training) &&
      any([](const Residual& r) { return r.zero_stage >= 3; }) &&
      !any([](const Residual& r) {
        return r.family.framework == "PyTorch FSDP" && r.zero_stage >= 3 && r.schedule != "-";
      })) {
    out.push_back({"zero3", "FSDP2 under a pipeline (torchtitan's: one reduce-scatter a step "
                            "from unsharded gradients): no validation case runs it"});
  }
  if (auto flag = alignment_flag(s)) out.push_back(*flag);
  return out;
}

}  // namespace orrery
