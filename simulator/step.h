// Simulation of one training step: the scenario becomes a task graph, the engine runs
// it, and the timeline is read back as step time and its breakdown.
//
// Two levels (the default, symmetric mode):
//  1. Layer templates. The forward, recomputed-forward and backward pass of each kind of
//     layer (embedding, dense block, MoE block, head) is built op by op on one GPU of a
//     stage: compute kernels on the compute stream, tensor-parallel collectives (all-reduce,
//     or reduce-scatter / all-gather with sequence parallelism) and MoE all-to-alls on
//     their own streams, placed on the topology as flows. The engine runs it once; identical
//     layers and micro-batches reuse the result.
//  2. The pipeline. Each stage is one simulated GPU standing for its tensor-, context- and
//     data-parallel peers. Its compute stream runs forward and backward blocks (a model
//     chunk for one micro-batch) in the order of the schedule (GPipe, 1F1B, interleaved
//     1F1B), so pipeline bubbles come out of the dependencies. Activations and gradients
//     cross stages as send/recv flows; gradients are reduced over data-parallel ranks in
//     buckets as the last micro-batch's backward produces them (Megatron-LM
//     --overlap-grad-reduce) or after the backward; then the optimizer steps, and the
//     distributed optimizer all-gathers parameters (hidden under the next step's forward
//     with --overlap-param-gather).
// Peers that are not simulated still load the links they share with simulated flows
// (simulator/collectives.h `place`).
//
// The step is built by passes over one task graph (simulator/step_passes.h): pipeline,
// FSDP, gradient sync, optimizer, faults; simulator/comm_planner.h plans and counts every
// collective.
// `full` simulates every GPU as its own rank: every pipeline transfer and every
// data-parallel collective is explicit, with no symmetric copies weighted in; layer
// templates (tensor-parallel groups run them in lockstep) are still shared. On symmetric
// clusters the two modes agree (tests/simulator/step_test.cpp).
// `op_level` builds every op of every layer and micro-batch into the pipeline graph
// instead of reusing templates; the two agree as well.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "calibrate/compute_model.h"
#include "core/units.h"
#include "model/analysis.h"
#include "scenario/spec.h"
#include "simulator/engine.h"
#include "simulator/task_graph.h"
#include "simulator/topology.h"

namespace orrery {

struct SimulationOptions {
  bool full = false;      // every GPU simulated, every collective's flows explicit
  bool op_level = false;  // no layer templates: every op in the pipeline graph
};

// cluster.slow_nodes in a step: the probability that at least one of the job's machines is
// a slow one, and the step with none and with one on the critical stage, whose blend by that
// probability is the step time reported.
struct SlowNodesEffect {
  double probability = 0;  // 1 - (1 - fraction)^machines
  int stage = 0;           // the stage the slow machine computes for: the healthy step's busiest
  Seconds without;         // the step with no slow machine
  Seconds with;            // the step with one
};

// Where a stage's time went; the parts add up to the step time.
struct Breakdown {
  Seconds compute;     // forward and backward kernels (selective recompute excluded)
  Seconds recompute;   // recomputed forward passes (full or selective)
  Seconds tp_exposed;  // tensor-parallel collectives the compute waited for
  Seconds ep_exposed;  // MoE all-to-alls the compute waited for
  Seconds cp_exposed;  // context-parallel key/value exchange the compute waited for
  Seconds pp_exposed;  // pipeline transfers the compute waited for
  Seconds dp_exposed;  // gradient reduction and parameter gathers not hidden
  Seconds bubble;      // idle, waiting for other stages
  Seconds optimizer;   // optimizer step
  Seconds offload_exposed;  // waiting for activation offload copies over PCIe
  Seconds total() const {
    return compute + recompute + tp_exposed + ep_exposed + cp_exposed + pp_exposed + dp_exposed +
           bubble + optimizer + offload_exposed;
  }
};

struct StageReport {
  int stage = 0;
  Breakdown breakdown;
  double utilization = 0;  // (compute + recompute + optimizer) / step time
};

struct StepResult {
  Seconds step_time;
  int critical_stage = 0;  // the busiest stage; its breakdown is the headline one
  std::vector<StageReport> stages;
  // Bytes one step moves over each class of link, all GPUs counted: a message crossing
  // the inter-node network counts once for `nic` and, if it leaves its leaf, once for
  // `spine`.
  std::map<LinkClass, double> bytes_by_link_class;
  // Not quantities of core/units.h: a count rate, rates in TFLOP/s as printed, fractions.
  double tokens_per_s = 0;  // tokens (images for CNNs) per second, all GPUs
  double tflops_model_per_gpu = 0;
  double tflops_hardware_per_gpu = 0;
  double mfu = 0;  // model FLOP/s per GPU over the dense 16-bit peak
  double hfu = 0;  // hardware FLOP/s per GPU over the same peak
  FlopRate peak;   // that peak: bf16, else fp16, else the GPU's first datasheet peak
  StepFigures figures;
  std::string compute_model;
  std::size_t tasks = 0;
  std::size_t events = 0;
  // The simulated timeline, for traces, and each simulated rank's stage and GPU.
  TaskGraph graph;
  std::vector<int> stage_of_rank, gpu_of_rank;
  EngineResult timeline;
  std::vector<std::string> notes;  // assumptions taken for this scenario
  // 1-bit compression with warm-up: the step time of the uncompressed warm-up steps.
  std::optional<Seconds> warmup_step_time;
  // Faults: the step never completes (a failed node, or a leaf that lost every uplink);
  // the time the last event happened. Stage breakdowns are then empty.
  std::optional<Seconds> stalled_at;
  // cluster.slow_nodes: the two steps step_time blends; absent with fraction 0, on one
  // machine, or when either step stalls (a note then says so).
  std::optional<SlowNodesEffect> slow_nodes;
  // Faults: the same step without them, for the impact.
  std::optional<Seconds> baseline_step_time;
  std::vector<Breakdown> baseline_stages;
  std::map<int, LinkInfo> links;   // the links the simulated collectives cross, by id

};

// Whether SimulationOptions::op_level can build this scenario's step: not the split
// backwards and fused pairs of zero-bubble and DualPipe schedules, nor ZeRO-3 / FSDP
// units, which are built from layer templates only.
bool op_level_supported(const Scenario& s);

// The figure a published measurement reports, from a simulated step.
double metric_value(const StepResult& r, const Scenario& s, Metric m);

// Whether the head's stage holds a copy of tied word embeddings: pp > 1, not DualPipe, whose
// first and last ranks each hold both the embedding and the head (one parameter; the mirror
// reduction sums the two ranks' gradients). StageLayers adds the copy and
// tied_embedding_allreduce_bytes sums the two copies' gradients under this one condition.
bool tied_embedding_copy(const Scenario& s);

// Megatron's default gradient bucket in parameters: max(40M, 1M x group), the group dp x cp
// under Megatron-LM's own training loop (stack megatron-core with Megatron-Core's buffer,
// resolve_ddp_bucket_size in megatron/training/training.py at NVIDIA/Megatron-LM d98e8a64),
// dp under Megatron-Core DDP's own default (distributed_data_parallel.py), which NeMo and
// Megatron-Bridge reach without a size of their own.
double megatron_default_bucket_params(const Scenario& s);

// Bytes one first- or last-stage GPU all-reduces once a step to sum the gradients of the
// two copies of tied word embeddings (docs/simulator.md, "Tied embeddings across the
// pipeline"); 0 when the step has none.
double tied_embedding_allreduce_bytes(const Scenario& s);

// The pipeline ranks in Megatron's embedding group, whose copies of the word embedding have
// their gradients summed once a step: the first; the last when it holds a tied copy
// (tied_embedding_copy); the rank whose multi-token-prediction layers keep a copy of their
// own (mtp_embedding_copy_rank, model/pipeline.h; pretrain_gpt.py lines 493-505 and
// finalize_model_grads.py lines 233-258 at NVIDIA/Megatron-LM d98e8a64). One rank: no group.
std::vector<int> embedding_group_stages(const Scenario& s);
// Bytes a GPU of that group all-reduces once a step; 0 without a group.
double embedding_group_allreduce_bytes(const Scenario& s);

// Throws InputError when the scenario lacks a measured figure the simulation needs (a
// calibration profile that cannot be read), names a fault the topology cannot hold, or
// asks --full for hybrid sharding.
StepResult simulate_step(const Scenario& s, const Hardware& hardware,
                         const SimulationOptions& options = {});
// The same on the scenario's hardware (resolve_hardware: its calibration profile read).
StepResult simulate_step(const Scenario& s, const SimulationOptions& options = {});

}  // namespace orrery
