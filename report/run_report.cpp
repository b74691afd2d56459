#include "report/run_report.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>

#include <optional>
#include <set>

#include "core/number_format.h"
#include "model/attention_mask.h"
#include "model/layer_pass.h"
#include "model/moe_routing.h"
#include "model/training_run.h"
#include "model/workload.h"
#include "calibrate/compute_model.h"
#include "report/band.h"
#include "report/check_report.h"
#include "report/memory_json.h"
#include "model/pipeline.h"
#include "scenario/pipeline_layout.h"
#include "simulator/fsdp_gradient_passes.h"
#include "simulator/step.h"

namespace orrery {
namespace {

using ordered_json = nlohmann::ordered_json;

struct Part {
  const char* key;
  const char* label;
  Seconds time;
};

std::vector<Part> parts(const Breakdown& b) {
  return {{"compute", "compute", b.compute},
          {"recompute", "recompute", b.recompute},
          {"tp_exposed", "TP comm exposed", b.tp_exposed},
          {"ep_exposed", "EP comm exposed", b.ep_exposed},
          {"cp_exposed", "CP comm exposed", b.cp_exposed},
          {"pp_exposed", "PP comm exposed", b.pp_exposed},
          {"dp_exposed", "DP comm exposed", b.dp_exposed},
          {"bubble", "pipeline bubble", b.bubble},
          {"optimizer", "optimizer", b.optimizer},
          {"offload_exposed", "offload exposed", b.offload_exposed}};
}

ordered_json breakdown_json(const Breakdown& b) {
  ordered_json j;
  for (const Part& p : parts(b)) j[p.key] = p.time.value();
  return j;
}

double link_bytes(const StepResult& r, LinkClass c) {
  auto it = r.bytes_by_link_class.find(c);
  return it == r.bytes_by_link_class.end() ? 0.0 : it->second;
}

ordered_json run_json(const RunEstimate& e) {
  ordered_json j;
  j["steps"] = e.steps;
  j["skipped_steps"] = e.skipped_steps;
  j["samples"] = e.samples;
  j["tokens"] = e.tokens;
  j["time_to_train_s"] = e.time.value();
  j["gpu_hours"] = e.gpu_hours;
  j["usd"] = e.usd ? ordered_json(*e.usd) : ordered_json(nullptr);
  j["gpu_draw_w"] = e.gpu_draw.value();
  j["cluster_power_w"] = e.cluster_power.value();
  j["energy_kwh"] = e.energy_kwh;
  j["co2_kg"] = e.co2_kg ? ordered_json(*e.co2_kg) : ordered_json(nullptr);
  j["peak_facility_power_w"] = e.peak_power.value();
  if (e.tco) {
    const Tco& t = *e.tco;
    j["tco"] = {{"switches", t.fabric.switches},
                {"transceivers", t.fabric.transceivers},
                {"cables", t.fabric.cables},
                {"nodes_usd", t.nodes_usd},
                {"network_usd", t.network_usd},
                {"capex_usd", t.capex_usd},
                {"per_year_usd", t.per_year_usd},
                {"capex_run_usd", t.capex_run_usd},
                {"facility_run_usd", t.facility_run_usd},
                {"electricity_run_usd", t.electricity_run_usd},
                {"run_usd", t.run_usd}};
  } else {
    j["tco"] = nullptr;
  }
  if (e.critical) {
    j["critical_batch"] = {{"b_noise_samples", e.critical->b_noise},
                           {"e_min_samples", e.critical->e_min},
                           {"s_min_steps", e.critical->s_min},
                           {"steps_factor", e.critical->steps_factor},
                           {"examples_factor", e.critical->examples_factor}};
  }
  if (e.goodput) {
    const Goodput& g = *e.goodput;
    j["goodput"] = {{"job_mtbf_s", g.job_mtbf.value()},
                    {"checkpoint_bytes", g.checkpoint.value()},
                    {"checkpoint_time_s", g.checkpoint_time.value()},
                    {"interval_s", g.interval.value()},
                    {"young_interval_s", g.young_interval.value()},
                    {"daly_interval_s", g.daly_interval.value()},
                    {"wall_time_s", g.wall_time.value()},
                    {"interruptions", g.interruptions},
                    {"goodput", g.goodput},
                    {"gpu_hours", g.gpu_hours},
                    {"usd", g.usd ? ordered_json(*g.usd) : ordered_json(nullptr)}};
  }
  j["advice"] = e.advice;
  return j;
}

// A fault in one line, as the user wrote it.
std::string describe_fault(const FaultSpec& f) {
  std::string what;
  switch (f.kind) {
    case FaultSpec::Kind::straggler:
      what = fmt::format("straggler: stage {} computes at {:g} x", f.stage, f.factor);
      break;
    case FaultSpec::Kind::slow_link: {
      const std::string at = f.link == FaultSpec::Link::nic     ? fmt::format("node {}", f.node)
                             : f.link == FaultSpec::Link::spine ? fmt::format("leaf {}", f.leaf)
                                                                : fmt::format("GPU {}", f.gpu);
      what = fmt::format("slow {} links of {} at {:g} x", to_string(f.link), at, f.factor);
      break;
    }
    case FaultSpec::Kind::failed_link:
      what = f.link == FaultSpec::Link::nic
                 ? fmt::format("NIC {} of node {} failed, its GPUs' traffic through a peer's "
                               "NIC (PXN)",
                               f.nic, f.node)
                 : fmt::format("{} of leaf {}'s spine uplinks failed", f.lost, f.leaf);
      break;
    case FaultSpec::Kind::failed_node:
      what = fmt::format("node {} failed", f.node);
      break;
  }
  if (f.from.value() > 0 || f.until) {
    what += fmt::format(", from {}{}", format_seconds(f.from),
                        f.until ? " until " + format_seconds(*f.until) : std::string());
  }
  return what + " (" + f.where + ")";
}

// Where the faults' time went: the parts of each stage's breakdown that grew the most.
std::vector<std::string> absorbed_by(const StepResult& r) {
  struct Growth {
    double seconds;
    std::string what;
  };
  std::vector<Growth> g;
  for (size_t i = 0; i < r.stages.size() && i < r.baseline_stages.size(); ++i) {
    const std::vector<Part> now = parts(r.stages[i].breakdown);
    const std::vector<Part> before = parts(r.baseline_stages[i]);
    for (size_t k = 0; k < now.size(); ++k) {
      const double d = (now[k].time - before[k].time).value();
      if (d > 1e-3 * r.baseline_step_time->value())
        g.push_back({d, fmt::format("stage {} {}", i, now[k].label)});
    }
  }
  std::stable_sort(g.begin(), g.end(),
                   [](const Growth& a, const Growth& b) { return a.seconds > b.seconds; });
  std::vector<std::string> out;
  for (size_t i = 0; i < g.size() && i < 4; ++i)
    out.push_back(fmt::format("{} +{}", g[i].what, format_seconds(Seconds(g[i].seconds))));
  return out;
}

// The prediction's band and validated-region flags from the shipped residuals.
struct Assessment {
  Band band;
  std::vector<RegionFlag> flags;
};

Assessment assess(const Scenario& s, const StepResult& r, const ComputeModel* model) {
  const std::vector<Residual>& table = shipped_residuals();
  const MemoryReport& m = r.figures.memory;
  const double memory_fraction = m.worst().memory.total().value() / m.capacity.value();
  Band band = band_for(family_of(s), table);
  if (model && model->band_half_width() > 0 && band.cases > 0) {
    band.added = model->band_half_width();
    band.added_basis = model->band_basis();
    band.e_min -= band.added;
    band.e_max += band.added;
  }
  return {band, region_flags(s, memory_fraction, Utilisation{r.mfu, r.hfu}, table)};
}

std::string flag_codes(const std::vector<RegionFlag>& flags) {
  std::string out;
  for (const RegionFlag& f : flags) out += (out.empty() ? "" : ";") + f.code;
  return out;
}

ordered_json band_json(const Assessment& a, const StepResult& r) {
  const Band& b = a.band;
  ordered_json j;
  j["family"] = {{"gpu_generation", b.family.generation},
                 {"framework", b.family.framework},
                 {"parallel_kind", b.family.kind}};
  j["family_cases"] = b.family_cases;
  j["basis"] = b.basis;
  j["cases"] = b.cases;
  j["step_time_error_min"] = b.e_min;
  j["step_time_error_max"] = b.e_max;
  if (b.added > 0) j["projection_half_width"] = b.added;
  // Measured = predicted / (1 + e): the fast end at e_max, the slow end at e_min.
  j["step_time_s"] = {{"low", r.step_time.value() * b.fast()},
                      {"high", r.step_time.value() * b.slow()}};
  j["tokens_per_s"] = {{"low", r.tokens_per_s / b.slow()}, {"high", r.tokens_per_s / b.fast()}};
  j["mfu"] = {{"low", r.mfu / b.slow()}, {"high", r.mfu / b.fast()}};
  return j;
}

ordered_json region_json(const Assessment& a) {
  ordered_json flags = ordered_json::array();
  for (const RegionFlag& f : a.flags) flags.push_back({{"code", f.code}, {"text", f.text}});
  return {{"inside", a.flags.empty()}, {"outside_because", flags}};
}

}  // namespace

std::string render_run_json(const Scenario& s, const Prediction& prediction) {
  const StepResult& r = prediction.step;
  ordered_json j;
  j["scenario"] = s.name;
  j["step_time_s"] = r.step_time.value();
  j["tokens_per_s"] = r.tokens_per_s;
  j["tokens_per_s_per_gpu"] = r.tokens_per_s / s.cluster.gpus();
  j["tflops_per_gpu_model"] = r.tflops_model_per_gpu;
  j["tflops_per_gpu_hardware"] = r.tflops_hardware_per_gpu;
  j["mfu"] = r.mfu;
  j["hfu"] = r.hfu;
  j["peak_flop_per_s"] = r.peak.value();
  j["critical_stage"] = r.critical_stage;
  j["breakdown_s"] = breakdown_json(r.stages.at(r.critical_stage).breakdown);
  ordered_json stages = ordered_json::array();
  for (const StageReport& st : r.stages) {
    stages.push_back({{"stage", st.stage},
                      {"utilization", st.utilization},
                      {"breakdown_s", breakdown_json(st.breakdown)}});
  }
  j["stages"] = stages;
  j["bytes_per_link_class"] = {{"nvlink", link_bytes(r, LinkClass::nvlink)},
                               {"nic", link_bytes(r, LinkClass::nic)},
                               {"spine", link_bytes(r, LinkClass::spine)}};
  const StageMemory& w = r.figures.memory.worst();
  j["memory_per_gpu_bytes"] = detail::memory_json(w.memory);
  j["memory_capacity_bytes"] = r.figures.memory.capacity.value();
  j["fits"] = r.figures.memory.fits;
  j["near_capacity"] = r.figures.memory.near_capacity;
  j["params_total"] = r.figures.params_total;
  j["flops_per_step_model"] = r.figures.model_flops.value();
  j["flops_per_step_hardware"] = r.figures.hardware_flops.value();
  if (const auto& sn = r.slow_nodes) {
    j["slow_nodes"] = {{"fraction", s.cluster.slow_nodes.fraction},
                       {"speed", s.cluster.slow_nodes.speed},
                       {"machines", slow_node_machines(s.cluster)},
                       {"probability", sn->probability},
                       {"stage", sn->stage},
                       {"step_time_with_s", sn->with.value()},
                       {"step_time_without_s", sn->without.value()}};
  }
  if (!s.faults.empty()) {
    ordered_json f;
    ordered_json list = ordered_json::array();
    for (const FaultSpec& fault : s.faults) list.push_back(describe_fault(fault));
    f["faults"] = list;
    f["baseline_step_time_s"] = r.baseline_step_time ? r.baseline_step_time->value() : 0.0;
    f["stalled_at_s"] = r.stalled_at ? ordered_json(r.stalled_at->value()) : ordered_json(nullptr);
    f["absorbed_by"] = r.stalled_at ? std::vector<std::string>{} : absorbed_by(r);
    j["faults"] = f;
  }
  if (!r.stalled_at) {
    const Assessment a = assess(s, r, prediction.hardware.model.get());
    j["band"] = band_json(a, r);
    j["validated_region"] = region_json(a);
  }
  if (const auto assumed = assumed_figures(s.cluster); !assumed.empty()) j["assumed"] = assumed;
  if (r.stalled_at) j["step_time_s"] = nullptr;
  if (const auto& e = prediction.run; e && !r.stalled_at) j["run"] = run_json(*e);
  j["simulation"] = {{"tasks", r.tasks}, {"events", r.events}, {"compute_model", r.compute_model}};
  j["notes"] = r.notes;
  return j.dump(2) + "\n";
}

std::string render_run_csv(const Scenario& s, const Prediction& prediction) {
  const StepResult& r = prediction.step;
  const Breakdown& b = r.stages.at(r.critical_stage).breakdown;
  std::string header =
      "scenario,gpus,step_time_s,tokens_per_s,tflops_per_gpu_model,tflops_per_gpu_hardware,"
      "mfu,hfu";
  std::string row;
  std::string name = s.name;
  for (char& c : name)
    if (c == ',' || c == '\n') c = ';';
  row = fmt::format("{},{},{:.9g},{:.9g},{:.9g},{:.9g},{:.9g},{:.9g}", name, s.cluster.gpus(),
                    r.step_time.value(), r.tokens_per_s, r.tflops_model_per_gpu,
                    r.tflops_hardware_per_gpu, r.mfu, r.hfu);
  for (const Part& p : parts(b)) {
    header += fmt::format(",{}_s", p.key);
    row += fmt::format(",{:.9g}", p.time.value());
  }
  header += ",memory_per_gpu_bytes,fits,nvlink_bytes,nic_bytes,spine_bytes";
  row += fmt::format(",{:.0f},{},{:.9g},{:.9g},{:.9g}",
                     r.figures.memory.worst().memory.total().value(),
                     r.figures.memory.fits ? "true" : "false", link_bytes(r, LinkClass::nvlink),
                     link_bytes(r, LinkClass::nic), link_bytes(r, LinkClass::spine));
  // The band (measured = predicted / (1 + e)) and the validated region's flag codes.
  {
    const Assessment a = assess(s, r, prediction.hardware.model.get());
    const Band& band = a.band;
    std::string basis = band.basis;
    for (char& c : basis)
      if (c == ',') c = ';';
    header +=
        ",band_basis,band_cases,step_time_low_s,step_time_high_s,mfu_low,mfu_high,"
        "outside_validated_region";
    row += fmt::format(",{},{},{:.9g},{:.9g},{:.9g},{:.9g},{}", basis, band.cases,
                       r.step_time.value() * band.fast(), r.step_time.value() * band.slow(),
                       r.mfu / band.slow(), r.mfu / band.fast(), flag_codes(a.flags));
  }
  // Whole-run columns, empty without training.target (and usd / co2 without a price or
  // a grid intensity).
  header += ",steps,time_to_train_s,gpu_hours,usd,energy_kwh,co2_kg\n";
  if (const auto& e = prediction.run) {
    row += fmt::format(",{:.0f},{:.9g},{:.9g},{},{:.9g},{}\n", e->steps, e->time.value(),
                       e->gpu_hours, e->usd ? fmt::format("{:.9g}", *e->usd) : "",
                       e->energy_kwh, e->co2_kg ? fmt::format("{:.9g}", *e->co2_kg) : "");
  } else {
    row += ",,,,,,\n";
  }
  return header + row;
}

std::string render_stack_explanation(const Scenario& s) {
  const StackSpec& k = s.training.stack;
  auto by = [&](const std::string& key, const char* otherwise = "the preset's default") {
    return s.origin.count(key) ? "set in the file" : otherwise;
  };
  std::string o = "\nexplain (training stack: the kernels of the element-wise chains)\n";
  o += fmt::format("  {:<25}{} ({})\n", "preset", to_string(k.preset),
                   s.origin.count("training.stack") ? "set in the file" : "default");
  o += fmt::format("  {:<25}{}\n", "torch.compile", k.compile ? "on (Inductor)" : "off");
  if (s.model.is_transformer() && s.model.position_embedding == PositionEmbedding::rope) {
    const char* rope = k.rope == StackSpec::Rope::fused
                           ? "fused: one kernel a tensor, 2e bytes an element each way"
                       : k.rope == StackSpec::Rope::rotate_half
                           ? "rotate_half: 5 kernels a tensor, 10e bytes an element each way"
                       : k.rope == StackSpec::Rope::complex
                           ? "complex: 3 kernels a tensor, 16 + 2e bytes an element each way"
                           : "rotation_matrix: 4 kernels a tensor, 32 + 2e bytes an element "
                             "each way";
    o += fmt::format("  {:<25}{} ({})\n", "RoPE", rope, by("training.stack.rope"));
  }
  // The unfused kernels model/transformer.cpp (add_dense_mlp) times for this model.
  const bool swiglu = s.model.activation == Activation::swiglu;
  const std::string unfused =
      swiglu ? (s.model.bias ? "unfused: bias add, silu and the product as kernels of their own"
                             : "unfused: silu and the product as kernels of their own")
             : (s.model.bias ? "unfused: bias add and gelu as kernels of their own"
                             : "unfused: gelu without a bias is one kernel either way");
  o += fmt::format("  {:<25}{} ({})\n", "activation",
                   k.activation_fusion ? "fused: one kernel (bias and activation)" : unfused,
                   by("training.stack.activation_fusion"));
  const bool ce_set = s.origin.count("training.cross_entropy_fusion") ||
                      s.origin.count("training.stack.cross_entropy_fusion");
  const bool te_ce = s.training.te_cross_entropy();
  o += fmt::format("  {:<25}{} ({})\n", "cross-entropy",
                   te_ce ? "fused, Transformer Engine's kernels: the gradient written over the "
                           "logits in the forward (10 bytes a logit in 16 bits)"
                   : s.training.cross_entropy_fusion ? "fused (28 bytes a logit in 16 bits)"
                                                     : "unfused (52 bytes a logit in 16 bits)",
                   ce_set ? "set in the file" : "the preset's default");
  o += fmt::format("  {:<25}{} ({})\n", "cross-entropy chunks",
                   k.cross_entropy_chunks == 1
                       ? std::string("1: the micro-batch's logits at once")
                       : fmt::format("{}: one chunk's logits and fp32 softmax live at a time",
                                     k.cross_entropy_chunks),
                   by("training.stack.cross_entropy_chunks"));
  o += fmt::format("  {:<25}{} ({})\n", "optimizer step",
                   k.optimizer == StackSpec::OptimizerKernels::fused
                       ? "fused: one multi-tensor kernel"
                   : k.optimizer == StackSpec::OptimizerKernels::foreach
                       ? "foreach: torch._foreach_* passes over every parameter (7, AdamW 8)"
                       : "per_parameter: the foreach steps as kernels of their own for each "
                         "parameter tensor (7, AdamW 8, a tensor)",
                   by("training.stack.optimizer"));
  if (s.model.is_transformer()) {
    o += fmt::format(
        "  {:<25}{} ({})\n", "norm",
        k.norm == StackSpec::NormKernels::fused
            ? "fused: one kernel, 2e bytes an element forward, 3e backward"
            : "unfused: upcast, pow, mean, + eps and rsqrt, product, cast back and the "
              "weight's product as kernels of their own, 28 + 4e bytes an element forward, "
              "76 + 8e backward",
        by("training.stack.norm"));
    if (s.training.flash_attention) {
      o += fmt::format(
          "  {:<25}{} ({})\n", "attention",
          k.attention == StackSpec::AttentionKernel::flash2
              ? std::string("flash2: FlashAttention-2's rate (the GPU's attention_efficiency)")
          : k.attention == StackSpec::AttentionKernel::cudnn
              ? std::string("cudnn: cuDNN's fused flash attention, Transformer Engine's "
                            "FusedAttention (the GPU's cudnn_attention_efficiency)")
              : fmt::format("flash1: the first FlashAttention (flash-attn 1.x, the 2022 Triton "
                            "kernel), {} of FlashAttention-2's rate",
                            kFlash1OverFlash2),
          by("training.stack.attention"));
    } else if (s.model.position_embedding == PositionEmbedding::alibi) {
      o += fmt::format("  {:<25}{}\n", "attention",
                       "unfused, ALiBi: baddbmm into the broadcast bias copies it into the "
                       "score tensor, which the score GEMM reads back (2e bytes a score "
                       "more, forward)");
    } else if (k.eager_pytorch()) {
      // model/transformer.cpp, attn.scale_mask.
      o += fmt::format("  {:<25}{}\n", "attention",
                       "unfused, eager: the scores' scaling and the mask as kernels of their "
                       "own before the softmax (4e bytes a score forward, 2e backward)");
    }
    if (!s.training.flash_attention && !k.pytorch_native()) {
      // model/transformer.cpp (softmax_fallback); model/attention_mask.h.
      const ParallelismSpec& p = s.parallelism;
      const bool falls_back =
          masked_softmax_falls_back(s.model, s.training, p.microbatch, p.tp, p.cp);
      const char* torch_path =
          "Megatron's PyTorch path: fp32 cast, scale, mask, softmax and cast back as kernels "
          "of their own, 32 + 2e bytes a score forward, 36 + 2e backward, the fp32 output kept "
          "(and its 16-bit cast without dropout)";
      const char* kernel_path =
          "Megatron's fused scale-mask-softmax kernel, 2e bytes a score forward, 3e backward";
      const std::string how =
          k.masked_softmax == StackSpec::MaskedSoftmax::fused ? fmt::format("fused: {}", kernel_path)
          : k.masked_softmax == StackSpec::MaskedSoftmax::torch
              ? fmt::format("torch: {}", torch_path)
              : fmt::format("swapped_check: the kernel only where its availability check with "
                            "get_batch_per_block's arguments out of order passes (Megatron-LM "
                            "40becfc9; BigScience's Megatron-DeepSpeed until 2022-03-06); at {} "
                            "x {} heads a rank it {}",
                            p.microbatch, s.model.heads / p.tp,
                            falls_back ? fmt::format("fails: {}", torch_path)
                                       : fmt::format("passes: {}", kernel_path));
      o += fmt::format("  {:<25}{} ({})\n", "masked softmax", how,
                       by("training.stack.masked_softmax"));
    }
    o += fmt::format(
        "  {:<25}{} ({})\n", "projections",
        k.projections == StackSpec::Projections::fused
            ? "fused: one QKV GEMM (and one gate-and-up GEMM)"
            : "separate: q, k, v (and SwiGLU gate, up) GEMMs over one input; backward adds "
              "their input gradients, 3e bytes an element per extra GEMM",
        by("training.stack.projections"));
  }
  if (s.parallelism.tp > 1) {
    const bool ub = s.training.tp_comm_overlap && s.parallelism.sequence_parallel;
    const char* reduction = s.parallelism.sequence_parallel ? "reduce-scatter" : "all-reduce";
    o += fmt::format(
        "  {:<25}{} ({})\n", "TP input gradients",
        ub ? fmt::format("under the weight-gradient GEMM: Transformer Engine's bulk userbuffer "
                         "{} (training.tp_comm_overlap)",
                         reduction)
        : k.tp_dgrad_overlap
            ? fmt::format("async: a column-parallel GEMM's input-gradient {} runs under its "
                          "weight-gradient GEMM",
                          reduction)
            : fmt::format("after both GEMMs: a column-parallel GEMM's input-gradient {} waited "
                          "for before the next op",
                          reduction),
        ub ? std::string("set in the file") : by("training.stack.tp_dgrad_overlap"));
  }
  // DeepSpeed's overlap defaults (scenario/validate_stack.cpp, complete_stack).
  const bool deepspeed = k.preset == StackSpec::Preset::deepspeed ||
                         s.parallelism.pipeline_engine == PipelineEngine::deepspeed;
  // ZeRO-3's units keep their own passes (the FSDP lines); DeepSpeed's defaults match
  // orrery's there.
  const bool stage3 = s.parallelism.zero_stage >= 3 || s.parallelism.fsdp;
  if (deepspeed && !stage3 && s.parallelism.shard_group() > 1) {
    const bool zero2 = s.parallelism.zero_stage == 2;
    o += fmt::format(
        "  {:<25}{} ({})\n", "gradient reduction",
        zero2 ? (s.training.overlap_grad_reduce
                     ? "in every micro-batch's backward, on its own stream (overlap_comm on)"
                     : "in every micro-batch's backward, on the compute stream: the compute "
                       "after each bucket waits for it (overlap_comm off)")
        : s.training.overlap_grad_reduce ? "during the last backward (overlap_comm on)"
                                         : "after the last backward",
        by("training.overlap_grad_reduce", "DeepSpeed's default"));
    if (s.parallelism.zero_stage == 1 || s.parallelism.zero_stage == 2) {
      o += fmt::format("  {:<25}{} ({})\n", "updated-weight gather",
                       s.training.overlap_param_gather
                           ? "hidden under the next forward"
                           : "inside the optimizer step, before the next forward",
                       by("training.overlap_param_gather", "DeepSpeed's default"));
    }
  }
  // The Megatron-engine gradient buffer's buckets (simulator/step_passes.h,
  // chunk_bucket_params and bucket_per_layer).
  const ParallelismSpec& par = s.parallelism;
  if (s.training.grad_buckets && par.pipeline_engine == PipelineEngine::megatron &&
      par.zero_stage <= 1 && par.dp > 1) {
    const TrainingSpec& t = s.training;
    std::string how;
    if (*t.grad_buckets == TrainingSpec::GradBuckets::apex_distributed_adam) {
      how = par.virtual_pipeline_stages > 1
                ? "Apex DistributedFusedAdam (NeMo 1.x): one bucket a model chunk, every stage"
                : "Apex DistributedFusedAdam (NeMo 1.x): one bucket a transformer layer, the "
                  "stage's first layer's also taking the embedding";
    } else if (t.overlap_param_gather_with_optimizer_step) {
      how = "Megatron-Core: one bucket a model chunk; chunk 0's optimizer steps first and its "
            "parameters are gathered under the other chunks' step "
            "(overlap_param_gather_with_optimizer_step)";
    } else if (!t.overlap_grad_reduce) {
      how = "Megatron-Core: one bucket a model chunk (no overlap_grad_reduce, no bucket size)";
    } else {
      const double size = t.grad_bucket_params.value_or(megatron_default_bucket_params(s));
      how = fmt::format("Megatron-Core: {:.0f} parameters a bucket on pipeline rank 0's first model "
                        "chunk, every other chunk one bucket",
                        size);
    }
    o += fmt::format("  {:<25}{} ({})\n", "gradient buckets", how,
                     by("training.grad_buckets", "the Megatron engine's default"));
  }
  const bool megatron = k.preset == StackSpec::Preset::megatron_core ||
                        k.preset == StackSpec::Preset::nemo;
  const bool unsharded_torch = k.pytorch_native() && s.parallelism.zero_stage == 0;
  if (megatron || unsharded_torch) {
    const StackSpec::GradAccumulation g = k.gradient_accumulation;
    // As scenario/validate_stack.cpp complete_stack: autograd's default where param.grad is the
    // gradient the optimizer reads, in the parameters' format.
    const Precision pr = s.training.precision;
    const double param_bytes = pr == Precision::fp32 || pr == Precision::tf32 ? 4.0 : 2.0;
    const bool grad_is_param_format = bytes_per_value(s.training.gradient_dtype) == param_bytes;
    o += fmt::format("  {:<25}{} ({})\n", "gradient accumulation",
                     g == StackSpec::GradAccumulation::fused && !megatron && !grad_is_param_format
                         ? "not counted: param.grad is not the gradient the optimizer reads "
                           "(gradient_dtype differs from the parameters' format)"
                     : g == StackSpec::GradAccumulation::fused && !megatron
                         ? "fused: not counted (no accumulation pass)"
                     : g == StackSpec::GradAccumulation::fused ? "fused into the weight-gradient GEMM"
                     : g == StackSpec::GradAccumulation::hook
                         ? "hook: main_grad.add_(grad) after every micro-batch's backward"
                         : "autograd: param.grad += grad from the second micro-batch on",
                     s.origin.count("training.stack.gradient_accumulation") || megatron
                         ? by("training.stack.gradient_accumulation")
                         : std::string("a PyTorch-native stack without sharding"));
  }
  if (megatron) {
    if (s.model.moe) {
      // Which of Megatron-Core's token dispatchers runs the MoE layers (docs/model.md,
      // "MoE routing and exchange", Ops).
      const bool flex = s.parallelism.ep_alltoall == ParallelismSpec::Alltoall::hierarchical;
      const int local = s.model.moe->experts / std::max(1, s.parallelism.ep);
      o += fmt::format(
          "  {:<25}{} ({})\n", "MoE token dispatcher",
          flex ? std::string("flex (DeepEP / HybridEP): the received rows come in expert order")
          : !megatron_alltoall_dispatcher(k.preset, s.parallelism.ep_alltoall)
              ? std::string("alltoall outside Megatron-Core: no sort of the received rows")
          : local > 1
              ? fmt::format("alltoall: the received rows sorted by local expert ({} a rank) "
                            "and put back in rank order before the combine, a copy of "
                            "every row each, forward and backward",
                            local)
              : std::string("alltoall: one local expert, no sort of the received rows"),
          "parallelism.ep_alltoall");
      // The gathered map, zero unless the exchange is HybridEP's (model/layer_pass.cpp).
      const double map = message_sizes(s).ep_routing_map;
      if (map > 0) {
        o += fmt::format(
            "  {:<25}every forward dispatch first all-gathers the routing map over the EP "
            "group (NCCL, {:.2f} MiB gathered; Megatron-Core passes HybridEP no cached "
            "handle); the combine and the backward reuse it ({})\n",
            "HybridEP preprocessing", map / 1048576.0, "parallelism.ep_backend");
      }
    }
  }
  // The dtype-converting copies the chains above run as kernels of their own (the unfused
  // norm's and the complex / rotation-matrix RoPE's x.float() and type_as, each way), and
  // their rate (calibrate/compute_model.cpp, cluster.gpu.cast_efficiency).
  const bool rope_casts = s.model.is_transformer() &&
                          s.model.position_embedding == PositionEmbedding::rope &&
                          (k.rope == StackSpec::Rope::complex ||
                           k.rope == StackSpec::Rope::rotation_matrix);
  const bool norm_casts = s.model.is_transformer() && k.norm == StackSpec::NormKernels::unfused;
  if (rope_casts || norm_casts) {
    const GpuSpec& g = s.cluster.gpu;
    o += fmt::format(
        "  {:<25}{}{}{} as kernels of their own: {} ({})\n", "dtype casts",
        norm_casts ? "the norm's upcast and cast back" : "",
        norm_casts && rope_casts ? ", " : "", rope_casts ? "RoPE's upcast and cast back" : "",
        g.cast_efficiency
            ? fmt::format("PyTorch's dynamic-cast copy at {:.0f} GB/s (HBM x cast_efficiency {})",
                          g.memory_bandwidth.value() * *g.cast_efficiency / 1e9,
                          *g.cast_efficiency)
            : std::string("at the other kernels' rate (no cast_efficiency for this GPU)"),
        "cluster.gpu.cast_efficiency");
  }
  // GEMMs with an odd dimension (calibrate/compute_model.cpp, cluster.gpu.
  // unaligned_gemm_efficiency): named once each, in forward order (a CNN's too: its
  // fully connected layers are cuBLAS GEMMs, model/cnn.cpp).
  {
    std::vector<std::string> odd, partly;
    const Workload w = build_workload(s.model, s.training, shard_of(s.parallelism));
    for (const MisalignedGemm& g : misaligned_gemms(w)) {
      if (g.alignment == 1)
        odd.push_back(g.name);
      else if (g.alignment < aligned_elements(s.training.precision))
        partly.push_back(fmt::format("{} ({}-element)", g.name, g.alignment));
    }
    if (!partly.empty()) {
      o += fmt::format("  {:<25}{}: rows not 16-byte aligned, nor odd; timed as aligned: "
                       "no rate of cuBLAS's alignment-2 and -4 kernels is measured "
                       "(docs/model.md, \"GEMMs with an odd dimension\")\n",
                       "part-aligned GEMMs", fmt::join(partly, ", "));
    }
    if (!odd.empty()) {
      const double rate = unaligned_gemm_rate(s);
      o += fmt::format(
          "  {:<25}{}: a dimension is odd; {} ({})\n", "odd-dimension GEMMs",
          fmt::join(odd, ", "),
          rate > 0
              ? fmt::format("cuBLAS's alignment-1 kernels at {:.1f} TFLOP/s (16-bit peak x "
                            "unaligned_gemm_efficiency {})",
                            rate / 1e12, *s.cluster.gpu.unaligned_gemm_efficiency)
              : std::string("timed as aligned: no unaligned_gemm_efficiency for this GPU and "
                            "precision"),
          "cluster.gpu.unaligned_gemm_efficiency");
      // Megatron-LM pads the vocabulary (megatron_padded_vocab, scenario/spec.h).
      const bool megatron_lm = k.preset == StackSpec::Preset::megatron_core ||
                               k.preset == StackSpec::Preset::deepspeed;
      if (megatron_lm && s.model.vocab % 2 != 0) {
        const std::int64_t padded =
            megatron_padded_vocab(s.model.vocab, kMegatronVocabDivisor * s.parallelism.tp);
        o += fmt::format(
            "  {:<25}Megatron-LM would pad the {}-token vocabulary to {} (a multiple of "
            "--make-vocab-size-divisible-by {} x tp {}); orrery takes model.vocab as written: "
            "write {} if the run used Megatron-LM's tokenizer (orrery import does)\n",
            "", s.model.vocab, padded, kMegatronVocabDivisor, s.parallelism.tp, padded);
      }
    }
  }
  o += fmt::format("  {:<25}{} ({})\n", "host overhead",
                   k.host_overhead.value() > 0
                       ? fmt::format("{:.4g} us a kernel issued: a run of kernels between "
                                     "collectives takes at least kernels x this, an "
                                     "optimizer pass at least this",
                                     k.host_overhead.value() * 1e6)
                       : std::string("none (CUDA-graphed)"),
                   s.origin.count("training.stack.host_overhead") ? std::string("set in the file")
                   : s.cluster.gpu.host_overhead
                       ? "cluster.gpu.host_overhead, the system's host: " +
                             s.where("cluster.gpu.host_overhead").file
                       : std::string("the DGX H100 host's figure: the GPU gives no host_overhead"));
  // What the host time costs the step: the step simulated again with none (what capturing
  // the whole step in CUDA graphs would take, their own launch aside), both at the default
  // simulation options.
  if (k.host_overhead.value() > 0) {
    Scenario graphed = s;
    graphed.training.stack.host_overhead = Seconds(0);
    const double with = simulate_step(s).step_time.value();
    const double without = simulate_step(graphed).step_time.value();
    const double cost = with - without;
    o += fmt::format(
        "  {:<25}{}\n", "host-bound time",
        cost > 0
            ? fmt::format("{} of the {} step ({:.1f} %): with no host time per kernel (the whole "
                          "step in CUDA graphs, their own launch aside) it would take {}",
                          format_seconds(Seconds(cost)), format_seconds(Seconds(with)),
                          100 * cost / with, format_seconds(Seconds(without)))
            : std::string("none: every run of kernels outlasts the host's time to issue it"));
  }
  const std::vector<int> group = embedding_group_stages(s);
  const std::string group_text =
      group.size() > 1 ? fmt::format("Megatron's embedding group, pipeline ranks {}",
                                     fmt::join(group, ", "))
                       : std::string();
  if (const double tied = tied_embedding_allreduce_bytes(s); tied > 0) {
    o += fmt::format(
        "  {:<25}the last stage holds a copy of the table; once a step the copies' gradients "
        "are all-reduced ({:.2f} MiB a GPU, {}; {} the data-parallel reduction)\n",
        "tied embeddings", tied / 1048576.0,
        s.parallelism.pipeline_engine == PipelineEngine::deepspeed ? "DeepSpeed's ReduceTiedGrads"
                                                                   : group_text,
        s.parallelism.pipeline_engine == PipelineEngine::deepspeed ? "before" : "after");
  }
  if (const int rank = mtp_embedding_copy_rank(s.model, s.parallelism); rank >= 0) {
    const double bytes = embedding_group_allreduce_bytes(s);
    const bool shared = tied_embedding_copy(s) && rank == s.parallelism.pp - 1;
    o += fmt::format(
        "  {:<25}rank {} keeps a copy of the word embedding for the multi-token-prediction "
        "layers (Megatron-Core builds one on every model chunk that runs them){}\n",
        "MTP embedding", rank,
        shared ? std::string(": the tied weight the group sums, the output layer's own table "
                             "beside it unused (two tables on that rank)")
        : bytes > 0 ? fmt::format("; once a step its gradient is all-reduced with the others "
                                "({:.2f} MiB a GPU, {}; after the data-parallel reduction)",
                                bytes / 1048576.0, group_text)
                  : std::string("; its gradient's sum with the other copies is not timed under "
                                "ZeRO-3"));
  }
  if (const int ms = standalone_mtp_stage(s.parallelism.pipeline_layout); ms >= 0) {
    const ParallelismSpec& p = s.parallelism;
    const bool waits =
        !(p.schedule == PipelineSchedule::interleaved_1f1b && !s.training.overlap_p2p);
    o += fmt::format(
        "  {:<25}virtual stage {} (rank {}, chunk {}) runs the multi-token-prediction layers "
        "before the loss's stage (Megatron-Core's mtp_standalone); the transfers after it "
        "carry {} activations; every pipeline transfer first exchanges the tensor's shape with "
        "its peer{}\n",
        "MTP stage", ms, ms % p.pp, ms / p.pp, 1 + s.model.mtp_layers,
        waits ? ", which must have finished its previous block"
              : " (its time only: interleaved 1F1B without overlap_p2p, docs/simulator.md)");
  }
  if (s.parallelism.zero_stage >= 3) {
    o += fmt::format("  {:<25}{}\n", "ZeRO-3 / FSDP", to_string(s.parallelism.fsdp_impl));
    // Megatron-FSDP's hooks as the simulator follows them (simulator/pipeline_pass.cpp,
    // fsdp_block).
    if (s.parallelism.fsdp_impl == ParallelismSpec::FsdpImpl::megatron_fsdp) {
      const bool layer_units = s.parallelism.fsdp_unit == ParallelismSpec::FsdpUnit::layer;
      o += fmt::format(
          "  {:<25}{}a block's first gathers wait for the compute before them; each "
          "backward's reduce-scatters finish before the next block starts\n",
          "Megatron-FSDP hooks",
          layer_units ? "units are the transformer layers: the embedding and output layer "
                        "are gathered by the first forward and kept for the step; "
                      : "");
    }
    // The simulator's FSDP gradient kernels (simulator/gradient_passes.cpp), each timed
    // max(bytes / (HBM x memory_efficiency), kernel_launch) on the unit's backward.
    const std::vector<FsdpGradientPass> passes = fsdp_gradient_passes(s);
    if (!passes.empty()) {
      std::string list;
      for (const FsdpGradientPass& pass : passes)
        list += fmt::format("{}{} ({:.4g} B)", list.empty() ? "" : ", ", pass.what, pass.bytes);
      o += fmt::format("  {:<25}{}: bytes a gradient element of each unit, on its backward\n",
                       "FSDP gradient passes", list);
    }
    // FSDP2's copy-out of each gather (simulator/pipeline_pass.cpp, fsdp_block).
    if (s.parallelism.fsdp_impl == ParallelismSpec::FsdpImpl::fsdp2) {
      o += fmt::format("  {:<25}each unit's gathered weights copied from the all-gather buffer "
                       "into its parameters after every gather, read and written on the "
                       "compute stream\n",
                       "FSDP2 gather copy-out");
      // The output layer's unit (scenario/spec.h, reshard_output_after_forward).
      const ParallelismSpec& p = s.parallelism;
      const char* unit = s.model.tied_embeddings ? "the embedding, final norm and output layer"
                                                 : "the final norm and output layer";
      const std::string origin =
          s.origin.count("parallelism.reshard_output_after_forward") ? "set in the file"
          : s.training.stack.preset == StackSpec::Preset::fsdp2
              ? "training.stack fsdp2: torchtitan's default policy"
              : "as reshard_after_forward";
      o += fmt::format("  {:<25}{}: {} ({})\n", "FSDP2 output unit", unit,
                       p.reshard_output_after_forward
                           ? "freed after its forward and gathered again for its backward"
                           : "kept gathered from its forward to its backward",
                       origin);
    }
  }
  return o;
}

std::string render_run_table(const Scenario& s, const Prediction& prediction) {
  const StepResult& r = prediction.step;
  const ParallelismSpec& p = s.parallelism;
  std::string o;
  auto line = [&o](const std::string& k, const std::string& v) {
    o += fmt::format("  {:<24} {}\n", k, v);
  };
  o += fmt::format("scenario  {}\n", s.name);
  // cp and ep only where the split has them: tp x pp x cp x dp is the GPU count, and ep is
  // carved out of dp x cp (ParallelismSpec).
  std::string split = fmt::format("tp {} pp {}", p.tp, p.pp);
  if (p.cp > 1) split += fmt::format(" cp {}", p.cp);
  split += fmt::format(" dp {}", p.dp);
  if (p.ep > 1) split += fmt::format(" ep {}", p.ep);
  o += fmt::format("          {} x {}, {}{}, {} micro-batches of {}, {} {}\n\n",
                   s.cluster.gpus(), s.cluster.gpu.name, split,
                   p.virtual_pipeline_stages > 1
                       ? fmt::format(" (v = {})", p.virtual_pipeline_stages)
                       : std::string(),
                   p.microbatches(), p.microbatch, to_string(s.training.precision),
                   to_string(p.schedule));
  if (!s.faults.empty()) {
    o += "faults\n";
    for (const FaultSpec& f : s.faults) line("fault", describe_fault(f));
    if (r.stalled_at) {
      line("step", fmt::format("never completes: stalled at {} (the step takes {} without the "
                               "faults); synchronous training waits for the failed part until "
                               "the job restarts from its last checkpoint",
                               format_seconds(*r.stalled_at), format_seconds(*r.baseline_step_time)));
      return o;
    }
    const double base = r.baseline_step_time->value();
    line("impact", fmt::format("{} instead of {} ({:+.1f} %)", format_seconds(r.step_time),
                               format_seconds(*r.baseline_step_time),
                               100 * (r.step_time.value() - base) / base));
    for (const std::string& a : absorbed_by(r)) line("absorbed by", a);
    o += "\n";
  }
  o += "step\n";
  line("step time", format_seconds(r.step_time));
  line("throughput", fmt::format("{} {}/s ({:.0f} per GPU)", format_count(r.tokens_per_s),
                                 s.model.is_transformer() ? "tokens" : "images",
                                 r.tokens_per_s / s.cluster.gpus()));
  line("model FLOP/s per GPU",
       fmt::format("{:.1f} TFLOP/s, MFU {:.1f} % of {}", r.tflops_model_per_gpu, 100 * r.mfu,
                   format_flop_rate(r.peak)));
  line("hardware FLOP/s per GPU",
       fmt::format("{:.1f} TFLOP/s, HFU {:.1f} %", r.tflops_hardware_per_gpu, 100 * r.hfu));
  if (const auto& sn = r.slow_nodes) {
    line("slow nodes",
         fmt::format("the step time blends {:.1f} % that at least one of the {} machines is "
                     "slow (cluster.slow_nodes: {:g} % of machines at {:.3g} of the others' "
                     "speed): {} with one on stage {} (the busiest, the upper end), {} with none",
                     100 * sn->probability, slow_node_machines(s.cluster),
                     100 * s.cluster.slow_nodes.fraction, s.cluster.slow_nodes.speed,
                     format_seconds(sn->with), sn->stage, format_seconds(sn->without)));
  }

  {
    // Where published runs like this one were measured: the predicted value over the
    // family's validation residuals (report/band.h, docs/simulator.md).
    const Assessment a = assess(s, r, prediction.hardware.model.get());
    const Band& b = a.band;
    o += "\nprediction band (validation residuals)\n";
    line("family", b.describe());
    if (b.cases > 0) {
      line("measured step time",
           fmt::format("{} .. {} (step-time residuals {:+.1f} % .. {:+.1f} %)",
                       format_seconds(r.step_time * b.fast()),
                       format_seconds(r.step_time * b.slow()), 100 * b.e_min, 100 * b.e_max));
      line("measured MFU",
           fmt::format("{:.1f} % .. {:.1f} %", 100 * r.mfu / b.slow(), 100 * r.mfu / b.fast()));
      if (b.added > 0) line("band widened", b.added_basis);
    }
    if (a.flags.empty()) line("validated region", "inside");
    for (const RegionFlag& f : a.flags) line("outside region", f.text);
    if (const std::string assumed = assumed_line(s.cluster); !assumed.empty())
      line("assumed", assumed);
  }

  const Breakdown& b = r.stages.at(r.critical_stage).breakdown;
  o += fmt::format("\nbreakdown (stage {}, the busiest)\n", r.critical_stage);
  for (const Part& part : parts(b)) {
    if (part.time.value() <= 0 && std::string(part.key) != "compute") continue;
    o += fmt::format("  {:<24} {:>12}  {:5.1f} %\n", part.label, format_seconds(part.time),
                     100 * part.time.value() / r.step_time.value());
  }
  if (r.stages.size() > 1) {
    o += "\n  stage   utilization   compute      bubble   PP exposed   DP exposed\n";
    for (const StageReport& st : r.stages) {
      o += fmt::format("  {:>5}   {:>10.1f} %  {:>10}  {:>10}  {:>11}  {:>11}\n", st.stage,
                       100 * st.utilization, format_seconds(st.breakdown.compute),
                       format_seconds(st.breakdown.bubble),
                       format_seconds(st.breakdown.pp_exposed),
                       format_seconds(st.breakdown.dp_exposed));
    }
  }
  o += "\nnetwork per step (all GPUs)\n";
  line("NVLink", format_bytes(Bytes(link_bytes(r, LinkClass::nvlink))));
  line("inter-node NICs", format_bytes(Bytes(link_bytes(r, LinkClass::nic))));
  line("across the spine", format_bytes(Bytes(link_bytes(r, LinkClass::spine))));

  const StageMemory& w = r.figures.memory.worst();
  o += "\nmemory per GPU\n";
  line("total", fmt::format("{} of {} (stage {}): {}", format_bytes(w.memory.total()),
                            format_bytes(r.figures.memory.capacity), w.stage,
                            r.figures.memory.fits && r.figures.memory.near_capacity
                                ? "fits, NEAR CAPACITY (within training.memory.margin)"
                            : r.figures.memory.fits ? "fits"
                            : w.memory.total() <= r.figures.memory.capacity
                                ? "OUT OF HOST MEMORY (offloaded optimizer)"
                                : "OUT OF MEMORY"));
  if (const auto& e = prediction.run) {
    o += "\nwhole run\n";
    if (e->critical) {
      const CriticalBatch& c = *e->critical;
      line("critical batch", fmt::format("B_noise {} samples, E_min {} samples, S_min {} steps",
                                         format_count(c.b_noise), format_count(c.e_min),
                                         format_count(c.s_min)));
    }
    line("steps", fmt::format("{:.0f} ({} samples{})", e->steps, format_count(e->samples),
                              e->tokens > 0 ? fmt::format(", {} tokens", format_count(e->tokens))
                                            : std::string()));
    if (e->skipped_steps > 0) {
      const LossScalingSpec& ls = s.training.loss_scaling;
      line("loss scaling", fmt::format("dynamic (window {}, hysteresis {}): {:.0f} of the steps "
                                       "skipped on overflow",
                                       ls.window, ls.hysteresis, e->skipped_steps));
    }
    line("time to train", fmt::format("{:.2f} days ({:.1f} h)", e->time.value() / 86400.0,
                                      e->time.value() / 3600.0));
    line("GPU-hours", format_count(e->gpu_hours));
    line("cost", e->usd ? fmt::format("${} at ${:.2f} per GPU-hour", format_count(*e->usd),
                                      *s.cost.usd_per_gpu_hour)
                        : std::string("(set cost.usd_per_gpu_hour)"));
    line("energy", fmt::format("{:.1f} MWh: {} per GPU{}, {} in all, PUE {:.2f}",
                               e->energy_kwh / 1000.0, format_watts(e->gpu_draw),
                               s.cost.node_power.value() > 0
                                   ? fmt::format(" + {} per node", format_watts(s.cost.node_power))
                                   : std::string(" (node overhead not counted: cost.node_power)"),
                               format_watts(e->cluster_power), s.cost.pue));
    line("peak power",
         fmt::format("{} at the facility (every GPU at its {} TDP, PUE {:.2f})",
                     format_watts(e->peak_power), format_watts(s.cluster.gpu.tdp), s.cost.pue));
    if (e->tco) {
      const Tco& t = *e->tco;
      line("to own",
           fmt::format("${} for the run (${} purchase over {:g} years, ${} facility, ${} "
                       "electricity), ${} a year",
                       format_count(t.run_usd), format_count(t.capex_run_usd),
                       *s.cost.amortization_years, format_count(t.facility_run_usd),
                       format_count(t.electricity_run_usd), format_count(t.per_year_usd)));
      line("purchase", fmt::format("${}: nodes ${}, network ${} ({} switches, {} transceivers, "
                                   "{} cables); prices: {}",
                                   format_count(t.capex_usd), format_count(t.nodes_usd),
                                   format_count(t.network_usd), t.fabric.switches,
                                   t.fabric.transceivers, t.fabric.cables, s.cluster.price.source));
    }
    if (e->co2_kg) {
      line("CO2", fmt::format("{:.1f} t at {:.0f} g/kWh", *e->co2_kg / 1000.0,
                              *s.cost.grid_gco2_per_kwh));
    }
    if (e->goodput) {
      const Goodput& g = *e->goodput;
      line("failures", fmt::format("job MTBF {:.1f} h ({} GPUs at {:.0f} h each): {:.1f} expected",
                                   g.job_mtbf.value() / 3600, s.cluster.gpus(),
                                   s.reliability->gpu_mtbf.value() / 3600, g.interruptions));
      line("checkpoints", fmt::format("{} in {}, every {} of compute (Daly; Young {})",
                                      format_bytes(g.checkpoint), format_seconds(g.checkpoint_time),
                                      format_seconds(g.interval), format_seconds(g.young_interval)));
      line("with failures", fmt::format("{:.2f} days, goodput {:.1f} %, {} GPU-hours{}",
                                        g.wall_time.value() / 86400.0, 100 * g.goodput,
                                        format_count(g.gpu_hours),
                                        g.usd ? fmt::format(", ${}", format_count(*g.usd))
                                              : std::string()));
    }
    for (const std::string& a : e->advice) line("advice", a);
  }
  o += "\nsimulation\n";
  line("compute model", r.compute_model);
  // The simulated ranks of the task graph: one per pipeline stage, or every GPU with --full.
  line("size", fmt::format("{} GPUs simulated for {} ({} tasks, {} events)", r.graph.ranks,
                           s.cluster.gpus(), r.tasks, r.events));
  for (const std::string& n : r.notes) line("assumption", n);
  return o;
}

}  // namespace orrery
