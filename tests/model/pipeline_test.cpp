// Pipeline layouts: layers per (rank, virtual stage) for each of Megatron-Core's rules
// against its own formulas (NVIDIA/Megatron-LM at d98e8a64:
// megatron/core/transformer/transformer_block.py get_num_layers_to_build,
// transformer_layer.py get_transformer_layer_offset, pipeline_parallel_layer_layout.py),
// the layout grammar with its errors, the interleaved schedule table, and memory per stage
// with the embedding counted on the first stage.
#include "model/pipeline.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "model/layer_pass.h"
#include "model/memory.h"
#include "model/workload.h"
#include "scenario/load.h"

namespace orrery {
namespace {

// A small dense decoder of `layers` layers with the given parallelism body.
Scenario small(int layers, int pp, const std::string& parallelism) {
  const std::string yaml = fmt::format(R"(
cluster: {{preset: dgx-h100, gpus_per_node: {}}}
model: {{family: decoder, layers: {}, hidden: 1024, heads: 8, ffn: 4096, vocab: 32000,
        seq_len: 1024, activation: gelu, norm: layernorm, position_embedding: rope,
        tied_embeddings: false, bias: true, dropout: false}}
parallelism: {{tp: 1, dp: 1, microbatch: 1, {}}}
training: {{precision: bf16, recompute: none}}
)",
                                       pp, layers, parallelism);
  return load_scenario_text(yaml, "layout.yaml");
}

// Layers of each virtual stage in Megatron's order (chunk-major: vs = chunk * pp + rank).
std::vector<int> counts(const Scenario& s) {
  return pipeline_layout(s.model, s.parallelism).layers;
}

// First layer index of (rank, chunk), as get_transformer_layer_offset returns it.
int offset(const PipelineLayout& l, int rank, int chunk) {
  int o = 0;
  for (int vs = 0; vs < chunk * l.pp + rank; ++vs) o += l.layers[static_cast<std::size_t>(vs)];
  return o;
}

TEST(PipelineLayout, UnevenFirstLastWithInterleaving) {
  // 14 layers, pp 4, vp 2, first 2, last 4: the middle 8 over 2 ranks = 4 each; every
  // rank's count over its 2 chunks: rank 0 1+1, ranks 1-2 2+2, rank 3 2+2.
  const Scenario s = small(14, 4,
                           "pp: 4, virtual_pipeline_stages: 2, first_stage_layers: 2, "
                           "last_stage_layers: 4, global_batch: 8");
  EXPECT_EQ(counts(s), (std::vector<int>{1, 2, 2, 2, 1, 2, 2, 2}));
  // get_transformer_layer_offset (interleaved uneven branch): per-chunk counts first 2/2
  // = 1, middle 8/2 = 4 (over 2 middle ranks: 2 each), last 4/2 = 2; total per virtual
  // stage 1 + 4 + 2 = 7. Rank 0 chunk 1: 1*7 = 7. Rank 2 chunk 0: 0 + 1 + (2-1)*2 = 3.
  // Rank 3 chunk 1: 7 + 1 + 2*2 = 12.
  const PipelineLayout l = pipeline_layout(s.model, s.parallelism);
  EXPECT_EQ(offset(l, 0, 1), 7);
  EXPECT_EQ(offset(l, 2, 0), 3);
  EXPECT_EQ(offset(l, 3, 1), 12);
  EXPECT_EQ(l.embedding_stage, 0);
  EXPECT_EQ(l.loss_stage, 7);
}

TEST(PipelineLayout, EmbeddingAndLossAccountedAsLayers) {
  // 6 layers + embedding + loss = 8 over pp 2 x vp 2 = 2 per virtual stage; the first
  // builds 2 - 1 = 1 (embedding), the last 2 - 1 = 1 (loss).
  const Scenario s = small(6, 2,
                           "pp: 2, virtual_pipeline_stages: 2, account_for_embedding: true, "
                           "account_for_loss: true, global_batch: 4");
  EXPECT_EQ(counts(s), (std::vector<int>{1, 2, 2, 1}));
  // get_transformer_layer_offset (accounted branch): num_layers 8, 4 per rank, 2 per
  // virtual rank, total_virtual_chunks 8 / 2 = 4; rank 1 chunk 0: 0 + 1*2 - 1 = 1;
  // rank 0 chunk 1: 4 + 0 - 1 = 3; rank 1 chunk 1: 4 + 2 - 1 = 5.
  const PipelineLayout l = pipeline_layout(s.model, s.parallelism);
  EXPECT_EQ(offset(l, 1, 0), 1);
  EXPECT_EQ(offset(l, 0, 1), 3);
  EXPECT_EQ(offset(l, 1, 1), 5);
  // Only the embedding: first and last rank, no interleaving, 7 + 1 = 8 over 2 ranks.
  const Scenario e = small(7, 2, "pp: 2, account_for_embedding: true, global_batch: 4");
  EXPECT_EQ(counts(e), (std::vector<int>{3, 4}));
}

TEST(PipelineLayout, LayoutStringSetsTheVirtualStages) {
  // 4 stages over pp 2: vp 2; stage i is rank i % 2, chunk i / 2.
  const Scenario s = small(6, 2, "pp: 2, pipeline_layout: \"Et|tt|tt|tL\", global_batch: 4");
  EXPECT_EQ(s.parallelism.virtual_pipeline_stages, 2);
  EXPECT_EQ(s.parallelism.schedule, PipelineSchedule::interleaved_1f1b);
  EXPECT_EQ(counts(s), (std::vector<int>{1, 2, 2, 1}));
  EXPECT_EQ(stage_of_layers(s.model, s.parallelism), (std::vector<int>{0, 1, 1, 0, 0, 1}));
  // The Llama 3 paper's 405B layout (arXiv:2407.21783 section 3.3.2) for 126 layers.
  const Scenario l = small(126, 16, "pp: 16, pipeline_layout: \"E|(t|)*126L\", global_batch: 16");
  const std::vector<int> c = counts(l);
  ASSERT_EQ(c.size(), 128u);
  EXPECT_EQ(c.front(), 0);
  EXPECT_EQ(c.back(), 0);
  EXPECT_EQ(c[1], 1);
  EXPECT_EQ(pipeline_layout(l.model, l.parallelism).on_rank(0), 7);  // 8 chunks, one is E
  EXPECT_EQ(pipeline_layout(l.model, l.parallelism).on_rank(5), 8);
}

TEST(PipelineLayout, EmptyStagesHoldNothing) {
  // Megatron-Core's own example with an empty stage (tests/unit_tests/transformer/
  // test_transformer_block.py line 892 at NVIDIA/Megatron-LM d98e8a64), pp 4: eight stages,
  // vp 2; stage 4 (rank 0, chunk 1) holds nothing.
  const Scenario s = small(8, 4, "pp: 4, pipeline_layout: \"E|t|t*2|t||(t|)*2,t*2,L\", "
                                 "global_batch: 8");
  EXPECT_EQ(s.parallelism.virtual_pipeline_stages, 2);
  EXPECT_EQ(counts(s), (std::vector<int>{0, 1, 2, 1, 0, 1, 1, 2}));
  const PipelineLayout l = pipeline_layout(s.model, s.parallelism);
  EXPECT_EQ(l.embedding_stage, 0);
  EXPECT_EQ(l.loss_stage, 7);
  EXPECT_EQ(l.on_rank(0), 0);  // the embedding, then the empty stage
  EXPECT_EQ(l.on_rank(3), 3);
  EXPECT_EQ(stage_of_layers(s.model, s.parallelism),
            (std::vector<int>{1, 2, 2, 3, 1, 2, 3, 3}));
}

TEST(PipelineLayout, GrammarAsMegatronUnrollsIt) {
  // parse_str_to_list's own example: "Ettt|(tt|)*29,m|L" is
  // [[E,t,t,t]] + [[t,t]]*29 + [[m],[L]].
  const LayoutParse p = parse_pipeline_layout("Ettt|(tt|)*29,m|L");
  ASSERT_EQ(p.error, "");
  ASSERT_EQ(p.stages.size(), 32u);
  EXPECT_EQ(p.stages[0], "Ettt");
  EXPECT_EQ(p.stages[1], "tt");
  EXPECT_EQ(p.stages[29], "tt");
  EXPECT_EQ(p.stages[30], "m");
  EXPECT_EQ(p.stages[31], "L");
  EXPECT_EQ(parse_pipeline_layout("Et*3|t*2L").stages, (std::vector<std::string>{"Ettt", "ttL"}));
  EXPECT_EQ(parse_pipeline_layout("(|t)*2").stages, (std::vector<std::string>{"", "t", "t"}));
}

TEST(PipelineLayout, GrammarErrorsSayWhere) {
  const std::vector<std::pair<std::string, std::size_t>> bad = {
      {"Et|(tt|*2", 3},                // '(' never closed
      {"Etx|L", 2},                    // not a layer character
      {"E|(tt)|L", 5},                 // a bracket without *N
      {"((t)*2)*2", 1},                // nested
      {"E|t*|L", 3},                   // '*' without a count
      {"E|t)|L", 3},                   // ')' without '('
      {"*3", 0},                       // '*' with nothing before
      {"E|(tttttttttt|)*999999L", 2},  // unrolls past 1,000,000 items
  };
  for (const auto& [text, at] : bad) {
    const LayoutParse p = parse_pipeline_layout(text);
    EXPECT_NE(p.error, "") << text;
    EXPECT_EQ(p.position, at) << text << ": " << p.error;
    EXPECT_TRUE(p.stages.empty()) << text;
  }
}

TEST(PipelineLayout, InterleavedTableAsMegatronDocumentsIt) {
  // schedules.py's comment for PP2 N3 M5 VP2: micro-batches 0 1 2 0 1 2 3 4 3 4, chunks
  // 0 0 0 1 1 1 0 0 1 1.
  const auto t = interleaved_table(5, 2, 3);
  std::vector<int> mb, chunk;
  for (const auto& [m, c] : t) {
    mb.push_back(m);
    chunk.push_back(c);
  }
  EXPECT_EQ(mb, (std::vector<int>{0, 1, 2, 0, 1, 2, 3, 4, 3, 4}));
  EXPECT_EQ(chunk, (std::vector<int>{0, 0, 0, 1, 1, 1, 0, 0, 1, 1}));
}

TEST(PipelineLayout, MemoryCountsTheEmbeddingOnTheFirstStage) {
  // 7 layers + the embedding as a layer = 8 over pp 2: rank 0 builds 3 transformer layers
  // and the embedding, rank 1 4 layers and the head.
  const Scenario s = small(7, 2, "pp: 2, account_for_embedding: true, global_batch: 4");
  const Workload w = build_workload(s.model, s.training, shard_of(s.parallelism));
  const MemoryReport r = estimate_memory(s, w);
  ASSERT_EQ(r.stages.size(), 2u);
  EXPECT_EQ(r.stages[0].layers, 3);
  EXPECT_EQ(r.stages[1].layers, 4);
  double layer = 0, embedding = 0, head = 0;
  for (const Layer& l : w.layers) {
    if (l.kind == LayerKind::transformer) layer = l.params();
    if (l.kind == LayerKind::embedding) embedding = l.params();
    if (l.kind == LayerKind::head) head = l.params();
  }
  // Hand count: hidden 1024, vocab 32000: embedding 32000 * 1024 = 32,768,000.
  EXPECT_DOUBLE_EQ(embedding, 32000.0 * 1024);
  EXPECT_DOUBLE_EQ(r.stages[0].params, 3 * layer + embedding);
  EXPECT_DOUBLE_EQ(r.stages[1].params, 4 * layer + head);
}

// A pipeline send carries 1/tp of the micro-batch's activation per GPU under either engine:
// Megatron-LM scatters it, DeepSpeed's PipelineEngine partitions the activation and its
// gradient over the tensor-parallel group (PartitionedTensor, deepspeed/runtime/pipe/
// engine.py, microsoft/DeepSpeed 56c522386878). By hand: b 2 x s 2048 x h 1024 x 2 bytes
// (bf16) = 8,388,608 bytes whole; / tp 4 = 2,097,152.
TEST(PipelineMessage, BothEnginesSendOneTpthOfTheActivation) {
  auto bytes = [](const std::string& tp, const std::string& engine) {
    const Scenario s = load_scenario_text(fmt::format(R"(
cluster: {{preset: dgx-a100}}
model: {{family: decoder, layers: 4, hidden: 1024, heads: 8, ffn: 4096, vocab: 32000,
        seq_len: 2048, activation: gelu, norm: layernorm, position_embedding: learned,
        tied_embeddings: true, bias: true, dropout: false}}
parallelism: {{tp: {}, pp: 2, microbatch: 2, global_batch: 16, pipeline_engine: {}}}
training: {{precision: bf16}}
)",
                                                      tp, engine),
                                          "message.yaml");
    return message_sizes(s).pp;
  };
  EXPECT_DOUBLE_EQ(bytes("4", "deepspeed"), 2097152.0);
  EXPECT_DOUBLE_EQ(bytes("4", "megatron"), 2097152.0);
  EXPECT_DOUBLE_EQ(bytes("1", "deepspeed"), 8388608.0);
}

}  // namespace
}  // namespace orrery
