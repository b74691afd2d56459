// model.hf_config: a Hugging Face `config.json` read into a ModelSpec. Private to the
// scenario component (load_model.cpp); the JSON parser stays in hf_config.cpp.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "scenario/spec.h"

namespace orrery::detail {

// Reads the config `text` of the file `file` into `m` (reset first). `seq_len`: the
// scenario's model.seq_len when written (else max_position_embeddings is taken); it
// decides whether a sliding window is shorter than the sequence. Returns the model keys
// it set ("layers", "moe.experts", ...) so that their origin can be recorded. Throws
// InputError naming `file`, the config key and its value for an architecture or a key
// orrery cannot express.
std::vector<std::string> read_hf_config(const std::string& text, const std::string& file,
                                        std::optional<std::int64_t> seq_len, ModelSpec& m);

}  // namespace orrery::detail
