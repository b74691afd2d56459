// The sweep: candidate counts derived by hand, pruning that never drops a winner, the
// Pareto front, Megatron-LM arguments, and outputs that do not depend on threads or shards.
#include "sweep/sweep.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>

#include "model/training_run.h"
#include "scenario/load.h"
#include "simulator/step.h"
#include "sweep/output.h"

namespace orrery {
namespace {

// 8 A100s in one node, the 1.7B model of Narayanan et al. 2021 Table 1 (24 layers, 24
// heads, ffn 9216), global batch 16.
const std::string kBase = R"(name: small sweep
cluster: {preset: dgx-a100, nodes: 1}
model: {preset: narayanan-1.7b}
parallelism: {tp: 2, pp: 2, microbatch: 1, global_batch: 16}
training: {precision: bf16}
)";

SweepInput load(const std::string& sweep) { return load_sweep_text(kBase + sweep, "t.yaml"); }

std::size_t count(const SweepResult& r, Status s) {
  std::size_t n = 0;
  for (const auto& c : r.candidates) n += c.status == s ? 1 : 0;
  return n;
}

TEST(SplitSweep, ListCountsByHand) {
  // 4 tp x 2 pp x 2 micro-batch x 2 recompute = 32 candidates; tp8 x pp2 = 16 GPUs does
  // not divide the 8 GPUs (dp cannot be derived): 2 x 2 = 4 invalid, 28 valid.
  const SweepInput in = load(
      "sweep: {tp: [1, 2, 4, 8], pp: [1, 2], microbatch: [1, 2], recompute: [none, full]}\n");
  EXPECT_EQ(expand(in).size(), 32u);
  SweepOptions o;
  o.threads = 2;
  const SweepResult r = run_sweep(in, o);
  EXPECT_EQ(r.candidates.size(), 32u);
  EXPECT_EQ(count(r, Status::invalid), 4u);
  EXPECT_EQ(r.valid, 28u);
}

TEST(SplitSweep, AutoCountsByHand) {
  // tp, pp auto: divisors of 8 -> {1,2,4,8} each. vp auto (24 layers): pp1 {1}; pp2
  // {1,2,3,4,6,12} and 13 with the embedding and loss as layers ((24 + 2) / (2*13) = 1
  // per chunk; 24 does not divide by 26); pp4 {1,2,3,6}; pp8 {1,3} (26 divides by
  // neither 4v nor 8v). dp = 8/(tp*pp); microbatch auto: b with b*dp | 16:
  // dp8 2, dp4 3, dp2 4, dp1 5 values; where tp*pp > 8 the micro-batch stays 1.
  //   tp1: 2*1 + 3*7 + 4*4 + 5*2 = 49    tp2: 3 + 4*7 + 5*4 + 1*2 = 53
  //   tp4: 4 + 5*7 + 1*4 + 1*2 = 45      tp8: 5 + 1*7 + 1*4 + 1*2 = 18   total 165.
  // Invalid: tp*pp > 8: 2+4+2+7+4+2 = 21; interleaving with fewer micro-batches (16/(b*dp))
  // than pp or not a multiple of it (groups of pp): tp1pp2 6, tp1pp4 2*3, tp1pp8 3,
  // tp2pp2 6, tp2pp4 2*3, tp4pp2 6 = 33. 165 - 54 = 111 valid.
  const SweepInput in = load("sweep: {tp: auto, pp: auto, vp: auto, microbatch: auto}\n");
  EXPECT_EQ(expand(in).size(), 165u);
  SweepOptions o;
  o.threads = 2;
  const SweepResult r = run_sweep(in, o);
  EXPECT_EQ(r.valid, 111u);
  // The uneven layout's candidate resolves to 1 layer per virtual stage, the first and
  // last holding only the embedding and the loss.
  for (const Assignment& a : expand(in)) {
    if (!a.vp_edges || a.tp != 1) continue;
    EXPECT_EQ(a.pp, 2);
    EXPECT_EQ(a.vp, 13);
    const Scenario s = candidate_scenario(in, a);
    EXPECT_TRUE(s.parallelism.account_for_embedding && s.parallelism.account_for_loss);
    EXPECT_NE(megatron_arguments(s).find("--account-for-embedding-in-pipeline-split "
                                         "--account-for-loss-in-pipeline-split "
                                         "--num-layers-per-virtual-pipeline-stage 1"),
              std::string::npos)
        << megatron_arguments(s);
    break;
  }
}

TEST(SplitSweep, RangesExpand) {
  // {from: 1, to: 8, factor: 2} = 1, 2, 4, 8; {from: 1, to: 3} = 1, 2, 3.
  const SweepInput in = load("sweep: {tp: {from: 1, to: 8, factor: 2}, microbatch: {from: 1, to: 3}}\n");
  EXPECT_EQ(in.spec.tp.values, (std::vector<int>{1, 2, 4, 8}));
  EXPECT_EQ(in.spec.microbatch.values, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(expand(in).size(), 12u);
}

TEST(SplitSweep, PruningNeverDropsACandidateThatCouldRank) {
  // Every pruned candidate, simulated here anyway, is slower than the top-th best; every
  // bound is below the step time it bounds.
  const SweepInput in = load(
      "sweep: {tp: [1, 2, 4, 8], pp: [1, 2, 4], microbatch: [1, 2, 4], recompute: [none, "
      "selective, full], zero_stage: [1, 3], top: 3}\n");
  SweepOptions o;
  o.threads = 2;
  const SweepResult r = run_sweep(in, o);
  ASSERT_GE(r.ranked.size(), 3u);
  EXPECT_GT(r.pruned, 0u) << "the test needs some pruning to mean anything";
  const double third = r.candidates[static_cast<std::size_t>(r.ranked[2])].objective[0];
  for (const auto& c : r.candidates) {
    if (c.status == Status::simulated) {
      EXPECT_LE(c.bound[0], c.objective[0]) << *c.index;
    }
    if (c.status != Status::pruned) continue;
    const double t = simulate_step(candidate_scenario(in, c.a)).step_time.value();
    EXPECT_GT(t, third) << *c.index;
    EXPECT_LE(c.bound[0], t) << *c.index;
  }
}

TEST(SplitSweep, SameBytesWithAnyThreadCountAndShards) {
  const SweepInput in = load(
      "sweep: {tp: [1, 2, 4, 8], pp: [1, 2, 4], microbatch: [1, 2, 4], recompute: [none, "
      "full], top: 2}\n");
  SweepOptions one;
  one.threads = 1;
  const SweepResult r1 = run_sweep(in, one);
  SweepOptions two;
  two.threads = 2;
  const SweepResult r2 = run_sweep(in, two);
  const std::string csv = render_sweep_csv(in, r1);
  EXPECT_EQ(csv, render_sweep_csv(in, r2));
  EXPECT_EQ(render_sweep_json(in, r1), render_sweep_json(in, r2));
  // Three shards, through their files, merged.
  std::vector<SweepResult> shards;
  for (int i = 0; i < 3; ++i) {
    SweepOptions s;
    s.shard = i;
    s.shards = 3;
    const std::string file = write_shard(in, run_sweep(in, s), i, 3);
    shards.push_back(read_shard(in, file, "shard" + std::to_string(i)));
  }
  const SweepResult merged = merge_shards(in, shards);
  EXPECT_EQ(render_sweep_csv(in, merged), csv);
  EXPECT_EQ(render_sweep_table(in, merged), render_sweep_table(in, r1));
  // A missing shard is an error, not a quietly smaller result.
  shards.pop_back();
  EXPECT_THROW(merge_shards(in, shards), InputError);
}

TEST(SplitSweep, ParetoFrontOfAHandMadeSet) {
  // (2,2) dominates (3,3); (1,5), (2,2), (5,1) trade off; the repeated (2,2) is not
  // strictly dominated by its twin, so both stay.
  const std::vector<std::vector<double>> pts = {{1, 5}, {2, 2}, {3, 3}, {5, 1}, {2, 2}, {5, 5}};
  EXPECT_EQ(pareto_front(pts), (std::vector<int>{0, 1, 3, 4}));
}

TEST(SplitSweep, MegatronArgumentsOfExpertTensorParallelism) {
  // --expert-tensor-parallel-size only where it is not Megatron-LM's default (tp).
  auto args = [](const std::string& split) {
    return megatron_arguments(load_scenario_text(R"(
cluster: {preset: dgx-h100, nodes: 2}
model: {preset: mixtral-8x7b}
parallelism: {tp: 2, pp: 1, dp: 8, sequence_parallel: true, global_batch: 64, )" + split + R"(}
)",
                                                 "etp.yaml"));
  };
  EXPECT_NE(args("ep: 8, expert_tp: 1").find("--expert-model-parallel-size 8 "
                                             "--expert-tensor-parallel-size 1"),
            std::string::npos);
  EXPECT_EQ(args("ep: 4, expert_tp: 2").find("--expert-tensor-parallel-size"), std::string::npos);
}

TEST(SplitSweep, MegatronArgumentsOfTheRankOrder) {
  // parallelism.rank_order tp-cp-pp-dp is Megatron-Core's --use-tp-pp-dp-mapping
  // (megatron/training/initialize.py line 395 at NVIDIA/Megatron-LM d98e8a64).
  auto args = [](const std::string& order) {
    return megatron_arguments(load_scenario_text(R"(
cluster: {preset: dgx-h100, nodes: 2}
model: {preset: llama3-8b}
parallelism: {tp: 4, pp: 2, dp: 2, global_batch: 8, rank_order: )" + order + R"(}
)",
                                                 "order.yaml"));
  };
  EXPECT_NE(args("tp-cp-pp-dp").find("--pipeline-model-parallel-size 2 --use-tp-pp-dp-mapping"),
            std::string::npos)
      << args("tp-cp-pp-dp");
  EXPECT_EQ(args("tp-cp-dp-pp").find("--use-tp-pp-dp-mapping"), std::string::npos);
}

TEST(SplitSweep, MegatronArgumentsOfTheMoeRouting) {
  // Megatron-Core's names (megatron/core/transformer/moe/README.md at d98e8a64): DeepEP's
  // exchange is the flex dispatcher with the deepep backend.
  const Scenario s = load_scenario_text(R"(
cluster: {preset: dgx-h100, nodes: 2}
model:
  preset: mixtral-8x7b
  moe: {router_groups: 4, router_group_topk: 2, capacity_factor: 1.5, pad_to_capacity: true}
parallelism: {tp: 1, pp: 1, dp: 16, ep: 8, global_batch: 64, ep_alltoall: hierarchical}
)",
                                        "moe.yaml");
  const std::string args = megatron_arguments(s);
  // DeepEP refuses the capacity padding (transformer_config.py), so the line names it as
  // missing; the auxiliary loss (aux_loss, the default) gets a coefficient above 0, which it
  // needs to run (router.py is_aux_loss_enabled). The kernel switches orrery's timing
  // assumes (grouped experts, fused permutation and router) come first, each off by default.
  EXPECT_NE(args.find("--expert-model-parallel-size 8 --moe-grouped-gemm --moe-permute-fusion "
                      "--moe-router-fusion --moe-token-dispatcher-type flex "
                      "--moe-flex-dispatcher-backend deepep --moe-router-num-groups 4 "
                      "--moe-router-group-topk 2 --moe-expert-capacity-factor 1.5 "
                      "--moe-router-load-balancing-type aux_loss --moe-aux-loss-coeff 1e-2 "),
            std::string::npos)
      << args;
  EXPECT_EQ(args.find("--moe-pad-expert-input-to-capacity"), std::string::npos) << args;
  EXPECT_NE(args.find("; no Megatron-LM flag for capacity padding under DeepEP"),
            std::string::npos)
      << args;
  // parallelism.ep_backend hybridep (loaded from the scenario) names HybridEP instead.
  const Scenario h = load_scenario_text(R"(
cluster: {preset: dgx-h100, nodes: 2}
model: mixtral-8x7b
parallelism: {tp: 1, pp: 1, dp: 16, ep: 8, global_batch: 64, ep_alltoall: hierarchical,
              ep_backend: hybridep}
)",
                                        "hybridep.yaml");
  EXPECT_NE(megatron_arguments(h).find(
                "--moe-token-dispatcher-type flex --moe-flex-dispatcher-backend hybridep"),
            std::string::npos)
      << megatron_arguments(h);
}

TEST(SplitSweep, MegatronArgumentsOfThePublishedGpt3Layout) {
  const Scenario s = load_scenario_file(std::string(ORRERY_SOURCE_DIR) +
                                        "/scenarios/gpt3-175b-a100-1024.yaml");
  EXPECT_EQ(megatron_arguments(s),
            "--tensor-model-parallel-size 8 --pipeline-model-parallel-size 8 --micro-batch-size 1 "
            "--global-batch-size 1536 --recompute-granularity full --recompute-method uniform "
            "--recompute-num-layers 1 --overlap-grad-reduce --fp16 "
            "--accumulate-allreduce-grads-in-fp32");
  // Interleaved: 96 layers / (8 stages x 4 chunks) = 3 layers per virtual stage.
  Scenario v = s;
  v.parallelism.virtual_pipeline_stages = 4;
  v.parallelism.zero_stage = 1;
  v.training.recompute = Recompute::selective;
  v.training.precision = Precision::bf16;
  EXPECT_EQ(megatron_arguments(v),
            "--tensor-model-parallel-size 8 --pipeline-model-parallel-size 8 "
            "--num-layers-per-virtual-pipeline-stage 3 --micro-batch-size 1 --global-batch-size "
            "1536 --recompute-granularity selective --use-distributed-optimizer "
            "--overlap-grad-reduce --overlap-param-gather --bf16");
  // Uneven first/last stages with interleaving: Megatron needs the virtual stages per
  // rank (arguments.py refuses --num-layers-per-virtual-pipeline-stage with them).
  Scenario u = v;
  u.parallelism.first_stage_layers = 8;
  u.parallelism.last_stage_layers = 8;
  u.parallelism.virtual_pipeline_stages = 2;
  EXPECT_EQ(megatron_arguments(u),
            "--tensor-model-parallel-size 8 --pipeline-model-parallel-size 8 "
            "--decoder-first-pipeline-num-layers 8 --decoder-last-pipeline-num-layers 8 "
            "--num-virtual-stages-per-pipeline-rank 2 --micro-batch-size 1 --global-batch-size "
            "1536 --recompute-granularity selective --use-distributed-optimizer "
            "--overlap-grad-reduce --overlap-param-gather --bf16");
  // A layout string alone, and a micro-batch group other than pp.
  Scenario l = v;
  l.parallelism.pipeline_layout = "Et*11|(t*12|)*30t*11L";
  l.parallelism.microbatch_group_size = 12;
  EXPECT_EQ(megatron_arguments(l),
            "--tensor-model-parallel-size 8 --pipeline-model-parallel-size 8 "
            "--pipeline-model-parallel-layout \"Et*11|(t*12|)*30t*11L\" "
            "--microbatch-group-size-per-virtual-pipeline-stage 12 --micro-batch-size 1 "
            "--global-batch-size 1536 --recompute-granularity selective "
            "--use-distributed-optimizer --overlap-grad-reduce --overlap-param-gather --bf16");
  // The Llama 3 paper's flexible groups: with as many micro-batches as pp Megatron-Core runs
  // them as they are; with 4 at pp 8 it refuses them, so the line says so.
  l.parallelism.flexible_groups = true;
  EXPECT_EQ(megatron_arguments(l).find("no Megatron-LM flag"), std::string::npos);
  l.parallelism.global_batch = 4 * l.parallelism.microbatch * l.parallelism.dp;
  l.parallelism.microbatch_group_size = 4;
  EXPECT_NE(megatron_arguments(l).find(
                "; no Megatron-LM flag for 4 micro-batches at pp 8 (the Llama 3 paper's flexible "
                "groups; Megatron-Core asks for at least pp)"),
            std::string::npos)
      << megatron_arguments(l);
  // Nor the group flag Megatron-LM would refuse.
  EXPECT_EQ(megatron_arguments(l).find("--microbatch-group-size"), std::string::npos);
}

// Every data-parallel sharding against Megatron-LM's flags (NVIDIA/Megatron-LM d98e8a64,
// megatron/training/arguments.py and docs/user-guide/features/megatron_fsdp.md).
TEST(SplitSweep, MegatronArgumentsPerZeroStage) {
  const Scenario base = load_scenario_text(kBase, "t.yaml");  // tp2 pp2 dp2, tied embeddings
  const std::string split =
      "--tensor-model-parallel-size 2 --pipeline-model-parallel-size 2 --micro-batch-size 1 "
      "--global-batch-size 16";
  auto args = [&](int stage, auto&& edit) {
    Scenario s = base;
    s.parallelism.zero_stage = stage;
    edit(s);
    return megatron_arguments(s);
  };
  auto none = [](Scenario&) {};
  // The overlaps the scenario has on (Megatron-LM's flags default off): gradient reduction,
  // and under the distributed optimizer the parameter gather.
  EXPECT_EQ(args(0, none), split + " --overlap-grad-reduce --bf16");
  // ZeRO-1: the distributed optimizer shards optimizer state only.
  EXPECT_EQ(args(1, none),
            split + " --use-distributed-optimizer --overlap-grad-reduce --overlap-param-gather --bf16");
  // ZeRO-2: gradients sharded too, which only Megatron-FSDP's optim_grads does; never the
  // distributed optimizer's flag (ZeRO-1 memory). Megatron-FSDP overlaps the sharded
  // gradients' reduce-scatters itself; the parameter gather's overlap is its flag, which asks
  // for the other (megatron_fsdp.py lines 327-337, arguments.py lines 1024-1028 at d98e8a64).
  const std::string zero2 = args(2, none);
  EXPECT_EQ(zero2,
            split +
                " --use-megatron-fsdp --data-parallel-sharding-strategy optim_grads "
                "--ckpt-format fsdp_dtensor --overlap-grad-reduce --overlap-param-gather --bf16");
  EXPECT_EQ(zero2.find("--use-distributed-optimizer"), std::string::npos);
  // ZeRO-3: parameters too, by the implementation named. Megatron-FSDP: its own flags.
  using Impl = ParallelismSpec::FsdpImpl;
  auto megatron_fsdp = [](Scenario& s) { s.parallelism.fsdp_impl = Impl::megatron_fsdp; };
  EXPECT_EQ(args(3, megatron_fsdp), split +
                                        " --use-megatron-fsdp --data-parallel-sharding-strategy "
                                        "optim_grads_params --ckpt-format fsdp_dtensor --bf16");
  // DeepSpeed ZeRO-3, which Megatron-LM does not run: Megatron-FSDP, and the line says so.
  EXPECT_EQ(args(3, [](Scenario& s) { s.parallelism.fsdp_impl = Impl::deepspeed; }),
            split +
                " --use-megatron-fsdp --data-parallel-sharding-strategy optim_grads_params "
                "--ckpt-format fsdp_dtensor --bf16; no Megatron-LM flag for DeepSpeed ZeRO-3 "
                "(Megatron-FSDP given instead)");
  // Hybrid sharding on 2 nodes, tp2 pp1 dp8: 4 data-parallel ranks per node shard, 8 / 4 =
  // 2 replicas = HSDP's DP-Outer size.
  EXPECT_NE(args(3,
                 [](Scenario& s) {
                   s.cluster.nodes = 2;
                   s.parallelism.pp = 1;
                   s.parallelism.dp = 8;
                   s.parallelism.sharding = ParallelismSpec::Sharding::hybrid;
                   s.parallelism.fsdp_impl = Impl::megatron_fsdp;
                 })
                .find("optim_grads_params --ckpt-format fsdp_dtensor "
                      "--num-distributed-optimizer-instances 2 "),
            std::string::npos);
  // PyTorch FSDP where Megatron-LM's --use-torch-fsdp2 takes it: pp 1, untied embeddings.
  auto fsdp2 = [](Scenario& s) {
    s.parallelism.fsdp = true;
    s.parallelism.fsdp_impl = Impl::fsdp2;
    s.parallelism.pp = 1;
    s.model.tied_embeddings = false;
  };
  const std::string pp1 =
      "--tensor-model-parallel-size 2 --pipeline-model-parallel-size 1 --micro-batch-size 1 "
      "--global-batch-size 16";
  // arguments.py asserts gradient-accumulation fusion off under FSDP2. Its fully_shard has no
  // mixed-precision policy there, so gradients reduce in bf16, not the scenario's fp32.
  const std::string fp32_reduce =
      "; no Megatron-LM flag for fp32 gradient reduce-scatters under --use-torch-fsdp2 "
      "(Megatron-LM reduces in the parameters' type there)";
  EXPECT_EQ(args(3, fsdp2),
            pp1 + " --no-gradient-accumulation-fusion --use-torch-fsdp2 --bf16" + fp32_reduce);
  EXPECT_EQ(args(3,
                 [&](Scenario& s) {
                   fsdp2(s);
                   s.training.gradient_dtype = Dtype::bf16;
                 }),
            pp1 + " --no-gradient-accumulation-fusion --use-torch-fsdp2 --bf16");
  EXPECT_EQ(args(3,
                 [&](Scenario& s) {
                   fsdp2(s);
                   s.parallelism.reshard_after_forward = false;
                   s.parallelism.reshard_output_after_forward = false;
                 }),
            pp1 + " --no-gradient-accumulation-fusion --use-torch-fsdp2 "
                  "--torch-fsdp2-no-reshard-after-forward --bf16" + fp32_reduce);
  // One switch for all units: an output unit kept gathered while the others reshard
  // (torchtitan's default) has no flag, and the line says so.
  EXPECT_EQ(args(3,
                 [&](Scenario& s) {
                   fsdp2(s);
                   s.parallelism.reshard_output_after_forward = false;
                   s.training.gradient_dtype = Dtype::bf16;
                 }),
            pp1 + " --no-gradient-accumulation-fusion --use-torch-fsdp2 --bf16; no Megatron-LM "
                  "flag for reshard_output_after_forward false beside reshard_after_forward "
                  "true");
  // With pp 2 --use-torch-fsdp2 is refused (arguments.py): Megatron-FSDP, and the line says so.
  const std::string fsdp_pp2 = args(3, [](Scenario& s) { s.parallelism.fsdp = true; });
  EXPECT_EQ(fsdp_pp2.substr(0, fsdp_pp2.find(';')).find("--use-torch-fsdp2"), std::string::npos);
  EXPECT_NE(fsdp_pp2.find("optim_grads_params --ckpt-format fsdp_dtensor --bf16; no Megatron-LM "
                          "flag for PyTorch FSDP"),
            std::string::npos);
  // ZeRO++ hpZ is DeepSpeed's alone.
  EXPECT_NE(args(3,
                 [](Scenario& s) {
                   s.parallelism.zero_hpz = true;
                   s.parallelism.fsdp_impl = Impl::deepspeed;
                 })
                .find("ZeRO++ hpZ (DeepSpeed)"),
            std::string::npos);
}

// Two GPUs, one family each, with hand-made residuals: Ampere cases measured exactly as
// predicted (slow end 1), Hopper cases all 4x slower than predicted (time error -0.75:
// measured = predicted / 0.25).
TEST(SplitSweep, RanksByThePessimisticEndOfTheBand) {
  std::vector<Residual> table;
  for (int i = 0; i < 3; ++i) {
    Residual a;
    a.family = {"Ampere", "Megatron-Core", "3d"};
    a.precision = "bf16";
    a.hfu = 1;  // no utilisation flag
    Residual h = a;
    h.family.generation = "Hopper";
    h.time_error = -0.75;
    table.push_back(a);
    table.push_back(h);
  }
  const std::string sweep = "sweep:\n  system: [dgx-a100, dgx-h100]\n";
  SweepOptions o;
  o.residuals = &table;
  const SweepResult predicted = run_sweep(load(sweep), o);
  const SweepResult pessimistic = run_sweep(load(sweep + "  rank_by: pessimistic\n"), o);
  ASSERT_EQ(predicted.ranked.size(), 2u);
  ASSERT_EQ(pessimistic.ranked.size(), 2u);
  const CandidateResult& a100 = predicted.candidates[0];
  const CandidateResult& h100 = predicted.candidates[1];
  ASSERT_EQ(a100.band->family.generation, "Ampere");
  ASSERT_EQ(h100.band->family.generation, "Hopper");
  EXPECT_DOUBLE_EQ(a100.band->slow(), 1.0);
  EXPECT_DOUBLE_EQ(h100.band->slow(), 4.0);
  // The H100 is predicted faster, but not 4x faster: the order must flip.
  const double ta = a100.figures->step_time.value(), th = h100.figures->step_time.value();
  ASSERT_LT(th, ta);
  ASSERT_GT(4 * th, ta);
  EXPECT_EQ(predicted.ranked, (std::vector<int>{1, 0}));
  EXPECT_EQ(pessimistic.ranked, (std::vector<int>{0, 1}));
  // The objective is the slow end: predicted x 1 / (1 + e_min); the bound scales alike.
  EXPECT_DOUBLE_EQ(pessimistic.candidates[1].objective[0], 4 * th);
  EXPECT_DOUBLE_EQ(pessimistic.candidates[1].bound[0], 4 * h100.bound[0]);
  EXPECT_DOUBLE_EQ(pessimistic.candidates[0].objective[0], ta);
  EXPECT_NE(render_sweep_table(load(sweep + "  rank_by: pessimistic\n"), pessimistic)
                .find("ranked by the slow end of each candidate's band"),
            std::string::npos);
}

// The 1.7B model on one DGX H100 (which has an fp8 peak), fp8 with a recipe.
const std::string kFp8Base = R"(name: fp8 sweep
cluster: {preset: dgx-h100, nodes: 1}
model: {preset: narayanan-1.7b}
parallelism: {tp: 2, pp: 1, microbatch: 1, global_batch: 16}
training: {precision: fp8, fp8: {scaling: current, bf16_layers: {first: 1, last: 2}}}
)";

TEST(SplitSweep, Fp8RecipeAppliesToTheFp8CandidatesOnly) {
  // 2 tp x 2 precisions = 4 candidates, all valid: the bf16 ones drop training.fp8 (which
  // would refuse a bf16 scenario) instead of being counted invalid.
  const SweepInput in =
      load_sweep_text(kFp8Base + "sweep: {tp: [1, 2], precision: [bf16, fp8]}\n", "t.yaml");
  const SweepResult r = run_sweep(in, SweepOptions{});
  EXPECT_EQ(r.candidates.size(), 4u);
  EXPECT_EQ(count(r, Status::invalid), 0u);
  // Each candidate written as a scenario loads: a bf16 one without the section.
  for (const CandidateResult& c : r.candidates) {
    const Scenario s =
        load_scenario_text(rewrite_scenario_yaml(in.yaml, candidate_settings(in, c)), "c.yaml");
    EXPECT_EQ(s.training.precision, c.a.precision);
    EXPECT_EQ(s.training.fp8.has_value(), c.a.precision == Precision::fp8);
  }
}

// What the line must carry for Megatron-LM to run what orrery simulated (checked at
// NVIDIA/Megatron-LM d98e8a64): the attention kernel where --attention-backend auto would
// pick another (cuDNN's on the H100 preset: flash2 is --attention-backend flash, no fused
// kernel --attention-backend unfused); the gradient buffer's type (--fp16 alone keeps fp16
// gradients, --bf16 alone fp32 ones); the optimizer; a divisor that keeps the vocabulary
// unpadded at this tp (Megatron-LM pads to a multiple of 128 x tp); and, named as no flag,
// tf32, FSDP1 (Megatron-LM runs FSDP2), interleaving without the transfer overlap at pp 2
// (asserted pp > 2) and another stack's kernels.
TEST(SplitSweep, MegatronArgumentsCarryWhatMegatronWouldOtherwiseChange) {
  auto args = [](const std::string& parallelism, const std::string& training) {
    return megatron_arguments(load_scenario_text(
        "cluster: {preset: dgx-h100, nodes: 1}\n"
        "model: {family: decoder, layers: 8, hidden: 1024, heads: 8, ffn: 4096, vocab: 50000,\n"
        "        seq_len: 2048, activation: gelu, norm: layernorm, position_embedding: rope,\n"
        "        tied_embeddings: false, bias: false, dropout: false}\n"
        "parallelism: {" + parallelism + "}\n"
        "training: {" + training + "}\n",
        "line.yaml"));
  };
  auto has = [](const std::string& line, const std::string& text) {
    return line.find(text) != std::string::npos;
  };
  const std::string split = "tp: 2, pp: 1, microbatch: 1, global_batch: 8";
  const std::string plain = args(split, "precision: bf16");
  // 50000 = 2^4 x 3125: at tp 2 the divisor 8 keeps it whole (16 | 50000, 32 does not).
  EXPECT_TRUE(has(plain, " --make-vocab-size-divisible-by 8 ")) << plain;
  EXPECT_FALSE(has(plain, "--attention-backend")) << plain;  // cuDNN's, auto's pick
  EXPECT_FALSE(has(plain, "no Megatron-LM flag")) << plain;
  EXPECT_TRUE(has(args(split, "precision: bf16, stack: {attention: flash2}"),
                  " --attention-backend flash"));
  EXPECT_TRUE(has(args(split, "precision: bf16, flash_attention: false"),
                  " --attention-backend unfused"));
  EXPECT_TRUE(has(args(split, "precision: fp16"), " --fp16 --accumulate-allreduce-grads-in-fp32"));
  EXPECT_FALSE(has(args(split, "precision: fp16, gradient_dtype: fp16"), "--accumulate"));
  EXPECT_TRUE(has(args(split, "precision: bf16, gradient_dtype: bf16"), " --grad-reduce-in-bf16"));
  EXPECT_TRUE(has(args(split, "precision: bf16, optimizer: sgd"), " --optimizer sgd"));
  EXPECT_TRUE(has(args(split, "precision: bf16, optimizer: lamb"),
                  "the lamb optimizer (Megatron-LM takes adam or sgd)"));
  EXPECT_TRUE(has(args(split, "precision: tf32"), "no Megatron-LM flag for tf32"));
  const std::string fsdp1 = args(split + ", fsdp: {implementation: fsdp1}", "precision: bf16");
  EXPECT_TRUE(has(fsdp1, " --use-torch-fsdp2")) << fsdp1;
  EXPECT_TRUE(has(fsdp1, "FSDP1's flat parameters (Megatron-LM runs FSDP2)")) << fsdp1;
  const std::string pp2 = args("tp: 1, pp: 2, virtual_pipeline_stages: 2, microbatch: 1, "
                               "global_batch: 16",
                               "precision: bf16, overlap_p2p: false");
  EXPECT_FALSE(has(pp2, "--no-overlap-p2p-communication")) << pp2;
  EXPECT_TRUE(has(pp2, "interleaving without the pipeline-transfer overlap at pp 2")) << pp2;
  EXPECT_TRUE(has(args(split, "precision: bf16, stack: deepspeed"),
                  "the deepspeed training stack's kernels"));
}

TEST(SplitSweep, MegatronArgumentsOfAnFp8Recipe) {
  const Scenario s = load_scenario_text(kFp8Base, "t.yaml");
  EXPECT_EQ(megatron_arguments(s),
            "--tensor-model-parallel-size 2 --pipeline-model-parallel-size 1 --micro-batch-size 1 "
            "--global-batch-size 16 --overlap-grad-reduce --bf16 --fp8-format hybrid --fp8-recipe "
            "tensorwise "
            "--first-last-layers-bf16 --num-layers-at-start-in-bf16 1 --num-layers-at-end-in-bf16 2");
  // Under delayed scaling Megatron-Core refuses the bf16 layers (transformer_config.py at
  // d98e8a64): named as missing, not written as a flag Megatron-LM would reject.
  std::string delayed = kFp8Base;
  delayed.replace(delayed.find("scaling: current"), 16, "scaling: delayed");
  const std::string line = megatron_arguments(load_scenario_text(delayed, "t.yaml"));
  EXPECT_EQ(line.substr(0, line.find(';')).find("--first-last-layers-bf16"), std::string::npos)
      << line;
  EXPECT_NE(line.find("; no Megatron-LM flag for bf16 edge layers under delayed scaling"),
            std::string::npos)
      << line;
}

TEST(SplitSweep, MegatronArgumentsOfMxfp8WeightsKeptInFp8) {
  // MXFP8 weights kept in fp8 are Megatron's --fp8-param-gather with the gradient buffer
  // reused for the bf16 gather; the distributed optimizer is zero_stage 1.
  const Scenario s = load_scenario_text(R"(name: mxfp8
cluster: {preset: dgx-b200, nodes: 1}
model: {preset: narayanan-1.7b}
parallelism: {tp: 2, pp: 1, microbatch: 1, global_batch: 16, zero_stage: 1}
training: {precision: fp8, fp8: {format: e4m3, scaling: mxfp8, weights: fp8}}
)",
                                        "t.yaml");
  EXPECT_EQ(megatron_arguments(s),
            "--tensor-model-parallel-size 2 --pipeline-model-parallel-size 1 --micro-batch-size 1 "
            "--global-batch-size 16 --use-distributed-optimizer --overlap-grad-reduce "
            "--overlap-param-gather --bf16 --fp8-format e4m3 "
            "--fp8-recipe mxfp8 --fp8-param-gather --reuse-grad-buf-for-mxfp8-param-ag");
}

// Combinations Megatron-LM's validate_args or TransformerConfig would refuse are named as
// missing rather than written as flags (NVIDIA/Megatron-LM d98e8a64).
TEST(SplitSweep, MegatronArgumentsMegatronLmAccepts) {
  const Scenario base = load_scenario_text(kBase, "t.yaml");  // tp2 pp2 dp2, 1f1b
  auto has = [](const std::string& line, const std::string& what) {
    return line.find(what) != std::string::npos;
  };
  auto flags = [](const std::string& line) { return line.substr(0, line.find(';')); };
  // Transformer Engine's spelling of the all-gather exchange.
  Scenario cp = base;
  cp.parallelism.cp = 2;
  cp.parallelism.dp = 1;
  cp.parallelism.cp_comm = ParallelismSpec::CpComm::all_gather;
  EXPECT_TRUE(has(megatron_arguments(cp), " --cp-comm-type all_gather")) << megatron_arguments(cp);
  // No schedule flag for DualPipe, ZB-H1 or GPipe.
  Scenario z = base;
  z.parallelism.schedule = PipelineSchedule::zero_bubble_h1;
  EXPECT_TRUE(has(megatron_arguments(z), "no Megatron-LM flag for the zb-h1 schedule"))
      << megatron_arguments(z);
  EXPECT_FALSE(has(megatron_arguments(base), "schedule"));
  // Overlaps as the scenario sets them.
  Scenario o = base;
  o.parallelism.zero_stage = 1;
  o.parallelism.sequence_parallel = true;
  o.training.tp_comm_overlap = true;
  o.training.grad_bucket_params = 134217728.0;
  const std::string ol = megatron_arguments(o);
  EXPECT_TRUE(has(ol, " --overlap-grad-reduce --overlap-param-gather --ddp-bucket-size 134217728 "
                      "--tp-comm-overlap"))
      << ol;
  o.training.overlap_grad_reduce = false;
  EXPECT_FALSE(has(flags(megatron_arguments(o)), "--overlap-")) << megatron_arguments(o);
  // --overlap-param-gather asks for --overlap-grad-reduce, and --tp-comm-overlap for
  // --sequence-parallel: named, not written.
  EXPECT_TRUE(has(megatron_arguments(o), "the parameter gather overlapped without the gradient "
                                         "reduction overlapped"))
      << megatron_arguments(o);
  o.parallelism.sequence_parallel = false;
  EXPECT_FALSE(has(flags(megatron_arguments(o)), "--tp-comm-overlap"));
  EXPECT_TRUE(has(megatron_arguments(o), "tensor-parallel overlap without sequence parallelism"));
  // At most num_layers // pp = 24 / 2 = 12 bf16 edge layers a side.
  Scenario e = load_scenario_text(kFp8Base, "t.yaml");
  e.parallelism.pp = 2;
  e.parallelism.dp = 2;
  e.training.fp8->bf16_first = 13;
  EXPECT_FALSE(has(flags(megatron_arguments(e)), "--first-last-layers-bf16"));
  EXPECT_TRUE(has(megatron_arguments(e), "bf16 edge layers 13 and 2 (Megatron-Core allows at most "
                                         "num_layers // pp = 12 each)"))
      << megatron_arguments(e);
  e.training.fp8->bf16_first = 12;
  EXPECT_TRUE(has(megatron_arguments(e), "--num-layers-at-start-in-bf16 12"));
  // Transformer Engine's cross-entropy fusion is refused with the fusion flag.
  Scenario x = base;
  x.training.cross_entropy_fusion = true;
  x.training.cross_entropy_impl = TrainingSpec::CrossEntropyImpl::te;
  EXPECT_TRUE(has(megatron_arguments(x), "Transformer Engine's fused cross-entropy"));
  // Under --use-torch-fsdp2 no precision-aware optimizer and no fp8 parameter gather.
  Scenario f = load_scenario_text(kFp8Base, "t.yaml");
  f.parallelism.zero_stage = 3;
  f.parallelism.fsdp = true;
  f.parallelism.fsdp_impl = ParallelismSpec::FsdpImpl::fsdp2;
  f.model.tied_embeddings = false;  // --use-torch-fsdp2 asks for untied ones
  f.training.optimizer_state_dtype = StateDtype::bf16;
  f.training.optimizer_offload = OptimizerOffloadSpec{};
  f.training.fp8->param_allgather_fp8 = true;
  const std::string fl = megatron_arguments(f);
  EXPECT_TRUE(has(flags(fl), "--use-torch-fsdp2")) << fl;
  EXPECT_FALSE(has(flags(fl), "--use-precision-aware-optimizer")) << fl;
  EXPECT_FALSE(has(flags(fl), "--optimizer-cpu-offload")) << fl;
  EXPECT_FALSE(has(flags(fl), "--fp8-param-gather")) << fl;
  EXPECT_TRUE(has(fl, "fp8 parameter gathers under --use-torch-fsdp2")) << fl;
  // Megatron-FSDP's own master-weight dtype flag.
  Scenario m = base;
  m.parallelism.zero_stage = 2;
  m.training.optimizer_state_dtype = StateDtype::bf16;
  m.training.main_params_dtype = MainParams::fp16;
  const std::string ml = megatron_arguments(m);
  EXPECT_TRUE(has(ml, "--megatron-fsdp-main-params-dtype fp16")) << ml;
  EXPECT_FALSE(has(ml, " --main-params-dtype")) << ml;
}

TEST(SplitSweep, BestScenarioLoadsAndMatchesTheWinner) {
  const SweepInput in = load("sweep: {tp: [1, 2, 4], pp: [1, 2], recompute: [none, full]}\n");
  SweepOptions o;
  const SweepResult r = run_sweep(in, o);
  const std::string yaml = best_scenario_yaml(in, r);
  const Scenario best = load_scenario_text(yaml, "best.yaml");
  const CandidateResult& w = r.candidates[static_cast<std::size_t>(r.ranked[0])];
  EXPECT_EQ(best.parallelism.tp, w.a.tp);
  EXPECT_EQ(best.parallelism.pp, w.a.pp);
  EXPECT_EQ(best.parallelism.dp, w.dp);
  EXPECT_EQ(best.training.recompute, w.a.recompute);
  EXPECT_EQ(simulate_step(best).step_time.value(), w.figures->step_time.value());
}

// A swept stage 3 runs PyTorch FSDP2 where the file names no implementation or stack
// (sweep/axes.cpp); `zero_stage: 3` alone would load as DeepSpeed's, so the best scenario
// carries the implementation and loads into the step the sweep ranked.
TEST(SplitSweep, BestZeroStage3CarriesItsImplementation) {
  const SweepInput in = load("sweep: {zero_stage: [3]}\n");
  SweepOptions o;
  const SweepResult r = run_sweep(in, o);
  const std::string yaml = best_scenario_yaml(in, r);
  EXPECT_NE(yaml.find("zero_stage: 3, fsdp: {implementation: fsdp2}"), std::string::npos) << yaml;
  const Scenario best = load_scenario_text(yaml, "best.yaml");
  const CandidateResult& w = r.candidates[static_cast<std::size_t>(r.ranked[0])];
  EXPECT_EQ(best.parallelism.fsdp_impl, ParallelismSpec::FsdpImpl::fsdp2);
  EXPECT_EQ(simulate_step(best).step_time.value(), w.figures->step_time.value());
}

TEST(SplitSweep, ExpertParallelAcrossContextRanksCompletes) {
  // Mixtral (4 of its layers) on one DGX H100 with cp 2 and ep 8 folded over dp x cp:
  // tp 1 derives dp 4 (dp x cp = 8, one expert-parallel group); tp 2 derives dp 2, and
  // ep 8 does not divide dp x cp = 4: invalid. 2 tp x 2 recompute = 4 candidates, 2 valid,
  // both simulated (a candidate whose expert groups ignored cp used to abort the sweep).
  const SweepInput in = load_sweep_text(R"(name: moe cp sweep
cluster: {preset: dgx-h100, nodes: 1}
model: {preset: mixtral-8x7b, layers: 4}
parallelism: {tp: 1, pp: 1, cp: 2, dp: 4, ep: 8, microbatch: 1, global_batch: 8}
training: {precision: bf16}
sweep: {tp: [1, 2], recompute: [selective, full]}
)",
                                        "moe.yaml");
  SweepOptions o;
  o.threads = 2;
  const SweepResult r = run_sweep(in, o);
  ASSERT_EQ(r.candidates.size(), 4u);
  EXPECT_EQ(count(r, Status::invalid), 2u);
  EXPECT_EQ(count(r, Status::simulated), 2u);
  for (const auto& c : r.candidates) {
    if (c.status == Status::invalid) {
      EXPECT_NE(c.reason.find("dp*cp"), std::string::npos);
    }
  }
}

TEST(SplitSweep, BadSweepsAreInputErrorsNamingTheKey) {
  auto error_of = [&](const std::string& sweep) {
    try {
      const SweepInput in = load(sweep);
      run_sweep(in, SweepOptions{});
    } catch (const InputError& e) {
      return e.key() + " | " + e.why();
    }
    return std::string("no error");
  };
  EXPECT_EQ(error_of("sweep: {tp: []}\n"), "sweep.tp | an empty sweep: give at least one value");
  EXPECT_NE(error_of("sweep: {tpp: [1]}\n").find("did you mean 'tp'"), std::string::npos);
  // tp 16 and 32 cannot split 8 GPUs: every candidate is invalid.
  EXPECT_EQ(error_of("sweep: {tp: [16, 32]}\n").substr(0, 8), "sweep | ");
  EXPECT_EQ(error_of("sweep: {tp: [1, 2], objectives: [cost]}\n"),
            "sweep.objectives | needs training.target (tokens, samples, steps or critical_batch)");
  // A sweep that varies no field is empty too.
  EXPECT_EQ(error_of("sweep: {objectives: [step_time], top: 3}\n").substr(0, 27),
            "sweep | an empty sweep: var");
  EXPECT_EQ(error_of("sweep: {dp: auto}\n"),
            "sweep.dp | auto applies to tp, pp, vp and microbatch; list the values");
}

// Optimizer-state precision: Megatron-Core's precision-aware optimizer flags
// (megatron/training/arguments.py at NVIDIA/Megatron-LM d98e8a64); what it cannot express
// is named.
TEST(SplitSweep, MegatronArgumentsForOptimizerStatePrecision) {
  Scenario s = load_scenario_text(kBase, "t.yaml");
  s.parallelism.zero_stage = 1;
  const std::string base = megatron_arguments(s);
  s.training.optimizer_state_dtype = StateDtype::bf16;
  EXPECT_EQ(megatron_arguments(s),
            base + " --use-precision-aware-optimizer --exp-avg-dtype bf16 --exp-avg-sq-dtype bf16");
  s.training.main_params_dtype = MainParams::fp16;
  EXPECT_EQ(megatron_arguments(s), base +
                                       " --use-precision-aware-optimizer --exp-avg-dtype bf16 "
                                       "--exp-avg-sq-dtype bf16 --main-params-dtype fp16");
  // Megatron-Core refuses the precision-aware optimizer without the distributed optimizer.
  s.parallelism.zero_stage = 0;
  EXPECT_NE(megatron_arguments(s).find(
                "no Megatron-LM flag for the precision-aware optimizer without the distributed"),
            std::string::npos);
  s.parallelism.zero_stage = 1;
  s.training.optimizer_state_dtype = StateDtype::int8;
  s.training.main_params_dtype = MainParams::none;
  EXPECT_EQ(megatron_arguments(s),
            base +
                "; no Megatron-LM flag for 8-bit optimizer states (bitsandbytes), no master "
                "weights");
}

// training.recompute_modules and training.optimizer_offload spelled as Megatron-LM's flags
// (--recompute-modules in Megatron-Core's names; --optimizer-cpu-offload needs the
// precision-aware optimizer, arguments.py at d98e8a64).
TEST(SplitSweep, MegatronArgumentsForRecomputeModulesAndOffload) {
  Scenario s = load_scenario_text(kBase, "t.yaml");
  s.parallelism.zero_stage = 1;
  s.training.recompute = Recompute::selective;
  const std::string base = megatron_arguments(s);
  EXPECT_NE(base.find(" --recompute-granularity selective"), std::string::npos);
  EXPECT_EQ(base.find("--recompute-modules"), std::string::npos);  // the default, core_attn
  s.training.recompute_modules = kRecomputeLayernorm | kRecomputeCoreAttn;
  const std::string modules = megatron_arguments(s);
  EXPECT_NE(modules.find(" --recompute-granularity selective --recompute-modules core_attn "
                         "layernorm"),
            std::string::npos)
      << modules;
  s.training.optimizer_offload = OptimizerOffloadSpec{0.5, true};
  EXPECT_EQ(megatron_arguments(s), modules +
                                       " --use-precision-aware-optimizer --optimizer-cpu-offload "
                                       "--optimizer-offload-fraction 0.5 "
                                       "--overlap-cpu-optimizer-d2h-h2d");
  // arguments.py at d98e8a64 has no --cpu-offloading: a layer count above 0 turns it on.
  s.training.activation_offload = ActivationOffloadSpec{12};
  EXPECT_NE(megatron_arguments(s).find(" --cpu-offloading-num-layers 12"), std::string::npos);
  EXPECT_EQ(megatron_arguments(s).find("--cpu-offloading "), std::string::npos);
}

}  // namespace
}  // namespace orrery

#include "sweep/html.h"

namespace orrery {
namespace {

TEST(SweepReport, SelfContainedDeterministicAndChecksItsCharts) {
  const SweepInput in = load("sweep: {tp: [1, 2, 4], pp: [1, 2], recompute: [none, full]}\n");
  const SweepResult r = run_sweep(in, SweepOptions{});
  const std::string json = render_sweep_json(in, r);
  const std::string html = render_sweep_html(json, "r.json");
  EXPECT_EQ(html, render_sweep_html(json, "r.json"));
  std::size_t charts = 0;
  for (auto at = html.find("<svg class=\"chart\""); at != std::string::npos;
       at = html.find("<svg class=\"chart\"", at + 1)) {
    ++charts;
  }
  // breakdown, memory, time against cost, timeline; one GPU count: no scaling chart.
  EXPECT_EQ(charts, 4u);
  EXPECT_EQ(html.find("id=\"scaling\""), std::string::npos);
  EXPECT_NE(html.find("no scaling chart"), std::string::npos);
  EXPECT_EQ(html.find("http://www.w3.org/2000/svg"), html.find("http"));  // only the namespace
  EXPECT_NE(html.find("data-status"), std::string::npos);
  EXPECT_THROW(render_sweep_html("{\"a\": 1}", "x.json"), InputError);
  EXPECT_THROW(render_sweep_html("not json", "x.json"), InputError);
}

}  // namespace
}  // namespace orrery

namespace orrery {
namespace {

TEST(SplitSweep, ParetoPruningKeepsTheFront) {
  // Step time against the whole run's cost over 1 and 2 nodes: the front is computed over
  // the simulated candidates; every pruned one, simulated here anyway, is dominated by a
  // point of the front (or equals one).
  const SweepInput in = load_sweep_text(R"(name: pareto
cluster: {preset: dgx-a100, nodes: 2}
model: {preset: narayanan-1.7b}
parallelism: {tp: 2, pp: 2, microbatch: 1, global_batch: 32}
training: {precision: bf16, target: {tokens: 1.0e9}}
cost: {usd_per_gpu_hour: 2.0}
sweep: {nodes: [1, 2], tp: [1, 2, 4], pp: [1, 2, 4], recompute: [none, full],
        objectives: [step_time, cost]}
)",
                                        "p.yaml");
  SweepOptions o;
  o.threads = 2;
  const SweepResult r = run_sweep(in, o);
  ASSERT_FALSE(r.pareto.empty());
  std::vector<std::vector<double>> front;
  for (int i : r.pareto) front.push_back(r.candidates[static_cast<std::size_t>(i)].objective);
  // The front is the front of every simulated point.
  std::vector<std::vector<double>> all;
  std::vector<int> ids;
  for (const auto& c : r.candidates) {
    if (c.status != Status::simulated) continue;
    all.push_back(c.objective);
    ids.push_back(*c.index);
  }
  std::vector<int> expect;
  for (int k : pareto_front(all)) expect.push_back(ids[static_cast<std::size_t>(k)]);
  std::vector<int> got = r.pareto;
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, expect);
  std::size_t pruned = 0;
  for (const auto& c : r.candidates) {
    if (c.status != Status::pruned) continue;
    ++pruned;
    const Scenario sc = candidate_scenario(in, c.a);
    const StepResult s = simulate_step(sc);
    double u = 0;
    for (const StageReport& st : s.stages) u += st.utilization;
    u /= static_cast<double>(s.stages.size());
    const double t = s.step_time.value();
    const double usd = *estimate_run(sc, s.step_time, u, s.warmup_step_time).usd;
    bool dominated = false;
    for (const auto& f : front) dominated = dominated || (f[0] <= t && f[1] <= usd);
    EXPECT_TRUE(dominated) << *c.index << ": " << t << " s, $" << usd;
  }
  EXPECT_GT(pruned, 0u) << "the test needs some pruning to mean anything";
}

}  // namespace
}  // namespace orrery

namespace orrery {
namespace {

TEST(SplitSweep, ConstraintsDropCandidatesBeforeSimulating) {
  // nodes 1 and 2 of 8 GPUs with max_gpus 8: the 16-GPU candidate is dropped; dp is
  // derived per candidate (8 / (2*2) = 2 on one node).
  const SweepInput in = load("sweep: {nodes: [1, 2], constraints: {max_gpus: 8}}\n");
  const SweepResult r = run_sweep(in, SweepOptions{});
  ASSERT_EQ(r.candidates.size(), 2u);
  EXPECT_EQ(r.candidates[0].status, Status::simulated);
  EXPECT_EQ(r.candidates[0].dp, 2);
  EXPECT_EQ(r.candidates[1].status, Status::over_gpus);
  EXPECT_EQ(r.candidates[1].gpus, 16);
  // fits_memory: the 1.7B model unsplit (tp1 pp1 dp8) with micro-batch 16 and no
  // recomputation keeps 24 layers x 2048 x 16 x 2304 x 34 bytes = 62 GB of activations
  // (Korthikanti et al. 2022) beside 1.7e9 x 18 = 31 GB of model state: over 80 GiB.
  const std::string big = R"(cluster: {preset: dgx-a100, nodes: 1}
model: {preset: narayanan-1.7b}
parallelism: {tp: 1, pp: 1, microbatch: 16, global_batch: 128}
training: {precision: bf16, recompute: none}
)";
  const SweepInput on = load_sweep_text(big + "sweep: {microbatch: [16]}\n", "on.yaml");
  EXPECT_EQ(run_sweep(on, SweepOptions{}).candidates[0].status, Status::out_of_memory);
  const SweepInput off = load_sweep_text(
      big + "sweep: {microbatch: [16], constraints: {fits_memory: false}}\n", "off.yaml");
  EXPECT_EQ(run_sweep(off, SweepOptions{}).candidates[0].status, Status::simulated);
  // The scenario as written is that same unfitting split: its line says so (62 + 31 GB
  // is about 87 GiB against the A100's 80 GiB), and a fitting one says nothing of memory.
  const std::string table = render_sweep_table(on, run_sweep(on, SweepOptions{}));
  EXPECT_NE(table.find("does not fit in memory"), std::string::npos) << table;
  EXPECT_NE(table.find("(candidates like it are dropped)"), std::string::npos) << table;
  const SweepInput fits = load("sweep: {microbatch: [1]}\n");
  EXPECT_EQ(render_sweep_table(fits, run_sweep(fits, SweepOptions{})).find("does not fit"),
            std::string::npos);
}

}  // namespace
}  // namespace orrery

namespace orrery {
namespace {

TEST(SplitSweep, EveryCsvRowHasTheHeadersColumns) {
  // Regression: rows of candidates that were not simulated (invalid, out of memory,
  // pruned) had one field fewer than the header and the simulated rows.
  const SweepInput in = load(
      "sweep: {tp: [1, 2, 4, 8], pp: [1, 2, 4], microbatch: [1, 2, 4], recompute: [none, "
      "full], top: 2}\n");
  const SweepResult r = run_sweep(in, SweepOptions{});
  ASSERT_GT(count(r, Status::simulated), 0u);
  ASSERT_GT(count(r, Status::invalid) + count(r, Status::pruned), 0u);
  const std::string csv = render_sweep_csv(in, r);
  // No field holds a comma inside quotes here (reasons are quoted; count outside quotes).
  std::vector<int> fields;
  int n = 1;
  bool quoted = false;
  for (char ch : csv) {
    if (ch == '"') quoted = !quoted;
    if (!quoted && ch == ',') ++n;
    if (!quoted && ch == '\n') {
      fields.push_back(n);
      n = 1;
    }
  }
  ASSERT_GT(fields.size(), 2u);
  for (size_t i = 1; i < fields.size(); ++i) EXPECT_EQ(fields[i], fields[0]) << "row " << i;
}

}  // namespace
}  // namespace orrery

namespace orrery {
namespace {

TEST(TokenBatch, RoundsToTheNearestMultipleOfDpTimesMicrobatchByHand) {
  // 16 M = 16,777,216 tokens / 8192 = 2048 sequences.
  // dp 96, mb 1: 2048 / 96 = 21.33 -> 21 x 96 = 2016.
  EXPECT_EQ(rounded_global_batch(16777216, 8192, 96, 1), 2016);
  // dp 160, mb 1: 2048 / 160 = 12.8 -> 13 x 160 = 2080.
  EXPECT_EQ(rounded_global_batch(16777216, 8192, 160, 1), 2080);
  // dp 128, mb 2: 2048 / 256 = 8 exactly -> 2048.
  EXPECT_EQ(rounded_global_batch(16777216, 8192, 128, 2), 2048);
  // A half rounds away from zero: 1200 / 8 = 150 sequences / 100 = 1.5 -> 2 x 100 = 200.
  EXPECT_EQ(rounded_global_batch(1200, 8, 100, 1), 200);
  // Never below one batch per replica: 8192 tokens = 1 sequence, dp 64 -> 64.
  EXPECT_EQ(rounded_global_batch(8192, 8192, 64, 1), 64);
}

TEST(TokenBatch, EachCandidateGetsItsOwnRoundedBatch) {
  // narayanan-1.7b has seq_len 2048; 65,536 tokens = 32 sequences. On 8 GPUs: tp1 -> dp 8
  // (32 / 8 = 4 -> 32); tp 2 with microbatch 3 -> dp 4 x 3 = 12: 32 / 12 = 2.67 -> 3 x 12 = 36.
  const SweepInput in = load_sweep_text(
      kBase + "sweep: {tp: [1, 2], pp: 1, microbatch: [1, 3], global_batch_tokens: 65536}\n",
      "t.yaml");
  SweepOptions o;
  const SweepResult r = run_sweep(in, o);
  ASSERT_EQ(r.candidates.size(), 4u);
  // Order: tp slowest, then microbatch.
  EXPECT_EQ(r.candidates[0].a.global_batch, 32);  // tp1 mb1: dp 8, 32 / 8 = 4 -> 32
  EXPECT_EQ(r.candidates[1].a.global_batch, 24);  // tp1 mb3: 8 x 3 = 24, 32 / 24 = 1.33 -> 24
  EXPECT_EQ(r.candidates[2].a.global_batch, 32);  // tp2 mb1: dp 4, 32 / 4 = 8 -> 32
  EXPECT_EQ(r.candidates[3].a.global_batch, 36);  // tp2 mb3: 4 x 3 = 12, 2.67 -> 3 x 12 = 36
  // The rounded batch is what the candidate's scenario trains with.
  EXPECT_EQ(candidate_scenario(in, r.candidates[3].a).parallelism.global_batch, 36);
}

TEST(TokenBatch, NotWithAGlobalBatchSweep) {
  EXPECT_THROW(
      load_sweep_text(kBase + "sweep: {global_batch: [16, 32], global_batch_tokens: 65536}\n",
                      "t.yaml"),
      InputError);
}

const std::string kRun = R"(name: deadline sweep
cluster: {preset: dgx-a100, nodes: 1}
model: {preset: narayanan-1.7b}
parallelism: {tp: 2, pp: 1, microbatch: 1, global_batch: 64}
training: {precision: bf16, target: {steps: 1000}}
)";

TEST(SweepConstraints, TheDeadlineSplitsTheCandidatesAndTheSystemTakesTheFewestNodes) {
  // Without a deadline, the time to train of the best 1-node and 2-node candidates.
  const SweepInput free = load_sweep_text(kRun + "sweep: {nodes: [1, 2], tp: [1, 2]}\n", "t.yaml");
  SweepOptions o;
  const SweepResult all = run_sweep(free, o);
  ASSERT_EQ(all.systems.size(), 1u);
  ASSERT_TRUE(all.systems[0].best.has_value());
  // No constraint: the smallest cluster (1 node) answers.
  EXPECT_EQ(all.candidates[static_cast<std::size_t>(*all.systems[0].best)].a.nodes, 1);
  double fastest1 = 1e300, fastest2 = 1e300;
  for (const auto& c : all.candidates) {
    if (c.status != Status::simulated) continue;
    double& f = c.a.nodes == 1 ? fastest1 : fastest2;
    f = std::min(f, c.figures->time_to_train->value());
  }
  ASSERT_LT(fastest2, fastest1);  // two nodes are faster
  // A deadline between the two: only 2-node candidates meet it, and the answer is 2 nodes.
  const double deadline = (fastest1 + fastest2) / 2;
  const SweepInput in =
      load_sweep_text(kRun + fmt::format("sweep: {{nodes: [1, 2], tp: [1, 2], constraints: "
                                         "{{max_time_to_train: \"{} s\"}}}}\n",
                                         deadline),
                      "t.yaml");
  const SweepResult r = run_sweep(in, o);
  for (const auto& c : r.candidates) {
    if (c.status == Status::simulated) {
      EXPECT_LE(c.figures->time_to_train->value(), deadline);
    }
    if (c.status == Status::over_deadline && c.figures) {
      EXPECT_GT(c.figures->time_to_train->value(), deadline);
    }
  }
  ASSERT_TRUE(r.systems[0].best.has_value());
  EXPECT_EQ(r.candidates[static_cast<std::size_t>(*r.systems[0].best)].a.nodes, 2);
}

}  // namespace
}  // namespace orrery

namespace orrery {
namespace {

// The CSV carries the whole-run columns `run` prints when the scenario has a target and
// reliability: time to train in days, the expected wall time with failures, goodput and
// expected failures, each consistent with the others by definition (model/training_run.h):
// goodput = time to train / wall time, failures = wall time / job MTBF, and the job MTBF
// here is 800 h / 8 GPUs = 100 h = 360,000 s.
TEST(SplitSweep, CsvHasTheWholeRunColumns) {
  std::string text = kBase;
  const std::string plain = "training: {precision: bf16}";
  text.replace(text.find(plain), plain.size(),
               "training: {precision: bf16, target: {tokens: 1.0e9}}");
  const SweepInput in = load_sweep_text(
      text +
          "reliability: {gpu_mtbf: 800 h, checkpoint_bandwidth: 10 GB/s, restart_time: 600 s}\n"
          "sweep: {microbatch: [1, 2]}\n",
      "t.yaml");
  const SweepResult r = run_sweep(in, SweepOptions{});
  const std::string csv = render_sweep_csv(in, r);
  auto split = [](const std::string& line) {
    std::vector<std::string> out(1);
    for (char ch : line) {
      if (ch == ',') out.emplace_back();
      else out.back() += ch;
    }
    return out;
  };
  const std::size_t eol = csv.find('\n');
  const std::vector<std::string> header = split(csv.substr(0, eol));
  auto column = [&](const std::string& name) {
    const auto it = std::find(header.begin(), header.end(), name);
    EXPECT_NE(it, header.end()) << name;
    return static_cast<std::size_t>(it - header.begin());
  };
  const std::size_t ttt = column("time_to_train_s"), days = column("time_to_train_days"),
                    wall = column("wall_time_days"), good = column("goodput"),
                    fails = column("expected_failures");
  int rows = 0;
  for (std::size_t at = eol + 1; at < csv.size();) {
    const std::size_t end = csv.find('\n', at);
    const std::vector<std::string> row = split(csv.substr(at, end - at));
    at = end + 1;
    ASSERT_EQ(row.size(), header.size());
    if (row[1] != "simulated") continue;
    ++rows;
    const double t = std::stod(row[ttt]), w = std::stod(row[wall]) * 86400.0;
    EXPECT_NEAR(std::stod(row[days]), t / 86400.0, 1e-6 * t / 86400.0);
    EXPECT_GT(w, t);  // checkpoints alone make the wall time longer
    EXPECT_NEAR(std::stod(row[good]), t / w, 1e-6);
    EXPECT_NEAR(std::stod(row[fails]), w / 360000.0, 1e-6 * w / 360000.0);
  }
  EXPECT_EQ(rows, 2);
}

}  // namespace
}  // namespace orrery

namespace orrery {
namespace {

// "Would moving to Megatron-Core pay for itself?" as one sweep: the same Llama 2 7B split
// under eager torchtitan (fsdp2) and Megatron-Core. Each candidate is the scenario with
// training.stack set (its step the one `run` predicts for that file), and Megatron-Core's
// fused RoPE and SwiGLU make its step the shorter (docs/model.md, "Training stacks").
TEST(StackSweep, EachCandidateIsTheScenarioUnderThatStack) {
  const std::string base = R"(name: stack sweep
cluster: {preset: dgx-h100, nodes: 1}
model: {preset: llama2-7b}
parallelism: {tp: 1, pp: 1, dp: 8, microbatch: 1, global_batch: 16, zero_stage: 1}
)";
  const SweepInput in = load_sweep_text(
      base + "training: {precision: bf16}\nsweep: {stack: [fsdp2, megatron-core]}\n", "s.yaml");
  ASSERT_EQ(expand(in).size(), 2u);
  SweepOptions o;
  const SweepResult r = run_sweep(in, o);
  ASSERT_EQ(r.candidates.size(), 2u);
  std::map<StackSpec::Preset, double> step;
  for (const CandidateResult& c : r.candidates) {
    ASSERT_EQ(c.status, Status::simulated) << c.reason;
    step[c.a.stack] = c.figures->step_time.value();
    const Scenario s = load_scenario_text(
        base + fmt::format("training: {{precision: bf16, stack: {}}}\n", to_string(c.a.stack)),
        "one.yaml");
    EXPECT_DOUBLE_EQ(step[c.a.stack], simulate_step(s).step_time.value()) << to_string(c.a.stack);
  }
  EXPECT_LT(step.at(StackSpec::Preset::megatron_core), step.at(StackSpec::Preset::fsdp2));
  // The unfused kernels as Megatron-LM's switches (arguments.py at NVIDIA/Megatron-LM
  // d98e8a64); the fused stack needs none.
  auto args = [&](const std::string& stack) {
    return megatron_arguments(load_scenario_text(
        base + "training: {precision: bf16, stack: " + stack + "}\n", "a.yaml"));
  };
  EXPECT_NE(args("fsdp2").find(" --no-rope-fusion --no-bias-swiglu-fusion"), std::string::npos)
      << args("fsdp2");
  EXPECT_EQ(args("megatron-core").find("fusion"), std::string::npos) << args("megatron-core");
  EXPECT_NE(render_sweep_csv(in, r).find(",stack"), std::string::npos);
}

}  // namespace
}  // namespace orrery
