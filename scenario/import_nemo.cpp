// `orrery import nemo` (scenario/import_nemo.h). Key names and the defaults NeMo takes
// for absent keys are NeMo 1.x's, at NVIDIA/NeMo v2.0.0 (e938df32, the NeMo of the 24.07
// container): nemo/collections/nlp/models/language_modeling/megatron_gpt_model.py
// (cfg.get of hidden_dropout and attention_dropout 0.1, normalization 'layernorm', bias
// True, activation 'gelu', position_embedding_type 'learned_absolute',
// share_embeddings_and_output_weights True, moe_router_topk 2; fp8 needs fp8_e4m3 or
// fp8_hybrid, else ValueError, lines 2112-2117), megatron_base_model.py (the parallel
// sizes default 1, make_vocab_size_divisible_by 128; any other key named like a field of
// Megatron Core's TransformerConfig or ModelParallelConfig, such as
// cross_entropy_loss_fusion or overlap_p2p_comm, passed through, lines 563-571 and
// 1178-1180; optim.name distributed_fused_adam or mcore_distributed_optim is the
// distributed optimizer, lines 151-152), and nemo/collections/nlp/parts/
// megatron_trainer_builder.py (trainer.precision 16, 16-mixed, bf16, bf16-mixed are
// mixed precision, line 123). These are Megatron-LM's own defaults, so the mapping of
// `orrery import megatron` (scenario/import_common.h and the section writers it names)
// serves both.
#include "scenario/import_nemo.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "scenario/import_common.h"
#include "scenario/yaml_reader.h"

namespace orrery {
namespace {

// A scalar of the config, its interpolations resolved.
struct Value {
  std::string text;
  std::optional<int> line;
};

class NemoConfig {
 public:
  NemoConfig(std::string file, YAML::Node root) : file_(std::move(file)), root_(std::move(root)) {
    if (!root_.IsMap()) {
      throw InputError(detail::location_of(file_, root_), "", detail::describe(root_),
                       "expected a NeMo training config: a mapping with trainer and model");
    }
  }

  // The scalar at the dotted `path`, or nullopt when absent or null (NeMo's
  // cfg.get(key, default) then takes the default). Marks the key as read.
  std::optional<Value> get(const std::string& path) {
    read_.insert(path);
    const YAML::Node n = find(root_, path);
    if (!n.IsDefined() || n.IsNull()) return std::nullopt;
    const InputLocation at = detail::location_of(file_, n);
    if (!n.IsScalar()) {
      throw InputError(at, path, detail::describe(n), "expected a single value");
    }
    return Value{resolve(n.Scalar(), path, parent_of(path), at, 0), at.line};
  }

  bool boolean(const std::string& path, bool fallback) {
    const auto v = get(path);
    if (!v) return fallback;
    if (v->text == "true" || v->text == "True" || v->text == "TRUE") return true;
    if (v->text == "false" || v->text == "False" || v->text == "FALSE") return false;
    throw InputError({file_, v->line}, path, v->text, "expected true or false");
  }

  [[noreturn]] void refuse(const std::string& path, const Value& v, const std::string& why) const {
    throw InputError({file_, v.line}, path, v.text, why);
  }

  // "trainer.x: value" for every scalar under trainer and model (model.data and
  // model.tokenizer aside) that was not read, in the file's order.
  std::vector<std::string> unread() const {
    std::vector<std::string> out;
    for (const char* section : {"trainer", "model"}) {
      const YAML::Node n = root_[section];
      if (n.IsDefined()) collect(n, section, out);
    }
    return out;
  }

  // The top-level keys other than trainer and model.
  std::vector<std::string> other_sections() const {
    std::vector<std::string> out;
    for (const auto& kv : root_) {
      const std::string k = kv.first.as<std::string>();
      if (k != "trainer" && k != "model") out.push_back(k);
    }
    return out;
  }

  const std::string& file() const { return file_; }

 private:
  static YAML::Node find(const YAML::Node& from, const std::string& path) {
    YAML::Node n;
    n.reset(from);
    std::size_t begin = 0;
    while (begin <= path.size()) {
      const std::size_t end = std::min(path.find('.', begin), path.size());
      if (!n.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
      const YAML::Node& here = n;
      const YAML::Node next = here[path.substr(begin, end - begin)];
      if (!next.IsDefined()) return YAML::Node(YAML::NodeType::Undefined);
      n.reset(next);
      begin = end + 1;
    }
    return n;
  }

  static std::string parent_of(const std::string& path) {
    const auto dot = path.rfind('.');
    return dot == std::string::npos ? "" : path.substr(0, dot);
  }

  // OmegaConf interpolations: `${a.b}` from the root (a NeMo-Framework-Launcher file,
  // mounted at `training`, writes `${training.model.x}`), `${.x}` relative to the
  // mapping holding the key (one more dot per level up). A resolver (`${name:...}`) or
  // a missing target is an error: the value is not known.
  std::string resolve(std::string text, const std::string& key, const std::string& holder,
                      const InputLocation& at, int depth) const {
    for (std::size_t open; (open = text.find("${")) != std::string::npos;) {
      const std::size_t close = text.find('}', open);
      const std::string inner =
          close == std::string::npos ? "" : text.substr(open + 2, close - open - 2);
      if (depth > 8 || inner.empty() || inner.find(':') != std::string::npos ||
          inner.find("${") != std::string::npos) {
        throw InputError(at, key, text,
                         "an interpolation orrery cannot resolve (a resolver, or nested): "
                         "give the value");
      }
      std::string target = inner;
      if (inner[0] == '.') {
        std::string base = holder;
        std::size_t dots = 0;
        while (dots < inner.size() && inner[dots] == '.') ++dots;
        for (std::size_t up = 1; up < dots; ++up) base = parent_of(base);
        target = (base.empty() ? "" : base + ".") + inner.substr(dots);
      }
      YAML::Node n = find(root_, target);
      if (!n.IsDefined() && target.rfind("training.", 0) == 0) {
        target = target.substr(9);
        n = find(root_, target);
      }
      if (!n.IsDefined() || !n.IsScalar()) {
        throw InputError(
            at, key, text,
            fmt::format("the interpolation's target {} is not a value of this file", inner));
      }
      const std::string value = resolve(n.Scalar(), target, parent_of(target), at, depth + 1);
      text = text.substr(0, open) + value + text.substr(close + 1);
    }
    return text;
  }

  void collect(const YAML::Node& n, const std::string& path, std::vector<std::string>& out) const {
    if (path == "model.data" || path == "model.tokenizer" || read_.count(path)) return;
    if (n.IsMap()) {
      for (const auto& kv : n) collect(kv.second, path + "." + kv.first.as<std::string>(), out);
    } else if (n.IsScalar()) {
      out.push_back(path + ": " + n.Scalar());
    } else if (n.IsNull()) {
      out.push_back(path + ": null");
    } else if (n.IsSequence() &&
               std::all_of(n.begin(), n.end(), [](const YAML::Node& e) { return e.IsScalar(); })) {
      std::vector<std::string> items;
      for (const auto& e : n) items.push_back(e.Scalar());
      out.push_back(fmt::format("{}: [{}]", path, fmt::join(items, ", ")));
    } else {
      out.push_back(path + ": " + detail::describe(n));
    }
  }

  std::string file_;
  YAML::Node root_;
  std::set<std::string> read_;
};

// A key whose value passes to the Megatron-LM argument `name` unchanged.
void pass(NemoConfig& c, detail::ImportSettings& a, const std::string& key,
          const std::string& name) {
  a.rename(name, key);
  if (const auto v = c.get(key)) a.set(name, v->text, key, v->line);
}

// A boolean key that is the Megatron-LM switch `name` when true (false when absent).
void pass_flag(NemoConfig& c, detail::ImportSettings& a, const std::string& key,
               const std::string& name) {
  a.rename(name, key);
  const auto v = c.get(key);
  if (v && c.boolean(key, false)) a.set_flag(name, key, v->line);
}

}  // namespace

std::string import_nemo(const std::string& path, const std::string& cluster,
                        std::int64_t vocab_size) {
  detail::check_system_preset("orrery import nemo", "--cluster", cluster);
  NemoConfig c(path, detail::load_yaml_text(detail::read_import_file(path, "NeMo config"), path));
  detail::ImportSettings a(path);
  a.set_missing_word("key");
  a.set_absent("family", "a NeMo GPT config (megatron_gpt_pretraining.py)");

  // Shape. NeMo reads these without a default (cfg.num_layers, cfg.ffn_hidden_size...).
  for (const auto& [key, name] : std::initializer_list<std::pair<const char*, const char*>>{
           {"model.num_layers", "--num-layers"},
           {"model.hidden_size", "--hidden-size"},
           {"model.ffn_hidden_size", "--ffn-hidden-size"},
           {"model.num_attention_heads", "--num-attention-heads"},
           {"model.encoder_seq_length", "--seq-length"},
           {"model.micro_batch_size", "--micro-batch-size"},
           {"model.global_batch_size", "--global-batch-size"}}) {
    pass(c, a, key, name);
    if (!a.has(name)) {
      throw InputError({path, std::nullopt}, key, "",
                       "missing key: NeMo reads it without a default");
    }
  }
  const auto tokenizer = c.get("model.tokenizer.type");
  if (vocab_size < 1) {
    throw InputError({path, tokenizer ? tokenizer->line : std::nullopt}, "model.tokenizer.type",
                     tokenizer ? tokenizer->text : "",
                     "orrery does not read tokenizers: give the vocabulary size with "
                     "--vocab-size");
  }
  a.set("--vocab-size", std::to_string(vocab_size), "--vocab-size");
  pass(c, a, "model.make_vocab_size_divisible_by", "--make-vocab-size-divisible-by");

  // Architecture.
  a.rename("--group-query-attention", "model.num_query_groups");
  a.set_absent("--group-query-attention", "model.num_query_groups null");
  if (const auto g = c.get("model.num_query_groups")) {
    a.set_flag("--group-query-attention", "model.num_query_groups", g->line);
    a.set("--num-query-groups", g->text, "model.num_query_groups", g->line);
  }
  a.rename("--swiglu", "model.activation");
  a.set_absent("--swiglu", "default of model.activation: gelu");
  if (const auto act = c.get("model.activation")) {
    if (act->text == "swiglu" || act->text == "fast-swiglu") {
      a.set_flag("--swiglu", "model.activation " + act->text, act->line);
    } else if (act->text == "gelu") {
      a.set_absent("--swiglu", "model.activation gelu");
    } else {
      c.refuse("model.activation", *act, "orrery models gelu, swiglu and fast-swiglu");
    }
  }
  a.rename("--normalization", "model.normalization");
  if (const auto n = c.get("model.normalization")) {
    // NeMo lower-cases it (megatron_gpt_model.py line 2091); another value passes on,
    // to be refused by name.
    std::string v = n->text;
    for (char& ch : v) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    a.set("--normalization",
          v == "layernorm" ? "LayerNorm"
          : v == "rmsnorm" ? "RMSNorm"
                           : n->text,
          "model.normalization", n->line);
  }
  pass(c, a, "model.position_embedding_type", "--position-embedding-type");
  // A TransformerConfig field NeMo passes through (null: hidden / heads).
  pass(c, a, "model.kv_channels", "--kv-channels");
  a.rename("--untie-embeddings-and-output-weights", "model.share_embeddings_and_output_weights");
  a.set_absent("--untie-embeddings-and-output-weights",
               c.get("model.share_embeddings_and_output_weights")
                   ? "model.share_embeddings_and_output_weights"
                   : "default of model.share_embeddings_and_output_weights: true");
  if (const auto s = c.get("model.share_embeddings_and_output_weights");
      s && !c.boolean("model.share_embeddings_and_output_weights", true)) {
    a.set_flag("--untie-embeddings-and-output-weights", "model.share_embeddings_and_output_weights",
               s->line);
  }
  a.rename("--disable-bias-linear", "model.bias");
  a.set_absent("--disable-bias-linear",
               c.get("model.bias") ? "model.bias" : "default of model.bias: true");
  if (const auto b = c.get("model.bias"); b && !c.boolean("model.bias", true)) {
    a.set_flag("--disable-bias-linear", "model.bias", b->line);
  }
  pass(c, a, "model.hidden_dropout", "--hidden-dropout");
  pass(c, a, "model.attention_dropout", "--attention-dropout");
  pass(c, a, "model.num_moe_experts", "--num-experts");
  pass(c, a, "model.moe_router_topk", "--moe-router-topk");
  pass(c, a, "model.moe_ffn_hidden_size", "--moe-ffn-hidden-size");
  // The routing and exchange keys NeMo passes to TransformerConfig under the same names
  // (its defaults there: the allgather dispatcher, aux-loss coefficient 0.0).
  const struct {
    const char* key;
    const char* argument;
    bool flag;
  } moe_keys[] = {
      {"model.moe_token_dispatcher_type", "--moe-token-dispatcher-type", false},
      {"model.moe_router_load_balancing_type", "--moe-router-load-balancing-type", false},
      {"model.moe_aux_loss_coeff", "--moe-aux-loss-coeff", false},
      {"model.moe_router_enable_expert_bias", "--moe-router-enable-expert-bias", true},
      {"model.moe_router_score_function", "--moe-router-score-function", false},
      {"model.moe_expert_capacity_factor", "--moe-expert-capacity-factor", false},
      {"model.moe_pad_expert_input_to_capacity", "--moe-pad-expert-input-to-capacity", true},
      {"model.moe_shared_expert_intermediate_size", "--moe-shared-expert-intermediate-size",
       false},
      {"model.moe_grouped_gemm", "--moe-grouped-gemm", true},
      {"model.moe_permute_fusion", "--moe-permute-fusion", true},
      {"model.moe_router_fusion", "--moe-router-fusion", true},
  };
  for (const auto& k : moe_keys) {
    if (k.flag) {
      pass_flag(c, a, k.key, k.argument);
    } else {
      pass(c, a, k.key, k.argument);
    }
  }

  // Parallel layout.
  pass(c, a, "model.tensor_model_parallel_size", "--tensor-model-parallel-size");
  pass(c, a, "model.pipeline_model_parallel_size", "--pipeline-model-parallel-size");
  pass(c, a, "model.context_parallel_size", "--context-parallel-size");
  pass(c, a, "model.expert_model_parallel_size", "--expert-model-parallel-size");
  pass(c, a, "model.expert_tensor_parallel_size", "--expert-tensor-parallel-size");
  // NeMo turns sequence parallelism off with tp 1 (megatron_base_model.py line 955).
  if (const auto sp = c.get("model.sequence_parallel");
      sp && c.boolean("model.sequence_parallel", false)) {
    if (a.whole("--tensor-model-parallel-size", 1) > 1) {
      a.set_flag("--sequence-parallel", "model.sequence_parallel", sp->line);
    } else {
      a.add_unmapped("model.sequence_parallel: " + sp->text + " (NeMo turns it off with tp 1)");
    }
  }
  pass_flag(c, a, "model.account_for_embedding_in_pipeline_split",
            "--account-for-embedding-in-pipeline-split");
  pass_flag(c, a, "model.account_for_loss_in_pipeline_split",
            "--account-for-loss-in-pipeline-split");
  // NeMo gives the number of model chunks per pipeline rank; the mapping takes the
  // layers per chunk, Megatron-LM's form.
  if (const auto v = c.get("model.virtual_pipeline_model_parallel_size")) {
    a.set("--num-layers-per-virtual-pipeline-stage", v->text,
          "model.virtual_pipeline_model_parallel_size", v->line);
    const std::int64_t chunks = a.whole("--num-layers-per-virtual-pipeline-stage");
    const std::int64_t pp = a.whole("--pipeline-model-parallel-size", 1);
    const std::int64_t total = a.whole("--num-layers") +
                               (a.flag("--account-for-embedding-in-pipeline-split") ? 1 : 0) +
                               (a.flag("--account-for-loss-in-pipeline-split") ? 1 : 0);
    if (total % (pp * chunks) != 0) {
      c.refuse("model.virtual_pipeline_model_parallel_size", *v,
               fmt::format("does not divide the {} layers over {} pipeline ranks", total, pp));
    }
    a.set("--num-layers-per-virtual-pipeline-stage", std::to_string(total / (pp * chunks)),
          "model.virtual_pipeline_model_parallel_size", v->line);
  }
  a.rename("--use-distributed-optimizer", "model.optim.name");
  std::string grad_buckets;  // NeMo 1.x's Apex optimizer buckets a layer or a chunk
  if (const auto o = c.get("model.optim.name")) {
    if (o->text == "distributed_fused_adam")
      grad_buckets = "apex-distributed-adam  # model.optim.name distributed_fused_adam";
    if (o->text == "distributed_fused_adam" || o->text == "mcore_distributed_optim") {
      a.set_flag("--use-distributed-optimizer", "model.optim.name " + o->text, o->line);
    } else if (o->text != "fused_adam" && o->text != "adam" && o->text != "adamw") {
      c.refuse("model.optim.name", *o,
               "orrery models Adam: fused_adam, adam, adamw, distributed_fused_adam or "
               "mcore_distributed_optim");
    }
  }

  // Precision, recompute and overlaps.
  a.rename("--bf16", "trainer.precision");
  a.set_absent("--bf16", "default of trainer.precision: 32");
  if (const auto p = c.get("trainer.precision")) {
    if (p->text == "bf16" || p->text == "bf16-mixed") {
      a.set_flag("--bf16", "trainer.precision " + p->text, p->line);
    } else if (p->text == "16" || p->text == "16-mixed") {
      a.set_flag("--fp16", "trainer.precision " + p->text, p->line);
    } else if (p->text == "32" || p->text == "32-true") {
      a.set_absent("--bf16", "trainer.precision " + p->text);
    } else {
      c.refuse("trainer.precision", *p, "NeMo takes 16, 16-mixed, bf16, bf16-mixed, 32 or 32-true");
    }
  }
  const bool e4m3 = c.boolean("model.fp8_e4m3", false);
  const bool hybrid = c.boolean("model.fp8_hybrid", false);
  if (const auto f = c.get("model.fp8"); f && c.boolean("model.fp8", false)) {
    if (!e4m3 && !hybrid) {
      c.refuse("model.fp8", *f, "NeMo needs model.fp8_e4m3 or model.fp8_hybrid with it");
    }
    a.set("--fp8-format", e4m3 ? "e4m3" : "hybrid",
          e4m3 ? "model.fp8, model.fp8_e4m3" : "model.fp8, model.fp8_hybrid", f->line);
    // A Megatron Core model (model.mcore_gpt) takes every TransformerConfig field its config
    // holds (build_transformer_config, megatron_base_model.py at NVIDIA/NeMo 8cfedd72): the
    // recipe, the amax history (else TransformerConfig's 1) and the bf16 layers. The legacy
    // model runs TE's delayed scaling with NeMo's own history default, 1024
    // (megatron_gpt_model.py, cfg.get('fp8_amax_history_len', 1024)).
    const bool mcore = c.boolean("model.mcore_gpt", false);
    pass(c, a, "model.fp8_amax_history_len", "--fp8-amax-history-len");
    if (!a.has("--fp8-amax-history-len")) {
      a.set("--fp8-amax-history-len", mcore ? "1" : "1024",
            mcore ? "model.mcore_gpt: TransformerConfig's default fp8_amax_history_len 1"
                  : "default of model.fp8_amax_history_len: 1024");
    }
    if (mcore) {
      pass(c, a, "model.fp8_recipe", "--fp8-recipe");
      pass_flag(c, a, "model.first_last_layers_bf16", "--first-last-layers-bf16");
      pass(c, a, "model.num_layers_at_start_in_bf16", "--num-layers-at-start-in-bf16");
      pass(c, a, "model.num_layers_at_end_in_bf16", "--num-layers-at-end-in-bf16");
    }
    // fp8 weights (TE fp8_model_init) gathered in fp8 by either distributed optimizer:
    // Apex's through NeMo's DistributedFusedAdam (uint8 parameter shards,
    // nemo/core/optim/distributed_adam.py), Megatron Core's through fp8_param_gather
    // (megatron_gpt_model.py line 612, NVIDIA/NeMo 8cfedd72). Under another optimizer the
    // key stays in the not-mapped list.
    if (a.flag("--use-distributed-optimizer")) {
      pass_flag(c, a, "model.fp8_params", "--fp8-param-gather");
    }
  }
  pass(c, a, "model.activations_checkpoint_granularity", "--recompute-granularity");
  pass(c, a, "model.activations_checkpoint_method", "--recompute-method");
  pass(c, a, "model.activations_checkpoint_num_layers", "--recompute-num-layers");
  // The overlaps' defaults follow the optimizer. Megatron-Core's distributed optimizer
  // (mcore_distributed_optim) takes overlap_grad_reduce from optim.overlap_grad_sync and
  // overlap_param_gather from optim.overlap_param_gather, both False when absent
  // (setup_mcore_distributed_parallel in megatron_gpt_model.py at NVIDIA/NeMo v2.0.0, lines
  // 554 and 561); Apex's DistributedFusedAdam takes overlap_grad_sync and
  // overlap_param_sync, True and False when absent (its __init__ at NVIDIA/apex d571f3ee,
  // apex/contrib/optimizers/distributed_fused_adam.py). Without a distributed optimizer,
  // below.
  const auto optimizer = c.get("model.optim.name");
  const bool mcore_optimizer = optimizer && optimizer->text == "mcore_distributed_optim";
  const bool apex_optimizer = optimizer && optimizer->text == "distributed_fused_adam";
  pass_flag(c, a, "model.optim.overlap_grad_sync", "--overlap-grad-reduce");
  const auto grad_sync = c.get("model.optim.overlap_grad_sync");
  a.set_absent("--overlap-grad-reduce", grad_sync
                                            ? "model.optim.overlap_grad_sync false"
                                            : "default of model.optim.overlap_grad_sync: False");
  const char* param_key =
      mcore_optimizer ? "model.optim.overlap_param_gather" : "model.optim.overlap_param_sync";
  pass_flag(c, a, param_key, "--overlap-param-gather");
  const auto param_sync = c.get(param_key);
  a.set_absent("--overlap-param-gather",
               std::string(param_sync ? "" : "default of ") + param_key +
                   (param_sync ? " false" : ": False"));
  // Without a distributed optimizer NeMo all-reduces the gradients after the pipeline
  // (megatron_gpt_model.py at v2.0.0, lines 902-921) under O1, and under megatron_amp_O2
  // with pp above 1, sequence parallelism or async_grad_allreduce off; only O2's
  // asynchronous all-reduce overlaps them.
  const bool o2 = c.boolean("model.megatron_amp_O2", false);
  // O1 (megatron_amp_O2 false, NeMo's default: megatron_gpt_model.py line 317) keeps fp32
  // parameters under autocast, which the scenario's 16-bit precision does not express.
  if (!o2) {
    a.add_unmapped(std::string("model.megatron_amp_O2: ") +
                   (c.get("model.megatron_amp_O2") ? "false" : "absent (default False)") +
                   " (O1: NeMo keeps fp32 parameters under autocast; the scenario's precision "
                   "keeps 16-bit ones)");
  }
  const bool after_pipeline =
      !mcore_optimizer && !apex_optimizer &&
      (!o2 || a.whole("--pipeline-model-parallel-size", 1) > 1 ||
       a.flag("--sequence-parallel") || !c.boolean("model.async_grad_allreduce", true));
  if (after_pipeline && !a.flag("--overlap-grad-reduce")) {
    a.set_absent("--overlap-grad-reduce",
                 "model.optim.name without a distributed optimizer: NeMo all-reduces the "
                 "gradients after the pipeline");
  }
  // Read by NeMo 1.x's Megatron-Core optimizer path only (mcore_distributed_optim; the
  // McoreDDP wrapping in megatron_gpt_model.py at NVIDIA/NeMo 8cfedd72); under another
  // optimizer the key stays in the not-mapped list.
  if (mcore_optimizer) {
    pass_flag(c, a, "model.optim.overlap_param_gather_with_optimizer_step",
              "--overlap-param-gather-with-optimizer-step");
  }
  // NeMo turns the userbuffer overlap off without sequence parallelism, which it clears at
  // tp 1 (megatron_base_model.py at v2.0.0, lines 955 and 1002-1009).
  a.rename("--tp-comm-overlap", "model.ub_tp_comm_overlap");
  if (const auto u = c.get("model.ub_tp_comm_overlap");
      u && c.boolean("model.ub_tp_comm_overlap", false)) {
    if (a.flag("--sequence-parallel") && a.whole("--tensor-model-parallel-size", 1) > 1) {
      a.set_flag("--tp-comm-overlap", "model.ub_tp_comm_overlap", u->line);
    } else {
      a.set_absent("--tp-comm-overlap",
                   "model.ub_tp_comm_overlap true, turned off by NeMo without sequence "
                   "parallelism");
    }
  }
  pass_flag(c, a, "model.overlap_p2p_comm", "--overlap-p2p-communication");
  a.set_absent("--overlap-p2p-communication",
               c.get("model.overlap_p2p_comm") ? "model.overlap_p2p_comm false"
                                               : "default of model.overlap_p2p_comm: False");
  pass_flag(c, a, "model.cross_entropy_loss_fusion", "--cross-entropy-loss-fusion");
  a.set_absent("--cross-entropy-loss-fusion",
               c.get("model.cross_entropy_loss_fusion")
                   ? "model.cross_entropy_loss_fusion false"
                   : "default of model.cross_entropy_loss_fusion: False");
  // Megatron-Core's distributed optimizer reduces gradients in the buffer's type, fp32
  // unless optim.grad_sync_dtype says otherwise (grad_reduce_in_fp32, megatron_gpt_model.py
  // line 553 at v2.0.0).
  if (mcore_optimizer) {
    if (const auto g = c.get("model.optim.grad_sync_dtype"); g && g->text == "bf16") {
      a.set_flag("--grad-reduce-in-bf16", "model.optim.grad_sync_dtype bf16", g->line);
    }
  }
  // Torch FSDP (NLPFSDPStrategy, megatron_trainer_builder.py at v2.0.0) has no mapping here.
  if (const auto f = c.get("model.fsdp"); f && c.boolean("model.fsdp", false)) {
    c.refuse("model.fsdp", *f,
             "NeMo's torch FSDP strategy has no mapping here: write parallelism.fsdp by hand");
  }

  // Nodes, and the GPUs per node the system preset has.
  detail::ImportSource source;
  // An explicit false counts whatever the optimizer.
  source.grad_reduce_off_by_default =
      mcore_optimizer || after_pipeline || (grad_sync && !a.flag("--overlap-grad-reduce"));
  source.cross_entropy_fusion_off_by_default = true;
  source.p2p_overlap_off_by_default = true;
  source.param_gather_off_by_default =
      mcore_optimizer || apex_optimizer || (param_sync && !a.flag("--overlap-param-gather"));
  source.cluster = cluster;
  source.nodes_source = "orrery import --cluster, default of trainer.num_nodes: 1";
  if (const auto n = c.get("trainer.num_nodes")) {
    a.set("trainer.num_nodes", n->text, "trainer.num_nodes", n->line);
    source.nodes = static_cast<int>(std::min<std::int64_t>(a.whole("trainer.num_nodes"), 1 << 20));
    source.nodes_source = "orrery import --cluster, trainer.num_nodes";
  }
  if (const auto d = c.get("trainer.devices")) {
    const int per_node = detail::system_gpus_per_node(cluster);
    if (d->text != std::to_string(per_node)) {
      c.refuse("trainer.devices", *d,
               fmt::format("the system preset {} has {} GPUs per node", cluster, per_node));
    }
  }

  for (const std::string& u : c.unread()) a.add_unmapped(u);
  const std::vector<std::string> others = c.other_sections();
  source.header = fmt::format(
      "# Written by orrery import nemo from the NeMo training config\n"
      "#   {}\n"
      "# (key names and defaults as in NVIDIA/NeMo v2.0.0); each value names its source.\n"
      "# Not read: model.data, model.tokenizer{} (its vocabulary is --vocab-size){}{}.\n",
      path, tokenizer ? " " + tokenizer->text : std::string(), others.empty() ? "" : ", ",
      fmt::join(others, ", "));
  source.all_mapped = "# Every trainer and model key was mapped.\n";
  source.not_mapped =
      "# Trainer and model keys not mapped (orrery's defaults stand for them; check they "
      "match):\n";
  source.stack = "nemo  # a NeMo config";
  source.grad_buckets = grad_buckets;
  return detail::write_imported_scenario(a, source);
}

}  // namespace orrery
