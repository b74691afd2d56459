#include "report/check_report.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "report/memory_json.h"
#include "scenario/names.h"

namespace orrery {
namespace {

using ordered_json = nlohmann::ordered_json;

ordered_json scenario_json(const Scenario& s) {
  const ClusterSpec& c = s.cluster;
  const ModelSpec& m = s.model;
  const ParallelismSpec& p = s.parallelism;
  const TrainingSpec& t = s.training;
  ordered_json peak = ordered_json::object();
  for (const auto& [dtype, rate] : c.gpu.peak) peak[to_string(dtype)] = rate.value();
  ordered_json gemm = ordered_json::object();
  for (const auto& [dtype, e] : c.gpu.gemm_efficiency) gemm[to_string(dtype)] = e;
  ordered_json ramp = ordered_json::array();
  for (const auto& [at, f] : c.gpu.gemm_ramp) ramp.push_back({at.value(), f});
  auto opt = [](const auto& o) { return o ? ordered_json(o->value()) : ordered_json(nullptr); };
  ordered_json j;
  j["name"] = s.name;
  j["cluster"] = {
      {"preset", c.preset},
      {"gpu",
       {{"preset", c.gpu.preset},
        {"name", c.gpu.name},
        {"peak_flop_per_s", peak},
        {"memory_bytes", c.gpu.memory.value()},
        {"memory_bandwidth_bytes_per_s", c.gpu.memory_bandwidth.value()},
        {"tdp_w", c.gpu.tdp.value()},
        {"gemm_efficiency", gemm},
        {"gemm_ramp_s", ramp},
        {"attention_efficiency", c.gpu.attention_efficiency ? ordered_json(*c.gpu.attention_efficiency)
                                                            : ordered_json(nullptr)},
        {"cudnn_attention_efficiency", c.gpu.cudnn_attention_efficiency
                                           ? ordered_json(*c.gpu.cudnn_attention_efficiency)
                                           : ordered_json(nullptr)},
        {"memory_efficiency", c.gpu.memory_efficiency ? ordered_json(*c.gpu.memory_efficiency)
                                                      : ordered_json(nullptr)},
        {"score_tensor_efficiency", c.gpu.score_tensor_efficiency
                                        ? ordered_json(*c.gpu.score_tensor_efficiency)
                                        : ordered_json(nullptr)},
        {"cast_efficiency", c.gpu.cast_efficiency ? ordered_json(*c.gpu.cast_efficiency)
                                                  : ordered_json(nullptr)},
        {"unaligned_gemm_efficiency", c.gpu.unaligned_gemm_efficiency
                                          ? ordered_json(*c.gpu.unaligned_gemm_efficiency)
                                          : ordered_json(nullptr)},
        {"fp8_split_accumulation", c.gpu.fp8_split_accumulation
                                       ? ordered_json(*c.gpu.fp8_split_accumulation)
                                       : ordered_json(nullptr)},
        {"kernel_launch_s", opt(c.gpu.kernel_launch)},
        {"host_overhead_s", opt(c.gpu.host_overhead)}}},
      {"nodes", c.nodes},
      {"gpus_per_node", c.gpus_per_node},
      {"gpus", c.gpus()},
      {"intra_node",
       {{"bandwidth_bytes_per_s", c.intra_node.bandwidth.value()},
        {"latency_s", c.intra_node.latency.value()},
        {"nvls", c.intra_node.nvls},
        {"efficiency", c.intra_node.efficiency}}},
      {"inter_node",
       {{"nics_per_node", c.inter_node.nics_per_node},
        {"nic_bandwidth_bytes_per_s", c.inter_node.nic_bandwidth.value()},
        {"latency_s", c.inter_node.latency.value()},
        {"topology", to_string(c.inter_node.topology)},
        {"oversubscription", c.inter_node.oversubscription},
        {"efficiency", c.inter_node.efficiency},
        {"background_load", c.inter_node.background_load}}}};
  if (c.inter_node.pod_size > 0) {
    j["cluster"]["inter_node"]["pod_size"] = c.inter_node.pod_size;
    j["cluster"]["inter_node"]["pod_oversubscription"] = c.inter_node.pod_oversubscription;
  }
  if (!c.inter_node.fabric.empty()) j["cluster"]["inter_node"]["fabric"] = c.inter_node.fabric;
  j["cluster"]["slow_nodes"] = {{"fraction", c.slow_nodes.fraction},
                                {"speed", c.slow_nodes.speed},
                                {"machine_gpus", slow_node_machine_gpus(c)},
                                {"machines", slow_node_machines(c)},
                                {"probability", slow_node_probability(c)}};
  if (const auto a = assumed_figures(c); !a.empty()) j["cluster"]["assumed"] = a;
  ordered_json model = {{"preset", m.preset}, {"name", m.name}, {"family", to_string(m.family)}};
  if (m.is_transformer()) {
    model["layers"] = m.layers;
    model["hidden"] = m.hidden;
    model["heads"] = m.heads;
    model["kv_heads"] = m.kv_heads;
    if (m.head_width > 0) model["head_dim"] = m.head_width;  // only where written
    model["ffn"] = m.ffn;
    model["vocab"] = m.vocab;
    model["seq_len"] = m.seq_len;
    model["activation"] = to_string(m.activation);
    model["norm"] = to_string(m.norm);
    model["position_embedding"] = to_string(m.position_embedding);
    model["tied_embeddings"] = m.tied_embeddings;
    model["bias"] = m.bias;
    model["dropout"] = m.dropout;
    if (m.qk_norm) model["qk_norm"] = true;  // only where set
    if (m.family == ModelFamily::encoder) {
      model["head"] = to_string(m.head);
      if (m.head == EncoderHead::classifier) model["labels"] = m.labels;
    }
    model["attention_mask"] = to_string(m.attention_mask);
    if (m.attention_mask == AttentionMask::sliding_window) {
      model["attention_window"] = m.attention_window;
    }
    if (m.attention_mask == AttentionMask::document) model["document_length"] = m.document_length;
    if (m.moe) {
      ordered_json moe = {{"experts", m.moe->experts},
                          {"top_k", m.moe->top_k},
                          {"expert_ffn", m.moe->expert_ffn},
                          {"shared_experts", m.moe->shared_experts},
                          {"first_dense_layers", m.moe->first_dense_layers}};
      moe["capacity_factor"] =
          m.moe->capacity_factor ? ordered_json(*m.moe->capacity_factor) : ordered_json(nullptr);
      model["moe"] = moe;
    }
    if (m.mla) {
      model["mla"] = {{"q_lora_rank", m.mla->q_lora_rank},
                      {"kv_lora_rank", m.mla->kv_lora_rank},
                      {"qk_nope_head_dim", m.mla->qk_nope_head_dim},
                      {"qk_rope_head_dim", m.mla->qk_rope_head_dim},
                      {"v_head_dim", m.mla->v_head_dim}};
    }
  } else {
    model["image_size"] = m.image_size;
    model["table_rows"] = m.cnn_layers.size();
  }
  j["model"] = model;
  j["parallelism"] = {{"tp", p.tp},
                      {"pp", p.pp},
                      {"dp", p.dp},
                      {"cp", p.cp},
                      {"ep", p.ep},
                      {"sequence_parallel", p.sequence_parallel},
                      {"virtual_pipeline_stages", p.virtual_pipeline_stages},
                      {"schedule", to_string(p.schedule)},
                      {"pipeline_engine", to_string(p.pipeline_engine)},
                      {"first_stage_layers", p.first_stage_layers ? ordered_json(*p.first_stage_layers)
                                                                  : ordered_json(nullptr)},
                      {"last_stage_layers", p.last_stage_layers ? ordered_json(*p.last_stage_layers)
                                                                : ordered_json(nullptr)},
                      {"account_for_embedding", p.account_for_embedding},
                      {"account_for_loss", p.account_for_loss},
                      {"pipeline_layout", p.pipeline_layout.empty()
                                              ? ordered_json(nullptr)
                                              : ordered_json(p.pipeline_layout)},
                      {"microbatch_group_size", p.microbatch_group_size},
                      {"flexible_groups", p.flexible_groups},
                      {"zero_stage", p.zero_stage},
                      {"fsdp", p.fsdp},
                      {"microbatch", p.microbatch},
                      {"global_batch", p.global_batch},
                      {"microbatches", p.microbatches()}};
  j["training"] = {{"precision", to_string(t.precision)},
                   {"recompute", to_string(t.recompute)},
                   {"optimizer", to_string(t.optimizer)},
                   {"optimizer_state_dtype", to_string(t.optimizer_state_dtype)},
                   {"main_params_dtype", to_string(t.main_params_dtype)},
                   {"flash_attention", t.flash_attention},
                   {"gradient_dtype", to_string(t.gradient_dtype)},
                   {"runtime_reserve_bytes", t.runtime_reserve.value()},
                   {"allocator_overhead", t.allocator_overhead},
                   {"overlap_grad_reduce", t.overlap_grad_reduce},
                   {"overlap_param_gather", t.overlap_param_gather},
                   {"tp_comm_overlap", t.tp_comm_overlap},
                   {"overlap_p2p", t.overlap_p2p},
                   {"grad_bucket_params", t.grad_bucket_params ? ordered_json(*t.grad_bucket_params)
                                                               : ordered_json(nullptr)},
                   {"grad_buckets", t.grad_buckets ? ordered_json(name_of(*t.grad_buckets))
                                                   : ordered_json(nullptr)},
                   {"overlap_param_gather_with_optimizer_step",
                    t.overlap_param_gather_with_optimizer_step}};
  // Unset (null), the runtime reserve is modelled from the three figures below.
  if (!t.runtime_reserve_set) j["training"]["runtime_reserve_bytes"] = nullptr;
  j["training"]["cuda_context_bytes"] = t.memory.cuda_context.value();
  j["training"]["nccl_channels"] = t.memory.nccl_channels;
  j["training"]["cublas_workspace_bytes"] = t.memory.cublas_workspace.value();
  j["training"]["cross_entropy_chunks"] = t.stack.cross_entropy_chunks;
  if (t.fp8) j["training"]["fp8_recipe"] = describe(*t.fp8);
  if (t.fp4) j["training"]["fp4_recipe"] = describe(*t.fp4);
  if (t.recompute == Recompute::selective)
    j["training"]["recompute_modules"] = describe_recompute_modules(t.recompute_modules);
  if (t.optimizer_offload) {
    j["training"]["optimizer_offload"] = {{"fraction", t.optimizer_offload->fraction},
                                          {"overlap", t.optimizer_offload->overlap}};
  }
  if (t.activation_offload) {
    j["training"]["activation_offload"] = {{"layers", t.activation_offload->layers}};
  }
  j["simulation"] = {{"compute_slowdown", s.simulation.compute_slowdown},
                     {"comm_slowdown", s.simulation.comm_slowdown}};
  if (s.measured) {
    const Measured& meas = *s.measured;
    const ordered_json none(nullptr);
    j["measured"] = {{"metric", meas.rate ? ordered_json(to_string(meas.metric)) : none},
                     {"value", meas.rate ? ordered_json(meas.value) : none},
                     {"source", meas.source}};
    if (meas.rate && meas.metric == Metric::speedup) j["measured"]["over"] = meas.over;
    if (meas.memory) {
      j["measured"]["memory"] = {{"peak", to_string(meas.memory->peak)},
                                 {"bytes", meas.memory->value.value()}};
    }
  }
  j["cost"] = {{"usd_per_gpu_hour", s.cost.usd_per_gpu_hour ? ordered_json(*s.cost.usd_per_gpu_hour)
                                                            : ordered_json(nullptr)},
               {"gpu_power_w", s.cost.gpu_power.value()},
               {"pue", s.cost.pue}};
  return j;
}

}  // namespace

std::string render_check_json(const Scenario& s, const StepFigures& f) {
  const StageMemory& w = f.memory.worst();
  ordered_json j;
  j["scenario"] = scenario_json(s);
  j["params_total"] = f.params_total;
  j["params_active"] = f.params_active;
  j["params_per_gpu"] = w.params;
  j["tokens_per_step"] = f.tokens_per_step;
  j["flops_per_step_model"] = f.model_flops.value();
  j["flops_per_step_hardware"] = f.hardware_flops.value();
  j["flops_per_gpu_model"] = f.model_flops_per_gpu.value();
  j["flops_per_gpu_hardware"] = f.hardware_flops_per_gpu.value();
  j["memory_per_gpu_bytes"] = detail::memory_json(w.memory);
  j["memory_capacity_bytes"] = f.memory.capacity.value();
  // The three definitions of the fullest stage's memory (StageMemory, docs/model.md).
  j["memory_definitions_bytes"] = {{"allocated_peak", w.allocated_peak().value()},
                                   {"reserved_peak", w.reserved_peak().value()},
                                   {"device_total", w.device_total().value()}};
  j["memory_margin"] = f.memory.margin;
  j["fits"] = f.memory.fits;
  j["near_capacity"] = f.memory.near_capacity;
  if (s.parallelism.pipeline_engine == PipelineEngine::deepspeed) {
    // Fits only because the caching allocator releases its cache when DeepSpeed's copies
    // find no room.
    j["fits_through_allocator_release"] = f.memory.fits && f.memory.release_needed().value() > 0;
  }
  j["worst_stage"] = w.stage;
  ordered_json stages = ordered_json::array();
  for (const StageMemory& st : f.memory.stages) {
    ordered_json other = {{"runtime_reserve", st.runtime_reserve.value()},
                          {"cuda_context", st.cuda_context.value()},
                          {"nccl_buffers", st.nccl_buffers.value()},
                          {"cublas_workspace", st.cublas_workspace.value()},
                          {"allocator_overhead", st.allocator_overhead.value()},
                          {"gather_buffers", st.gather_buffers.value()},
                          {"compression_buffers", st.compression_buffers.value()}};
    const ParallelismSpec& p = s.parallelism;
    if (p.zero_stage == 2 || (p.zero_stage >= 3 && p.torch_fsdp())) {
      other["reduce_buffers"] = st.reduce_buffers.value();
    }
    other["loss_buffers"] = st.loss_buffers.value();
    if (p.pipeline_engine == PipelineEngine::deepspeed) {
      other["step_buffers"] = st.step_buffers.value();
      other["step_segments"] = st.step_segments.value();
      other["step_segments_cut"] = st.step_segments_cut.value();
    }
    if (s.training.fp8) {
      other["fp8_scaling_state"] = st.fp8_scaling_state.value();
      other["fp8_weight_cache"] = st.fp8_weight_cache.value();
    }
    if (s.training.fp4) {  // the fp4 recipe's state and weight copies use the same fields
      other["fp4_scaling_state"] = st.fp8_scaling_state.value();
      other["fp4_weight_cache"] = st.fp8_weight_cache.value();
    }
    stages.push_back({{"stage", st.stage},
                      {"layers", st.layers},
                      {"params", st.params},
                      {"expert_params", st.expert_params},
                      {"layers_in_flight", st.layers_in_flight},
                      {"activations_per_layer_bytes", st.activations_per_layer.value()},
                      {"memory_bytes", detail::memory_json(st.memory)},
                      {"other_bytes", other}});
    if (s.training.optimizer_offload || s.training.activation_offload)
      stages.back()["host_bytes"] = st.host.value();
  }
  j["stages"] = stages;
  return j.dump(2) + "\n";
}

std::string assumed_line(const ClusterSpec& c) {
  const std::vector<std::string> keys = assumed_figures(c);
  if (keys.empty()) return "";
  std::string list;
  for (const auto& k : keys) list += (list.empty() ? "" : ", ") + k;
  return list +
         ": not measured on this hardware, copied from another GPU or fabric (the "
         "presets say whence)";
}

namespace {

// One "key value" row of the check table.
void line(std::string& o, const std::string& k, const std::string& v) {
  o += fmt::format("  {:<24} {}\n", k, v);
}

void cluster_section(std::string& o, const ClusterSpec& c) {
  o += "cluster\n";
  line(o, "gpu",
       fmt::format("{} x {} ({} nodes x {})", c.gpus(), c.gpu.name, c.nodes, c.gpus_per_node));
  std::string peaks;
  for (const auto& [dtype, rate] : c.gpu.peak) {
    peaks +=
        fmt::format("{}{} {}", peaks.empty() ? "" : ", ", to_string(dtype), format_flop_rate(rate));
  }
  line(o, "peak (dense)", peaks);
  line(o, "hbm",
       fmt::format("{} at {}", format_bytes(c.gpu.memory),
                   format_bandwidth(c.gpu.memory_bandwidth)));
  line(o, "intra-node",
       fmt::format("{} per GPU per direction, {}{}", format_bandwidth(c.intra_node.bandwidth),
                   format_seconds(c.intra_node.latency), c.intra_node.nvls ? ", NVLS" : ""));
  if (c.nodes > 1 || c.inter_node.nics_per_node > 0) {
    const InterNodeSpec& n = c.inter_node;
    line(o, "inter-node",
         fmt::format("{} x {} NICs, {}, {}, oversubscription {}:1{}{}", n.nics_per_node,
                     format_bandwidth(n.nic_bandwidth), format_seconds(n.latency),
                     to_string(n.topology), n.oversubscription,
                     n.pod_size > 0 ? fmt::format(", pods of {} GPUs at {}:1 above them",
                                                  n.pod_size, n.pod_oversubscription)
                                    : std::string(),
                     n.fabric.empty() ? std::string() : ", fabric " + n.fabric));
  }
  if (const int machines = slow_node_machines(c); machines > 1) {
    line(o, "slow nodes",
         c.slow_nodes.fraction > 0 && c.slow_nodes.speed < 1
             ? fmt::format("{:g} % of machines ({} GPUs each) at {:.3g} of the others' speed: "
                           "{:.1f} % that at least one of these {} is slow (the step time "
                           "blends the step with and without one; docs/simulator.md, \"Slow "
                           "nodes\")",
                           100 * c.slow_nodes.fraction, slow_node_machine_gpus(c),
                           c.slow_nodes.speed,
                           100 * slow_node_probability(c), machines)
             : std::string("none (cluster.slow_nodes)"));
  }
  if (const std::string a = assumed_line(c); !a.empty()) line(o, "assumed", a);
}

void model_section(std::string& o, const ModelSpec& m) {
  o += "\nmodel\n";
  line(o, "name", m.name.empty() ? std::string(to_string(m.family)) : m.name);
  if (m.is_transformer()) {
    line(o, "shape",
         fmt::format("{} layers, hidden {}, heads {} (kv {}{}), ffn {}, vocab {}, seq {}", m.layers,
                     m.hidden, m.heads, m.kv_heads,
                     m.head_width > 0 ? fmt::format(", head_dim {}", m.head_width) : "", m.ffn,
                     m.vocab, m.seq_len));
    line(o, "blocks",
         fmt::format("{}, {}{}, {} positions, {} embeddings{}{}", to_string(m.activation),
                     to_string(m.norm), m.qk_norm ? " (and on q/k heads)" : "",
                     to_string(m.position_embedding), m.tied_embeddings ? "tied" : "untied",
                     m.bias ? ", biases" : "", m.dropout ? ", dropout" : ""));
    std::string mask = fmt::format("{} mask", to_string(m.attention_mask));
    if (m.attention_mask == AttentionMask::sliding_window) {
      mask += fmt::format(" of {} tokens", m.attention_window);
    } else if (m.attention_mask == AttentionMask::document) {
      mask += fmt::format(", documents of {} tokens", m.document_length);
    }
    line(o, "attention", mask);
    if (m.family == ModelFamily::encoder) {
      line(o, "head", m.head == EncoderHead::classifier
                          ? fmt::format("sequence classifier: pooler and {} labels", m.labels)
                          : std::string("masked-LM head over the vocabulary at every position"));
    }
    if (m.moe) {
      line(o, "moe",
           fmt::format("{} experts of ffn {}, top-{}, {} shared, first {} layers dense, "
                       "capacity {}",
                       m.moe->experts, m.moe->expert_ffn, m.moe->top_k, m.moe->shared_experts,
                       m.moe->first_dense_layers,
                       m.moe->capacity_factor ? fmt::format("{}", *m.moe->capacity_factor)
                                              : std::string("dropless")));
    }
    if (m.mla) {
      line(o, "attention",
           fmt::format("MLA: q rank {}, kv rank {}, head dims {}+{} (v {})", m.mla->q_lora_rank,
                       m.mla->kv_lora_rank, m.mla->qk_nope_head_dim, m.mla->qk_rope_head_dim,
                       m.mla->v_head_dim));
    }
  } else {
    line(o, "shape",
         fmt::format("{} table rows, {}x{} images", m.cnn_layers.size(), m.image_size,
                     m.image_size));
  }
}

void parallelism_section(std::string& o, const Scenario& s) {
  const ParallelismSpec& p = s.parallelism;
  o += "\nparallelism\n";
  line(o, "split",
       fmt::format("tp {} x pp {} x dp {} x cp {}, ep {}{}{}{}", p.tp, p.pp, p.dp, p.cp, p.ep,
                   p.experts_split_tokens() ? fmt::format(" (experts' tp {})", p.etp()) : "",
                   p.sequence_parallel ? ", sequence parallel" : "",
                   p.rank_order == ParallelismSpec::RankOrder::tp_cp_pp_dp
                       ? ", ranks tp-cp-pp-dp (a replica's stages on neighbouring GPUs)"
                       : ""));
  // DeepSpeed's engine runs its own TrainSchedule, in 1F1B order (docs/simulator.md).
  line(o, "schedule",
       p.virtual_pipeline_stages > 1
           ? fmt::format("{} (v = {})", to_string(p.schedule), p.virtual_pipeline_stages)
       : p.pp > 1 && p.pipeline_engine == PipelineEngine::deepspeed
           ? fmt::format("{} (DeepSpeed TrainSchedule: each transfer holds both stages)",
                         to_string(p.schedule))
           : std::string(to_string(p.schedule)));
  line(o, "batch",
       fmt::format("global {} = microbatch {} x {} micro-batches x dp {}", p.global_batch,
                   p.microbatch, p.microbatches(), p.dp));
  // DeepSpeed's bf16 engine shards as ZeRO-1 at any stage below 2 (complete_zero_stage).
  const bool bf16_optimizer = deepspeed_bf16_optimizer(s);
  // Hybrid sharding shards within a node's data-parallel ranks and replicates across nodes.
  const int group = p.zero_stage >= 3 ? p.zero3_group(s.cluster.gpus_per_node) : p.shard_group();
  const std::string hybrid =
      group < p.shard_group()
          ? fmt::format(", replicated {} times (hybrid)", p.shard_group() / group)
          : std::string();
  line(o, "sharding",
       p.zero_stage == 0
           ? std::string("none")
           : fmt::format("ZeRO stage {}{} over {} ranks{}", p.zero_stage,
                         p.zero_stage >= 3 ? fmt::format(" ({}, gathers per {})",
                                                         to_string(p.fsdp_impl),
                                                         to_string(p.fsdp_unit))
                                           : "",
                         group,
                         hybrid + (bf16_optimizer ? " (DeepSpeed's BF16_Optimizer, which shards the fp32 "
                                          "weights and optimizer state at ZeRO stage 0 too)"
                                        : "")));
}

void training_section(std::string& o, const TrainingSpec& t) {
  o += "\ntraining\n";
  // Adam's state precision, named only when it is not the default fp32.
  std::string state;
  if (t.optimizer_state_dtype != StateDtype::fp32) {
    state += fmt::format(", {} moments", to_string(t.optimizer_state_dtype));
  }
  if (t.main_params_dtype == MainParams::fp16) state += ", fp16 master weights";
  if (t.main_params_dtype == MainParams::none) state += ", no master weights";
  line(o, "precision",
       fmt::format("{}, {} gradients, optimizer {}{}", to_string(t.precision),
                   to_string(t.gradient_dtype), to_string(t.optimizer), state));
  // The modules only where they are not Megatron-Core's default, so that existing outputs
  // read as before.
  const bool modules =
      t.recompute == Recompute::selective && t.recompute_modules != kRecomputeCoreAttn;
  line(o, "recompute",
       fmt::format("{}{}{}", to_string(t.recompute),
                   modules ? fmt::format(" ({})", describe_recompute_modules(t.recompute_modules))
                           : std::string(),
                   t.flash_attention ? ", flash attention" : ", unfused attention"));
  if (t.fp8) line(o, "fp8 recipe", describe(*t.fp8));
  if (t.fp4) line(o, "fp4 recipe", describe(*t.fp4));
}

void cost_section(std::string& o, const Scenario& s) {
  const ClusterSpec& c = s.cluster;
  o += "\ncost\n";
  const double gpus = c.gpus();
  line(o, "GPU power x PUE",
       fmt::format("{} = {} GPUs x {} x PUE {}",
                   format_watts(s.cost.gpu_power * (gpus * s.cost.pue)), c.gpus(),
                   format_watts(s.cost.gpu_power), s.cost.pue));
  if (s.cost.usd_per_gpu_hour) {
    line(o, "cluster price",
         fmt::format("${:.2f} per hour = {} GPUs x ${:.2f}", *s.cost.usd_per_gpu_hour * gpus,
                     c.gpus(), *s.cost.usd_per_gpu_hour));
  }
}

void workload_section(std::string& o, const Scenario& s, const StepFigures& f) {
  const ModelSpec& m = s.model;
  const TrainingSpec& t = s.training;
  o += "\nworkload per step\n";
  line(o, "parameters",
       fmt::format("{} total{}, {} per GPU (stage {}, before sharding)",
                   format_count(f.params_total),
                   m.moe ? fmt::format(", {} active per token", format_count(f.params_active))
                         : std::string(),
                   format_count(f.memory.worst().params), f.memory.worst_stage));
  line(o, m.is_transformer() ? "tokens" : "images", format_count(f.tokens_per_step));
  line(o, "model FLOPs",
       fmt::format("{:.4e} ({:.4e} per GPU)", f.model_flops.value(),
                   f.model_flops_per_gpu.value()));
  line(o, "hardware FLOPs",
       fmt::format("{:.4e} ({:.4e} per GPU, recompute {})", f.hardware_flops.value(),
                   f.hardware_flops_per_gpu.value(), to_string(t.recompute)));
}

// The fullest stage's memory term by term, every stage's when there are several, and
// whether it fits.
void memory_section(std::string& o, const Scenario& s, const StepFigures& f) {
  const ModelSpec& m = s.model;
  const ParallelismSpec& p = s.parallelism;
  const TrainingSpec& t = s.training;
  const StageMemory& w = f.memory.worst();
  o += fmt::format("\nmemory per GPU (stage {} of {}, the fullest)\n", w.stage, p.pp);
  auto mem = [&](const char* k, Bytes b, const std::string& note) {
    o += fmt::format("  {:<24} {:>12}  {}\n", k, format_bytes(b), note);
  };
  const StateBytes sb = state_bytes_per_param(t);
  const bool fp8_weights = t.fp8 && t.fp8->fp8_weights;
  mem("weights", w.memory.weights,
      fmt::format("{} B/param{}{}", sb.weight,
                  fp8_weights ? fmt::format(" ({:g} in the fp8 GEMMs' weights)",
                                            fp8_kept_weight_bytes(t.fp8->scaling))
                              : std::string(),
                  p.zero_stage >= 3 ? ", sharded" : ""));
  if (deepspeed_bf16_optimizer(s)) {
    mem("gradients", w.memory.gradients,
        fmt::format("{} B/param: DeepSpeed BF16_Optimizer's fp32 buffer 4 + the bf16 param.grad {}",
                    4.0 + sb.weight, sb.weight));
  } else {
    mem("gradients", w.memory.gradients,
        fmt::format("{} B/param{}", sb.gradient,
                    fsdp_pipeline_deferred(p, s.training)
                        ? ", unsharded: accumulated over the micro-batches until the step's "
                          "reduce (FSDP2 under a pipeline)"
                    : p.zero_stage >= 2 ? ", sharded"
                                        : ""));
  }
  mem("optimizer", w.memory.optimizer,
      fmt::format("{} B/param{}{}", sb.optimizer, p.zero_stage >= 1 ? ", sharded" : "",
                  t.optimizer_offload ? fmt::format(", {:g} % of it offloaded to the host",
                                                    100 * t.optimizer_offload->fraction)
                                      : std::string()));
  mem("activations", w.memory.activations,
      fmt::format("{:.2f} {} in flight x {} each, recompute {}", w.layers_in_flight,
                  m.is_transformer() ? "layers" : "table rows",
                  format_bytes(w.activations_per_layer), to_string(t.recompute)));
  const char* low_bits = s.training.fp4 ? "fp4" : "fp8";  // whose recipe fills the two
  mem("other", w.memory.other,
      fmt::format(
          "runtime {}, cuBLAS workspace {}, allocator waste {}, gather buffers {}{}{}{}{}{}",
          format_bytes(w.runtime_reserve), format_bytes(w.cublas_workspace),
          format_bytes(w.allocator_overhead), format_bytes(w.gather_buffers),
          w.reduce_buffers.value() > 0
              ? fmt::format(", reduce-scatter buffers {}", format_bytes(w.reduce_buffers))
              : std::string(),
          w.loss_buffers.value() > 0
              ? fmt::format(", loss temporaries {}", format_bytes(w.loss_buffers))
              : std::string(),
          w.step_buffers.value() > 0
              ? fmt::format(", DeepSpeed's gradient copies {}", format_bytes(w.step_buffers))
              : std::string(),
          w.compression_buffers.value() > 0
              ? fmt::format(", compression buffers {}", format_bytes(w.compression_buffers))
              : std::string(),
          s.training.fp8 || s.training.fp4
              ? fmt::format(", {0} scaling state {1}, {0} weight cache {2}", low_bits,
                            format_bytes(w.fp8_scaling_state), format_bytes(w.fp8_weight_cache))
              : std::string()));
  mem("total", w.memory.total(), fmt::format("of {} HBM", format_bytes(f.memory.capacity)));
  // The same total by definition: what PyTorch's counters and nvidia-smi would show.
  const char* allocator = t.memory.allocator == MemorySpec::Allocator::caching ? "caching allocator"
                          : t.memory.allocator == MemorySpec::Allocator::expandable_segments
                              ? "caching allocator, expandable segments"
                              : "no allocator model";
  mem("  allocated peak", w.allocated_peak(), "tensors alone (torch.cuda.max_memory_allocated)");
  mem("  reserved peak", w.reserved_peak(),
      fmt::format("+ allocator waste {}, {} (torch.cuda.max_memory_reserved)",
                  format_bytes(w.allocator_overhead), allocator));
  mem("  device total", w.device_total(),
      fmt::format("+ runtime reserve {} (what nvidia-smi shows)", format_bytes(w.runtime_reserve)));
  // The runtime's parts, each with where it lives (docs/model.md "Memory per GPU").
  if (t.runtime_reserve_set) {
    mem("  runtime reserve", w.runtime_reserve,
        "outside the allocator, training.runtime_reserve (replaces the two below)");
  } else {
    mem("  CUDA context", w.cuda_context,
        s.origin.count("training.memory.cuda_context")
            ? "outside the allocator, training.memory.cuda_context"
            : "outside the allocator, lazy module loading");
    std::string comms;
    for (const NcclCommunicator& c : nccl_communicators(s, w.stage)) {
      comms += fmt::format("{}{} {} x {} ch", comms.empty() ? "" : ", ", c.group, c.connections,
                           c.channels);
    }
    mem("  NCCL buffers", w.nccl_buffers,
        comms.empty() ? std::string("outside the allocator, no communicator")
                      : fmt::format("outside the allocator, {} x 10 MiB", comms));
  }
  mem("  cuBLAS workspace", w.cublas_workspace, "inside the allocator (in the allocated peak)");
  if (w.step_buffers.value() > 0 || w.step_segments.value() > 0) {
    mem("  DeepSpeed's copies", w.step_buffers + w.step_segments,
        fmt::format("gradient casts and flat copies after the backward: {} beyond its peak "
                    "(allocated), {} more in segments no freed block fits (reserved, in the "
                    "allocator waste)",
                    format_bytes(w.step_buffers), format_bytes(w.step_segments)));
  }
  // The fullest host share of any stage, against the node's host memory per GPU.
  const StageMemory* host = nullptr;
  for (const StageMemory& st : f.memory.stages)
    if (!host || st.host > host->host) host = &st;
  if ((t.optimizer_offload || t.activation_offload) && host) {
    std::string what;
    if (t.optimizer_offload)
      what = fmt::format("offloaded optimizer, {:g} B/param", kOffloadedHostBytes);
    if (t.activation_offload) {
      what += fmt::format("{}activations of {} layers ({})", what.empty() ? "" : ", ",
                          t.activation_offload->layers, format_bytes(host->offloaded_activations));
    }
    mem("host memory", host->host,
        fmt::format("{} (stage {}), of {} per GPU", what, host->stage,
                    format_bytes(f.memory.host_capacity)));
  }
  if (f.memory.stages.size() > 1) {
    o += "\n  per stage                layers   params/GPU   weights+grads+optimizer   activations       total\n";
    for (const StageMemory& st : f.memory.stages) {
      o += fmt::format("  {:<24} {:>6}   {:>10}   {:>23}   {:>11}   {:>9}\n",
                       fmt::format("stage {}", st.stage), st.layers, format_count(st.params),
                       format_bytes(st.memory.weights + st.memory.gradients + st.memory.optimizer),
                       format_bytes(st.memory.activations), format_bytes(st.memory.total()));
    }
  }
  const Bytes below_margin = f.memory.capacity * (1.0 - f.memory.margin);
  const Bytes cut = f.memory.release_needed();
  if (f.memory.fits && cut.value() > 0) {
    o += fmt::format(
        "\nDeepSpeed's gradient copies would take {} more in new allocator segments than the "
        "device has room for: the run fits only because a failing cudaMalloc makes PyTorch's "
        "caching allocator release its free cached blocks and retry; fragmentation there can "
        "still run it out of memory\n",
        format_bytes(cut));
  }
  if (f.memory.fits && f.memory.near_capacity) {
    o += fmt::format(
        "\nverdict: fits, NEAR CAPACITY (device total {} free; {} over the {:g} % margin, "
        "training.memory.margin)\n",
        format_bytes(f.memory.capacity - w.memory.total()),
        format_bytes(w.memory.total() - below_margin), 100 * f.memory.margin);
  } else if (f.memory.fits) {
    o += fmt::format("\nverdict: fits (device total {} free, {} within the {:g} % margin)\n",
                     format_bytes(f.memory.capacity - w.memory.total()),
                     format_bytes(below_margin - w.memory.total()), 100 * f.memory.margin);
  } else if (w.memory.total() <= f.memory.capacity && host) {
    o += fmt::format("\nverdict: OUT OF HOST MEMORY (what is offloaded needs {} more)\n",
                     format_bytes(host->host - f.memory.host_capacity));
  } else {
    o += fmt::format("\nverdict: OUT OF MEMORY (needs {} more)\n",
                     format_bytes(w.memory.total() - f.memory.capacity));
  }
}

}  // namespace

std::string render_check_table(const Scenario& s, const StepFigures& f) {
  std::string o;
  o += fmt::format("scenario  {}\n\n", s.name);
  cluster_section(o, s.cluster);
  model_section(o, s.model);
  parallelism_section(o, s);
  training_section(o, s.training);
  cost_section(o, s);
  workload_section(o, s, f);
  memory_section(o, s, f);
  return o;
}

}  // namespace orrery
