// The model: section of an imported scenario (scenario/import_common.h). Defaults are
// Megatron-LM's at NVIDIA/Megatron-LM d98e8a64: megatron/training/arguments.py
// (--ffn-hidden-size defaulting to 4 h, or int(4 h * 2/3 / 64) * 64 with --swiglu,
// validate_args; the MLA ranks), TransformerConfig in
// megatron/core/transformer/transformer_config.py (hidden_dropout and attention_dropout
// 0.1, normalization LayerNorm, add_bias_linear true unless --disable-bias-linear,
// moe_router_topk 2), and vocab_size_with_padding in
// megatron/core/tokenizers/utils/build_tokenizer.py (the vocabulary padded up to a
// multiple of --make-vocab-size-divisible-by (128) x tp).
#include <fmt/format.h>

#include <algorithm>

#include "scenario/import_common.h"
#include "scenario/spec.h"

namespace orrery::detail {

namespace {

// A --moe-layer-freq list expression (moe_freq_type in megatron/training/arguments.py at
// NVIDIA/Megatron-LM d98e8a64, which evaluates it as Python): lists of 0 and 1, joined by
// `+` and repeated by `*` an integer on either side, in parentheses as needed
// ("([0]*3+[1]*58)"). nullopt where the text is anything else.
class LayerPattern {
 public:
  explicit LayerPattern(std::string text) : s_(std::move(text)) {}
  std::optional<std::vector<int>> parse() {
    auto v = sum();
    skip();
    if (!v || at_ != s_.size()) return std::nullopt;
    return v;
  }

 private:
  using List = std::vector<int>;
  static constexpr std::size_t kLongest = 1u << 20;
  void skip() {
    while (at_ < s_.size() && s_[at_] == ' ') ++at_;
  }
  bool eat(char c) {
    skip();
    if (at_ < s_.size() && s_[at_] == c) return ++at_, true;
    return false;
  }
  std::optional<std::size_t> integer() {
    skip();
    const std::size_t from = at_;
    while (at_ < s_.size() && s_[at_] >= '0' && s_[at_] <= '9' && at_ - from < 7) ++at_;
    if (at_ == from) return std::nullopt;
    return static_cast<std::size_t>(std::stoul(s_.substr(from, at_ - from)));
  }
  std::optional<List> sum() {
    auto v = product();
    while (v && eat('+')) {
      auto w = product();
      if (!w || v->size() + w->size() > kLongest) return std::nullopt;
      v->insert(v->end(), w->begin(), w->end());
    }
    return v;
  }
  // A list times integers, in any order ("[1]*3", "3*[1]").
  std::optional<List> product() {
    std::optional<List> list;
    std::size_t times = 1;
    do {
      skip();
      if (at_ < s_.size() && s_[at_] >= '0' && s_[at_] <= '9') {
        const auto n = integer();
        if (!n || *n > kLongest) return std::nullopt;
        times *= *n;
        if (times > kLongest) return std::nullopt;
      } else {
        if (list) return std::nullopt;  // a list times a list
        list = atom();
        if (!list) return std::nullopt;
      }
    } while (eat('*'));
    if (!list || list->size() * times > kLongest) return std::nullopt;
    List out;
    for (std::size_t i = 0; i < times; ++i) out.insert(out.end(), list->begin(), list->end());
    return out;
  }
  std::optional<List> atom() {
    if (eat('(')) {
      auto v = sum();
      if (!v || !eat(')')) return std::nullopt;
      return v;
    }
    if (!eat('[')) return std::nullopt;
    List v;
    if (eat(']')) return v;
    do {
      const auto n = integer();
      if (!n || *n > 1) return std::nullopt;
      v.push_back(static_cast<int>(*n));
    } while (eat(','));
    if (!eat(']')) return std::nullopt;
    return v;
  }
  std::string s_;
  std::size_t at_ = 0;
};

// The leading dense layers of --moe-layer-freq (default 1: every layer MoE). An integer N
// makes layer i an MoE layer where i % N == 0; a list gives each layer, 1 for MoE, and
// must be as long as the model. orrery places dense layers first only
// (model.moe.first_dense_layers), so any other pattern is refused.
std::int64_t moe_dense_layers(const ImportSettings& a, std::int64_t layers) {
  if (!a.has("--moe-layer-freq")) return 0;
  const std::string& text = a.text("--moe-layer-freq");
  std::vector<int> pattern;
  if (text.find('[') == std::string::npos) {
    const std::int64_t every = a.whole("--moe-layer-freq");
    for (std::int64_t i = 0; i < layers; ++i) pattern.push_back(i % every == 0 ? 1 : 0);
  } else {
    const auto parsed = LayerPattern(text).parse();
    if (!parsed) {
      a.refuse("--moe-layer-freq",
               "expected an integer or a list expression of 0s and 1s with + and * (as "
               "\"([0]*3+[1]*58)\")");
    }
    pattern = *parsed;
    if (static_cast<std::int64_t>(pattern.size()) != layers) {
      a.refuse("--moe-layer-freq",
               fmt::format("the pattern has {} layers, the model {}", pattern.size(), layers));
    }
  }
  const auto first_moe = std::find(pattern.begin(), pattern.end(), 1);
  if (first_moe == pattern.end()) a.refuse("--moe-layer-freq", "no MoE layer in the pattern");
  if (std::find(first_moe, pattern.end(), 0) != pattern.end()) {
    a.refuse("--moe-layer-freq",
             "orrery places dense layers before the MoE ones only (model.moe.first_dense_layers); "
             "this pattern has a dense layer after an MoE layer");
  }
  return first_moe - pattern.begin();
}

// model.moe.aux_loss from the router's load balancing (megatron/core/transformer/moe/
// router.py at d98e8a64): an auxiliary loss (aux_loss, seq_aux_loss, global_aux_loss) runs
// only where its coefficient is above 0 (is_aux_loss_enabled; --moe-aux-loss-coeff
// defaults to 0.0, one value for every type or one a type); the expert bias
// (--moe-router-enable-expert-bias) is aux-loss-free balancing. With neither no load is
// balanced, which the imbalance defaults do not cover: refused. The bias needs sigmoid or
// sqrtsoftplus scores (TransformerConfig raises otherwise).
struct MoeBalancing {
  bool aux_loss = true;
  std::string source;
  bool bias = false;  // the expert bias balances the load (aux-loss-free balancing)
};
MoeBalancing moe_aux_loss(const ImportSettings& a) {
  const char* kType = "--moe-router-load-balancing-type";
  const char* kCoeff = "--moe-aux-loss-coeff";
  const std::vector<std::string> types = words_of(a.has(kType) ? a.text(kType) : "aux_loss");
  const std::vector<std::string> coeffs = words_of(a.has(kCoeff) ? a.text(kCoeff) : "0.0");
  // TransformerConfig takes several types only with a coefficient each
  // (transformer_config.py at d98e8a64; arguments.py unwraps one-item lists).
  if (coeffs.size() != types.size() && !(types.size() == 1 && coeffs.size() == 1)) {
    a.refuse(kCoeff, types.size() == 1 ? "expected one coefficient for the one load-balancing type"
                                       : "expected one coefficient for each load-balancing type");
  }
  bool aux = false;
  for (std::size_t i = 0; i < types.size(); ++i) {
    const std::string& t = types[i];
    if (t == "none") continue;
    if (t != "aux_loss" && t != "seq_aux_loss" && t != "global_aux_loss") {
      a.refuse(kType,
               "orrery models the auxiliary losses (aux_loss, seq_aux_loss, global_aux_loss), "
               "the expert bias and none; " +
                   t + " has no form here");
    }
    const double value = parse_number(coeffs[coeffs.size() == 1 ? 0 : i]).value_or(-1);
    if (value < 0) a.refuse(kCoeff, "expected numbers >= 0");
    if (value > 0) aux = true;
  }
  const bool bias = a.flag("--moe-router-enable-expert-bias");
  const char* kScore = "--moe-router-score-function";
  const std::string score = a.has(kScore) ? a.text(kScore) : "softmax";
  if (bias && score != "sigmoid" && score != "sqrtsoftplus") {
    // transformer_config.py at d98e8a64 raises for the bias under softmax scores.
    a.refuse("--moe-router-enable-expert-bias",
             "Megatron-Core takes the expert bias only with --moe-router-score-function "
             "sigmoid or sqrtsoftplus (" +
                 score + " here)");
  }
  if (!aux && !bias) {
    a.refuse(a.has(kCoeff) ? kCoeff : kType,
             "no load balancing runs (no auxiliary loss with a coefficient above 0, Megatron-LM's "
             "default being 0.0, and no --moe-router-enable-expert-bias); orrery's "
             "model.moe.load_imbalance defaults assume one or the other");
  }
  if (aux) {
    return {true,
            fmt::format("{} {} with {} above 0", a.label(kType),
                        a.has(kType) ? a.text(kType) : "aux_loss", a.label(kCoeff)),
            bias};
  }
  return {false, a.label("--moe-router-enable-expert-bias") + ": aux-loss-free balancing", true};
}

}  // namespace

ImportedModel write_model_section(const ImportSettings& a) {
  std::string m;
  std::vector<std::string> differences;  // ImportedModel::differences
  const std::int64_t layers = a.required("--num-layers");
  const std::int64_t hidden = a.required("--hidden-size");
  const std::int64_t heads = a.required("--num-attention-heads");
  const std::int64_t seq = a.required("--seq-length");
  const std::int64_t vocab = a.required("--vocab-size");
  const std::int64_t tp = a.whole("--tensor-model-parallel-size", 1);
  const bool swiglu = a.flag("--swiglu");
  // The other activations (argument_utils.py at d98e8a64, lines 314-326; each asserted
  // without --swiglu): --quick-geglu is a gated unit like SwiGLU (three matrices of width
  // ffn, whose default stays 4 h: the 2/3 rule is --swiglu's), --squared-relu an ungated one
  // like GeLU. orrery times each as the activation of its shape and lists the difference.
  for (const char* other : {"--quick-geglu", "--squared-relu"}) {
    if (a.flag(other) && swiglu) a.refuse(other, "given with --swiglu: Megatron-LM takes one");
  }
  if (a.flag("--quick-geglu") && a.flag("--squared-relu")) {
    a.refuse("--squared-relu", "given with --quick-geglu: Megatron-LM takes one");
  }
  const bool geglu = a.flag("--quick-geglu");
  m += scenario_line("family", "decoder", a.absent("family", "pretrain_gpt.py"));
  m += scenario_line("layers", std::to_string(layers), a.label("--num-layers"));
  m += scenario_line("hidden", std::to_string(hidden), a.label("--hidden-size"));
  m += scenario_line("heads", std::to_string(heads), a.label("--num-attention-heads"));
  if (a.flag("--group-query-attention")) {
    // --num-query-groups defaults to 1 (TransformerConfig's argparse default at d98e8a64,
    // megatron/core/transformer/transformer_config.py): one key-value head.
    m += scenario_line(
        "kv_heads", std::to_string(a.whole("--num-query-groups", 1)),
        a.has("--num-query-groups")
            ? a.source("--num-query-groups", "--group-query-attention --num-query-groups")
            : a.label("--group-query-attention") + ", default of " +
                  a.label("--num-query-groups") + " 1");
  } else {
    m += scenario_line(
        "kv_heads", std::to_string(heads),
        "= heads: " + a.absent("--group-query-attention", "no --group-query-attention"));
  }
  const std::int64_t ffn_default = swiglu ? (4 * hidden * 2 / 3) / 64 * 64 : 4 * hidden;
  const std::string ffn_name = a.label("--ffn-hidden-size");
  m += scenario_line(
      "ffn", std::to_string(a.whole("--ffn-hidden-size", ffn_default)),
      a.has("--ffn-hidden-size")
          ? ffn_name
          : (swiglu ? "default of " + ffn_name + " with --swiglu: int(4 h 2/3 / 64) * 64"
                    : "default of " + ffn_name + ": 4 h"));
  const std::int64_t multiple =
      a.whole("--make-vocab-size-divisible-by", kMegatronVocabDivisor) * tp;
  const std::int64_t padded = megatron_padded_vocab(vocab, multiple);
  m += scenario_line(
      "vocab", std::to_string(padded),
      fmt::format("{} {} padded to a multiple of {} ({} x tp)", a.label("--vocab-size"), vocab,
                  multiple, a.label("--make-vocab-size-divisible-by")));
  m += scenario_line("seq_len", std::to_string(seq), a.label("--seq-length"));
  if (geglu) {
    m += scenario_line("activation", "swiglu",
                       a.label("--quick-geglu") + ": gated, timed as SwiGLU");
    differences.push_back(a.label("--quick-geglu") +
                          ": Megatron-Core's gated quick-GeLU, timed as SwiGLU (the same three "
                          "matrices; SwiGLU's element-wise kernel)");
  } else if (a.flag("--squared-relu")) {
    m += scenario_line("activation", "gelu", a.label("--squared-relu") + ": timed as GeLU");
    differences.push_back(a.label("--squared-relu") +
                          ": squared ReLU, timed as GeLU (the same two matrices and one "
                          "element-wise kernel)");
  } else {
    m += scenario_line("activation", swiglu ? "swiglu" : "gelu",
                       swiglu ? a.label("--swiglu") : a.absent("--swiglu", "no --swiglu"));
  }
  std::string norm = "layernorm";
  if (a.has("--normalization")) {
    if (a.text("--normalization") == "RMSNorm") {
      norm = "rmsnorm";
    } else if (a.text("--normalization") != "LayerNorm") {
      a.refuse("--normalization", "orrery models LayerNorm and RMSNorm");
    }
  }
  m += scenario_line("norm", norm,
                     given_or(a, "--normalization", "default of " + a.label("--normalization")));
  std::string pos = "learned";
  if (a.flag("--use-rotary-position-embeddings")) pos = "rope";
  if (a.has("--position-embedding-type")) {
    const std::string& v = a.text("--position-embedding-type");
    if (v == "rope") {
      pos = "rope";
    } else if (v != "learned_absolute") {
      a.refuse("--position-embedding-type", "orrery models learned_absolute and rope");
    }
  }
  m += scenario_line("position_embedding", pos,
                     a.has("--position-embedding-type") ? a.label("--position-embedding-type")
                     : a.flag("--use-rotary-position-embeddings")
                         ? "--use-rotary-position-embeddings"
                         : "default of " + a.label("--position-embedding-type"));
  const bool untied = a.flag("--untie-embeddings-and-output-weights");
  m += scenario_line("tied_embeddings", untied ? "false" : "true",
                     untied ? a.label("--untie-embeddings-and-output-weights")
                            : a.absent("--untie-embeddings-and-output-weights",
                                       "no --untie-embeddings-and-output-weights"));
  const bool no_bias = a.flag("--disable-bias-linear");
  m += scenario_line("bias", no_bias ? "false" : "true",
                     no_bias ? a.label("--disable-bias-linear")
                             : a.absent("--disable-bias-linear", "no --disable-bias-linear"));
  const bool dropout =
      a.number("--attention-dropout", 0.1) > 0 || a.number("--hidden-dropout", 0.1) > 0;
  m += scenario_line("dropout", dropout ? "true" : "false",
                     fmt::format("{}, {} (default 0.1 each) above 0",
                                 a.label("--attention-dropout"), a.label("--hidden-dropout")));
  const bool mla = a.flag("--multi-latent-attention");
  if (mla) {
    // Megatron-LM's MLA arguments and their defaults (arguments.py at d98e8a64: no query
    // compression, kv rank 32, 128 + 64 query/key and 128 value widths a head). orrery's
    // MLA keeps the latent norms (q_norm, kv_norm) that --qk-layernorm builds.
    const std::pair<const char*, const char*> ranks[] = {
        {"--q-lora-rank", "q_lora_rank"},
        {"--kv-lora-rank", "kv_lora_rank"},
        {"--qk-head-dim", "qk_nope_head_dim"},
        {"--qk-pos-emb-head-dim", "qk_rope_head_dim"},
        {"--v-head-dim", "v_head_dim"}};
    const std::int64_t defaults[] = {0, 32, 128, 64, 128};
    m += "  mla:  # " + a.label("--multi-latent-attention") +
         (a.flag("--qk-layernorm") ? " with " + a.label("--qk-layernorm") + " (the latent norms)"
                                   : " (orrery keeps the latent norms --qk-layernorm builds)") +
         "\n";
    for (std::size_t i = 0; i < std::size(ranks); ++i) {
      const auto& [arg, key] = ranks[i];
      m += "  " +
           scenario_line(
               key, std::to_string(a.count(arg, defaults[i])),
               given_or(a, arg,
                        fmt::format("default of {} {}", a.label(arg),
                                    defaults[i] == 0 ? "None" : std::to_string(defaults[i]))));
    }
  } else {
    if (a.flag("--qk-layernorm")) m += scenario_line("qk_norm", "true", a.label("--qk-layernorm"));
    // kv_channels: a head's width where it is not hidden / heads (arguments.py fills it in
    // for every run, so a log prints it either way).
    if (a.has("--kv-channels") &&
        (hidden % heads != 0 || a.whole("--kv-channels") != hidden / heads)) {
      m += scenario_line("head_dim", std::to_string(a.whole("--kv-channels")),
                         a.label("--kv-channels"));
    }
  }
  if (a.count("--mtp-num-layers", 0) > 0) {
    m += scenario_line("mtp_layers", std::to_string(a.count("--mtp-num-layers", 0)),
                       a.label("--mtp-num-layers"));
  }
  if (a.has("--num-experts")) {
    m += "  moe:\n";
    m += "  " + scenario_line("experts", a.text("--num-experts"), a.label("--num-experts"));
    m += "  " + scenario_line(
                    "top_k", std::to_string(a.whole("--moe-router-topk", 2)),
                    given_or(a, "--moe-router-topk", "default of " + a.label("--moe-router-topk")));
    const std::int64_t expert_ffn =
        a.whole("--moe-ffn-hidden-size", a.whole("--ffn-hidden-size", ffn_default));
    m += "  " + scenario_line("expert_ffn", std::to_string(expert_ffn),
                              given_or(a, "--moe-ffn-hidden-size",
                                       "= ffn: no " + a.label("--moe-ffn-hidden-size")));
    // Shared experts as orrery counts them: copies of one expert's width
    // (transformer_config.py: "num_shared_experts * ffn_size_of_each_shared_expert").
    if (a.has("--moe-shared-expert-intermediate-size")) {
      const std::int64_t shared = a.whole("--moe-shared-expert-intermediate-size");
      if (shared % expert_ffn != 0) {
        a.refuse("--moe-shared-expert-intermediate-size",
                 fmt::format("orrery writes shared experts as a count of experts {} wide: "
                             "expected a multiple of it",
                             expert_ffn));
      }
      m += "  " + scenario_line("shared_experts", std::to_string(shared / expert_ffn),
                                a.label("--moe-shared-expert-intermediate-size") + " / expert_ffn");
    }
    if (const std::int64_t dense = moe_dense_layers(a, layers); dense > 0) {
      m += "  " +
           scenario_line("first_dense_layers", std::to_string(dense), a.label("--moe-layer-freq"));
    }
    // A negative factor is dropless (transformer_config.py at d98e8a64 sets it to None).
    bool capacity = false;
    if (a.has("--moe-expert-capacity-factor")) {
      const double cf = parse_number(a.text("--moe-expert-capacity-factor")).value_or(0);
      if (cf == 0) a.refuse("--moe-expert-capacity-factor", "expected a number other than 0");
      capacity = cf > 0;
      if (capacity) {
        m += "  " + scenario_line("capacity_factor", fmt::format("{:g}", cf),
                                  a.label("--moe-expert-capacity-factor"));
      }
    }
    if (a.flag("--moe-pad-expert-input-to-capacity")) {
      // transformer_config.py at d98e8a64 raises for it under the flex dispatcher's deepep
      // backend, whatever ep is.
      if (moe_dispatcher(a) == "flex" && flex_backend(a) == "deepep") {
        a.refuse("--moe-pad-expert-input-to-capacity",
                 "Megatron-Core's flex dispatcher with the deepep backend does not pad to "
                 "capacity");
      }
      if (!capacity) {
        a.refuse("--moe-pad-expert-input-to-capacity",
                 "Megatron-Core pads only with --moe-expert-capacity-factor");
      }
      m += "  " +
           scenario_line("pad_to_capacity", "true", a.label("--moe-pad-expert-input-to-capacity"));
    }
    const MoeBalancing balancing = moe_aux_loss(a);
    m += "  " + scenario_line("aux_loss", balancing.aux_loss ? "true" : "false", balancing.source);
    // An auxiliary loss beside the expert bias (DeepSeek-V3's seq_aux_loss at 1e-4): its
    // ops run, and the bias balances the load, so the imbalance is the loss-free one
    // (docs/scenario-format.md, model.moe.load_imbalance: arXiv:2408.15664 Table 2).
    if (balancing.aux_loss && balancing.bias) {
      m += "  " + scenario_line("load_imbalance", "1.04",
                                a.label("--moe-router-enable-expert-bias") +
                                    ": loss-free balancing's 1 + MaxVio_global (arXiv:2408.15664)");
    }
    if (a.has("--moe-router-num-groups") || a.has("--moe-router-group-topk")) {
      if (!a.has("--moe-router-num-groups") || !a.has("--moe-router-group-topk")) {
        a.refuse(a.has("--moe-router-num-groups") ? "--moe-router-num-groups"
                                                  : "--moe-router-group-topk",
                 "group-limited routing needs both --moe-router-num-groups and "
                 "--moe-router-group-topk");
      }
      m += "  " + scenario_line("router_groups", std::to_string(a.whole("--moe-router-num-groups")),
                                a.label("--moe-router-num-groups"));
      m += "  " + scenario_line("router_group_topk",
                                std::to_string(a.whole("--moe-router-group-topk")),
                                a.label("--moe-router-group-topk"));
    }
    if (a.flag("--moe-shared-expert-overlap")) {
      if (!a.has("--moe-shared-expert-intermediate-size")) {
        a.refuse("--moe-shared-expert-overlap",
                 "needs --moe-shared-expert-intermediate-size (no shared experts to overlap)");
      }
      const std::string type = moe_dispatcher(a);
      if (type != "alltoall" && type != "flex") {
        // transformer_config.py at d98e8a64 raises for it under the allgather dispatcher.
        a.refuse("--moe-shared-expert-overlap",
                 "Megatron-Core overlaps the shared experts only under the alltoall or flex "
                 "dispatcher (" +
                     type + " here)");
      }
      m += "  " +
           scenario_line("shared_expert_overlap", "true", a.label("--moe-shared-expert-overlap"));
    }
    // orrery times the MoE layer's kernels as the Megatron-Bridge recipes run them: the
    // experts as Transformer Engine's grouped GEMM (TEGroupedMLP), the permutation and the
    // router's top-k as fused kernels (model/transformer.cpp). Megatron-Core's switches
    // for them are off by default (TransformerConfig moe_grouped_gemm, moe_permute_fusion,
    // moe_router_fusion, transformer_config.py lines 850, 941, 944 at d98e8a64; without
    // grouped GEMM the layer spec builds SequentialMLP, moe_module_specs.py), so a launch
    // without them runs more, smaller kernels than orrery counts. With one local expert
    // SequentialMLP runs it on the whole batch (experts.py at d98e8a64,
    // num_local_experts == 1): the grouped path's GEMMs.
    const bool several_local =
        a.whole("--num-experts") != a.whole("--expert-model-parallel-size", 1);
    const struct {
      const char* argument;
      bool applies;
      const char* what;
    } kernels[] = {
        {"--moe-grouped-gemm", several_local,
         "SequentialMLP, one MLP module a local expert, where orrery times Transformer "
         "Engine's grouped GEMM"},
        {"--moe-permute-fusion", true,
         "the token permutation as PyTorch ops, where orrery counts one fused kernel"},
        {"--moe-router-fusion", true,
         "the router's top-k and scores as PyTorch ops, where orrery counts the fused kernels"},
    };
    for (const auto& k : kernels) {
      if (k.applies && !a.flag(k.argument)) {
        differences.push_back(fmt::format("{}: Megatron-Core runs {}",
                                          a.absent(k.argument, "no " + a.label(k.argument)),
                                          k.what));
      }
    }
  }

  return {m, layers, tp, swiglu, !no_bias, pos == "rope", differences};
}

}  // namespace orrery::detail
