// `orrery import megatron` (scenario/import_megatron.h): the launch arguments, read under
// their own names, go through the mapping shared with `orrery import nemo`
// (scenario/import_common.h), whose defaults are Megatron-LM's at NVIDIA/Megatron-LM
// d98e8a64 (megatron/training/arguments.py).
#include "scenario/import_megatron.h"

#include <fmt/format.h>

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "scenario/import_common.h"

namespace orrery {
namespace {

const char* const kWhere = "orrery import megatron";

// Arguments that take no value, and those that take one.
const std::set<std::string>& switches() {
  static const std::set<std::string> s = {
      "--swiglu",
      "--quick-geglu",
      "--squared-relu",
      "--untie-embeddings-and-output-weights",
      "--disable-bias-linear",
      "--group-query-attention",
      "--sequence-parallel",
      "--use-distributed-optimizer",
      "--bf16",
      "--fp16",
      "--overlap-grad-reduce",
      "--overlap-param-gather",
      "--overlap-param-gather-with-optimizer-step",
      "--tp-comm-overlap",
      // Megatron-LM's pipeline-transfer overlap: on by default since 4eeff55d (2023-10-12),
      // which made --no-overlap-p2p-communication the switch; before it the switch was
      // --overlap-p2p-communication (off by default, f9283c5a, 2023-05-31). Both are read.
      "--overlap-p2p-communication",
      "--no-overlap-p2p-communication",
      "--recompute-activations",
      "--accumulate-allreduce-grads-in-fp32",
      "--grad-reduce-in-bf16",
      "--cross-entropy-loss-fusion",
      "--use-rotary-position-embeddings",
      "--account-for-embedding-in-pipeline-split",
      "--account-for-loss-in-pipeline-split",
      "--use-tp-pp-dp-mapping",
      "--fp8-param-gather",
      "--reuse-grad-buf-for-mxfp8-param-ag",
      "--first-last-layers-bf16",
      "--use-precision-aware-optimizer",
      // MoE, MLA and the model's other Megatron-Core switches (TransformerConfig fields,
      // argument_utils.py ArgumentGroupFactory at d98e8a64).
      "--moe-pad-expert-input-to-capacity",
      "--moe-shared-expert-overlap",
      "--moe-router-enable-expert-bias",
      "--moe-enable-deepep",
      "--overlap-moe-expert-parallel-comm",
      "--multi-latent-attention",
      "--qk-layernorm",
      "--moe-grouped-gemm",
      "--moe-permute-fusion",
      "--moe-router-fusion",
      // Fusions Megatron-LM turns off by name (store_false, arguments.py).
      "--no-rope-fusion",
      "--no-bias-swiglu-fusion",
      "--no-bias-gelu-fusion",
      "--no-gradient-accumulation-fusion",
      // Sharding and offload.
      "--use-megatron-fsdp",
      "--use-torch-fsdp2",
      "--torch-fsdp2-no-reshard-after-forward",
      "--optimizer-cpu-offload",
      "--overlap-cpu-optimizer-d2h-h2d",
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
      "--expert-tensor-parallel-size",
      "--num-layers-per-virtual-pipeline-stage",
      "--decoder-first-pipeline-num-layers",
      "--decoder-last-pipeline-num-layers",
      "--micro-batch-size",
      "--global-batch-size",
      "--recompute-granularity",
      "--recompute-method",
      "--recompute-num-layers",
      "--fp8-format",
      "--fp8-recipe",
      "--fp8-amax-history-len",
      "--num-layers-at-start-in-bf16",
      "--num-layers-at-end-in-bf16",
      "--num-virtual-stages-per-pipeline-rank",
      "--exp-avg-dtype",
      "--exp-avg-sq-dtype",
      "--main-params-dtype",
      "--attention-backend",
      "--moe-shared-expert-intermediate-size",
      "--moe-layer-freq",
      "--moe-router-load-balancing-type",
      "--moe-aux-loss-coeff",
      "--moe-expert-capacity-factor",
      "--moe-router-num-groups",
      "--moe-router-group-topk",
      "--moe-token-dispatcher-type",
      "--moe-flex-dispatcher-backend",
      "--moe-router-score-function",
      "--q-lora-rank",
      "--kv-lora-rank",
      "--qk-head-dim",
      "--qk-pos-emb-head-dim",
      "--v-head-dim",
      "--kv-channels",
      "--mtp-num-layers",
      "--pipeline-model-parallel-layout",
      "--microbatch-group-size-per-virtual-pipeline-stage",
      "--recompute-modules",
      "--data-parallel-sharding-strategy",
      "--num-distributed-optimizer-instances",
      "--ckpt-format",
      "--cp-comm-type",
      "--fp4-format",
      "--fp4-recipe",
      "--optimizer-offload-fraction",
      "--cpu-offloading-num-layers",
      "--ddp-bucket-size",
      "--optimizer",
  };
  return s;
}

// Valued arguments that take one or more values (argparse nargs='+'): every value up to the
// next argument, kept joined by spaces.
bool takes_several(const std::string& name) {
  return name == "--recompute-modules" || name == "--moe-router-load-balancing-type" ||
         name == "--moe-aux-loss-coeff" || name == "--cp-comm-type";
}

}  // namespace

std::string import_megatron(const std::vector<std::string>& arguments, const std::string& cluster,
                            int nodes) {
  detail::check_system_preset(kWhere, "--cluster", cluster);
  detail::ImportSettings a(kWhere);
  for (std::size_t i = 0; i < arguments.size(); ++i) {
    std::string name = arguments[i];
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
      a.set_flag(name, name);
    } else if (valued().count(name)) {
      if (!inline_value) {
        if (i + 1 >= arguments.size() || arguments[i + 1].rfind("--", 0) == 0) {
          throw InputError({kWhere, std::nullopt}, name, "", "missing its value");
        }
        inline_value = arguments[++i];
        while (takes_several(name) && i + 1 < arguments.size() &&
               arguments[i + 1].rfind("--", 0) != 0)
          *inline_value += " " + arguments[++i];
      }
      a.set(name, *inline_value, name);
    } else {
      // Not mapped: kept with its values for the scenario's comment.
      std::string text = arguments[i];
      while (i + 1 < arguments.size() && arguments[i + 1].rfind("--", 0) != 0)
        text += " " + arguments[++i];
      a.add_unmapped(text);
    }
  }
  // arguments.py at d98e8a64 takes one of the two forms of interleaving.
  if (a.has("--num-layers-per-virtual-pipeline-stage") &&
      a.has("--num-virtual-stages-per-pipeline-rank")) {
    a.refuse("--num-virtual-stages-per-pipeline-rank",
             "given with --num-layers-per-virtual-pipeline-stage: Megatron-LM takes one");
  }
  // arguments.py at d98e8a64: uneven first or last stages take interleaving as virtual
  // stages per pipeline rank (asserted when it is given as layers per virtual stage).
  if (a.has("--num-layers-per-virtual-pipeline-stage")) {
    for (const char* uneven :
         {"--decoder-first-pipeline-num-layers", "--decoder-last-pipeline-num-layers"}) {
      if (a.has(uneven)) {
        a.refuse(uneven,
                 "given with --num-layers-per-virtual-pipeline-stage: Megatron-LM takes uneven "
                 "stages with --num-virtual-stages-per-pipeline-rank only");
      }
    }
  }
  detail::ImportSource source;
  source.megatron_defaults = true;
  source.grad_reduce_off_by_default = true;
  source.param_gather_off_by_default = true;
  source.header =
      "# Written by orrery import megatron from Megatron-LM pretrain_gpt.py arguments (names and\n"
      "# defaults as in NVIDIA/Megatron-LM d98e8a64); each value names its source.\n";
  source.all_mapped = "# Every argument was mapped.\n";
  source.not_mapped = "# Not mapped (orrery's defaults stand for them; check they match):\n";
  source.cluster = cluster;
  source.nodes = nodes;
  source.nodes_source = "orrery import --cluster, --nodes";
  return detail::write_imported_scenario(a, source);
}

namespace {

// The attribute (argparse dest) each mapped argument prints under in the header: its
// name without the dashes, except where Megatron-LM's TransformerConfig field differs
// (megatron/core/transformer/transformer_config.py at d98e8a64: `fp8` behind
// --fp8-format and `fp4` behind --fp4-format; model_parallel_config.py:
// `microbatch_group_size_per_vp_stage`; arguments.py: `overlap_p2p_comm`, set by
// --overlap-p2p-communication before it became --no-overlap-p2p-communication) and for
// the switches that turn a default-on setting off (inverted()).
std::string dest_of(const std::string& argument) {
  static const std::map<std::string, std::string> kDest = {
      {"--fp8-format", "fp8"},
      {"--fp4-format", "fp4"},
      {"--overlap-p2p-communication", "overlap_p2p_comm"},
      {"--no-overlap-p2p-communication", "overlap_p2p_comm"},
      {"--microbatch-group-size-per-virtual-pipeline-stage", "microbatch_group_size_per_vp_stage"},
      {"--disable-bias-linear", "add_bias_linear"},
      {"--no-rope-fusion", "apply_rope_fusion"},
      {"--no-bias-swiglu-fusion", "bias_swiglu_fusion"},
      {"--no-bias-gelu-fusion", "bias_gelu_fusion"},
      {"--no-gradient-accumulation-fusion", "gradient_accumulation_fusion"},
      {"--torch-fsdp2-no-reshard-after-forward", "torch_fsdp2_reshard_after_forward"},
  };
  if (const auto it = kDest.find(argument); it != kDest.end()) return it->second;
  std::string d = argument.substr(2);
  for (char& c : d)
    if (c == '-') c = '_';
  return d;
}

// Switches whose attribute is the setting they clear (action store_false): on when the
// header prints False.
bool inverted(const std::string& argument) {
  return argument == "--disable-bias-linear" || argument.rfind("--no-", 0) == 0 ||
         argument == "--torch-fsdp2-no-reshard-after-forward";
}

// A header value as the launch line would give it: a Python list ("['core_attn', 'mlp']",
// printed for nargs='+' arguments) becomes its items joined by spaces; a --moe-layer-freq
// pattern, a list of 0s and 1s, stays as printed.
std::string header_value(const std::string& dest, const std::string& value) {
  if (dest == "moe_layer_freq" || value.size() < 2 || value.front() != '[' ||
      value.back() != ']')
    return value;
  std::string out;
  for (char c : value.substr(1, value.size() - 2)) {
    if (c == '\'' || c == '"') continue;
    if (c == ',') c = ' ';
    if (c == ' ' && (out.empty() || out.back() == ' ')) continue;
    out += c;
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

// A header line "  name ..... value": `name` and `value`, or nullopt. The dots are
// 48 - len(name) long, none for longer names.
std::optional<std::pair<std::string, std::string>> header_entry(const std::string& line) {
  if (line.rfind("  ", 0) != 0) return std::nullopt;
  const std::size_t name_end = line.find(' ', 2);
  if (name_end == std::string::npos || name_end == 2) return std::nullopt;
  std::size_t v = name_end + 1;
  while (v < line.size() && line[v] == '.') ++v;
  if (v >= line.size() || line[v] != ' ') return std::nullopt;
  std::string value = line.substr(v + 1);
  while (!value.empty() && (value.back() == '\r' || value.back() == ' ')) value.pop_back();
  return std::make_pair(line.substr(2, name_end - 2), value);
}

}  // namespace

std::string import_megatron_log(const std::string& path, const std::string& cluster,
                                std::int64_t vocab) {
  detail::check_system_preset("orrery import megatron-log", "--cluster", cluster);
  const std::string text = detail::read_import_file(path, "Megatron-LM log");
  std::vector<std::string> lines;
  for (std::size_t at = 0; at <= text.size();) {
    const std::size_t nl = text.find('\n', at);
    lines.push_back(text.substr(at, nl == std::string::npos ? std::string::npos : nl - at));
    if (nl == std::string::npos) break;
    at = nl + 1;
  }
  if (!lines.empty() && lines.back().empty()) lines.pop_back();  // the final newline's
  // The header; a launcher may prefix every line of rank 0 ("[rank0]: "), which is cut.
  const std::string kBegin = "------------------------ arguments ------------------------";
  const std::string kEnd = "-------------------- end of arguments ---------------------";
  std::size_t begin = lines.size();
  std::string prefix;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (const std::size_t p = lines[i].find(kBegin); p != std::string::npos) {
      begin = i;
      prefix = lines[i].substr(0, p);
      break;
    }
  }
  if (begin == lines.size()) {
    throw InputError({path, std::nullopt}, "arguments", "",
                     "no Megatron-LM arguments header (a line '" + kBegin +
                         "', printed by rank 0 at start-up) in this log");
  }
  std::map<std::string, std::pair<std::string, int>> header;  // dest -> value, line
  bool ended = false;
  for (std::size_t i = begin + 1; i < lines.size(); ++i) {
    std::string l = lines[i];
    if (!prefix.empty() && l.rfind(prefix, 0) == 0) l = l.substr(prefix.size());
    if (l.find(kEnd) != std::string::npos) {
      ended = true;
      break;
    }
    const auto e = header_entry(l);
    if (!e) {
      throw InputError({path, static_cast<int>(i + 1)}, "arguments", l,
                       "expected a header line '  name ..... value' before '" + kEnd + "'");
    }
    header[e->first] = {e->second, static_cast<int>(i + 1)};
  }
  if (!ended) {
    throw InputError({path, static_cast<int>(lines.size())}, "arguments", "",
                     "the arguments header has no '" + kEnd + "' line (a cut log?)");
  }

  detail::ImportSettings a(path);
  std::set<std::string> used;
  auto value_of = [&](const std::string& dest) -> const std::pair<std::string, int>* {
    const auto it = header.find(dest);
    if (it == header.end() || it->second.first == "None") return nullptr;
    return &it->second;
  };
  for (const std::string& name : switches()) {
    const std::string dest = dest_of(name);
    a.rename(name, dest);
    const auto* v = value_of(dest);
    if (!v) continue;
    used.insert(dest);
    const bool on = inverted(name) ? v->first == "False" : v->first == "True";
    if (v->first != "True" && v->first != "False") {
      throw InputError({path, v->second}, dest, v->first, "expected True or False");
    }
    if (on) {
      a.set_flag(name, dest, v->second);
    } else {
      a.set_absent(name, dest + " " + v->first);
    }
  }
  for (const std::string& name : valued()) {
    const std::string dest = dest_of(name);
    a.rename(name, dest);
    const auto* v = value_of(dest);
    if (!v) continue;
    used.insert(dest);
    // The query groups count only with --group-query-attention (arguments.py fills
    // num_query_groups in for every run).
    if (name == "--num-query-groups" && !a.flag("--group-query-attention")) continue;
    // The layers per virtual stage are printed whether or not the run interleaves.
    a.set(name, header_value(dest, v->first), dest, v->second);
  }
  // Interleaving given as virtual stages per pipeline rank (--num-virtual-stages-per-
  // pipeline-rank) prints only virtual_pipeline_model_parallel_size: its layers per
  // virtual stage are (layers + the embedding and loss when counted) / (pp x stages).
  // A layout sets it too (arguments.py at d98e8a64), and says every stage itself.
  if (const auto* vp = value_of("virtual_pipeline_model_parallel_size");
      vp && a.has("--pipeline-model-parallel-layout")) {
    used.insert("virtual_pipeline_model_parallel_size");
  } else if (vp && !a.has("--num-layers-per-virtual-pipeline-stage")) {
    used.insert("virtual_pipeline_model_parallel_size");
    if (a.has("--decoder-first-pipeline-num-layers") ||
        a.has("--decoder-last-pipeline-num-layers")) {
      throw InputError({path, vp->second}, "virtual_pipeline_model_parallel_size", vp->first,
                       "interleaving with uneven first or last stages is not read from a log "
                       "header; import the launch line with orrery import megatron");
    }
    const std::int64_t layers = a.required("--num-layers") +
                                (a.flag("--account-for-embedding-in-pipeline-split") ? 1 : 0) +
                                (a.flag("--account-for-loss-in-pipeline-split") ? 1 : 0);
    a.set("--virtual-stages", vp->first, "virtual_pipeline_model_parallel_size", vp->second);
    const std::int64_t chunks =
        a.whole("--virtual-stages") * a.whole("--pipeline-model-parallel-size", 1);
    if (layers % chunks != 0) {
      throw InputError(
          {path, vp->second}, "virtual_pipeline_model_parallel_size", vp->first,
          fmt::format("{} layers do not split into {} virtual stages", layers, chunks));
    }
    a.set("--num-layers-per-virtual-pipeline-stage", std::to_string(layers / chunks),
          "virtual_pipeline_model_parallel_size", vp->second);
  }
  // The tokenizer's size: the build_tokenizer line (megatron/core/tokenizers/utils/
  // build_tokenizer.py at d98e8a64: " > padded vocab (size: N) with D dummy tokens (new
  // size: M)"), the header's vocab_size, or --vocab-size.
  const std::string kPadded = "> padded vocab (size: ";
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const std::size_t p = lines[i].find(kPadded);
    if (p == std::string::npos) continue;
    const std::size_t from = p + kPadded.size();
    const std::size_t to = lines[i].find(')', from);
    a.set("--vocab-size", lines[i].substr(from, to == std::string::npos ? to : to - from),
          "the log's padded vocab line", static_cast<int>(i + 1));
    break;
  }
  if (!a.has("--vocab-size") && vocab > 0) {
    a.set("--vocab-size", std::to_string(vocab), "orrery import --vocab-size");
  }
  // The nodes: world_size over the system's GPUs per node.
  const auto* world = value_of("world_size");
  if (!world) {
    throw InputError({path, std::nullopt}, "world_size", "",
                     "the arguments header has no world_size");
  }
  used.insert("world_size");
  const int per_node = detail::system_gpus_per_node(cluster);
  std::int64_t gpus = 0;
  try {
    std::size_t end = 0;
    gpus = std::stoll(world->first, &end);
    if (end != world->first.size()) gpus = 0;
  } catch (const std::exception&) {
    gpus = 0;
  }
  if (gpus < 1 || gpus % per_node != 0) {
    throw InputError(
        {path, world->second}, "world_size", world->first,
        fmt::format("expected a multiple of the {} GPUs per node of {}", per_node, cluster));
  }
  for (const auto& [dest, v] : header) {
    if (used.count(dest) || v.first == "None" || v.first == "False") continue;
    a.add_unmapped(dest + ": " + v.first);
  }
  detail::ImportSource source;
  source.megatron_defaults = true;
  source.grad_reduce_off_by_default = true;
  source.param_gather_off_by_default = true;
  source.header =
      "# Written by orrery import megatron-log from the arguments header of\n#   " + path +
      "\n# (names as in NVIDIA/Megatron-LM d98e8a64); each value names the header line\n"
      "# it came from.\n";
  source.all_mapped = "# Every argument of the header was mapped.\n";
  source.not_mapped =
      "# Header arguments not mapped, other than None and False (orrery's defaults stand for\n"
      "# them; check they match):\n";
  source.cluster = cluster;
  source.nodes = static_cast<int>(gpus / per_node);
  source.nodes_source = fmt::format("world_size {} / {} GPUs per node", gpus, per_node);
  return detail::write_imported_scenario(a, source);
}

}  // namespace orrery
