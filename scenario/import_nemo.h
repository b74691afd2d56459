// `orrery import nemo`: a scenario written from a NeMo 1.x training config.
#pragma once

#include <cstdint>
#include <string>

namespace orrery {

// The scenario YAML for the NeMo 1.x GPT training config in the YAML file `path` (the
// config megatron_gpt_pretraining.py reads, or a NeMo-Framework-Launcher
// conf/training/ file) on the system preset `cluster`, the vocabulary `vocab_size`
// (the tokenizer's: NeMo takes it from the tokenizer, which is not read). Each value
// has a comment naming the key it came from (or NeMo's default it took), and a comment
// lists the trainer and model keys it could not map. The mapping is the one of
// `orrery import megatron` (scenario/import_common.h): NeMo passes these keys through to
// Megatron Core. Throws InputError (naming the file, line, key and value) for a value
// NeMo or orrery does not accept, a missing shape key, an interpolation (`${...}`) of a
// mapped key that cannot be resolved, and trainer.devices other than the system's GPUs
// per node.
std::string import_nemo(const std::string& path, const std::string& cluster,
                        std::int64_t vocab_size);

}  // namespace orrery
