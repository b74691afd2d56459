// Megatron-Core's aligned gradient reduction (simulator/gradient_passes.cpp
// aligned_grad_reduce). Non-interleaved 1F1B: the first pipeline stage reduces its buckets
// as its last backward makes them final, every other stage launches all of them once its
// last backward and that backward's send are done. Interleaved: rank r launches a chunk's
// buckets r backward blocks after the chunk's last backward.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "scenario/load.h"
#include "simulator/step.h"

namespace orrery {
namespace {

// The test model on 4 A100s of one node, pp 2 x dp 2, micro-batch 1, global batch 8, fp32
// gradients in buckets of 1e8 parameters: `layers` layers, `pipeline` the rest of the
// parallelism mapping, `overlap` extra training keys.
Scenario two_ranks(int layers, const std::string& pipeline, const std::string& overlap,
                   const std::string& name) {
  const std::string yaml = fmt::format(R"(
cluster: {{preset: dgx-a100, nodes: 1, gpus_per_node: 4}}
model: {{family: decoder, layers: {}, hidden: 4096, heads: 32, ffn: 16384, vocab: 32768,
        seq_len: 32, activation: gelu, norm: rmsnorm, position_embedding: rope,
        tied_embeddings: false, bias: false, dropout: false}}
parallelism: {{tp: 1, pp: 2, dp: 2, microbatch: 1, global_batch: 8, zero_stage: 1{}}}
training: {{precision: bf16, recompute: none, overlap_grad_reduce: true,{}
           overlap_param_gather: false, grad_bucket_params: 1.0e8}}
)",
                                       layers, pipeline, overlap);
  return load_scenario_text(yaml, name);
}

// 4 micro-batches of the 2-layer model of param_gather_test.cpp: stage 0 holds the
// embedding (V h = 32768 x 4096 = 134,217,728) and layer 0 (4 h^2 + 2 h ffn + 2 h =
// 201,334,784), stage 1 layer 1 and the head (134,217,728 + 4096 for the final norm =
// 134,221,824). A layer's parameters in backward order: fc2 and fc1 (h ffn = 67,108,864
// each), a norm (4096), proj (h^2 = 16,777,216), qkv (3 h^2 = 50,331,648), its input norm
// (4096). Megatron-Core buckets only pipeline rank 0's first chunk (chunk_bucket_params):
// there buckets close at the first parameter that brings them to 1e8, layer 0's fc2 and
// fc1 (134,217,728), then the rest of layer 0 with the embedding (67,117,056 + 134,217,728
// = 201,334,784); stage 1 is one bucket, the output layer (134,217,728), the final norm
// with layer 1's fc2 and fc1 (134,221,824) and the rest of layer 1 (67,117,056):
// 335,556,608.
Scenario two_stages() { return two_ranks(2, "", "", "two-stages.yaml"); }

struct Timed {
  double start, end, bytes;
};

// Rank `rank`'s tasks of `kind`, in issue order (one simulated GPU per stage: rank = stage).
std::vector<Timed> tasks(const StepResult& r, int rank, TaskKind kind) {
  std::vector<Timed> out;
  for (std::size_t i = 0; i < r.graph.tasks.size(); ++i) {
    const Task& t = r.graph.tasks[i];
    if (t.rank != rank || t.kind != kind) continue;
    const double bytes =
        t.comm ? r.graph.comms[static_cast<std::size_t>(*t.comm)].bytes.value() : 0.0;
    out.push_back({r.timeline.timing[i].start->value(), r.timeline.timing[i].end->value(), bytes});
  }
  return out;
}

double last_end(const std::vector<Timed>& v) {
  double end = 0;
  for (const Timed& t : v) end = std::max(end, t.end);
  return end;
}

TEST(AlignedGradReduce, LaterStagesReduceAfterTheirLastBackwardAndItsSend) {
  const StepResult r = simulate_step(two_stages());
  // Stage 1: its one bucket, fp32 gradients (4 bytes a parameter).
  const std::vector<Timed> rs1 = tasks(r, 1, TaskKind::dp_comm);
  ASSERT_EQ(rs1.size(), 1u);
  EXPECT_DOUBLE_EQ(rs1[0].bytes, 4 * 335556608.0);
  // Its last compute-stream task is the send of its last backward's input gradient to
  // stage 0 (non-interleaved 1F1B sends on the compute stream): the bucket leaves when
  // that send ends, not when the head's backward ends (before layer 1's).
  const double backward1 = last_end(tasks(r, 1, TaskKind::backward));
  const double send1 = last_end(tasks(r, 1, TaskKind::pp_comm));
  ASSERT_GT(send1, backward1);
  EXPECT_DOUBLE_EQ(rs1[0].start, send1);
  // Stage 0 reduces bucket by bucket: layer 0's first bucket leaves while the embedding's
  // backward still runs, before its last backward ends.
  const std::vector<Timed> rs0 = tasks(r, 0, TaskKind::dp_comm);
  ASSERT_EQ(rs0.size(), 2u);
  EXPECT_DOUBLE_EQ(rs0[0].bytes, 4 * 134217728.0);
  EXPECT_DOUBLE_EQ(rs0[1].bytes, 4 * 201334784.0);
  EXPECT_LT(rs0[0].start, last_end(tasks(r, 0, TaskKind::backward)));
}

// pp 2 with 2 chunks a rank, 4 layers: virtual stage s = chunk x 2 + rank holds layer s;
// the embedding sits on rank 0's chunk 0, the head on rank 1's chunk 1. 4 micro-batches
// in groups of pp = 2 (Megatron-Core's schedule table): backward block k of every rank is
// micro-batch 0 1 0 1 2 3 2 3 through chunk 1 1 0 0 1 1 0 0, so chunk 1's last backward is
// block 5 and chunk 0's block 7.
Scenario interleaved() {
  return two_ranks(4, ", virtual_pipeline_stages: 2", " overlap_p2p: true,", "interleaved.yaml");
}

// Rank `rank`'s backward blocks in issue order, as (micro-batch, end): runs of backward
// tasks of one micro-batch (no two blocks in a row share one here).
std::vector<std::pair<int, double>> backward_blocks(const StepResult& r, int rank) {
  std::vector<std::pair<int, double>> out;
  for (std::size_t i = 0; i < r.graph.tasks.size(); ++i) {
    const Task& t = r.graph.tasks[i];
    if (t.rank != rank || t.kind != TaskKind::backward) continue;
    const double end = r.timeline.timing[i].end->value();
    if (out.empty() || out.back().first != t.microbatch.value_or(-1)) {
      out.emplace_back(t.microbatch.value_or(-1), end);
    } else {
      out.back().second = std::max(out.back().second, end);
    }
  }
  return out;
}

TEST(AlignedGradReduce, InterleavedRanksLaunchAChunkRankBlocksAfterItsLastBackward) {
  const StepResult r = simulate_step(interleaved());
  for (int rank = 0; rank < 2; ++rank) {
    const std::vector<std::pair<int, double>> blocks = backward_blocks(r, rank);
    ASSERT_EQ(blocks.size(), 8u);
    const int order[8] = {0, 1, 0, 1, 2, 3, 2, 3};
    for (std::size_t k = 0; k < 8; ++k) EXPECT_EQ(blocks[k].first, order[k]) << rank << " " << k;
  }
  // fp32 gradients, 4 bytes a parameter. Buckets never span two chunks, and Megatron-Core
  // buckets only rank 0's chunk 0 (chunk_bucket_params): every other chunk is one bucket.
  // A layer is 201,334,784 parameters, its fc2 and fc1 134,217,728 and the rest 67,117,056.
  const double mlp = 4 * 134217728.0;
  // Rank 0: chunk 1 (layer 2, one bucket) after block 5 + 0; chunk 0 (layer 0's fc2 and
  // fc1, then the rest of layer 0 with the embedding: 67,117,056 + 134,217,728) after block
  // 7, its last, once the data-parallel stream is free.
  const std::vector<std::pair<int, double>> b0 = backward_blocks(r, 0);
  const std::vector<Timed> rs0 = tasks(r, 0, TaskKind::dp_comm);
  ASSERT_EQ(rs0.size(), 3u);
  EXPECT_DOUBLE_EQ(rs0[0].bytes, 4 * 201334784.0);
  EXPECT_DOUBLE_EQ(rs0[1].bytes, mlp);
  EXPECT_DOUBLE_EQ(rs0[2].bytes, 4 * 201334784.0);
  EXPECT_DOUBLE_EQ(rs0[0].start, b0[5].second);
  EXPECT_DOUBLE_EQ(rs0[1].start, std::max(b0[7].second, rs0[0].end));
  EXPECT_DOUBLE_EQ(rs0[2].start, rs0[1].end);
  // Rank 1, one bucket a chunk: chunk 1 (the output layer 134,217,728, the final norm with
  // layer 3's fc2 and fc1 134,221,824, the rest of layer 3 67,117,056) after block 5 + 1;
  // chunk 0 (layer 1) at 7 + 1, past its last block: after its last compute task, the last
  // block itself (its sends run on the pipeline stream with overlap_p2p).
  const std::vector<std::pair<int, double>> b1 = backward_blocks(r, 1);
  const std::vector<Timed> rs1 = tasks(r, 1, TaskKind::dp_comm);
  ASSERT_EQ(rs1.size(), 2u);
  EXPECT_DOUBLE_EQ(rs1[0].bytes, 4 * 335556608.0);
  EXPECT_DOUBLE_EQ(rs1[1].bytes, 4 * 201334784.0);
  EXPECT_DOUBLE_EQ(rs1[0].start, b1[6].second);
  EXPECT_DOUBLE_EQ(rs1[1].start, std::max(b1[7].second, rs1[0].end));
}

}  // namespace
}  // namespace orrery
