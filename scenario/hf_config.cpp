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

enum class Kind { llama, gpt2, neox, deepseek, gemma };

// Which MoE keys a llama-kind family has: Mixtral's num_local_experts, or the Qwen MoE
// models' num_experts, moe_intermediate_size, decoder_sparse_step, mlp_only_layers (and
// Qwen2-MoE's shared expert).
enum class Moe { none, mixtral, qwen };

struct Arch {
  const char* name;  // architectures[0]
  Kind kind;
  Moe moe;
  bool qwen;      // use_sliding_window, max_window_layers, q/k/v biases (Qwen2)
  bool qkv_bias;  // q, k and v projections always carry biases, o and the MLP none
};

const std::vector<Arch>& archs() {
  static const std::vector<Arch> list = {
      {"LlamaForCausalLM", Kind::llama, Moe::none, false, false},
      {"MistralForCausalLM", Kind::llama, Moe::none, false, false},
      {"MixtralForCausalLM", Kind::llama, Moe::mixtral, false, false},
      {"Qwen2ForCausalLM", Kind::llama, Moe::none, true, true},
      {"Qwen3ForCausalLM", Kind::llama, Moe::none, true, false},
      {"Phi3ForCausalLM", Kind::llama, Moe::none, false, false},
      {"GPT2LMHeadModel", Kind::gpt2, Moe::none, false, false},
      {"GPTNeoXForCausalLM", Kind::neox, Moe::none, false, false},
      {"DeepseekV2ForCausalLM", Kind::deepseek, Moe::none, false, false},
      {"DeepseekV3ForCausalLM", Kind::deepseek, Moe::none, false, false},
      {"Qwen2MoeForCausalLM", Kind::llama, Moe::qwen, true, true},
      {"Qwen3MoeForCausalLM", Kind::llama, Moe::qwen, true, false},
      {"Gemma2ForCausalLM", Kind::gemma, Moe::none, false, false},
      {"Gemma3ForCausalLM", Kind::gemma, Moe::none, false, false},
      {"Gemma3ForConditionalGeneration", Kind::gemma, Moe::none, false, false},
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
// (Phi-3) is the length the rotary scaling starts from. Qwen3's q/k norms (an RMSNorm
// of head_dim weights on each query and key head, Qwen3Attention's q_norm and k_norm)
// have no config key: the architecture sets model.qk_norm.
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
  const Json& value(const std::string& key) const { return j_.at(key); }
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

// Qwen2-MoE and Qwen3-MoE (Qwen2MoeConfig, Qwen3MoeConfig in huggingface/transformers
// src/transformers/models/qwen2_moe/configuration_qwen2_moe.py and
// qwen3_moe/configuration_qwen3_moe.py at 008e5743): layer i is an MoE layer unless it is
// in mlp_only_layers, and when (i + 1) % decoder_sparse_step == 0 (both default to every
// layer); a dense layer is intermediate_size wide. Qwen2-MoE adds a shared expert of
// shared_expert_intermediate_size beside the routed ones; Qwen3-MoE has none.
void read_qwen_moe(Reader& r, ModelSpec& m, std::vector<std::string>& set) {
  const bool qwen2 = std::string(r.arch()) == "Qwen2MoeForCausalLM";
  MoeSpec moe;
  moe.experts = static_cast<int>(r.whole("num_experts"));
  moe.top_k = static_cast<int>(r.whole("num_experts_per_tok"));
  moe.expert_ffn = r.whole("moe_intermediate_size");
  if (r.whole("decoder_sparse_step", 1) != 1) {
    r.fail("decoder_sparse_step",
           "orrery makes every layer after the dense ones an MoE layer (decoder_sparse_step 1)");
  }
  // mlp_only_layers: the leading dense layers 0 .. k-1 are orrery's first_dense_layers;
  // dense layers elsewhere it cannot place.
  if (r.has("mlp_only_layers")) {
    const Json& dense = r.value("mlp_only_layers");
    if (!dense.is_array()) r.fail("mlp_only_layers", "expected a list of layer numbers");
    for (std::size_t i = 0; i < dense.size(); ++i) {
      if (!dense[i].is_number_integer() || dense[i].get<std::int64_t>() != std::int64_t(i)) {
        r.fail("mlp_only_layers",
               "orrery's dense layers are the first ones: the list must be 0, 1, .., k-1");
      }
    }
    moe.first_dense_layers = static_cast<int>(dense.size());
    if (moe.first_dense_layers >= m.layers) {
      r.fail("mlp_only_layers", "orrery's MoE model needs at least one MoE layer");
    }
    set.push_back("moe.first_dense_layers");
  }
  // The shared expert, one SwiGLU MLP of shared_expert_intermediate_size, is orrery's
  // shared_experts experts of expert_ffn: the same weights and FLOPs when the width is a
  // multiple (Qwen1.5-MoE-A2.7B: 5632 = 4 x 1408). Its sigmoid gate, a hidden x 1
  // projection per layer (49,152 weights in Qwen1.5-MoE-A2.7B), is left out.
  if (qwen2) {
    const std::int64_t shared = r.whole("shared_expert_intermediate_size");
    if (shared % moe.expert_ffn != 0) {
      r.fail("shared_expert_intermediate_size",
             fmt::format("orrery's shared experts are moe_intermediate_size ({}) wide: the "
                         "width must be a multiple of it",
                         moe.expert_ffn));
    }
    moe.shared_experts = static_cast<int>(shared / moe.expert_ffn);
    set.push_back("moe.shared_experts");
  }
  // Trained with the auxiliary load-balancing loss at this coefficient (0.001 in the
  // released configs and the classes' default).
  moe.aux_loss = r.number("router_aux_loss_coef", 0.001) > 0;
  // norm_topk_prob: whether the k routing weights are renormalised, k values a token.
  r.has("norm_topk_prob");
  // Qwen2-MoE's q/k/v biases (transformers' qkv_bias, always there in the released
  // checkpoints) are left out as Qwen2's.
  if (qwen2) r.has("qkv_bias");
  m.moe = moe;
  for (const char* k : {"moe", "moe.experts", "moe.top_k", "moe.expert_ffn", "moe.aux_loss"}) {
    set.push_back(k);
  }
}

// Gemma 2 and Gemma 3 (Gemma2Config in huggingface/transformers
// src/transformers/models/gemma2/configuration_gemma2.py, Gemma3TextConfig in
// gemma3/configuration_gemma3.py at 008f5c8c). Gemma 3's text_config leaves out the keys
// at their default: vocab_size 262,208, max_position_embeddings 131,072, head_dim 256,
// sliding_window 4096, sliding_window_pattern 6 (Gemma3TextConfig), which are taken here.
// Both alternate layers attending through a sliding window with layers attending to the
// whole sequence: Gemma 2 every other layer, Gemma 3 five windowed to one global
// (sliding_window_pattern 6). orrery gives every layer the same mask, so a Gemma imports
// only where the window covers the sequence, every layer then causal over it.
void read_gemma(Reader& r, bool gemma3, std::optional<std::int64_t> seq_len, ModelSpec& m,
                std::vector<std::string>& set, std::int64_t& positions) {
  m.hidden = r.whole("hidden_size");
  m.layers = static_cast<int>(r.whole("num_hidden_layers"));
  m.heads = static_cast<int>(r.whole("num_attention_heads"));
  m.kv_heads = static_cast<int>(r.whole("num_key_value_heads"));
  m.ffn = r.whole("intermediate_size");
  using Fallback = std::optional<std::int64_t>;
  m.vocab = r.whole("vocab_size", gemma3 ? Fallback(262208) : std::nullopt);
  positions = r.whole("max_position_embeddings", gemma3 ? Fallback(131072) : std::nullopt);
  // Heads of head_dim, independent of hidden / heads (Gemma 2 9B: 256 where 3584 / 16 is
  // 224).
  const std::int64_t hd = r.whole("head_dim", gemma3 ? Fallback(256) : std::nullopt);
  if (m.hidden % m.heads != 0 || hd != m.hidden / m.heads) {
    m.head_width = hd;
    set.push_back("head_dim");
  }
  // Gemma's MLP is gated (gate, up and down projections) with a tanh-approximated GeLU
  // gate (GeGLU): orrery's swiglu, the gated MLP, whose three GEMMs and elementwise pass
  // cost the same whichever function gates. Gemma 2's configs write hidden_act beside
  // hidden_activation.
  for (const char* k : {"hidden_activation", "hidden_act"}) {
    const std::string act = r.text(k, "gelu_pytorch_tanh");
    if (act != "gelu_pytorch_tanh" && act != "gelu" && act != "gelu_new") {
      r.fail(k, "orrery models Gemma's MLP as a GeLU-gated MLP (gelu_pytorch_tanh)");
    }
  }
  m.activation = Activation::swiglu;
  m.norm = Norm::rmsnorm;
  m.position_embedding = PositionEmbedding::rope;
  m.tied_embeddings = r.flag("tie_word_embeddings", true);
  if (r.flag("attention_bias", false)) {
    r.fail("attention_bias", "orrery's Gemma has no biases (attention_bias false)");
  }
  m.bias = false;
  m.dropout = r.number("attention_dropout", 0.0) > 0;
  const std::int64_t window = r.whole("sliding_window", gemma3 ? Fallback(4096) : std::nullopt);
  r.has("sliding_window_size");  // Gemma 2's older name of sliding_window
  const std::int64_t pattern = gemma3 ? r.whole("sliding_window_pattern", 6) : 2;
  const std::int64_t seq = seq_len ? *seq_len : positions;
  if (window < seq) {
    r.fail("sliding_window",
           fmt::format("{} of every {} layers see only the last {} keys, the others all of "
                       "them; orrery gives every layer the same mask, so it imports Gemma "
                       "where the window covers the sequence: write seq_len <= {} beside "
                       "hf_config (the sequence is {})",
                       pattern - 1, pattern, window, window, seq));
  }
  // Keys that change no cost orrery models: query_pre_attn_scalar (the scores' scale, a
  // constant of the fused kernel), attn_logit_softcapping (a tanh on each score inside
  // the fused kernel, FlashAttention's softcap), cache_implementation (generation),
  // rope_local_base_freq (the windowed layers' rotary base). Not modelled:
  // final_logit_softcapping (Gemma 2: one elementwise tanh over the b*s*V logits) and the
  // two norms Gemma adds to each layer (pre/post-feed-forward: 2 h weights a layer and two
  // memory-bound passes). Gemma 3's per-head q/k norms are model.qk_norm (read_hf_config).
  for (const char* k :
       {"query_pre_attn_scalar", "attn_logit_softcapping", "final_logit_softcapping",
        "cache_implementation", "rope_local_base_freq"}) {
    r.has(k);
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
  // Gemma 3's multimodal checkpoints (gemma-3-4b and larger) nest the language model in
  // text_config: orrery takes it, and leaves out the SigLIP vision tower and its
  // projector (vision_config), which the text-only training orrery models does not run.
  const bool nested = name == "Gemma3ForConditionalGeneration";
  if (nested) {
    static const std::set<std::string> outer = {
        "architectures",   "text_config",     "vision_config",        "mm_tokens_per_image",
        "boi_token_index", "eoi_token_index", "image_token_index",    "initializer_range",
        "model_type",      "torch_dtype",     "transformers_version", "_name_or_path",
        "bos_token_id",    "eos_token_id",    "pad_token_id"};
    for (const auto& [key, value] : j.items()) {
      if (!outer.count(key)) {
        throw InputError(
            {file, std::nullopt}, key, value.is_string() ? value.get<std::string>() : value.dump(),
            fmt::format("a key orrery neither maps nor lists as changing no cost ({})", name));
      }
    }
    if (!j.contains("text_config") || !j.at("text_config").is_object()) {
      throw InputError({file, std::nullopt}, "text_config", "",
                       "missing key: Gemma3ForConditionalGeneration's language model is its "
                       "text_config");
    }
  }
  const Json& body = nested ? j.at("text_config") : j;
  Reader r(body, file, a);
  r.has("architectures");
  if (nested) r.has("model_type");

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
  // Qwen3, Qwen3-MoE and Gemma 3 norm each query and key head (Qwen3Attention,
  // Qwen3MoeAttention and Gemma3Attention build q_norm and k_norm of head_dim and apply
  // them before RoPE: models/qwen3/modeling_qwen3.py, qwen3_moe/modeling_qwen3_moe.py and
  // gemma3/modeling_gemma3.py in huggingface/transformers at 008e5743); Gemma 2 has none.
  m.qk_norm = name == "Qwen3ForCausalLM" || name == "Qwen3MoeForCausalLM" ||
              (a.kind == Kind::gemma && name != "Gemma2ForCausalLM");
  set.push_back("qk_norm");
  std::int64_t positions = 0;
  if (a.kind == Kind::deepseek) {
    read_deepseek(r, m, set);
    positions = r.whole("max_position_embeddings");
  } else if (a.kind == Kind::gemma) {
    read_gemma(r, name != "Gemma2ForCausalLM", seq_len, m, set, positions);
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
    // head_dim (Llama 3.x, Qwen3, Qwen3-MoE, Mistral): the heads' width; model.head_dim
    // where it is not hidden / heads (Qwen3-4B: 128, not 2560 / 32 = 80).
    if (r.has("head_dim")) {
      const std::int64_t hd = r.whole("head_dim");
      if (m.hidden % m.heads != 0 || hd != m.hidden / m.heads) {
        m.head_width = hd;
        set.push_back("head_dim");
      }
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
      if (a.moe == Moe::qwen) read_qwen_moe(r, m, set);
      if (a.moe == Moe::mixtral) {
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
