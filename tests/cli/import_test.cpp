// orrery import megatron: the Megatron-LM line `orrery sweep` prints for a shipped
// validation case, with the model's shape arguments, imports back into that case.
// orrery import megatron-log: the arguments header of a Megatron-LM log imports likewise.
// orrery import nemo: a NeMo-Framework-Launcher config with a shipped case's settings
// imports into that case; interpolations resolve; unmapped keys are listed.
// orrery import torchtitan: torchtitan's published Llama 3 70B job imports into the
// layout it runs (FSDP2 over what tp leaves); compile, HSDP and pipeline map.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "tests/cli/run.h"

namespace orrery {
namespace {

using testing::read_file;
using testing::run_orrery;
using testing::source_dir;

// `text` without its first line (the check report's "scenario NAME").
std::string after_first_line(const std::string& text) { return text.substr(text.find('\n') + 1); }

// `check` and `run` print the same for the imported scenario as for the shipped case,
// but for the scenario's name.
void expect_same_check_and_run(const std::string& case_file, const std::string& imported_file) {
  for (const char* command : {"check", "run"}) {
    const auto want = run_orrery(std::string(command) + " " + case_file);
    const auto got = run_orrery(std::string(command) + " '" + imported_file + "'");
    ASSERT_EQ(want.code, 0) << want.err;
    ASSERT_EQ(got.code, 0) << got.err;
    EXPECT_EQ(after_first_line(got.out), after_first_line(want.out)) << command;
  }
}

// The Megatron-LM line `orrery sweep` prints for its best candidate of `yaml` (a scenario
// without its measured: block) swept over `axis` ("sweep: {tp: [2]}").
std::string sweep_megatron_line(const std::string& yaml, const std::string& axis,
                                const std::string& name) {
  const std::string sweep_file = ::testing::TempDir() + name + "_sweep.yaml";
  std::ofstream(sweep_file) << yaml << axis << "\n";
  const auto sweep = run_orrery("sweep '" + sweep_file + "' -j 1 --no-progress");
  EXPECT_EQ(sweep.code, 0) << sweep.err;
  const std::string tag = "\nMegatron-LM  ";
  const auto at = sweep.out.find(tag);
  EXPECT_NE(at, std::string::npos) << sweep.out;
  if (at == std::string::npos) return "";
  return sweep.out.substr(at + tag.size(), sweep.out.find('\n', at + 1) - at - tag.size());
}

TEST(ImportMegatron, SweepsLineOfAValidationCaseImportsBackToIt) {
  const std::string case_file = "scenarios/validation/megatron-readme-h100-7.1b.yaml";
  // The case as a one-candidate sweep (its measured: block dropped), for the line the
  // sweep prints.
  std::string yaml;
  {
    std::ifstream in(source_dir() + "/" + case_file);
    for (std::string l; std::getline(in, l);)
      if (l.rfind("measured:", 0) != 0) yaml += l + "\n";
  }
  const std::string line = sweep_megatron_line(yaml, "sweep: {tp: [2]}", "readme");
  // What the sweep leaves to the launch script: the model's shape (the case's model
  // line: a GPT-style model with untied embeddings, whose other architecture keys are
  // Megatron-LM's defaults),
  // an unmapped learning rate, and the README's overlaps.
  const std::string shape =
      "--num-layers 30 --hidden-size 4096 --num-attention-heads 32 --seq-length 4096 "
      "--vocab-size 131072 --untie-embeddings-and-output-weights --lr 3e-4 "
      "--overlap-grad-reduce --overlap-param-gather "
      "--tp-comm-overlap --overlap-p2p-communication ";
  const auto imported =
      run_orrery("import megatron --cluster dgx-h100 --nodes 12 -- " + shape + line);
  ASSERT_EQ(imported.code, 0) << imported.err;
  EXPECT_NE(imported.out.find("#   --lr 3e-4\n"), std::string::npos) << imported.out;
  EXPECT_NE(imported.out.find("  tp: 2  # --tensor-model-parallel-size\n"), std::string::npos);
  const std::string imported_file = ::testing::TempDir() + "imported.yaml";
  std::ofstream(imported_file) << imported.out;

  expect_same_check_and_run(case_file, imported_file);
}

// Two scenarios whose every key has a Megatron-LM argument, written here: an MoE model
// with MLA, shared experts, a leading dense layer, group-limited routing, an interleaved
// pipeline layout with an MTP layer, HybridEP's flex exchange, selective recompute of two
// modules, unfused RoPE and SwiGLU and NVFP4 with bf16 edge layers on 4 DGX B200; and a
// dense model under Megatron-FSDP with hybrid sharding (tp 2 x cp 2 leave dp 8 over 4
// nodes: each node's 2 data-parallel ranks hold a shard, 4 instances), context parallelism
// over an all-gather of keys and values, the hook
// gradient accumulation and half the optimizer offloaded with overlap on 4 DGX H100. The
// sweep's line, with the model's shape arguments, imports back into each: check and run
// print the same.
TEST(ImportMegatron, MoeAndFsdpSweepLinesImportBackToTheirScenarios) {
  const struct {
    std::string name, yaml, axis, cluster, shape;
  } cases[] = {
      {"moe",
       "cluster: {preset: dgx-b200, nodes: 4}\n"
       "model: {family: decoder, layers: 8, hidden: 2048, heads: 16, kv_heads: 16, ffn: 6144, "
       "vocab: 32768, seq_len: 4096, activation: swiglu, norm: rmsnorm, position_embedding: rope, "
       "tied_embeddings: false, bias: false, dropout: false, mla: {q_lora_rank: 768, "
       "kv_lora_rank: 256, qk_nope_head_dim: 64, qk_rope_head_dim: 32, v_head_dim: 64}, "
       "mtp_layers: 1, moe: {experts: 16, top_k: 2, expert_ffn: 1024, shared_experts: 2, "
       "first_dense_layers: 1, aux_loss: true, router_groups: 4, router_group_topk: 2}}\n"
       "parallelism: {tp: 1, pp: 2, ep: 8, ep_alltoall: hierarchical, ep_backend: hybridep, "
       "pipeline_layout: \"Et|t*2|t*2|t*3mL\", microbatch: 1, global_batch: 64, zero_stage: 1}\n"
       "training: {precision: fp4, fp4: {format: nvfp4, bf16_layers: {first: 1, last: 1}}, "
       "recompute: selective, recompute_modules: [core_attn, moe_act], "
       "stack: {rope: rotate_half, activation_fusion: false}}\n",
       "sweep: {tp: [1]}", "dgx-b200",
       "--num-layers 8 --hidden-size 2048 --num-attention-heads 16 --ffn-hidden-size 6144 "
       "--seq-length 4096 --vocab-size 32768 --swiglu --normalization RMSNorm "
       "--position-embedding-type rope --untie-embeddings-and-output-weights "
       "--disable-bias-linear --attention-dropout 0 --hidden-dropout 0 "
       "--multi-latent-attention --qk-layernorm --q-lora-rank 768 --kv-lora-rank 256 "
       "--qk-head-dim 64 --qk-pos-emb-head-dim 32 --v-head-dim 64 --mtp-num-layers 1 "
       "--num-experts 16 --moe-router-topk 2 --moe-ffn-hidden-size 1024 "
       "--moe-shared-expert-intermediate-size 2048 --moe-layer-freq '([0]*1+[1]*7)' "},
      // The attention kernel auto would not pick, fp16 with fp32 gradients, SGD, a DDP
      // bucket and a vocabulary Megatron-LM would pad at tp 2 (the line's divisor keeps it).
      {"flash2",
       "cluster: {preset: dgx-h100, nodes: 4}\n"
       "model: {family: decoder, layers: 8, hidden: 2048, heads: 16, kv_heads: 16, ffn: 8192, "
       "vocab: 50000, seq_len: 4096, activation: gelu, norm: layernorm, position_embedding: rope, "
       "tied_embeddings: false, bias: false, dropout: false}\n"
       "parallelism: {tp: 2, pp: 1, sequence_parallel: true, microbatch: 1, global_batch: 64, "
       "zero_stage: 1}\n"
       "training: {precision: fp16, optimizer: sgd, grad_bucket_params: 20000000, "
       "stack: {attention: flash2}}\n",
       "sweep: {tp: [2]}", "dgx-h100",
       "--num-layers 8 --hidden-size 2048 --num-attention-heads 16 --ffn-hidden-size 8192 "
       "--seq-length 4096 --vocab-size 50000 --position-embedding-type rope "
       "--untie-embeddings-and-output-weights --disable-bias-linear --attention-dropout 0 "
       "--hidden-dropout 0 "},
      {"fsdp",
       "cluster: {preset: dgx-h100, nodes: 4}\n"
       "model: {family: decoder, layers: 16, hidden: 4096, heads: 32, kv_heads: 8, ffn: 14336, "
       "vocab: 128256, seq_len: 8192, activation: swiglu, norm: rmsnorm, position_embedding: rope, "
       "tied_embeddings: false, bias: false, dropout: false}\n"
       "parallelism: {tp: 2, pp: 1, cp: 2, cp_comm: all-gather, fsdp: {implementation: "
       "megatron_fsdp}, sharding: hybrid, "
       "sequence_parallel: true, microbatch: 1, global_batch: 64}\n"
       "training: {precision: bf16, recompute: none, optimizer_offload: {fraction: 0.5, overlap: "
       "true}, stack: {gradient_accumulation: hook}}\n",
       "sweep: {tp: [2]}", "dgx-h100",
       "--num-layers 16 --hidden-size 4096 --num-attention-heads 32 --group-query-attention "
       "--num-query-groups 8 --ffn-hidden-size 14336 --seq-length 8192 --vocab-size 128256 "
       "--swiglu --normalization RMSNorm --position-embedding-type rope "
       "--untie-embeddings-and-output-weights --disable-bias-linear --attention-dropout 0 "
       "--hidden-dropout 0 "},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string file = ::testing::TempDir() + c.name + "_case.yaml";
    std::ofstream(file) << "name: " << c.name << "\n" << c.yaml;
    const std::string line = sweep_megatron_line("name: " + c.name + "\n" + c.yaml, c.axis, c.name);
    ASSERT_FALSE(line.empty());
    EXPECT_EQ(line.find("no Megatron-LM flag"), std::string::npos) << line;
    const auto imported =
        run_orrery("import megatron --cluster " + c.cluster + " --nodes 4 -- " + c.shape + line);
    ASSERT_EQ(imported.code, 0) << imported.err << "\n" << line;
    const std::string imported_file = ::testing::TempDir() + c.name + "_imported.yaml";
    std::ofstream(imported_file) << imported.out;
    EXPECT_NE(imported.out.find("# Every argument was mapped.\n"), std::string::npos)
        << imported.out;
    expect_same_check_and_run(file, imported_file);
  }
}

TEST(ImportMegatron, SwigluFfnDefaultAndPaddedVocab) {
  // Megatron-LM's --ffn-hidden-size default with --swiglu: int(4*4096*2/3 / 64) * 64 =
  // int(10922.67 / 64) * 64 = 170 * 64 = 10880; the vocabulary 50257 padded to a
  // multiple of 128 * tp 4 = 512: 99 * 512 = 50688.
  const auto r = run_orrery(
      "import megatron --cluster dgx-h100 -- --num-layers 2 --hidden-size 4096 "
      "--num-attention-heads 32 --seq-length 2048 --vocab-size 50257 --swiglu "
      "--tensor-model-parallel-size 4 --global-batch-size 8 --normalization RMSNorm "
      "--position-embedding-type rope --group-query-attention --num-query-groups 8 "
      "--recompute-granularity full --recompute-method uniform --recompute-num-layers 1");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("  ffn: 10880  #"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("  vocab: 50688  #"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("  kv_heads: 8  #"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("  recompute: full  #"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("# Every argument was mapped.\n"), std::string::npos) << r.out;
}

// --expert-tensor-parallel-size: written where it differs from tp (Megatron-LM's default and
// orrery's), and the imported file resolves (expert_tp 1 under tp 2 with sequence parallelism).
TEST(ImportMegatron, ExpertTensorParallelSizeWhereItIsNotTp) {
  const std::string moe =
      "import megatron --cluster dgx-h100 --nodes 2 -- --num-layers 2 --hidden-size 4096 "
      "--num-attention-heads 32 --seq-length 4096 --vocab-size 32000 --swiglu "
      "--num-experts 8 --moe-router-topk 2 --tensor-model-parallel-size 2 --sequence-parallel "
      "--expert-model-parallel-size 8 --global-batch-size 16 "
      "--moe-token-dispatcher-type alltoall --moe-aux-loss-coeff 1e-2 ";
  const auto one = run_orrery(moe + "--expert-tensor-parallel-size 1");
  ASSERT_EQ(one.code, 0) << one.err;
  EXPECT_NE(one.out.find("  expert_tp: 1  # --expert-tensor-parallel-size"), std::string::npos)
      << one.out;
  EXPECT_NE(one.out.find("# Every argument was mapped.\n"), std::string::npos) << one.out;
  const auto two = run_orrery(moe + "--expert-tensor-parallel-size 2");
  ASSERT_EQ(two.code, 0) << two.err;
  EXPECT_EQ(two.out.find("expert_tp"), std::string::npos) << two.out;
}

// MoE routing as Megatron-Core's arguments set it (transformer_config.py, router.py at
// NVIDIA/Megatron-LM d98e8a64): the dispatcher (allgather by default, which orrery has no
// form for), load balancing (an auxiliary loss only with a coefficient above 0, else the
// expert bias, else refused), --moe-layer-freq (dense layers first only), capacity and
// padding; and the refusals of the other new arguments.
TEST(ImportMegatron, MoeRoutingArgumentsMapOrAreRefused) {
  const std::string moe =
      "import megatron --cluster dgx-h100 --nodes 2 -- --num-layers 4 --hidden-size 2048 "
      "--num-attention-heads 16 --seq-length 4096 --vocab-size 32000 --swiglu "
      "--num-experts 16 --moe-ffn-hidden-size 512 --expert-model-parallel-size 8 "
      "--global-batch-size 32 --bf16 ";
  const auto r = run_orrery(moe +
                            "--moe-token-dispatcher-type flex --moe-enable-deepep "
                            "--moe-router-load-balancing-type none --moe-router-enable-expert-bias "
                            "--moe-router-score-function sigmoid "
                            "--moe-layer-freq '[0]*2+[1]*2' --overlap-moe-expert-parallel-comm");
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* want : {
           "    first_dense_layers: 2  # --moe-layer-freq\n",
           "    aux_loss: false  # --moe-router-enable-expert-bias: aux-loss-free balancing\n",
           "  ep_alltoall: hierarchical  # --moe-token-dispatcher-type flex\n",
           "  ep_backend: deepep  # --moe-enable-deepep\n",
           "  moe_a2a_overlap: true  # --overlap-moe-expert-parallel-comm\n",
       }) {
    EXPECT_NE(r.out.find(want), std::string::npos) << want << "\n" << r.out;
  }
  // An integer frequency of 1 (every layer MoE) writes no dense layers; seq_aux_loss with a
  // coefficient is an auxiliary loss.
  const auto every = run_orrery(moe +
                                "--moe-token-dispatcher-type alltoall --moe-layer-freq 1 "
                                "--moe-router-load-balancing-type seq_aux_loss "
                                "--moe-aux-loss-coeff 1e-4 --moe-expert-capacity-factor 1.25 "
                                "--moe-pad-expert-input-to-capacity");
  ASSERT_EQ(every.code, 0) << every.err;
  EXPECT_NE(every.out.find("    capacity_factor: 1.25  # --moe-expert-capacity-factor\n"
                           "    pad_to_capacity: true  # --moe-pad-expert-input-to-capacity\n"),
            std::string::npos)
      << every.out;
  EXPECT_EQ(every.out.find("first_dense_layers"), std::string::npos) << every.out;
  EXPECT_NE(every.out.find("    aux_loss: true  # --moe-router-load-balancing-type seq_aux_loss "
                           "with --moe-aux-loss-coeff above 0\n"),
            std::string::npos)
      << every.out;
  EXPECT_NE(every.out.find("  ep_alltoall: direct  # --moe-token-dispatcher-type alltoall\n"),
            std::string::npos)
      << every.out;
  // An auxiliary loss beside the expert bias (DeepSeek-V3's recipe): the loss's ops run and
  // the bias balances, so the loss-free imbalance is written.
  const auto both = run_orrery(moe +
                               "--moe-token-dispatcher-type alltoall "
                               "--moe-router-load-balancing-type seq_aux_loss "
                               "--moe-aux-loss-coeff 1e-4 --moe-router-enable-expert-bias "
                               "--moe-router-score-function sigmoid");
  ASSERT_EQ(both.code, 0) << both.err;
  EXPECT_NE(both.out.find("    aux_loss: true  #"), std::string::npos) << both.out;
  EXPECT_NE(both.out.find("    load_imbalance: 1.04  # --moe-router-enable-expert-bias"),
            std::string::npos)
      << both.out;
  const std::string a2a = moe + "--moe-token-dispatcher-type alltoall --moe-aux-loss-coeff 1e-2 ";
  // A negative capacity factor is dropless (TransformerConfig sets it to None).
  const auto dropless = run_orrery(a2a + "--moe-expert-capacity-factor -1");
  ASSERT_EQ(dropless.code, 0) << dropless.err;
  EXPECT_EQ(dropless.out.find("capacity_factor"), std::string::npos) << dropless.out;
  const struct {
    std::string line, key;
  } refused[] = {
      {moe + "--moe-aux-loss-coeff 1e-2", "'--moe-token-dispatcher-type'"},
      {moe + "--moe-token-dispatcher-type allgather --moe-aux-loss-coeff 1e-2",
       "'--moe-token-dispatcher-type' = 'allgather'"},
      {moe + "--moe-token-dispatcher-type alltoall", "'--moe-router-load-balancing-type'"},
      {moe + "--moe-token-dispatcher-type alltoall --moe-router-load-balancing-type sinkhorn",
       "'--moe-router-load-balancing-type' = 'sinkhorn'"},
      {moe + "--moe-token-dispatcher-type alltoall --moe-aux-loss-coeff 1e-2 1e-3",
       "'--moe-aux-loss-coeff'"},
      {moe + "--moe-token-dispatcher-type alltoall --moe-enable-deepep --moe-aux-loss-coeff 1e-2",
       "'--moe-enable-deepep'"},
      {moe + "--moe-token-dispatcher-type flex --moe-flex-dispatcher-backend ncclep "
             "--moe-aux-loss-coeff 1e-2",
       "'--moe-flex-dispatcher-backend' = 'ncclep'"},
      {a2a + "--moe-layer-freq 2", "'--moe-layer-freq' = '2'"},
      {a2a + "--moe-layer-freq '[1]*3'", "'--moe-layer-freq' = '[1]*3'"},
      {a2a + "--moe-layer-freq '[1]*3+[0]'", "'--moe-layer-freq'"},
      {a2a + "--moe-layer-freq '[1,2,1,1]'", "'--moe-layer-freq'"},
      {a2a + "--moe-shared-expert-intermediate-size 768", "'--moe-shared-expert-intermediate-size'"},
      {a2a + "--moe-pad-expert-input-to-capacity", "'--moe-pad-expert-input-to-capacity'"},
      {a2a + "--moe-shared-expert-overlap", "'--moe-shared-expert-overlap'"},
      {a2a + "--moe-router-num-groups 4", "'--moe-router-num-groups'"},
      {a2a + "--pipeline-model-parallel-size 2 --pipeline-model-parallel-layout 'Et*2|t*2L' "
             "--num-virtual-stages-per-pipeline-rank 1",
       "'--num-virtual-stages-per-pipeline-rank'"},
      {a2a + "--recompute-granularity selective --recompute-modules core_attn gdn_norm_out",
       "'--recompute-modules'"},
      {a2a + "--fp8-format hybrid --fp4-format e2m1", "'--fp4-format'"},
      {a2a + "--fp4-format e2m1 --fp4-recipe custom", "'--fp4-recipe' = 'custom'"},
      {a2a + "--use-megatron-fsdp --ckpt-format fsdp_dtensor "
             "--data-parallel-sharding-strategy no_shard",
       "'--data-parallel-sharding-strategy' = 'no_shard'"},
      {a2a + "--use-megatron-fsdp --ckpt-format fsdp_dtensor "
             "--num-distributed-optimizer-instances 4",
       "'--num-distributed-optimizer-instances' = '4'"},
      {a2a + "--use-torch-fsdp2 --untie-embeddings-and-output-weights", "'--use-torch-fsdp2'"},
      {moe + "--moe-token-dispatcher-type alltoall --moe-router-load-balancing-type none "
             "--moe-router-enable-expert-bias",
       "'--moe-router-enable-expert-bias'"},
      {moe + "--moe-token-dispatcher-type alltoall --moe-router-load-balancing-type aux_loss "
             "seq_aux_loss --moe-aux-loss-coeff 1e-2",
       "'--moe-aux-loss-coeff' = '1e-2'"},
      {moe + "--moe-token-dispatcher-type flex --moe-aux-loss-coeff 1e-2 "
             "--moe-expert-capacity-factor 1 --moe-pad-expert-input-to-capacity",
       "'--moe-pad-expert-input-to-capacity'"},
      {a2a + "--moe-expert-capacity-factor 0", "'--moe-expert-capacity-factor' = '0'"},
      {a2a + "--moe-layer-freq '[0]*4'", "'--moe-layer-freq' = '[0]*4'"},
      {moe + "--expert-model-parallel-size 1 --moe-token-dispatcher-type flex "
             "--moe-aux-loss-coeff 1e-2 --moe-expert-capacity-factor 1 "
             "--moe-pad-expert-input-to-capacity",
       "'--moe-pad-expert-input-to-capacity'"},
      {a2a + "--use-distributed-optimizer --num-distributed-optimizer-instances 2",
       "'--num-distributed-optimizer-instances' = '2'"},
      {a2a + "--use-megatron-fsdp", "'--use-megatron-fsdp'"},
      {a2a + "--use-distributed-optimizer --optimizer-cpu-offload", "'--optimizer-cpu-offload'"},
      {a2a + "--context-parallel-size 2 --cp-comm-type a2a", "'--cp-comm-type' = 'a2a'"},
      {a2a + "--context-parallel-size 2 --cp-comm-type p2p allgather",
       "'--cp-comm-type' = 'p2p allgather'"},
  };
  for (const auto& x : refused) {
    const auto out = run_orrery(x.line);
    EXPECT_EQ(out.code, 2) << x.line << "\n" << out.out;
    EXPECT_NE(out.err.find("key " + x.key), std::string::npos) << x.line << "\n" << out.err;
  }
}

// Megatron-Core's MoE kernel switches default off (transformer_config.py at d98e8a64:
// moe_grouped_gemm, moe_permute_fusion, moe_router_fusion); orrery times the grouped,
// fused form, so a launch without a switch is imported with a line saying so, and one
// with all three maps every argument. A dense launch has no such lines.
TEST(ImportMegatron, MoeKernelSwitchesOffAreListedAsDifferences) {
  const std::string moe =
      "import megatron --cluster dgx-h100 --nodes 2 -- --num-layers 4 --hidden-size 2048 "
      "--num-attention-heads 16 --seq-length 4096 --vocab-size 32000 --swiglu "
      "--num-experts 16 --moe-ffn-hidden-size 512 --expert-model-parallel-size 8 "
      "--moe-token-dispatcher-type alltoall --moe-aux-loss-coeff 1e-2 "
      "--global-batch-size 32 --bf16";
  const std::string heading =
      "# Differs from what orrery times (the prediction is for orrery's form; "
      "docs/import.md):\n";
  const auto bare = run_orrery(moe + " --moe-permute-fusion");
  ASSERT_EQ(bare.code, 0) << bare.err;
  EXPECT_NE(bare.out.find("# Every argument was mapped.\n" + heading +
                          "#   no --moe-grouped-gemm: Megatron-Core runs SequentialMLP, one MLP "
                          "module a local expert, where orrery times Transformer Engine's "
                          "grouped GEMM\n"
                          "#   no --moe-router-fusion: Megatron-Core runs the router's top-k and "
                          "scores as PyTorch ops, where orrery counts the fused kernels\n"
                          "cluster: "),
            std::string::npos)
      << bare.out;
  EXPECT_EQ(bare.out.find("no --moe-permute-fusion"), std::string::npos) << bare.out;
  const auto all =
      run_orrery(moe + " --moe-grouped-gemm --moe-permute-fusion --moe-router-fusion");
  ASSERT_EQ(all.code, 0) << all.err;
  EXPECT_NE(all.out.find("# Every argument was mapped.\ncluster: "), std::string::npos)
      << all.out;
  // The scenario itself is the same either way: only the head differs.
  EXPECT_EQ(bare.out.substr(bare.out.find("cluster: ")),
            all.out.substr(all.out.find("cluster: ")));
  const auto dense = run_orrery(
      "import megatron --cluster dgx-h100 -- --num-layers 4 --hidden-size 2048 "
      "--num-attention-heads 16 --seq-length 4096 --vocab-size 32000 --global-batch-size 32");
  ASSERT_EQ(dense.code, 0) << dense.err;
  EXPECT_EQ(dense.out.find("Differs from"), std::string::npos) << dense.out;
  // One local expert (16 experts over ep 16): SequentialMLP runs it on the whole batch,
  // the grouped path's GEMMs, so only the other two switches are listed.
  const auto one = run_orrery(
      "import megatron --cluster dgx-h100 --nodes 2 -- --num-layers 4 --hidden-size 2048 "
      "--num-attention-heads 16 --seq-length 4096 --vocab-size 32000 --num-experts 16 "
      "--expert-model-parallel-size 16 --moe-token-dispatcher-type alltoall "
      "--moe-aux-loss-coeff 1e-2 --global-batch-size 32 --bf16");
  ASSERT_EQ(one.code, 0) << one.err;
  EXPECT_EQ(one.out.find("--moe-grouped-gemm"), std::string::npos) << one.out;
  EXPECT_NE(one.out.find("#   no --moe-permute-fusion:"), std::string::npos) << one.out;
  // TransformerConfig raises for moe_act recompute without grouped GEMM.
  const auto act = run_orrery(moe + " --recompute-granularity selective "
                                    "--recompute-modules moe_act");
  EXPECT_EQ(act.code, 2) << act.out;
  EXPECT_NE(act.err.find("key '--recompute-modules'"), std::string::npos) << act.err;
  EXPECT_EQ(run_orrery(moe + " --moe-grouped-gemm --recompute-granularity selective "
                             "--recompute-modules moe_act")
                .code,
            0);
}

// --attention-backend (Megatron-Core's AttnBackend): flash and fused force Transformer
// Engine's FlashAttention or cuDNN kernel (flash2, cudnn), unfused and local the unfused
// path (flash_attention false), auto (the default) writes nothing; anything else refused.
TEST(ImportMegatron, AttentionBackendNamesTheKernel) {
  const std::string line =
      "import megatron --cluster dgx-h100 -- --num-layers 2 --hidden-size 1024 "
      "--num-attention-heads 8 --seq-length 2048 --vocab-size 32000 --global-batch-size 8 "
      "--bf16 --attention-backend ";
  const auto flash = run_orrery(line + "flash");
  ASSERT_EQ(flash.code, 0) << flash.err;
  EXPECT_NE(flash.out.find("  stack: {attention: flash2}  # --attention-backend flash\n"),
            std::string::npos)
      << flash.out;
  const auto fused = run_orrery(line + "fused");
  EXPECT_NE(fused.out.find("  stack: {attention: cudnn}  # --attention-backend fused\n"),
            std::string::npos)
      << fused.out;
  const auto local = run_orrery(line + "local");
  EXPECT_NE(local.out.find("  flash_attention: false  # --attention-backend local\n"),
            std::string::npos)
      << local.out;
  const auto automatic = run_orrery(line + "auto");
  EXPECT_EQ(automatic.out.find("stack:"), std::string::npos) << automatic.out;
  EXPECT_EQ(automatic.out.find("flash_attention"), std::string::npos) << automatic.out;
  const auto bad = run_orrery(line + "triton");
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find("key '--attention-backend' = 'triton'"), std::string::npos) << bad.err;
}

// Megatron-Core's recipe arguments (TransformerConfig at d98e8a64: fp8_recipe delayed,
// fp8_amax_history_len 1, num_layers_at_start/end_in_bf16 1): tensorwise is current
// scaling; --fp8-param-gather gathers per-tensor weights in fp8 and keeps MXFP8 weights as
// MXFP8 (the gather bf16); it needs the distributed optimizer; a custom recipe is refused.
TEST(ImportMegatron, Fp8RecipeArguments) {
  const std::string line =
      "import megatron --cluster dgx-b200 -- --num-layers 4 --hidden-size 1024 "
      "--num-attention-heads 8 --seq-length 2048 --vocab-size 32000 --global-batch-size 8 "
      "--bf16 --fp8-format hybrid ";
  auto fp8_line = [](const std::string& out) {
    const auto at = out.find("  fp8: {");
    return at == std::string::npos ? std::string() : out.substr(at, out.find('\n', at) - at);
  };
  const auto delayed = run_orrery(line);
  ASSERT_EQ(delayed.code, 0) << delayed.err;
  EXPECT_EQ(fp8_line(delayed.out),
            "  fp8: {format: hybrid, scaling: delayed, amax_history: 1}  # --fp8-format, default "
            "fp8_recipe delayed, default fp8_amax_history_len 1");
  const auto current = run_orrery(line +
                                  "--use-distributed-optimizer --fp8-recipe tensorwise "
                                  "--fp8-param-gather --first-last-layers-bf16 "
                                  "--num-layers-at-end-in-bf16 2");
  ASSERT_EQ(current.code, 0) << current.err;
  EXPECT_EQ(fp8_line(current.out),
            "  fp8: {format: hybrid, scaling: current, bf16_layers: {first: 1, last: 2}, "
            "communication: {param_allgather: fp8}}  # --fp8-format, --fp8-recipe tensorwise, "
            "--first-last-layers-bf16 --num-layers-at-end-in-bf16, --fp8-param-gather");
  const auto mx = run_orrery(line +
                             "--use-distributed-optimizer --fp8-recipe mxfp8 --fp8-param-gather "
                             "--reuse-grad-buf-for-mxfp8-param-ag");
  ASSERT_EQ(mx.code, 0) << mx.err;
  EXPECT_EQ(fp8_line(mx.out),
            "  fp8: {format: hybrid, scaling: mxfp8, weights: fp8}  # --fp8-format, --fp8-recipe "
            "mxfp8, --fp8-param-gather with --reuse-grad-buf-for-mxfp8-param-ag");
  // Each imports into a scenario that checks.
  for (const auto* r : {&delayed, &current, &mx}) {
    const std::string file = ::testing::TempDir() + "imported_fp8.yaml";
    std::ofstream(file) << r->out;
    EXPECT_EQ(run_orrery("check " + file).code, 0) << r->out;
  }
  // Refused: the fp8 gather without the distributed optimizer; MXFP8 gathers without the
  // buffer reuse (orrery models the gathers through the gradient buffer only); bf16 layers
  // under delayed scaling (transformer_config.py keeps none); a custom recipe.
  const struct {
    std::string args, key;
  } refused[] = {
      {"--fp8-param-gather", "'--fp8-param-gather'"},
      {"--use-distributed-optimizer --fp8-recipe mxfp8 --fp8-param-gather",
       "'--fp8-param-gather'"},
      {"--first-last-layers-bf16", "'--first-last-layers-bf16'"},
      {"--fp8-recipe custom", "'--fp8-recipe' = 'custom'"},
  };
  for (const auto& x : refused) {
    const auto out = run_orrery(line + x.args);
    EXPECT_EQ(out.code, 2) << x.args;
    EXPECT_NE(out.err.find("key " + x.key), std::string::npos) << out.err;
  }
}

// The forms the sweep's Megatron line writes: interleaving as virtual stages per pipeline
// rank (orrery's virtual_pipeline_stages as given) and Megatron-Core's precision-aware
// optimizer (bf16 moments, fp16 main parameters); the dtypes without the switch, mixed
// moment dtypes and both forms of interleaving are refused.
TEST(ImportMegatron, VirtualStagesPerRankAndPrecisionAwareOptimizer) {
  const std::string line =
      "import megatron --cluster dgx-h100 --nodes 2 -- --num-layers 32 --hidden-size 4096 "
      "--num-attention-heads 32 --seq-length 4096 --vocab-size 32000 --global-batch-size 64 "
      "--bf16 --pipeline-model-parallel-size 4 --use-distributed-optimizer ";
  const auto r = run_orrery(line +
                            "--num-virtual-stages-per-pipeline-rank 2 "
                            "--use-precision-aware-optimizer --exp-avg-dtype bf16 "
                            "--exp-avg-sq-dtype bf16 --main-params-dtype fp16");
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* want : {
           "  virtual_pipeline_stages: 2  # --num-virtual-stages-per-pipeline-rank\n",
           "  optimizer_state_dtype: bf16  # --use-precision-aware-optimizer, --exp-avg-dtype, "
           "--exp-avg-sq-dtype\n",
           "  main_params_dtype: fp16  # --use-precision-aware-optimizer, --main-params-dtype\n",
           "# Every argument was mapped.\n",
       }) {
    EXPECT_NE(r.out.find(want), std::string::npos) << want << "\n" << r.out;
  }
  const std::string file = ::testing::TempDir() + "imported_pao.yaml";
  std::ofstream(file) << r.out;
  EXPECT_EQ(run_orrery("check '" + file + "'").code, 0) << r.out;
  const struct {
    std::string args, key;
  } refused[] = {
      {"--exp-avg-dtype bf16", "'--exp-avg-dtype'"},
      {"--use-precision-aware-optimizer --exp-avg-dtype bf16", "'--exp-avg-sq-dtype'"},
      {"--num-virtual-stages-per-pipeline-rank 2 --num-layers-per-virtual-pipeline-stage 4",
       "'--num-virtual-stages-per-pipeline-rank'"},
  };
  for (const auto& x : refused) {
    const auto out = run_orrery(line + x.args);
    EXPECT_EQ(out.code, 2) << x.args;
    EXPECT_NE(out.err.find("key " + x.key), std::string::npos) << out.err;
  }
}

// Megatron-LM's argparse defaults where orrery's differ (arguments.py at d98e8a64):
// --overlap-grad-reduce and --overlap-param-gather are off unless given (orrery's defaults
// are on), except where Megatron-LM does not read them (PyTorch FSDP2; Megatron-FSDP with
// sharded gradients and parameters overlaps both); the pipeline-transfer overlap is on
// unless --no-overlap-p2p-communication; under --fp16 the gradients stay fp16 unless
// --accumulate-allreduce-grads-in-fp32, under --bf16 they are fp32 unless
// --grad-reduce-in-bf16.
TEST(ImportMegatron, ArgparseDefaultsOfOverlapsAndGradients) {
  const std::string line =
      "import megatron --cluster dgx-h100 --nodes 2 -- --num-layers 8 --hidden-size 1024 "
      "--num-attention-heads 8 --seq-length 2048 --vocab-size 32000 --micro-batch-size 1 "
      "--global-batch-size 64 --untie-embeddings-and-output-weights ";
  auto has = [](const std::string& out, const std::string& text) {
    return out.find(text) != std::string::npos;
  };
  const auto plain = run_orrery(line + "--bf16 --use-distributed-optimizer");
  ASSERT_EQ(plain.code, 0) << plain.err;
  EXPECT_TRUE(has(plain.out, "  overlap_grad_reduce: false  # no --overlap-grad-reduce\n"))
      << plain.out;
  EXPECT_TRUE(has(plain.out, "  overlap_param_gather: false  # no --overlap-param-gather\n"))
      << plain.out;
  EXPECT_FALSE(has(plain.out, "gradient_dtype")) << plain.out;
  EXPECT_FALSE(has(plain.out, "overlap_p2p")) << plain.out;
  const auto on = run_orrery(line +
                             "--bf16 --use-distributed-optimizer --overlap-grad-reduce "
                             "--overlap-param-gather --grad-reduce-in-bf16");
  ASSERT_EQ(on.code, 0) << on.err;
  EXPECT_TRUE(has(on.out, "  overlap_grad_reduce: true  # --overlap-grad-reduce\n")) << on.out;
  EXPECT_TRUE(has(on.out, "  overlap_param_gather: true  # --overlap-param-gather\n")) << on.out;
  EXPECT_TRUE(has(on.out, "  gradient_dtype: bf16  # --grad-reduce-in-bf16\n")) << on.out;
  const auto fp16 = run_orrery(line + "--fp16 --no-overlap-p2p-communication");
  ASSERT_EQ(fp16.code, 0) << fp16.err;
  EXPECT_TRUE(has(fp16.out,
                  "  gradient_dtype: fp16  # --fp16, no --accumulate-allreduce-grads-in-fp32\n"))
      << fp16.out;
  EXPECT_TRUE(has(fp16.out, "  overlap_p2p: false  # --no-overlap-p2p-communication\n"))
      << fp16.out;
  const auto fp32_grads = run_orrery(line + "--fp16 --accumulate-allreduce-grads-in-fp32");
  ASSERT_EQ(fp32_grads.code, 0) << fp32_grads.err;
  EXPECT_FALSE(has(fp32_grads.out, "gradient_dtype")) << fp32_grads.out;
  const auto fsdp2 = run_orrery(line +
                                "--bf16 --use-torch-fsdp2 --no-gradient-accumulation-fusion");
  ASSERT_EQ(fsdp2.code, 0) << fsdp2.err;
  EXPECT_FALSE(has(fsdp2.out, "overlap_grad_reduce")) << fsdp2.out;
  EXPECT_FALSE(has(fsdp2.out, "overlap_param_gather")) << fsdp2.out;
  const auto both = run_orrery(line +
                               "--bf16 --overlap-p2p-communication --no-overlap-p2p-communication");
  EXPECT_EQ(both.code, 2);
  EXPECT_TRUE(has(both.err, "key '--no-overlap-p2p-communication': given with "
                            "--overlap-p2p-communication"))
      << both.err;
  // The imported overlaps count: the same launch with and without them differs in step time.
  const std::string off_file = ::testing::TempDir() + "overlaps_off.yaml";
  const std::string on_file = ::testing::TempDir() + "overlaps_on.yaml";
  std::ofstream(off_file) << plain.out;
  std::ofstream(on_file)
      << run_orrery(line + "--bf16 --use-distributed-optimizer --overlap-grad-reduce "
                           "--overlap-param-gather")
             .out;
  const auto off_run = run_orrery("run --format json '" + off_file + "'");
  const auto on_run = run_orrery("run --format json '" + on_file + "'");
  ASSERT_EQ(off_run.code, 0) << off_run.err;
  ASSERT_EQ(on_run.code, 0) << on_run.err;
  EXPECT_NE(off_run.out, on_run.out);
}

// --recompute-activations is selective recompute (arguments.py at d98e8a64, lines 607-608);
// --group-query-attention alone is one key-value head (num_query_groups' argparse default 1);
// without --global-batch-size the global batch is one micro-batch a data-parallel rank
// (lines 702-703: micro-batch 2 x (16 GPUs / tp 2) = 16); full recompute without a method, interleaving
// as layers per virtual stage with uneven stages and fp8 without a 16-bit type are refused,
// as Megatron-LM refuses them.
TEST(ImportMegatron, RecomputeActivationsGqaAndBatchDefaults) {
  const std::string line =
      "import megatron --cluster dgx-h100 --nodes 2 -- --num-layers 8 --hidden-size 1024 "
      "--num-attention-heads 8 --seq-length 2048 --vocab-size 32000 --bf16 "
      "--tensor-model-parallel-size 2 --micro-batch-size 2 ";
  const auto r = run_orrery(line + "--recompute-activations --group-query-attention");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("  recompute: selective  # --recompute-activations\n"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("  kv_heads: 1  # --group-query-attention, default of "
                       "--num-query-groups 1\n"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("  global_batch: 16  # no --global-batch-size: --micro-batch-size x "
                       "data-parallel size 8 (Megatron-LM's default)\n"),
            std::string::npos)
      << r.out;
  const auto full = run_orrery(line + "--global-batch-size 16 --recompute-granularity full");
  EXPECT_EQ(full.code, 2);
  EXPECT_NE(full.err.find("key '--recompute-granularity' = 'full': full without "
                          "--recompute-method"),
            std::string::npos)
      << full.err;
  const auto uneven = run_orrery(line +
                                 "--global-batch-size 16 --pipeline-model-parallel-size 2 "
                                 "--num-layers-per-virtual-pipeline-stage 2 "
                                 "--decoder-first-pipeline-num-layers 2");
  EXPECT_EQ(uneven.code, 2);
  EXPECT_NE(uneven.err.find("key '--decoder-first-pipeline-num-layers'"), std::string::npos)
      << uneven.err;
  const auto method = run_orrery(line +
                                 "--global-batch-size 16 --recompute-activations "
                                 "--recompute-method uniform");
  EXPECT_EQ(method.code, 2);
  EXPECT_NE(method.err.find("key '--recompute-method' = 'uniform': given with selective"),
            std::string::npos)
      << method.err;
  // Asserted by arguments.py: --tp-comm-overlap needs sequence parallelism (line 1442), ep
  // above 1 needs experts (line 1656).
  const auto overlap = run_orrery(line + "--global-batch-size 16 --tp-comm-overlap");
  EXPECT_EQ(overlap.code, 2);
  EXPECT_NE(overlap.err.find("key '--tp-comm-overlap': needs --sequence-parallel"),
            std::string::npos)
      << overlap.err;
  const auto ep = run_orrery(line + "--global-batch-size 16 --expert-model-parallel-size 2");
  EXPECT_EQ(ep.code, 2);
  EXPECT_NE(ep.err.find("key '--expert-model-parallel-size' = '2': above 1 without --num-experts"),
            std::string::npos)
      << ep.err;
}

// tests/cli/import/nemo-llama3-8b.yaml is the NeMo-Framework-Launcher 24.07 Llama 3 8B
// config with the settings of the NeMo 24.07 performance row (see its header). Imported
// onto one DGX-H100 (--vocab-size 128256, the Llama 3 tokenizer's length) it is
// scenarios/validation/nemo2407-llama3-8b-8.yaml: tp 1, pp 1, cp 2 on 8 GPUs leave dp 4;
// fp8 hybrid; the distributed optimizer (zero_stage 1) with both overlaps; stack nemo;
// once the two settings the case takes from outside the training config are added (its
// header: the launcher script's optim.grad_sync_dtype bf16, and config.yaml's
// NVTE_FUSED_ATTN 0, FlashAttention-2), which the importer does not read.
// A Megatron-LM log's arguments header (megatron-7.1b.log: the format of _print_args in
// megatron/training/arguments.py at d98e8a64, with the settings of the case
// megatron-readme-h100-7.1b: tp 2, sequence parallel, distributed optimizer, bf16, the
// README's overlaps, world_size 96 = 12 nodes of 8) imports into that case.
TEST(ImportMegatronLog, HeaderImportsIntoTheValidationCase) {
  const std::string case_file = "scenarios/validation/megatron-readme-h100-7.1b.yaml";
  const auto imported =
      run_orrery("import megatron-log tests/cli/import/megatron-7.1b.log --cluster dgx-h100");
  ASSERT_EQ(imported.code, 0) << imported.err;
  EXPECT_NE(imported.out.find("cluster: {preset: dgx-h100, nodes: 12}  # world_size 96 / 8"),
            std::string::npos)
      << imported.out;
  // Unmapped attributes are listed; None and False ones are not.
  EXPECT_NE(imported.out.find("#   lr: 0.0003\n"), std::string::npos);
  EXPECT_EQ(imported.out.find("num_experts"), std::string::npos);
  const std::string imported_file = ::testing::TempDir() + "imported_log.yaml";
  std::ofstream(imported_file) << imported.out;
  expect_same_check_and_run(case_file, imported_file);
}

// A launcher's per-line prefix is cut; the layout and values do not change. Interleaving
// given as stages per rank comes back as layers per virtual stage: 30 layers, pp 3,
// virtual_pipeline_model_parallel_size 2 -> 30 / (3 x 2) = 5 layers a virtual stage,
// which the scenario writes as 2 virtual stages.
TEST(ImportMegatronLog, PrefixedLinesAndVirtualStagesPerRank) {
  std::string text = read_file(source_dir() + "/tests/cli/import/megatron-7.1b.log");
  auto replace = [&text](const std::string& from, const std::string& to) {
    const auto at = text.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    text.replace(at, from.size(), to);
  };
  replace("  pipeline_model_parallel_size .................... 1",
          "  pipeline_model_parallel_size .................... 3");
  replace("  virtual_pipeline_model_parallel_size ............ None",
          "  virtual_pipeline_model_parallel_size ............ 2");
  replace("  world_size ...................................... 96",
          "  world_size ...................................... 48");
  std::string prefixed;
  for (std::size_t at = 0; at < text.size();) {
    const auto nl = text.find('\n', at);
    prefixed += "[rank0]: " + text.substr(at, nl - at + 1);
    at = nl + 1;
  }
  const std::string log = ::testing::TempDir() + "prefixed.log";
  std::ofstream(log) << prefixed;
  const auto r = run_orrery("import megatron-log '" + log + "' --cluster dgx-h100");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("nodes: 6}  # world_size 48 / 8"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("  pp: 3  # pipeline_model_parallel_size\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("  virtual_pipeline_stages: 2  #"), std::string::npos) << r.out;
}

// --quick-geglu is gated (argument_utils.py at d98e8a64: gated_linear_unit with quick_gelu),
// so it takes SwiGLU's three matrices, at the 4 h default width (the 2/3 rule is --swiglu's);
// --squared-relu is ungated, timed as GeLU; each is listed as a difference; either with
// --swiglu is refused (asserted there).
TEST(ImportMegatron, OtherActivationsTakeTheShapeTheyHave) {
  const std::string line =
      "import megatron --cluster dgx-h100 -- --num-layers 8 --hidden-size 1024 "
      "--num-attention-heads 8 --seq-length 2048 --vocab-size 32000 --bf16 "
      "--micro-batch-size 1 --global-batch-size 8 ";
  const auto geglu = run_orrery(line + "--quick-geglu");
  ASSERT_EQ(geglu.code, 0) << geglu.err;
  EXPECT_NE(geglu.out.find("  ffn: 4096  # default of --ffn-hidden-size: 4 h\n"),
            std::string::npos)
      << geglu.out;
  EXPECT_NE(geglu.out.find("  activation: swiglu  # --quick-geglu: gated, timed as SwiGLU\n"),
            std::string::npos)
      << geglu.out;
  EXPECT_NE(geglu.out.find("#   --quick-geglu: Megatron-Core's gated quick-GeLU"),
            std::string::npos)
      << geglu.out;
  const auto relu = run_orrery(line + "--squared-relu");
  ASSERT_EQ(relu.code, 0) << relu.err;
  EXPECT_NE(relu.out.find("  activation: gelu  # --squared-relu: timed as GeLU\n"),
            std::string::npos)
      << relu.out;
  const auto both = run_orrery(line + "--swiglu --squared-relu");
  EXPECT_EQ(both.code, 2);
  EXPECT_NE(both.err.find("key '--squared-relu': given with --swiglu"), std::string::npos)
      << both.err;
}

// A header's False switches are written where Megatron-LM's value differs from orrery's
// default, with the line's attribute as their source: the overlaps off, the pipeline
// transfers held (overlap_p2p_comm False, as validate_args sets it without interleaving).
TEST(ImportMegatronLog, FalseOverlapsAreWritten) {
  std::string text = read_file(source_dir() + "/tests/cli/import/megatron-7.1b.log");
  for (const char* name : {"overlap_grad_reduce ............................. ",
                           "overlap_p2p_comm ................................ ",
                           "overlap_param_gather ............................ "}) {
    const auto at = text.find(std::string(name) + "True");
    ASSERT_NE(at, std::string::npos) << name;
    text.replace(at + std::string(name).size(), 4, "False");
  }
  const std::string log = ::testing::TempDir() + "no_overlaps.log";
  std::ofstream(log) << text;
  const auto r = run_orrery("import megatron-log '" + log + "' --cluster dgx-h100");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("  overlap_grad_reduce: false  # overlap_grad_reduce False\n"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("  overlap_param_gather: false  # overlap_param_gather False\n"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("  overlap_p2p: false  # overlap_p2p_comm\n"), std::string::npos) << r.out;
}

// The header prints every argument after validation, MoE ones included, in Python's
// forms: nargs='+' values as lists ("['core_attn', 'moe_act']"), --moe-layer-freq as the
// evaluated list, and the switches that clear a default-on fusion as that setting False
// (apply_rope_fusion, bias_gelu_fusion, gradient_accumulation_fusion). The 7.1b header
// made an MoE model: 8 experts over ep 8, the all-to-all dispatcher, an auxiliary loss
// with coefficient 0.01, its first layer dense, selective recompute of two modules,
// learned positions (so apply_rope_fusion False counts for nothing), and kv_channels equal
// to hidden / heads (no head_dim line).
TEST(ImportMegatronLog, MoeHeaderListsAndClearedFusions) {
  std::string text = read_file(source_dir() + "/tests/cli/import/megatron-7.1b.log");
  auto replace = [&text](const std::string& from, const std::string& to) {
    const auto at = text.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    text.replace(at, from.size(), to);
  };
  replace("  expert_model_parallel_size ...................... 1",
          "  expert_model_parallel_size ...................... 8");
  replace("  num_experts ..................................... None",
          "  num_experts ..................................... 8");
  replace("  recompute_granularity ........................... None",
          "  recompute_granularity ........................... selective");
  std::string freq = "[0";
  for (int i = 1; i < 30; ++i) freq += ", 1";
  freq += "]";
  replace("-------------------- end of arguments ---------------------",
          "  apply_rope_fusion ............................... False\n"
          "  bias_gelu_fusion ................................ False\n"
          "  gradient_accumulation_fusion .................... False\n"
          "  kv_channels ..................................... 128\n"
          "  moe_aux_loss_coeff .............................. 0.01\n"
          "  moe_flex_dispatcher_backend ..................... deepep\n"
          "  moe_grouped_gemm ................................ True\n"
          "  moe_layer_freq .................................. " + freq + "\n"
          "  moe_router_load_balancing_type .................. aux_loss\n"
          "  moe_token_dispatcher_type ....................... alltoall\n"
          "  recompute_modules ............................... ['core_attn', 'moe_act']\n"
          "-------------------- end of arguments ---------------------");
  const std::string log = ::testing::TempDir() + "moe.log";
  std::ofstream(log) << text;
  const auto r = run_orrery("import megatron-log '" + log + "' --cluster dgx-h100");
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* want : {
           "    first_dense_layers: 1  # moe_layer_freq\n",
           "    aux_loss: true  # moe_router_load_balancing_type aux_loss with moe_aux_loss_coeff "
           "above 0\n",
           "  ep_alltoall: direct  # moe_token_dispatcher_type\n",
           "  recompute_modules: [core_attn, moe_act]  # recompute_modules\n",
           "  stack: {activation_fusion: false, gradient_accumulation: hook}  # bias_gelu_fusion, "
           "gradient_accumulation_fusion\n",
       }) {
    EXPECT_NE(r.out.find(want), std::string::npos) << want << "\n" << r.out;
  }
  for (const char* absent : {"head_dim", "rope:", "apply_rope_fusion", "moe_layer_freq:"}) {
    EXPECT_EQ(r.out.find(absent), std::string::npos) << absent << "\n" << r.out;
  }
  const std::string file = ::testing::TempDir() + "imported_moe_log.yaml";
  std::ofstream(file) << r.out;
  const auto check = run_orrery("check '" + file + "'");
  EXPECT_EQ(check.code, 0) << check.err << r.out;
}

TEST(ImportNemo, LauncherConfigImportsIntoTheValidationCase) {
  const std::string case_file = "scenarios/validation/nemo2407-llama3-8b-8.yaml";
  const auto imported = run_orrery(
      "import nemo tests/cli/import/nemo-llama3-8b.yaml --cluster dgx-h100 --vocab-size 128256");
  ASSERT_EQ(imported.code, 0) << imported.err;
  std::string y = imported.out;
  EXPECT_NE(y.find("cluster: {preset: dgx-h100, nodes: 1}  # orrery import --cluster, "
                   "trainer.num_nodes\n"),
            std::string::npos)
      << y;
  EXPECT_NE(y.find("  cp: 2  # model.context_parallel_size\n"), std::string::npos) << y;
  EXPECT_NE(y.find("  kv_heads: 8  # model.num_query_groups\n"), std::string::npos) << y;
  EXPECT_NE(y.find("  precision: fp8  # model.fp8, model.fp8_hybrid\n"), std::string::npos) << y;
  EXPECT_NE(y.find("  activation: swiglu  # model.activation fast-swiglu\n"), std::string::npos)
      << y;
  EXPECT_NE(y.find("  zero_stage: 1  # model.optim.name distributed_fused_adam\n"),
            std::string::npos)
      << y;
  // Unmapped keys are listed with their values; the model's data paths are not.
  EXPECT_NE(y.find("#   model.init_method_std: 0.01\n"), std::string::npos) << y;
  EXPECT_EQ(y.find("my-llama"), std::string::npos) << y;
  // The settings from outside the training config (see the comment above the test).
  const std::string stack = "  stack: nemo  # a NeMo config\n";
  const std::string precision = "  precision: fp8  # model.fp8, model.fp8_hybrid\n";
  ASSERT_NE(y.find(stack), std::string::npos) << y;
  ASSERT_NE(y.find(precision), std::string::npos) << y;
  y.replace(y.find(stack), stack.size(), "  stack: {preset: nemo, attention: flash2}\n");
  // The recipe is read: delayed scaling with the config's 1024-step amax history.
  EXPECT_NE(y.find("  fp8: {format: hybrid, scaling: delayed, amax_history: 1024}  # "),
            std::string::npos)
      << y;
  y.replace(y.find(precision), precision.size(), precision + "  gradient_dtype: bf16\n");
  const std::string imported_file = ::testing::TempDir() + "imported_nemo.yaml";
  std::ofstream(imported_file) << y;
  expect_same_check_and_run(case_file, imported_file);
}

// The overlaps' defaults follow NeMo 1.x's optimizer: Apex's DistributedFusedAdam overlaps
// the gradient reduction and not the parameter gather unless told (overlap_grad_sync True,
// overlap_param_sync False; NVIDIA/apex d571f3ee); Megatron-Core's distributed optimizer
// neither (optim.overlap_grad_sync and optim.overlap_param_gather, False when absent:
// megatron_gpt_model.py at NVIDIA/NeMo v2.0.0, lines 554 and 561). orrery's own defaults
// are both on, so an absent off is written.
TEST(ImportNemo, OverlapDefaultsFollowTheOptimizer) {
  std::string config = read_file(source_dir() + "/tests/cli/import/nemo-llama3-8b.yaml");
  for (const char* key : {"    overlap_grad_sync: true\n", "    overlap_param_sync: true\n"}) {
    ASSERT_NE(config.find(key), std::string::npos) << key;
    config.erase(config.find(key), std::string(key).size());
  }
  const std::string file = ::testing::TempDir() + "nemo_overlaps.yaml";
  std::ofstream(file) << config;
  const auto apex = run_orrery("import nemo " + file + " --cluster dgx-h100 --vocab-size 128256");
  ASSERT_EQ(apex.code, 0) << apex.err;
  EXPECT_EQ(apex.out.find("overlap_grad_reduce"), std::string::npos) << apex.out;
  EXPECT_NE(apex.out.find("  overlap_param_gather: false  # default of "
                          "model.optim.overlap_param_sync: False\n"),
            std::string::npos)
      << apex.out;
  // An explicit false counts under Apex's optimizer too.
  std::string explicit_off = config;
  const std::string optim = "  optim:\n";
  ASSERT_NE(explicit_off.find(optim), std::string::npos);
  explicit_off.insert(explicit_off.find(optim) + optim.size(), "    overlap_grad_sync: false\n");
  std::ofstream(file) << explicit_off;
  const auto off = run_orrery("import nemo " + file + " --cluster dgx-h100 --vocab-size 128256");
  ASSERT_EQ(off.code, 0) << off.err;
  EXPECT_NE(off.out.find("  overlap_grad_reduce: false  # model.optim.overlap_grad_sync false\n"),
            std::string::npos)
      << off.out;
  // Without a distributed optimizer, under megatron_amp_O2 with pp above 1, NeMo all-reduces
  // the gradients after the pipeline (megatron_gpt_model.py lines 902-921).
  std::string fused = config;
  const std::string adam_name = "    name: distributed_fused_adam";
  fused.replace(fused.find(adam_name), adam_name.size(), "    name: fused_adam");
  const std::string pp1 = "  pipeline_model_parallel_size: 1";
  ASSERT_NE(fused.find(pp1), std::string::npos);
  fused.replace(fused.find(pp1), pp1.size(), "  pipeline_model_parallel_size: 2");
  std::ofstream(file) << fused;
  const auto after = run_orrery("import nemo " + file + " --cluster dgx-h100 --vocab-size 128256");
  ASSERT_EQ(after.code, 0) << after.err;
  EXPECT_NE(after.out.find("  overlap_grad_reduce: false  # model.optim.name without a "
                           "distributed optimizer"),
            std::string::npos)
      << after.out;
  const std::string adam = "    name: distributed_fused_adam";
  ASSERT_NE(config.find(adam), std::string::npos);
  config.replace(config.find(adam), adam.size(), "    name: mcore_distributed_optim");
  std::ofstream(file) << config;
  const auto mcore = run_orrery("import nemo " + file + " --cluster dgx-h100 --vocab-size 128256");
  ASSERT_EQ(mcore.code, 0) << mcore.err;
  EXPECT_NE(mcore.out.find("  overlap_grad_reduce: false  # default of "
                           "model.optim.overlap_grad_sync: False\n"),
            std::string::npos)
      << mcore.out;
  EXPECT_NE(mcore.out.find("  overlap_param_gather: false  # default of "
                           "model.optim.overlap_param_gather: False\n"),
            std::string::npos)
      << mcore.out;
}

// NeMo 1.x passes Megatron-Core's ModelParallelConfig defaults (core_r0.9.0): the fused
// cross-entropy and the pipeline-transfer overlap off unless the config turns them on, so an
// absent key is written false (orrery's nemo stack and overlap_p2p defaults are on);
// ub_tp_comm_overlap is turned off without sequence parallelism (megatron_base_model.py at
// v2.0.0); optim.grad_sync_dtype bf16 under mcore_distributed_optim reduces bf16 gradients;
// kv_channels is passed through; model.fsdp (NeMo's torch FSDP strategy) is refused.
TEST(ImportNemo, ModelParallelConfigDefaultsAndPassedKeys) {
  std::string config = read_file(source_dir() + "/tests/cli/import/nemo-llama3-8b.yaml");
  auto replace = [&config](const std::string& from, const std::string& to) {
    const auto at = config.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    config.replace(at, from.size(), to);
  };
  replace("  cross_entropy_loss_fusion: true\n", "");
  replace("  overlap_p2p_comm: true\n", "");
  replace("  ub_tp_comm_overlap: false", "  ub_tp_comm_overlap: true");
  replace("  kv_channels: null", "  kv_channels: 256");
  replace("    name: distributed_fused_adam", "    name: mcore_distributed_optim\n"
                                               "    grad_sync_dtype: bf16");
  const std::string file = ::testing::TempDir() + "nemo_defaults.yaml";
  std::ofstream(file) << config;
  const auto r = run_orrery("import nemo " + file + " --cluster dgx-h100 --vocab-size 128256");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("  cross_entropy_fusion: false  # default of "
                       "model.cross_entropy_loss_fusion: False\n"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("  overlap_p2p: false  # default of model.overlap_p2p_comm: False\n"),
            std::string::npos)
      << r.out;
  EXPECT_EQ(r.out.find("tp_comm_overlap"), std::string::npos) << r.out;  // no sequence parallel
  EXPECT_NE(r.out.find("  gradient_dtype: bf16  # model.optim.grad_sync_dtype bf16\n"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("  head_dim: 256  # model.kv_channels"), std::string::npos) << r.out;
  replace("  kv_channels: 256", "  kv_channels: 256\n  fsdp: true");
  std::ofstream(file) << config;
  const auto fsdp = run_orrery("import nemo " + file + " --cluster dgx-h100 --vocab-size 128256");
  EXPECT_EQ(fsdp.code, 2);
  EXPECT_NE(fsdp.err.find("key 'model.fsdp' = 'true'"), std::string::npos) << fsdp.err;
}

// model.fp8_params (TE fp8_model_init weights) under NeMo's distributed optimizer: the
// weights are gathered in fp8 (DistributedFusedAdam's uint8 shards), so
// communication.param_allgather fp8 joins the delayed recipe; under fused_adam the key is
// listed as unmapped.
TEST(ImportNemo, Fp8ParamsGatherInFp8UnderTheDistributedOptimizer) {
  std::string config = read_file(source_dir() + "/tests/cli/import/nemo-llama3-8b.yaml");
  const std::string hybrid = "  fp8_hybrid: True";
  ASSERT_NE(config.find(hybrid), std::string::npos);
  config.replace(config.find(hybrid), hybrid.size(), "  fp8_params: True\n" + hybrid);
  const std::string file = ::testing::TempDir() + "nemo_fp8_params.yaml";
  std::ofstream(file) << config;
  const auto r =
      run_orrery("import nemo " + file + " --cluster dgx-h100 --vocab-size 128256");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("  fp8: {format: hybrid, scaling: delayed, amax_history: 1024, "
                       "communication: {param_allgather: fp8}}  # "),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find(", model.fp8_params\n"), std::string::npos) << r.out;
  const std::string adam = "    name: distributed_fused_adam";
  ASSERT_NE(config.find(adam), std::string::npos);
  config.replace(config.find(adam), adam.size(), "    name: fused_adam");
  std::ofstream(file) << config;
  const auto plain =
      run_orrery("import nemo " + file + " --cluster dgx-h100 --vocab-size 128256");
  ASSERT_EQ(plain.code, 0) << plain.err;
  EXPECT_EQ(plain.out.find("param_allgather"), std::string::npos) << plain.out;
  EXPECT_NE(plain.out.find("#   model.fp8_params: True\n"), std::string::npos) << plain.out;
}

// NeMo's own example config (tests/cli/import/nemo-gpt-config.yaml): GPT defaults it
// states (LayerNorm, learned positions, tied embeddings, bias, dropout 0.1, gelu, bf16)
// come out as such, and its interpolations of unmapped keys are listed as written.
TEST(ImportNemo, ExampleConfigChecks) {
  const auto imported = run_orrery(
      "import nemo tests/cli/import/nemo-gpt-config.yaml --cluster dgx-h100 --vocab-size 50257");
  ASSERT_EQ(imported.code, 0) << imported.err;
  const std::string& y = imported.out;
  // GPT-2's 50257 tokens padded to a multiple of 128 x tp 1: 393 x 128 = 50304.
  EXPECT_NE(y.find("  vocab: 50304  #"), std::string::npos) << y;
  EXPECT_NE(y.find("  norm: layernorm  # model.normalization\n"), std::string::npos) << y;
  EXPECT_NE(y.find("  tied_embeddings: true  # model.share_embeddings_and_output_weights\n"),
            std::string::npos)
      << y;
  EXPECT_NE(y.find("  dropout: true  #"), std::string::npos) << y;
  EXPECT_NE(y.find("  precision: bf16  # trainer.precision bf16\n"), std::string::npos) << y;
  EXPECT_NE(y.find("#   model.max_position_embeddings: ${.encoder_seq_length}\n"),
            std::string::npos)
      << y;
  const std::string file = ::testing::TempDir() + "imported_gpt.yaml";
  std::ofstream(file) << y;
  const auto check = run_orrery("check '" + file + "'");
  EXPECT_EQ(check.code, 0) << check.err;
}

// NeMo 1.x passes the MoE routing keys to TransformerConfig under Megatron-Core's names, so
// they map as the Megatron-LM arguments do: here 8 experts over ep 8 on the all-to-all
// dispatcher with an auxiliary loss; without the dispatcher key TransformerConfig's
// allgather default is refused, naming the key.
TEST(ImportNemo, MoeRoutingKeysMapAsMegatronArguments) {
  std::string text = read_file(source_dir() + "/tests/cli/import/nemo-gpt-config.yaml");
  const std::string from = "  expert_model_parallel_size: 1 # expert model parallelism";
  const auto at = text.find(from);
  ASSERT_NE(at, std::string::npos);
  const std::string moe =
      "  expert_model_parallel_size: 8\n  num_moe_experts: 8\n  moe_aux_loss_coeff: 0.01\n";
  std::string routed = text;
  routed.replace(at, from.size(), moe + "  moe_token_dispatcher_type: alltoall");
  const std::string file = ::testing::TempDir() + "nemo_moe.yaml";
  std::ofstream(file) << routed;
  const auto r = run_orrery("import nemo '" + file + "' --cluster dgx-h100 --vocab-size 50257");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("  ep_alltoall: direct  # model.moe_token_dispatcher_type\n"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("    aux_loss: true  #"), std::string::npos) << r.out;
  // The kernel switches left at TransformerConfig's default (off), under NeMo's key names
  // (grouped GEMM not: one expert a rank, which SequentialMLP runs on the whole batch).
  EXPECT_NE(r.out.find("#   no model.moe_permute_fusion: Megatron-Core runs the token "
                       "permutation as PyTorch ops"),
            std::string::npos)
      << r.out;
  EXPECT_EQ(r.out.find("moe_grouped_gemm"), std::string::npos) << r.out;
  std::string grouped = text;
  grouped.replace(at, from.size(),
                  moe + "  moe_token_dispatcher_type: alltoall\n  moe_grouped_gemm: true\n"
                        "  moe_permute_fusion: true\n  moe_router_fusion: true");
  std::ofstream(file) << grouped;
  const auto fused =
      run_orrery("import nemo '" + file + "' --cluster dgx-h100 --vocab-size 50257");
  ASSERT_EQ(fused.code, 0) << fused.err;
  EXPECT_EQ(fused.out.find("Differs from"), std::string::npos) << fused.out;
  EXPECT_EQ(fused.out.find("moe_grouped_gemm"), std::string::npos) << fused.out;
  // The expert bias with sigmoid scores (TransformerConfig's condition) and no aux loss.
  std::string biased = text;
  biased.replace(at, from.size(),
                 "  expert_model_parallel_size: 8\n  num_moe_experts: 8\n"
                 "  moe_router_enable_expert_bias: true\n  moe_router_score_function: sigmoid\n"
                 "  moe_token_dispatcher_type: alltoall");
  std::ofstream(file) << biased;
  const auto bias = run_orrery("import nemo '" + file + "' --cluster dgx-h100 --vocab-size 50257");
  ASSERT_EQ(bias.code, 0) << bias.err;
  EXPECT_NE(bias.out.find("    aux_loss: false  # model.moe_router_enable_expert_bias"),
            std::string::npos)
      << bias.out;
  std::string gathered = text;
  gathered.replace(at, from.size(), moe);
  std::ofstream(file) << gathered;
  const auto refused =
      run_orrery("import nemo '" + file + "' --cluster dgx-h100 --vocab-size 50257");
  EXPECT_EQ(refused.code, 2);
  EXPECT_NE(refused.err.find("key 'model.moe_token_dispatcher_type'"), std::string::npos)
      << refused.err;
}

// Interpolations of mapped keys: absolute, from a launcher's `training.` root, and
// relative (`${.x}`: from the mapping holding the key); a resolver is refused.
TEST(ImportNemo, InterpolationsResolveOrAreRefused) {
  const std::string base =
      "trainer: {num_nodes: 2, devices: 8, precision: bf16-mixed}\n"
      "model:\n"
      "  micro_batch_size: 1\n"
      "  global_batch_size: ${training.model.gbs}\n"
      "  gbs: 64\n"
      "  num_layers: 4\n"
      "  hidden_size: 1024\n"
      "  ffn_hidden_size: 4096\n"
      "  num_attention_heads: 16\n"
      "  sequence_parallel: true\n"
      "  optim: {name: fused_adam, seq: 2048}\n";
  const std::string good = ::testing::TempDir() + "nemo_interp.yaml";
  std::ofstream(good) << base << "  encoder_seq_length: ${model.optim.seq}\n"
                      << "  tensor_model_parallel_size: ${.optim.tp}\n";
  // `${.optim.tp}` has no target: refused with the file, line, key and value.
  auto r = run_orrery("import nemo '" + good + "' --cluster dgx-h100 --vocab-size 32000");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find(":13: key 'model.tensor_model_parallel_size' = '${.optim.tp}': "
                       "the interpolation's target .optim.tp is not a value of this file"),
            std::string::npos)
      << r.err;
  std::ofstream(good) << base << "  encoder_seq_length: ${model.optim.seq}\n"
                      << "  tensor_model_parallel_size: ${.optim.name}x\n";
  r = run_orrery("import nemo '" + good + "' --cluster dgx-h100 --vocab-size 32000");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("key 'model.tensor_model_parallel_size' = 'fused_adamx': expected a whole "
                       "number >= 1"),
            std::string::npos)
      << r.err;
  std::ofstream(good) << base << "  encoder_seq_length: ${model.optim.seq}\n"
                      << "  tensor_model_parallel_size: 2\n";
  r = run_orrery("import nemo '" + good + "' --cluster dgx-h100 --vocab-size 32000");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("  seq_len: 2048  # model.encoder_seq_length\n"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("  global_batch: 64  # model.global_batch_size\n"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("nodes: 2}"), std::string::npos) << r.out;
  // With tp 2 sequence parallelism stays on (NeMo drops it with tp 1).
  EXPECT_NE(r.out.find("  sequence_parallel: true  # model.sequence_parallel\n"),
            std::string::npos)
      << r.out;
  std::ofstream(good) << base << "  encoder_seq_length: ${multiply:1024, 2}\n";
  r = run_orrery("import nemo '" + good + "' --cluster dgx-h100 --vocab-size 32000");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("key 'model.encoder_seq_length' = '${multiply:1024, 2}': an "
                       "interpolation orrery cannot resolve"),
            std::string::npos)
      << r.err;
}

// tests/cli/import/torchtitan-llama3-70b.toml is torchtitan's published Llama 3 70B job
// (v0.2.1; "a preset for 64 A100 GPUs"): on 8 DGX-A100 nodes tp 8 leaves
// data_parallel_shard_degree -1 = 64 / 8 = 8 FSDP2 ranks; local batch 8 x dp 8 = 64.
// FFN of the 70B flavor (model/model.py FeedForward): 4 x 8192 = 32768; int(2/3 x) =
// 21845; int(1.3 x) = 28398; up to a multiple of 4096: 7 x 4096 = 28672.
TEST(ImportTorchtitan, Llama3_70bJobImportsIntoItsLayout) {
  const auto imported = run_orrery(
      "import torchtitan tests/cli/import/torchtitan-llama3-70b.toml --cluster dgx-a100 "
      "--nodes 8");
  ASSERT_EQ(imported.code, 0) << imported.err;
  const std::string& y = imported.out;
  for (const char* want : {
           "  ffn: 28672  #",
           "  vocab: 128256  #",
           "  tp: 8  # parallelism.tensor_parallel_degree\n",
           "  dp: 8  # data_parallel_replicate_degree 1 x data_parallel_shard_degree 8 "
           "(-1: the GPUs left)\n",
           "  zero_stage: 3  #",
           "  microbatch: 8  # training.local_batch_size\n",
           "  global_batch: 64  #",
           "  stack: fsdp2  # torchtitan\n",
           "  recompute: full  # activation_checkpoint.mode\n",
           "#   optimizer.lr = 1.5e-4\n",
       }) {
    EXPECT_NE(y.find(want), std::string::npos) << want << "\n" << y;
  }
  const std::string file = ::testing::TempDir() + "imported_titan.yaml";
  std::ofstream(file) << y;
  const auto check = run_orrery("check '" + file + "'");
  ASSERT_EQ(check.code, 0) << check.err;
  EXPECT_NE(check.out.find("tp 8 x pp 1 x dp 8 x cp 1, ep 1, sequence parallel"), std::string::npos)
      << check.out;
  EXPECT_NE(check.out.find("ZeRO stage 3 (fsdp2, gathers per layer) over 8 ranks"),
            std::string::npos)
      << check.out;
}

// Compile, HSDP and a foreach optimizer on 2 DGX-H100 nodes: replicate 2 x shard 8 = 16
// GPUs, the shards within a node. The 405B flavor's FFN: 4 x 16384 = 65536; int(2/3 x)
// = 43690; int(1.2 x) = 52428; up to a multiple of 4096: 13 x 4096 = 53248.
TEST(ImportTorchtitan, CompileHsdpAndFlavorFfn) {
  const std::string file = ::testing::TempDir() + "titan_hsdp.toml";
  std::ofstream(file) << "[model]\nname = \"llama3\"\nflavor = \"405B\"\n"
                         "[training]\nlocal_batch_size = 1\nseq_len = 4096\n"
                         "global_batch_size = 64\n"
                         "[parallelism]\ndata_parallel_replicate_degree = 2\n"
                         "data_parallel_shard_degree = 8\n"
                         "[optimizer]\nimplementation = \"foreach\"\n"
                         "[activation_checkpoint]\nmode = \"selective\"\n"
                         "selective_ac_option = \"1\"\n"
                         "[compile]\nenable = true\ncomponents = [\n  \"model\",\n  \"loss\",\n]\n";
  const auto r = run_orrery("import torchtitan '" + file + "' --cluster dgx-h100 --nodes 2");
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* want : {
           "  ffn: 53248  #",
           "  dp: 16  #",
           "  sharding: hybrid  #",
           "  global_batch: 64  # training.global_batch_size\n",
           "  stack: {preset: fsdp2, compile: true, optimizer: foreach}  #",
           "  recompute: full  # activation_checkpoint.selective_ac_option: every layer\n",
           "# Every key was mapped.\n",
       }) {
    EXPECT_NE(r.out.find(want), std::string::npos) << want << "\n" << r.out;
  }
  // check shards over the 8 GPUs of a node and says the 2 nodes hold replicas.
  const std::string yaml = ::testing::TempDir() + "titan_hsdp.yaml";
  std::ofstream(yaml) << r.out;
  const auto check = run_orrery("check '" + yaml + "'");
  ASSERT_EQ(check.code, 0) << check.err;
  EXPECT_NE(check.out.find("(fsdp2, gathers per layer) over 8 ranks, replicated 2 times (hybrid)"),
            std::string::npos)
      << check.out;
}

// torchao float8 through torchtitan's quantize.linear.float8 converter (v0.2.1): no
// recipe_name is tensor-wise dynamic scaling (current, hybrid); every nn.Linear but the
// filtered ones runs in fp8, the head too; weights cast on every call; the FSDP2 float8
// gather where the shard degree is above 1. Row-wise recipes map to theirs; a filter that
// splits a group, a recipe with the float8 gather and other converters are refused.
TEST(ImportTorchtitan, Float8ConverterMapsToTheFp8Recipe) {
  const std::string file = ::testing::TempDir() + "titan_float8.toml";
  auto job = [&](const std::string& converters, const std::string& float8,
                 const std::string& parallelism = "") {
    std::ofstream(file) << "[model]\nname = \"llama3\"\nflavor = \"8B\"\nconverters = " +
                               converters +
                               "\n[training]\nlocal_batch_size = 1\nseq_len = 8192\n" +
                               parallelism +
                               "[activation_checkpoint]\nmode = \"none\"\n"
                               "[quantize.linear.float8]\n" +
                               float8;
    return run_orrery("import torchtitan '" + file + "' --cluster dgx-h100 --nodes 1");
  };
  auto fp8_line = [](const std::string& out) {
    const auto at = out.find("  fp8: {");
    return at == std::string::npos ? std::string() : out.substr(at, out.find('\n', at) - at);
  };
  const auto tensorwise = job("[\"quantize.linear.float8\"]",
                              "enable_fsdp_float8_all_gather = true\n"
                              "precompute_float8_dynamic_scale_for_fsdp = true\n");
  ASSERT_EQ(tensorwise.code, 0) << tensorwise.err;
  EXPECT_NE(tensorwise.out.find("  precision: fp8  # model.converters quantize.linear.float8"),
            std::string::npos)
      << tensorwise.out;
  EXPECT_EQ(fp8_line(tensorwise.out),
            "  fp8: {format: hybrid, scaling: current, gemms: [qkv, proj, fc1, fc2, head], "
            "weight_cache: false, communication: {param_allgather: fp8}}  # no recipe_name: "
            "torchao tensor-wise, no filter_fqns: every nn.Linear, a Float8Linear casts its "
            "weight on every call, quantize.linear.float8.enable_fsdp_float8_all_gather");
  // The precomputed scales are not modelled: listed as unmapped.
  EXPECT_NE(tensorwise.out.find("#   quantize.linear.float8.precompute_float8_dynamic_scale_for_"
                                "fsdp = true\n"),
            std::string::npos)
      << tensorwise.out;
  const auto rowwise =
      job("[\"quantize.linear.float8\"]", "recipe_name = \"rowwise\"\nfilter_fqns = [\"output\"]\n");
  ASSERT_EQ(rowwise.code, 0) << rowwise.err;
  EXPECT_EQ(fp8_line(rowwise.out),
            "  fp8: {scaling: rowwise, gemms: [qkv, proj, fc1, fc2], weight_cache: false}  # "
            "quantize.linear.float8.recipe_name rowwise, quantize.linear.float8.filter_fqns, a "
            "Float8Linear casts its weight on every call");
  for (const auto* r : {&tensorwise, &rowwise}) {
    const std::string imported = ::testing::TempDir() + "titan_float8.yaml";
    std::ofstream(imported) << r->out;
    EXPECT_EQ(run_orrery("check '" + imported + "'").code, 0) << r->out;
  }
  // v0.2.1's own llama3_405b.toml names the converter "float8", v0.1's name, which v0.2.1's
  // registry does not hold: refused, as torchtitan would stop.
  const auto titan405 = run_orrery(
      "import torchtitan tests/cli/import/torchtitan-llama3-405b.toml --cluster dgx-h100 "
      "--nodes 16");
  EXPECT_EQ(titan405.code, 2);
  EXPECT_NE(titan405.err.find("no converter named float8"), std::string::npos) << titan405.err;
  // Tensor parallelism keeps bf16 gathers (the llama3 TP plan's float8 styles need that
  // name); filters are taken together: wq, wk, wv and output are the qkv group and the
  // head, "w2" the fc2 group.
  const auto tp2 = job("[\"quantize.linear.float8\"]",
                       "filter_fqns = [\"attention.wq\", \"attention.wk\", \"attention.wv\", "
                       "\"output\", \"w2\"]\n",
                       "[parallelism]\ntensor_parallel_degree = 2\n");
  ASSERT_EQ(tp2.code, 0) << tp2.err;
  EXPECT_NE(fp8_line(tp2.out).find("gemms: [proj, fc1], weight_cache: false}"), std::string::npos)
      << tp2.out;
  EXPECT_EQ(tp2.out.find("tp_allgather"), std::string::npos) << tp2.out;
  // Refused, each with what names the cause: one layer's filter (2 of fc1's 64 modules), a
  // filter of part of a group, the converter twice, emulation without a recipe, a recipe
  // with the float8 FSDP gather, another converter.
  const std::string f8 = "[\"quantize.linear.float8\"]";
  const struct {
    std::string converters, float8, why;
  } refused[] = {
      {f8, "filter_fqns = [\"layers.1.\"]\n", "filters 2 of the 64 linear layers of group fc1"},
      {f8, "filter_fqns = [\"wq\"]\n", "filters 32 of the 96 linear layers of group qkv"},
      {"[\"quantize.linear.float8\", \"quantize.linear.float8\"]", "", "twice"},
      {f8, "emulate = true\n", "key 'quantize.linear.float8.emulate'"},
      {f8, "recipe_name = \"tensorwise\"\nenable_fsdp_float8_all_gather = true\n",
       "key 'quantize.linear.float8.enable_fsdp_float8_all_gather'"},
      {"[\"quantize.linear.mx\"]", "", "key 'model.converters'"},
  };
  for (const auto& r : refused) {
    const auto out = job(r.converters, r.float8);
    EXPECT_EQ(out.code, 2) << r.float8;
    EXPECT_NE(out.err.find(r.why), std::string::npos) << out.err;
  }
  // Tensor parallelism without sharding: torchtitan turns mixed precision off
  // (maybe_enable_amp), so the step is fp32 whatever mixed_precision_param says, and float8
  // (bf16 beside its GEMMs in orrery) is refused there. With replicas beside it (DDP x TP)
  // torchtitan raises ("DDP has not supported > 1D parallelism", parallelize.py).
  const std::string tp_only =
      "[parallelism]\ndata_parallel_shard_degree = 1\ntensor_parallel_degree = 8\n";
  const auto fp32 = job("[]", "", tp_only);
  ASSERT_EQ(fp32.code, 0) << fp32.err;
  EXPECT_NE(fp32.out.find("  precision: fp32  # tp or pp without FSDP"), std::string::npos)
      << fp32.out;
  EXPECT_EQ(fp32.out.find("zero_stage"), std::string::npos) << fp32.out;
  EXPECT_EQ(job(f8, "", tp_only).code, 2);
  const std::string ddp_tp =
      "[parallelism]\ndata_parallel_replicate_degree = 4\ndata_parallel_shard_degree = 1\n"
      "tensor_parallel_degree = 2\n";
  const auto ddp = job("[]", "", ddp_tp);
  EXPECT_EQ(ddp.code, 2);
  EXPECT_NE(ddp.err.find("DDP with tensor or pipeline parallelism"), std::string::npos)
      << ddp.err;
}

// Pipeline parallelism: 70B's 80 layers plus the embedding's and the output's weight (1
// each, torchtitan's default) = 82 split evenly over 2 stages: Megatron-LM's
// account_for_embedding/loss; reshard_after_forward's "default" is off with pp. Over 3
// stages 82 does not divide: refused.
TEST(ImportTorchtitan, PipelineMapsOrIsRefused) {
  const std::string file = ::testing::TempDir() + "titan_pp.toml";
  const std::string head =
      "[model]\nflavor = \"70B\"\n[training]\nlocal_batch_size = 4\nseq_len = 4096\n"
      "[activation_checkpoint]\nmode = \"full\"\n"
      "[parallelism]\ntensor_parallel_degree = 8\npipeline_parallel_microbatch_size = 1\n";
  std::ofstream(file) << head << "pipeline_parallel_degree = 2\n";
  auto r = run_orrery("import torchtitan '" + file + "' --cluster dgx-h100 --nodes 4");
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* want :
       {"  pp: 2  #", "  dp: 2  #", "  schedule: 1f1b  #", "  account_for_embedding: true  #",
        "  account_for_loss: true  #", "  reshard_after_forward: false  #", "  microbatch: 1  #",
        "  global_batch: 8  #"}) {
    EXPECT_NE(r.out.find(want), std::string::npos) << want << "\n" << r.out;
  }
  const std::string imported = ::testing::TempDir() + "titan_pp.yaml";
  std::ofstream(imported) << r.out;
  EXPECT_EQ(run_orrery("check '" + imported + "'").code, 0);
  std::ofstream(file) << head << "pipeline_parallel_degree = 3\n";
  r = run_orrery("import torchtitan '" + file + "' --cluster dgx-h100 --nodes 3");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("key 'parallelism.pipeline_parallel_degree' = '3': torchtitan splits "
                       "the 82 layers"),
            std::string::npos)
      << r.err;
}

// fsdp_reshard_after_forward "always" reshards torchtitan's [norm, output] unit too
// (apply_fsdp_to_decoder, torchtitan/distributed/fsdp.py at b5bcd76c); under "default"
// the file leaves it to training.stack fsdp2, which keeps that unit gathered.
TEST(ImportTorchtitan, AlwaysReshardsTheOutputUnitToo) {
  const std::string file = ::testing::TempDir() + "titan_always.toml";
  const std::string head =
      "[model]\nflavor = \"8B\"\n[training]\nlocal_batch_size = 1\nseq_len = 8192\n"
      "[activation_checkpoint]\nmode = \"none\"\n[parallelism]\n";
  std::ofstream(file) << head << "fsdp_reshard_after_forward = \"always\"\n";
  auto r = run_orrery("import torchtitan '" + file + "' --cluster dgx-h100 --nodes 1");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("  reshard_after_forward: true  #"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("  reshard_output_after_forward: true  # "
                       "parallelism.fsdp_reshard_after_forward: the [norm, output] unit too"),
            std::string::npos)
      << r.out;
  const std::string imported = ::testing::TempDir() + "titan_always.yaml";
  std::ofstream(imported) << r.out;
  EXPECT_EQ(run_orrery("check '" + imported + "'").code, 0);
  std::ofstream(file) << head;
  r = run_orrery("import torchtitan '" + file + "' --cluster dgx-h100 --nodes 1");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.find("reshard_output_after_forward"), std::string::npos) << r.out;
}

// Keys read as torchtitan v0.2.1 reads them: schedule names in any case (PyTorch's
// get_schedule_class); training.dtype bfloat16 keeps no fp32 weights and bf16 moments, its
// reduce-scatters fp32 (config/job_config.py); async tensor parallelism overlaps the TP collectives and
// needs compile (distributed/tensor_parallel.py). Refused as torchtitan refuses them or as
// orrery cannot run them: gradient accumulation under pp (a pipeline schedule per step in
// train.py), a global batch of 0 (asserted), a sequence not divisible by tp x 2 x cp (4094)
// (asserted in parallelize.py), an explicit module split over the stages.
TEST(ImportTorchtitan, KeysAsTorchtitanReadsThem) {
  const std::string file = ::testing::TempDir() + "titan_keys.toml";
  auto job = [&file](const std::string& text) {
    std::ofstream(file) << "[model]\nflavor = \"8B\"\n[activation_checkpoint]\nmode = \"full\"\n"
                           "[training]\nlocal_batch_size = 2\nseq_len = 4096\n"
                        << text;
    return run_orrery("import torchtitan '" + file + "' --cluster dgx-h100 --nodes 2");
  };
  const auto bf16 = job("dtype = \"bfloat16\"\n");
  ASSERT_EQ(bf16.code, 0) << bf16.err;
  EXPECT_NE(bf16.out.find("  main_params_dtype: none  # training.dtype bfloat16"),
            std::string::npos)
      << bf16.out;
  // The reduce-scatters stay fp32 (mixed_precision_reduce takes float32 only).
  EXPECT_EQ(bf16.out.find("gradient_dtype"), std::string::npos) << bf16.out;
  const auto async_tp = job("[compile]\nenable = true\n[parallelism]\ntensor_parallel_degree = 2\n"
                            "enable_async_tensor_parallel = true\n");
  ASSERT_EQ(async_tp.code, 0) << async_tp.err;
  EXPECT_NE(async_tp.out.find("  tp_comm_overlap: true  # parallelism.enable_async_tensor_parallel"),
            std::string::npos)
      << async_tp.out;
  EXPECT_EQ(job("[parallelism]\ntensor_parallel_degree = 2\nenable_async_tensor_parallel = true\n")
                .code,
            2);
  const auto lower = job("[parallelism]\npipeline_parallel_degree = 2\n"
                         "pipeline_parallel_schedule = \"gpipe\"\n");
  ASSERT_EQ(lower.code, 0) << lower.err;
  EXPECT_NE(lower.out.find("  schedule: gpipe"), std::string::npos) << lower.out;
  const auto accumulation = job("global_batch_size = 64\n[parallelism]\n"
                                "pipeline_parallel_degree = 2\n");
  EXPECT_EQ(accumulation.code, 2);
  EXPECT_NE(accumulation.err.find("4 steps of gradient accumulation under pipeline parallelism"),
            std::string::npos)
      << accumulation.err;
  const auto zero = job("global_batch_size = 0\n");
  EXPECT_EQ(zero.code, 2);
  EXPECT_NE(zero.err.find("key 'training.global_batch_size' = '0'"), std::string::npos) << zero.err;
  EXPECT_EQ(job("[parallelism]\ncontext_parallel_degree = 4\n").code, 0);  // 4096 = 512 x 8
  std::ofstream(file) << "[model]\nflavor = \"8B\"\n[activation_checkpoint]\nmode = \"full\"\n"
                         "[training]\nseq_len = 4094\n[parallelism]\ntensor_parallel_degree = 2\n";
  const auto odd = run_orrery("import torchtitan '" + file + "' --cluster dgx-h100 --nodes 2");
  EXPECT_EQ(odd.code, 2);
  EXPECT_NE(odd.err.find("not a multiple of tp x 2 x cp = 4"), std::string::npos) << odd.err;
  const auto fqns = job("[parallelism]\npipeline_parallel_degree = 2\n"
                        "module_fqns_per_model_part = [[\"tok_embeddings\"], [\"norm\"]]\n");
  EXPECT_EQ(fqns.code, 2);
  EXPECT_NE(fqns.err.find("key 'parallelism.module_fqns_per_model_part'"), std::string::npos)
      << fqns.err;
}

// --hf-config: a torchtitan job for a model other than llama3 (torchtitan's qwen3) takes
// the model from its Hugging Face config (tests/scenario/data/hf/qwen3-8b.json: 36 layers,
// hidden 4096); 36 layers + 2 split evenly over pp 2.
TEST(ImportTorchtitan, HfConfigStandsForTheFlavor) {
  const std::string file = ::testing::TempDir() + "titan_qwen.toml";
  std::ofstream(file) << "[model]\nname = \"qwen3\"\nflavor = \"8B\"\n"
                         "[training]\nlocal_batch_size = 2\nseq_len = 4096\n"
                         "[parallelism]\npipeline_parallel_degree = 2\n"
                         "[activation_checkpoint]\nmode = \"none\"\n";
  const std::string hf = source_dir() + "/tests/scenario/data/hf/qwen3-8b.json";
  auto r =
      run_orrery("import torchtitan '" + file + "' --cluster dgx-h100 --hf-config '" + hf + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("  hf_config: " + hf + "  # --hf-config, for model.name qwen3 flavor 8B\n"),
            std::string::npos)
      << r.out;
  const std::string imported = ::testing::TempDir() + "titan_qwen.yaml";
  std::ofstream(imported) << r.out;
  const auto check = run_orrery("check '" + imported + "'");
  ASSERT_EQ(check.code, 0) << check.err;
  EXPECT_NE(check.out.find("36 layers, hidden 4096"), std::string::npos) << check.out;
  // Without it, a model other than llama3 is refused by name.
  r = run_orrery("import torchtitan '" + file + "' --cluster dgx-h100");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find(":2: key 'model.name' = 'qwen3': orrery knows torchtitan's llama3 "
                       "flavors: give the model's Hugging Face config with --hf-config"),
            std::string::npos)
      << r.err;
}

}  // namespace
}  // namespace orrery
