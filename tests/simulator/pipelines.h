// Pipelines of a small dense model for the whole-step tests (step_test.cpp, faults_test.cpp):
// uniform stages whose embedding and head are negligible (vocab 8, rotary positions), no
// data parallelism and no host time per kernel (the embedding's and head's few kernels
// would otherwise take 13.48 us each, no longer negligible).
#pragma once

#include <fmt/format.h>

#include <string>

#include "scenario/load.h"

namespace orrery {

// The model and training sections every pipeline here shares.
inline constexpr const char* kUniformStagesModel = R"(
model: {family: decoder, layers: 16, hidden: 2048, heads: 16, ffn: 8192, vocab: 8, seq_len: 2048,
        activation: gelu, norm: layernorm, position_embedding: rope, tied_embeddings: false,
        bias: true, dropout: false}
training: {precision: bf16, recompute: none, stack: {host_overhead: 0 s}}
)";

// One node of `pp` H100 whose fabric is fast enough that pipeline transfers take no
// measurable time: the YAML text (to append sections to), and the scenario.
inline std::string uniform_pipeline_yaml(int pp, int microbatches, const std::string& schedule,
                                         int vp = 1) {
  return fmt::format(R"(
cluster:
  preset: dgx-h100
  gpus_per_node: {pp}
  intra_node: {{bandwidth: "1000 TB/s", latency: "0 us"}}
parallelism: {{tp: 1, pp: {pp}, dp: 1, microbatch: 1, global_batch: {m}, schedule: {schedule},
              virtual_pipeline_stages: {vp}}})",
                     fmt::arg("pp", pp), fmt::arg("m", microbatches),
                     fmt::arg("schedule", schedule), fmt::arg("vp", vp)) +
         kUniformStagesModel;
}

inline Scenario uniform_pipeline(int pp, int microbatches, const std::string& schedule,
                                 int vp = 1) {
  return load_scenario_text(uniform_pipeline_yaml(pp, microbatches, schedule, vp),
                            "pipeline.yaml");
}

// Four nodes of `tp` H100, a pipeline stage each (1F1B, 8 micro-batches), NVLink at
// `nvlink`, links between nodes with no cost, cluster.slow_nodes `slow_nodes`, and `tail`
// after the training section (faults).
inline Scenario four_stage_pipeline(int tp, const std::string& nvlink,
                                    const std::string& slow_nodes, const std::string& tail) {
  const std::string yaml = fmt::format(R"(
cluster:
  preset: dgx-h100
  nodes: 4
  gpus_per_node: {0}
  intra_node: {{bandwidth: "{1}", latency: "0 us"}}
  inter_node: {{nics_per_node: 1, nic_bandwidth: "1000 TB/s", latency: "0 us"}}
  slow_nodes: {2}
parallelism: {{tp: {0}, pp: 4, dp: 1, microbatch: 1, global_batch: 8, schedule: 1f1b}})",
                                       tp, nvlink, slow_nodes);
  return load_scenario_text(yaml + kUniformStagesModel + tail, "pipeline.yaml");
}

// One GPU a stage over links with no cost.
inline Scenario four_node_pipeline(const std::string& slow_nodes, const std::string& tail = "") {
  return four_stage_pipeline(1, "1000 TB/s", slow_nodes, tail);
}

// Two GPUs a stage at tp 2 over NVLink at 20 GB/s (its tensor-parallel collectives exposed
// inside each layer's tasks); slow nodes at `fraction` and half speed.
inline Scenario tp2_over_slow_nvlink(const std::string& fraction, const std::string& tail = "") {
  return four_stage_pipeline(2, "20 GB/s", "{fraction: " + fraction + ", speed: 0.5}", tail);
}

}  // namespace orrery
