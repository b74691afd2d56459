// The mapping shared by `orrery import megatron` and `orrery import nemo`: settings read
// from a training recipe, held under Megatron-LM's argument names (NeMo 1.x passes its
// model keys through to the same Megatron Core config), written out as a scenario with
// each value's source. Internal to scenario/import_*.cpp.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"

namespace orrery::detail {

class ImportSettings {
 public:
  // `where` names the input in errors (a file, or "orrery import megatron").
  explicit ImportSettings(std::string where) : where_(std::move(where)) {}

  // A setting under the Megatron-LM argument `name` ("--num-layers"), read from the
  // source key `label` (the argument itself, or "model.num_layers") at `line`.
  void set(const std::string& name, std::string value, std::string label,
           std::optional<int> line = std::nullopt);
  void set_flag(const std::string& name, std::string label, std::optional<int> line = std::nullopt);
  // What the source calls `name` when it is absent (for "default of ..." comments).
  void rename(const std::string& name, std::string label) { names_[name] = std::move(label); }
  // The comment for `name` absent, where the source says more than "no --name".
  void set_absent(const std::string& name, std::string phrase) {
    absent_[name] = std::move(phrase);
  }
  // The word for a missing setting in errors: "argument" or "key".
  void set_missing_word(std::string word) { missing_word_ = std::move(word); }
  void add_unmapped(std::string text) { unmapped_.push_back(std::move(text)); }

  bool flag(const std::string& name) const { return flags_.count(name) > 0; }
  bool has(const std::string& name) const { return values_.count(name) > 0; }
  const std::string& text(const std::string& name) const { return values_.at(name).value; }
  // The source key of `name`: where it was read from, or what the source calls it.
  std::string label(const std::string& name) const;
  // `megatron` (a comment naming several arguments) for a Megatron-LM launch, else the
  // source key `name` was read from.
  std::string source(const std::string& name, const std::string& megatron) const;
  std::string absent(const std::string& name, const std::string& fallback) const;
  const std::string& missing_word() const { return missing_word_; }

  std::int64_t whole(const std::string& name) const;
  std::int64_t whole(const std::string& name, std::int64_t fallback) const {
    return has(name) ? whole(name) : fallback;
  }
  // A count that may be 0: `fallback` when absent.
  std::int64_t count(const std::string& name, std::int64_t fallback) const;
  double number(const std::string& name, double fallback) const;
  // A shape setting with no default: `whole(name)`, or an InputError naming the five.
  std::int64_t required(const std::string& name) const;
  [[noreturn]] void refuse(const std::string& name, const std::string& why) const;
  const std::vector<std::string>& unmapped() const { return unmapped_; }
  const std::string& where() const { return where_; }

 private:
  struct Entry {
    std::string value, label;
    std::optional<int> line;
  };
  InputLocation at(const std::string& name) const;
  // `name`'s value as a whole number of at least `least`, or an InputError.
  std::int64_t parse_whole(const std::string& name, std::int64_t least) const;

  std::string where_;
  std::string missing_word_ = "argument";
  std::map<std::string, Entry> flags_;
  std::map<std::string, Entry> values_;
  std::map<std::string, std::string> names_;
  std::map<std::string, std::string> absent_;
  std::vector<std::string> unmapped_;
};

// How the scenario's head and cluster line read.
struct ImportSource {
  std::string header;      // comment lines naming the source and its version
  std::string all_mapped;  // the comment when nothing is unmapped
  std::string not_mapped;  // the comment heading the unmapped list
  std::string cluster;     // a system preset name
  int nodes = 1;
  std::string nodes_source;  // the cluster line's comment
  std::string stack;         // training.stack line ("" for none): "nemo  # ..."
  std::string grad_buckets;  // training.grad_buckets line ("" for none), as `stack`
  // Megatron-LM's argparse defaults hold for what the source leaves out (a launch line or
  // a log's arguments header): the overlaps off unless switched on, the gradients in the
  // parameters' 16-bit type under --fp16 and in fp32 under --bf16 (arguments.py at
  // d98e8a64). NeMo's config leaves these to orrery's defaults.
  bool megatron_defaults = false;
  // The overlaps' defaults where the source's differ from orrery's (true): a Megatron-LM
  // launch's (both off); NeMo 1.x's with Megatron-Core's distributed optimizer (both off)
  // or Apex's DistributedFusedAdam (the parameter gather off). An absent one is written
  // false with the phrase set_absent gives it.
  bool grad_reduce_off_by_default = false;
  bool param_gather_off_by_default = false;
  // NeMo 1.x passes Megatron-Core's ModelParallelConfig defaults (core_r0.9.0,
  // megatron/core/model_parallel_config.py lines 201 and 228): the fused cross-entropy and
  // the pipeline-transfer overlap off unless its config turns them on; orrery's nemo
  // stack and its overlap_p2p default have them on. An absent one is written false.
  bool cross_entropy_fusion_off_by_default = false;
  bool p2p_overlap_off_by_default = false;
};

// Throws InputError (file `where`, key `key`) unless `cluster` names a system preset.
void check_system_preset(const std::string& where, const std::string& key,
                         const std::string& cluster);

// The text of the file `path`; InputError "cannot open the WHAT" when it cannot be read.
std::string read_import_file(const std::string& path, const std::string& what);

// The system preset's GPUs per node (after check_system_preset).
int system_gpus_per_node(const std::string& cluster);

// "  key: value  # source\n", a scenario line with its source.
std::string scenario_line(const std::string& key, const std::string& value,
                          const std::string& source);

// "KEY: {k1, k2, ...}  # s1, s2, ...": a flow mapping with the sources of its entries.
std::string flow_line(const std::string& key, const std::vector<std::string>& entries,
                      const std::vector<std::string>& sources);

// `text` as a number when all of it is one.
std::optional<double> parse_number(const std::string& text);

// The label of `name` where the source gives it (a value or a flag), else `fallback`.
std::string given_or(const ImportSettings& a, const std::string& name, const std::string& fallback);

// The words of a value given as several (an nargs='+' argument's, joined by spaces).
std::vector<std::string> words_of(const std::string& text);

// Megatron-FSDP's --data-parallel-sharding-strategy (arguments.py at d98e8a64: default
// optim_grads_params).
std::string megatron_fsdp_strategy(const ImportSettings& a);

// The MoE token dispatcher (transformer_config.py at d98e8a64: allgather by default) and
// the flex dispatcher's backend (deepep by default; --moe-enable-deepep is deepep).
std::string moe_dispatcher(const ImportSettings& a);
std::string flex_backend(const ImportSettings& a);

// The model: section and what the other sections read from it.
struct ImportedModel {
  std::string lines;  // the section's lines
  std::int64_t layers = 0;
  std::int64_t tp = 1;  // read with the shape: the vocabulary is padded to a multiple of it
  bool swiglu = false;
  bool bias = true;   // linear layers with biases (no --disable-bias-linear)
  bool rope = false;  // rotary position embeddings
  // What the launch runs otherwise than orrery times it, one line each (the scenario's
  // head lists them): Megatron-Core's MoE kernel switches left at their defaults.
  std::vector<std::string> differences;
};

// The three sections of the scenario, in this order (each refusal is the first one a
// reader of the launch meets): scenario/import_model.cpp, import_parallelism.cpp,
// import_training.cpp. Each throws InputError for what orrery cannot express.
ImportedModel write_model_section(const ImportSettings& a);
std::string write_parallelism_section(const ImportSettings& a, const ImportSource& source,
                                      const ImportedModel& model);
std::string write_training_section(const ImportSettings& a, const ImportSource& source,
                                   const ImportedModel& model);

// The scenario YAML for `a` (throws InputError for what orrery cannot express).
std::string write_imported_scenario(const ImportSettings& a, const ImportSource& source);

}  // namespace orrery::detail
