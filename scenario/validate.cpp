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
#include "scenario/validate_parts.h"

namespace orrery {
namespace {

using validate_detail::check_per_parameter_optimizer;
using validate_detail::complete_parallelism;
using validate_detail::complete_stack;
using validate_detail::complete_grad_buckets;
using validate_detail::is_set;
using validate_detail::reject;
using validate_detail::require;


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
  // A node holds whole machines (a slow one slows its GPUs together). The key to blame is
  // the one the scenario's own file wrote: a system preset's machine size and the file's
  // node size, or the other way round.
  if (const int m = c.slow_nodes.machine_gpus;
      m > 0 && m < c.gpus_per_node && c.gpus_per_node % m != 0) {
    const auto machine = s.origin.find("cluster.slow_nodes.machine_gpus");
    if (machine != s.origin.end() && machine->second.file != s.file &&
        is_set(s, "cluster.gpus_per_node")) {
      reject(s, "cluster.gpus_per_node", std::to_string(c.gpus_per_node),
             fmt::format("a node holds whole machines: must be a multiple of "
                         "cluster.slow_nodes.machine_gpus ({}, the system preset's), or set "
                         "cluster.slow_nodes.machine_gpus",
                         m));
    }
    reject(s, "cluster.slow_nodes.machine_gpus", std::to_string(m),
           fmt::format("a node holds whole machines: must divide gpus_per_node ({})",
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
  if (m.mtp_layers > 0 && m.family != ModelFamily::decoder) {
    reject(s, "model.mtp_layers", std::to_string(m.mtp_layers),
           "multi-token prediction layers follow a decoder's layers");
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
  // Combinations Megatron-Core's TransformerConfig refuses (transformer_config.py lines
  // 1991-2005 at NVIDIA/Megatron-LM d98e8a64): recomputing the shared experts while they
  // overlap the dispatch, and under delayed fp8 scaling the moe_act and layernorm modules
  // (their recompute would update the amax history twice).
  if (t.recompute == Recompute::selective) {
    if ((t.recompute_modules & kRecomputeSharedExperts) && s.model.moe &&
        s.model.moe->shared_expert_overlap) {
      reject(s, "training.recompute_modules", "shared_experts",
             "Megatron-Core refuses recomputing the shared experts with "
             "model.moe.shared_expert_overlap");
    }
    const bool delayed = t.precision == Precision::fp8 && t.fp8 &&
                         t.fp8->scaling == Fp8Spec::Scaling::delayed;
    for (const RecomputeModule m : {kRecomputeMoeAct, kRecomputeLayernorm}) {
      if (!delayed || (t.recompute_modules & m) == 0) continue;
      reject(s, "training.recompute_modules", recompute_module_name(m),
             "Megatron-Core refuses recomputing moe_act and layernorm under delayed fp8 "
             "scaling (training.fp8.scaling: delayed)");
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
  // MXFP8 parameters under the distributed optimizer are gathered in bf16, into a buffer
  // the gradients share (param_and_grad_buffer.py lines 1160-1180 at NVIDIA/Megatron-LM
  // d98e8a64: "Create a shared buffer for param AG and grad RS", param_data a bf16 view).
  if (f.param_allgather_fp8 && !zero3 && megatron_distopt &&
      f.scaling == Fp8Spec::Scaling::mxfp8) {
    reject(s, "training.fp8.communication.param_allgather", "fp8",
           "Megatron-Core's distributed optimizer gathers MXFP8 parameters in bf16, through the "
           "buffer the gradients share, even with --fp8-param-gather; use param_allgather: bf16 "
           "and weights: fp8 (--fp8-param-gather's MXFP8 weights)");
  }
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
  const bool per_tensor = f.per_tensor();
  const bool megatron_fsdp =
      zero3 && s.parallelism.fsdp_impl == ParallelismSpec::FsdpImpl::megatron_fsdp;
  // Per-tensor scaling: --fp8-param-gather is one switch, the fp8 weights and their fp8
  // gather, so `weights` follows param_allgather and may only repeat it.
  const bool per_tensor_fp8 =
      f.param_allgather_fp8 && per_tensor && (megatron_fsdp || megatron_distopt);
  // MXFP8 under the distributed optimizer: --fp8-param-gather keeps the weights as MXFP8
  // tensors and gathers bf16 through the gradient buffer (--reuse-grad-buf-for-mxfp8-param-ag,
  // which Megatron-Bridge sets with it), so `weights: fp8` says it on its own.
  // Only Megatron-Core's own buffers (grad_buckets megatron-core, zero_stage 1: a whole
  // gradient buffer for the gather to land in) do that: NeMo 1.x's Apex optimizer refuses
  // MXFP8 parameters ("Distributed optimizer currently does not support MXFP8
  // parameters", nemo/core/optim/distributed_adam.py at NVIDIA/NeMo 8cfedd72), and at
  // zero_stage 2 the sweep's Megatron line is Megatron-FSDP, which turns the reuse off
  // (arguments.py at d98e8a64).
  const bool mxfp8_fp8 = f.scaling == Fp8Spec::Scaling::mxfp8 && s.parallelism.zero_stage == 1 &&
                         s.training.grad_buckets == TrainingSpec::GradBuckets::megatron_core;
  if (f.weights_key && *f.weights_key && !per_tensor_fp8 && !mxfp8_fp8) {
    std::string why;
    if (per_tensor) {
      why = f.param_allgather_fp8
                ? "delayed and current scaling keep fp8 weights only under Megatron-FSDP or "
                  "Megatron-Core's distributed optimizer (zero_stage 1 or 2, stack megatron-core "
                  "or nemo); torchao's FSDP2 float8 gathers cast bf16 weights"
                : "delayed and current scaling keep fp8 weights only where they are gathered in "
                  "fp8 (Megatron-Core's --fp8-param-gather): set communication.param_allgather: "
                  "fp8 under Megatron-FSDP or the distributed optimizer (zero_stage 1 or 2, stack "
                  "megatron-core or nemo)";
    } else if (f.scaling == Fp8Spec::Scaling::mxfp8) {
      why = "orrery models MXFP8 weights kept as fp8 tensors only under Megatron-Core's "
            "distributed optimizer with its own buffers (zero_stage 1, stack megatron-core or "
            "nemo, grad_buckets megatron-core), whose bf16 gather lands in the gradient buffer; "
            "use weights: bf16";
    } else {
      why = fmt::format("no implementation orrery models keeps {} weights as fp8 tensors; use "
                        "weights: bf16",
                        to_string(f.scaling));
    }
    reject(s, "training.fp8.weights", "fp8", why);
  }
  if (f.weights_key && !*f.weights_key && per_tensor_fp8) {
    reject(s, "training.fp8.weights", "bf16",
           "Megatron-Core's fp8 parameter gathers (communication.param_allgather: fp8 with delayed "
           "or current scaling) gather the model's own fp8 weights; drop weights or gather in "
           "bf16");
  }
  f.fp8_weights = per_tensor_fp8 || (mxfp8_fp8 && f.weights_key.value_or(false));
  if (f.fp8_weights && !per_tensor && !f.weight_cache.value_or(true)) {
    reject(s, "training.fp8.weight_cache", "false",
           "with weights: fp8 the MXFP8 weights are the copies kept across micro-batches; drop "
           "weight_cache");
  }
  if (f.fp8_weights && !per_tensor && s.training.overlap_param_gather_with_optimizer_step) {
    // OptimizerConfig refuses the reuse of the gradient buffer for the gather with the
    // optimizer-step overlap (optimizer_config.py at d98e8a64).
    reject(s, "training.overlap_param_gather_with_optimizer_step", "true",
           "Megatron-Core refuses it with MXFP8 weights gathered through the gradient buffer "
           "(training.fp8.weights: fp8)");
  }
  if (f.fp8_weights && s.training.main_params_dtype == MainParams::none) {
    reject(s, "training.main_params_dtype", "none",
           "fp8 weights (training.fp8.weights: fp8, or Megatron's fp8 parameter gathers) are "
           "cast from a master copy each step; keep fp32 or fp16 main parameters");
  }
  if (f.fp8_weights && s.training.optimizer_offload && f.scaling != Fp8Spec::Scaling::delayed) {
    // arguments.py at d98e8a64: --fp8-param-gather with the CPU optimizer offload needs
    // --fp8-recipe delayed.
    reject(s, "training.optimizer_offload", "",
           fmt::format("Megatron-LM offloads the optimizer with fp8 weights (--fp8-param-gather) "
                       "under delayed scaling only, not {}",
                       to_string(f.scaling)));
  }
  // Under the distributed optimizer the weights stay whole between steps, so TE keeps the
  // transpose it makes from them (Float8Tensor's cached transpose, dropped only when the
  // data changes, i.e. at the next step's gather; only Megatron-FSDP releases it after
  // each unit, release_params_fp8_transpose_cache).
  f.fp8_transpose_kept = f.fp8_weights && per_tensor && !zero3;
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
  complete_grad_buckets(s);
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
