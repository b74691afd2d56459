#include "scenario/validate.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "scenario/pipeline_layout.h"

namespace orrery {
namespace {

bool is_set(const Scenario& s, const std::string& key) { return s.origin.count(key) > 0; }

[[noreturn]] void reject(const Scenario& s, const std::string& key, const std::string& value,
                         const std::string& why) {
  throw InputError(s.where(key), key, value, why);
}

void require(const Scenario& s, const std::string& key, const std::string& what) {
  if (!is_set(s, key)) {
    // Blame the enclosing section, which is where the key should have been written.
    std::string section = key.substr(0, key.rfind('.'));
    InputLocation where = s.where(section);
    if (!where.line) where = s.where(section.substr(0, section.find('.')));
    throw InputError(where, key, "", "missing key: " + what);
  }
}

void complete_cluster(Scenario& s) {
  ClusterSpec& c = s.cluster;
  require(s, "cluster.gpu", "the GPU (a preset name such as h100-sxm5-80gb, or its specs)");
  require(s, "cluster.gpu.memory", "HBM capacity, e.g. \"80 GiB\"");
  require(s, "cluster.gpu.memory_bandwidth", "HBM bandwidth, e.g. \"3.35 TB/s\"");
  require(s, "cluster.gpu.tdp", "board power, e.g. \"700 W\"");
  if (c.gpu.peak.empty()) {
    require(s, "cluster.gpu.peak", "peak compute per format, e.g. {bf16: \"989.4 TFLOP/s\"}");
  }
  if (c.gpu.name.empty()) c.gpu.name = c.gpu.preset.empty() ? "custom GPU" : c.gpu.preset;
  require(s, "cluster.intra_node.bandwidth", "per-GPU intra-node bandwidth per direction");
  require(s, "cluster.intra_node.latency", "intra-node per-message latency");
  if (c.nodes > 1) {
    require(s, "cluster.inter_node.nics_per_node", "NICs per node (the cluster has several nodes)");
    require(s, "cluster.inter_node.nic_bandwidth", "bandwidth per NIC, e.g. \"400 Gb/s\"");
    require(s, "cluster.inter_node.latency", "inter-node per-message latency");
  }
  // A figure a preset assumed stops being assumed once anything else sets it (the
  // scenario, a sweep, a fabric preset): its key and every key under it (each format of
  // gemm_efficiency) were last read elsewhere.
  auto set_elsewhere = [&](const std::string& path, const std::string& file) {
    bool any = false;
    for (auto it = s.origin.lower_bound(path); it != s.origin.end(); ++it) {
      if (it->first.compare(0, path.size(), path) != 0) break;
      if (it->first.size() > path.size() && it->first[path.size()] != '.') continue;
      if (it->second.file == file) return false;
      any = true;
    }
    return any;
  };
  auto keep_assumed = [&](std::vector<std::string>& keys, const std::string& prefix,
                          const std::string& file) {
    keys.erase(
        std::remove_if(keys.begin(), keys.end(),
                       [&](const std::string& k) { return set_elsewhere(prefix + k, file); }),
        keys.end());
  };
  keep_assumed(c.gpu.assumed, "cluster.gpu.", c.gpu.assumed_file);
  keep_assumed(c.assumed, "cluster.", c.assumed_file);
  keep_assumed(c.inter_node.assumed, "cluster.inter_node.", c.inter_node.assumed_file);
  // A pod holds whole nodes; its oversubscription needs pods to join.
  if (c.inter_node.pod_size > 0 && c.inter_node.pod_size % c.gpus_per_node != 0) {
    reject(s, "cluster.inter_node.pod_size", std::to_string(c.inter_node.pod_size),
           fmt::format("a pod holds whole nodes: must be a multiple of gpus_per_node ({})",
                       c.gpus_per_node));
  }
  if (is_set(s, "cluster.inter_node.pod_oversubscription") && c.inter_node.pod_size == 0) {
    reject(s, "cluster.inter_node.pod_oversubscription",
           fmt::format("{}", c.inter_node.pod_oversubscription),
           "applies between pods: set cluster.inter_node.pod_size (GPUs per pod)");
  }
  if (!is_set(s, "cost.gpu_power")) s.cost.gpu_power = c.gpu.tdp;
}

// cluster.price: every price says where it comes from; a purchase prices the fabric too;
// the rent is the cost's unless cost.usd_per_gpu_hour overrides it.
void complete_price(Scenario& s) {
  const PriceSpec& p = s.cluster.price;
  if (p.any() && p.source.empty()) {
    require(s, "cluster.price.source",
            "where the prices come from, with their date (or \"example\")");
  }
  if (p.node_usd) {
    require(s, "cluster.price.switch_usd", "the price of one fabric switch (with node_usd)");
    require(s, "cluster.price.transceiver_usd", "the price of one transceiver (with node_usd)");
    require(s, "cluster.price.cable_usd", "the price of one cable (with node_usd)");
  }
  if (s.cost.amortization_years && !p.node_usd) {
    reject(s, "cost.amortization_years", fmt::format("{}", *s.cost.amortization_years),
           "writes off a purchase: set cluster.price.node_usd (and the fabric's prices)");
  }
  if (s.cost.amortization_years) {
    require(s, "cost.electricity_usd_per_kwh",
            "the electricity price (the cost of owning, with cost.amortization_years)");
  }
  if (!is_set(s, "cost.usd_per_gpu_hour") && p.usd_per_gpu_hour) {
    s.cost.usd_per_gpu_hour = p.usd_per_gpu_hour;
    s.origin["cost.usd_per_gpu_hour"] = s.where("cluster.price.usd_per_gpu_hour");
  }
}

// The mask defaults from the family (a decoder predicts the next token: causal; an
// encoder sees the whole sequence: full); each length key belongs to one mask and lies
// within the sequence.
void complete_attention_mask(Scenario& s) {
  ModelSpec& m = s.model;
  if (!is_set(s, "model.attention_mask")) {
    m.attention_mask =
        m.family == ModelFamily::encoder ? AttentionMask::full : AttentionMask::causal;
  }
  const std::pair<const char*, AttentionMask> lengths[] = {
      {"model.attention_window", AttentionMask::sliding_window},
      {"model.document_length", AttentionMask::document}};
  for (const auto& [key, mask] : lengths) {
    const std::int64_t value =
        mask == AttentionMask::sliding_window ? m.attention_window : m.document_length;
    if (m.attention_mask != mask) {
      if (is_set(s, key)) {
        reject(s, key, std::to_string(value),
               fmt::format("only attention_mask {} takes it (the mask is {}); remove it or set "
                           "attention_mask: {}",
                           to_string(mask), to_string(m.attention_mask), to_string(mask)));
      }
      continue;
    }
    require(s, key,
            mask == AttentionMask::sliding_window
                ? "a sliding-window mask needs its window in tokens"
                : "a document mask needs the tokens per packed document");
    if (value > m.seq_len) {
      reject(s, key, std::to_string(value),
             fmt::format("exceeds seq_len ({}); a mask as long as the sequence is the causal "
                         "mask",
                         m.seq_len));
    }
  }
}

// Group-limited routing as Megatron-Core's group_limited_topk runs it
// (megatron/core/transformer/moe/moe_utils.py at NVIDIA/Megatron-LM d98e8a64): experts in
// equal groups, a token's top-k drawn from the experts of its chosen groups. The node limit
// is the same rule with the nodes for groups, so a scenario gives one or the other.
void check_moe_routing(const Scenario& s, const MoeSpec& e) {
  if (e.node_limit > 0 && e.router_groups > 0) {
    reject(s, "model.moe.node_limit", std::to_string(e.node_limit),
           "give either node_limit or router_groups: the node limit is group-limited routing "
           "with one group per node");
  }
  if (e.router_group_topk > 0 && e.router_groups == 0) {
    reject(s, "model.moe.router_group_topk", std::to_string(e.router_group_topk),
           "needs router_groups, the number of groups the experts are divided into");
  }
  if (e.router_groups > 0) {
    if (e.experts % e.router_groups != 0) {
      reject(s, "model.moe.router_groups", std::to_string(e.router_groups),
             fmt::format("must divide the number of experts ({})", e.experts));
    }
    if (e.router_group_topk == 0) {
      reject(s, "model.moe.router_groups", std::to_string(e.router_groups),
             "needs router_group_topk, the groups each token chooses");
    }
    if (e.router_group_topk > e.router_groups) {
      reject(s, "model.moe.router_group_topk", std::to_string(e.router_group_topk),
             fmt::format("cannot exceed router_groups ({})", e.router_groups));
    }
    const int chosen = e.router_group_topk * (e.experts / e.router_groups);
    if (chosen < e.top_k) {
      reject(s, "model.moe.router_group_topk", std::to_string(e.router_group_topk),
             fmt::format("its groups hold {} experts, fewer than top_k ({})", chosen, e.top_k));
    }
  }
  // Megatron-Core refuses the padding without a capacity too (transformer_config.py at
  // d98e8a64, moe_pad_expert_input_to_capacity).
  if (e.pad_to_capacity && !e.capacity_factor) {
    reject(s, "model.moe.pad_to_capacity", "true",
           "needs capacity_factor: the capacity is what each expert's batch is padded to");
  }
}

void complete_transformer(Scenario& s) {
  ModelSpec& m = s.model;
  for (const char* k : {"layers", "hidden", "heads", "ffn", "vocab", "seq_len"}) {
    require(s, std::string("model.") + k, "a transformer needs layers, hidden, heads, ffn, vocab "
                                          "and seq_len");
  }
  // The architecture keys have defaults (GPT-2/3's: gelu, LayerNorm, learned positions,
  // tied embeddings, biases, dropout) that would silently turn a Llama-shaped model into
  // a different one (8.03 B parameters become 5.66 B), so a model written without a
  // preset names every one of them; presets always do.
  std::vector<std::string> unnamed;
  for (const char* k : {"activation", "norm", "position_embedding", "tied_embeddings", "bias",
                        "dropout"}) {
    if (!is_set(s, std::string("model.") + k)) unnamed.push_back(k);
  }
  if (!unnamed.empty()) {
    require(s, "model." + unnamed.front(),
            fmt::format("a model written without a preset must name its architecture "
                        "(activation, norm, position_embedding, tied_embeddings, bias, "
                        "dropout); missing: {}",
                        fmt::join(unnamed, ", ")));
  }
  if (!is_set(s, "model.kv_heads")) m.kv_heads = m.heads;
  if (m.kv_heads > m.heads || m.heads % m.kv_heads != 0) {
    reject(s, "model.kv_heads", std::to_string(m.kv_heads),
           fmt::format("must divide heads ({}): each key/value head serves a whole group of "
                       "query heads",
                       m.heads));
  }
  // model.head and labels: an encoder's; labels only for its classifier, which projects
  // onto no vocabulary, so there is no output weight to tie (tied_embeddings resolves to
  // false: BERT presets tie their masked-LM decoder).
  if (m.family != ModelFamily::encoder && is_set(s, "model.head")) {
    reject(s, "model.head", to_string(m.head),
           "an encoder's head (BERT's masked-LM head or a sequence classifier); a decoder "
           "projects onto its vocabulary");
  }
  if (is_set(s, "model.labels") && !(m.family == ModelFamily::encoder &&
                                     m.head == EncoderHead::classifier)) {
    reject(s, "model.labels", std::to_string(m.labels),
           "only a classifier head (model.head: classifier) has labels");
  }
  if (m.family == ModelFamily::encoder && m.head == EncoderHead::classifier) {
    m.tied_embeddings = false;
  }
  if (m.mla && m.qk_norm) {
    reject(s, "model.qk_norm", "true",
           "multi-head latent attention has its own query and key-value norms (mla.q_lora_rank "
           "and kv_lora_rank wide), none on each head");
  }
  if (m.mla && m.head_width > 0) {
    reject(s, "model.head_dim", std::to_string(m.head_width),
           "multi-head latent attention sizes its heads with mla.qk_nope_head_dim, "
           "qk_rope_head_dim and v_head_dim");
  }
  if (!m.mla && m.head_width == 0 && m.hidden % m.heads != 0) {
    reject(s, "model.hidden", std::to_string(m.hidden),
           fmt::format("must be a multiple of heads ({})", m.heads));
  }
  complete_attention_mask(s);
  if (m.mla && m.mla->kv_lora_rank == 0) {
    require(s, "model.mla.kv_lora_rank", "MLA needs kv_lora_rank");
  }
  if (m.moe) {
    MoeSpec& e = *m.moe;
    require(s, "model.moe.experts", "number of routed experts");
    require(s, "model.moe.expert_ffn", "hidden width of one expert");
    if (!is_set(s, "model.moe.load_imbalance")) {
      // 1 + MaxVio_global of Wang et al. 2024, "Auxiliary-Loss-Free Load Balancing
      // Strategy for Mixture-of-Experts" (arXiv:2408.15664), Table 2, 3B model (64 routed
      // experts, top-6): 0.52 trained with an auxiliary loss, 0.04 with the bias-based
      // loss-free balancing. Per expert, over the validation set: a rank holding several
      // experts averages some of it out, a single step adds sampling noise to it.
      e.load_imbalance = e.aux_loss ? 1.52 : 1.04;
    }
    if (e.top_k > e.experts) {
      reject(s, "model.moe.top_k", std::to_string(e.top_k),
             fmt::format("cannot exceed experts ({})", e.experts));
    }
    if (e.first_dense_layers >= m.layers) {
      reject(s, "model.moe.first_dense_layers", std::to_string(e.first_dense_layers),
             fmt::format("must be below layers ({}) or the model has no MoE layer", m.layers));
    }
    check_moe_routing(s, e);
  }
  if (!m.cnn_layers.empty()) {
    reject(s, "model.layer_table", "<a list>", "only the cnn family takes a layer table");
  }
}

void complete_cnn(Scenario& s) {
  require(s, "model.image_size", "input image height = width in pixels");
  require(s, "model.layer_table", "the per-layer table of the network");
  const ParallelismSpec& p = s.parallelism;
  const std::pair<const char*, int> degrees[] = {{"tp", p.tp}, {"pp", p.pp}, {"cp", p.cp},
                                                 {"ep", p.ep}};
  for (const auto& [key, value] : degrees) {
    if (value != 1) {
      reject(s, std::string("parallelism.") + key, std::to_string(value),
             "the cnn family is modelled with data parallelism only; set it to 1");
    }
  }
}

// parallelism.global_batch present; dp derived from the GPU count when not written, and
// tp*pp*dp*cp equal to that count; global_batch a multiple of microbatch*dp.
void complete_degrees(Scenario& s) {
  ParallelismSpec& p = s.parallelism;
  const int gpus = s.cluster.gpus();
  require(s, "parallelism.global_batch", "sequences (or images) per optimizer step");

  // Degrees are each at most 2^20 (load_sections.h): their products are taken in 64 bits. Once
  // tp*pp*dp*cp equals the GPU count (at most 2^30), products of some of them fit an int.
  const std::int64_t model_ranks = std::int64_t{p.tp} * p.pp * p.cp;
  if (!is_set(s, "parallelism.dp")) {
    if (gpus % model_ranks != 0) {
      reject(s, "parallelism.tp", std::to_string(p.tp),
             fmt::format("tp*pp*cp = {} does not divide the cluster's {} GPUs", model_ranks, gpus));
    }
    p.dp = static_cast<int>(gpus / model_ranks);
  }
  if (model_ranks * p.dp != gpus) {
    reject(s, "parallelism.dp", std::to_string(p.dp),
           fmt::format("tp*pp*dp*cp = {}*{}*{}*{} = {} but the cluster has {} GPUs ({} nodes x {})",
                       p.tp, p.pp, p.dp, p.cp, model_ranks * p.dp, gpus,
                       s.cluster.nodes, s.cluster.gpus_per_node));
  }
  if (p.global_batch % (std::int64_t{p.microbatch} * p.dp) != 0) {
    reject(s, "parallelism.global_batch", std::to_string(p.global_batch),
           fmt::format("must be a multiple of microbatch*dp = {}*{} = {}", p.microbatch, p.dp,
                       std::int64_t{p.microbatch} * p.dp));
  }
}

// parallelism.pipeline_layout: well-formed text whose stage count is a multiple of pp
// (Megatron-LM megatron/training/arguments.py at d98e8a64 derives the virtual stages per
// rank from it); the virtual_pipeline_stages it gives is filled in, or must agree.
void complete_pipeline_layout(Scenario& s) {
  ParallelismSpec& p = s.parallelism;
  if (!is_set(s, "parallelism.pipeline_layout")) return;
  const std::string key = "parallelism.pipeline_layout";
  const std::string& text = p.pipeline_layout;
  if (!s.model.is_transformer()) reject(s, key, text, "pipeline layouts place transformer layers");
  const LayoutParse parsed = parse_pipeline_layout(text);
  if (!parsed.error.empty()) {
    reject(s, key, text,
           fmt::format("at position {} ('{}' from there): {}", parsed.position + 1,
                       text.substr(parsed.position, 12), parsed.error));
  }
  const auto stages = static_cast<std::int64_t>(parsed.stages.size());
  if (stages % p.pp != 0) {
    reject(s, key, text,
           fmt::format("has {} stages ('|' separates them), which must be a multiple of pp = {} "
                       "(the multiple is the virtual stages per rank)",
                       stages, p.pp));
  }
  const int vp = static_cast<int>(stages / p.pp);
  if (is_set(s, "parallelism.virtual_pipeline_stages") && p.virtual_pipeline_stages != vp) {
    reject(s, "parallelism.virtual_pipeline_stages", std::to_string(p.virtual_pipeline_stages),
           fmt::format("the pipeline_layout's {} stages over pp = {} give {} virtual stages per "
                       "rank; remove virtual_pipeline_stages or make it {}",
                       stages, p.pp, vp, vp));
  }
  p.virtual_pipeline_stages = vp;
}

// The schedule defaults from virtual_pipeline_stages (interleaved-1f1b when above 1),
// and the two must agree with each other, with pp and with the micro-batch count.
void complete_schedule(Scenario& s) {
  ParallelismSpec& p = s.parallelism;
  const int vp = p.virtual_pipeline_stages;
  if (!is_set(s, "parallelism.schedule")) {
    p.schedule = vp > 1 ? PipelineSchedule::interleaved_1f1b : PipelineSchedule::one_f_one_b;
  }
  if (p.schedule == PipelineSchedule::interleaved_1f1b && vp < 2) {
    reject(s, "parallelism.schedule", to_string(p.schedule),
           "needs virtual_pipeline_stages >= 2 (model chunks per pipeline rank)");
  }
  if (p.schedule != PipelineSchedule::interleaved_1f1b && vp > 1) {
    reject(s, "parallelism.virtual_pipeline_stages", std::to_string(vp),
           fmt::format("virtual stages need schedule {}, not {}",
                       to_string(PipelineSchedule::interleaved_1f1b), to_string(p.schedule)));
  }
  // Megatron-Core's interleaved schedule (megatron/core/pipeline_parallel/schedules.py at
  // d98e8a64, forward_backward_pipelining_with_interleaving): micro-batches go through
  // the chunks in groups of G = microbatch_group_size (default pp) with pp <= G <= the
  // micro-batch count M, and a last, smaller group M % G, if any, at least pp.
  const bool group_set = is_set(s, "parallelism.microbatch_group_size");
  if (group_set && p.schedule != PipelineSchedule::interleaved_1f1b) {
    reject(s, "parallelism.microbatch_group_size", std::to_string(p.microbatch_group_size),
           "groups micro-batches of the interleaved-1f1b schedule only");
  }
  if (!group_set) p.microbatch_group_size = p.pp;
  if (p.schedule == PipelineSchedule::interleaved_1f1b) {
    const int g = p.microbatch_group_size, m = p.microbatches();
    if (group_set && (g < p.pp || g > m)) {
      reject(s, "parallelism.microbatch_group_size", std::to_string(g),
             fmt::format("must lie between pp = {} and the {} micro-batches per replica", p.pp, m));
    }
    if (m < p.pp || (m % g != 0 && m % g < p.pp)) {
      reject(s, "parallelism.global_batch", std::to_string(p.global_batch),
             fmt::format("interleaved-1f1b runs micro-batches in groups of {} ({}): the {} "
                         "micro-batches per replica (global_batch / (microbatch*dp)) must be "
                         "at least pp = {} and leave a last group of 0 or at least pp (here "
                         "{}); set microbatch_group_size to a count that does",
                         g, group_set ? "microbatch_group_size" : "pp", m, p.pp, m % g));
    }
  }
  if (vp > 1 && p.pp < 2) {
    reject(s, "parallelism.virtual_pipeline_stages", std::to_string(vp),
           "interleaving needs pp >= 2");
  }
}

// fsdp: true means ZeRO stage 3; a zero_stage written beside it must say 3.
void complete_zero_stage(Scenario& s) {
  ParallelismSpec& p = s.parallelism;
  if (p.fsdp) {
    if (is_set(s, "parallelism.zero_stage") && p.zero_stage != 3) {
      reject(s, "parallelism.zero_stage", std::to_string(p.zero_stage),
             "fsdp: true shards parameters, gradients and optimizer state (stage 3); "
             "remove zero_stage or set it to 3");
    }
    p.zero_stage = 3;
  }
  // The implementation: `fsdp` (true or a mapping) is PyTorch FSDP1 unless the mapping
  // names another; `zero_stage: 3` alone is DeepSpeed ZeRO-3. Its gather unit: DeepSpeed
  // fetches per submodule (partitioned_param_coordinator.py, fetch_sub_module), PyTorch
  // FSDP per wrapped block (llm-foundry and torchtitan wrap each transformer block).
  if (p.zero_stage >= 3 && !p.fsdp && !is_set(s, "parallelism.fsdp.implementation"))
    p.fsdp_impl = ParallelismSpec::FsdpImpl::deepspeed;
  // A stack named in the file runs its own ZeRO-3 / FSDP: DeepSpeed ZeRO-3, PyTorch FSDP1
  // or FSDP2, and for Megatron-Core and NeMo Megatron-FSDP (args.use_megatron_fsdp,
  // megatron/training/arguments.py at d98e8a64).
  if (p.zero_stage >= 3 && !is_set(s, "parallelism.fsdp.implementation") &&
      is_set(s, "training.stack")) {
    using I = ParallelismSpec::FsdpImpl;
    switch (s.training.stack.preset) {
      case StackSpec::Preset::deepspeed: p.fsdp_impl = I::deepspeed; break;
      case StackSpec::Preset::fsdp1: p.fsdp_impl = I::fsdp1; break;
      case StackSpec::Preset::fsdp2: p.fsdp_impl = I::fsdp2; break;
      default: p.fsdp_impl = I::megatron_fsdp; break;
    }
  }
  if (!is_set(s, "parallelism.fsdp.unit")) {
    p.fsdp_unit = p.fsdp_impl == ParallelismSpec::FsdpImpl::deepspeed
                      ? ParallelismSpec::FsdpUnit::module
                      : ParallelismSpec::FsdpUnit::layer;
  }
}

// The DeepSpeed engine runs 1f1b only. zb-h1 and dualpipe are modelled with ZeRO stages
// 0-2 only; dualpipe also needs an even pp and at least 2*pp micro-batches, an even
// count. Runs after complete_zero_stage.
void check_schedule_preconditions(const Scenario& s) {
  const ParallelismSpec& p = s.parallelism;
  // DeepSpeed's PipelineEngine runs only its TrainSchedule, a 1F1B order
  // (deepspeed/runtime/pipe/schedule.py, microsoft/DeepSpeed 56c522386878).
  if (p.pipeline_engine == PipelineEngine::deepspeed &&
      p.schedule != PipelineSchedule::one_f_one_b) {
    reject(s, "parallelism.schedule", to_string(p.schedule),
           "DeepSpeed's pipeline engine (pipeline_engine: deepspeed) runs only its "
           "TrainSchedule, a 1F1B order: schedule must be 1f1b");
  }
  if (p.schedule == PipelineSchedule::zero_bubble_h1 && p.zero_stage >= 3) {
    reject(s, "parallelism.schedule", to_string(p.schedule),
           "zb-h1 is modelled with ZeRO stages 0-2 (FSDP units keep whole backward passes)");
  }
  if (p.schedule == PipelineSchedule::dualpipe) {
    // The reference implementation's preconditions (deepseek-ai/DualPipe, DualPipe.step).
    if (p.pp < 2 || p.pp % 2 != 0) {
      reject(s, "parallelism.pp", std::to_string(p.pp),
             "dualpipe pairs rank r with rank pp-1-r: pp must be even and at least 2");
    }
    if (p.microbatches() % 2 != 0 || p.microbatches() < 2 * p.pp) {
      reject(s, "parallelism.global_batch", std::to_string(p.global_batch),
             fmt::format("dualpipe sends half of the micro-batches each way and needs at least "
                         "2*pp of them: the {} micro-batches per replica (global_batch / "
                         "(microbatch*dp)) must be even and at least {}",
                         p.microbatches(), 2 * p.pp));
    }
    if (p.zero_stage >= 3) {
      reject(s, "parallelism.schedule", to_string(p.schedule),
             "dualpipe is modelled with ZeRO stages 0-2 (FSDP units keep whole backward passes)");
    }
  }
}

// The ZeRO-3/FSDP options (sharding, reshard_after_forward, fsdp_prefetch, zero_hpz) only
// with stage 3, and hybrid sharding and hpZ only where the data-parallel ranks of a node
// tile the data-parallel group.
void check_sharding(const Scenario& s) {
  const ParallelismSpec& p = s.parallelism;
  if (p.zero_stage < 3) {
    for (const char* key : {"parallelism.sharding", "parallelism.reshard_after_forward",
                            "parallelism.fsdp_prefetch", "parallelism.zero_hpz"}) {
      if (is_set(s, key))
        reject(s, key, "", "applies to ZeRO-3 / FSDP only (zero_stage: 3 or fsdp: true)");
    }
  }
  if (p.zero_hpz && p.sharding == ParallelismSpec::Sharding::hybrid) {
    reject(s, "parallelism.zero_hpz", "true",
           "hybrid sharding already gathers inside the node; hpZ applies to full sharding");
  }
  if (p.zero_hpz && !p.reshard_after_forward) {
    reject(s, "parallelism.zero_hpz", "true",
           "with reshard_after_forward: false the backward pass gathers nothing, so there is "
           "nothing for hpZ to keep inside the node");
  }
  if (p.sharding == ParallelismSpec::Sharding::hybrid) {
    const int local = s.cluster.gpus_per_node / (p.tp * p.cp);
    if (local < 1 || s.cluster.gpus_per_node % (p.tp * p.cp) != 0 || p.dp % local != 0) {
      reject(s, "parallelism.sharding", to_string(p.sharding),
             fmt::format("hybrid sharding shards over the {} data-parallel ranks of a node; "
                         "tp*cp must divide gpus_per_node and that count must divide dp ({})",
                         std::max(local, 0), p.dp));
    }
    if (p.zero3_group(s.cluster.gpus_per_node) == 1 && p.shard_group() > 1) {
      // tp*cp fills the node: the in-node shard group is this one GPU, so every GPU keeps
      // whole parameters, gradients and optimizer state, replicated over all of dp.
      reject(s, "parallelism.sharding", to_string(p.sharding),
             fmt::format("shards nothing here: hybrid sharding shards over the data-parallel "
                         "ranks of one node, and tp*cp = {} fills the {}-GPU node, so its shard "
                         "group has 1 GPU and every GPU keeps full copies of the parameters, "
                         "gradients and optimizer state; use sharding: full, or a smaller tp*cp",
                         p.tp * p.cp, s.cluster.gpus_per_node));
    }
  }
  if (p.zero_hpz) {
    // The secondary copy is sharded over the data-parallel ranks of a node, which must
    // tile the data-parallel group.
    const int local = p.node_dp(s.cluster.gpus_per_node);
    if (p.dp % local != 0) {
      reject(s, "parallelism.zero_hpz", "true",
             fmt::format("hpZ shards its copy over the {} data-parallel ranks of a node, "
                         "which must divide dp ({})",
                         local, p.dp));
    }
  }
}

// tp divides the attention heads, the key/value heads (without MLA), ffn and expert_ffn.
void check_tensor_split(const Scenario& s) {
  const ParallelismSpec& p = s.parallelism;
  const ModelSpec& m = s.model;
  if (m.heads % p.tp != 0) {
    reject(s, "parallelism.tp", std::to_string(p.tp),
           fmt::format("must divide the attention heads ({})", m.heads));
  }
  if (!m.mla && m.kv_heads % p.tp != 0) {
    reject(s, "parallelism.tp", std::to_string(p.tp),
           fmt::format("must divide the key/value heads ({}) as Megatron requires", m.kv_heads));
  }
  if (m.ffn % p.tp != 0) {
    reject(s, "parallelism.tp", std::to_string(p.tp),
           fmt::format("must divide the feed-forward width ffn ({})", m.ffn));
  }
  if (m.moe && m.moe->expert_ffn % p.tp != 0) {
    reject(s, "parallelism.tp", std::to_string(p.tp),
           fmt::format("must divide the expert width expert_ffn ({})", m.moe->expert_ffn));
  }
}

// The layers divide over the pipeline as Megatron-Core accepts them
// (megatron/core/transformer/transformer_config.py and transformer_block.py
// get_num_layers_to_build at d98e8a64): a pipeline_layout with one embedding first, one
// loss last and every transformer layer; or first_stage_layers / last_stage_layers with
// the rest even over the other ranks and each rank's count even over its chunks; or
// layers (+1 for each accounted embedding or loss) even over pp*virtual_pipeline_stages.
// orrery also refuses a virtual stage that holds nothing.
void check_pipeline_layout_text(const Scenario& s) {
  const ParallelismSpec& p = s.parallelism;
  const std::string key = "parallelism.pipeline_layout";
  const std::string& text = p.pipeline_layout;
  for (const char* other : {"parallelism.first_stage_layers", "parallelism.last_stage_layers",
                            "parallelism.account_for_embedding", "parallelism.account_for_loss"}) {
    if (is_set(s, other)) {
      reject(s, key, text,
             fmt::format("spells out every stage; remove {} (Megatron refuses the two together)",
                         other));
    }
  }
  const LayoutParse parsed = parse_pipeline_layout(text);
  std::string flat;
  for (const std::string& st : parsed.stages) flat += st;
  auto count = [&](char c) { return std::count(flat.begin(), flat.end(), c); };
  if (count('E') != 1 || flat.front() != 'E') {
    reject(s, key, text, "needs exactly one E (embedding), before every other layer");
  }
  if (count('L') != 1 || flat.back() != 'L') {
    reject(s, key, text, "needs exactly one L (output layer and loss), after every other layer");
  }
  if (count('m') > 0) {
    reject(s, key, text,
           "places multi-token-prediction layers (m), which orrery does not model; leave them "
           "out of the layout");
  }
  if (count('t') != s.model.layers) {
    reject(s, key, text,
           fmt::format("places {} transformer layers (t); the model has {}", count('t'),
                       s.model.layers));
  }
  for (std::size_t i = 0; i < parsed.stages.size(); ++i) {
    if (parsed.stages[i].empty()) {
      reject(
          s, key, text,
          fmt::format("stage {} (rank {}, virtual stage {}) is empty; orrery models stages "
                      "that hold at least one layer, the embedding or the loss",
                      i, i % static_cast<std::size_t>(p.pp), i / static_cast<std::size_t>(p.pp)));
    }
  }
}

void check_pipeline_split(const Scenario& s) {
  const ParallelismSpec& p = s.parallelism;
  const ModelSpec& m = s.model;
  const int vp = p.virtual_pipeline_stages;
  const bool accounted = p.account_for_embedding || p.account_for_loss;
  if (!p.pipeline_layout.empty()) {
    check_pipeline_layout_text(s);
  } else if (p.first_stage_layers || p.last_stage_layers) {
    const char* key = p.first_stage_layers ? "parallelism.first_stage_layers"
                                           : "parallelism.last_stage_layers";
    const std::string value = std::to_string(p.first_stage_layers ? *p.first_stage_layers
                                                                   : *p.last_stage_layers);
    if (accounted) {
      reject(s, key, value,
             "uneven first/last stages cannot be combined with account_for_embedding or "
             "account_for_loss (Megatron refuses it); use a pipeline_layout");
    }
    const int edges = (p.first_stage_layers ? 1 : 0) + (p.last_stage_layers ? 1 : 0);
    if (p.pp <= edges) {
      reject(s, key, value,
             fmt::format("needs pp > {} so that some stage takes the remaining layers", edges));
    }
    const int rest = m.layers - p.first_stage_layers.value_or(0) - p.last_stage_layers.value_or(0);
    if (rest <= 0 || rest % (p.pp - edges) != 0) {
      reject(s, key, value,
             fmt::format("the remaining {} of {} layers must divide evenly over the other {} "
                         "stages",
                         rest, m.layers, p.pp - edges));
    }
    if (vp > 1) {
      for (const auto& [k, n] : {std::pair{"parallelism.first_stage_layers", p.first_stage_layers},
                                 std::pair{"parallelism.last_stage_layers", p.last_stage_layers}}) {
        if (n && (*n == 0 || *n % vp != 0)) {
          reject(s, k, std::to_string(*n),
                 fmt::format("with interleaving each rank's layers split evenly over its "
                             "virtual_pipeline_stages = {} chunks: must be a positive multiple "
                             "of {}",
                             vp, vp));
        }
      }
      const int middle = rest / (p.pp - edges);
      if (middle % vp != 0) {
        reject(s, key, value,
               fmt::format("leaves {} layers on each other stage, which must divide evenly over "
                           "virtual_pipeline_stages = {} chunks",
                           middle, vp));
      }
    }
  } else {
    const std::int64_t total =
        m.layers + (p.account_for_embedding ? 1 : 0) + (p.account_for_loss ? 1 : 0);
    if (total % (std::int64_t{p.pp} * vp) != 0) {
      // A hint that names a split that is accepted: the first and last stage one layer
      // lighter (or heavier) when the rest divides.
      std::string hint;
      if (!accounted && p.pp > 2) {
        for (int delta : {0, -1, 1, -2, 2}) {
          const std::int64_t edge = m.layers / p.pp + delta;
          const std::int64_t rest = m.layers - 2 * edge;
          if (edge > 0 && edge % vp == 0 && rest > 0 && rest % (p.pp - 2) == 0 &&
              (rest / (p.pp - 2)) % vp == 0) {
            hint = fmt::format(
                "; or set first_stage_layers: {} and last_stage_layers: {} (the "
                "other {} stages take {} each)",
                edge, edge, p.pp - 2, rest / (p.pp - 2));
            break;
          }
        }
        if (hint.empty() && (m.layers + 2) % (std::int64_t{p.pp} * vp) == 0) {
          hint = "; or set account_for_embedding and account_for_loss (layers + 2 then divide)";
        }
      }
      reject(s, "parallelism.pp", std::to_string(p.pp),
             fmt::format("layers ({}{}) must divide evenly into pp*virtual_pipeline_stages = "
                         "{}*{} model chunks{}",
                         m.layers, accounted ? " + the accounted embedding/loss" : "", p.pp, vp,
                         hint));
    }
    if (p.account_for_embedding && total / (std::int64_t{p.pp} * vp) < 1) {
      reject(s, "parallelism.account_for_embedding", "true", "no layers left in the first stage");
    }
  }
}

// cp splits seq_len in 2*cp load-balanced chunks; ep needs an MoE model and divides both
// the experts and dp*cp, the ranks expert-parallel groups are carved from.
void check_context_and_expert_split(const Scenario& s) {
  const ParallelismSpec& p = s.parallelism;
  const ModelSpec& m = s.model;
  if (p.cp > 1 && m.seq_len % (2 * p.cp) != 0) {
    reject(s, "parallelism.cp", std::to_string(p.cp),
           fmt::format("seq_len ({}) must be a multiple of 2*cp for the load-balanced causal "
                       "split",
                       m.seq_len));
  }
  if (p.ep > 1) {
    if (!m.moe) {
      reject(s, "parallelism.ep", std::to_string(p.ep), "expert parallelism needs an MoE model");
    }
    if (m.moe->experts % p.ep != 0) {
      reject(s, "parallelism.ep", std::to_string(p.ep),
             fmt::format("must divide the number of experts ({})", m.moe->experts));
    }
    if ((p.dp * p.cp) % p.ep != 0) {
      reject(s, "parallelism.ep", std::to_string(p.ep),
             fmt::format("must divide dp*cp = {}: expert-parallel ranks are carved out of the "
                         "data-parallel ranks",
                         p.dp * p.cp));
    }
  }
}

// training.stack: the preset's mechanisms wherever the file does not set them, each
// default cited beside it (docs/model.md, "Training stacks").
void complete_stack(Scenario& s) {
  using P = StackSpec::Preset;
  StackSpec& k = s.training.stack;
  const bool torch_native = k.pytorch_native();
  if (k.compile && !torch_native) {
    reject(s, "training.stack.compile", "true",
           fmt::format("torch.compile applies to presets fsdp1 and fsdp2 only (preset is {}, "
                       "whose fusions are its own kernels)",
                       to_string(k.preset)));
  }
  if (is_set(s, "training.stack.rope") && s.model.is_transformer() &&
      s.model.position_embedding != PositionEmbedding::rope) {
    reject(s, "training.stack.rope", to_string(k.rope),
           fmt::format("applies to position_embedding: rope only (the model's is {})",
                       to_string(s.model.position_embedding)));
  }
  // Compiled, Inductor fuses each pointwise chain into one Triton kernel: the RoPE
  // upcast-multiply-cast, silu and the product, the loss's softmax passes (torchtitan
  // compiles "model" and "loss" by default: CompileConfig.components in
  // torchtitan/config/configs.py at pytorch/torchtitan b5bcd76c).
  const bool c = k.compile;
  if (!is_set(s, "training.stack.rope")) {
    switch (k.preset) {
      // Megatron-Core: --no-rope-fusion clears apply_rope_fusion, on by default
      // (megatron/training/arguments.py at NVIDIA/Megatron-LM d98e8a64); NeMo 24.07's
      // recipes set apply_rope_fusion: true (NVIDIA/NeMo-Framework-Launcher tag 24.07,
      // launcher_scripts/conf/training/llama/llama3_8b.yaml line 93).
      case P::megatron_core:
      case P::nemo: k.rope = StackSpec::Rope::fused; break;
      // Megatron-DeepSpeed and Hugging Face models (which Composer / LLM Foundry and
      // Accelerate train under FSDP1) apply q*cos + rotate_half(q)*sin in PyTorch ops
      // (megatron/model/positional_embeddings.py lines 38-49 at bigscience-workshop/
      // Megatron-DeepSpeed 8387ae17;
      // src/transformers/models/llama/modeling_llama.py rotate_half and
      // apply_rotary_pos_emb at huggingface/transformers 00227283).
      case P::deepspeed: k.rope = StackSpec::Rope::rotate_half; break;
      case P::fsdp1: k.rope = c ? StackSpec::Rope::fused : StackSpec::Rope::rotate_half; break;
      // torchtitan: query.float() viewed as complex, times the cache, type_as back
      // (torchtitan/models/common/rope.py lines 254-264 at pytorch/torchtitan b5bcd76c).
      case P::fsdp2: k.rope = c ? StackSpec::Rope::fused : StackSpec::Rope::complex; break;
    }
  }
  if (!is_set(s, "training.stack.activation_fusion")) {
    // Megatron-Core fuses bias and SwiGLU / GeLU unless --no-bias-swiglu-fusion /
    // --no-bias-gelu-fusion (arguments.py at d98e8a64, store_false), NeMo 24.07 sets
    // bias_activation_fusion: true (llama3_8b.yaml line 110), Megatron-DeepSpeed keeps
    // Megatron-LM's --no-bias-gelu-fusion default; eager PyTorch models compute
    // F.silu(w1(x)) * w3(x) as two kernels (torchtitan; act_fn(gate_proj(x)) * up_proj(x) in
    // LlamaMLP.forward, modeling_llama.py at huggingface/transformers 00227283).
    k.activation_fusion = !torch_native || c;
  }
  // The loss: unfused in Megatron-Core unless --cross-entropy-loss-fusion (store_true,
  // arguments.py at d98e8a64) and in Megatron-DeepSpeed; NeMo 24.07 sets
  // cross_entropy_loss_fusion: true (llama3_8b.yaml line 94); eager PyTorch upcasts the
  // logits and runs F.cross_entropy's passes, compiled one fused kernel chain.
  const bool stack_ce = is_set(s, "training.stack.cross_entropy_fusion");
  const bool training_ce = is_set(s, "training.cross_entropy_fusion");
  if (stack_ce && training_ce && k.cross_entropy_fusion != s.training.cross_entropy_fusion) {
    reject(s, "training.stack.cross_entropy_fusion", k.cross_entropy_fusion ? "true" : "false",
           "contradicts training.cross_entropy_fusion; set one of them");
  }
  if (stack_ce) {
    s.training.cross_entropy_fusion = k.cross_entropy_fusion;
  } else if (!training_ce) {
    s.training.cross_entropy_fusion = k.preset == P::nemo || (torch_native && c);
  }
  k.cross_entropy_fusion = s.training.cross_entropy_fusion;
  // Megatron-Core's choice of fused cross-entropy (--cross-entropy-fusion-impl, native by
  // default: cross_entropy_fusion_impl in megatron/core/model_parallel_config.py at
  // NVIDIA/Megatron-LM d98e8a64; the te branch of compute_language_model_loss in
  // language_module.py calls Transformer Engine's parallel_cross_entropy).
  if (is_set(s, "training.cross_entropy_fusion_impl") &&
      s.training.cross_entropy_impl == TrainingSpec::CrossEntropyImpl::te &&
      (!s.training.cross_entropy_fusion || (k.preset != P::megatron_core && k.preset != P::nemo))) {
    reject(s, "training.cross_entropy_fusion_impl", "te",
           fmt::format("Megatron-Core's choice of fused cross-entropy: needs "
                       "cross_entropy_fusion true and the megatron-core or nemo stack "
                       "(cross_entropy_fusion is {}, preset {})",
                       s.training.cross_entropy_fusion ? "true" : "false", to_string(k.preset)));
  }
  // The optimizer step's kernels. Only Adam/AdamW's foreach sequence is counted, so the
  // other optimizers keep their one fused pass.
  // bitsandbytes' 8-bit state is its own kernel, not torch's foreach path.
  const bool adam = (s.training.optimizer == Optimizer::adam ||
                     s.training.optimizer == Optimizer::adamw) &&
                    s.training.optimizer_state_dtype != StateDtype::int8;
  if (is_set(s, "training.stack.optimizer")) {
    if (k.optimizer != StackSpec::OptimizerKernels::fused && !adam) {
      reject(s, "training.stack.optimizer", to_string(k.optimizer),
             fmt::format("torch's {} kernel sequence is counted for adam and adamw with "
                         "fp32 or bf16 state only (training.optimizer is {}, "
                         "optimizer_state_dtype {})",
                         to_string(k.optimizer), to_string(s.training.optimizer),
                         to_string(s.training.optimizer_state_dtype)));
    }
  } else {
    // Megatron-Core and NeMo step Transformer Engine's FusedAdam, else Apex's
    // (megatron/core/optimizer/__init__.py lines 14-20 at NVIDIA/Megatron-LM d98e8a64);
    // DeepSpeed builds its FusedAdam for an "Adam"/"AdamW" config unless torch_adam
    // (deepspeed/runtime/engine.py, _configure_basic_optimizer, lines 1416-1439 at
    // microsoft/DeepSpeed 38327e07); torchtitan's OptimizersContainer defaults to
    // implementation "fused" (torchtitan/components/optimizer/optimizer.py lines 110-111
    // at pytorch/torchtitan b5bcd76c). FSDP1 trainers construct torch.optim.AdamW without
    // `fused` or `foreach` (foundation-model-stack/fms-fsdp 5a296af,
    // main_training_llama.py lines 113-115), and torch then picks foreach for CUDA tensors
    // (`_default_to_fused_or_foreach(..., use_fused=False)`, torch/optim/adam.py at
    // pytorch/pytorch dc80ccde). torch.compile compiles the model and the loss, not the
    // optimizer step (CompileConfig.components, torchtitan/config/configs.py at b5bcd76c).
    k.optimizer = k.preset == P::fsdp1 && adam ? StackSpec::OptimizerKernels::foreach
                                       : StackSpec::OptimizerKernels::fused;
  }
  // The norm's kernels. Only an RMSNorm has an unfused chain here: a LayerNorm in PyTorch
  // models is nn.LayerNorm / F.layer_norm, one ATen kernel each way, like the fused ones.
  // Separate projections: eager autograd's sums of their input gradients. Compiled, the
  // sum is part of an Inductor kernel (not modelled), so the setting is eager only.
  if (k.projections == StackSpec::Projections::separate) {
    if (!s.model.is_transformer()) {
      reject(s, "training.stack.projections", "separate", "applies to transformer models only");
    } else if (k.compile) {
      reject(s, "training.stack.projections", "separate",
             "counts eager autograd's gradient sums; under torch.compile (stack.compile true) "
             "Inductor fuses them into its own kernels, which orrery does not model");
    }
  }
  const bool rms = s.model.is_transformer() && s.model.norm == Norm::rmsnorm;
  if (is_set(s, "training.stack.norm")) {
    if (k.norm == StackSpec::NormKernels::unfused && !rms) {
      reject(s, "training.stack.norm", "unfused",
             s.model.is_transformer()
                 ? fmt::format("the unfused chain is an RMSNorm's (model.norm is {}, which "
                               "PyTorch runs as one F.layer_norm kernel)",
                               to_string(s.model.norm))
                 : std::string("applies to transformer models only"));
    }
  } else {
    // Megatron-Core runs Transformer Engine's RMSNorm / LayerNorm kernels (TENorm,
    // megatron/core/extensions/transformer_engine.py, and TELayerNormColumnParallelLinear
    // in megatron/core/models/gpt/gpt_layer_specs.py at NVIDIA/Megatron-LM d98e8a64), NeMo
    // the same modules; Megatron-DeepSpeed Apex's fused kernel (MixedFusedLayerNorm,
    // megatron/model/fused_layer_norm.py at bigscience-workshop/Megatron-DeepSpeed
    // 8387ae17). FSDP1 trainers run the model's own Python RMSNorm: Hugging Face's
    // LlamaRMSNorm (src/transformers/models/llama/modeling_llama.py at huggingface/
    // transformers 00227283) and ibm-fms's LayerNormParameterized with
    // use_high_precision_pow (fms/modules/layernorm.py and fms/models/llama.py at
    // foundation-model-stack/foundation-model-stack d2e59c2d, the version fms-fsdp
    // 4ffb9bd trained), x.float(), pow, mean, + eps, rsqrt, product, cast, weight.
    // torchtitan's RMSNorm is nn.RMSNorm (torchtitan/models/common/nn_modules.py at
    // pytorch/torchtitan b5bcd76c), which PyTorch runs as one fused CUDA kernel each way
    // (aten::_fused_rms_norm with its own backward: pytorch/pytorch pull requests 153666
    // and 164289). Compiled, Inductor fuses the chain into one kernel.
    k.norm = k.preset == P::fsdp1 && !c && rms ? StackSpec::NormKernels::unfused
                                               : StackSpec::NormKernels::fused;
  }
  // The fused-attention kernel. Megatron-Core and NeMo run Transformer Engine's
  // DotProductAttention (TEDotProductAttention, megatron/core/extensions/
  // transformer_engine.py at NVIDIA/Megatron-LM d98e8a64), which takes cuDNN's fused
  // attention over flash-attn on Hopper since TE v1.2 (NVIDIA/TransformerEngine 32db3928,
  // transformer_engine/pytorch/attention.py) and on Hopper and newer since v2.0 (544dd14b),
  // FlashAttention-2 on Ampere: cudnn where the GPU preset gives its rate
  // (cudnn_attention_efficiency, measured on Hopper), else flash2 (docs/model.md, "cuDNN's
  // fused attention"). The other presets run FlashAttention-2: PyTorch models call
  // F.scaled_dot_product_attention (ibm-fms fms/modules/attention.py line 203 at
  // foundation-model-stack/foundation-model-stack d2e59c2d; torchtitan), whose flash
  // backend is FlashAttention-2 since PyTorch 2.2 (release notes, January 2024: "SDPA now
  // supports FlashAttention-2"). flash1 is for runs that name the older kernel (LLM
  // Foundry's attn_impl triton or flash with flash-attn 1.x).
  if (is_set(s, "training.stack.attention") && !s.training.flash_attention) {
    reject(s, "training.stack.attention", to_string(k.attention),
           "names the fused-attention kernel, but training.flash_attention is false (the "
           "unfused softmax path has no such kernel)");
  }
  if (is_set(s, "training.stack.attention") &&
      k.attention == StackSpec::AttentionKernel::cudnn &&
      !s.cluster.gpu.cudnn_attention_efficiency) {
    reject(s, "training.stack.attention", to_string(k.attention),
           "names cuDNN's fused attention, but cluster.gpu gives no cudnn_attention_efficiency "
           "(its rate on this GPU); set it, or choose flash2");
  }
  // Transformer Engine (Megatron-Core, NeMo) runs cuDNN's fused attention where the GPU
  // preset measured its rate (above); elsewhere FlashAttention-2's rate.
  if (!is_set(s, "training.stack.attention"))
    k.attention = (k.preset == P::megatron_core || k.preset == P::nemo) &&
                          s.cluster.gpu.cudnn_attention_efficiency
                      ? StackSpec::AttentionKernel::cudnn
                      : StackSpec::AttentionKernel::flash2;
  // Host time per kernel issued. Every preset drives its kernels from Python, one op at a
  // time (Megatron-Core, NeMo and DeepSpeed too: their fused kernels are still launched
  // op by op; none captures CUDA graphs by default). The default is the system's own
  // figure, cluster.gpu.host_overhead (scenario/presets/gpus.yaml: a torch.nn.Linear
  // forward's host time measured on a DGX H100, 13.48 us, and on a GB200's Grace host,
  // 37.08 us, NVIDIA/TransformerEngine issue 2053), and a GPU that gives none takes the
  // DGX H100's. A forward op's figure: the same stands for the backward's kernels (issued
  // by autograd's C++ engine, no Python; likely less) and for Inductor's launcher of a
  // compiled graph's kernels; no measurement of either was found. A file sets 0 for a
  // CUDA-graphed step.
  if (!is_set(s, "training.stack.host_overhead"))
    k.host_overhead = s.cluster.gpu.host_overhead.value_or(Seconds(13.48e-6));
  // The unfused accumulations are those of Megatron-LM's data-parallel wrappers (its own
  // DDP's gradient-buffer hook, megatron/core/distributed/distributed_data_parallel.py at
  // NVIDIA/Megatron-LM d98e8a64; the 2021 wrappers' param.grad, megatron/model/
  // distributed.py at 6985e589): not DeepSpeed's or PyTorch FSDP's, and not the FSDP units'
  // path (zero_stage 3), which the simulator builds apart.
  // A PyTorch-native stack without sharding (Hugging Face's Trainer, a plain training loop,
  // DDP under no_sync) accumulates as autograd does: AccumulateGrad keeps the first
  // micro-batch's gradient in param.grad and adds each later one into it in place
  // (accumulateGrad in torch/csrc/autograd/functions/accumulate_grad.h, pytorch/pytorch
  // 00d40e7f: variable_grad += new_grad), the autograd mode's passes; that is its default
  // where param.grad is the gradient the optimizer reads (gradient_dtype in the parameters'
  // format, below).
  using G = StackSpec::GradAccumulation;
  // (Runs before complete_zero_stage: fsdp: true is stage 3 already.)
  const bool plain_torch = torch_native && s.parallelism.zero_stage == 0 && !s.parallelism.fsdp &&
                           s.parallelism.pipeline_engine == PipelineEngine::megatron;
  const bool megatron_wrappers = (k.preset == P::megatron_core || k.preset == P::nemo) &&
                                 s.parallelism.pipeline_engine == PipelineEngine::megatron &&
                                 s.parallelism.zero_stage < 3;
  if (k.gradient_accumulation != G::fused &&
      !(megatron_wrappers || (plain_torch && k.gradient_accumulation == G::autograd))) {
    reject(s, "training.stack.gradient_accumulation", to_string(k.gradient_accumulation),
           fmt::format("the unfused accumulations are modelled for Megatron's data-parallel "
                       "wrappers (presets megatron-core and nemo, pipeline_engine megatron, "
                       "zero_stage 0-2) and, autograd only, for the fsdp1 and fsdp2 stacks "
                       "without sharding (zero_stage 0) (preset is {}, pipeline_engine {}, "
                       "zero_stage {})",
                       to_string(k.preset), to_string(s.parallelism.pipeline_engine),
                       s.parallelism.zero_stage));
  }
  // autograd accumulates in param.grad, the parameters' own format: Megatron-LM asserts a
  // contiguous buffer (hook) for fp32 accumulation (--accumulate-allreduce-grads-in-fp32,
  // megatron/arguments.py at 6985e589).
  const Precision pr = s.training.precision;
  const double param_bytes = pr == Precision::fp32 || pr == Precision::tf32 ? 4.0 : 2.0;
  if (!is_set(s, "training.stack.gradient_accumulation") && plain_torch &&
      bytes_per_value(s.training.gradient_dtype) == param_bytes) {
    k.gradient_accumulation = G::autograd;
  }
  if (k.gradient_accumulation == G::autograd &&
      bytes_per_value(s.training.gradient_dtype) != param_bytes) {
    reject(s, "training.stack.gradient_accumulation", "autograd",
           fmt::format("accumulates in param.grad, in the parameters' format; gradient_dtype {} "
                       "needs Megatron's gradient buffer (hook)",
                       to_string(s.training.gradient_dtype)));
  }
}

// training.stack.optimizer per_parameter: the tensors torch's optimizer is handed are
// counted for plain data parallelism (the model's own parameters) and for ZeRO-3 under
// FSDP1 (one flat parameter a unit) or FSDP2 (each parameter's shard); a ZeRO-1/2 or
// DeepSpeed / Megatron sharded optimizer hands it flat buffers of its own, and the CPU
// share of an offloaded step is torch's CPU optimizer, neither counted.
void check_per_parameter_optimizer(const Scenario& s) {
  if (s.training.stack.optimizer != StackSpec::OptimizerKernels::per_parameter) return;
  using I = ParallelismSpec::FsdpImpl;
  const ParallelismSpec& p = s.parallelism;
  const bool counted =
      p.zero_stage == 0 ||
      (p.zero_stage >= 3 && (p.fsdp_impl == I::fsdp1 || p.fsdp_impl == I::fsdp2));
  if (!counted) {
    reject(s, "training.stack.optimizer", "per_parameter",
           fmt::format("the parameter tensors are counted without ZeRO (zero_stage 0) or "
                       "under FSDP1 / FSDP2 (zero_stage 3); this scenario has {}",
                       p.zero_stage >= 3
                           ? fmt::format("ZeRO-3 implementation {}", to_string(p.fsdp_impl))
                           : fmt::format("zero_stage {}, whose sharded optimizer steps flat "
                                         "buffers of its own",
                                         p.zero_stage)));
  }
  if (s.model.moe) {
    reject(s, "training.stack.optimizer", "per_parameter",
           "is not counted for MoE models (how each framework stores and shards the experts' "
           "weights, one tensor an expert or stacked, is not modelled)");
  }
  if (s.training.optimizer_offload) {
    reject(s, "training.stack.optimizer", "per_parameter",
           "is not counted with training.optimizer_offload (the offloaded share steps in "
           "torch's CPU optimizer)");
  }
}

// Fills in the parallelism defaults (dp, schedule, ZeRO stage) and checks the split against
// the cluster and, for transformers, the model. The checks run in this order, so the first
// error a bad file reports does not change.
void complete_parallelism(Scenario& s) {
  complete_degrees(s);
  complete_pipeline_layout(s);
  complete_schedule(s);
  complete_zero_stage(s);
  check_schedule_preconditions(s);
  check_sharding(s);
  if (!s.model.is_transformer()) return;
  check_tensor_split(s);
  check_pipeline_split(s);
  check_context_and_expert_split(s);
}

void complete_training(Scenario& s) {
  const TrainingSpec& t = s.training;
  const Dtype needed = compute_dtype(t.precision);
  if (!s.cluster.gpu.peak.count(needed)) {
    reject(s, "training.precision", to_string(t.precision),
           fmt::format("the GPU '{}' has no {} peak rate (it does not support the format)",
                       s.cluster.gpu.name, to_string(needed)));
  }
  if (t.precision == Precision::fp32 || t.precision == Precision::tf32) {
    if (is_set(s, "training.gradient_dtype") && t.gradient_dtype != Dtype::fp32) {
      reject(s, "training.gradient_dtype", to_string(t.gradient_dtype),
             "fp32/tf32 training keeps fp32 gradients");
    }
  }
  // The state precisions are Adam's: Megatron-Core's precision-aware optimizer asserts
  // optimizer == 'adam' (megatron/core/optimizer/optimizer_config.py at NVIDIA/Megatron-LM
  // d98e8a64; its 'adam' is AdamW with decoupled weight decay), and bitsandbytes' 8-bit
  // blockwise state is orrery's for Adam/AdamW only.
  const bool adam = t.optimizer == Optimizer::adam || t.optimizer == Optimizer::adamw;
  if (!adam && t.optimizer_state_dtype != StateDtype::fp32) {
    reject(s, "training.optimizer_state_dtype", to_string(t.optimizer_state_dtype),
           fmt::format("applies to optimizer adam or adamw only (optimizer is {})",
                       to_string(t.optimizer)));
  }
  if (!adam && t.main_params_dtype != MainParams::fp32) {
    reject(s, "training.main_params_dtype", to_string(t.main_params_dtype),
           fmt::format("applies to optimizer adam or adamw only (optimizer is {})",
                       to_string(t.optimizer)));
  }
  // Optimizer CPU offload: Megatron-Core's hybrid device optimizer needs the
  // precision-aware optimizer, which is Adam's (arguments.py at d98e8a64), keeps an fp32
  // master on the host (hybrid_optimizer.py, param_update_in_fp32) and needs the host's
  // figures to be timed.
  if (t.optimizer_offload) {
    const std::string key = "training.optimizer_offload";
    if (!adam) {
      reject(s, key, "",
             fmt::format("applies to optimizer adam or adamw only (optimizer is {})",
                         to_string(t.optimizer)));
    }
    if (t.precision == Precision::fp32 || t.precision == Precision::tf32 ||
        t.main_params_dtype != MainParams::fp32) {
      reject(s, key, "",
             "the offloaded optimizer keeps an fp32 master copy: needs 16-bit or fp8 training "
             "with main_params_dtype fp32");
    }
    if (!s.cluster.host.given()) {
      reject(s, key, "",
             "needs the host figures cluster.host.pcie_bandwidth, memory_bandwidth and memory "
             "(the system preset has none)");
    }
  }
  // Activation offload as Megatron-Core allows it (transformer_config.py at d98e8a64,
  // lines 1884-1899): fewer layers than the model has, no pipeline parallelism, no
  // activation recomputation; and the host's PCIe figure to time it.
  if (t.activation_offload) {
    const std::string key = "training.activation_offload.layers";
    const int n = t.activation_offload->layers;
    if (!s.model.is_transformer()) {
      reject(s, "training.activation_offload", "", "offloads transformer layers' activations");
    }
    if (n >= s.model.layers) {
      reject(s, key, std::to_string(n),
             fmt::format("must be below the model's layers ({}), as Megatron-Core requires",
                         s.model.layers));
    }
    if (s.parallelism.pp > 1) {
      reject(s, "training.activation_offload", "",
             fmt::format("Megatron-Core offloads activations without pipeline parallelism only "
                         "(pp is {})",
                         s.parallelism.pp));
    }
    if (t.recompute != Recompute::none) {
      reject(s, "training.activation_offload", "",
             fmt::format("Megatron-Core refuses CPU offloading with activation recomputation "
                         "(recompute is {})",
                         to_string(t.recompute)));
    }
    if (!s.cluster.host.given()) {
      reject(s, "training.activation_offload", "",
             "needs the host figures cluster.host.pcie_bandwidth, memory_bandwidth and memory "
             "(the system preset has none)");
    }
  }
  // A recompute module the model does not have (Megatron-Core refuses mla_up_proj without
  // multi-latent attention, transformer_config.py at d98e8a64; the MoE modules would
  // re-run nothing).
  const unsigned needs_moe = kRecomputeMoe | kRecomputeMoeAct | kRecomputeSharedExperts;
  for (const RecomputeModule m : kRecomputeModuleOrder) {
    if ((t.recompute_modules & m) == 0) continue;
    std::string lacks;
    if (m == kRecomputeMlaUpProj && !s.model.mla) lacks = "multi-latent attention (model.mla)";
    if ((m & needs_moe) && !s.model.moe) lacks = "MoE layers (model.moe)";
    if (m == kRecomputeSharedExperts && s.model.moe && s.model.moe->shared_experts == 0)
      lacks = "shared experts (model.moe.shared_experts)";
    if (!lacks.empty()) {
      reject(s, "training.recompute_modules", recompute_module_name(m),
             fmt::format("the model has no {} for this module to recompute", lacks));
    }
  }
  if ((t.precision == Precision::fp32 || t.precision == Precision::tf32) &&
      t.main_params_dtype != MainParams::fp32) {
    reject(s, "training.main_params_dtype", to_string(t.main_params_dtype),
           "fp32/tf32 training has no separate master copy: its weights are the fp32 ones");
  }
}

// training.fp8: only with fp8 precision, layers and sharding that fit the recipe; the
// weight cache's default resolved (on unless ZeRO-3/FSDP, which frees gathered weights
// after each layer: Megatron-Core caches them by default, disable_parameter_transpose_cache
// false, passing TE's is_first_microbatch).
void complete_fp8(Scenario& s) {
  TrainingSpec& t = s.training;
  if (!t.fp8) return;
  if (t.precision != Precision::fp8) {
    reject(s, "training.fp8", "",
           fmt::format("the FP8 recipe applies to training.precision fp8 (it is {}); remove "
                       "the section or set precision: fp8",
                       to_string(t.precision)));
  }
  Fp8Spec& f = *t.fp8;
  if (f.bf16_first + f.bf16_last > 0) {
    const std::string key = f.bf16_first > 0 ? "training.fp8.bf16_layers.first"
                                             : "training.fp8.bf16_layers.last";
    if (!s.model.is_transformer()) {
      reject(s, key, std::to_string(f.bf16_first > 0 ? f.bf16_first : f.bf16_last),
             "bf16 layers are transformer layers; a CNN keeps GEMMs in bf16 through gemms");
    }
    if (f.bf16_first + f.bf16_last > s.model.layers) {
      reject(s, key, std::to_string(f.bf16_first > 0 ? f.bf16_first : f.bf16_last),
             fmt::format("first + last = {} exceeds the model's {} layers",
                         f.bf16_first + f.bf16_last, s.model.layers));
    }
  }
  const bool zero3 = s.parallelism.zero_stage >= 3;
  if (f.rowwise()) {
    // torchao's row-wise recipes: float8 all-gathers support tensor-wise scaling only
    // (Float8LinearConfig refuses enable_fsdp_float8_all_gather with axis-wise weights,
    // torchao/float8/config.py; its float8 TP styles "assume tensorwise scaling",
    // float8_tensor_parallel.py; pytorch/ao 36027d82), and a Float8Linear casts its weight
    // on every call, keeping no copy across micro-batches (float8_linear.py).
    auto why = [](const char* what, const char* instead) {
      return fmt::format(
          "torchao's row-wise recipes {}; use {} or a tensor-wise scaling (delayed, current)", what,
          instead);
    };
    if (f.param_allgather_fp8) {
      reject(s, "training.fp8.communication.param_allgather", "fp8",
             why("all-gather parameters in bf16 (float8 FSDP all-gathers are tensor-wise only)",
                 "param_allgather: bf16"));
    }
    if (f.tp_allgather_fp8) {
      reject(s, "training.fp8.communication.tp_allgather", "fp8",
             why("all-gather TP inputs in bf16 (float8 TP styles are tensor-wise only)",
                 "tp_allgather: bf16"));
    }
    if (f.weight_cache.value_or(false)) {
      reject(s, "training.fp8.weight_cache", "true",
             why("cast the weights on every micro-batch (no fp8 weight cache)",
                 "weight_cache: false"));
    }
    f.weight_cache = false;
  }
  if (!f.weight_cache) {
    f.weight_cache = !zero3;
  } else if (*f.weight_cache && zero3) {
    reject(s, "training.fp8.weight_cache", "true",
           "ZeRO-3/FSDP frees each layer's gathered weights after use, so there is no whole "
           "weight to cache across micro-batches: use weight_cache: false");
  }
  // Megatron-Core's distributed optimizer (zero_stage 1 or 2 under the megatron-core or
  // nemo stack) gathers its updated parameters too, and --fp8-param-gather puts them in fp8
  // there as under Megatron-FSDP (fp8_model_init weights, the fp32 main shard cast into
  // them after each step: quantize_param_shard, megatron/core/fp8_utils.py and
  // distrib_optimizer.py at NVIDIA/Megatron-LM core_v0.14.0 23e00ed0).
  using Preset = StackSpec::Preset;
  const Preset stack = s.training.stack.preset;
  const bool megatron_distopt = s.parallelism.zero_stage >= 1 && s.parallelism.zero_stage <= 2 &&
                                (stack == Preset::megatron_core || stack == Preset::nemo);
  if (f.param_allgather_fp8 && !zero3 && !megatron_distopt) {
    reject(s, "training.fp8.communication.param_allgather", "fp8",
           "applies to ZeRO-3/FSDP parameter all-gathers (parallelism.zero_stage 3 or fsdp) and "
           "to Megatron-Core's distributed optimizer (zero_stage 1 or 2, stack megatron-core "
           "or nemo)");
  }
  // Megatron-FSDP's fp8 parameter gathers gather the model's own fp8 weights
  // (fp8_param_gather builds them under TE's fp8_model_init and casts the fp32 main shard
  // into them after each optimizer step, quantize_param_shard; param_and_grad_buffer.py at
  // NVIDIA/Megatron-LM core_v0.14.0 23e00ed0). Per-tensor Float8Tensors only: block and
  // MXFP8 weights keep the cast charged every micro-batch.
  const bool per_tensor =
      f.scaling == Fp8Spec::Scaling::delayed || f.scaling == Fp8Spec::Scaling::current;
  f.fp8_weights = f.param_allgather_fp8 && per_tensor &&
                  ((zero3 && s.parallelism.fsdp_impl == ParallelismSpec::FsdpImpl::megatron_fsdp) ||
                   megatron_distopt);
  // Under the distributed optimizer the weights stay whole between steps, so TE keeps the
  // transpose it makes from them (Float8Tensor's cached transpose, dropped only when the
  // data changes, i.e. at the next step's gather; only Megatron-FSDP releases it after
  // each unit, release_params_fp8_transpose_cache).
  f.fp8_transpose_kept = f.fp8_weights && !zero3;
}

// training.fp4: only with precision fp4 (whose peak complete_training checked), created
// with its defaults under fp4; bf16 layers that the model has; the weight cache as fp8's
// (off under ZeRO-3/FSDP, which frees each gathered weight after use).
void complete_fp4(Scenario& s) {
  TrainingSpec& t = s.training;
  if (t.fp4 && t.precision != Precision::fp4) {
    reject(s, "training.fp4", "",
           fmt::format("the FP4 recipe applies to training.precision fp4 (it is {}); remove "
                       "the section or set precision: fp4",
                       to_string(t.precision)));
  }
  if (t.precision != Precision::fp4) return;
  if (!t.fp4) t.fp4 = Fp4Spec{};
  Fp4Spec& f = *t.fp4;
  if (f.bf16_first + f.bf16_last > 0) {
    const std::string key =
        f.bf16_first > 0 ? "training.fp4.bf16_layers.first" : "training.fp4.bf16_layers.last";
    const std::string value = std::to_string(f.bf16_first > 0 ? f.bf16_first : f.bf16_last);
    if (!s.model.is_transformer()) {
      reject(s, key, value, "bf16 layers are transformer layers; this model has none");
    }
    if (f.bf16_first + f.bf16_last > s.model.layers) {
      reject(s, key, value,
             fmt::format("first + last = {} exceeds the model's {} layers",
                         f.bf16_first + f.bf16_last, s.model.layers));
    }
  }
  f.weight_cache = s.parallelism.zero_stage < 3;
}

// training.target in samples: token figures divided by seq_len; B_noise from the target
// loss through Kaplan et al. 2020's B_crit(L) = 2.1e8 tokens * L^-4.8 (arXiv:2001.08361,
// Figure 10; shared data row kaplan20-bcrit), taking B_noise ~ B_crit as that paper does.
void complete_target(Scenario& s) {
  if (s.cost.gpu_idle_power && *s.cost.gpu_idle_power > s.cost.gpu_power) {
    reject(s, "cost.gpu_idle_power", format_watts(*s.cost.gpu_idle_power),
           fmt::format("exceeds the average draw cost.gpu_power ({})",
                       format_watts(s.cost.gpu_power)));
  }
  if (!s.training.target) {
    if (s.reliability) {
      reject(s, "reliability", "",
             "goodput is a whole-run figure: set training.target (tokens, samples or steps)");
    }
    return;
  }
  TargetSpec& t = *s.training.target;
  const bool tokens = t.kind == TargetSpec::Kind::tokens || t.e_min_in_tokens ||
                      t.b_noise_in_tokens || t.loss.has_value();
  if (tokens && !s.model.is_transformer()) {
    reject(s, "training.target", "",
           "tokens and language-model losses apply to transformers; give samples (images) "
           "for a CNN");
  }
  const double seq = static_cast<double>(s.model.seq_len);
  if (t.e_min_in_tokens) t.e_min /= seq;
  if (t.b_noise_in_tokens) t.b_noise /= seq;
  t.e_min_in_tokens = t.b_noise_in_tokens = false;
  if (t.loss) t.b_noise = 2.1e8 * std::pow(*t.loss, -4.8) / seq;
}

// Faults name parts of this cluster and pipeline (leaf switches are checked by the
// simulator, which builds the fabric).
void check_faults(const Scenario& s) {
  for (size_t i = 0; i < s.faults.size(); ++i) {
    const FaultSpec& f = s.faults[i];
    auto in_range = [&](const char* key, int value, int limit, const char* what) {
      if (value >= limit) {
        reject(s, fmt::format("faults[{}].{}", i, key), std::to_string(value),
               fmt::format("the scenario has {} {}", limit, what));
      }
    };
    if (f.kind == FaultSpec::Kind::straggler) in_range("stage", f.stage, s.parallelism.pp, "pipeline stages");
    if (f.kind == FaultSpec::Kind::failed_node ||
        (f.kind == FaultSpec::Kind::slow_link && f.link == FaultSpec::Link::nic))
      in_range("node", f.node, s.cluster.nodes, "nodes");
    if (f.kind == FaultSpec::Kind::slow_link && f.link == FaultSpec::Link::nvlink)
      in_range("gpu", f.gpu, s.cluster.gpus(), "GPUs");
    if (f.kind == FaultSpec::Kind::failed_link && f.link == FaultSpec::Link::nic) {
      if (s.cluster.nodes < 2)
        reject(s, fmt::format("faults[{}].link", i), "nic",
               "a single-node cluster sends nothing through its NICs");
      in_range("node", f.node, s.cluster.nodes, "nodes");
      in_range("nic", f.nic, s.cluster.inter_node.nics_per_node, "NICs per node");
    }
  }
}

void complete_compression(Scenario& s) {
  using S = CompressionSpec::Scheme;
  const CompressionSpec& c = s.training.compression;
  if (c.scheme == S::none) return;
  const char* key = "training.gradient_compression.scheme";
  if (s.parallelism.zero_stage >= 3) {
    reject(s, key, to_string(c.scheme),
           "compression is modelled on data-parallel gradient buckets (ZeRO stages 0-2); "
           "ZeRO-3/FSDP reduce-scatters per layer");
  }
  if ((c.scheme == S::fp16 || c.scheme == S::bf16) && s.training.gradient_dtype != Dtype::fp32) {
    reject(s, key, to_string(c.scheme),
           fmt::format("gradients are already {} (training.gradient_dtype); casting applies to "
                       "fp32 gradients",
                       to_string(s.training.gradient_dtype)));
  }
  if (c.scheme == S::local_sgd && s.parallelism.zero_stage >= 1) {
    reject(s, key, to_string(c.scheme),
           "local SGD keeps a whole replica's optimizer state per rank: use zero_stage 0");
  }
}

}  // namespace

Scenario resolve(RawScenario raw) {
  Scenario s = std::move(raw.draft());
  complete_cluster(s);
  complete_price(s);
  if (s.model.family == ModelFamily::cnn) {
    complete_cnn(s);
  } else {
    complete_transformer(s);
  }
  complete_stack(s);
  s.training.runtime_reserve_set = is_set(s, "training.runtime_reserve");
  s.training.fp8_single_copy = s.cluster.gpu.fp8_non_tn_gemm;
  if (!is_set(s, "training.memory.nccl_channels") && s.cluster.gpu.nccl_channels) {
    s.training.memory.nccl_channels = *s.cluster.gpu.nccl_channels;
  }
  complete_parallelism(s);
  complete_training(s);
  check_per_parameter_optimizer(s);
  complete_fp8(s);
  complete_fp4(s);
  complete_target(s);
  complete_compression(s);
  check_faults(s);
  // The promise every reader of training.fp8 relies on instead of re-checking precision.
  ORRERY_CHECK(!s.training.fp8 || s.training.precision == Precision::fp8,
               "a validated scenario has an FP8 recipe only under precision fp8");
  ORRERY_CHECK(s.training.fp4.has_value() == (s.training.precision == Precision::fp4),
               "a validated scenario has an FP4 recipe exactly under precision fp4");
  return s;
}

}  // namespace orrery
