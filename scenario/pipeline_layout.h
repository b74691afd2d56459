// The grammar of Megatron-Core's --pipeline-model-parallel-layout, the text of the
// scenario key parallelism.pipeline_layout (what it means: model/pipeline.h).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace orrery {

// A --pipeline-model-parallel-layout string unrolled into its stages, each a string of
// E (embedding), t (transformer layer), m (multi-token prediction layer) and L (loss).
// Grammar (Megatron-Core parse_str_to_list): commas are cosmetic; `|` ends a stage;
// `x*N` repeats the character x N times; `(...)*N` repeats the bracketed text (no nested
// brackets) N times. On bad text, `error` says why and `position` is the 0-based offset
// in `text` where it was found; the result is then empty.
struct LayoutParse {
  std::vector<std::string> stages;
  std::string error;
  std::size_t position = 0;
};
LayoutParse parse_pipeline_layout(const std::string& text);

// The stage that holds the multi-token-prediction layers (m) when it is not the stage of
// the loss (L): Megatron-Core's mtp_standalone (pipeline_parallel_layer_layout.py
// validate_layer_layout at NVIDIA/Megatron-LM d98e8a64); -1 otherwise, or for text that does
// not parse.
int standalone_mtp_stage(const std::string& text);

}  // namespace orrery
