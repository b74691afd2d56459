// One test per class of bad scenario input: each must raise an InputError whose message
// names the file, the line, the key and the value.
#include <gtest/gtest.h>

#include <initializer_list>
#include <string>

#include "core/error.h"
#include "scenario/load.h"

namespace orrery {
namespace {

const char* kGood = R"(cluster: {preset: dgx-h100, nodes: 2}
model: {preset: llama3-70b}
parallelism: {tp: 8, pp: 2, dp: 1, microbatch: 1, global_batch: 16}
training: {precision: bf16, recompute: selective}
)";

// Loads `yaml` expecting an InputError whose message contains every fragment.
void expect_error(const std::string& yaml, std::initializer_list<std::string> fragments) {
  try {
    load_scenario_text(yaml, "bad.yaml");
    ADD_FAILURE() << "no error for:\n" << yaml;
  } catch (const InputError& e) {
    const std::string msg = e.what();
    for (const auto& f : fragments) {
      EXPECT_NE(msg.find(f), std::string::npos) << "'" << f << "' not in: " << msg;
    }
  }
}

TEST(BadInput, TheGoodBaseLoads) { EXPECT_NO_THROW(load_scenario_text(kGood, "good.yaml")); }

TEST(BadInput, UnknownKeyWithDidYouMean) {
  expect_error(R"(cluster: {preset: dgx-h100, nodes: 2}
model: {preset: llama3-70b}
parallelism: {tp: 8, pp: 2, globl_batch: 16}
)",
               {"bad.yaml:3", "parallelism.globl_batch", "unknown key",
                "did you mean 'global_batch'?"});
}

TEST(BadInput, UnknownTopLevelSection) {
  expect_error(std::string(kGood) + "search: {tp: [1, 2]}\n",
               {"bad.yaml:5", "'search'", "unknown key"});
}

TEST(BadInput, SweepKeysAreCheckedEvenByCheckAndRun) {
  expect_error(std::string(kGood) + "sweep: {tp: [1, 2], microbatches: [1]}\n",
               {"bad.yaml:5", "sweep.microbatches", "did you mean 'microbatch'"});
  expect_error(std::string(kGood) + "sweep: {recompute: [none, ful]}\n",
               {"bad.yaml:5", "sweep.recompute", "'ful'", "did you mean 'full'"});
  expect_error(std::string(kGood) + "sweep: {pp: {from: 8, to: 2}}\n",
               {"bad.yaml:5", "sweep.pp.to", "is below from (8)"});
}

TEST(BadInput, MissingKey) {
  expect_error(R"(cluster: {preset: dgx-h100, nodes: 2}
model: {preset: llama3-70b}
parallelism: {tp: 8, pp: 2}
)",
               {"bad.yaml:3", "parallelism.global_batch", "missing key"});
  expect_error("cluster: {preset: dgx-h100}\nmodel: {preset: llama3-8b}\n",
               {"bad.yaml", "'parallelism'", "missing key"});
}

TEST(BadInput, MissingModelFieldWithoutPreset) {
  expect_error(R"(cluster: {preset: dgx-h100}
model:
  layers: 4
  hidden: 1024
  heads: 16
  vocab: 32000
  seq_len: 2048
parallelism: {tp: 1, global_batch: 8}
)",
               {"bad.yaml:3", "model.ffn", "missing key"});
}

TEST(BadInput, WrongUnit) {
  expect_error(R"(cluster: {preset: dgx-h100, gpu: {preset: h100-sxm5-80gb, memory: "80 GB/s"}}
model: {preset: llama3-8b}
parallelism: {tp: 8, global_batch: 8}
)",
               {"bad.yaml:1", "cluster.gpu.memory", "'80 GB/s'", "not a size"});
}

TEST(BadInput, MissingUnit) {
  expect_error(R"(cluster:
  preset: dgx-h100
  inter_node: {nic_bandwidth: 400}
model: {preset: llama3-8b}
parallelism: {tp: 8, global_batch: 8}
)",
               {"bad.yaml:3", "cluster.inter_node.nic_bandwidth", "'400'", "missing unit"});
}

TEST(BadInput, MalformedYaml) {
  expect_error("cluster: {preset: dgx-h100\nmodel: {preset: llama3-8b}\n",
               {"bad.yaml:", "malformed YAML"});
}

TEST(BadInput, EmptyFile) { expect_error("", {"bad.yaml", "empty"}); }

TEST(BadInput, NegativeValue) {
  expect_error(R"(cluster: {preset: dgx-h100}
model: {preset: llama3-8b}
parallelism: {tp: -8, global_batch: 8}
)",
               {"bad.yaml:3", "parallelism.tp", "'-8'", "between 1 and"});
}

TEST(BadInput, AbsurdValue) {
  expect_error(R"(cluster: {preset: dgx-h100}
model: {preset: llama3-8b, hidden: 99999999999999}
parallelism: {tp: 8, global_batch: 8}
)",
               {"bad.yaml:2", "model.hidden", "'99999999999999'", "between 1 and"});
  expect_error(R"(cluster: {preset: dgx-h100, gpu: {preset: h100-sxm5-80gb, memory: "9000 TiB"}}
model: {preset: llama3-8b}
parallelism: {tp: 8, global_batch: 8}
)",
               {"bad.yaml:1", "cluster.gpu.memory", "out of range"});
}

TEST(BadInput, WrongType) {
  expect_error(R"(cluster: {preset: dgx-h100}
model: {preset: llama3-8b}
parallelism: {tp: eight, global_batch: 8}
)",
               {"bad.yaml:3", "parallelism.tp", "'eight'", "whole number"});
  expect_error(R"(cluster: {preset: dgx-h100}
model: {preset: llama3-8b}
parallelism: {tp: [8], global_batch: 8}
)",
               {"bad.yaml:3", "parallelism.tp", "single value"});
  expect_error(R"(cluster: {preset: dgx-h100}
model: {preset: llama3-8b}
parallelism: {tp: 8, global_batch: 8, sequence_parallel: yes}
)",
               {"bad.yaml:3", "sequence_parallel", "'yes'", "true or false"});
}

TEST(BadInput, NotFinite) {
  expect_error(std::string(kGood) + "cost: {pue: nan}\n", {"bad.yaml:5", "cost.pue", "finite"});
}

TEST(BadInput, UnknownChoiceWithDidYouMean) {
  expect_error(R"(cluster: {preset: dgx-h100, nodes: 2}
model: {preset: llama3-70b}
parallelism: {tp: 8, pp: 2, global_batch: 16}
training: {precision: bf61}
)",
               {"bad.yaml:4", "training.precision", "'bf61'", "did you mean 'bf16'?"});
}

TEST(BadInput, TrainingMemoryKeys) {
  const std::string head = R"(cluster: {preset: dgx-h100, nodes: 2}
model: {preset: llama3-70b}
parallelism: {tp: 8, pp: 2, dp: 1, microbatch: 1, global_batch: 16}
)";
  expect_error(head + "training: {memory: {allocator: jemalloc}}\n",
               {"bad.yaml:4", "training.memory.allocator", "jemalloc", "expandable_segments"});
  expect_error(head + "training: {memory: {margin: 0.9}}\n",
               {"bad.yaml:4", "training.memory.margin", "0.9"});
  expect_error(head + "training: {memory: {headroom: 0.1}}\n",
               {"bad.yaml:4", "training.memory.headroom", "unknown key"});
  EXPECT_NO_THROW(load_scenario_text(
      head + "training: {memory: {allocator: expandable_segments, margin: 0.1}}\n", "good.yaml"));
}

TEST(BadInput, UnknownPresetWithDidYouMean) {
  expect_error(R"(cluster: {preset: dgx-h100}
model: {preset: llama3-8B}
parallelism: {tp: 8, global_batch: 8}
)",
               {"bad.yaml:2", "model.preset", "'llama3-8B'", "no model preset",
                "did you mean 'llama3-8b'?"});
  expect_error(R"(cluster: dgx-h1000
model: llama3-8b
parallelism: {tp: 8, global_batch: 8}
)",
               {"bad.yaml:1", "cluster", "'dgx-h1000'", "did you mean 'dgx-h100'?"});
}

TEST(BadInput, DuplicatedKey) {
  expect_error(R"(cluster: {preset: dgx-h100}
model: {preset: llama3-8b}
parallelism: {tp: 8, tp: 4, global_batch: 8}
)",
               {"bad.yaml:3", "parallelism.tp", "given twice"});
}

TEST(BadInput, TpMustDivideHeads) {
  expect_error(R"(cluster: {preset: dgx-h100, gpus_per_node: 6}
model: {preset: llama3-70b}
parallelism: {tp: 6, global_batch: 6}
)",
               {"bad.yaml:3", "parallelism.tp", "'6'", "attention heads (64)"});
}

// model.labels needs the classifier head (an encoder's masked-LM head and a decoder's
// project onto the vocabulary).
TEST(BadInput, LabelsNeedAClassifierHead) {
  expect_error(R"(cluster: {preset: dgx-h100}
model: {preset: bert-large, labels: 3}
parallelism: {tp: 8, global_batch: 8}
)",
               {"bad.yaml:2", "model.labels", "'3'", "only a classifier head"});
}

TEST(BadInput, SplitMustMatchGpuCount) {
  expect_error(R"(cluster: {preset: dgx-h100, nodes: 2}
model: {preset: llama3-70b}
parallelism: {tp: 8, pp: 2, dp: 2, global_batch: 16}
)",
               {"bad.yaml:3", "parallelism.dp", "'2'", "= 32 but the cluster has 16 GPUs"});
  expect_error(R"(cluster: {preset: dgx-h100, nodes: 2}
model: {preset: llama3-70b}
parallelism: {tp: 8, pp: 2, cp: 2, global_batch: 16}
)",
               {"bad.yaml:3", "parallelism.tp", "does not divide the cluster's 16 GPUs"});
}

TEST(BadInput, GlobalBatchMustDivideIntoMicrobatches) {
  expect_error(R"(cluster: {preset: dgx-h100, nodes: 2}
model: {preset: llama3-70b}
parallelism: {tp: 8, dp: 2, microbatch: 2, global_batch: 18}
)",
               {"bad.yaml:3", "parallelism.global_batch", "'18'",
                "multiple of microbatch*dp = 2*2 = 4"});
}

TEST(BadInput, LayersMustDivideIntoChunks) {
  expect_error(R"(cluster: {preset: dgx-h100, nodes: 2}
model: {preset: llama3-70b}
parallelism: {tp: 8, pp: 2, virtual_pipeline_stages: 3, global_batch: 16}
)",
               {"bad.yaml:3", "parallelism.pp", "layers (80)", "2*3 model chunks"});
}

TEST(BadInput, ScheduleAndVirtualStagesMustAgree) {
  expect_error(R"(cluster: {preset: dgx-h100, nodes: 2}
model: {preset: llama3-70b}
parallelism: {tp: 8, pp: 2, virtual_pipeline_stages: 2, schedule: 1f1b, global_batch: 16}
)",
               {"bad.yaml:3", "virtual_pipeline_stages", "interleaved-1f1b"});
}

TEST(BadInput, ExpertParallelNeedsExpertsAndDataRanks) {
  expect_error(R"(cluster: {preset: dgx-h100}
model: {preset: llama3-8b}
parallelism: {tp: 1, ep: 2, global_batch: 8}
)",
               {"bad.yaml:3", "parallelism.ep", "needs an MoE model"});
  expect_error(R"(cluster: {preset: dgx-h100}
model: {preset: mixtral-8x7b}
parallelism: {tp: 8, ep: 2, global_batch: 8}
)",
               {"bad.yaml:3", "parallelism.ep", "dp*cp = 1"});
}

TEST(BadInput, PrecisionTheGpuCannotRun) {
  expect_error(R"(cluster: {preset: dgx-1-v100}
model: {preset: bert-large}
parallelism: {global_batch: 64}
training: {precision: bf16}
)",
               {"bad.yaml:4", "training.precision", "'bf16'", "no bf16 peak"});
}

TEST(BadInput, FsdpConflictsWithAnotherZeroStage) {
  expect_error(R"(cluster: {preset: dgx-h100}
model: {preset: llama3-8b}
parallelism: {tp: 1, fsdp: true, zero_stage: 1, global_batch: 8}
)",
               {"bad.yaml:3", "parallelism.zero_stage", "stage 3"});
}

TEST(BadInput, CnnIsDataParallelOnly) {
  expect_error(R"(cluster: {preset: dgx-a100}
model: resnet50
parallelism: {tp: 2, global_batch: 256}
)",
               {"bad.yaml:3", "parallelism.tp", "data parallelism only"});
}

TEST(BadInput, CannotOpenFile) {
  try {
    load_scenario_file("/nonexistent/x.yaml");
    ADD_FAILURE();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/x.yaml: cannot open"), std::string::npos);
  }
}

}  // namespace
}  // namespace orrery

namespace orrery {
namespace {

TEST(BadInput, ShardingOptionsNeedZero3) {
  expect_error(R"(cluster: {preset: dgx-h100}
model: {preset: llama3-8b}
parallelism: {tp: 1, zero_stage: 1, sharding: hybrid, global_batch: 8}
)",
               {"bad.yaml:3", "parallelism.sharding", "= 'hybrid'", "ZeRO-3 / FSDP only"});
  expect_error(R"(cluster: {preset: dgx-h100, nodes: 2}
model: {preset: llama3-8b}
parallelism: {tp: 3, fsdp: true, sharding: hybrid, global_batch: 16}
)",
               {"bad.yaml:3", "parallelism"});
}

TEST(BadInput, PrefetchAndHpzNeedFullShardingZero3) {
  expect_error(R"(cluster: {preset: dgx-h100}
model: {preset: llama3-8b}
parallelism: {tp: 1, zero_stage: 2, fsdp_prefetch: 2, global_batch: 8}
)",
               {"bad.yaml:3", "parallelism.fsdp_prefetch", "= '2'", "ZeRO-3 / FSDP only"});
  expect_error(R"(cluster: {preset: dgx-h100}
model: {preset: llama3-8b}
parallelism: {tp: 1, fsdp: true, fsdp_prefetch: 9, global_batch: 8}
)",
               {"bad.yaml:3", "parallelism.fsdp_prefetch", "9"});
  expect_error(R"(cluster: {preset: dgx-h100, nodes: 2}
model: {preset: llama3-8b}
parallelism: {tp: 1, fsdp: true, sharding: hybrid, zero_hpz: true, global_batch: 16}
)",
               {"bad.yaml:3", "parallelism.zero_hpz", "full sharding"});
  expect_error(R"(cluster: {preset: dgx-h100, nodes: 2}
model: {preset: llama3-8b}
parallelism: {tp: 1, fsdp: true, reshard_after_forward: false, zero_hpz: true, global_batch: 16}
)",
               {"bad.yaml:3", "parallelism.zero_hpz", "reshard_after_forward: false"});
  expect_error(R"(cluster: {preset: dgx-h100, nodes: 3}
model: {preset: llama3-8b}
parallelism: {tp: 1, pp: 2, dp: 12, fsdp: true, zero_hpz: true, global_batch: 24}
)",
               {"bad.yaml:3", "parallelism.zero_hpz", "must divide dp (12)"});
}

// reshard_output_after_forward: ZeRO-3 only, and FSDP2's (FSDP1 keeps the output layer in
// its root, never freed after the forward).
TEST(BadInput, OutputUnitReshardIsFsdp2s) {
  expect_error(R"(cluster: {preset: dgx-h100}
model: {preset: llama3-8b}
parallelism: {tp: 1, zero_stage: 1, reshard_output_after_forward: false, global_batch: 8}
)",
               {"bad.yaml:3", "parallelism.reshard_output_after_forward", "= 'false'",
                "ZeRO-3 / FSDP only"});
  expect_error(R"(cluster: {preset: dgx-h100}
model: {preset: llama3-8b}
parallelism: {tp: 1, fsdp: true, reshard_output_after_forward: false, global_batch: 8}
)",
               {"bad.yaml:3", "parallelism.reshard_output_after_forward", "= 'false'",
                "applies to FSDP2 only", "implementation is fsdp1"});
}

TEST(BadInput, ZeroBubbleWithZero3) {
  expect_error(R"(cluster: {preset: dgx-h100, nodes: 2}
model: {preset: llama3-8b}
parallelism: {tp: 8, pp: 2, fsdp: true, schedule: zb-h1, global_batch: 16}
)",
               {"bad.yaml:3", "parallelism.schedule", "'zb-h1'", "ZeRO stages 0-2"});
}

TEST(BadInput, DualPipeNeedsEvenPipelineAndEnoughMicrobatches) {
  expect_error(R"(cluster: {preset: dgx-h100, nodes: 3}
model: {preset: llama3-8b}
parallelism: {tp: 8, pp: 3, schedule: dualpipe, global_batch: 12}
)",
               {"bad.yaml:3", "parallelism.pp", "'3'", "pp must be even"});
  expect_error(R"(cluster: {preset: dgx-h100, nodes: 4}
model: {preset: llama3-8b}
parallelism: {tp: 8, pp: 4, schedule: dualpipe, global_batch: 6}
)",
               {"bad.yaml:3", "parallelism.global_batch", "'6'", "at least 8"});
  expect_error(R"(cluster: {preset: dgx-h100, nodes: 2}
model: {preset: llama3-8b}
parallelism: {tp: 8, pp: 2, schedule: dualpipe, global_batch: 9}
)",
               {"bad.yaml:3", "parallelism.global_batch", "'9'", "must be even"});
  expect_error(R"(cluster: {preset: dgx-h100, nodes: 2}
model: {preset: llama3-8b}
parallelism: {tp: 4, pp: 2, fsdp: true, schedule: dualpipe, global_batch: 16}
)",
               {"bad.yaml:3", "parallelism.schedule", "'dualpipe'", "ZeRO stages 0-2"});
}

TEST(BadInput, CurvesMustIncreaseAndCarryUnits) {
  expect_error(R"(cluster:
  preset: dgx-h100
  gpu: {preset: h100-sxm5-80gb, gemm_ramp: [["10 us", 0.5], ["5 us", 0.9]]}
model: {preset: llama3-8b}
parallelism: {tp: 8, global_batch: 8}
)",
               {"bad.yaml:3", "cluster.gpu.gemm_ramp[1]", "increasing"});
  expect_error(R"(cluster:
  preset: dgx-h100
  intra_node: {bus_bandwidth_curve: [["16", 0.5]]}
model: {preset: llama3-8b}
parallelism: {tp: 8, global_batch: 8}
)",
               {"bad.yaml:3", "cluster.intra_node.bus_bandwidth_curve[0]", "missing unit"});
  expect_error(R"(cluster:
  preset: dgx-h100
  intra_node: {bus_bandwidth_curve: [["16 MiB", 1.5]]}
model: {preset: llama3-8b}
parallelism: {tp: 8, global_batch: 8}
)",
               {"bad.yaml:3", "bus_bandwidth_curve[0]", "(0, 1]"});
}

TEST(BadInput, UnknownCpCommWithDidYouMean) {
  expect_error(R"(cluster: {preset: dgx-h100}
model: {preset: llama3-8b}
parallelism: {tp: 4, cp: 2, cp_comm: rign, global_batch: 8}
)",
               {"bad.yaml:3", "parallelism.cp_comm", "'rign'", "did you mean 'ring'?"});
}

}  // namespace
}  // namespace orrery

namespace orrery {
namespace {

TEST(BadInput, TrainingTargetNeedsExactlyOneKind) {
  expect_error(R"(cluster: {preset: dgx-h100}
model: {preset: llama3-8b}
parallelism: {tp: 8, global_batch: 8}
training: {target: {tokens: 1e9, steps: 10}}
)",
               {"bad.yaml:4", "training.target", "exactly one of tokens, samples, steps"});
  expect_error(R"(cluster: {preset: dgx-h100}
model: {preset: llama3-8b}
parallelism: {tp: 8, global_batch: 8}
training: {target: {critical_batch: {e_min_samples: 1e5}}}
)",
               {"bad.yaml:4", "training.target.critical_batch.b_noise_samples", "missing key"});
  expect_error(R"(cluster: {preset: dgx-h100}
model: {preset: llama3-8b}
parallelism: {tp: 8, global_batch: 8}
training: {target: {critical_batch: {e_min_samples: 1e5, b_noise_samples: 64, loss_nats: 2.0}}}
)",
               {"bad.yaml:4", "training.target.critical_batch.loss_nats", "not both"});
  expect_error(R"(cluster: {preset: dgx-h100}
model: {preset: llama3-8b}
parallelism: {tp: 8, global_batch: 8}
training: {target: {critical_batch: {e_min_samples: 1e5, b_noise: 64}}}
)",
               {"bad.yaml:4", "training.target.critical_batch.b_noise", "b_noise_samples"});
  expect_error(R"(cluster: {preset: dgx-a100}
model: {preset: resnet50}
parallelism: {global_batch: 256}
training: {target: {tokens: 1e9}}
)",
               {"training.target", "give samples (images) for a CNN"});
}

TEST(BadInput, IdlePowerAboveTheAverageDraw) {
  expect_error(R"(cluster: {preset: dgx-h100}
model: {preset: llama3-8b}
parallelism: {tp: 8, global_batch: 8}
cost: {gpu_power: "500 W", gpu_idle_power: "600 W"}
)",
               {"bad.yaml:4", "cost.gpu_idle_power", "600", "exceeds the average draw"});
}

}  // namespace
}  // namespace orrery

namespace orrery {
namespace {

TEST(BadInput, GradientCompressionSettings) {
  expect_error(R"(cluster: {preset: dgx-h100, nodes: 2}
model: {preset: llama3-8b}
parallelism: {tp: 8, dp: 2, global_batch: 8}
training: {gradient_compression: {scheme: topk, rank: 4}}
)",
               {"bad.yaml:4", "training.gradient_compression.rank", "does not apply to scheme topk"});
  expect_error(R"(cluster: {preset: dgx-h100, nodes: 2}
model: {preset: llama3-8b}
parallelism: {tp: 8, dp: 2, global_batch: 8}
training: {gradient_compression: {density: 0.01}}
)",
               {"training.gradient_compression.scheme", "missing key"});
  expect_error(R"(cluster: {preset: dgx-h100, nodes: 2}
model: {preset: llama3-8b}
parallelism: {tp: 8, dp: 2, global_batch: 8}
training: {gradient_compression: {scheme: zip}}
)",
               {"bad.yaml:4", "training.gradient_compression.scheme", "'zip'", "powersgd"});
  expect_error(R"(cluster: {preset: dgx-h100, nodes: 2}
model: {preset: llama3-8b}
parallelism: {tp: 8, dp: 2, global_batch: 8}
training: {gradient_compression: {scheme: topk, density: 2}}
)",
               {"bad.yaml:4", "training.gradient_compression.density", "'2'"});
  expect_error(R"(cluster: {preset: dgx-h100, nodes: 2}
model: {preset: llama3-8b}
parallelism: {tp: 8, dp: 2, global_batch: 8}
training: {gradient_dtype: bf16, gradient_compression: {scheme: bf16}}
)",
               {"training.gradient_compression.scheme", "'bf16'", "already bf16"});
  expect_error(R"(cluster: {preset: dgx-h100, nodes: 2}
model: {preset: llama3-8b}
parallelism: {tp: 8, dp: 2, fsdp: true, global_batch: 8}
training: {gradient_compression: {scheme: powersgd}}
)",
               {"training.gradient_compression.scheme", "'powersgd'", "ZeRO stages 0-2"});
  expect_error(R"(cluster: {preset: dgx-h100, nodes: 2}
model: {preset: llama3-8b}
parallelism: {tp: 8, dp: 2, zero_stage: 1, global_batch: 8}
training: {gradient_compression: {scheme: local_sgd, period: 4}}
)",
               {"training.gradient_compression.scheme", "'local_sgd'", "zero_stage 0"});
}

}  // namespace
}  // namespace orrery

namespace orrery {
namespace {

TEST(BadInput, Fp8RecipeSettings) {
  const std::string head = R"(cluster: {preset: dgx-h100, nodes: 2}
model: {preset: llama3-70b}
parallelism: {tp: 8, pp: 2, dp: 1, microbatch: 1, global_batch: 16}
)";
  // The section belongs to fp8 training.
  expect_error(head + "training: {precision: bf16, fp8: {}}\n",
               {"bad.yaml:4", "training.fp8", "applies to training.precision fp8 (it is bf16)"});
  // Unknown keys and values, with hints.
  expect_error(head + "training: {precision: fp8, fp8: {scalling: block}}\n",
               {"bad.yaml:4", "training.fp8.scalling", "did you mean 'scaling'"});
  expect_error(head + "training: {precision: fp8, fp8: {scaling: blok}}\n",
               {"bad.yaml:4", "training.fp8.scaling", "'blok'", "did you mean 'block'"});
  expect_error(head + "training: {precision: fp8, fp8: {gemms: [qkv, fc3]}}\n",
               {"bad.yaml:4", "training.fp8.gemms", "'fc3'", "did you mean 'fc1'"});
  expect_error(head + "training: {precision: fp8, fp8: {gemms: []}}\n",
               {"bad.yaml:4", "training.fp8.gemms", "non-empty list"});
  expect_error(head + "training: {precision: fp8, fp8: {communication: {tp_allgather: fp4}}}\n",
               {"bad.yaml:4", "training.fp8.communication.tp_allgather", "'fp4'"});
  // amax_history is delayed scaling's.
  expect_error(head + "training: {precision: fp8, fp8: {scaling: mxfp8, amax_history: 16}}\n",
               {"bad.yaml:4", "training.fp8.amax_history", "'16'", "delayed scaling only"});
  expect_error(head + "training: {precision: fp8, fp8: {amax_history: 0}}\n",
               {"bad.yaml:4", "training.fp8.amax_history", "'0'"});
  // llama3-70b has 80 layers.
  expect_error(head + "training: {precision: fp8, fp8: {bf16_layers: {first: 40, last: 41}}}\n",
               {"bad.yaml:4", "training.fp8.bf16_layers.first", "'40'",
                "first + last = 81 exceeds the model's 80 layers"});
  // The weight cache and fp8 parameter gathers against the sharding.
  const std::string zero3 = R"(cluster: {preset: dgx-h100, nodes: 2}
model: {preset: llama3-70b}
parallelism: {tp: 8, pp: 1, dp: 2, microbatch: 1, global_batch: 16, zero_stage: 3}
)";
  expect_error(zero3 + "training: {precision: fp8, fp8: {weight_cache: true}}\n",
               {"bad.yaml:4", "training.fp8.weight_cache", "'true'", "weight_cache: false"});
  expect_error(head + "training: {precision: fp8, fp8: {communication: {param_allgather: fp8}}}\n",
               {"bad.yaml:4", "training.fp8.communication.param_allgather", "'fp8'",
                "ZeRO-3/FSDP"});
  EXPECT_NO_THROW(load_scenario_text(
      zero3 + "training: {precision: fp8, fp8: {communication: {param_allgather: fp8}}}\n",
      "good.yaml"));
  // torchao's row-wise recipes gather in bf16 and keep no weight cache.
  expect_error(zero3 +
                   "training: {precision: fp8, fp8: {scaling: rowwise, communication: "
                   "{param_allgather: fp8}}}\n",
               {"bad.yaml:4", "training.fp8.communication.param_allgather", "'fp8'", "row-wise",
                "param_allgather: bf16"});
  const std::string sp = R"(cluster: {preset: dgx-h100, nodes: 2}
model: {preset: llama3-70b}
parallelism: {tp: 8, pp: 2, dp: 1, microbatch: 1, global_batch: 16, sequence_parallel: true}
)";
  expect_error(
      sp + "training: {precision: fp8, fp8: {scaling: rowwise_gw_hp, communication: {tp_allgather: "
           "fp8}}}\n",
      {"bad.yaml:4", "training.fp8.communication.tp_allgather", "'fp8'", "tp_allgather: bf16"});
  expect_error(head + "training: {precision: fp8, fp8: {scaling: rowwise, weight_cache: true}}\n",
               {"bad.yaml:4", "training.fp8.weight_cache", "'true'", "every micro-batch"});
  EXPECT_NO_THROW(load_scenario_text(
      zero3 + "training: {precision: fp8, fp8: {scaling: rowwise}}\n", "good.yaml"));
}

TEST(BadInput, ReliabilityNeedsItsFiguresAndATarget) {
  expect_error(R"(cluster: {preset: dgx-h100}
model: {preset: llama3-8b}
parallelism: {tp: 8, global_batch: 8}
training: {target: {steps: 10}}
reliability: {checkpoint_bandwidth: "10 GB/s"}
)",
               {"bad.yaml:5", "reliability.restart_time", "missing key"});
  expect_error(R"(cluster: {preset: dgx-h100}
model: {preset: llama3-8b}
parallelism: {tp: 8, global_batch: 8}
reliability: {checkpoint_bandwidth: "10 GB/s", restart_time: "10 min"}
)",
               {"reliability", "set training.target"});
  expect_error(R"(cluster: {preset: dgx-h100}
model: {preset: llama3-8b}
parallelism: {tp: 8, global_batch: 8}
training: {target: {steps: 10}}
reliability: {checkpoint_bandwidth: "10 GB/s", restart_time: "10 min", gpu_mtbf: "5 weeks"}
)",
               {"bad.yaml:5", "reliability.gpu_mtbf", "'5 weeks'"});
}

}  // namespace
}  // namespace orrery

namespace orrery {
namespace {

TEST(BadInput, NotUtf8) {
  // Well-formed UTF-8 anywhere is fine: a 2-, 3- and 4-byte character in a comment.
  const std::string ok = "# caf\xC3\xA9 \xE2\x82\xAC \xF0\x9D\x84\x9E\n"
                         "cluster: {preset: dgx-h100}\nmodel: {preset: llama3-8b}\n"
                         "parallelism: {tp: 8, global_batch: 8}\n";
  EXPECT_NO_THROW(load_scenario_text(ok, "ok.yaml"));
  // A stray continuation byte, an overlong '/', a UTF-16 surrogate, a character cut off
  // by the end of the file, and a lead byte past U+10FFFF: each names its line and byte.
  const std::string base = "cluster: {preset: dgx-h100}\nmodel: {preset: llama3-8b}\n";
  expect_error(base + "name: \"A10\xB0\"\n", {"bad.yaml:3", "not UTF-8", "0xB0"});
  expect_error(base + "name: \"\xC0\xAF\"\n", {"bad.yaml:3", "0xC0"});
  expect_error(base + "name: \"\xED\xA0\x80\"\n", {"bad.yaml:3", "0xED"});
  expect_error(base + "# \xE2\x82", {"bad.yaml:3", "0xE2"});
  expect_error("# \xF5\x80\x80\x80\n" + base, {"bad.yaml:1", "0xF5"});
}

TEST(BadInput, LossScaling) {
  const std::string base = R"(cluster: {preset: dgx-h100}
model: {preset: llama3-8b}
parallelism: {tp: 8, global_batch: 8}
)";
  expect_error(base + "training: {precision: fp16, loss_scaling: {window: 10}}\n",
               {"bad.yaml:4", "training.loss_scaling.kind", "missing key"});
  expect_error(base + "training: {loss_scaling: {kind: static, window: 10}}\n",
               {"bad.yaml:4", "training.loss_scaling.window", "kind: dynamic only"});
  expect_error(base + "training: {loss_scaling: {kind: dynamic, hysteresis: 0}}\n",
               {"bad.yaml:4", "training.loss_scaling.hysteresis", "'0'"});
  expect_error(base + "training: {loss_scaling: {kind: automatic}}\n",
               {"bad.yaml:4", "training.loss_scaling.kind", "'automatic'"});
}

TEST(BadInput, FaultEntries) {
  const std::string base = R"(cluster: {preset: dgx-h100, nodes: 2}
model: {preset: llama3-8b}
parallelism: {tp: 8, pp: 2, global_batch: 8}
)";
  expect_error(base + "faults: {kind: straggler}\n", {"bad.yaml:4", "faults", "a list of faults"});
  expect_error(base + "faults:\n  - {kind: straggler, factor: 0.5}\n",
               {"bad.yaml:5", "faults[0].stage", "missing key"});
  expect_error(base + "faults:\n  - {kind: straggler, stage: 1, factor: 0.5, lost: 2}\n",
               {"bad.yaml:5", "faults[0].lost", "does not apply to a straggler fault"});
  expect_error(base + "faults:\n  - {kind: meteor}\n",
               {"bad.yaml:5", "faults[0].kind", "'meteor'", "failed_node"});
  expect_error(base + "faults:\n  - {kind: slow_link, link: nic, factor: 1.5}\n",
               {"bad.yaml:5", "faults[0].factor", "'1.5'"});
  expect_error(base + "faults:\n  - {kind: failed_link, link: nvlink, leaf: 0}\n",
               {"bad.yaml:5", "faults[0].link", "link: spine", "link: nic"});
  expect_error(base + "faults:\n  - {kind: failed_link, link: nic, leaf: 0}\n",
               {"bad.yaml:5", "faults[0].leaf", "does not apply to a failed NIC"});
  expect_error(base + "faults:\n  - {kind: failed_link, link: spine, nic: 2}\n",
               {"bad.yaml:5", "faults[0].nic", "does not apply to failed spine uplinks"});
  expect_error(base + "faults:\n  - {kind: failed_link, link: nic, node: 1}\n",
               {"bad.yaml:5", "faults[0].nic", "missing key"});
  expect_error(base + "faults:\n  - {kind: failed_link, link: nic, node: 1, nic: 2, from: \"1 ms\"}\n",
               {"bad.yaml:5", "faults[0].from", "whole step", "reliability"});
  expect_error(base + "faults:\n  - {kind: failed_node, node: 1, from: \"2 ms\", until: \"1 ms\"}\n",
               {"bad.yaml:5", "faults[0].until", "after `from`"});
}

}  // namespace
}  // namespace orrery

namespace orrery {
namespace {

TEST(BadInput, FaultOnAPartTheClusterLacks) {
  expect_error(R"(cluster: {preset: dgx-h100, nodes: 2}
model: {preset: llama3-8b}
parallelism: {tp: 8, pp: 2, global_batch: 8}
faults:
  - {kind: straggler, stage: 2, factor: 0.5}
)",
               {"bad.yaml:5", "faults[0].stage", "'2'", "2 pipeline stages"});
  expect_error(R"(cluster: {preset: dgx-h100, nodes: 2}
model: {preset: llama3-8b}
parallelism: {tp: 8, pp: 2, global_batch: 8}
faults:
  - {kind: failed_node, node: 7}
)",
               {"bad.yaml:5", "faults[0].node", "'7'", "2 nodes"});
  expect_error(R"(cluster: {preset: dgx-h100, nodes: 2}
model: {preset: llama3-8b}
parallelism: {tp: 8, pp: 2, global_batch: 8}
faults:
  - {kind: failed_link, link: nic, node: 1, nic: 8}
)",
               {"bad.yaml:5", "faults[0].nic", "'8'", "8 NICs per node"});
  expect_error(R"(cluster: {preset: dgx-h100, nodes: 1}
model: {preset: llama3-8b}
parallelism: {tp: 8, global_batch: 8}
faults:
  - {kind: failed_link, link: nic, node: 0, nic: 1}
)",
               {"bad.yaml:5", "faults[0].link", "single-node"});
}

// Regression: tp*pp*cp, tp*pp*dp*cp, microbatch*dp and pp*virtual_pipeline_stages were
// multiplied in int; degrees of up to 2^20 each overflowed it (undefined behaviour,
// reported by UBSan) before the world-size check could refuse them.
TEST(BadInput, DegreesWhoseProductOverflowsAnIntAreRefused) {
  // 2^20 x 2^20 = 1099511627776 model ranks for 8 GPUs.
  expect_error(R"(cluster: {preset: dgx-h100}
model: {preset: llama3-8b}
parallelism: {tp: 1048576, pp: 1048576, global_batch: 8}
)",
               {"bad.yaml:3", "parallelism.tp", "'1048576'",
                "tp*pp*cp = 1099511627776 does not divide the cluster's 8 GPUs"});
  // With dp given: 2^20 x 2^20 x 2^20 x 1 = 1152921504606846976.
  expect_error(R"(cluster: {preset: dgx-h100}
model: {preset: llama3-8b}
parallelism: {tp: 1048576, pp: 1048576, dp: 1048576, global_batch: 8}
)",
               {"bad.yaml:3", "parallelism.dp",
                "tp*pp*dp*cp = 1048576*1048576*1048576*1 = 1152921504606846976 but the cluster "
                "has 8 GPUs"});
  // dp = 2^20 GPUs (131072 nodes of 8) and microbatch 2^20: microbatch*dp = 2^40.
  expect_error(R"(cluster: {preset: dgx-h100, nodes: 131072}
model: {preset: llama3-8b}
parallelism: {tp: 1, microbatch: 1048576, global_batch: 1048576}
)",
               {"bad.yaml:3", "parallelism.global_batch",
                "must be a multiple of microbatch*dp = 1048576*1048576 = 1099511627776"});
}

TEST(BadInput, AttentionMaskLengths) {
  const std::string head = "cluster: {preset: dgx-h100, nodes: 1}\n";
  const std::string tail = "parallelism: {tp: 1, global_batch: 8}\n";
  // A length for another mask than the one it belongs to.
  expect_error(head + "model: {preset: llama3-8b, attention_window: 4096}\n" + tail,
               {"bad.yaml:2", "model.attention_window", "4096",
                "only attention_mask sliding-window takes it (the mask is causal)"});
  expect_error(
      head + "model: {preset: llama3-8b, attention_mask: full, document_length: 512}\n" + tail,
      {"bad.yaml:2", "model.document_length", "512",
       "only attention_mask document takes it (the mask is full)"});
  // The mask without its length.
  expect_error(head + "model: {preset: llama3-8b, attention_mask: sliding-window}\n" + tail,
               {"bad.yaml:2", "model.attention_window", "missing key"});
  expect_error(head + "model: {preset: llama3-8b, attention_mask: document}\n" + tail,
               {"bad.yaml:2", "model.document_length", "missing key"});
  // Longer than the sequence (llama3-8b: 8192).
  expect_error(head +
                   "model: {preset: llama3-8b, attention_mask: sliding-window, "
                   "attention_window: 10000}\n" +
                   tail,
               {"bad.yaml:2", "model.attention_window", "10000", "exceeds seq_len (8192)"});
  expect_error(head + "model: {preset: llama3-8b, attention_mask: causl}\n" + tail,
               {"bad.yaml:2", "model.attention_mask", "'causl'", "did you mean 'causal'"});
}

}  // namespace
}  // namespace orrery

namespace orrery {
namespace {

// A llama3-8b (32 layers) on pp GPUs, pp-way pipelined; the rest of the parallelism
// mapping follows.
std::string pipe(int pp) {
  return "cluster: {preset: dgx-h100, gpus_per_node: " + std::to_string(pp) +
         "}\nmodel: {preset: llama3-8b}\nparallelism: {tp: 1, dp: 1, microbatch: 1, "
         "global_batch: 8, pp: " +
         std::to_string(pp) + ", ";
}

TEST(BadInput, PipelineLayoutErrorsNameThePosition) {
  expect_error(pipe(2) + "pipeline_layout: \"Et*15|t*16x\"}\n",
               {"bad.yaml", "parallelism.pipeline_layout", "Et*15|t*16x", "position 11",
                "not a layer character"});
  expect_error(pipe(2) + "pipeline_layout: \"Et*15|t*16|L\"}\n",
               {"parallelism.pipeline_layout", "3 stages", "multiple of pp = 2"});
  expect_error(pipe(2) + "pipeline_layout: \"Et*15|t*16\"}\n",
               {"parallelism.pipeline_layout", "exactly one L"});
  expect_error(pipe(2) + "pipeline_layout: \"Et*15|t*15L\"}\n",
               {"parallelism.pipeline_layout", "places 30 transformer layers", "has 32"});
  expect_error(pipe(2) + "pipeline_layout: \"Et*16|t*16mL\"}\n",
               {"parallelism.pipeline_layout", "multi-token-prediction"});
  // An MTP stage of its own (Megatron-Core's mtp_standalone) runs, but as Megatron-Core
  // requires it (a rank's last virtual stage, only empty stages before L's) and not on the
  // first rank, beside the embedding, which orrery does not model.
  auto with_mtp = [](int pp, const std::string& rest, int layers = 1) {
    std::string text = pipe(pp) + rest;
    text.replace(text.find("{preset: llama3-8b}"), 19,
                 "{preset: llama3-8b, mtp_layers: " + std::to_string(layers) + "}");
    return text;
  };
  expect_error(with_mtp(2, "pipeline_layout: \"Et*8|t*8|t*16m|L\"}\n"),
               {"parallelism.pipeline_layout", "on the first rank, beside the embedding, are not "
                                               "modelled"});
  expect_error(with_mtp(4, "pipeline_layout: \"Et*12|t*10|t*10m|||||L\"}\n"),
               {"parallelism.pipeline_layout", "stage 2 holds the multi-token-prediction layers",
                "only in a rank's last virtual stage"});
  expect_error(with_mtp(4, "pipeline_layout: \"Et*8|t*8|t*8m|t*8L\"}\n"),
               {"parallelism.pipeline_layout", "a transformer layer (t) after a "
                                               "multi-token-prediction layer (m)"});
  expect_error(with_mtp(4, "pipeline_layout: \"Et*8|t*8|mt*16|L\"}\n"),
               {"parallelism.pipeline_layout", "a transformer layer (t) after"});
  expect_error(with_mtp(4, "pipeline_layout: \"Et*8|t*8|t*16m|mL\"}\n", 2),
               {"parallelism.pipeline_layout", "every multi-token-prediction layer (m) in one "
                                               "stage"});
  expect_error(with_mtp(4, "pipeline_layout: \"Et*8|t*8|t*16m|L\", schedule: gpipe}\n"),
               {"parallelism.pipeline_layout", "1f1b and interleaved-1f1b schedules only",
                "not schedule gpipe"});
  // Empty stages are Megatron-Core's pass-through stages, but E and L stay at the ends.
  expect_error(pipe(2) + "pipeline_layout: \"Et*16||t*16L|\"}\n",
               {"parallelism.pipeline_layout", "the last stage (rank 1, virtual stage 1) must "
                                               "hold the L"});
  expect_error(pipe(2) + "pipeline_layout: \"|Et*16|t*16L|\"}\n",
               {"parallelism.pipeline_layout", "the first stage (rank 0, virtual stage 0)"});
  expect_error(pipe(4) + "pipeline_layout: \"Et*16||t*16|L\", schedule: dualpipe}\n",
               {"parallelism.pipeline_layout", "stage 1 (rank 1, virtual stage 0) is empty",
                "not under the dualpipe schedule"});
  expect_error(pipe(3) + "pipeline_layout: \"Et*16||t*16L\", pipeline_engine: deepspeed}\n",
               {"parallelism.pipeline_layout", "stage 1 (rank 1, virtual stage 0) is empty",
                "not under DeepSpeed's pipeline engine"});
  expect_error(pipe(2) + "pipeline_layout: \"Et*16|t*16L\", account_for_loss: true}\n",
               {"parallelism.pipeline_layout", "remove parallelism.account_for_loss"});
  expect_error(pipe(2) + "virtual_pipeline_stages: 2, pipeline_layout: \"Et*16|t*16L\"}\n",
               {"parallelism.virtual_pipeline_stages", "give 1 virtual stages"});
}

TEST(BadInput, UnevenInterleavedSplitsAsMegatronRequires) {
  // 32 layers, pp 4, vp 2: first 3 is not a multiple of 2.
  expect_error(pipe(4) +
                   "virtual_pipeline_stages: 2, first_stage_layers: 3, "
                   "last_stage_layers: 3}\n",
               {"parallelism.first_stage_layers", "'3'", "positive multiple of 2"});
  expect_error(pipe(4) + "first_stage_layers: 8, account_for_embedding: true}\n",
               {"parallelism.first_stage_layers", "account_for_embedding"});
  // 32 layers do not divide over pp 6: the hint names first/last counts that are accepted
  // (32 / 6 = 5, one fewer: 4 each, the other 4 stages (32 - 8) / 4 = 6 each).
  expect_error(pipe(6) + "}\n", {"parallelism.pp", "first_stage_layers: 4 and last_stage_layers: 4",
                                 "the other 4 stages take 6 each"});
  // Llama 3 405B's 126 layers over pp 16: 7 + 14 x 8 + 7 without interleaving; with 8
  // virtual stages no first/last count is a multiple of 8, but 126 + 2 = 128 = 16 x 8.
  const std::string llama =
      "cluster: {preset: dgx-h100, nodes: 2}\nmodel: {preset: llama3-405b}\n"
      "parallelism: {tp: 1, dp: 1, pp: 16, global_batch: 16";
  expect_error(llama + "}\n", {"parallelism.pp", "first_stage_layers: 7 and last_stage_layers: 7",
                               "the other 14 stages take 8 each"});
  expect_error(llama + ", virtual_pipeline_stages: 8}\n",
               {"parallelism.pp", "16*8", "set account_for_embedding and account_for_loss"});
}

TEST(BadInput, InterleavedMicroBatchGroups) {
  // 6 micro-batches over pp 4 in groups of 4: a last group of 2 < pp.
  std::string six = pipe(4);
  six.replace(six.find("global_batch: 8"), 15, "global_batch: 6");
  expect_error(six + "virtual_pipeline_stages: 2}\n",
               {"parallelism.global_batch", "groups of 4", "last group"});
  expect_error(pipe(4) + "virtual_pipeline_stages: 2, microbatch_group_size: 3}\n",
               {"parallelism.microbatch_group_size", "between pp = 4"});
  // 10 micro-batches, pp 4, group 5: accepted (10 % 5 = 0).
  std::string ten = pipe(4);
  ten.replace(ten.find("global_batch: 8"), 15, "global_batch: 10");
  EXPECT_NO_THROW(load_scenario_text(
      ten + "virtual_pipeline_stages: 2, microbatch_group_size: 5}\n", "ok.yaml"));
  // The Llama 3 paper's flexible groups take 2 micro-batches at pp 4, as one group of 2
  // (without them, refused); not another group size there, and with as many micro-batches
  // as pp Megatron-Core's rule again (groups of 3 at 8 micro-batches wait on themselves).
  std::string two = pipe(4);
  two.replace(two.find("global_batch: 8"), 15, "global_batch: 2");
  expect_error(two + "virtual_pipeline_stages: 2}\n",
               {"parallelism.global_batch", "at least pp = 4", "flexible_groups"});
  EXPECT_EQ(load_scenario_text(two + "virtual_pipeline_stages: 2, flexible_groups: true}\n",
                               "ok.yaml")
                .parallelism.microbatch_group_size,
            2);
  expect_error(two + "virtual_pipeline_stages: 2, flexible_groups: true, "
                     "microbatch_group_size: 1}\n",
               {"parallelism.microbatch_group_size", "one group of all 2"});
  expect_error(six + "virtual_pipeline_stages: 2, flexible_groups: true}\n",
               {"parallelism.global_batch", "last group"});
  expect_error(pipe(4) + "virtual_pipeline_stages: 2, flexible_groups: true, "
                         "microbatch_group_size: 3}\n",
               {"parallelism.microbatch_group_size", "between pp = 4", "waits on itself"});
  expect_error(pipe(4) + "flexible_groups: true}\n",
               {"parallelism.flexible_groups", "interleaved-1f1b"});
}

// DeepSpeed's engine runs only its 1F1B TrainSchedule; the error names the key the file
// wrote: virtual stages, which imply the interleaved schedule, or the schedule itself.
TEST(BadInput, DeepSpeedEngineNamesTheKeyThatAskedForAnotherSchedule) {
  expect_error(pipe(4) + "pipeline_engine: deepspeed, virtual_pipeline_stages: 2}\n",
               {"parallelism.virtual_pipeline_stages", "= '2'", "remove virtual_pipeline_stages"});
  expect_error(pipe(4) + "pipeline_engine: deepspeed, schedule: gpipe}\n",
               {"parallelism.schedule", "= 'gpipe'", "schedule must be 1f1b"});
}

TEST(BadInput, OptimizerStatePrecisionIsAdams) {
  const std::string head =
      "cluster: {preset: dgx-h100}\nmodel: {preset: llama3-8b}\n"
      "parallelism: {tp: 8, dp: 1, global_batch: 8}\n";
  expect_error(head + "training: {optimizer: lamb, optimizer_state_dtype: 8bit}\n",
               {"bad.yaml:4", "training.optimizer_state_dtype", "'8bit'", "adam or adamw only",
                "optimizer is lamb"});
  expect_error(head + "training: {optimizer: sgd, main_params_dtype: none}\n",
               {"bad.yaml:4", "training.main_params_dtype", "'none'", "optimizer is sgd"});
  expect_error(head + "training: {precision: fp32, main_params_dtype: fp16}\n",
               {"bad.yaml:4", "training.main_params_dtype", "'fp16'", "no separate master"});
  expect_error(head + "training: {optimizer_state_dtype: fp8}\n",
               {"bad.yaml:4", "training.optimizer_state_dtype", "'fp8'", "8bit"});
  // The defaults stated with another optimizer are accepted.
  EXPECT_NO_THROW(load_scenario_text(
      head + "training: {optimizer: sgd, optimizer_state_dtype: fp32, main_params_dtype: fp32}\n",
      "ok.yaml"));
}

}  // namespace
}  // namespace orrery

namespace orrery {
namespace {

// Combinations Megatron-Core's TransformerConfig refuses (transformer_config.py at
// NVIDIA/Megatron-LM d98e8a64, lines 1991-2005 and 3036-3050).
TEST(BadInput, RecomputeAndMoeOverlapAsMegatronCoreAllows) {
  const std::string moe = R"(name: moe
cluster: {preset: dgx-h100, nodes: 1}
model: {preset: mixtral-8x7b}
parallelism: {tp: 1, pp: 1, dp: 8, ep: 8, microbatch: 1, global_batch: 16)";
  expect_error(moe + R"(}
training: {precision: fp8, fp8: {scaling: delayed}, recompute: selective, recompute_modules: [layernorm]}
)",
               {"training.recompute_modules", "layernorm", "delayed fp8 scaling"});
  expect_error(moe + R"(}
training: {precision: fp8, fp8: {scaling: delayed}, recompute: selective, recompute_modules: [moe_act]}
)",
               {"training.recompute_modules", "moe_act", "delayed fp8 scaling"});
  expect_error(moe + R"(, moe_a2a_overlap: true}
training: {precision: tf32}
)",
               {"parallelism.moe_a2a_overlap", "bf16 or fp16 model only"});
  expect_error(R"(name: dsv3
cluster: {preset: dgx-h100, nodes: 1}
model: {preset: deepseek-v3, layers: 4, mtp_layers: 2}
parallelism: {tp: 1, pp: 1, dp: 8, ep: 8, microbatch: 1, global_batch: 16, moe_a2a_overlap: true}
training: {precision: bf16}
)",
               {"parallelism.moe_a2a_overlap", "at most one MTP layer"});
  expect_error(R"(name: dsv3
cluster: {preset: dgx-h100, nodes: 1}
model: {preset: deepseek-v3, layers: 4, moe: {shared_expert_overlap: true}}
parallelism: {tp: 1, pp: 1, dp: 8, ep: 8, microbatch: 1, global_batch: 16}
training: {precision: bf16, recompute: selective, recompute_modules: [shared_experts]}
)",
               {"training.recompute_modules", "shared_experts", "shared_expert_overlap"});
  // ZeRO-3 with expert parallelism: the experts' in-node group under hybrid sharding or hpZ
  // is not modelled.
  auto zero3_moe = [](const std::string& sharding) {
    return R"(name: moe
cluster: {preset: dgx-h100, nodes: 2}
model: {preset: mixtral-8x7b}
parallelism: {tp: 1, pp: 1, dp: 16, ep: 8, microbatch: 1, global_batch: 16, )" +
           sharding + "}\ntraining: {precision: bf16}\n";
  };
  expect_error(zero3_moe("fsdp: {implementation: fsdp2}, sharding: hybrid"),
               {"parallelism.sharding", "hybrid sharding with expert parallelism"});
  expect_error(zero3_moe("fsdp: {implementation: deepspeed}, zero_hpz: true"),
               {"parallelism.zero_hpz", "hpZ with expert parallelism"});
  // The same modules under current scaling load.
  EXPECT_NO_THROW(load_scenario_text(moe + R"(}
training: {precision: fp8, fp8: {scaling: current}, recompute: selective, recompute_modules: [layernorm, moe_act]}
)",
                                     "good.yaml"));
}

TEST(BadInput, ANulByteInANameIsAnInputErrorNotNonUtf8Json) {
  // fuzz/simulate_fuzz's crash: "6\0_" in a name came out of yaml-cpp as 0xA0, which the
  // JSON writer then refused (not an InputError). YAML allows no such control character.
  const std::string name_with_nul("name: Mixtral 8x7B, 6\0_ H100\n", 29);
  expect_error(name_with_nul + kGood, {"bad.yaml:1", "control character 0x00"});
  expect_error(std::string("name: a\x7f b\n") + kGood, {"control character 0x7F"});
  // Tab, line feed and carriage return are fine.
  EXPECT_NO_THROW(load_scenario_text(std::string("name: a\tb\r\n") + kGood, "tab.yaml"));
}

TEST(BadInput, AnEscapeYamlCppReadsIntoNonUtf8IsAnInputError) {
  // "\_" (U+00A0) and "\N" (U+0085) come out of yaml-cpp as the bytes 0xA0 and 0x85; the
  // JSON writer refused them (not an InputError). The key path names where, nested too.
  expect_error(std::string("name: \"a\\_b\"\n") + kGood, {"bad.yaml:1", "key 'name' = 'a?b'"});
  expect_error(std::string(kGood) + "measured: {metric: mfu, value: 0.4, source: \"x\\Ny\"}\n",
               {"key 'measured.source' = 'x?y'", "not UTF-8"});
  // The escapes yaml-cpp writes as UTF-8 are fine.
  EXPECT_NO_THROW(load_scenario_text(std::string("name: \"a\\u00e9\\xA0b\"\n") + kGood, "ok.yaml"));
}

}  // namespace
}  // namespace orrery
