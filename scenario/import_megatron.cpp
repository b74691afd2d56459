// `orrery import megatron` (scenario/import_megatron.h). Argument names and defaults are
// Megatron-LM's at NVIDIA/Megatron-LM d98e8a64: megatron/training/arguments.py (the
// parallel, batch, precision and recompute arguments; --ffn-hidden-size defaulting to
// 4 h, or int(4 h * 2/3 / 64) * 64 with --swiglu, validate_args), TransformerConfig in
// megatron/core/transformer/transformer_config.py (hidden_dropout and attention_dropout
// 0.1, normalization LayerNorm, add_bias_linear true unless --disable-bias-linear,
// moe_router_topk 2), and vocab_size_with_padding in
// megatron/core/tokenizers/utils/build_tokenizer.py (the vocabulary padded up to a
// multiple of --make-vocab-size-divisible-by (128) x tp).
#include "scenario/import_megatron.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <charconv>
#include <map>
#include <set>
#include <string>

#include "core/error.h"
#include "scenario/load.h"

namespace orrery {
namespace {

const char* const kWhere = "orrery import megatron";

// Arguments that take no value, and those that take one.
const std::set<std::string>& switches() {
  static const std::set<std::string> s = {
      "--swiglu",
      "--untie-embeddings-and-output-weights",
      "--disable-bias-linear",
      "--group-query-attention",
      "--sequence-parallel",
      "--use-distributed-optimizer",
      "--bf16",
      "--fp16",
      "--overlap-grad-reduce",
      "--overlap-param-gather",
      "--tp-comm-overlap",
      "--overlap-p2p-communication",
      "--cross-entropy-loss-fusion",
      "--use-rotary-position-embeddings",
      "--account-for-embedding-in-pipeline-split",
      "--account-for-loss-in-pipeline-split",
  };
  return s;
}

const std::set<std::string>& valued() {
  static const std::set<std::string> s = {
      "--num-layers",
      "--hidden-size",
      "--ffn-hidden-size",
      "--num-attention-heads",
      "--num-query-groups",
      "--seq-length",
      "--vocab-size",
      "--make-vocab-size-divisible-by",
      "--normalization",
      "--position-embedding-type",
      "--attention-dropout",
      "--hidden-dropout",
      "--num-experts",
      "--moe-router-topk",
      "--moe-ffn-hidden-size",
      "--tensor-model-parallel-size",
      "--pipeline-model-parallel-size",
      "--context-parallel-size",
      "--expert-model-parallel-size",
      "--num-layers-per-virtual-pipeline-stage",
      "--decoder-first-pipeline-num-layers",
      "--decoder-last-pipeline-num-layers",
      "--micro-batch-size",
      "--global-batch-size",
      "--recompute-granularity",
      "--recompute-method",
      "--recompute-num-layers",
      "--fp8-format",
  };
  return s;
}

class Args {
 public:
  explicit Args(const std::vector<std::string>& tokens) {
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      std::string name = tokens[i];
      if (name.rfind("--", 0) != 0 || name.size() < 3) {
        throw InputError({kWhere, std::nullopt}, name, "",
                         "expected a Megatron-LM argument (--name)");
      }
      std::optional<std::string> inline_value;
      if (const auto eq = name.find('='); eq != std::string::npos) {
        inline_value = name.substr(eq + 1);
        name.resize(eq);
      }
      if (switches().count(name)) {
        if (inline_value)
          throw InputError({kWhere, std::nullopt}, name, *inline_value, "takes no value");
        flags_.insert(name);
      } else if (valued().count(name)) {
        if (!inline_value) {
          if (i + 1 >= tokens.size() || tokens[i + 1].rfind("--", 0) == 0) {
            throw InputError({kWhere, std::nullopt}, name, "", "missing its value");
          }
          inline_value = tokens[++i];
        }
        values_[name] = *inline_value;
      } else {
        // Not mapped: kept with its values for the scenario's comment.
        std::string text = tokens[i];
        while (i + 1 < tokens.size() && tokens[i + 1].rfind("--", 0) != 0)
          text += " " + tokens[++i];
        unmapped_.push_back(text);
      }
    }
  }

  bool flag(const std::string& name) const { return flags_.count(name) > 0; }
  bool has(const std::string& name) const { return values_.count(name) > 0; }
  const std::string& text(const std::string& name) const { return values_.at(name); }

  std::int64_t whole(const std::string& name) const {
    const std::string& v = text(name);
    std::int64_t out = 0;
    const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
    if (ec != std::errc() || end != v.data() + v.size() || out < 1) {
      throw InputError({kWhere, std::nullopt}, name, v, "expected a whole number >= 1");
    }
    return out;
  }
  std::int64_t whole(const std::string& name, std::int64_t fallback) const {
    return has(name) ? whole(name) : fallback;
  }
  double number(const std::string& name, double fallback) const {
    if (!has(name)) return fallback;
    try {
      std::size_t used = 0;
      const double d = std::stod(text(name), &used);
      if (used == text(name).size() && d >= 0) return d;
    } catch (const std::exception&) {
    }
    throw InputError({kWhere, std::nullopt}, name, text(name), "expected a number >= 0");
  }
  std::int64_t required(const std::string& name) const {
    if (!has(name)) {
      throw InputError({kWhere, std::nullopt}, name, "",
                       "missing argument: the model's shape needs --num-layers, --hidden-size, "
                       "--num-attention-heads, --seq-length and --vocab-size");
    }
    return whole(name);
  }
  [[noreturn]] void refuse(const std::string& name, const std::string& why) const {
    throw InputError({kWhere, std::nullopt}, name, has(name) ? text(name) : "", why);
  }
  const std::vector<std::string>& unmapped() const { return unmapped_; }

 private:
  std::set<std::string> flags_;
  std::map<std::string, std::string> values_;
  std::vector<std::string> unmapped_;
};

// "  key: value  # source"
std::string line(const std::string& key, const std::string& value, const std::string& source) {
  return fmt::format("  {}: {}  # {}\n", key, value, source);
}

std::string given_or(const Args& a, const std::string& name, const std::string& fallback) {
  return a.has(name) || a.flag(name) ? name : fallback;
}

}  // namespace

std::string import_megatron(const std::vector<std::string>& arguments, const std::string& cluster,
                            int nodes) {
  const std::vector<std::string> systems = system_preset_names();
  if (std::find(systems.begin(), systems.end(), cluster) == systems.end()) {
    throw InputError(
        {kWhere, std::nullopt}, "--cluster", cluster,
        fmt::format("no system preset of that name; known: {}", fmt::join(systems, ", ")));
  }
  const Args a(arguments);
  std::string m, p, t;

  // Model.
  const std::int64_t layers = a.required("--num-layers");
  const std::int64_t hidden = a.required("--hidden-size");
  const std::int64_t heads = a.required("--num-attention-heads");
  const std::int64_t seq = a.required("--seq-length");
  const std::int64_t vocab = a.required("--vocab-size");
  const std::int64_t tp = a.whole("--tensor-model-parallel-size", 1);
  const bool swiglu = a.flag("--swiglu");
  m += line("family", "decoder", "pretrain_gpt.py");
  m += line("layers", std::to_string(layers), "--num-layers");
  m += line("hidden", std::to_string(hidden), "--hidden-size");
  m += line("heads", std::to_string(heads), "--num-attention-heads");
  if (a.flag("--group-query-attention")) {
    if (!a.has("--num-query-groups")) {
      a.refuse("--group-query-attention", "needs --num-query-groups");
    }
    m += line("kv_heads", std::to_string(a.whole("--num-query-groups")),
              "--group-query-attention --num-query-groups");
  } else {
    m += line("kv_heads", std::to_string(heads), "= heads: no --group-query-attention");
  }
  const std::int64_t ffn_default = swiglu ? (4 * hidden * 2 / 3) / 64 * 64 : 4 * hidden;
  m += line("ffn", std::to_string(a.whole("--ffn-hidden-size", ffn_default)),
            a.has("--ffn-hidden-size")
                ? "--ffn-hidden-size"
                : (swiglu ? "default of --ffn-hidden-size with --swiglu: int(4 h 2/3 / 64) * 64"
                          : "default of --ffn-hidden-size: 4 h"));
  const std::int64_t multiple = a.whole("--make-vocab-size-divisible-by", 128) * tp;
  const std::int64_t padded = (vocab + multiple - 1) / multiple * multiple;
  m += line("vocab", std::to_string(padded),
            fmt::format("--vocab-size {} padded to a multiple of {} (--make-vocab-size-divisible-"
                        "by x tp)",
                        vocab, multiple));
  m += line("seq_len", std::to_string(seq), "--seq-length");
  m += line("activation", swiglu ? "swiglu" : "gelu", swiglu ? "--swiglu" : "no --swiglu");
  std::string norm = "layernorm";
  if (a.has("--normalization")) {
    if (a.text("--normalization") == "RMSNorm") {
      norm = "rmsnorm";
    } else if (a.text("--normalization") != "LayerNorm") {
      a.refuse("--normalization", "orrery models LayerNorm and RMSNorm");
    }
  }
  m += line("norm", norm, given_or(a, "--normalization", "default of --normalization"));
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
            a.has("--position-embedding-type")           ? "--position-embedding-type"
            : a.flag("--use-rotary-position-embeddings") ? "--use-rotary-position-embeddings"
                                                         : "default of --position-embedding-type");
  const bool untied = a.flag("--untie-embeddings-and-output-weights");
  m += line("tied_embeddings", untied ? "false" : "true",
            untied ? "--untie-embeddings-and-output-weights"
                   : "no --untie-embeddings-and-output-weights");
  const bool no_bias = a.flag("--disable-bias-linear");
  m += line("bias", no_bias ? "false" : "true",
            no_bias ? "--disable-bias-linear" : "no --disable-bias-linear");
  const bool dropout =
      a.number("--attention-dropout", 0.1) > 0 || a.number("--hidden-dropout", 0.1) > 0;
  m += line("dropout", dropout ? "true" : "false",
            "--attention-dropout, --hidden-dropout (default 0.1 each) above 0");
  if (a.has("--num-experts")) {
    m += "  moe:\n";
    m += "  " + line("experts", a.text("--num-experts"), "--num-experts");
    m += "  " + line("top_k", std::to_string(a.whole("--moe-router-topk", 2)),
                     given_or(a, "--moe-router-topk", "default of --moe-router-topk"));
    m += "  " + line("expert_ffn",
                     std::to_string(a.whole("--moe-ffn-hidden-size",
                                            a.whole("--ffn-hidden-size", ffn_default))),
                     given_or(a, "--moe-ffn-hidden-size", "= ffn: no --moe-ffn-hidden-size"));
  }

  // Parallel layout and batch; dp follows from the GPUs.
  p += line("tp", std::to_string(tp), given_or(a, "--tensor-model-parallel-size", "default 1"));
  const std::int64_t pp = a.whole("--pipeline-model-parallel-size", 1);
  p += line("pp", std::to_string(pp), given_or(a, "--pipeline-model-parallel-size", "default 1"));
  if (a.has("--context-parallel-size")) {
    p += line("cp", a.text("--context-parallel-size"), "--context-parallel-size");
  }
  if (a.has("--expert-model-parallel-size")) {
    p += line("ep", a.text("--expert-model-parallel-size"), "--expert-model-parallel-size");
  }
  if (a.flag("--sequence-parallel")) p += line("sequence_parallel", "true", "--sequence-parallel");
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
              "--num-layers / (pp x --num-layers-per-virtual-pipeline-stage)");
  }
  if (a.has("--decoder-first-pipeline-num-layers")) {
    p += line("first_stage_layers", a.text("--decoder-first-pipeline-num-layers"),
              "--decoder-first-pipeline-num-layers");
  }
  if (a.has("--decoder-last-pipeline-num-layers")) {
    p += line("last_stage_layers", a.text("--decoder-last-pipeline-num-layers"),
              "--decoder-last-pipeline-num-layers");
  }
  if (a.flag("--account-for-embedding-in-pipeline-split")) {
    p += line("account_for_embedding", "true", "--account-for-embedding-in-pipeline-split");
  }
  if (a.flag("--account-for-loss-in-pipeline-split")) {
    p += line("account_for_loss", "true", "--account-for-loss-in-pipeline-split");
  }
  p += line("microbatch", std::to_string(a.whole("--micro-batch-size", 1)),
            given_or(a, "--micro-batch-size", "default 1"));
  if (!a.has("--global-batch-size")) {
    a.refuse("--global-batch-size", "missing argument: the scenario needs the global batch");
  }
  p += line("global_batch", a.text("--global-batch-size"), "--global-batch-size");
  if (a.flag("--use-distributed-optimizer")) {
    p += line("zero_stage", "1", "--use-distributed-optimizer");
  }

  // Precision, recompute and overlaps.
  if (a.flag("--bf16") && a.flag("--fp16")) a.refuse("--fp16", "given with --bf16");
  std::string precision = "fp32", precision_source = "neither --bf16 nor --fp16";
  if (a.flag("--bf16")) precision = "bf16", precision_source = "--bf16";
  if (a.flag("--fp16")) precision = "fp16", precision_source = "--fp16";
  if (a.has("--fp8-format")) {
    const std::string& f = a.text("--fp8-format");
    if (f != "hybrid" && f != "e4m3") a.refuse("--fp8-format", "Megatron-LM takes e4m3 or hybrid");
    precision = "fp8", precision_source = "--fp8-format " + f;
  }
  t += line("precision", precision, precision_source);
  std::string recompute = "none", recompute_source = "no --recompute-granularity";
  if (a.has("--recompute-granularity")) {
    const std::string& g = a.text("--recompute-granularity");
    if (g == "selective") {
      recompute = "selective", recompute_source = "--recompute-granularity selective";
    } else if (g == "full") {
      if (a.has("--recompute-method") && a.text("--recompute-method") != "uniform") {
        a.refuse("--recompute-method", "orrery's full recompute is every layer (uniform, 1 layer)");
      }
      if (a.whole("--recompute-num-layers", 1) != 1) {
        a.refuse("--recompute-num-layers",
                 "orrery's full recompute is every layer (uniform, 1 layer)");
      }
      recompute = "full", recompute_source = "--recompute-granularity full";
    } else {
      a.refuse("--recompute-granularity", "Megatron-LM takes full or selective");
    }
  }
  t += line("recompute", recompute, recompute_source);
  const std::pair<const char*, const char*> overlaps[] = {
      {"--overlap-grad-reduce", "overlap_grad_reduce"},
      {"--overlap-param-gather", "overlap_param_gather"},
      {"--tp-comm-overlap", "tp_comm_overlap"},
      {"--overlap-p2p-communication", "overlap_p2p"},
      {"--cross-entropy-loss-fusion", "cross_entropy_fusion"},
  };
  for (const auto& [arg, key] : overlaps)
    if (a.flag(arg)) t += line(key, "true", arg);

  std::string out =
      "# Written by orrery import megatron from Megatron-LM pretrain_gpt.py arguments (names and\n"
      "# defaults as in NVIDIA/Megatron-LM d98e8a64); each value names its source.\n";
  if (a.unmapped().empty()) {
    out += "# Every argument was mapped.\n";
  } else {
    out += "# Not mapped (orrery's defaults stand for them; check they match):\n";
    for (const auto& u : a.unmapped()) out += "#   " + u + "\n";
  }
  out += fmt::format("cluster: {{preset: {}, nodes: {}}}  # orrery import --cluster, --nodes\n",
                     cluster, nodes);
  out += "model:\n" + m + "parallelism:\n" + p + "training:\n" + t;
  return out;
}

}  // namespace orrery
