// The scenario an import writes (scenario/import_common.h). The mapping's defaults are
// Megatron-LM's at NVIDIA/Megatron-LM d98e8a64: megatron/training/arguments.py (the
// parallel, batch, precision and recompute arguments; --ffn-hidden-size defaulting to
// 4 h, or int(4 h * 2/3 / 64) * 64 with --swiglu, validate_args), TransformerConfig in
// megatron/core/transformer/transformer_config.py (hidden_dropout and attention_dropout
// 0.1, normalization LayerNorm, add_bias_linear true unless --disable-bias-linear,
// moe_router_topk 2), and vocab_size_with_padding in
// megatron/core/tokenizers/utils/build_tokenizer.py (the vocabulary padded up to a
// multiple of --make-vocab-size-divisible-by (128) x tp). NeMo 1.x takes the same
// defaults for the keys it passes through (scenario/import_nemo.cpp).
#include "scenario/import_common.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <sstream>

#include "scenario/load.h"
#include "scenario/presets.h"

namespace orrery::detail {

void ImportSettings::set(const std::string& name, std::string value, std::string label,
                         std::optional<int> line) {
  values_[name] = Entry{std::move(value), std::move(label), line};
}

void ImportSettings::set_flag(const std::string& name, std::string label, std::optional<int> line) {
  flags_[name] = Entry{"", std::move(label), line};
}

std::string ImportSettings::label(const std::string& name) const {
  if (const auto v = values_.find(name); v != values_.end()) return v->second.label;
  if (const auto f = flags_.find(name); f != flags_.end()) return f->second.label;
  if (const auto n = names_.find(name); n != names_.end()) return n->second;
  return name;
}

std::string ImportSettings::source(const std::string& name, const std::string& megatron) const {
  const std::string l = label(name);
  return l == name ? megatron : l;
}

std::string ImportSettings::absent(const std::string& name, const std::string& fallback) const {
  const auto a = absent_.find(name);
  return a == absent_.end() ? fallback : a->second;
}

InputLocation ImportSettings::at(const std::string& name) const {
  if (const auto v = values_.find(name); v != values_.end()) return {where_, v->second.line};
  if (const auto f = flags_.find(name); f != flags_.end()) return {where_, f->second.line};
  return {where_, std::nullopt};
}

std::int64_t ImportSettings::parse_whole(const std::string& name, std::int64_t least) const {
  const std::string& v = text(name);
  std::int64_t out = 0;
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || end != v.data() + v.size() || out < least) {
    throw InputError(at(name), label(name), v,
                     fmt::format("expected a whole number >= {}", least));
  }
  return out;
}

std::int64_t ImportSettings::whole(const std::string& name) const { return parse_whole(name, 1); }

std::int64_t ImportSettings::count(const std::string& name, std::int64_t fallback) const {
  return has(name) ? parse_whole(name, 0) : fallback;
}

namespace {

// `text` as a number when all of it is one.
std::optional<double> parse_number(const std::string& text) {
  try {
    std::size_t used = 0;
    const double d = std::stod(text, &used);
    if (used == text.size()) return d;
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

}  // namespace

double ImportSettings::number(const std::string& name, double fallback) const {
  if (!has(name)) return fallback;
  if (const auto d = parse_number(text(name)); d && *d >= 0) return *d;
  throw InputError(at(name), label(name), text(name), "expected a number >= 0");
}

std::int64_t ImportSettings::required(const std::string& name) const {
  if (!has(name)) {
    throw InputError(
        at(name), label(name), "",
        fmt::format("missing {}: the model's shape needs {}, {}, {}, {} and {}", missing_word_,
                    label("--num-layers"), label("--hidden-size"), label("--num-attention-heads"),
                    label("--seq-length"), label("--vocab-size")));
  }
  return whole(name);
}

void ImportSettings::refuse(const std::string& name, const std::string& why) const {
  throw InputError(at(name), label(name), has(name) ? text(name) : "", why);
}

void check_system_preset(const std::string& where, const std::string& key,
                         const std::string& cluster) {
  const std::vector<std::string> systems = system_preset_names();
  if (std::find(systems.begin(), systems.end(), cluster) == systems.end()) {
    throw InputError(
        {where, std::nullopt}, key, cluster,
        fmt::format("no system preset of that name; known: {}", fmt::join(systems, ", ")));
  }
}

std::string read_import_file(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError({path, std::nullopt}, "", "", "cannot open the " + what);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

int system_gpus_per_node(const std::string& cluster) {
  return system_presets().find(cluster)["gpus_per_node"].as<int>();
}

std::string scenario_line(const std::string& key, const std::string& value,
                          const std::string& source) {
  return fmt::format("  {}: {}  # {}\n", key, value, source);
}

std::string flow_line(const std::string& key, const std::vector<std::string>& entries,
                      const std::vector<std::string>& sources) {
  return fmt::format("{}: {{{}}}  # {}", key, fmt::join(entries, ", "), fmt::join(sources, ", "));
}

namespace {

std::string line(const std::string& key, const std::string& value, const std::string& source) {
  return scenario_line(key, value, source);
}

std::string given_or(const ImportSettings& a, const std::string& name,
                     const std::string& fallback) {
  return a.has(name) || a.flag(name) ? a.label(name) : fallback;
}

}  // namespace

namespace {

// training.fp8 from Megatron-Core's recipe arguments (TransformerConfig in
// megatron/core/transformer/transformer_config.py at NVIDIA/Megatron-LM d98e8a64: fp8_recipe
// "delayed" by default, fp8_amax_history_len 1, first_last_layers_bf16 with
// num_layers_at_start/end_in_bf16 1; DistributedDataParallelConfig.fp8_param_gather), as a
// "fp8: {...}  # sources" line. --fp8-param-gather is Megatron's one switch for fp8 weights
// and their gather: per-tensor recipes gather them in fp8 (communication.param_allgather);
// MXFP8 keeps them as MXFP8 tensors and gathers bf16 through the gradient buffer (weights:
// fp8); arguments.py allows it only with the distributed optimizer or an FSDP.
std::string fp8_section(const ImportSettings& a) {
  std::vector<std::string> keys = {"format: " + a.text("--fp8-format")};
  std::vector<std::string> from = {a.source("--fp8-format", "--fp8-format")};
  const std::string recipe = a.has("--fp8-recipe") ? a.text("--fp8-recipe") : "delayed";
  static const std::map<std::string, std::string> kScaling = {
      {"delayed", "delayed"}, {"tensorwise", "current"}, {"mxfp8", "mxfp8"}, {"blockwise", "block"}};
  const auto scaling = kScaling.find(recipe);
  if (scaling == kScaling.end()) {
    a.refuse("--fp8-recipe", "orrery models delayed, tensorwise, mxfp8 and blockwise (a custom "
                             "quantizer has no form here)");
  }
  keys.push_back("scaling: " + scaling->second);
  from.push_back(a.has("--fp8-recipe") ? a.source("--fp8-recipe", "--fp8-recipe " + recipe)
                                       : a.absent("--fp8-recipe", "default fp8_recipe delayed"));
  if (recipe == "delayed") {
    keys.push_back(fmt::format("amax_history: {}", a.whole("--fp8-amax-history-len", 1)));
    from.push_back(a.has("--fp8-amax-history-len")
                       ? a.source("--fp8-amax-history-len", "--fp8-amax-history-len")
                       : "default fp8_amax_history_len 1");
  }
  if (a.flag("--first-last-layers-bf16") && recipe == "delayed") {
    // transformer_config.py at d98e8a64: "Delayed scaling does not support first / last
    // layer in BF16".
    a.refuse("--first-last-layers-bf16",
             "Megatron-Core keeps no bf16 layers under delayed scaling (give --fp8-recipe)");
  }
  if (a.flag("--first-last-layers-bf16")) {
    keys.push_back(fmt::format("bf16_layers: {{first: {}, last: {}}}",
                               a.whole("--num-layers-at-start-in-bf16", 1),
                               a.whole("--num-layers-at-end-in-bf16", 1)));
    std::string layers = a.label("--first-last-layers-bf16");
    for (const char* n : {"--num-layers-at-start-in-bf16", "--num-layers-at-end-in-bf16"})
      if (a.has(n)) layers += " " + a.label(n);
    from.push_back(layers);
  }
  if (a.flag("--fp8-param-gather")) {
    const bool megatron_fsdp = a.flag("--use-megatron-fsdp");
    if (!a.flag("--use-distributed-optimizer") && !megatron_fsdp) {
      a.refuse("--fp8-param-gather",
               "Megatron-LM takes it only with the distributed optimizer or an FSDP "
               "(--use-distributed-optimizer or --use-megatron-fsdp here)");
    }
    // Megatron-FSDP turns the reuse off (arguments.py at d98e8a64), and orrery keeps MXFP8
    // weights in fp8 through Megatron-Core's own gradient buffer only.
    if (recipe == "mxfp8" && megatron_fsdp) {
      a.refuse("--fp8-param-gather",
               "orrery keeps MXFP8 weights in fp8 under the distributed optimizer only "
               "(Megatron-FSDP turns --reuse-grad-buf-for-mxfp8-param-ag off)");
    }
    // Megatron-Bridge sets the reuse with MXFP8 parameter gathers, the layout orrery models;
    // without it Megatron-Core keeps another buffer (optimizer_config.py at d98e8a64 warns of
    // "significant amount additional GPU memory").
    if (recipe == "mxfp8" && !a.flag("--reuse-grad-buf-for-mxfp8-param-ag")) {
      a.refuse("--fp8-param-gather",
               "orrery models MXFP8 parameter gathers through the gradient buffer: give "
               "--reuse-grad-buf-for-mxfp8-param-ag with it");
    }
    if (recipe == "blockwise") {
      a.refuse("--fp8-param-gather",
               "orrery has no form for blockwise fp8 weights (write training.fp8 by hand, "
               "without it)");
    }
    keys.push_back(recipe == "mxfp8" ? "weights: fp8" : "communication: {param_allgather: fp8}");
    from.push_back(recipe == "mxfp8" && a.flag("--reuse-grad-buf-for-mxfp8-param-ag")
                       ? a.label("--fp8-param-gather") + " with " +
                             a.label("--reuse-grad-buf-for-mxfp8-param-ag")
                       : a.label("--fp8-param-gather"));
  }
  if (a.flag("--reuse-grad-buf-for-mxfp8-param-ag") && !a.flag("--fp8-param-gather")) {
    // distributed_data_parallel_config.py at d98e8a64 asserts fp8_param_gather with it.
    a.refuse("--reuse-grad-buf-for-mxfp8-param-ag",
             "Megatron-Core takes it only with --fp8-param-gather");
  }
  return flow_line("fp8", keys, from) + "\n";
}

}  // namespace

namespace {

// The words of a value given as several (an nargs='+' argument's, joined by spaces).
std::vector<std::string> words_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

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

// The MoE token dispatcher (transformer_config.py at d98e8a64: allgather by default) and the
// flex dispatcher's backend (deepep by default; --moe-enable-deepep, deprecated, is deepep).
std::string moe_dispatcher(const ImportSettings& a) {
  return a.has("--moe-token-dispatcher-type") ? a.text("--moe-token-dispatcher-type")
                                              : "allgather";
}
std::string flex_backend(const ImportSettings& a) {
  const char* kBackend = "--moe-flex-dispatcher-backend";
  return a.has(kBackend) && !a.flag("--moe-enable-deepep") ? a.text(kBackend) : "deepep";
}

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
      a.refuse("--moe-layer-freq", fmt::format("the pattern has {} layers, the model {}",
                                               pattern.size(), layers));
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
    a.refuse(kCoeff, types.size() == 1
                         ? "expected one coefficient for the one load-balancing type"
                         : "expected one coefficient for each load-balancing type");
  }
  bool aux = false;
  for (std::size_t i = 0; i < types.size(); ++i) {
    const std::string& t = types[i];
    if (t == "none") continue;
    if (t != "aux_loss" && t != "seq_aux_loss" && t != "global_aux_loss") {
      a.refuse(kType,
               "orrery models the auxiliary losses (aux_loss, seq_aux_loss, global_aux_loss), "
               "the expert bias and none; " + t + " has no form here");
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
             "sigmoid or sqrtsoftplus (" + score + " here)");
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

namespace {

// Data-parallel sharding (arguments.py at NVIDIA/Megatron-LM d98e8a64):
// --use-distributed-optimizer is ZeRO-1; Megatron-FSDP (--use-megatron-fsdp) shards by
// --data-parallel-sharding-strategy (default optim_grads_params: optim is ZeRO-1,
// optim_grads ZeRO-2, optim_grads_params ZeRO-3 in Megatron-FSDP's units; megatron_fsdp.md),
// with --num-distributed-optimizer-instances replicas of the shard (HSDP); PyTorch FSDP2
// (--use-torch-fsdp2) with the checks arguments.py asserts, keeping gathered weights under
// --torch-fsdp2-no-reshard-after-forward. `model_parallel` is tp x pp x cp.
std::string sharding_lines(const ImportSettings& a, const ImportSource& source,
                           std::int64_t model_parallel, std::int64_t ep) {
  const bool megatron_fsdp = a.flag("--use-megatron-fsdp");
  const bool fsdp2 = a.flag("--use-torch-fsdp2");
  std::string p;
  if (megatron_fsdp && fsdp2) {
    a.refuse("--use-torch-fsdp2", "given with " + a.label("--use-megatron-fsdp"));
  }
  if (fsdp2) {
    if (a.flag("--use-distributed-optimizer")) {
      a.refuse("--use-torch-fsdp2", "Megatron-LM refuses it with the distributed optimizer");
    }
    if (a.whole("--pipeline-model-parallel-size", 1) > 1 || ep > 1) {
      a.refuse("--use-torch-fsdp2",
               "Megatron-LM refuses it with pipeline or expert parallelism");
    }
    if (a.flag("--fp16")) a.refuse("--use-torch-fsdp2", "Megatron-LM refuses it with fp16");
    if (!a.flag("--untie-embeddings-and-output-weights")) {
      a.refuse("--use-torch-fsdp2",
               "Megatron-LM needs --untie-embeddings-and-output-weights with it");
    }
    if (!a.flag("--no-gradient-accumulation-fusion")) {
      a.refuse("--use-torch-fsdp2",
               "Megatron-LM needs --no-gradient-accumulation-fusion with it");
    }
    if (a.whole("--num-distributed-optimizer-instances", 1) > 1) {
      a.refuse("--num-distributed-optimizer-instances",
               "orrery's hybrid sharding under Megatron-LM is Megatron-FSDP's");
    }
    p += scenario_line("fsdp", "{implementation: fsdp2}", a.label("--use-torch-fsdp2"));
    if (a.flag("--torch-fsdp2-no-reshard-after-forward")) {
      p += scenario_line("reshard_after_forward", "false",
                         a.label("--torch-fsdp2-no-reshard-after-forward"));
    }
    return p;
  }
  if (!megatron_fsdp) {
    if (a.whole("--num-distributed-optimizer-instances", 1) > 1) {
      a.refuse("--num-distributed-optimizer-instances",
               "orrery shards hybrid (parallelism.sharding: hybrid) under ZeRO-3 only; the "
               "distributed optimizer's partial instances have no form here");
    }
    if (a.flag("--use-distributed-optimizer")) {
      p += scenario_line("zero_stage", "1", a.label("--use-distributed-optimizer"));
    }
    return p;
  }
  // arguments.py at d98e8a64 asserts Megatron-FSDP's checkpoint format (the argument is
  // read for this check only).
  if (!a.has("--ckpt-format") || a.text("--ckpt-format") != "fsdp_dtensor") {
    a.refuse(a.has("--ckpt-format") ? "--ckpt-format" : "--use-megatron-fsdp",
             "Megatron-LM runs Megatron-FSDP only with --ckpt-format fsdp_dtensor");
  }
  const char* kStrategy = "--data-parallel-sharding-strategy";
  const std::string strategy = a.has(kStrategy) ? a.text(kStrategy) : "optim_grads_params";
  const std::string from = a.label("--use-megatron-fsdp") + " " +
                           (a.has(kStrategy) ? a.label(kStrategy) + " " + strategy
                                             : "(default " + a.label(kStrategy) + " " +
                                                   strategy + ")");
  const std::int64_t instances = a.whole("--num-distributed-optimizer-instances", 1);
  if (instances > 1 && strategy != "optim_grads_params") {
    a.refuse("--num-distributed-optimizer-instances",
             "orrery shards hybrid (HSDP) only parameters, gradients and optimizer state "
             "together (" + std::string(kStrategy) + " optim_grads_params)");
  }
  if (strategy == "optim") {
    p += scenario_line("zero_stage", "1", from);
  } else if (strategy == "optim_grads") {
    p += scenario_line("zero_stage", "2", from);
  } else if (strategy == "optim_grads_params") {
    p += scenario_line("fsdp", "{implementation: megatron_fsdp}", from);
  } else if (strategy == "no_shard") {
    a.refuse(kStrategy,
             "orrery has no Megatron-FSDP form without sharding (plain data parallelism is the "
             "launch without --use-megatron-fsdp)");
  } else {
    a.refuse(kStrategy, "Megatron-LM takes no_shard, optim, optim_grads or optim_grads_params");
  }
  if (instances > 1) {
    // orrery's hybrid sharding shards over one node's data-parallel ranks (with their cp
    // peers) and replicates across nodes (ParallelismSpec::zero3_group).
    const std::int64_t per_node = system_gpus_per_node(source.cluster);
    const std::int64_t gpus = per_node * source.nodes;
    const std::int64_t cp = a.whole("--context-parallel-size", 1);
    const std::int64_t tp = a.whole("--tensor-model-parallel-size", 1);
    const std::int64_t dp = gpus % model_parallel == 0 ? gpus / model_parallel : 0;
    const std::int64_t node_dp = std::max<std::int64_t>(1, std::min(dp, per_node / (tp * cp)));
    if (dp == 0 || dp % node_dp != 0 || dp / node_dp != instances) {
      a.refuse("--num-distributed-optimizer-instances",
               fmt::format("orrery's hybrid sharding shards over one node's {} data-parallel "
                           "ranks, which makes {} instances on these {} GPUs",
                           node_dp, dp > 0 ? dp / node_dp : 0, gpus));
    }
    p += scenario_line("sharding", "hybrid", a.label("--num-distributed-optimizer-instances"));
  }
  return p;
}

}  // namespace

std::string write_imported_scenario(const ImportSettings& a, const ImportSource& source) {
  std::string m, p, t;

  // Model.
  const std::int64_t layers = a.required("--num-layers");
  const std::int64_t hidden = a.required("--hidden-size");
  const std::int64_t heads = a.required("--num-attention-heads");
  const std::int64_t seq = a.required("--seq-length");
  const std::int64_t vocab = a.required("--vocab-size");
  const std::int64_t tp = a.whole("--tensor-model-parallel-size", 1);
  const bool swiglu = a.flag("--swiglu");
  m += line("family", "decoder", a.absent("family", "pretrain_gpt.py"));
  m += line("layers", std::to_string(layers), a.label("--num-layers"));
  m += line("hidden", std::to_string(hidden), a.label("--hidden-size"));
  m += line("heads", std::to_string(heads), a.label("--num-attention-heads"));
  if (a.flag("--group-query-attention")) {
    if (!a.has("--num-query-groups")) {
      a.refuse("--group-query-attention", "needs --num-query-groups");
    }
    m += line("kv_heads", std::to_string(a.whole("--num-query-groups")),
              a.source("--num-query-groups", "--group-query-attention --num-query-groups"));
  } else {
    m += line("kv_heads", std::to_string(heads),
              "= heads: " + a.absent("--group-query-attention", "no --group-query-attention"));
  }
  const std::int64_t ffn_default = swiglu ? (4 * hidden * 2 / 3) / 64 * 64 : 4 * hidden;
  const std::string ffn_name = a.label("--ffn-hidden-size");
  m += line("ffn", std::to_string(a.whole("--ffn-hidden-size", ffn_default)),
            a.has("--ffn-hidden-size")
                ? ffn_name
                : (swiglu ? "default of " + ffn_name + " with --swiglu: int(4 h 2/3 / 64) * 64"
                          : "default of " + ffn_name + ": 4 h"));
  const std::int64_t multiple =
      a.whole("--make-vocab-size-divisible-by", kMegatronVocabDivisor) * tp;
  const std::int64_t padded = megatron_padded_vocab(vocab, multiple);
  m += line("vocab", std::to_string(padded),
            fmt::format("{} {} padded to a multiple of {} ({} x tp)", a.label("--vocab-size"),
                        vocab, multiple, a.label("--make-vocab-size-divisible-by")));
  m += line("seq_len", std::to_string(seq), a.label("--seq-length"));
  m += line("activation", swiglu ? "swiglu" : "gelu",
            swiglu ? a.label("--swiglu") : a.absent("--swiglu", "no --swiglu"));
  std::string norm = "layernorm";
  if (a.has("--normalization")) {
    if (a.text("--normalization") == "RMSNorm") {
      norm = "rmsnorm";
    } else if (a.text("--normalization") != "LayerNorm") {
      a.refuse("--normalization", "orrery models LayerNorm and RMSNorm");
    }
  }
  m += line("norm", norm,
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
  m += line("position_embedding", pos,
            a.has("--position-embedding-type") ? a.label("--position-embedding-type")
            : a.flag("--use-rotary-position-embeddings")
                ? "--use-rotary-position-embeddings"
                : "default of " + a.label("--position-embedding-type"));
  const bool untied = a.flag("--untie-embeddings-and-output-weights");
  m += line("tied_embeddings", untied ? "false" : "true",
            untied ? a.label("--untie-embeddings-and-output-weights")
                   : a.absent("--untie-embeddings-and-output-weights",
                              "no --untie-embeddings-and-output-weights"));
  const bool no_bias = a.flag("--disable-bias-linear");
  m += line("bias", no_bias ? "false" : "true",
            no_bias ? a.label("--disable-bias-linear")
                    : a.absent("--disable-bias-linear", "no --disable-bias-linear"));
  const bool dropout =
      a.number("--attention-dropout", 0.1) > 0 || a.number("--hidden-dropout", 0.1) > 0;
  m += line("dropout", dropout ? "true" : "false",
            fmt::format("{}, {} (default 0.1 each) above 0", a.label("--attention-dropout"),
                        a.label("--hidden-dropout")));
  const bool mla = a.flag("--multi-latent-attention");
  if (mla) {
    // Megatron-LM's MLA arguments and their defaults (arguments.py at d98e8a64: no query
    // compression, kv rank 32, 128 + 64 query/key and 128 value widths a head). orrery's
    // MLA keeps the latent norms (q_norm, kv_norm) that --qk-layernorm builds.
    const std::pair<const char*, const char*> ranks[] = {
        {"--q-lora-rank", "q_lora_rank"},   {"--kv-lora-rank", "kv_lora_rank"},
        {"--qk-head-dim", "qk_nope_head_dim"}, {"--qk-pos-emb-head-dim", "qk_rope_head_dim"},
        {"--v-head-dim", "v_head_dim"}};
    const std::int64_t defaults[] = {0, 32, 128, 64, 128};
    m += "  mla:  # " + a.label("--multi-latent-attention") +
         (a.flag("--qk-layernorm") ? " with " + a.label("--qk-layernorm") + " (the latent norms)"
                                   : " (orrery keeps the latent norms --qk-layernorm builds)") +
         "\n";
    for (std::size_t i = 0; i < std::size(ranks); ++i) {
      const auto& [arg, key] = ranks[i];
      m += "  " + line(key, std::to_string(a.count(arg, defaults[i])),
                       given_or(a, arg, fmt::format("default of {} {}", a.label(arg),
                                                    defaults[i] == 0 ? "None" : std::to_string(defaults[i]))));
    }
  } else {
    if (a.flag("--qk-layernorm")) m += line("qk_norm", "true", a.label("--qk-layernorm"));
    // kv_channels: a head's width where it is not hidden / heads (arguments.py fills it in
    // for every run, so a log prints it either way).
    if (a.has("--kv-channels") &&
        (hidden % heads != 0 || a.whole("--kv-channels") != hidden / heads)) {
      m += line("head_dim", std::to_string(a.whole("--kv-channels")), a.label("--kv-channels"));
    }
  }
  if (a.count("--mtp-num-layers", 0) > 0) {
    m += line("mtp_layers", std::to_string(a.count("--mtp-num-layers", 0)),
              a.label("--mtp-num-layers"));
  }
  if (a.has("--num-experts")) {
    m += "  moe:\n";
    m += "  " + line("experts", a.text("--num-experts"), a.label("--num-experts"));
    m +=
        "  " + line("top_k", std::to_string(a.whole("--moe-router-topk", 2)),
                    given_or(a, "--moe-router-topk", "default of " + a.label("--moe-router-topk")));
    const std::int64_t expert_ffn =
        a.whole("--moe-ffn-hidden-size", a.whole("--ffn-hidden-size", ffn_default));
    m += "  " + line("expert_ffn", std::to_string(expert_ffn),
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
      m += "  " + line("shared_experts", std::to_string(shared / expert_ffn),
                       a.label("--moe-shared-expert-intermediate-size") + " / expert_ffn");
    }
    if (const std::int64_t dense = moe_dense_layers(a, layers); dense > 0) {
      m += "  " + line("first_dense_layers", std::to_string(dense), a.label("--moe-layer-freq"));
    }
    // A negative factor is dropless (transformer_config.py at d98e8a64 sets it to None).
    bool capacity = false;
    if (a.has("--moe-expert-capacity-factor")) {
      const double cf = parse_number(a.text("--moe-expert-capacity-factor")).value_or(0);
      if (cf == 0) a.refuse("--moe-expert-capacity-factor", "expected a number other than 0");
      capacity = cf > 0;
      if (capacity) {
        m += "  " + line("capacity_factor", fmt::format("{:g}", cf),
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
      m += "  " + line("pad_to_capacity", "true", a.label("--moe-pad-expert-input-to-capacity"));
    }
    const MoeBalancing balancing = moe_aux_loss(a);
    m += "  " + line("aux_loss", balancing.aux_loss ? "true" : "false", balancing.source);
    // An auxiliary loss beside the expert bias (DeepSeek-V3's seq_aux_loss at 1e-4): its
    // ops run, and the bias balances the load, so the imbalance is the loss-free one
    // (docs/scenario-format.md, model.moe.load_imbalance: arXiv:2408.15664 Table 2).
    if (balancing.aux_loss && balancing.bias) {
      m += "  " + line("load_imbalance", "1.04",
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
      m += "  " + line("router_groups", std::to_string(a.whole("--moe-router-num-groups")),
                       a.label("--moe-router-num-groups"));
      m += "  " + line("router_group_topk", std::to_string(a.whole("--moe-router-group-topk")),
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
                 "dispatcher (" + type + " here)");
      }
      m += "  " + line("shared_expert_overlap", "true", a.label("--moe-shared-expert-overlap"));
    }
  }

  // Parallel layout and batch; dp follows from the GPUs.
  p += line("tp", std::to_string(tp), given_or(a, "--tensor-model-parallel-size", "default 1"));
  const std::int64_t pp = a.whole("--pipeline-model-parallel-size", 1);
  p += line("pp", std::to_string(pp), given_or(a, "--pipeline-model-parallel-size", "default 1"));
  if (a.has("--context-parallel-size")) {
    p += line("cp", std::to_string(a.whole("--context-parallel-size")),
              a.label("--context-parallel-size"));
  }
  // Context parallelism's exchange (--cp-comm-type, default p2p: arguments.py at d98e8a64):
  // p2p is Transformer Engine's ring, allgather the keys and values gathered before
  // attention; the same for every layer. a2a (Ulysses) and a2a+p2p have no form here.
  if (a.whole("--context-parallel-size", 1) > 1 && a.has("--cp-comm-type")) {
    const std::vector<std::string> types = words_of(a.text("--cp-comm-type"));
    const bool uniform =
        std::all_of(types.begin(), types.end(), [&](const std::string& w) { return w == types[0]; });
    if (types.empty() || !uniform || (types[0] != "p2p" && types[0] != "allgather")) {
      a.refuse("--cp-comm-type",
               "orrery models p2p (the ring) and allgather, the same for every layer");
    }
    p += line("cp_comm", types[0] == "p2p" ? "ring" : "all-gather", a.label("--cp-comm-type"));
  }
  if (a.has("--expert-model-parallel-size")) {
    p += line("ep", std::to_string(a.whole("--expert-model-parallel-size")),
              a.label("--expert-model-parallel-size"));
  }
  // Megatron-LM's default is tp, orrery's too: written only where it differs.
  if (a.has("--expert-tensor-parallel-size") &&
      a.whole("--expert-tensor-parallel-size") != tp) {
    p += line("expert_tp", std::to_string(a.whole("--expert-tensor-parallel-size")),
              a.label("--expert-tensor-parallel-size"));
  }
  if (a.flag("--sequence-parallel")) {
    p += line("sequence_parallel", "true", a.label("--sequence-parallel"));
  }
  if (a.flag("--use-tp-pp-dp-mapping")) {
    p += line("rank_order", "tp-cp-pp-dp", a.label("--use-tp-pp-dp-mapping"));
  }
  const std::int64_t ep = a.whole("--expert-model-parallel-size", 1);
  if (a.has("--num-experts") && ep > 1) {
    // The token dispatcher: alltoall is orrery's direct exchange, flex its hierarchical one.
    const char* kType = "--moe-token-dispatcher-type";
    const char* kBackend = "--moe-flex-dispatcher-backend";
    const std::string type = moe_dispatcher(a);
    if (a.flag("--moe-enable-deepep") && type != "flex") {
      a.refuse("--moe-enable-deepep", "Megatron-Core takes it only with " + a.label(kType) +
                                          " flex");
    }
    if (type == "alltoall") {
      p += line("ep_alltoall", "direct", a.source(kType, std::string(kType) + " alltoall"));
    } else if (type == "flex") {
      const bool deepep = a.flag("--moe-enable-deepep");
      const std::string backend = flex_backend(a);
      if (deepep && a.has(kBackend) && a.text(kBackend) == "hybridep") {
        a.refuse("--moe-enable-deepep", "given with " + a.label(kBackend) +
                                            " hybridep: Megatron-Core runs one backend");
      }
      if (backend != "deepep" && backend != "hybridep") {
        a.refuse(kBackend, "orrery models the deepep and hybridep backends");
      }
      p += line("ep_alltoall", "hierarchical", a.source(kType, std::string(kType) + " flex"));
      p += line("ep_backend", backend,
                deepep ? a.label("--moe-enable-deepep")
                       : given_or(a, kBackend, "default of " + a.label(kBackend) + " deepep"));
    } else if (type == "allgather") {
      a.refuse(kType,
               "orrery models the alltoall and flex dispatchers; the allgather dispatcher "
               "(Megatron-Core's default, every token gathered over the expert-parallel "
               "group) has no form here: give alltoall or flex");
    } else {
      a.refuse(kType, "Megatron-Core takes allgather, alltoall or flex");
    }
  }
  if (a.flag("--overlap-moe-expert-parallel-comm")) {
    p += line("moe_a2a_overlap", "true", a.label("--overlap-moe-expert-parallel-comm"));
  }
  if (a.has("--pipeline-model-parallel-layout")) {
    // arguments.py at d98e8a64 takes a layout or one of the interleaving arguments; the
    // layout places every layer itself, so uneven stages and counted embedding or loss
    // are spelled in it.
    for (const char* other :
         {"--num-layers-per-virtual-pipeline-stage", "--num-virtual-stages-per-pipeline-rank",
          "--decoder-first-pipeline-num-layers", "--decoder-last-pipeline-num-layers",
          "--account-for-embedding-in-pipeline-split", "--account-for-loss-in-pipeline-split"}) {
      if (a.has(other) || a.flag(other)) {
        a.refuse(other, "given with " + a.label("--pipeline-model-parallel-layout") +
                            ", which places every layer itself");
      }
    }
    const std::string& layout = a.text("--pipeline-model-parallel-layout");
    if (layout.find_first_of("\"\\") != std::string::npos) {
      a.refuse("--pipeline-model-parallel-layout", "a layout has no quotes or backslashes");
    }
    p += line("pipeline_layout", "\"" + layout + "\"", a.label("--pipeline-model-parallel-layout"));
  }
  if (a.has("--microbatch-group-size-per-virtual-pipeline-stage")) {
    p += line("microbatch_group_size",
              std::to_string(a.whole("--microbatch-group-size-per-virtual-pipeline-stage")),
              a.label("--microbatch-group-size-per-virtual-pipeline-stage"));
  }
  if (a.has("--num-layers-per-virtual-pipeline-stage")) {
    const std::int64_t per = a.whole("--num-layers-per-virtual-pipeline-stage");
    const std::int64_t accounted = (a.flag("--account-for-embedding-in-pipeline-split") ? 1 : 0) +
                                   (a.flag("--account-for-loss-in-pipeline-split") ? 1 : 0);
    if ((layers + accounted) % (pp * per) != 0) {
      a.refuse("--num-layers-per-virtual-pipeline-stage",
               fmt::format("does not divide the {} layers over {} pipeline ranks",
                           layers + accounted, pp));
    }
    p += line("virtual_pipeline_stages", std::to_string((layers + accounted) / (pp * per)),
              a.source("--num-layers-per-virtual-pipeline-stage",
                       "--num-layers / (pp x --num-layers-per-virtual-pipeline-stage)"));
  }
  if (a.has("--num-virtual-stages-per-pipeline-rank") &&
      !a.has("--num-layers-per-virtual-pipeline-stage")) {
    // The model chunks a pipeline rank holds, orrery's virtual_pipeline_stages as it is
    // (arguments.py at d98e8a64 takes it or --num-layers-per-virtual-pipeline-stage).
    p += line("virtual_pipeline_stages",
              std::to_string(a.whole("--num-virtual-stages-per-pipeline-rank")),
              a.label("--num-virtual-stages-per-pipeline-rank"));
  }
  if (a.has("--decoder-first-pipeline-num-layers")) {
    p += line("first_stage_layers", a.text("--decoder-first-pipeline-num-layers"),
              a.label("--decoder-first-pipeline-num-layers"));
  }
  if (a.has("--decoder-last-pipeline-num-layers")) {
    p += line("last_stage_layers", a.text("--decoder-last-pipeline-num-layers"),
              a.label("--decoder-last-pipeline-num-layers"));
  }
  if (a.flag("--account-for-embedding-in-pipeline-split")) {
    p +=
        line("account_for_embedding", "true", a.label("--account-for-embedding-in-pipeline-split"));
  }
  if (a.flag("--account-for-loss-in-pipeline-split")) {
    p += line("account_for_loss", "true", a.label("--account-for-loss-in-pipeline-split"));
  }
  p += line("microbatch", std::to_string(a.whole("--micro-batch-size", 1)),
            given_or(a, "--micro-batch-size", "default 1"));
  if (!a.has("--global-batch-size")) {
    a.refuse("--global-batch-size",
             fmt::format("missing {}: the scenario needs the global batch", a.missing_word()));
  }
  p += line("global_batch", std::to_string(a.whole("--global-batch-size")),
            a.label("--global-batch-size"));
  p += sharding_lines(a, source, tp * pp * a.whole("--context-parallel-size", 1), ep);

  // Precision, recompute and overlaps.
  // Megatron-Core's --attention-backend (AttnBackend, megatron/core/transformer/enums.py at
  // d98e8a64; auto, the default, leaves the choice to Transformer Engine, as orrery's
  // default does): flash and fused force TE's FlashAttention or cuDNN backend, unfused and
  // local the unfused softmax path.
  // training.stack's mechanisms the arguments set, over the megatron-core preset.
  std::vector<std::string> stack, stack_from;
  std::string stack_argument;  // the first argument that set one
  auto mechanism = [&](const char* argument, std::string entry, std::string from) {
    if (stack_argument.empty()) stack_argument = argument;
    stack.push_back(std::move(entry));
    stack_from.push_back(std::move(from));
  };
  if (a.has("--attention-backend")) {
    // A log's arguments header prints the enum ("AttnBackend.auto").
    std::string b = a.text("--attention-backend");
    if (b.rfind("AttnBackend.", 0) == 0) b = b.substr(std::string("AttnBackend.").size());
    const std::string from = a.source("--attention-backend", "--attention-backend " + b);
    if (b == "flash" || b == "fused") {
      mechanism("--attention-backend", b == "flash" ? "attention: flash2" : "attention: cudnn",
                from);
    } else if (b == "unfused" || b == "local") {
      t += line("flash_attention", "false", from);
    } else if (b != "auto") {
      a.refuse("--attention-backend", "Megatron-LM takes flash, fused, unfused, local or auto");
    }
  }
  // The fusions Megatron-LM turns off by name (arguments.py at d98e8a64). Unfused RoPE is
  // Megatron-Core's _apply_rotary_pos_emb_bshd, which rotates by _rotate_half
  // (megatron/core/models/common/embeddings/rope_utils.py); each switch counts only where
  // its op runs.
  if (a.flag("--no-rope-fusion") && pos == "rope") {
    mechanism("--no-rope-fusion", "rope: rotate_half", a.label("--no-rope-fusion"));
  }
  // A GeLU without bias is one kernel fused or not, and validate_args clears
  // bias_gelu_fusion for it (arguments.py at d98e8a64), so a log's False says nothing.
  const char* activation_switch = swiglu ? "--no-bias-swiglu-fusion" : "--no-bias-gelu-fusion";
  if (a.flag(activation_switch) && (swiglu || !no_bias)) {
    mechanism(activation_switch, "activation_fusion: false", a.label(activation_switch));
  }
  // Without the fused wgrad-into-main_grad GEMM the weight gradient is added to main_grad
  // by the parameter's hook (megatron/core/distributed/distributed_data_parallel.py).
  // FSDP2 asks for the switch and accumulates its gradients itself.
  if (a.flag("--no-gradient-accumulation-fusion") && !a.flag("--use-torch-fsdp2")) {
    mechanism("--no-gradient-accumulation-fusion", "gradient_accumulation: hook",
              a.label("--no-gradient-accumulation-fusion"));
  }
  if (!source.stack.empty() && !stack.empty())
    a.refuse(stack_argument, "not with a stack preset named by the source");
  if (!source.stack.empty()) t += "  stack: " + source.stack + "\n";
  if (!stack.empty()) t += "  " + flow_line("stack", stack, stack_from) + "\n";
  if (!source.grad_buckets.empty()) t += "  grad_buckets: " + source.grad_buckets + "\n";
  if (a.flag("--bf16") && a.flag("--fp16")) a.refuse("--fp16", "given with --bf16");
  std::string precision = "fp32",
              precision_source = a.absent("--bf16", "neither --bf16 nor --fp16");
  if (a.flag("--bf16")) precision = "bf16", precision_source = a.label("--bf16");
  if (a.flag("--fp16")) precision = "fp16", precision_source = a.label("--fp16");
  std::string fp8;
  if (a.has("--fp8-format")) {
    const std::string& f = a.text("--fp8-format");
    if (f != "hybrid" && f != "e4m3") a.refuse("--fp8-format", "Megatron-LM takes e4m3 or hybrid");
    precision = "fp8", precision_source = a.source("--fp8-format", "--fp8-format " + f);
    fp8 = fp8_section(a);
  }
  std::string fp4;
  if (a.has("--fp4-format")) {
    // Megatron-Core's FP4 (transformer_config.py at d98e8a64: fp4 e2m1 behind
    // --fp4-format, fp4_recipe nvfp4 by default, the bf16 layers as under fp8).
    if (!fp8.empty()) a.refuse("--fp4-format", "given with --fp8-format: Megatron-Core runs one");
    if (a.text("--fp4-format") != "e2m1") a.refuse("--fp4-format", "Megatron-LM takes e2m1");
    const std::string recipe = a.has("--fp4-recipe") ? a.text("--fp4-recipe") : "nvfp4";
    if (recipe != "nvfp4") {
      a.refuse("--fp4-recipe", "orrery models the nvfp4 recipe (a custom one has no form here)");
    }
    precision = "fp4", precision_source = a.source("--fp4-format", "--fp4-format e2m1");
    std::vector<std::string> keys = {"format: nvfp4"};
    std::vector<std::string> from = {given_or(a, "--fp4-recipe",
                                              "default of " + a.label("--fp4-recipe") + " nvfp4")};
    if (a.flag("--first-last-layers-bf16")) {
      keys.push_back(fmt::format("bf16_layers: {{first: {}, last: {}}}",
                                 a.whole("--num-layers-at-start-in-bf16", 1),
                                 a.whole("--num-layers-at-end-in-bf16", 1)));
      from.push_back(a.label("--first-last-layers-bf16"));
    }
    fp4 = flow_line("fp4", keys, from) + "\n";
  }
  t += line("precision", precision, precision_source);
  if (!fp8.empty()) t += "  " + fp8;
  if (!fp4.empty()) t += "  " + fp4;
  std::string recompute = "none", recompute_source = "no " + a.label("--recompute-granularity");
  if (a.has("--recompute-granularity")) {
    const std::string& g = a.text("--recompute-granularity");
    const std::string from = a.source("--recompute-granularity", "--recompute-granularity " + g);
    if (g == "selective") {
      recompute = "selective", recompute_source = from;
    } else if (g == "full") {
      if (a.has("--recompute-method") && a.text("--recompute-method") != "uniform") {
        a.refuse("--recompute-method", "orrery's full recompute is every layer (uniform, 1 layer)");
      }
      if (a.whole("--recompute-num-layers", 1) != 1) {
        a.refuse("--recompute-num-layers",
                 "orrery's full recompute is every layer (uniform, 1 layer)");
      }
      recompute = "full", recompute_source = from;
    } else {
      a.refuse("--recompute-granularity", "Megatron-LM takes full or selective");
    }
  }
  t += line("recompute", recompute, recompute_source);
  // The modules selective recompute reruns (transformer_config.py at d98e8a64: default
  // ["core_attn"]; read only under selective).
  if (recompute == "selective" && a.has("--recompute-modules")) {
    const std::vector<std::string> modules = words_of(a.text("--recompute-modules"));
    std::vector<std::string> names;
    for (const RecomputeModule r : kRecomputeModuleOrder) names.emplace_back(recompute_module_name(r));
    for (const std::string& name : modules) {
      if (std::find(names.begin(), names.end(), name) == names.end()) {
        a.refuse("--recompute-modules", fmt::format("orrery models the modules {} ({} is not one)",
                                                    fmt::join(names, ", "), name));
      }
    }
    t += line("recompute_modules", fmt::format("[{}]", fmt::join(modules, ", ")),
              a.label("--recompute-modules"));
  }
  // Megatron-Core's precision-aware optimizer (--use-precision-aware-optimizer with
  // --exp-avg-dtype, --exp-avg-sq-dtype, --main-params-dtype, read only with it; arguments.py
  // at d98e8a64, default fp32 each): bf16 moments are training.optimizer_state_dtype bf16,
  // fp16 main parameters training.main_params_dtype fp16. A log header prints the dtypes
  // as torch types.
  auto dtype = [&](const char* name) {
    std::string d = a.has(name) ? a.text(name) : "fp32";
    static const std::map<std::string, std::string> kTorch = {{"torch.float32", "fp32"},
                                                              {"torch.bfloat16", "bf16"},
                                                              {"torch.float16", "fp16"},
                                                              {"torch.uint8", "fp8"}};
    if (const auto it = kTorch.find(d); it != kTorch.end()) d = it->second;
    return d;
  };
  const std::string m1 = dtype("--exp-avg-dtype"), m2 = dtype("--exp-avg-sq-dtype"),
                    main = dtype("--main-params-dtype");
  if (!a.flag("--use-precision-aware-optimizer")) {
    for (const char* name : {"--exp-avg-dtype", "--exp-avg-sq-dtype", "--main-params-dtype"}) {
      if (dtype(name) != "fp32") {
        a.refuse(name, "Megatron-LM reads it only with --use-precision-aware-optimizer");
      }
    }
  } else {
    if (m1 != m2 || (m1 != "fp32" && m1 != "bf16")) {
      a.refuse(m1 != "fp32" && m1 != "bf16" ? "--exp-avg-dtype" : "--exp-avg-sq-dtype",
               "orrery keeps both Adam moments in one dtype, fp32 or bf16");
    }
    if (main != "fp32" && main != "fp16") {
      a.refuse("--main-params-dtype", "Megatron-LM takes fp32 or fp16");
    }
    if (m1 == "bf16") {
      t += line("optimizer_state_dtype", "bf16",
                a.label("--use-precision-aware-optimizer") + ", " + a.label("--exp-avg-dtype") +
                    ", " + a.label("--exp-avg-sq-dtype"));
    }
    if (main == "fp16") {
      t += line("main_params_dtype", "fp16",
                a.label("--use-precision-aware-optimizer") + ", " +
                    a.label("--main-params-dtype"));
    }
  }
  // Offload (arguments.py at d98e8a64): the hybrid device optimizer's share and overlap,
  // and the activations of the first layers (--cpu-offloading-num-layers above 0 turns
  // cpu_offloading on).
  if (a.flag("--optimizer-cpu-offload")) {
    if (!a.flag("--use-precision-aware-optimizer")) {
      // arguments.py at d98e8a64 asserts it: the hybrid device optimizer reuses its path.
      a.refuse("--optimizer-cpu-offload",
               "Megatron-LM takes it only with --use-precision-aware-optimizer");
    }
    std::vector<std::string> keys = {
        fmt::format("fraction: {:g}", a.number("--optimizer-offload-fraction", 1.0))};
    std::vector<std::string> from = {
        a.label("--optimizer-cpu-offload") + " " +
        given_or(a, "--optimizer-offload-fraction",
                 "(default " + a.label("--optimizer-offload-fraction") + " 1.0)")};
    if (a.flag("--overlap-cpu-optimizer-d2h-h2d")) {
      keys.emplace_back("overlap: true");
      from.push_back(a.label("--overlap-cpu-optimizer-d2h-h2d"));
    }
    t += "  " + flow_line("optimizer_offload", keys, from) + "\n";
  }
  if (const std::int64_t n = a.count("--cpu-offloading-num-layers", 0); n > 0) {
    t += "  " + flow_line("activation_offload", {fmt::format("layers: {}", n)},
                          {a.label("--cpu-offloading-num-layers")}) +
         "\n";
  }
  const std::pair<const char*, const char*> overlaps[] = {
      {"--overlap-grad-reduce", "overlap_grad_reduce"},
      {"--overlap-param-gather", "overlap_param_gather"},
      {"--overlap-param-gather-with-optimizer-step", "overlap_param_gather_with_optimizer_step"},
      {"--tp-comm-overlap", "tp_comm_overlap"},
      {"--overlap-p2p-communication", "overlap_p2p"},
      {"--cross-entropy-loss-fusion", "cross_entropy_fusion"},
  };
  for (const auto& [arg, key] : overlaps)
    if (a.flag(arg)) t += line(key, "true", a.label(arg));

  std::string out = source.header;
  if (a.unmapped().empty()) {
    out += source.all_mapped;
  } else {
    out += source.not_mapped;
    for (const auto& u : a.unmapped()) out += "#   " + u + "\n";
  }
  out += fmt::format("cluster: {{preset: {}, nodes: {}}}  # {}\n", source.cluster, source.nodes,
                     source.nodes_source);
  out += "model:\n" + m + "parallelism:\n" + p + "training:\n" + t;
  return out;
}

}  // namespace orrery::detail
