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

enum class Kind { llama, gpt2, neox };

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

  bool has(const std::string& key) {
    used_.insert(key);
    return j_.contains(key) && !j_.at(key).is_null();
  }

  std::int64_t whole(const std::string& key, std::optional<std::int64_t> fallback = {}) {
    if (!has(key)) {
      if (fallback) return *fallback;
      throw InputError({file_, std::nullopt}, key, "",
                       fmt::format("missing key: a {} config needs it", a_.name));
    }
    const Json& v = j_.at(key);
    if (!v.is_number_integer() || v.get<std::int64_t>() < 1 ||
        v.get<std::int64_t>() > (std::int64_t{1} << 24)) {
      fail(key, "expected a whole number from 1 to 2^24");
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
  if (a.kind == Kind::gpt2) {
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
