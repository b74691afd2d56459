#include "scenario/validate.h"

#include <fmt/format.h>

#include <cmath>
#include <cstdint>

#include <string>

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
  if (!is_set(s, "cost.gpu_power")) s.cost.gpu_power = c.gpu.tdp;
}

void complete_transformer(Scenario& s) {
  ModelSpec& m = s.model;
  for (const char* k : {"layers", "hidden", "heads", "ffn", "vocab", "seq_len"}) {
    require(s, std::string("model.") + k, "a transformer needs layers, hidden, heads, ffn, vocab "
                                          "and seq_len");
  }
  if (!is_set(s, "model.kv_heads")) m.kv_heads = m.heads;
  if (m.kv_heads > m.heads || m.heads % m.kv_heads != 0) {
    reject(s, "model.kv_heads", std::to_string(m.kv_heads),
           fmt::format("must divide heads ({}): each key/value head serves a whole group of "
                       "query heads",
                       m.heads));
  }
  if (!m.mla && m.hidden % m.heads != 0) {
    reject(s, "model.hidden", std::to_string(m.hidden),
           fmt::format("must be a multiple of heads ({})", m.heads));
  }
  if (m.mla && m.mla->kv_lora_rank == 0) {
    require(s, "model.mla.kv_lora_rank", "MLA needs kv_lora_rank");
  }
  if (m.moe) {
    MoeSpec& e = *m.moe;
    require(s, "model.moe.experts", "number of routed experts");
    require(s, "model.moe.expert_ffn", "hidden width of one expert");
    if (e.top_k > e.experts) {
      reject(s, "model.moe.top_k", std::to_string(e.top_k),
             fmt::format("cannot exceed experts ({})", e.experts));
    }
    if (e.first_dense_layers >= m.layers) {
      reject(s, "model.moe.first_dense_layers", std::to_string(e.first_dense_layers),
             fmt::format("must be below layers ({}) or the model has no MoE layer", m.layers));
    }
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
  if (p.schedule == PipelineSchedule::interleaved_1f1b && p.microbatches() % p.pp != 0) {
    reject(s, "parallelism.global_batch", std::to_string(p.global_batch),
           fmt::format("interleaved-1f1b runs micro-batches in groups of pp: the {} "
                       "micro-batches per replica (global_batch / (microbatch*dp)) must be a "
                       "multiple of pp = {}",
                       p.microbatches(), p.pp));
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
  if (!is_set(s, "parallelism.fsdp.unit")) {
    p.fsdp_unit = p.fsdp_impl == ParallelismSpec::FsdpImpl::deepspeed
                      ? ParallelismSpec::FsdpUnit::module
                      : ParallelismSpec::FsdpUnit::layer;
  }
}

// zb-h1 and dualpipe are modelled with ZeRO stages 0-2 only; dualpipe also needs an even
// pp and at least 2*pp micro-batches, an even count. Runs after complete_zero_stage.
void check_schedule_preconditions(const Scenario& s) {
  const ParallelismSpec& p = s.parallelism;
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

// The layers divide over the pipeline: evenly into pp*virtual_pipeline_stages chunks, or,
// with first_stage_layers / last_stage_layers (no interleaving), the rest evenly over the
// other stages.
void check_pipeline_split(const Scenario& s) {
  const ParallelismSpec& p = s.parallelism;
  const ModelSpec& m = s.model;
  const int vp = p.virtual_pipeline_stages;
  if (p.first_stage_layers || p.last_stage_layers) {
    const char* key = p.first_stage_layers ? "parallelism.first_stage_layers"
                                           : "parallelism.last_stage_layers";
    const std::string value = std::to_string(p.first_stage_layers ? *p.first_stage_layers
                                                                   : *p.last_stage_layers);
    if (vp > 1) {
      reject(s, key, value, "uneven first/last stages are modelled without interleaving only; "
                            "set virtual_pipeline_stages to 1");
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
  } else if (m.layers % (std::int64_t{p.pp} * vp) != 0) {
    reject(s, "parallelism.pp", std::to_string(p.pp),
           fmt::format("layers ({}) must divide evenly into pp*virtual_pipeline_stages = {}*{} "
                       "model chunks (or set first_stage_layers / last_stage_layers)",
                       m.layers, p.pp, vp));
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

// Fills in the parallelism defaults (dp, schedule, ZeRO stage) and checks the split against
// the cluster and, for transformers, the model. The checks run in this order, so the first
// error a bad file reports does not change.
void complete_parallelism(Scenario& s) {
  complete_degrees(s);
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
  if (!f.weight_cache) {
    f.weight_cache = !zero3;
  } else if (*f.weight_cache && zero3) {
    reject(s, "training.fp8.weight_cache", "true",
           "ZeRO-3/FSDP frees each layer's gathered weights after use, so there is no whole "
           "weight to cache across micro-batches: use weight_cache: false");
  }
  if (f.param_allgather_fp8 && !zero3) {
    reject(s, "training.fp8.communication.param_allgather", "fp8",
           "applies to ZeRO-3/FSDP parameter all-gathers (parallelism.zero_stage 3 or fsdp)");
  }
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
  if (s.model.family == ModelFamily::cnn) {
    complete_cnn(s);
  } else {
    complete_transformer(s);
  }
  complete_parallelism(s);
  complete_training(s);
  complete_fp8(s);
  complete_target(s);
  complete_compression(s);
  check_faults(s);
  // The promise every reader of training.fp8 relies on instead of re-checking precision.
  ORRERY_CHECK(!s.training.fp8 || s.training.precision == Precision::fp8,
               "a validated scenario has an FP8 recipe only under precision fp8");
  return s;
}

}  // namespace orrery
