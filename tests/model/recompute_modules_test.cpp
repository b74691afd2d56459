// training.recompute_modules: the bytes each module drops and the forward work it
// re-runs in the backward, against hand sums of the op table in docs/model.md.
#include <gtest/gtest.h>

#include <string>

#include "model/layer_pass.h"
#include "model/workload.h"
#include "scenario/load.h"
#include "tests/test_util.h"

namespace orrery {
namespace {

// The 22B model of Korthikanti et al. 2022 (a = 64, h = 6144, s = 2048), fp16, dropout,
// unfused attention, tensor-parallel 8 without sequence parallelism: with core_attn alone
// a layer keeps sbh(10 + 24/t) (Table 2, selective).
constexpr double s = 2048, h = 6144, t = 8;

Workload korthikanti(int tp = 8, bool sp = false) {
  const Scenario sc = testing::preset_scenario("megatron-22b", "tp: 8, global_batch: 8", 1,
                                               "precision: fp16, flash_attention: false");
  Shard shard;
  shard.tp = tp;
  shard.sequence_parallel = sp;
  return build_workload(sc.model, sc.training, shard);
}

TEST(RecomputeModules, DefaultListIsSelective) {
  const Layer l = korthikanti().layers.at(1);
  EXPECT_DOUBLE_EQ(l.saved(Recompute::selective, kRecomputeCoreAttn).value(),
                   s * h * (10 + 24 / t));
  EXPECT_DOUBLE_EQ(l.saved(Recompute::selective).value(), s * h * (10 + 24 / t));
}

TEST(RecomputeModules, LayernormDropsTheNormOutputs) {
  // The QKV GEMM's and fc1's inputs, 2sbh each (not split without SP), go:
  // sbh(10 + 24/t) - 4sbh = sbh(6 + 24/t). The norms have no FLOPs, so hardware FLOPs
  // stay those of core attention: Q K^T and P V, 2 * 2 b s^2 h / t.
  const Layer l = korthikanti().layers.at(1);
  const unsigned m = kRecomputeCoreAttn | kRecomputeLayernorm;
  EXPECT_DOUBLE_EQ(l.saved(Recompute::selective, m).value(), s * h * (6 + 24 / t));
  EXPECT_DOUBLE_EQ(l.recompute_flops(Recompute::selective, m).value(), 4 * s * s * h / t);
  // Without core_attn the s^2 tensors stay: 5as^2b/t more (a = 64), and nothing but the
  // norms runs again.
  EXPECT_DOUBLE_EQ(l.saved(Recompute::selective, kRecomputeLayernorm).value(),
                   s * h * (6 + 24 / t) + 5 * 64 * s * s / t);
  EXPECT_DOUBLE_EQ(l.recompute_flops(Recompute::selective, kRecomputeLayernorm).value(), 0.0);
}

TEST(RecomputeModules, MlpKeepsOnlyItsInput) {
  // GeLU's input (4h/t wide, 2 bytes: 8sbh/t) and fc2's input (8sbh/t) go:
  // sbh(10 + 24/t) - 16 sbh/t = sbh(10 + 8/t). fc1 and fc2 run again:
  // 2 * (2 s b h 4h / t) = 16 s h^2 / t FLOPs, plus core attention's 4 s^2 h / t.
  const Layer l = korthikanti().layers.at(1);
  const unsigned m = kRecomputeCoreAttn | kRecomputeMlp;
  EXPECT_DOUBLE_EQ(l.saved(Recompute::selective, m).value(), s * h * (10 + 8 / t));
  EXPECT_DOUBLE_EQ(l.recompute_flops(Recompute::selective, m).value(),
                   16 * s * h * h / t + 4 * s * s * h / t);
}

TEST(RecomputeModules, MlpBackwardReRunsItsKernelsAndCollectives) {
  // Under sequence parallelism the MLP's forward all-gather (before fc1) and
  // reduce-scatter (after fc2) run again in the backward, each moving the full
  // activation b s h * 2 bytes; without the module, the backward has only its own.
  const Scenario sc =
      testing::preset_scenario("megatron-22b", "tp: 8, sequence_parallel: true, global_batch: 8", 1,
                               "precision: fp16, flash_attention: false, recompute: selective, "
                               "recompute_modules: [core_attn, mlp]");
  Scenario plain = sc;
  plain.training.recompute_modules = kRecomputeCoreAttn;
  const Workload w = korthikanti(8, true);
  const Layer& l = w.layers.at(1);
  auto count = [&](const Scenario& x, CollectiveOp c, int& reruns) {
    const auto steps = layer_pass(l, LayerPass::backward, x, message_sizes(x));
    int n = 0;
    reruns = 0;
    for (const PassStep& st : steps) {
      if (st.kind == PassStep::Kind::collective && st.collective == c &&
          st.group == CommGroup::tp) {
        EXPECT_DOUBLE_EQ(st.bytes, s * h * 2);
        ++n;
      }
      if (st.kind == PassStep::Kind::kernels && st.selective) ++reruns;
    }
    return n;
  };
  int with = 0, without = 0;
  // Backward alone: the SP re-gathers of qkv's and fc1's inputs and the gathers of the
  // row-parallel outputs' gradients (proj, fc2): 4 all-gathers; the module adds fc1's.
  EXPECT_EQ(count(plain, CollectiveOp::all_gather, without), 4);
  EXPECT_EQ(count(sc, CollectiveOp::all_gather, with), 5);
  // Reduce-scatters: the column-parallel inputs' gradients (qkv, fc1); the module adds
  // fc2's forward one.
  EXPECT_EQ(count(plain, CollectiveOp::reduce_scatter, without), 2);
  EXPECT_EQ(count(sc, CollectiveOp::reduce_scatter, with), 3);
  // Kernel runs carrying a recomputed forward: scores, softmax, dropout, context, then
  // fc1, act, fc2.
  EXPECT_EQ(without, 4);
  EXPECT_EQ(with, 7);
}

// One DeepSeek-V3 MoE layer, bf16, tp 1, ep 8, one sequence of 4096 (b s = 4096 tokens):
// MLA with 128 heads, q rank 1536, kv rank 512, head dims 128 + 64, v 128; 256 experts
// of width 2048, top-8, one shared.
Layer deepseek_moe_layer() {
  const Scenario sc = testing::preset_scenario("deepseek-v3", "ep: 8, dp: 8, global_batch: 8");
  Shard shard;
  shard.ep = 8;
  return build_workload(sc.model, sc.training, shard).layers.at(4);
}

constexpr double tok = 4096, a = 128;

TEST(RecomputeModules, MlaUpProjDropsQueriesKeysAndValues) {
  // Q and K are a * (128 + 64) wide, V a * 128, 2 bytes: 2 * 4096 * 128 * 512 bytes.
  // q_up (1536 -> a*192) and kv_up (512 -> a*(128+128)) run again: 2 tok k n each.
  const Layer l = deepseek_moe_layer();
  ASSERT_TRUE(l.moe);
  const unsigned base = kRecomputeCoreAttn;
  const double dropped = l.saved(Recompute::selective, base).value() -
                         l.saved(Recompute::selective, base | kRecomputeMlaUpProj).value();
  EXPECT_DOUBLE_EQ(dropped, 2 * tok * a * (192 + 192 + 128));
  const double again = l.recompute_flops(Recompute::selective, base | kRecomputeMlaUpProj).value() -
                       l.recompute_flops(Recompute::selective, base).value();
  EXPECT_DOUBLE_EQ(again, 2 * tok * 1536 * a * 192 + 2 * tok * 512 * a * 256);
}

TEST(RecomputeModules, MoeActDropsTheExpertsFc2Input) {
  // fc2's input: tok * top_k routed slots of width 2048, 2 bytes.
  const Layer l = deepseek_moe_layer();
  const unsigned base = kRecomputeCoreAttn;
  const double dropped = l.saved(Recompute::selective, base).value() -
                         l.saved(Recompute::selective, base | kRecomputeMoeAct).value();
  EXPECT_DOUBLE_EQ(dropped, 2 * tok * 8 * 2048);
  // The activation has no FLOPs; the hardware FLOPs do not move.
  EXPECT_DOUBLE_EQ(l.recompute_flops(Recompute::selective, base | kRecomputeMoeAct).value(),
                   l.recompute_flops(Recompute::selective, base).value());
}

TEST(RecomputeModules, MoeKeepsOnlyTheRoutersInput) {
  // Checkpointing the whole MoE block leaves of it the router's input, tok * h * 2 bytes
  // (h = 7168). The combine keeps nothing: the routing weights multiply the activation
  // output, which keeps an fp32 weight per routed slot (4 * tok * 8 bytes).
  const Layer l = deepseek_moe_layer();
  double block = 0, router_input = 0;
  bool in_block = false;
  for (const Op& op : l.ops) {
    if (op.name == "moe.router") in_block = true;
    if (op.name == "mlp.residual") in_block = false;
    if (!in_block) continue;
    block += op.saved.value() + op.saved_selective.value();
    if (op.name == "moe.router") router_input = op.saved.value();
    if (op.name == "moe.combine") {
      EXPECT_DOUBLE_EQ(op.saved.value(), 0.0);
    }
    if (op.name == "moe.experts.act") {
      EXPECT_DOUBLE_EQ(op.saved.value(), 2 * tok * 8 * 2 * 2048 + 4 * tok * 8);
    }
  }
  EXPECT_DOUBLE_EQ(router_input, 2 * tok * 7168);
  const unsigned base = kRecomputeCoreAttn;
  const double dropped = l.saved(Recompute::selective, base).value() -
                         l.saved(Recompute::selective, base | kRecomputeMoe).value();
  EXPECT_DOUBLE_EQ(dropped, block - router_input);
}

}  // namespace
}  // namespace orrery
