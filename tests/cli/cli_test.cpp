// End-to-end tests of the `orrery` binary: exit codes, output formats, determinism.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>

#include "tests/cli/run.h"

namespace orrery {
namespace {

using testing::run_orrery;

TEST(Cli, CheckQuickstartTable) {
  const auto r = run_orrery("check scenarios/quickstart.yaml");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(r.err.empty()) << r.err;
  EXPECT_NE(r.out.find("memory per GPU"), std::string::npos);
  EXPECT_NE(r.out.find("verdict: "), std::string::npos);
}

TEST(Cli, CheckJsonHasTheDocumentedKeys) {
  const auto r = run_orrery("check scenarios/quickstart.yaml --format json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  for (const char* k : {"params_total", "flops_per_step_model", "flops_per_step_hardware",
                        "memory_per_gpu_bytes", "fits", "scenario", "stages"}) {
    EXPECT_TRUE(j.contains(k)) << k;
  }
  for (const char* k : {"weights", "gradients", "optimizer", "activations", "other", "total"}) {
    EXPECT_TRUE(j["memory_per_gpu_bytes"].contains(k)) << k;
  }
  // Llama 3 70B: 70,553,706,496 parameters (tests/model/params_test.cpp).
  EXPECT_DOUBLE_EQ(j["params_total"].get<double>(), 70553706496.0);
  const auto& m = j["memory_per_gpu_bytes"];
  EXPECT_DOUBLE_EQ(m["total"].get<double>(),
                   m["weights"].get<double>() + m["gradients"].get<double>() +
                       m["optimizer"].get<double>() + m["activations"].get<double>() +
                       m["other"].get<double>());
  // The three definitions: allocated <= reserved <= device total = the total above, and the
  // verdict's margin and flag.
  const auto& d = j["memory_definitions_bytes"];
  EXPECT_LE(d["allocated_peak"].get<double>(), d["reserved_peak"].get<double>());
  EXPECT_LT(d["reserved_peak"].get<double>(), d["device_total"].get<double>());
  EXPECT_DOUBLE_EQ(d["device_total"].get<double>(), m["total"].get<double>());
  EXPECT_DOUBLE_EQ(j["memory_margin"].get<double>(), 0.05);
  EXPECT_TRUE(j["near_capacity"].is_boolean());
}

// DeepSpeed's copies that find no room in the device: the 320-GPU 200B row at micro-batch 8
// fits only through the allocator's release (model/memory.h, step_segments_cut), its
// micro-batch 1 neighbour plainly; a Megatron-engine scenario has no such key.
TEST(Cli, CheckJsonSaysWhenOnlyTheAllocatorsReleaseFits) {
  auto check = [](const std::string& file) {
    const auto r = run_orrery("check --format json " + file);
    EXPECT_EQ(r.code, 0) << r.err;
    return nlohmann::json::parse(r.out);
  };
  const auto cut = check("scenarios/validation/bigscience-tr11-200b-320-mbs8.yaml");
  EXPECT_TRUE(cut["fits"].get<bool>());
  EXPECT_TRUE(cut["fits_through_allocator_release"].get<bool>());
  EXPECT_FALSE(check("scenarios/validation/bigscience-tr11-200b-320-mbs1.yaml")
                   ["fits_through_allocator_release"]
                       .get<bool>());
  EXPECT_FALSE(check("scenarios/quickstart.yaml").contains("fits_through_allocator_release"));
}

TEST(Cli, SameInputSameBytes) {
  for (const char* fmt : {"table", "json"}) {
    const auto a = run_orrery(std::string("check scenarios/quickstart.yaml --format ") + fmt);
    const auto b = run_orrery(std::string("check scenarios/quickstart.yaml --format ") + fmt);
    EXPECT_EQ(a.out, b.out) << fmt;
  }
}

TEST(Cli, BadScenarioExitsTwoAndWritesNothingToStdout) {
  const std::string path = ::testing::TempDir() + "bad_scenario.yaml";
  {
    std::ofstream f(path);
    f << "cluster: {preset: dgx-h100}\nmodel: {preset: llama3-8b}\n"
         "parallelism: {tp: 8, global_bach: 8}\n";
  }
  const auto r = run_orrery("check '" + path + "' --format json");
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(r.out.empty());
  EXPECT_NE(r.err.find(path + ":3: key 'parallelism.global_bach'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("did you mean 'global_batch'?"), std::string::npos) << r.err;
}

TEST(Cli, MissingFileExitsTwo) {
  const auto r = run_orrery("check no/such/file.yaml");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("no/such/file.yaml: cannot open"), std::string::npos) << r.err;
}

TEST(Cli, BadFlagsExitTwo) {
  EXPECT_EQ(run_orrery("check scenarios/quickstart.yaml --format xml").code, 2);
  EXPECT_EQ(run_orrery("check").code, 2);
  EXPECT_EQ(run_orrery("").code, 2);
  EXPECT_EQ(run_orrery("frobnicate").code, 2);
}

TEST(Cli, HelpListsOnlyWorkingSubcommands) {
  const auto r = run_orrery("--help");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("check"), std::string::npos);
  EXPECT_NE(r.out.find("presets"), std::string::npos);
  EXPECT_NE(r.out.find("run"), std::string::npos);
  EXPECT_NE(r.out.find("validate"), std::string::npos);
  EXPECT_NE(r.out.find("  calibrate"), std::string::npos);
  EXPECT_NE(r.out.find("  sweep"), std::string::npos);
  EXPECT_NE(r.out.find("  merge"), std::string::npos);
  EXPECT_NE(r.out.find("  report"), std::string::npos);
}

TEST(Cli, PresetsListsEveryKind) {
  const auto r = run_orrery("presets");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("h100-sxm5-80gb"), std::string::npos);
  EXPECT_NE(r.out.find("dgx-a100"), std::string::npos);
  EXPECT_NE(r.out.find("deepseek-v3"), std::string::npos);
}

TEST(Cli, CheckStatesTheFp8Recipe) {
  // One line in the table and scenario.training.fp8_recipe in JSON; absent without the
  // section.
  const std::string recipe =
      "hybrid (E4M3 forward, E5M2 gradients; 1 byte and one tensor-core rate either way), "
      "delayed scaling (1024-step amax history), Transformer Engine layers in fp8 (LM head and "
      "router bf16) (first 1 and last 1 layers bf16), weight cache on, TP all-gather fp8, "
      "parameter all-gather bf16";
  const auto table = run_orrery("check scenarios/llama3-70b-h100-64-fp8-recipe.yaml");
  ASSERT_EQ(table.code, 0) << table.err;
  EXPECT_NE(table.out.find("  fp8 recipe               " + recipe + "\n"), std::string::npos)
      << table.out;
  const auto json = run_orrery("check scenarios/llama3-70b-h100-64-fp8-recipe.yaml --format json");
  ASSERT_EQ(json.code, 0) << json.err;
  const auto j = nlohmann::json::parse(json.out);
  EXPECT_EQ(j["scenario"]["training"]["fp8_recipe"], recipe);
  EXPECT_GT(j["stages"][0]["other_bytes"]["fp8_weight_cache"].get<double>(), 0.0);
  // The H100 preset's split-accumulation factor (scenario/presets/gpus.yaml, 0.928, measured
  // on an H200) is printed with the GPU's other figures; a GPU without one prints null.
  EXPECT_DOUBLE_EQ(j["scenario"]["cluster"]["gpu"]["fp8_split_accumulation"].get<double>(), 0.928);
  const auto plain = run_orrery("check scenarios/quickstart.yaml --format json");
  const auto pj = nlohmann::json::parse(plain.out);
  EXPECT_FALSE(pj["scenario"]["training"].contains("fp8_recipe"));
  EXPECT_DOUBLE_EQ(pj["scenario"]["cluster"]["gpu"]["fp8_split_accumulation"].get<double>(), 0.928);
  const auto a100 = run_orrery("check scenarios/gpt3-175b-a100-1024.yaml --format json");
  ASSERT_EQ(a100.code, 0) << a100.err;
  EXPECT_TRUE(nlohmann::json::parse(a100.out)["scenario"]["cluster"]["gpu"]["fp8_split_accumulation"]
                  .is_null());
}

TEST(Cli, EveryShippedScenarioChecks) {
  for (const char* f :
       {"scenarios/quickstart.yaml", "scenarios/gpt3-175b-a100-1024.yaml",
        "scenarios/llama3-405b-h100-16k.yaml", "scenarios/resnet50-dgx-a100.yaml",
        "scenarios/llama3-405b-h100-16k-cp16-fsdp.yaml", "scenarios/mixtral-8x7b-h100-64.yaml",
        "scenarios/llama3-70b-h100-64-fp8-recipe.yaml", "scenarios/llama3-405b-h100-8k.yaml",
        "scenarios/llama3-405b-h100-16k-131k.yaml"}) {
    const auto r = run_orrery(std::string("check ") + f);
    EXPECT_EQ(r.code, 0) << f << ": " << r.err;
  }
}

TEST(Cli, PipelineRecipesCheckAndRun) {
  // Interleaved recipes in Megatron-Core's layouts (tests/cli/pipeline/*.yaml).
  for (const char* f : {"tests/cli/pipeline/llama31-405b-bridge-pp8-vp2.yaml",
                        "tests/cli/pipeline/deepseek-v3-bridge-pp4-vp4.yaml"}) {
    for (const char* cmd : {"check ", "run "}) {
      const auto r = run_orrery(std::string(cmd) + f);
      EXPECT_EQ(r.code, 0) << cmd << f << ": " << r.err;
      EXPECT_NE(r.out.find("interleaved-1f1b"), std::string::npos) << r.out;
    }
  }
}

}  // namespace
}  // namespace orrery

namespace orrery {
namespace {

using testing::run_orrery;

TEST(CliRun, JsonHasTheDocumentedKeys) {
  const auto r = run_orrery("run scenarios/gpt3-175b-a100-1024.yaml --format json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  for (const char* k : {"step_time_s", "tokens_per_s", "tflops_per_gpu_model", "mfu",
                        "breakdown_s", "memory_per_gpu_bytes", "bytes_per_link_class", "stages"}) {
    EXPECT_TRUE(j.contains(k)) << k;
  }
  double sum = 0;
  for (const auto& [k, v] : j["breakdown_s"].items()) sum += v.get<double>();
  EXPECT_NEAR(sum, j["step_time_s"].get<double>(), 1e-9 * sum);
  // tokens/s = global batch x sequence / step time.
  EXPECT_NEAR(j["tokens_per_s"].get<double>() * j["step_time_s"].get<double>(), 1536.0 * 2048,
              1e-6 * 1536 * 2048);
}

TEST(CliRun, CsvIsAHeaderAndOneRow) {
  const auto r = run_orrery("run scenarios/quickstart.yaml --format csv");
  ASSERT_EQ(r.code, 0) << r.err;
  const size_t first = r.out.find('\n');
  ASSERT_NE(first, std::string::npos);
  EXPECT_EQ(r.out.find('\n', first + 1), r.out.size() - 1);
  const std::string header = r.out.substr(0, first);
  const std::string row = r.out.substr(first + 1);
  EXPECT_EQ(std::count(header.begin(), header.end(), ','), std::count(row.begin(), row.end(), ','));
  EXPECT_EQ(header.rfind("scenario,gpus,step_time_s", 0), 0u);
}

TEST(CliRun, TraceIsChromeTraceJson) {
  const std::string path = ::testing::TempDir() + "orrery_trace.json";
  const auto r = run_orrery("run scenarios/quickstart.yaml --trace '" + path + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(testing::read_file(path));
  ASSERT_TRUE(j.contains("traceEvents"));
  int complete = 0, streams = 0, links = 0;
  for (const auto& e : j["traceEvents"]) {
    if (e["ph"] == "X") ++complete;
    if (e["ph"] == "M" && e["name"] == "thread_name") {
      const std::string n = e["args"]["name"];
      if (n == "compute") ++streams;
      if (n.rfind("nvlink", 0) == 0 || n.rfind("nic", 0) == 0) ++links;
    }
  }
  EXPECT_GT(complete, 100);
  EXPECT_EQ(streams, 4);  // one compute track per pipeline stage
  EXPECT_GT(links, 0);
}

TEST(CliRun, UnwritableTraceExitsTwoAndLeavesNothing) {
  const auto r = run_orrery("run scenarios/quickstart.yaml --trace /nonexistent/dir/t.json");
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(r.out.empty());
  EXPECT_NE(r.err.find("/nonexistent/dir/t.json: cannot write"), std::string::npos) << r.err;
}

TEST(CliRun, FullModeAgreesWithSymmetric) {
  const auto a = run_orrery("run scenarios/quickstart.yaml --format json");
  const auto b = run_orrery("run scenarios/quickstart.yaml --format json --full");
  ASSERT_EQ(a.code, 0);
  ASSERT_EQ(b.code, 0);
  const double ta = nlohmann::json::parse(a.out)["step_time_s"];
  const double tb = nlohmann::json::parse(b.out)["step_time_s"];
  EXPECT_NEAR(tb / ta, 1.0, 0.01);
}

TEST(CliValidate, ReportsEveryCaseAndTheSummary) {
  const auto r = run_orrery("validate scenarios/validation --format json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_GE(j["cases"].size(), 25u);
  double max_abs = 0, sum_abs = 0;
  std::size_t rates = 0;  // memory-only cases have none (error_pct null)
  for (const auto& c : j["cases"]) {
    for (const char* k : {"id", "metric", "measured", "predicted", "error_pct"}) {
      EXPECT_TRUE(c.contains(k)) << k;
    }
    if (c["error_pct"].is_null()) {
      EXPECT_TRUE(c.contains("memory")) << c["id"];
      continue;
    }
    ++rates;
    const double e = c["error_pct"];
    EXPECT_NEAR(e, 100.0 * (c["predicted"].get<double>() - c["measured"].get<double>()) /
                       c["measured"].get<double>(),
                1e-9);
    max_abs = std::max(max_abs, std::fabs(e));
    sum_abs += std::fabs(e);
  }
  EXPECT_EQ(j["summary"]["count"], rates);
  EXPECT_NEAR(j["summary"]["max_abs_error_pct"].get<double>(), max_abs, 1e-9);
  EXPECT_NEAR(j["summary"]["mean_abs_error_pct"].get<double>(), sum_abs / rates, 1e-9);
  // The memory table's summary, recomputed from the cases' own memory errors.
  double mem_sum = 0, mem_max = 0;
  std::size_t mems = 0;
  for (const auto& c : j["cases"]) {
    if (!c.contains("memory")) continue;
    const double e = std::fabs(c["memory"]["error_pct"].get<double>());
    mem_sum += e;
    mem_max = std::max(mem_max, e);
    ++mems;
  }
  ASSERT_GT(mems, 0u);
  EXPECT_EQ(j["memory_summary"]["count"], mems);
  EXPECT_NEAR(j["memory_summary"]["mean_abs_error_pct"].get<double>(), mem_sum / mems, 1e-9);
  EXPECT_NEAR(j["memory_summary"]["max_abs_error_pct"].get<double>(), mem_max, 1e-9);
}

TEST(CliValidate, PublishedRunsMeetTheAccuracyBar) {
  // A guard against moving predictions away from the published runs. Issue 3 set mean
  // |error| <= 10 %, every case within 20 %. Issue 14 removed two errors that had been
  // cancelling the model's optimism: causal FlashAttention is timed on the tiles it
  // computes (about half, docs/model.md "Attention masks"), and the Narayanan et al. 2021
  // cases run as the authors' Table 1 script does (fp16 gradients, PyTorch DDP for the
  // four smallest). The set then reads mean 11.3 %, max 19.0 %, nearly all predicted fast
  // (docs/simulator.md, "Validation"); the guard holds that until the missing mechanism is
  // found. Issue 14's target is mean <= 8 %, max <= 15 %. Timing Megatron-Core's
  // overlapped parameter all-gather in the first forward (its code at d98e8a64 gathers the
  // buckets then, not under the previous step) moved the Megatron-LM README 32B row from
  // -14.8 % to -24.0 %: at the micro-batch of 1 assumed for it (the row does not print
  // one) its data-parallel traffic cannot hide (scenarios/validation/README.md). The max
  // for this set is 25 % since. Megatron-Core's buckets then took their real boundaries
  // (closed at the parameter that fills them, param_and_grad_buffer.py at core_r0.8.0, not
  // at a layer's end): at tp 8 a layer of that row holds 1.5 buckets, 74 reduce-scatters
  // where 50 were timed, each paying NCCL's ring latency over 48 nodes, and the row reads
  // -25.2 %, the wrong way; the max is 26 % since.
  //
  // The PyTorch-native families (framework "PyTorch FSDP": llm-foundry MPT, fms-fsdp,
  // issue 20 item 4) are held apart: they run eager PyTorch with unfused elementwise
  // kernels, which orrery does not model yet (issue 20 item 1), and read mean 20.9 %, max
  // 53.8 % (fms-fsdp 7B on 96 H100) when they joined. Their guard holds that; issue 20's
  // target per family is a signed mean within +-5 % and mean |error| <= 10 %.
  //
  // The mixture-of-experts cases (parallel kind "moe": Megatron-Bridge Qwen3-30B-A3B on 16
  // H100, issue 14 item 6) are held apart too: orrery predicts them fast, +26.3 % (25.09,
  // token-drop, EP 8) and +61.3 % (26.06, dropless, EP 16), mean 43.8 %, when they joined; the
  // gap is on the expert side (small grouped expert GEMMs and permutation passes timed at
  // roofline rates, the dispatcher's reserved SMs; docs/simulator.md, "Validation"). Their
  // guard holds that.
  //
  // So are the Blackwell cases (Megatron-Bridge Llama 3 on DGX-B200 and GB200): their presets'
  // GEMM, attention and NVLink efficiencies are assumed, copied from H100 (scenario/presets),
  // and the cases test that extrapolation. When they joined: 6 cases, mean 14.9 %, max
  // 23.4 % (Llama 3.1 405B MXFP8 on 128 B200), all six predicted fast (4.5-23.4 %);
  // hiding the input gradient's reduce-scatter under the weight-gradient GEMM (Transformer
  // Engine's bulk overlap, model/layer_pass.h) took that case to 25.6 %.
  //
  // Session of 2026-12-04, each from a cited mechanism (docs/model.md, docs/simulator.md):
  // the 2021 Megatron-LM cases accumulate gradients through autograd and their unfused
  // attention's score tensors stream at the measured PyTorch standard-attention bandwidth
  // (Megatron set mean 7.0 %); LLM Foundry's Triton FlashAttention at the first
  // FlashAttention's rate, ibm-fms's RoPE and the FSDP gradient passes (PyTorch set mean
  // 7.4 %, max 22.0 %, fms-fsdp 7B on 96 H100); Blackwell presets from Azure's GB200
  // measurements and MXFP8's block-scaled GEMM rate (mean 6.2 %, max 11.1 %); the flex
  // dispatcher's measured NIC rate at 2 nodes (MoE mean 26.0 %, max 26.3 %). The guards
  // below hold those, with a point of margin. Then Megatron-Core's aligned gradient
  // reduction (docs/simulator.md, "Pipeline"; align_grad_reduce, on by default) launched
  // the interleaved schedule's reductions together across the pipeline ranks, which cut
  // their bubbles and moved those rows faster, the wrong way for most: Blackwell max
  // 11.1 -> 12.9 % (Llama 3.1 405B MXFP8 on 128 B200), its guard moved to 13.5. In the same
  // session fused attention took FlashAttention's measured rate at the run's sequence length
  // and mask, and Megatron-Core's all-to-all dispatcher its sort by local expert (PyTorch set
  // mean 6.0 %, max 20.7 %; MoE mean 19.8 %, max 22.9 %): those guards hold that, with a
  // point of margin. Then the MoE set was found mistranscribed: the 26.06 Qwen3 case's recipe
  // runs HybridEP, but the file left ep_backend at deepep, so its exchange ran at DeepEP's
  // slower measured rate. Transcribed as the recipe runs it, the case reads +41.5 % (MoE
  // mean 29.1 %): the guard holds the honest set, not the flattering one.
  //
  // Issue 14, GB200 rows transcribed by the set's rules (scenarios/validation/README.md), none
  // tuned: Llama 3.1 405B on 256 GB200 (26.06, FP8-CS +2.9 %, MXFP8 +7.5 %), Llama 3 8B MXFP8
  // on 8 GB200 (25.11, +6.8 %), Llama 3 70B MXFP8 on 64 GB200 at GBS 128 (25.09, +11.5 %)
  // and Llama 3.1 405B MXFP8 on 128 GB200 (25.09, +41.2 %: its
  // measured 578 tokens/s/GPU is below the 622-624 that 25.09 and 25.11 print for the same
  // configuration on 128 B200, while orrery times GB200 faster than B200). Blackwell set then
  // 11 cases, mean 10.0 %, max 41.2 %; the guard holds that with a point of margin.
  // 2026-12-04 (second session): PyTorch's dtype casts at their measured unvectorized rate
  // and FlashAttention's rate per ring-attention kernel under context parallelism took the
  // PyTorch set to mean 5.45 %, max 18.3 % (fms-fsdp 7B on 96 H100) and the Blackwell set to
  // mean 9.8 %, max 40.1 %: both guards tightened to a point of margin (PyTorch 6.5 / 19.5,
  // Blackwell 11 / 41.5). Qwen3's per-head query and key norms (model.qk_norm) took the MoE
  // set to mean 28.0 %, max 40.2 %: its guard 30 / 41.5.
  // 2026-12-04 (evening), the first measurements on a GPU (one H200, calibrate/data/
  // h200-20261204) replaced two cited figures, and both moved every Hopper Transformer
  // Engine row faster, the wrong way for most: cuDNN's fused attention, which TE runs on
  // Hopper since v1.2, at its measured rate (1.78x FlashAttention-2 at 8k), and fp8 split
  // accumulation at its measured 0.928 of fast (0.87 cited before). Megatron set mean 7.5 ->
  // 8.7 %, max 26.6 % (NeMo 24.07 Llama 3 8B, cp 2); MoE set mean 43.4 %, max 57.3 %
  // (Qwen3-30B-A3B, 26.06). The guards hold the measured set, with margin: Megatron 9.5 /
  // 27.5, MoE 44.5 / 58.5. The kernels are now measured; what the rows still miss is not
  // their rate. 2026-12-04 (night): the host time per kernel issued went from 6.8 us (a
  // CPU tensor's op, 2020) to 13.48 us (a torch.nn.Linear forward on a DGX H100's own
  // host, NVIDIA/TransformerEngine issue 2053): the MoE set's expert passes run
  // host-bound sooner, mean 36.7 %, max 46.9 % (Qwen3-30B-A3B, 26.06); its guard 38 / 48.
  // The GB200's Grace host at its own measured 37.08 us (the same issue) moved the Blackwell
  // set to mean 9.4 %, max 37.9 % (Llama 3.1 405B MXFP8 on 128 GB200); its guard 10.5 / 39.
  // 2026-12-04 (late night): the NeMo 24.07 rows transcribed as their launcher ran them
  // (FlashAttention-2 from its NVTE_FUSED_ATTN=0, the H100 FP8 scripts' bf16 gradients and
  // fp8 recipe, the GPT-3 and Nemotron configs' TP overlap off): the Megatron set to mean
  // 7.1 %, max 25.0 % (the README's 32B row); its guard 8 / 26. Memory-only cases have no
  // rate (error_pct null) and are left out; a PyTorch-native stack without FSDP counts with
  // the PyTorch set. Then the Megatron-Bridge rows' loss as their recipes run it,
  // Transformer Engine's fused cross-entropy (10 bytes a logit, not Megatron's 28): every
  // Bridge row faster, the MoE set the wrong way to mean 39.2 %, max 48.7 %; its guard 40 /
  // 49.5.
  // 2026-12-05: NeMo's long-sequence table joined (Llama 2 7B FP8 on H100, 4k to 1M tokens
  // at cp 1 to 32, NeMo 24.03.01; transcribed by the set's rules, none tuned): its 9 rows
  // read +9.2 % (4k) to -12.7 % (512k), mean 5.8 %; the Megatron set to mean 6.9 %, max
  // 25.0 % (still the README's 32B row). Then ring attention's key and value gradients
  // returned during the attention backward, as Transformer Engine's ring sends them
  // (docs/model.md, "Context parallelism"), not after it: the long rows -12.7 -> -5.2 %
  // (512k) and -10.7 -> -2.5 % (1M), the Megatron set mean 6.4 %; its guard 7.5 / 26, at
  // least 40 cases. The Megatron-Bridge cp rows moved 0.2-0.8 points faster, the wrong
  // way: Blackwell max 38.2 -> 39.0 % (Llama 3.1 405B MXFP8 on 128 GB200); its guard 40.
  // Then six more NeMo 24.07 rows (GPT-3 5B/20B, Llama 2 7B/13B, Nemotron 8B/22B), all fast
  // by 7.2-14.0 %: the Megatron set 50 cases, mean 6.9 %, within its guard. NeMo AutoModel's
  // Llama 3.1 70B FSDP2 row joined the PyTorch set at +4.0 %, -0.2 % with FSDP2's copy-out of
  // each gather timed (PyTorch set mean 5.1 %, max 18.3 %; its guard 6.5 / 19.5 stands).
  // With parallelism.expert_tp, Megatron-Bridge's Qwen3-235B-A22B on 256 H100 (25.09, expert
  // tp 1 under tp 2) joined the MoE set at +27.0 %, fast like the two Qwen3-30B-A3B rows:
  // MoE set 3 cases, mean 35.1 %; its guard 40 / 49.5 stands. With parallelism.
  // moe_a2a_overlap (combined 1F1B) its 25.11 and 26.04.01 rows joined at +32.4 % and +25.6 %:
  // MoE set 5 cases, mean 32.7 %; the whole set 87 cases, mean 8.3 %. Then Transformer
  // Engine's current-scaling quantization counted as the 4 kernels it launches (3 before)
  // and the fused router's kernels (top-k 2, auxiliary loss 6): the host-bound MoE rows
  // slower, the right way (Qwen3-30B-A3B 26.06 +48.7 -> +39.4 %): MoE set mean 29.3 %, max
  // 39.4 %; its guard 31 / 40.5. The whole set 87 cases, mean 8.1 %, max 39.4 %.
  // Megatron-Bridge's DeepSeek-V3 on 1024 H100 (25.09; expert tp 1, the combined 1F1B, one
  // multi-token-prediction layer) joined at +34.4 %: MoE set 6 cases, mean 30.1 %; the whole
  // set 88 cases, mean 8.4 %.
  // 2026-12-05 (second session), transcribed by the set's rules, none tuned: NeMo 2.0's own
  // tables (NeMo 25.02, 25.04, 25.07) added one H100 row (GPT-3 175B on 512, +2.8 %) and
  // sixteen Blackwell rows, every one fast (+6.3 to +33.7 %, and +50.3 % for the 25.07 GB200
  // Llama 3 70B run the page prints in parentheses, read as MXFP8); software-release and
  // B200-against-GB200 pairs orrery does not model (docs/simulator.md, "Validation"):
  // Blackwell set 23 cases, mean 15.2 %, max 50.3 %; its guard 16.5 / 51.5. The Megatron-Core
  // MoE report's two H100 rows (DeepSeek-V3 FP8 blockwise +22.4 %, Qwen3-235B-A22B BF16
  // +16.6 %) and the four Blackwell Mixtral rows joined the MoE set; the flex dispatcher's
  // own kernels and host waits, counted as HybridEP and DeepEP issue them (docs/model.md,
  // "The flex dispatcher's own kernels"), took Qwen3-30B-A3B 26.06 +39.4 -> +34.9 %: MoE set
  // 12 cases, mean 24.5 %, max 34.9 %. Then Megatron-Bridge's eleven Blackwell MoE rows
  // (DeepSeek-V3, Qwen3-30B-A3B and Qwen3-235B-A22B on B200 and GB200, 25.09-26.04.01), the
  // ten rows whose recipes capture every layer in CUDA graphs written with no host time a
  // kernel (docs/model.md's setting for such a step): +5.2 % to +56.1 %, and +86.0 % for
  // the 26.02 Qwen3-30B-A3B MBS 1 run on 8 B200 (9,691 tokens/s/GPU, 9,299 in 25.11: a
  // third of the MBS 4 run's). MoE set 23 cases, mean 31.2 %, max 86.0 %; its guard 32 / 87;
  // Blackwell set mean 15.5 %. The whole set 118 cases, mean 12.9 %, max 86.0 %.
  // 2026-12-05 (third session), transcribed by the set's rules, none tuned: MegaScale's
  // Megatron-LM baseline (eleven A100 rows, 175B at 256-12,288 GPUs, 530B at 2,240-11,200:
  // +4.9 to -10.4 % and +15.3 to +17.5 %) and ten MLPerf Training v4.1-v5.1 rows (H100, H200,
  // B200, GB200; -1.0 to -48.0 % in step time, the 512-GPU GB200 Llama 3.1 8B run): the
  // Megatron set 66 cases, mean 7.0 %, Blackwell 29 cases, mean 15.6 %. Then a
  // weight-gradient GEMM waiting for its input's re-gather (it started before the gather
  // ended when an input-gradient reduce-scatter sat between them) and the input gradient's
  // reduction under the weight-gradient GEMM without userbuffers
  // (training.stack.tp_dgrad_overlap, Transformer Engine's and Megatron-LM's asynchronous
  // backward): 71 rows moved, the README's 32B row -25.0 -> -26.1 %; Megatron set mean
  // 6.9 %, max 26.1 %, its guard 7.5 / 26.5; Blackwell mean 14.7 %, its guard 15.5 / 51.5;
  // MoE mean 31.4 %. The whole set 139 cases, mean 12.3 %, max 86.0 %. Four MLPerf v4.0
  // GPT-3 rows on H100 (-4.1 to -14.7 %) and the v3.1 rows' gradients in bf16, as their
  // distributed optimizer reduces them (-7.4..-11.5 -> -11.7..-12.5 %): Megatron set 70
  // cases, mean 7.3 %, max 26.3 %; the whole set 143 cases, mean 12.3 %. With
  // parallelism.rank_order the six GB200 405B MLPerf v5.0 runs in Megatron's tp-pp-dp order
  // (512-2,496 GPUs) joined at -14.0 to -15.2 % in step time: Blackwell set 35 cases, mean
  // 14.6 %, max 48.7 %; the whole set 149 cases, mean 12.4 %, max 86.0 %.
  // 2026-12-05 (fourth session), transcribed by the set's rules, none tuned: Korthikanti et
  // al. 2022's eight Megatron-LM A100 runs (-1.9 to +2.2 %), MT-NLG 530B's three and GLM-130B's
  // two DeepSpeed-pipeline runs (-13.9 to -21.1 % in step time): Megatron set 83 cases, mean
  // 7.3 %, max 26.3 %, within its guard; the whole set 162 cases, mean 12.0 %, max 86.0 %.
  // Then cluster.slow_nodes (MegaScale's fleet: 0.5 % of nodes at 1 / 1.1 of the speed, the
  // step blended with one slow node on its busiest stage; docs/simulator.md, "Slow nodes"):
  // every multi-node row slower, the wide ones most (MegaScale 530B +17.6 -> +10.4 %, MLPerf
  // v4.0 GPT-3 on 11,616 H100 -14.7 -> -11.1 % in step time), the README's wide H100 rows the
  // wrong way (32B -26.3 -> -27.0 %, the Megatron set's max). Megatron set mean 6.2 %, max
  // 27.0 %: its guard 7.2 / 28.1; PyTorch mean 4.9 %, max 17.7 %: 6 / 18.7; MoE mean 30.3 %:
  // 31.3 / 87; Blackwell mean 14.2 %, max 48.7 %: 15.2 / 49.7. The whole set 162 cases, mean
  // 11.2 %, max 86.0 %.
  // Then BigScience's 37 tr11 A100 runs of Megatron-DeepSpeed (the pre-launch benchmarks of
  // train/tr11-176B-ml/chronicles-prequel.md and BLOOM's ramp-up steps), all fast, -7.5 to
  // -38.9 %: the Megatron-DeepSpeed rows get a set of their own (43 cases, mean 19.9 %, max
  // 39.0 %: guard 21 / 40), and the Megatron set without them is 77 cases, mean 5.75 %, max
  // 27.0 %: its guard 6.8 / 28.1. The whole set 199 cases, mean 13.1 %, max 86.0 %.
  // Then slow machines counted as servers, not NVLink domains (cluster.slow_nodes.machine_gpus,
  // a GB200 NVL72 compute tray of 4 GPUs): 29 GB200 rows slower, one rack now blended, the
  // MLPerf v5.0 405B rows on 1,024-2,496 GPUs -13.5..-14.1 -> -8.7..-9.4 %: Blackwell set mean
  // 13.0 %, max 47.6 %: its guard 14.0 / 48.6; MoE mean 30.2 %. The whole set 199 cases,
  // mean 12.8 %, max 86.0 %.
  // Then 20 more MLPerf submissions by the existing rows' rules (GPT-3 175B on 1,536-10,752 H100,
  // Llama 3.1 405B on 1,024-8,192 H100/H200 and 448 B200, Llama 3.1 8B on 8-256 B200 and 64-128
  // H100), none tuned: Megatron set 90 cases, mean 6.2 %, max 32.0 % (Cisco's 8B on 128 H100, a
  // port without NeMo's overlap callback): its guard 6.8 / 33.0; Blackwell 42 cases, mean 12.4 %,
  // max 47.6 %. The whole set 219 cases, mean 12.5 %, max 86.0 %.
  // Jean Zay's Omni-Path at the NCCL rate BigScience measured on those nodes (fabric
  // omni-path-jean-zay-a100: 0.405 of a link, where NDR's 0.94 stood in): the Megatron-DeepSpeed
  // set 19.9 -> 15.9 %, max 39.0 -> 37.2 %: its guard 17 / 38.2. The whole set 11.7 %.
  // BigScience's remaining 67 tr11 rows (all fast, -2.1 to -34.7 %): the Megatron-DeepSpeed set
  // 110 cases, mean 14.5 %, max 37.2 %: its guard 15.5 / 38.2. The whole set 286 cases, 12.1 %.
  // 2026-12-06: the prequel rows' masked softmax as their Megatron-DeepSpeed checked it
  // (training.stack.masked_softmax swapped_check, docs/model.md "Megatron's masked softmax"):
  // 30 rows 2 to 15 points slower, the right way; the Megatron-DeepSpeed set mean 12.4 %, max
  // 37.2 % (the 200B MBS 8 row, which takes the kernel): its guard 13.4 / 38.2. The whole set
  // 286 cases, mean 11.3 %.
  // Later on 2026-12-06: NVIDIA's three MLPerf v5.1 NVFP4 405B GB200 runs, the GB300 and B300
  // presets with eight MLPerf and Bridge rows on them (Blackwell Ultra, a generation of its
  // own in the families, counted with Blackwell here), the MLPerf v5.0 rows' buckets as they
  // ran: Blackwell set 53 cases, mean 12.3 %, max 47.6 %; Megatron set 90 cases, mean
  // 6.25 %, max 32.0 %, the guards unchanged. The whole set 297 cases, mean 11.4 %.
  const auto r = run_orrery("validate scenarios/validation --format json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_GE(j["summary"]["count"].get<int>(), 40);
  struct Set {
    int count = 0;
    double sum = 0, max = 0;
    void add(double error) {
      ++count;
      sum += std::fabs(error);
      max = std::max(max, std::fabs(error));
    }
  } megatron, deepspeed, pytorch, moe, blackwell, memory, bigscience;
  for (const auto& c : j["cases"]) {
    if (c["error_pct"].is_null()) continue;
    const std::string framework = c["family"]["framework"];
    Set& set = framework.rfind("PyTorch", 0) == 0                 ? pytorch
               : c["family"]["parallel_kind"] == "moe"        ? moe
               : framework == "Megatron-DeepSpeed"            ? deepspeed
               // Blackwell Ultra (B300, GB300) counts with Blackwell here.
               : c["family"]["gpu_generation"].get<std::string>().rfind("Blackwell", 0) == 0
                   ? blackwell
                   : megatron;
    set.add(c["error_pct"].get<double>());
  }
  ASSERT_GE(megatron.count, 40);
  EXPECT_LE(megatron.sum / megatron.count, 6.8);
  EXPECT_LE(megatron.max, 33.0);
  ASSERT_GE(deepspeed.count, 110);
  EXPECT_LE(deepspeed.sum / deepspeed.count, 13.4);
  EXPECT_LE(deepspeed.max, 38.2);
  ASSERT_GE(pytorch.count, 15);
  EXPECT_LE(pytorch.sum / pytorch.count, 6.0);
  EXPECT_LE(pytorch.max, 18.7);
  ASSERT_GE(moe.count, 2);
  EXPECT_LE(moe.sum / moe.count, 31.2);
  EXPECT_LE(moe.max, 87.0);
  ASSERT_GE(blackwell.count, 6);
  EXPECT_LE(blackwell.sum / blackwell.count, 13.4);
  EXPECT_LE(blackwell.max, 48.6);
  // The memory cases (measured.memory): published peaks with their definition against the
  // memory model's figure of it. 2026-12-04: five Hugging Face BERT-large runs on a V100, mean
  // 7.8 %, max 12.6 %, all predicted low; with eager attention's scale-and-mask kernel in the
  // op sequence the simulated allocator's waste fell (228 -> 100 MiB at micro-batch 4): mean
  // 8.4 %, max 13.5 %; the guard 9.5 / 14.5. 2026-12-06: with 67 BigScience tr11 rows
  // (their "Mem", read as the device total; one more, ZeRO stage 0, a memory case only) and
  // DeepSpeed's gradient copies modelled, 73 cases, mean 5.4 %, max 25.8 % (a row printing
  // more at micro-batch 2 than at 4; the others within 15.1 %); the guard 6.5 / 26.5, and the
  // BigScience rows' mean, 14.9 % before the copies (5.2 % after), at most 6.5. With the
  // prequel's masked softmax on its PyTorch path where it ran there, the fp32 softmax kept
  // (+0.13 GiB at 181B tp 8 pp 12) while the simulated caching allocator's waste fell with
  // the new blocks' sizes (-0.87 GiB there; not checked against a trace): mean 5.3 %, the
  // BigScience rows 5.0 %, max 28.9 % (the inverted row moved away, -25.8 -> -28.9 %); the
  // max guard 30.
  for (const auto& c : j["cases"]) {
    if (!c.contains("memory")) continue;
    const double e = c["memory"]["error_pct"].get<double>();
    memory.add(e);
    if (c["id"].get<std::string>().rfind("bigscience-", 0) == 0) bigscience.add(e);
  }
  ASSERT_GE(memory.count, 73);
  EXPECT_LE(memory.sum / memory.count, 6.5);
  EXPECT_LE(memory.max, 30.0);
  ASSERT_GE(bigscience.count, 68);
  EXPECT_LE(bigscience.sum / bigscience.count, 6.5);
}

TEST(CliValidate, AScenarioWithoutMeasuredIsAnError) {
  const auto r = run_orrery("validate scenarios/quickstart.yaml");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("measured"), std::string::npos);
}

}  // namespace
}  // namespace orrery
