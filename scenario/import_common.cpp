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

std::int64_t ImportSettings::whole(const std::string& name) const {
  const std::string& v = text(name);
  std::int64_t out = 0;
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || end != v.data() + v.size() || out < 1) {
    throw InputError(at(name), label(name), v, "expected a whole number >= 1");
  }
  return out;
}

double ImportSettings::number(const std::string& name, double fallback) const {
  if (!has(name)) return fallback;
  try {
    std::size_t used = 0;
    const double d = std::stod(text(name), &used);
    if (used == text(name).size() && d >= 0) return d;
  } catch (const std::exception&) {
  }
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
    if (!a.flag("--use-distributed-optimizer")) {
      a.refuse("--fp8-param-gather",
               "Megatron-LM takes it only with the distributed optimizer or an FSDP "
               "(--use-distributed-optimizer here)");
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
  if (a.has("--num-experts")) {
    m += "  moe:\n";
    m += "  " + line("experts", a.text("--num-experts"), a.label("--num-experts"));
    m +=
        "  " + line("top_k", std::to_string(a.whole("--moe-router-topk", 2)),
                    given_or(a, "--moe-router-topk", "default of " + a.label("--moe-router-topk")));
    m += "  " + line("expert_ffn",
                     std::to_string(a.whole("--moe-ffn-hidden-size",
                                            a.whole("--ffn-hidden-size", ffn_default))),
                     given_or(a, "--moe-ffn-hidden-size",
                              "= ffn: no " + a.label("--moe-ffn-hidden-size")));
  }

  // Parallel layout and batch; dp follows from the GPUs.
  p += line("tp", std::to_string(tp), given_or(a, "--tensor-model-parallel-size", "default 1"));
  const std::int64_t pp = a.whole("--pipeline-model-parallel-size", 1);
  p += line("pp", std::to_string(pp), given_or(a, "--pipeline-model-parallel-size", "default 1"));
  if (a.has("--context-parallel-size")) {
    p += line("cp", std::to_string(a.whole("--context-parallel-size")),
              a.label("--context-parallel-size"));
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
  if (a.flag("--use-distributed-optimizer")) {
    p += line("zero_stage", "1", a.label("--use-distributed-optimizer"));
  }

  // Precision, recompute and overlaps.
  // Megatron-Core's --attention-backend (AttnBackend, megatron/core/transformer/enums.py at
  // d98e8a64; auto, the default, leaves the choice to Transformer Engine, as orrery's
  // default does): flash and fused force TE's FlashAttention or cuDNN backend, unfused and
  // local the unfused softmax path.
  std::string kernel;
  if (a.has("--attention-backend")) {
    // A log's arguments header prints the enum ("AttnBackend.auto").
    std::string b = a.text("--attention-backend");
    if (b.rfind("AttnBackend.", 0) == 0) b = b.substr(std::string("AttnBackend.").size());
    const std::string from = a.source("--attention-backend", "--attention-backend " + b);
    if (b == "flash" || b == "fused") {
      kernel = fmt::format("{{attention: {}}}  # {}", b == "flash" ? "flash2" : "cudnn", from);
    } else if (b == "unfused" || b == "local") {
      t += line("flash_attention", "false", from);
    } else if (b != "auto") {
      a.refuse("--attention-backend", "Megatron-LM takes flash, fused, unfused, local or auto");
    }
  }
  if (!source.stack.empty() && !kernel.empty())
    a.refuse("--attention-backend", "not with a stack preset named by the source");
  if (!source.stack.empty()) t += "  stack: " + source.stack + "\n";
  if (!kernel.empty()) t += "  stack: " + kernel + "\n";
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
  t += line("precision", precision, precision_source);
  if (!fp8.empty()) t += "  " + fp8;
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
