// model.hf_config (scenario/hf_config.h). Each accepted architecture lists the config keys
// it maps, the keys it ignores because they change no cost, and refuses every other key
// and every value orrery cannot express, naming the key and the value. Defaults of keys a
// config leaves out are those of the transformers config class (LlamaConfig:
// tie_word_embeddings False, attention_bias False, mlp_bias False, attention_dropout 0.0,
// num_key_value_heads = num_attention_heads; huggingface/transformers
// src/transformers/models/llama/configuration_llama.py at 4bdeeced; the Mistral, Mixtral,
// Qwen2 and Qwen3 classes take the same; GPT2Config: biases everywhere, dropouts 0.1,
// n_inner = 4 n_embd, tied embeddings; GPTNeoXConfig: attention_bias True, untied).
#include "scenario/hf_config.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"

namespace orrery::detail {
namespace {

using Json = nlohmann::json;

enum class Kind { llama, gpt2, neox, deepseek };

struct Arch {
  const char* name;  // architectures[0]
  Kind kind;
  bool moe;       // Mixtral's num_local_experts / num_experts_per_tok
  bool qwen;      // use_sliding_window, max_window_layers, q/k/v biases (Qwen2)
  bool qkv_bias;  // q, k and v projections always carry biases, o and the MLP none
};

const std::vector<Arch>& archs() {
  static const std::vector<Arch> list = {
      {"LlamaForCausalLM", Kind::llama, false, false, false},
      {"MistralForCausalLM", Kind::llama, false, false, false},
      {"MixtralForCausalLM", Kind::llama, true, false, false},
      {"Qwen2ForCausalLM", Kind::llama, false, true, true},
      {"Qwen3ForCausalLM", Kind::llama, false, true, false},
      {"Phi3ForCausalLM", Kind::llama, false, false, false},
      {"GPT2LMHeadModel", Kind::gpt2, false, false, false},
      {"GPTNeoXForCausalLM", Kind::neox, false, false, false},
      {"DeepseekV2ForCausalLM", Kind::deepseek, true, false, false},
      {"DeepseekV3ForCausalLM", Kind::deepseek, true, false, false},
  };
  return list;
}

// Keys that change no cost orrery models: token ids, dtypes, versions, initialisation,
// inference switches, norm epsilons, and the rotary embedding's frequencies (rope_theta,
// rope_scaling, rotary_emb_base: the same elementwise rotation at other angles;
// rotary_pct: the rotation on part of each head, an elementwise op orrery does not time
// separately). use_parallel_residual (GPT-NeoX) adds the attention and MLP outputs to the
// same input: the same GEMMs and norms. quantization_config describes how a checkpoint is
// stored for inference, not the training run; use_mrope (Qwen2) is rotary embedding too;
// auto_map names the checkpoint's own Python classes; original_max_position_embeddings
// (Phi-3) is the length the rotary scaling starts from. q/k norms
// (Qwen3) are h-sized RMSNorm weights on each head, 2 x head_dim parameters per layer.
const std::set<std::string>& ignored_keys() {
  static const std::set<std::string> keys = {
      "_name_or_path",
      "model_type",
      "torch_dtype",
      "dtype",
      "transformers_version",
      "bos_token_id",
      "eos_token_id",
      "pad_token_id",
      "initializer_range",
      "use_cache",
      "rms_norm_eps",
      "layer_norm_eps",
      "layer_norm_epsilon",
      "rope_theta",
      "rope_scaling",
      "rotary_emb_base",
      "rotary_pct",
      "use_parallel_residual",
      "pretraining_tp",
      "output_router_logits",
      "router_jitter_noise",
      "n_ctx",
      "scale_attn_weights",
      "scale_attn_by_inverse_layer_idx",
      "reorder_and_upcast_attn",
      "summary_activation",
      "summary_first_dropout",
      "summary_proj_to_labels",
      "summary_type",
      "summary_use_proj",
      "task_specific_params",
      "classifier_dropout",
      "tokenizer_class",
      "use_return_dict",
      "return_dict",
      "output_attentions",
      "output_hidden_states",
      "use_flash_attn",
      "attn_implementation",
      "quantization_config",
      "use_mrope",
      "auto_map",
      "original_max_position_embeddings",
  };
  return keys;
}

class Reader {
 public:
  Reader(const Json& j, std::string file, const Arch& a) : j_(j), file_(std::move(file)), a_(a) {}

  [[noreturn]] void fail(const std::string& key, const std::string& why) const {
    std::string value;
    if (j_.contains(key))
      value = j_.at(key).is_string() ? j_.at(key).get<std::string>() : j_.at(key).dump();
    throw InputError({file_, std::nullopt}, key, value, fmt::format("{} ({})", why, a_.name));
  }

  const std::string& file() const { return file_; }
  const char* arch() const { return a_.name; }

  bool has(const std::string& key) {
    used_.insert(key);
    return j_.contains(key) && !j_.at(key).is_null();
  }

  // Written in the config, null included (has() counts null as absent).
  bool written(const std::string& key) {
    used_.insert(key);
    return j_.contains(key);
  }

  std::int64_t whole(const std::string& key, std::optional<std::int64_t> fallback = {},
                     std::int64_t lo = 1) {
    if (!has(key)) {
      if (fallback) return *fallback;
      throw InputError({file_, std::nullopt}, key, "",
                       fmt::format("missing key: a {} config needs it", a_.name));
    }
    const Json& v = j_.at(key);
    if (!v.is_number_integer() || v.get<std::int64_t>() < lo ||
        v.get<std::int64_t>() > (std::int64_t{1} << 24)) {
      fail(key, fmt::format("expected a whole number from {} to 2^24", lo));
    }
    return v.get<std::int64_t>();
  }

  bool flag(const std::string& key, bool fallback) {
    if (!has(key)) return fallback;
    if (!j_.at(key).is_boolean()) fail(key, "expected true or false");
    return j_.at(key).get<bool>();
  }

  double number(const std::string& key, double fallback) {
    if (!has(key)) return fallback;
    if (!j_.at(key).is_number()) fail(key, "expected a number");
    return j_.at(key).get<double>();
  }

  std::string text(const std::string& key, const std::string& fallback) {
    if (!has(key)) return fallback;
    if (!j_.at(key).is_string()) fail(key, "expected a string");
    return j_.at(key).get<std::string>();
  }

  // The first key of the config that is neither read nor ignored, refused.
  void refuse_unread() const {
    for (const auto& [key, value] : j_.items()) {
      if (used_.count(key) || ignored_keys().count(key)) continue;
      fail(key, "a key orrery neither maps nor lists as changing no cost");
    }
  }

 private:
  const Json& j_;
  std::string file_;
  const Arch& a_;
  std::set<std::string> used_;
};

// DeepSeek-V2/V3 (DeepseekV2Config, DeepseekV3Config in huggingface/transformers
// src/transformers/models/deepseek_v2/configuration_deepseek_v2.py at 008e5743 and
// deepseek_v3/configuration_deepseek_v3.py at 001f85b3; the hub checkpoints' own
// modeling_deepseek.py, which the configs' auto_map names, makes layer i an MoE layer when
// i >= first_k_dense_replace and i % moe_layer_freq == 0). Multi-head latent attention
// and a DeepSeekMoE feed-forward: routed and shared experts of moe_intermediate_size, the
// first first_k_dense_replace layers dense of intermediate_size. Shape keys have no
// default here: a config without one is refused.
void read_deepseek(Reader& r, ModelSpec& m, std::vector<std::string>& set) {
  m.hidden = r.whole("hidden_size");
  m.layers = static_cast<int>(r.whole("num_hidden_layers"));
  m.heads = static_cast<int>(r.whole("num_attention_heads"));
  // MLA has no grouped key/value heads: every query head gets its own key and value from
  // the shared latent (the released configs write num_key_value_heads = heads).
  if (r.whole("num_key_value_heads", m.heads) != m.heads) {
    r.fail("num_key_value_heads",
           "multi-head latent attention gives every query head its own key and value; "
           "orrery expects num_key_value_heads = num_attention_heads");
  }
  m.kv_heads = m.heads;
  m.ffn = r.whole("intermediate_size");
  m.vocab = r.whole("vocab_size");
  MlaSpec mla;
  // q_lora_rank null (DeepSeek-V2-Lite): the queries are projected from the hidden state
  // directly, orrery's q_lora_rank 0.
  if (!r.written("q_lora_rank")) {
    throw InputError({r.file(), std::nullopt}, "q_lora_rank", "",
                     fmt::format("missing key: a {} config needs it (null: queries projected "
                                 "directly)",
                                 r.arch()));
  }
  mla.q_lora_rank = r.has("q_lora_rank") ? static_cast<int>(r.whole("q_lora_rank")) : 0;
  mla.kv_lora_rank = static_cast<int>(r.whole("kv_lora_rank"));
  mla.qk_nope_head_dim = static_cast<int>(r.whole("qk_nope_head_dim"));
  mla.qk_rope_head_dim = static_cast<int>(r.whole("qk_rope_head_dim"));
  mla.v_head_dim = static_cast<int>(r.whole("v_head_dim"));
  // transformers (v4.5x and later) writes head_dim = qk_rope_head_dim when it saves one.
  if (r.has("head_dim") && r.whole("head_dim") != mla.qk_rope_head_dim) {
    r.fail("head_dim",
           fmt::format("DeepSeek's head_dim is qk_rope_head_dim ({})", mla.qk_rope_head_dim));
  }
  m.mla = mla;
  // The MLA projections carry no biases in orrery (nor in the released checkpoints).
  if (r.flag("attention_bias", false) || r.flag("mlp_bias", false)) {
    r.fail(r.flag("attention_bias", false) ? "attention_bias" : "mlp_bias",
           "orrery's multi-head latent attention and experts have no biases");
  }
  m.bias = false;
  if (r.text("hidden_act", "silu") != "silu") {
    r.fail("hidden_act", "orrery models DeepSeek's MLPs and experts as SwiGLU (hidden_act silu)");
  }
  m.activation = Activation::swiglu;
  m.norm = Norm::rmsnorm;
  m.position_embedding = PositionEmbedding::rope;
  m.tied_embeddings = r.flag("tie_word_embeddings", false);
  m.dropout = r.number("attention_dropout", 0.0) > 0;

  MoeSpec moe;
  moe.experts = static_cast<int>(r.whole("n_routed_experts"));
  moe.top_k = static_cast<int>(r.whole("num_experts_per_tok"));
  moe.expert_ffn = r.whole("moe_intermediate_size");
  moe.shared_experts = static_cast<int>(r.whole("n_shared_experts", 0, 0));
  moe.first_dense_layers = static_cast<int>(r.whole("first_k_dense_replace", 0, 0));
  if (moe.first_dense_layers >= m.layers) {
    r.fail("first_k_dense_replace", "orrery's MoE model needs at least one MoE layer");
  }
  if (r.whole("moe_layer_freq", 1) != 1) {
    r.fail("moe_layer_freq",
           "orrery makes every layer after the dense ones an MoE layer (moe_layer_freq 1)");
  }
  // topk_method: greedy, a plain top-k (V2-Lite); group_limited_greedy, top-k among the
  // experts of topk_group of n_group groups (V2's device-limited routing, arXiv:2405.04434
  // section 2.2.3); noaux_tc, the same group limit with the bias-based auxiliary-loss-free
  // balancing of DeepSeek-V3 (arXiv:2412.19437 sections 2.1.2, 2.1.3), orrery's
  // aux_loss false. The grouped top-k adds the router's group kernels; the balancing sets
  // the default load imbalance (model.moe.load_imbalance).
  const std::string method = r.text("topk_method", "greedy");
  const std::int64_t groups = r.whole("n_group", 1);
  const std::int64_t group_topk = r.whole("topk_group", 1);
  if (method == "group_limited_greedy" || method == "noaux_tc") {
    if (groups > 1) {
      moe.router_groups = static_cast<int>(groups);
      moe.router_group_topk = static_cast<int>(group_topk);
      set.push_back("moe.router_groups");
      set.push_back("moe.router_group_topk");
    }
  } else if (method != "greedy") {
    r.fail("topk_method", "orrery knows greedy, group_limited_greedy and noaux_tc");
  }
  const double aux_alpha = r.number("aux_loss_alpha", 0.001);  // read either way
  moe.aux_loss = method != "noaux_tc" && aux_alpha > 0;
  m.moe = moe;
  // Keys that change no cost orrery models: how the router turns scores into weights
  // (scoring_func softmax or sigmoid, norm_topk_prob, routed_scaling_factor: elementwise
  // on top_k values a token), seq_aux (the balance loss computed per sequence: a few
  // scalars), ep_size (the expert parallelism of the checkpoint's inference code, not the
  // run's: parallelism.ep is written in the scenario), rope_interleave (which dimensions
  // the rotation pairs) and rope_parameters (the newer name of rope_scaling).
  // num_nextn_predict_layers: DeepSeek-V3's multi-token-prediction module (one more
  // layer with its own projection, 14 B parameters, report section 2.2) is not modelled;
  // the model is the 671 B main model, as the deepseek-v3 preset.
  for (const char* k :
       {"scoring_func", "norm_topk_prob", "routed_scaling_factor", "seq_aux", "ep_size",
        "rope_interleave", "rope_parameters", "num_nextn_predict_layers"}) {
    r.has(k);
  }
  for (const char* k :
       {"moe", "moe.experts", "moe.top_k", "moe.expert_ffn", "moe.shared_experts",
        "moe.first_dense_layers", "moe.aux_loss", "mla", "mla.q_lora_rank", "mla.kv_lora_rank",
        "mla.qk_nope_head_dim", "mla.qk_rope_head_dim", "mla.v_head_dim"}) {
    set.push_back(k);
  }
}

}  // namespace

std::vector<std::string> read_hf_config(const std::string& text, const std::string& file,
                                        std::optional<std::int64_t> seq_len, ModelSpec& m) {
  const Json j = Json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    throw InputError({file, std::nullopt}, "", "", "not a JSON object (a config.json)");
  }
  std::string known;
  for (const Arch& a : archs()) known += (known.empty() ? "" : ", ") + std::string(a.name);
  const auto arch_list = j.find("architectures");
  if (arch_list == j.end() || !arch_list->is_array() || arch_list->size() != 1 ||
      !(*arch_list)[0].is_string()) {
    throw InputError({file, std::nullopt}, "architectures",
                     arch_list == j.end() ? "" : arch_list->dump(),
                     fmt::format("expected a list of one architecture; known: {}", known));
  }
  const std::string name = (*arch_list)[0].get<std::string>();
  const auto arch =
      std::find_if(archs().begin(), archs().end(), [&](const Arch& a) { return name == a.name; });
  if (arch == archs().end()) {
    throw InputError({file, std::nullopt}, "architectures", name,
                     fmt::format("not an architecture orrery imports; known: {}", known));
  }
  const Arch& a = *arch;
  Reader r(j, file, a);
  r.has("architectures");

  std::vector<std::string> set = {"family",
                                  "layers",
                                  "hidden",
                                  "heads",
                                  "kv_heads",
                                  "ffn",
                                  "vocab",
                                  "activation",
                                  "norm",
                                  "position_embedding",
                                  "tied_embeddings",
                                  "bias",
                                  "dropout"};
  m = ModelSpec{};
  m.family = ModelFamily::decoder;
  m.name = r.text("_name_or_path", name);
  if (m.name.empty()) m.name = name;
  set.push_back("name");
  std::int64_t positions = 0;
  if (a.kind == Kind::deepseek) {
    read_deepseek(r, m, set);
    positions = r.whole("max_position_embeddings");
  } else if (a.kind == Kind::gpt2) {
    m.hidden = r.whole("n_embd");
    m.layers = static_cast<int>(r.whole("n_layer"));
    m.heads = static_cast<int>(r.whole("n_head"));
    m.kv_heads = m.heads;
    m.ffn = r.whole("n_inner", 4 * m.hidden);
    m.vocab = r.whole("vocab_size");
    positions = r.whole("n_positions");
    const std::string act = r.text("activation_function", "gelu_new");
    // The tanh approximations and the exact GeLU cost the same elementwise pass.
    if (act != "gelu" && act != "gelu_new" && act != "gelu_fast" && act != "gelu_pytorch_tanh") {
      r.fail("activation_function",
             "orrery models a GeLU MLP for GPT-2 (gelu, gelu_new, "
             "gelu_fast, gelu_pytorch_tanh)");
    }
    m.activation = Activation::gelu;
    m.norm = Norm::layernorm;
    m.position_embedding = PositionEmbedding::learned;
    m.tied_embeddings = r.flag("tie_word_embeddings", true);
    m.bias = true;
    // Every key read (none skipped by a short circuit, or it would count as unread).
    const double drop = std::max(
        {r.number("resid_pdrop", 0.1), r.number("embd_pdrop", 0.1), r.number("attn_pdrop", 0.1)});
    m.dropout = drop > 0;
    if (r.flag("add_cross_attention", false)) {
      r.fail("add_cross_attention", "orrery models decoder-only GPT-2 (no cross-attention)");
    }
  } else {
    m.hidden = r.whole("hidden_size");
    m.layers = static_cast<int>(r.whole("num_hidden_layers"));
    m.heads = static_cast<int>(r.whole("num_attention_heads"));
    m.kv_heads =
        a.kind == Kind::neox ? m.heads : static_cast<int>(r.whole("num_key_value_heads", m.heads));
    m.ffn = r.whole("intermediate_size");
    m.vocab = r.whole("vocab_size");
    positions = r.whole("max_position_embeddings");
    if (r.has("head_dim") && m.hidden % m.heads == 0 && r.whole("head_dim") != m.hidden / m.heads) {
      r.fail("head_dim",
             fmt::format("orrery's heads are hidden / heads = {} wide", m.hidden / m.heads));
    }
    m.position_embedding = PositionEmbedding::rope;
    // Phi-3 adds GPT-2's embedding and residual dropouts (0 in its releases).
    const bool phi = std::string(a.name) == "Phi3ForCausalLM";
    const double drop =
        std::max({r.number("attention_dropout", 0.0), phi ? r.number("embd_pdrop", 0.0) : 0.0,
                  phi ? r.number("resid_pdrop", 0.0) : 0.0});
    m.dropout = drop > 0;
    if (a.kind == Kind::neox) {
      const std::string act = r.text("hidden_act", "gelu");
      if (act != "gelu" && act != "gelu_new" && act != "gelu_fast" && act != "gelu_pytorch_tanh") {
        r.fail("hidden_act", "orrery models a GeLU MLP for GPT-NeoX");
      }
      m.activation = Activation::gelu;
      m.norm = Norm::layernorm;
      m.tied_embeddings = r.flag("tie_word_embeddings", false);
      // The MLP's two linear layers always carry biases in GPT-NeoX; attention_bias
      // covers q, k, v and the output projection.
      if (!r.flag("attention_bias", true)) {
        r.fail("attention_bias",
               "orrery's model.bias covers every linear layer; GPT-NeoX's "
               "MLP keeps its biases");
      }
      m.bias = true;
      // The older GPT-NeoX configs (gpt-neox-20b) spell the dropouts as BERT does.
      const double neox_drop =
          std::max({r.number("hidden_dropout", 0.0), r.number("attention_probs_dropout_prob", 0.0),
                    r.number("hidden_dropout_prob", 0.0)});
      m.dropout = m.dropout || neox_drop > 0;
    } else {
      // A gated MLP (gate, up and down projections) with the SiLU gate is SwiGLU.
      if (r.text("hidden_act", "silu") != "silu") {
        r.fail("hidden_act", "orrery models this MLP as SwiGLU (hidden_act silu)");
      }
      m.activation = Activation::swiglu;
      m.norm = Norm::rmsnorm;
      m.tied_embeddings = r.flag("tie_word_embeddings", false);
      if (a.qkv_bias) {
        // Qwen2's q, k and v biases (h + 2 kv_heads head_dim per layer, 0.002 % of
        // Qwen2.5-7B's parameters) are left out: orrery's bias is all linear layers or none.
        m.bias = false;
      } else {
        const bool attn_bias = r.flag("attention_bias", false);
        if (attn_bias != r.flag("mlp_bias", false)) {
          r.fail(attn_bias ? "attention_bias" : "mlp_bias",
                 "orrery's model.bias covers every linear layer: attention_bias and mlp_bias "
                 "must agree");
        }
        m.bias = attn_bias;
      }
      // A sliding window shorter than the sequence limits every layer's keys (Mistral);
      // as long or longer, it limits none. Qwen applies it to some layers only.
      const std::int64_t seq = seq_len ? *seq_len : positions;
      if (a.qwen) {
        if (r.flag("use_sliding_window", false)) {
          r.fail("use_sliding_window",
                 "orrery gives every layer the same attention mask; "
                 "Qwen's window covers the layers from max_window_layers");
        }
        r.has("sliding_window");
        r.has("max_window_layers");
      } else if (r.has("sliding_window")) {
        const std::int64_t window = r.whole("sliding_window");
        if (window < seq) {
          m.attention_mask = AttentionMask::sliding_window;
          m.attention_window = window;
          set.push_back("attention_mask");
          set.push_back("attention_window");
        }
      }
      if (a.moe) {
        MoeSpec moe;
        moe.experts = static_cast<int>(r.whole("num_local_experts"));
        moe.top_k = static_cast<int>(r.whole("num_experts_per_tok"));
        moe.expert_ffn = m.ffn;
        // Mixtral trains with the auxiliary load-balancing loss at this coefficient.
        moe.aux_loss = r.number("router_aux_loss_coef", 0.001) > 0;
        m.moe = moe;
        for (const char* k : {"moe", "moe.experts", "moe.top_k", "moe.expert_ffn", "moe.aux_loss"})
          set.push_back(k);
      }
    }
  }
  m.seq_len = positions;
  set.push_back("seq_len");
  r.refuse_unread();
  return set;
}

}  // namespace orrery::detail
