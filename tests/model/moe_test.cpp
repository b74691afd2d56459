// MoE routing, exchange and expert batches: the expected destinations of a token
// (model/moe_routing.h), the capacity factor's dropped rows, and the grouped expert GEMM on
// the efficiency ramp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "calibrate/compute_model.h"
#include "model/layer_pass.h"
#include "model/moe_routing.h"
#include "model/workload.h"
#include "scenario/load.h"

namespace orrery {
namespace {

MoeSpec deepseek_v3() {
  // DeepSeek-V3 config.json: 256 routed experts, 8 per token.
  MoeSpec m;
  m.experts = 256;
  m.top_k = 8;
  m.expert_ffn = 2048;
  return m;
}

// EP 64 over 8 nodes of 8 GPUs, ranks in node order.
std::vector<int> eight_nodes() {
  std::vector<int> node_of(64);
  for (int r = 0; r < 64; ++r) node_of[static_cast<size_t>(r)] = r / 8;
  return node_of;
}

TEST(MoeRouting, DistinctNodesWithoutLimit) {
  // A node holds 32 of the 256 experts; a token misses it when all 8 picks fall among
  // the other 224: C(224, 8) / C(256, 8) = prod_{i<8} (224 - i) / (256 - i) = 0.338168.
  // Expected nodes 8 * (1 - 0.338168) = 5.2947.
  const ExpertRouting r = expert_routing(deepseek_v3(), eight_nodes());
  EXPECT_NEAR(r.distinct_nodes(), 5.2947, 1e-4);
  // A rank holds 4 experts: 64 * (1 - C(252, 8) / C(256, 8)).
  double miss = 1;
  for (int i = 0; i < 8; ++i) miss *= (252.0 - i) / (256.0 - i);
  EXPECT_NEAR(r.distinct_ranks(), 64 * (1 - miss), 1e-9);
}

TEST(MoeRouting, NodeLimitOfFourAsDeepSeekV3) {
  // M = 4 (report section 2.1.2): a token's 4 nodes are chosen first (1/2 chance for a
  // given node), then 8 experts among their 128. A node is missed when it is not chosen
  // (1/2) or chosen and all 8 picks fall among the other 96: 1/2 + 1/2 * prod_{i<8}
  // (96 - i)/(128 - i) = 1/2 + 1/2 * 0.0927473 = 0.546374. Expected nodes 8 * 0.453626 =
  // 3.6290, under the limit of 4.
  MoeSpec m = deepseek_v3();
  m.node_limit = 4;
  const ExpertRouting r = expert_routing(m, eight_nodes());
  EXPECT_NEAR(r.distinct_nodes(), 3.6290, 1e-4);
  for (double share : r.node_share) EXPECT_NEAR(share, 0.453626, 1e-6);
  // Megatron-Core's group-limited routing with one group per node (config.json n_group 8,
  // topk_group 4) is the same rule.
  MoeSpec g = deepseek_v3();
  g.router_groups = 8;
  g.router_group_topk = 4;
  EXPECT_NEAR(expert_routing(g, eight_nodes()).distinct_nodes(), r.distinct_nodes(), 1e-12);
}

TEST(MoeRouting, GroupsSmallerThanNodes) {
  // 16 groups of 16 experts (two per node), 8 of them chosen: a node is missed when none
  // of its 2 groups is chosen, C(14, 8) / C(16, 8) = 3003 / 12870, or j = 1 or 2 of them
  // are (C(2,j) C(14, 8-j) / C(16, 8) = 2 * 3432 / 12870 and 3003 / 12870) and the 8 picks
  // among the 128 candidates avoid its 16 j experts.
  MoeSpec m = deepseek_v3();
  m.router_groups = 16;
  m.router_group_topk = 8;
  double miss1 = 1, miss2 = 1;
  for (int i = 0; i < 8; ++i) {
    miss1 *= (112.0 - i) / (128.0 - i);
    miss2 *= (96.0 - i) / (128.0 - i);
  }
  const double miss = (3003.0 + 2 * 3432.0 * miss1 + 3003.0 * miss2) / 12870.0;
  const ExpertRouting r = expert_routing(m, eight_nodes());
  EXPECT_NEAR(r.node_share.at(3), 1 - miss, 1e-12);
}

TEST(MoeLoad, CapacityDropsTheRowsOverIt) {
  // Loads spread evenly on [2 - L, L] = [0.5, 1.5] around the mean; with cf = 1.2 the
  // rows over it are dropped: E[max(0, x - 1.2)] = (1.5 - 1.2)^2 / (2 * 1.0) = 0.045.
  MoeSpec m = deepseek_v3();
  m.load_imbalance = 1.5;
  m.capacity_factor = 1.2;
  MoeLoad l = moe_load(m);
  EXPECT_NEAR(l.dropped, 0.045, 1e-12);
  EXPECT_NEAR(l.executed, 0.955, 1e-12);
  EXPECT_NEAR(l.busiest, 1.2, 1e-12);
  // Padded to capacity: every expert runs 1.2 times the mean rows, the busiest too.
  m.pad_to_capacity = true;
  l = moe_load(m);
  EXPECT_NEAR(l.executed, 1.2, 1e-12);
  EXPECT_NEAR(l.busiest, 1.2, 1e-12);
  // Uniform load under a capacity below it: 1 - cf of the rows dropped.
  m.load_imbalance = 1.0;
  m.capacity_factor = 0.8;
  m.pad_to_capacity = false;
  EXPECT_NEAR(moe_load(m).dropped, 0.2, 1e-12);
}

// Where the host waits for the expert counts (model/moe_routing.h), case by case as
// Megatron-Core's dispatchers decide it (token_dispatcher.py at d98e8a64): padded to
// capacity the counts are the host's own (no wait, either dispatcher); dropless, the
// all-to-all dispatcher waits at "before_ep_alltoall" after issuing the permutation
// (hidden behind it), the flex dispatcher inside its dispatch (exposed); a capacity factor
// without padding makes the all-to-all dispatcher wait "before_permutation_1" (exposed).
TEST(MoeHostSync, FollowsTheDispatcherAndThePadding) {
  using A = ParallelismSpec::Alltoall;
  MoeSpec m = deepseek_v3();
  EXPECT_EQ(moe_host_sync(m, A::direct), MoeHostSync::hidden);
  EXPECT_EQ(moe_host_sync(m, A::automatic), MoeHostSync::hidden);
  EXPECT_EQ(moe_host_sync(m, A::hierarchical), MoeHostSync::exposed);
  m.capacity_factor = 1.0;
  EXPECT_EQ(moe_host_sync(m, A::direct), MoeHostSync::exposed);
  EXPECT_EQ(moe_host_sync(m, A::hierarchical), MoeHostSync::exposed);
  m.pad_to_capacity = true;
  EXPECT_EQ(moe_host_sync(m, A::direct), MoeHostSync::none);
  EXPECT_EQ(moe_host_sync(m, A::hierarchical), MoeHostSync::none);
}

TEST(MoeWire, Fp8CarriesItsScales) {
  // DeepSeek-V3's h = 7168: 7168 fp8 bytes and 7168 / 128 = 56 fp32 scales.
  EXPECT_DOUBLE_EQ(wire_bytes(MoeSpec::Wire::fp8, 7168), 7168 + 56 * 4);
  EXPECT_DOUBLE_EQ(wire_bytes(MoeSpec::Wire::bf16, 7168), 2 * 7168);
}

TEST(GroupedGemm, EachExpertOnTheRampAtItsSize) {
  // H100 SXM preset (scenario/presets/gpus.yaml): bf16 plateau 989.4 TFLOP/s x 0.698, ramp
  // point 12.4 us -> 0.732. Eight experts of F/8 FLOPs each lasting 12.4 us ideal take 8 *
  // 12.4 us / 0.732 = 135.5 us; one GEMM of F (99.2 us ideal) would sit near 0.880.
  const Scenario s = load_scenario_text(
      "cluster: {preset: dgx-h100}\nmodel: llama3-8b\nparallelism: {global_batch: 8}\n", "g.yaml");
  const auto model = make_roofline_model(s);
  const double rate = 989.4e12 * 0.698;
  Op op;
  op.kind = OpKind::gemm;
  op.fwd_flops = Flop(8 * 12.4e-6 * rate);
  op.gemm_groups = 8;
  EXPECT_NEAR(model->op_time(op, Pass::forward).value(), 8 * 12.4e-6 / 0.732, 1e-9);
  op.gemm_groups = 1;
  EXPECT_LT(model->op_time(op, Pass::forward).value(), 8 * 12.4e-6 / 0.85);
}

// The name of a kernel step's op, or "a2a" / "a2a overlapped" for an ep collective.
std::vector<std::string> pass_names(const std::vector<PassStep>& steps) {
  std::vector<std::string> out;
  for (const PassStep& st : steps) {
    if (st.kind == PassStep::Kind::collective) {
      if (st.group == CommGroup::ep) out.push_back(st.overlapped ? "a2a overlapped" : "a2a");
      continue;
    }
    out.push_back(st.op->name + (st.separate ? " (waits)" : ""));
  }
  return out;
}

TEST(SharedExpertOverlap, OrderOfTheLayerPasses) {
  // --moe-shared-expert-overlap: forward, the dispatch leaves after the permutation, the
  // shared expert runs beside it and the routed experts wait for it; backward, the
  // gradients return right after the routed experts and the shared expert's backward
  // runs beside that, the permutation waiting.
  const Scenario s = load_scenario_text(R"(
cluster: {preset: dgx-h100}
model: {preset: mixtral-8x7b, layers: 2, moe: {shared_experts: 1, shared_expert_overlap: true}}
parallelism: {tp: 1, dp: 8, ep: 8, global_batch: 8}
)",
                                        "o.yaml");
  const Workload w = build_workload(s.model, s.training, shard_of(s.parallelism));
  const Layer& layer = w.layers.at(1);
  const MessageSizes sizes = message_sizes(s);
  const std::vector<std::string> fwd = pass_names(layer_pass(layer, LayerPass::forward, s, sizes));
  const std::vector<std::string> want_fwd = {
      // The default stack (megatron-core) rotates queries and keys in one fused kernel each.
      "attn.norm",       "attn.qkv",        "attn.rope_q",     "attn.rope_k",     "attn.core",
      "attn.proj",       "attn.residual",   "mlp.norm",
      "moe.router",      "moe.router_topk", "moe.aux_loss",
      "moe.permute",     "a2a overlapped",  "moe.shared.fc1",
      "moe.shared.act",  "moe.shared.fc2",  "moe.experts.fc1 (waits)",
      "moe.experts.act", "moe.experts.fc2", "a2a",
      "moe.unpermute",   "mlp.residual"};
  EXPECT_EQ(fwd, want_fwd);
  const std::vector<std::string> bwd = pass_names(layer_pass(layer, LayerPass::backward, s, sizes));
  const std::vector<std::string> want_bwd = {"mlp.residual",
                                             "moe.unpermute",
                                             "a2a",
                                             "moe.experts.fc2",
                                             "moe.experts.act",
                                             "moe.experts.fc1",
                                             "a2a overlapped",
                                             "moe.shared.fc2",
                                             "moe.shared.act",
                                             "moe.shared.fc1",
                                             "moe.permute (waits)",
                                             "moe.aux_loss",
                                             "moe.router_topk",
                                             "moe.router",
                                             "mlp.norm",
                                             "attn.residual",
                                             "attn.proj",
                                             "attn.core",
                                             "attn.rope_k",
                                             "attn.rope_q",
                                             "attn.qkv",
                                             "attn.norm"};
  EXPECT_EQ(bwd, want_bwd);
}

// Expert tensor parallelism 1 under tp 2 (parallelism.expert_tp): Mixtral 8x7B (h 4096,
// expert ffn 14336, 8 experts, top 2), seq 4096, one sequence, sequence parallel, ep 8 on
// 16 GPUs. Each rank routes its own T / tp = 2048 tokens: 4096 rows of whole experts, its
// one local expert (8 / 8), fc1 2 x 4096 x 4096 x 2 x 14336 = 962.07 GFLOP and 4096 x
// 28672 + 14336 x 4096 weights, the same FLOPs as at expert_tp 2 (8192 rows of half
// experts) with the weights of one whole expert; nothing gathered or reduced over tp in the
// routed path; the dispatch sends 4096 rows of 4096 bf16 values, 33,554,432 bytes, half of
// expert_tp 2's 8192 rows.
TEST(ExpertTensorParallel, OneRankRoutesItsOwnSequenceShareToWholeExperts) {
  auto mixtral = [](const std::string& etp, int ep) {
    return load_scenario_text(R"(
cluster: {preset: dgx-h100, nodes: 2}
model: {preset: mixtral-8x7b, layers: 2, seq_len: 4096, moe: {load_imbalance: 1}}
parallelism: {tp: 2, dp: 8, ep: )" + std::to_string(ep) + etp +
                                  R"(, sequence_parallel: true, microbatch: 1, global_batch: 8}
training: {precision: bf16}
)",
                              "m.yaml");
  };
  const Scenario one = mixtral(", expert_tp: 1", 8);
  const Scenario two = mixtral("", 4);
  ASSERT_EQ(one.parallelism.etp(), 1);
  ASSERT_EQ(two.parallelism.etp(), 2);
  auto op = [](const Layer& l, const std::string& name) {
    for (const Op& o : l.ops)
      if (o.name == name) return o;
    ADD_FAILURE() << name;
    return Op{};
  };
  const Layer a = build_workload(one.model, one.training, shard_of(one.parallelism)).layers.at(1);
  const Layer b = build_workload(two.model, two.training, shard_of(two.parallelism)).layers.at(1);
  const double fc1_flops = 2.0 * 4096 * 4096 * 2 * 14336;
  EXPECT_DOUBLE_EQ(op(a, "moe.experts.fc1").fwd_flops.value(), fc1_flops);
  EXPECT_DOUBLE_EQ(op(b, "moe.experts.fc1").fwd_flops.value(), fc1_flops);
  EXPECT_DOUBLE_EQ(op(a, "moe.experts.fc1").params, 4096.0 * 28672);
  EXPECT_DOUBLE_EQ(op(b, "moe.experts.fc1").params, 2 * 4096.0 * 28672 / 2);
  EXPECT_EQ(op(a, "moe.experts.fc1").gemm_groups, 1);
  // The routed path's tensor-parallel collectives: none at expert_tp 1; at expert_tp = tp
  // the tokens are gathered before the router and the output reduce-scattered after.
  EXPECT_EQ(op(a, "moe.router").comm_before, CommPoint::none);
  EXPECT_EQ(op(a, "moe.unpermute").comm_after, CommPoint::none);
  EXPECT_EQ(op(b, "moe.router").comm_before, CommPoint::tp_gather);
  EXPECT_EQ(op(b, "moe.unpermute").comm_after, CommPoint::tp_reduce);
  EXPECT_DOUBLE_EQ(message_sizes(one).ep, 4096.0 * 4096 * 2);
  EXPECT_DOUBLE_EQ(message_sizes(two).ep, 8192.0 * 4096 * 2);
}

TEST(ExpertTensorParallel, RefusedWhereOrreryDoesNotTimeIt) {
  auto load = [](const std::string& par, const std::string& model = "mixtral-8x7b") {
    return load_scenario_text("cluster: {preset: dgx-h100, nodes: 2}\nmodel: {preset: " + model +
                                  "}\nparallelism: {" + par + ", global_batch: 8}\n",
                              "e.yaml");
  };
  // 1 or tp only.
  EXPECT_THROW(load("tp: 4, dp: 4, ep: 4, expert_tp: 2, sequence_parallel: true"), InputError);
  // Below tp it needs sequence parallelism (each rank routes its sequence share).
  EXPECT_THROW(load("tp: 2, dp: 8, ep: 8, expert_tp: 1"), InputError);
  // ep must divide tp x dp x cp = 16.
  EXPECT_THROW(load("tp: 2, dp: 8, ep: 32, expert_tp: 1, sequence_parallel: true"), InputError);
  // Only an MoE model has experts.
  EXPECT_THROW(load("tp: 2, dp: 8, expert_tp: 1, sequence_parallel: true", "llama3-8b"),
               InputError);
  // ep 16 over tp x dp = 16 with whole experts: dp alone (8) could not hold it.
  EXPECT_NO_THROW(load("tp: 2, dp: 8, ep: 8, expert_tp: 1, sequence_parallel: true"));
}

// Megatron-Core's all-to-all dispatcher regroups the received rows by local expert after
// the dispatch and restores rank order before the combine (token_dispatcher.py at
// d98e8a64, dispatch_postprocess / combine_preprocess). Qwen3-30B-A3B's MoE shape at ep 16:
// T = 4096 tokens, k = 8, so every rank receives R = T k = 32,768 rows of h = 2048 on
// 128 / 16 = 8 local experts. The sort reads and writes each row (2 bytes an element) and
// its fp32 routing weight: 32,768 x (2 x 2048 + 4) = 134,348,800 bytes each way; the
// unsort the rows alone, 32,768 x 4096 = 134,217,728 each way; backward the same copies of
// the gradients. On the H100 preset (HBM 3.35 TB/s x 0.87 = 2,914.5 GB/s) the sort takes
// 268,697,600 / 2.9145e12 = 92.19 us.
const char* kQwenMoe = R"(
cluster: {preset: dgx-h100, nodes: 2}
model: {family: decoder, layers: 2, hidden: 2048, heads: 32, head_dim: 128, kv_heads: 4,
        ffn: 6144, vocab: 151936, seq_len: 4096, activation: swiglu, norm: rmsnorm,
        position_embedding: rope, tied_embeddings: false, bias: false, dropout: false,
        moe: {experts: 128, top_k: 8, expert_ffn: 768, load_imbalance: 1}}
parallelism: {tp: 1, dp: 16, ep: 16, ep_alltoall: EXCHANGE, microbatch: 1, global_batch: 16}
training: {precision: bf16, stack: STACK}
)";

Scenario qwen_moe(const std::string& exchange, const std::string& stack, int experts = 128) {
  std::string text = kQwenMoe;
  text.replace(text.find("EXCHANGE"), 8, exchange);
  text.replace(text.find("STACK"), 5, stack);
  text.replace(text.find("experts: 128"), 12, "experts: " + std::to_string(experts));
  return load_scenario_text(text, "q.yaml");
}

const Op* find_op(const Layer& l, const std::string& name) {
  for (const Op& op : l.ops)
    if (op.name == name) return &op;
  return nullptr;
}

TEST(AlltoallDispatcher, SortsTheReceivedRowsByLocalExpert) {
  const Scenario s = qwen_moe("direct", "megatron-core");
  const Workload w = build_workload(s.model, s.training, shard_of(s.parallelism));
  const Layer& layer = w.layers.at(1);
  const Op* sort = find_op(layer, "moe.sort_by_expert");
  const Op* unsort = find_op(layer, "moe.unsort_by_expert");
  ASSERT_NE(sort, nullptr);
  ASSERT_NE(unsort, nullptr);
  EXPECT_DOUBLE_EQ(sort->fwd_read.value(), 134348800.0);
  EXPECT_DOUBLE_EQ(sort->fwd_written.value(), 134348800.0);
  EXPECT_DOUBLE_EQ(sort->bwd_read.value() + sort->bwd_written.value(), 268697600.0);
  EXPECT_DOUBLE_EQ(unsort->fwd_read.value() + unsort->fwd_written.value(), 268435456.0);
  EXPECT_DOUBLE_EQ(unsort->bwd_read.value() + unsort->bwd_written.value(), 268435456.0);
  EXPECT_TRUE(sort->expert && unsort->expert);  // on the received rows: the busiest rank's
  EXPECT_EQ(sort->params + unsort->params, 0.0);
  EXPECT_DOUBLE_EQ(sort->saved.value() + unsort->saved.value(), 0.0);
  const auto model = make_roofline_model(s);
  EXPECT_NEAR(model->op_time(*sort, Pass::forward).value(), 92.19e-6, 0.01e-6);
  // After the dispatch, before the experts; after the experts, before the combine.
  const std::vector<std::string> fwd =
      pass_names(layer_pass(layer, LayerPass::forward, s, message_sizes(s)));
  const std::vector<std::string> want = {
      "moe.permute",     "a2a", "moe.sort_by_expert", "moe.experts.fc1", "moe.experts.act",
      "moe.experts.fc2", "moe.unsort_by_expert",      "a2a",             "moe.unpermute"};
  const auto at = std::find(fwd.begin(), fwd.end(), "moe.permute");
  ASSERT_NE(at, fwd.end());
  EXPECT_EQ(std::vector<std::string>(at, at + static_cast<long>(want.size())), want);
}

TEST(AlltoallDispatcher, NoSortWhereItDoesNotRun) {
  // The flex dispatcher (DeepEP, HybridEP) hands the experts rows already in expert order;
  // one local expert needs no regrouping; DeepSpeed does not run Megatron's dispatcher.
  for (const Scenario& s : {qwen_moe("hierarchical", "megatron-core"),
                            qwen_moe("direct", "megatron-core", 16),
                            qwen_moe("direct", "deepspeed")}) {
    const Workload w = build_workload(s.model, s.training, shard_of(s.parallelism));
    EXPECT_EQ(find_op(w.layers.at(1), "moe.sort_by_expert"), nullptr);
    EXPECT_EQ(find_op(w.layers.at(1), "moe.unsort_by_expert"), nullptr);
  }
  // The nemo preset runs Megatron-Core: sorted.
  const Scenario nemo = qwen_moe("auto", "nemo");
  const Workload w = build_workload(nemo.model, nemo.training, shard_of(nemo.parallelism));
  EXPECT_NE(find_op(w.layers.at(1), "moe.sort_by_expert"), nullptr);
}

// Megatron-Core's HybridEP forward dispatch passes no cached handle (fused_a2a.py
// HybridEPDispatch.forward at NVIDIA/Megatron-LM d98e8a64), so HybridEP runs its metadata
// preprocessing each time: an NCCL all-gather of the bool routing map over the EP group
// (csrc/hybrid_ep/executor/executor.cu allgather_routing_map at deepseek-ai/DeepEP
// 94a9f8f6). Qwen3-30B-A3B at ep 16, micro-batch 1, seq 4096: the gathered map is
// 16 ranks x 4096 tokens x 128 experts x 1 byte = 8,388,608 bytes, before the forward
// dispatch only (the combine and both backward exchanges reuse the handle). DeepEP's
// table and the all-to-all dispatcher gather nothing.
std::vector<std::pair<CollectiveOp, double>> ep_collectives(const Scenario& s, LayerPass pass) {
  const Workload w = build_workload(s.model, s.training, shard_of(s.parallelism));
  std::vector<std::pair<CollectiveOp, double>> out;
  for (const PassStep& st : layer_pass(w.layers.at(1), pass, s, message_sizes(s)))
    if (st.kind == PassStep::Kind::collective && st.group == CommGroup::ep)
      out.emplace_back(st.collective, st.bytes);
  return out;
}

TEST(HybridEpPreprocessing, RoutingMapGatheredBeforeEachForwardDispatch) {
  const Scenario s = qwen_moe("hierarchical, ep_backend: hybridep", "megatron-core");
  EXPECT_DOUBLE_EQ(message_sizes(s).ep_routing_map, 8388608.0);
  const auto fwd = ep_collectives(s, LayerPass::forward);
  ASSERT_EQ(fwd.size(), 3u);
  EXPECT_EQ(fwd[0].first, CollectiveOp::all_gather);
  EXPECT_DOUBLE_EQ(fwd[0].second, 8388608.0);
  EXPECT_EQ(fwd[1].first, CollectiveOp::all_to_all);  // the dispatch
  EXPECT_EQ(fwd[2].first, CollectiveOp::all_to_all);  // the combine
  for (const auto& [op, bytes] : ep_collectives(s, LayerPass::backward))
    EXPECT_EQ(op, CollectiveOp::all_to_all);
  for (const Scenario& other : {qwen_moe("hierarchical", "megatron-core"),
                                qwen_moe("direct, ep_backend: hybridep", "megatron-core")}) {
    EXPECT_EQ(message_sizes(other).ep_routing_map, 0.0);
    for (const auto& [op, bytes] : ep_collectives(other, LayerPass::forward))
      EXPECT_EQ(op, CollectiveOp::all_to_all);
  }
}

}  // namespace
}  // namespace orrery
