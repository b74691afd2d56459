// parallelism.rank_order: the GPU numbering of Megatron-Core's default order and of
// --use-tp-pp-dp-mapping, its groups and the bytes that cross the NICs, derived by hand.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/error.h"
#include "model/memory.h"
#include "scenario/load.h"
#include "simulator/groups.h"
#include "simulator/step.h"

namespace orrery {
namespace {

// parallelism.rank_order: 16 GPUs in two DGX H100 nodes, tp 4, pp 2, dp 2.
Scenario ranked(const char* order) {
  return load_scenario_text(fmt::format(R"(
cluster: {{preset: dgx-h100, nodes: 2}}
model: {{family: decoder, layers: 4, hidden: 4096, heads: 32, ffn: 16384, vocab: 32768,
        seq_len: 2048, activation: gelu, norm: layernorm, position_embedding: rope,
        tied_embeddings: false, bias: false, dropout: false}}
parallelism: {{tp: 4, pp: 2, dp: 2, microbatch: 1, global_batch: 4, zero_stage: 0,
              rank_order: {}}}
training: {{precision: bf16, recompute: none, gradient_dtype: bf16}}
)",
                                        order),
                            "ranked.yaml");
}

TEST(RankOrder, TheNumberingPutsAReplicaOrAStageOnANode) {
  // Megatron-Core's default, tp-cp-dp-pp: g = t + 4 (d + 2 p), so GPUs 0-7 hold stage 0 of
  // both replicas: the data-parallel pair of GPU 0 is {0, 4}, its pipeline pair {0, 8}.
  // tp-cp-pp-dp (--use-tp-pp-dp-mapping): g = t + 4 (p + 2 d), so GPUs 0-7 hold replica 0:
  // the data-parallel pair {0, 8}, the pipeline pair {0, 4}.
  Layout L{4, 1, 2, 2};
  EXPECT_EQ(groups_of(GroupKind::dp, 0, L, 1).group, (std::vector<int>{0, 4}));
  EXPECT_EQ(pipeline_pair(0, 1, L).group, (std::vector<int>{0, 8}));
  L.pp_inner = true;
  EXPECT_EQ(groups_of(GroupKind::dp, 0, L, 1).group, (std::vector<int>{0, 8}));
  EXPECT_EQ(pipeline_pair(0, 1, L).group, (std::vector<int>{0, 4}));
  for (int g = 0; g < 16; ++g) {
    const Layout::Coords c = L.coords(g);
    EXPECT_EQ(L.gpu(c.t, c.c, c.d, c.p), g);
  }
  // 13 = 1 + 4 x (1 + 2 x 1): tensor index 1, stage 1 of replica 1.
  EXPECT_EQ(L.coords(13).t, 1);
  EXPECT_EQ(L.coords(13).p, 1);
  EXPECT_EQ(L.coords(13).d, 1);
  EXPECT_EQ(L.coords(5).p, 1);
  EXPECT_EQ(L.coords(5).d, 0);
}

TEST(RankOrder, OnlyTheDataParallelReductionCrossesTheNodesWhenAReplicaFillsOne) {
  // With tp-cp-pp-dp each node holds one replica: the pipeline sends stay on NVLink and
  // the NICs carry the gradients' all-reduce alone. zero_stage 0, bf16 gradients: each of
  // the 8 data-parallel pairs (GPU g and g + 8) all-reduces its S = params x 2 bytes in a
  // 2-rank ring, S each way over the NICs, 2 S a pair: 2 x 2 x 4 x (stage-0 params +
  // stage-1 params) per step (4 GPUs a stage).
  const Scenario s = ranked("tp-cp-pp-dp");
  const auto mem = estimate_memory(s);
  const double per_stage = mem.stages.at(0).params + mem.stages.at(1).params;
  const StepResult r = simulate_step(s);
  EXPECT_NEAR(r.bytes_by_link_class.at(LinkClass::nic), 2 * 2 * 4 * per_stage, 1e-9 * per_stage);
  // The default order puts the pipeline across the nodes instead: its NICs carry the
  // activations (1/tp a GPU, forward and back, 2 micro-batches), 2048 x 4096 x 2 bytes
  // / 4 per GPU, 4 GPUs, 2 directions, 2 micro-batches, 2 replicas.
  const StepResult d = simulate_step(ranked("tp-cp-dp-pp"));
  EXPECT_NEAR(d.bytes_by_link_class.at(LinkClass::nic), 2048.0 * 4096 * 2 / 4 * 4 * 2 * 2 * 2,
              1.0);
}

TEST(RankOrder, IsRefusedWhereTheGroupsKeepTheirOwnNumbering) {
  const std::string moe = R"(
cluster: {preset: dgx-h100, nodes: 2}
model: {preset: mixtral-8x7b}
parallelism: {tp: 2, pp: 2, dp: 4, ep: 4, microbatch: 1, global_batch: 8, rank_order: tp-cp-pp-dp}
)";
  EXPECT_THROW(load_scenario_text(moe, "moe.yaml"), InputError);
}

}  // namespace
}  // namespace orrery
