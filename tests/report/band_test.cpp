// The prediction band on a hand-made validation set (family match, fallback, conversion to
// the predicted quantity), the validated-region flags, validate's fits verdict, and the
// shipped residual table against what validate computes now.
#include "report/band.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "model/workload.h"
#include "report/residuals_data.h"
#include "report/validate_report.h"
#include "scenario/load.h"
#include "tests/test_util.h"

namespace orrery {
namespace {

// Hand-made residual table. Time errors (step-time sense):
//   amp-1  Ampere  Megatron-Core       3d  step_time  error +0.10           -> +0.10
//   amp-2  Ampere  Megatron-Core       3d  tflops     error +0.25 -> 1/1.25 - 1 = -0.20
//   amp-3  Ampere  Megatron-Core       3d  step_time  error -0.05           -> -0.05
//   amp-4  Ampere  Megatron-DeepSpeed  3d  step_time  error +0.30           -> +0.30
//   hop-1  Hopper  Megatron-Core       3d  step_time  error -0.40           -> -0.40
// amp-1 runs a pipeline under 1F1B; no case has context parallelism.
// HFU +-: amp-2 predicted 0.50 at time error -0.20 measured 0.50 x 0.80 = 0.40, the highest
// measured Ampere 16-bit HFU (amp-1 0.30 x 1.10 = 0.33, amp-3 0.20 x 0.95, amp-4 0.25 x 1.3
// = 0.325).
const char* const kTable =
    "id,gpu_generation,framework,parallel_kind,cp,ep,zero_stage,precision,metric,measured,"
    "predicted,error,time_error,mfu,hfu,memory_fraction,fits,schedule,cp_comm,layout\n"
    "amp-1,Ampere,Megatron-Core,3d,1,1,0,fp16,step_time_s,10,11,0.1,0.1,0.3,0.3,0.5,true,1f1b,-,-\n"
    "amp-2,Ampere,Megatron-Core,3d,1,1,0,bf16,tflops_per_gpu_hardware,100,125,0.25,-0.2,0.4,0.5,"
    "0.6,true,-,-,-\n"
    "amp-3,Ampere,Megatron-Core,3d,1,1,1,bf16,step_time_s,20,19,-0.05,-0.05,0.2,0.2,0.7,true,-,-,-\n"
    "amp-4,Ampere,Megatron-DeepSpeed,3d,1,1,1,bf16,step_time_s,10,13,0.3,0.3,0.25,0.25,0.4,true,-,-,-\n"
    "hop-1,Hopper,Megatron-Core,3d,1,1,1,bf16,step_time_s,10,6,-0.4,-0.4,0.5,0.5,0.5,true,-,-,-\n";

std::vector<Residual> table() { return parse_residuals(kTable, "hand-made"); }

TEST(Band, TimeErrorOfARateIsItsInverse) {
  // A rate 25 % high means a step 1/1.25 = 0.8 of the measured one: -20 %.
  EXPECT_DOUBLE_EQ(time_error(Metric::tflops_per_gpu_model, 0.25), -0.2);
  EXPECT_DOUBLE_EQ(time_error(Metric::tokens_per_s_per_gpu, -0.2), 0.25);
  EXPECT_DOUBLE_EQ(time_error(Metric::step_time_s, 0.1), 0.1);
}

TEST(Band, ExactFamilyWithEnoughCases) {
  // Ampere x Megatron-Core x 3d: amp-1..3, time errors {+0.10, -0.20, -0.05}.
  const Band b = band_for({"Ampere", "Megatron-Core", "3d"}, table());
  EXPECT_EQ(b.family_cases, 3);
  EXPECT_EQ(b.cases, 3);
  EXPECT_EQ(b.basis, "Ampere x Megatron-Core x 3d");
  EXPECT_DOUBLE_EQ(b.e_min, -0.2);
  EXPECT_DOUBLE_EQ(b.e_max, 0.1);
  // Predicted 10 s: measured = 10 / (1 + e) lies in [10 / 1.1, 10 / 0.8] = [9.0909, 12.5] s.
  EXPECT_NEAR(10 * b.fast(), 9.0909, 1e-4);
  EXPECT_DOUBLE_EQ(10 * b.slow(), 12.5);
  EXPECT_EQ(b.describe(), "Ampere x Megatron-Core x 3d, 3 cases");
}

TEST(Band, FewCasesFallBackInTheStatedOrder) {
  // Megatron-DeepSpeed has 1 Ampere case (< 3): Ampere x 3d over any framework, amp-1..4,
  // time errors {+0.10, -0.20, -0.05, +0.30}.
  const Band ds = band_for({"Ampere", "Megatron-DeepSpeed", "3d"}, table());
  EXPECT_EQ(ds.family_cases, 1);
  EXPECT_EQ(ds.cases, 4);
  EXPECT_EQ(ds.basis, "Ampere x 3d (any framework)");
  EXPECT_DOUBLE_EQ(ds.e_min, -0.2);
  EXPECT_DOUBLE_EQ(ds.e_max, 0.3);
  EXPECT_EQ(ds.describe(),
            "Ampere x Megatron-DeepSpeed x 3d, 1 case (< 3): band from Ampere x 3d (any "
            "framework), 4 cases");
  // No Ampere ZeRO-3 case: the generation, the same 4 cases.
  const Band z3 = band_for({"Ampere", "Megatron-Core", "zero-3"}, table());
  EXPECT_EQ(z3.family_cases, 0);
  EXPECT_EQ(z3.basis, "Ampere (any framework and kind)");
  EXPECT_EQ(z3.cases, 4);
  // Hopper has 1 case in all: every case, time errors down to -0.40 and up to +0.30.
  // Predicted 6 s: measured in [6 / 1.3, 6 / 0.6] = [4.615, 10] s.
  const Band h = band_for({"Hopper", "Megatron-Core", "3d"}, table());
  EXPECT_EQ(h.basis, "every validation case");
  EXPECT_EQ(h.cases, 5);
  EXPECT_NEAR(6 * h.fast(), 4.6154, 1e-4);
  EXPECT_DOUBLE_EQ(6 * h.slow(), 10.0);
}

TEST(Band, FamilyOfAScenarioByTheStatedRules) {
  const Scenario a = testing::preset_scenario("narayanan-1.7b", "tp: 2, pp: 2, global_batch: 16");
  EXPECT_EQ(family_of(a), (Family{"Ampere", "Megatron-Core", "3d"}));
  const Scenario h = testing::preset_scenario("narayanan-1.7b", "tp: 2, cp: 2, global_batch: 16", 1,
                                              "", "dgx-h100");
  EXPECT_EQ(family_of(h), (Family{"Hopper", "Megatron-Core", "context-parallel"}));
  const Scenario f =
      testing::preset_scenario("narayanan-1.7b", "fsdp: true, zero_stage: 3, global_batch: 16");
  EXPECT_EQ(family_of(f), (Family{"Ampere", "PyTorch FSDP", "zero-3"}));
  const Scenario d = testing::preset_scenario(
      "narayanan-1.7b", "pp: 2, pipeline_engine: deepspeed, global_batch: 16");
  EXPECT_EQ(family_of(d).framework, "Megatron-DeepSpeed");
  GpuSpec g;
  g.name = "NVIDIA GB200";
  EXPECT_EQ(gpu_generation(g), "Blackwell");
  g.name = "NVIDIA GB300 (Blackwell Ultra GPU of GB300 NVL72)";
  EXPECT_EQ(gpu_generation(g), "Blackwell Ultra");
  g.name = "NVIDIA B300 (HGX/DGX B300, Blackwell Ultra)";
  EXPECT_EQ(gpu_generation(g), "Blackwell Ultra");
  g.name = "NVIDIA GH200 Grace Hopper";
  EXPECT_EQ(gpu_generation(g), "Hopper");
  g.name = "AMD MI300X";
  EXPECT_EQ(gpu_generation(g), "other");
}

std::vector<std::string> codes(const std::vector<RegionFlag>& flags) {
  std::vector<std::string> out;
  for (const auto& f : flags) out.push_back(f.code);
  return out;
}

TEST(Region, SplitKindsNoCaseCovers) {
  // The table has ZeRO 0 and 1, no cp, no MoE, no ZeRO-2/3.
  const auto t = table();
  const Scenario plain = testing::preset_scenario("narayanan-1.7b", "tp: 2, global_batch: 16");
  EXPECT_TRUE(region_flags(plain, 0.5, std::nullopt, t).empty());
  const Scenario cp = testing::preset_scenario("narayanan-1.7b", "tp: 2, cp: 2, global_batch: 16");
  EXPECT_EQ(codes(region_flags(cp, 0.5, std::nullopt, t)), std::vector<std::string>{"cp"});
  const Scenario z2 = testing::preset_scenario("narayanan-1.7b", "zero_stage: 2, global_batch: 16");
  EXPECT_EQ(codes(region_flags(z2, 0.5, std::nullopt, t)), std::vector<std::string>{"zero2"});
  const Scenario z3 = testing::preset_scenario("narayanan-1.7b", "zero_stage: 3, global_batch: 16");
  EXPECT_EQ(codes(region_flags(z3, 0.5, std::nullopt, t)), std::vector<std::string>{"zero3"});
  const Scenario moe = testing::preset_scenario("mixtral-8x7b", "tp: 2, pp: 4, global_batch: 16");
  EXPECT_EQ(codes(region_flags(moe, 0.5, std::nullopt, t)), std::vector<std::string>{"moe"});
  // The same ZeRO-3 scenario is inside once a case covers it; cp 2 once a case has cp 2,
  // while cp 4 is still above it.
  auto covered = t;
  covered.back().zero_stage = 3;
  covered.back().cp = 2;
  covered.back().cp_comm = "ring";
  EXPECT_TRUE(region_flags(z3, 0.5, std::nullopt, covered).empty());
  EXPECT_TRUE(region_flags(cp, 0.5, std::nullopt, covered).empty());
  const Scenario cp4 = testing::preset_scenario("narayanan-1.7b", "tp: 2, cp: 4, global_batch: 16");
  const auto cp4_flags = region_flags(cp4, 0.5, std::nullopt, covered);
  ASSERT_EQ(codes(cp4_flags), std::vector<std::string>{"cp"});
  EXPECT_EQ(cp4_flags[0].text,
            "context parallelism cp 4: above every validation case's (largest cp 2)");
}

// The text of the one flag `s` gets against `t`, which must have code `code`.
std::string only_flag(const Scenario& s, const std::vector<Residual>& t, const std::string& code) {
  const auto flags = region_flags(s, 0.5, std::nullopt, t);
  EXPECT_EQ(codes(flags), std::vector<std::string>{code});
  return flags.size() == 1 ? flags[0].text : "";
}

TEST(Region, ContextExchangeAndScheduleNoCaseRuns) {
  // The table's only pipeline runs 1F1B; with a cp 2 case that exchanges by ring, cp 2 by
  // all-gather is outside on its exchange alone, and so is zero-bubble H1 on its schedule.
  auto t = table();
  t.back().cp = 2;
  t.back().cp_comm = "ring";
  const Scenario ring = testing::preset_scenario("narayanan-1.7b", "tp: 2, cp: 2, global_batch: 16");
  EXPECT_TRUE(region_flags(ring, 0.5, std::nullopt, t).empty());
  const Scenario gather = testing::preset_scenario(
      "narayanan-1.7b", "tp: 2, cp: 2, cp_comm: all-gather, global_batch: 16");
  EXPECT_EQ(only_flag(gather, t, "cp_comm"),
            "context parallelism by all-gather (parallelism.cp_comm): no validation case "
            "exchanges keys and values that way");
  // Without any context-parallel case the cp flag alone says so.
  EXPECT_EQ(codes(region_flags(gather, 0.5, std::nullopt, table())),
            std::vector<std::string>{"cp"});
  const Scenario one = testing::preset_scenario("narayanan-1.7b", "pp: 2, global_batch: 16");
  EXPECT_TRUE(region_flags(one, 0.5, std::nullopt, t).empty());
  const Scenario zb = testing::preset_scenario(
      "narayanan-1.7b", "pp: 2, schedule: zb-h1, global_batch: 16");
  EXPECT_EQ(only_flag(zb, t, "schedule"), "pipeline schedule zb-h1: no validation case runs it");
  // At pp 1 a schedule other than 1F1B still changes the step, and is named; 1F1B is not.
  const Scenario zb1 =
      testing::preset_scenario("narayanan-1.7b", "schedule: zb-h1, global_batch: 16");
  EXPECT_EQ(codes(region_flags(zb1, 0.5, std::nullopt, t)), std::vector<std::string>{"schedule"});
  // The Llama 3 paper's flexible groups are a schedule of their own.
  const Scenario flexible = testing::preset_scenario(
      "narayanan-1.7b", "pp: 4, virtual_pipeline_stages: 2, flexible_groups: true, global_batch: 2");
  EXPECT_EQ(schedule_label(flexible.parallelism), "interleaved-1f1b-flexible-groups");
  t.back().schedule = "interleaved-1f1b";
  EXPECT_EQ(codes(region_flags(flexible, 0.5, std::nullopt, t)),
            std::vector<std::string>{"schedule"});
}

// GEMMs on rows not 16-byte aligned are flagged where no measured rate
// covers them, whatever the table holds: BERT-large's 30,522-token vocabulary (2 x 15,261)
// on any GPU; GPT-2's odd 50,257 on the A100 (no unaligned_gemm_efficiency) and not on the
// H200 (measured there); the padded 50,304 nowhere. The share of the forward FLOPs, per
// token: BERT-large, 24 layers of 24 h^2 + 4 s h = 25.17M + 2.10M (h 1024, s 512) and its
// LM head's transform 2 h^2 = 2.10M beside the vocabulary GEMM 2 h V = 62.51M: 62.51 /
// 719.0 = 8.7 %; the GPT-2 shape, 2 layers of 24 h^2 + 4 s h = 14.16M + 3.15M (h 768,
// s 1024) and 2 h V = 77.19M (V 50,257): 77.19 / 111.8 = 69.0 %, 46.89M at V 30,524:
// 46.89 / 81.5 = 57.5 %. A classifier of 2 labels (b x 1024 x 2) is under 1 %: no flag.
TEST(Region, GemmsAlignedToFewerThanEightElements) {
  const auto t = table();
  const Scenario bert = testing::preset_scenario("bert-large", "dp: 8, global_batch: 64");
  const Scenario classifier = load_scenario_text(
      "cluster: {preset: dgx-a100, nodes: 1}\n"
      "model: {preset: bert-large, head: classifier, labels: 2}\n"
      "parallelism: {dp: 8, global_batch: 64}\n",
      "classifier.yaml");
  const auto classifier_gemms = misaligned_gemms(
      build_workload(classifier.model, classifier.training, shard_of(classifier.parallelism)));
  ASSERT_EQ(classifier_gemms.size(), 1u);
  EXPECT_EQ(classifier_gemms[0].alignment, 2);
  EXPECT_TRUE(region_flags(classifier, 0.5, std::nullopt, t).empty());
  EXPECT_EQ(only_flag(bert, t, "align"),
            "GEMMs on rows not 16-byte aligned, head.output (2-element), 8.7 % of the FLOPs: no rate of such "
            "kernels is measured on this GPU, timed as aligned");
  const auto gpt2 = [](const std::string& system, int vocab,
                       const std::string& precision = "bf16") {
    return load_scenario_text(
        "cluster: {preset: " + system + ", nodes: 1, gpus_per_node: 1}\n"
        "model: {family: decoder, layers: 2, hidden: 768, heads: 12, ffn: 3072, vocab: " +
            std::to_string(vocab) +
            ", seq_len: 1024, activation: gelu, norm: layernorm, position_embedding: learned,"
            " tied_embeddings: true, bias: true, dropout: false}\n"
            "parallelism: {microbatch: 8, global_batch: 8}\n"
            "training: {precision: " + precision + ", recompute: none, stack: fsdp2}\n",
        "gpt2.yaml");
  };
  EXPECT_EQ(only_flag(gpt2("dgx-a100", 50257), t, "align"),
            "GEMMs on rows not 16-byte aligned, head.output (1-element), 69.0 % of the FLOPs: no rate of such "
            "kernels is measured on this GPU, timed as aligned");
  EXPECT_TRUE(region_flags(gpt2("dgx-a100", 50304), 0.5, std::nullopt, t).empty());
  const auto h200 = region_flags(gpt2("dgx-h200", 50257), 0.5, std::nullopt, t);
  EXPECT_TRUE(std::none_of(h200.begin(), h200.end(),
                           [](const RegionFlag& f) { return f.code == "align"; }));
  // 16 bytes are 4 elements of fp32: a 30,524-token vocabulary (4 x 7,631) is aligned in
  // fp32 and not in bf16.
  EXPECT_TRUE(region_flags(gpt2("dgx-a100", 30524, "fp32"), 0.5, std::nullopt, t).empty());
  EXPECT_EQ(only_flag(gpt2("dgx-a100", 30524), t, "align"),
            "GEMMs on rows not 16-byte aligned, head.output (4-element), 57.5 % of the FLOPs: no rate of such "
            "kernels is measured on this GPU, timed as aligned");
}

TEST(Region, MemoryNearCapacity) {
  const Scenario s = testing::preset_scenario("narayanan-1.7b", "tp: 2, global_batch: 16");
  EXPECT_TRUE(region_flags(s, 0.949, std::nullopt, table()).empty());
  EXPECT_EQ(codes(region_flags(s, 0.951, std::nullopt, table())),
            std::vector<std::string>{"memory"});
}

TEST(Region, UtilisationAboveEveryCaseOfTheGeneration) {
  // Highest measured Ampere 16-bit HFU of Megatron-Core: amp-2's 0.50 x (1 - 0.20) = 0.40.
  const auto t = table();
  const Family mcore{"Ampere", "Megatron-Core", "3d"};
  EXPECT_FALSE(mfu_flag(mcore, "bf16", 0.39, 0.399, t));
  const auto above = mfu_flag(mcore, "fp16", 0.30, 0.401, t);
  ASSERT_TRUE(above);
  EXPECT_EQ(above->text,
            "FLOP utilisation 40.1 % (MFU 30.0 %) above every validated Ampere Megatron-Core "
            "16-bit case (highest measured 40.0 %)");
  // Megatron-DeepSpeed's own Ampere case bounds it: amp-4's 0.25 x 1.30 = 0.325, though
  // a Megatron-Core case went faster.
  const auto ds = mfu_flag({"Ampere", "Megatron-DeepSpeed", "3d"}, "bf16", 0.33, 0.33, t);
  ASSERT_TRUE(ds);
  EXPECT_EQ(ds->text,
            "FLOP utilisation 33.0 % (MFU 33.0 %) above every validated Ampere Megatron-DeepSpeed "
            "16-bit case (highest measured 32.5 %)");
  // A framework with no Ampere case falls back to every framework's: 0.40.
  const Family fsdp{"Ampere", "PyTorch FSDP", "zero-3"};
  EXPECT_FALSE(mfu_flag(fsdp, "bf16", 0.39, 0.399, t));
  const auto any = mfu_flag(fsdp, "bf16", 0.30, 0.401, t);
  ASSERT_TRUE(any);
  EXPECT_EQ(any->text,
            "FLOP utilisation 40.1 % (MFU 30.0 %) above every validated Ampere 16-bit case "
            "(highest measured 40.0 %)");
  // FP8 counts against the 16-bit peak: no comparable case.
  const auto fp8 = mfu_flag(mcore, "fp8", 0.1, 0.1, t);
  ASSERT_TRUE(fp8);
  EXPECT_EQ(fp8->text, "no validated Ampere case trains in fp8");
  // A generation without any case is flagged as such, before any utilisation.
  const Scenario b =
      testing::preset_scenario("narayanan-1.7b", "tp: 2, global_batch: 16", 1, "", "dgx-b200");
  EXPECT_EQ(codes(region_flags(b, 0.5, Utilisation{0.9, 0.9}, t)), std::vector<std::string>{"gpu"});
  const Scenario a = testing::preset_scenario("narayanan-1.7b", "tp: 2, global_batch: 16");
  EXPECT_EQ(codes(region_flags(a, 0.5, Utilisation{0.5, 0.5}, t)), std::vector<std::string>{"mfu"});
}

TEST(Region, PipelineLayoutNoCaseHas) {
  // An empty virtual stage and an MTP stage of its own are layouts of their own
  // (layout_label); a case with the same label covers them.
  auto t = table();
  t.back().schedule = "interleaved-1f1b";
  const Scenario empty = testing::preset_scenario(
      "narayanan-1.7b", "pp: 2, pipeline_layout: \"Et*12|t*12||L\", global_batch: 16");
  EXPECT_EQ(layout_label(empty.parallelism), "empty-stage");
  EXPECT_EQ(only_flag(empty, t, "layout"),
            "pipeline layout with an empty virtual stage: no validation case runs one");
  t.back().layout = "empty-stage";
  EXPECT_TRUE(region_flags(empty, 0.5, std::nullopt, t).empty());
  const Scenario plain = testing::preset_scenario(
      "narayanan-1.7b", "pp: 2, pipeline_layout: \"Et*12|t*6|t*6|L\", global_batch: 16");
  EXPECT_EQ(layout_label(plain.parallelism), "-");
}

TEST(Residuals, MalformedTableIsRefused) {
  EXPECT_THROW(parse_residuals("id,oops\n", "x.csv"), InputError);
  EXPECT_THROW(parse_residuals(std::string(kTable) + "short,row\n", "x.csv"), InputError);
  // A schedule or exchange no scenario can have.
  const std::string row = "x,Ampere,Megatron-Core,3d,1,1,0,bf16,step_time_s,1,1,0,0,0.3,0.3,0.5,true,";
  EXPECT_THROW(parse_residuals(std::string(kTable) + row + "1F1B,-,-\n", "x.csv"), InputError);
  EXPECT_THROW(parse_residuals(std::string(kTable) + row + "-,p2p,-\n", "x.csv"), InputError);
  EXPECT_THROW(parse_residuals(std::string(kTable) + row + "gpipe-flexible-groups,-,-\n", "x.csv"),
               InputError);
  EXPECT_THROW(parse_residuals(std::string(kTable) + row + "-,-,mtp\n", "x.csv"), InputError);
  EXPECT_NO_THROW(parse_residuals(
      std::string(kTable) + row + "interleaved-1f1b-flexible-groups,all-gather,mtp-stage\n",
      "x.csv"));
}

TEST(Validate, MarksCasesTheMemoryModelSaysDoNotFit) {
  // GPT-3 175B on one DGX A100 without any sharding: 175e9 parameters x 16 bytes of
  // weights, gradients and Adam state over 8 GPUs is ~350 GB per GPU, far over 80 GB.
  const std::string yaml =
      "name: too big\ncluster: {preset: dgx-a100, nodes: 1}\nmodel: {preset: gpt3-175b}\n"
      "parallelism: {tp: 8, global_batch: 8}\ntraining: {precision: bf16, recompute: full}\n"
      "measured: {metric: step_time_s, value: 100, source: made up}\n";
  const ValidationCase c = validation_case(load_scenario_text(yaml, "big.yaml"), "big.yaml");
  EXPECT_FALSE(c.fits);
  EXPECT_GT(c.memory_fraction, 1.0);
  const std::string table = render_validation_table({c});
  EXPECT_NE(table.find("   NO\n"), std::string::npos);
  EXPECT_NE(table.find("1 case the memory model says do not fit"), std::string::npos);
  EXPECT_NE(render_validation_json({c}).find("\"fits\": false"), std::string::npos);
  // The case's split as the residual table has it (tp 8 alone: no pipeline, no cp).
  EXPECT_NE(render_validation_json({c}).find(
                "\"split\": {\n        \"cp\": 1,\n        \"ep\": 1,\n        \"zero_stage\": "
                "0,\n        \"schedule\": \"-\",\n        \"cp_comm\": \"-\",\n        "
                "\"layout\": \"-\"\n      },\n      "
                "\"precision\": \"bf16\""),
            std::string::npos)
      << render_validation_json({c});
  // fits, then the schedule, cp_comm and layout columns ("-": no pipeline, no cp, no layout).
  EXPECT_NE(render_validation_csv({c}).find(",false,-,-,-\n"), std::string::npos);
}

TEST(Residuals, ShippedTableIsWhatValidateComputesNow) {
  // Every scenario under scenarios/validation, sorted as orrery validate takes them.
  const std::string root = ORRERY_SOURCE_DIR;
  std::vector<std::string> files;
  for (const auto& e :
       std::filesystem::recursive_directory_iterator(root + "/scenarios/validation")) {
    if (e.is_regular_file() && e.path().extension() == ".yaml") files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  const std::vector<ValidationCase> cases = validation_cases(files);
  const std::string now = render_validation_csv(cases);
  std::ifstream in(root + "/report/validation_residuals.csv");
  std::stringstream committed;
  committed << in.rdbuf();
  EXPECT_EQ(committed.str(), now)
      << "report/validation_residuals.csv is stale: run tools/update_residuals.sh";
  EXPECT_EQ(std::string(kValidationResidualsCsv), committed.str())
      << "the build embeds an older table: rebuild (tools/update_residuals.sh does)";
  // One residual a case with a rate (memory-only cases have none).
  const auto rates = std::count_if(cases.begin(), cases.end(),
                                   [](const ValidationCase& c) { return c.rate; });
  EXPECT_EQ(shipped_residuals().size(), static_cast<std::size_t>(rates));
}

}  // namespace
}  // namespace orrery
