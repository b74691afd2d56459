// `orrery import megatron` (scenario/import_megatron.h): the launch arguments, read under
// their own names, go through the mapping shared with `orrery import nemo`
// (scenario/import_common.h), whose defaults are Megatron-LM's at NVIDIA/Megatron-LM
// d98e8a64 (megatron/training/arguments.py).
#include "scenario/import_megatron.h"

#include <optional>
#include <set>
#include <string>

#include "core/error.h"
#include "scenario/import_common.h"

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
  detail::ImportSource source;
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

}  // namespace orrery
