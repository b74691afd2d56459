// Which pipeline rank and model chunk holds which transformer layer, the embedding and
// the output layer (Megatron-Core's pipeline layouts).
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "scenario/pipeline_layout.h"
#include "scenario/spec.h"

namespace orrery {

// The layers of each virtual pipeline stage. Virtual stage s = chunk * pp + rank, and the
// model's layers run through the virtual stages in that order (Megatron-Core
// PipelineParallelLayerLayout: the flat layout's element vpp_rank * pp + pp_rank;
// NVIDIA/Megatron-LM megatron/core/transformer/pipeline_parallel_layer_layout.py at
// d98e8a64). The embedding is in the first virtual stage that holds anything, the output
// layer and loss in the last (validate_layer_layout requires both).
struct PipelineLayout {
  int pp = 1, vp = 1;
  std::vector<int> layers;  // transformer layers of each virtual stage, pp * vp entries
  int embedding_stage = 0;  // virtual stage of the embedding
  int loss_stage = 0;       // virtual stage of the output layer and loss
  // Virtual stage of the multi-token-prediction layers when they have a stage of their own
  // before the loss's (Megatron-Core's mtp_standalone: the last virtual stage of another
  // rank, only empty stages after it); -1 when they run with the loss, or there are none.
  int mtp_stage = -1;

  int at(int rank, int chunk) const { return layers[static_cast<std::size_t>(chunk * pp + rank)]; }
  int on_rank(int rank) const;
  // (rank, chunk) of each transformer layer, in the model's order.
  std::vector<std::pair<int, int>> place_of_layers() const;
};

// The layout a validated scenario's parallelism gives its transformer layers:
//  - pipeline_layout: the string's stages, as Megatron's --pipeline-model-parallel-layout;
//  - first_stage_layers / last_stage_layers (--decoder-first/last-pipeline-num-layers):
//    those counts on the first and last rank, the rest split evenly over the other ranks,
//    every rank's count split evenly over its vp chunks (transformer_block.py
//    get_num_layers_to_build; transformer_layer.py get_transformer_layer_offset);
//  - otherwise layers (+1 with account_for_embedding, +1 with account_for_loss) split
//    evenly over pp ranks and their vp chunks, the first virtual stage then building one
//    layer fewer for the embedding and the last one fewer for the loss.
PipelineLayout pipeline_layout(const ModelSpec& m, const ParallelismSpec& p);

// The pipeline rank that keeps a copy of the word embedding for the multi-token-prediction
// layers, or -1. Megatron-Core builds a LanguageModelEmbedding on every model chunk that runs
// them (gpt_model.py line 173 at NVIDIA/Megatron-LM d98e8a64, pre_process or mtp_process),
// so with pp > 1 the rank holding them (the loss's, or a stage of their own) keeps a table
// of its own, in Megatron's embedding group. On the last rank with tied embeddings it is the
// shared weight (shared_embedding_or_output_weight, language_module.py lines 348-361) and the
// output layer's own weight, allocated off the first stage (skip_weight_param_allocation,
// gpt_model.py lines 289-290), stays beside it unused: two tables there, one in the group.
// Not under DualPipe, whose first and last ranks hold the embedding and the head together,
// nor DeepSpeed's pipeline engine.
int mtp_embedding_copy_rank(const ModelSpec& m, const ParallelismSpec& p);

// Rank of each of the model's transformer layers, in order.
std::vector<int> stage_of_layers(const ModelSpec& m, const ParallelismSpec& p);

// The schedule table of Megatron-Core's interleaved schedule (schedules.py
// get_schedule_table): the (micro-batch, chunk) of each forward in order, micro-batches
// in groups of `group` (microbatch_group_size_per_vp_stage), each group through every
// chunk before the next starts; the last group takes what is left.
std::vector<std::pair<int, int>> interleaved_table(int microbatches, int chunks, int group);

}  // namespace orrery
