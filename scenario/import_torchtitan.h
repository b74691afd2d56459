// `orrery import torchtitan`: a scenario written from a torchtitan job config (TOML).
#pragma once

#include <string>

namespace orrery {

// The scenario YAML for the torchtitan job config in the TOML file `path` (the
// `--job.config_file` of torchtitan's train.py, TOML form as at pytorch/torchtitan v0.2.1)
// on `nodes` nodes of the system preset `cluster`: the llama3 model of its flavor (or
// `hf_config`), the
// parallel layout (FSDP2 sharding, tp, pp, cp), batch, precision, activation
// checkpointing and compile, each value with a comment naming the key it came from (or
// torchtitan's default it took), and a comment listing the keys it did not map. Throws
// InputError (naming the file, line, key and value) for TOML outside the subset torchtitan
// configs use, a value torchtitan or orrery does not take, and a layout that does not fill
// the GPUs.
// `hf_config`, when not empty, is a Hugging Face config.json for the model (read as
// model.hf_config is, and written as given: relative to where the scenario is saved),
// in place of the flavor table, for models other than llama3.
std::string import_torchtitan(const std::string& path, const std::string& cluster, int nodes,
                              const std::string& hf_config);

}  // namespace orrery
