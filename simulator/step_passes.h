// The level-2 step (simulator/step.h) as passes over one task graph, each adding its
// tasks through one CommPlanner and handing the next pass what it needs:
//
//   pipeline_pass   the schedule's forward and backward blocks on every simulated rank,
//                   pipeline transfers between them      -> PipelineTasks
//   fsdp_pass       ZeRO-3 / FSDP parameter gathers and gradient reduce-scatters, per
//                   layer, wired to the layers' compute  -> GradientTasks
//   grad_sync_pass  the data-parallel gradient reduction in buckets (compressed or not)
//                   and each rank's optimizer shard     -> GradientTasks
//   optimizer_pass  the optimizer step, then the distributed optimizer's parameter
//                   all-gather when it is not overlapped
//   fault_changes   the scenario's faults as engine changes (simulator/step_faults.cpp)
//
// Private to the simulator.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "simulator/comm_planner.h"
#include "simulator/layer_templates.h"
#include "simulator/rank_set.h"
#include "simulator/step_context.h"
#include "simulator/task_graph.h"

namespace orrery::detail {

// The layers of each (stage, model chunk), in forward order, as the pipeline layout
// places them (model/pipeline.h): the embedding in its first virtual stage, the head in
// its last.
class StageLayers {
 public:
  explicit StageLayers(const StepContext& ctx);
  std::vector<const Layer*> of(int stage, int chunk) const;
  // The layers of block `chunk` on rank `stage`: under DualPipe chunk 0 holds stage
  // `stage`, chunk 1 stage pp - 1 - stage.
  std::vector<const Layer*> of_block(int stage, int chunk) const;
  // Chunks per rank (virtual stages, or DualPipe's 2).
  int chunks() const { return chunks_; }

 private:
  int pp_ = 1, vp_ = 1, chunks_ = 1;
  bool dual_ = false;
  const Layer* embedding_ = nullptr;
  const Layer* head_ = nullptr;
  // (rank, chunk) of the embedding and of the head (model/pipeline.h, PipelineLayout).
  std::pair<int, int> embedding_at_{0, 0}, head_at_{0, 0};
  // The head with its copy of tied word embeddings, when the head's stage is not the
  // embedding's, or with the copy its multi-token-prediction layers keep (the constructor
  // says why); head_ then points here. Shared so that a copy of this object keeps its
  // pointers.
  std::shared_ptr<const Layer> tied_head_;
  // The multi-token-prediction layer on a stage of its own (Shard::mtp_standalone), with
  // its copy of the word embedding as a parameter (the constructor says why); it is the last
  // layer of its (rank, chunk) in layers_.
  std::shared_ptr<const Layer> mtp_;
  std::vector<std::vector<std::vector<const Layer*>>> layers_;  // [stage][chunk]
};

// Whether the step runs DeepSpeed's BF16_Optimizer: the optimizer DeepSpeed builds for bf16
// without a ZeRO stage of its own (its own sharding of the optimizer state, zero_stage 1
// here), and the only bf16 path of its PipelineEngine (pipe/engine.py _exec_reduce_grads
// raises NotImplementedError for bf16 with ZeRO stage 1; microsoft/DeepSpeed 56c522386878,
// the bf16 + pipeline change the BLOOM run's branch became). It accumulates every
// micro-batch's gradients in fp32 (pipeline_pass) and all-reduces them whole in bf16
// (grad_sync_pass). The scenario's predicate is model/memory.h's.
bool deepspeed_bf16_optimizer(const StepContext& ctx);

// Bytes a dense parameter of `layers` takes in the distributed optimizer's parameter
// all-gather: the weight's bytes, 1 for the fp8 GEMMs' weights when
// training.fp8.communication.param_allgather is fp8 (Megatron-Core --fp8-param-gather).
double dense_gather_bytes_per_param(const StepContext& ctx,
                                    const std::vector<const Layer*>& layers);

// Whether the pipeline pass times Megatron-Core's overlapped parameter all-gather
// (--overlap-param-gather with the distributed optimizer, ZeRO-1) in each model chunk's
// first forward: the Megatron engine, layer templates, no DualPipe, more than one shard.
// Otherwise an overlapped gather is assumed hidden (step.cpp says so).
bool param_gather_in_forward(const StepContext& ctx);

// Parameters per gradient bucket of the data-parallel reduction (and of Megatron-Core's
// overlapped parameter gather, which uses the same buckets): training.grad_bucket_params,
// else Megatron's default (megatron_default_bucket_params, simulator/step.h), or under DeepSpeed's
// BF16_Optimizer MEMORY_OPT_ALLREDUCE_SIZE = 500M elements (runtime/engine.py,
// microsoft/DeepSpeed 56c522386878).
double grad_bucket_params(const StepContext& ctx);

// The bucket size of one (pipeline stage, model chunk)'s gradient buffer, as Megatron-Core
// sets it per chunk: grad_bucket_params only with overlap_grad_reduce (resolve_ddp_bucket_size:
// "if overlap_grad_reduce is False: None") and only on the first model chunk of pipeline
// rank 0; every other chunk, and every chunk without overlap, one bucket (+infinity here)
// (megatron/training/training.py lines 2179-2194 and 2504-2515 at NVIDIA/Megatron-LM
// d98e8a64, per_chunk_bucket_sizes; megatron/core/distributed/distributed_data_parallel.py,
// "Turn off bucketing if we are on a pipeline stage that is not the first"; NeMo's
// megatron_parallel.py disable_bucketing the same for chunks after the first). Under the
// Megatron engine with ZeRO-0/1 and no DualPipe; grad_bucket_params elsewhere (DeepSpeed's
// buckets, PyTorch DDP's).
double chunk_bucket_params(const StepContext& ctx, int stage, int chunk);

// The Megatron-engine gradient buffer's bucketing (training.grad_buckets) where it applies
// (ZeRO-0/1 without DualPipe); none under DeepSpeed's and PyTorch's buckets, which
// grad_bucket_params sizes alone.
std::optional<TrainingSpec::GradBuckets> grad_buckets(const StepContext& ctx);
// Apex DistributedFusedAdam without interleaving (NeMo 1.x's megatron_gpt_model.py
// configure_optimizers, "Initialize a bucket for each Transformer layer", at NVIDIA/NeMo
// 8cfedd72): every transformer layer closes a bucket but the stage's first, whose bucket
// also takes the parameters outside the layers that follow it in backward order (the
// embedding), as NeMo puts every parameter outside the layers there. Not modelled: the
// output layer, first in backward, joins the last layer's bucket here (NeMo: the first
// layer's); and, with or without interleaving, the parameters NeMo leaves out of the
// overlapped reduction (_disable_overlap_grad_sync: sequence-parallel norms, the word
// embedding at pp > 1; under fp8 parameters every non-fp8 one), which it reduces with the
// first layer's or chunk's bucket at the end, are reduced in their own layer's or chunk's.
bool bucket_per_layer(const StepContext& ctx);
// --overlap-param-gather-with-optimizer-step where it runs (validated: Megatron-Core's
// buffer, the distributed optimizer with overlapped gathers, interleaving): chunk 0's
// parameters are gathered after its own optimizer step (optimizer_pass), not in its first
// forward (pipeline_pass).
bool gather_with_optimizer_step(const StepContext& ctx);

// What Megatron-Core does on the compute stream each step besides the fused optimizer
// kernel, for its DistributedDataParallel buffers (grad_buckets megatron-core; nothing
// otherwise), `stage_params` the rank's parameters (every chunk, experts included) and
// `local_params` those its optimizer updates:
//  before: the fp32 main gradients (shard_main_param.grad = shard_model_grad.float(), a cast
//          of a 16-bit buffer, _copy_model_grads_to_main_grads in
//          megatron/core/optimizer/distrib_optimizer.py, unless the precision-aware
//          optimizer reads the buffer as is) and the gradient norm clipping reads
//          (get_grad_norm_fp32 over the main gradients, clip_grad 1.0 by default; the
//          scaling when the norm exceeds it is not counted); with loss scaling, the
//          unscale's read and write of the fp32 copy beyond the buffer's width;
//  after:  zero_grad_buffer, every gradient buffer zeroed (grad_data.zero_() in
//          param_and_grad_buffer.py), which Megatron-LM's, NeMo's and Megatron-Bridge's
//          train steps call before the first forward; in the steady state it follows the
//          step's optimizer on the same stream, where it is timed.
// NVIDIA/Megatron-LM d98e8a64 (training.py train_step), NVIDIA/NeMo 8cfedd72
// (megatron_strategy.py), NVIDIA-NeMo/Megatron-Bridge 067f987d (training/train.py).
struct MegatronStepPasses {
  Seconds before, after;
};
MegatronStepPasses megatron_step_passes(const StepContext& ctx, double stage_params,
                                        double local_params);

// One elementwise kernel reading `read` and writing `written` bytes, on the compute model
// (a dtype-converting copy at cluster.gpu.cast_efficiency with `dtype_cast`).
Seconds elementwise_time(const StepContext& ctx, double read, double written,
                         bool dtype_cast = false);

// The dense parameters of each gradient bucket over `layers` (one model chunk's, in backward
// order), in that order, as Megatron-Core forms them: parameters added one at a time in
// reverse registration order, a bucket closed at the first one that brings it to `bucket`
// elements, the rest in a last bucket (param_and_grad_buffer.py at NVIDIA/Megatron-LM
// core_r0.8.0 baf94af3 and d98e8a64). A parameter here is one op's (weight and bias
// together); a layer with expert parameters joins whole (its experts have their own buffer,
// its dense parameters counted here). PyTorch DDP closes its buckets the same way, after the
// tensor that reaches the cap (compute_bucket_assignment_by_size in
// torch/csrc/distributed/c10d/reducer.cpp; its smaller first bucket is not modelled).
// With `per_layer` (bucket_per_layer) each transformer layer but the last in `layers` also
// closes the open bucket.
std::vector<double> dense_bucket_sizes(const std::vector<const Layer*>& layers, double bucket,
                                       bool per_layer = false);

// Whether a stage's data-parallel gradient reduction is launched by Megatron-Core's
// aligned reduction (align_grad_reduce, on by default) instead of leaving bucket by bucket
// during the last backward: in the non-interleaved 1F1B schedule every stage but the
// first (after its last compute), in the interleaved one every stage (each chunk's
// buckets together, `stage` backward blocks after the chunk's last); gradient_passes.cpp
// says where in Megatron-LM.
bool aligned_grad_reduce(const StepContext& ctx, int stage);

// A layer whose gradients are final once `task` ends.
struct GradReady {
  MaybeTask task;  // none only if no task preceded a layer of no ops
  double dense_params, expert_params;
  const Layer* layer;
  int chunk;  // the block's chunk (virtual stage, or DualPipe's copy)
};

// A whole backward block of a rank's schedule (not a W), where its compute ends.
struct BackwardEnd {
  MaybeTask task;
  int chunk;
};

// ZeRO-3 / FSDP: a layer's parameter gather (before its forward, and before its backward
// when parameters were resharded) or its gradient reduce-scatter (after its backward).
struct FsdpNeed {
  bool gather;
  bool backward;     // a gather before the layer's backward
  int compute;       // the layer's compute task
  MaybeTask prereq;  // gather: the task whose end frees a buffer (fsdp_prefetch + 1 in
                     // flight); none for the first layers and for reduce-scatters
  double params;
  double fp8_params;  // of which fp8 GEMM weights gathered in fp8 (training.fp8)
  const Layer* layer = nullptr;  // whose ops are the gather units at module granularity
  // Megatron-FSDP, a reduce-scatter: the first compute task of the rank's next block,
  // which waits for it (the gradient pipeline drained at the end of each backward,
  // docs/simulator.md "ZeRO-3 / FSDP"); none for the other implementations, for
  // gathers and after the rank's last block.
  MaybeTask drain_before;
};

struct PipelineTasks {
  // Per rank, its last task on the compute stream (none if it has no compute task).
  std::vector<MaybeTask> last_compute;
  // Per rank, the gradients as they become final, in order: one list, or under DualPipe
  // one per chunk (each chunk's gradients are summed with the mirror rank's copy).
  std::vector<std::vector<std::vector<GradReady>>> grads;
  // Per rank, in schedule order (ZeRO-3 / FSDP only).
  std::vector<std::vector<FsdpNeed>> fsdp;
  // Per rank, its backward blocks in schedule order (Megatron-Core's aligned gradient
  // reduction counts them: gradient_passes.cpp aligned_grad_reduce).
  std::vector<std::vector<BackwardEnd>> backward_ends;
  // ZeRO-2 only: per rank and gradient list (as `grads`), every block that computes weight
  // gradients (each micro-batch's backward, or its W), in schedule order, with its layers
  // as their gradients become final. Each block's gradients are reduce-scattered on their
  // own (grad_sync_pass).
  std::vector<std::vector<std::vector<std::vector<GradReady>>>> micro_grads;
};

// What the gradient passes leave for the optimizer, per rank.
struct GradientTasks {
  explicit GradientTasks(std::size_t ranks)
      : reductions(ranks),
        local_params(ranks, 0),
        local_tensors(ranks),
        dense_total(ranks, 0),
        decode(ranks),
        tied(ranks) {}
  std::vector<std::vector<int>> reductions;  // the collectives the optimizer waits for
  std::vector<double> local_params;          // parameters the rank's optimizer updates
  // training.stack.optimizer per_parameter only: the sizes of the tensors it updates
  std::vector<std::vector<double>> local_tensors;
  std::vector<double> dense_total;           // dense parameters of its gradient lists
  std::vector<Seconds> decode;               // compression decode kernels before it
  // Per rank, the all-reduce of the tied word embeddings' gradients it takes part in
  // (tied_embedding_pass); its data-parallel reduction waits for it.
  std::vector<MaybeTask> tied;
};

PipelineTasks pipeline_pass(const StepContext& ctx, const RankSet& ranks, const StageLayers& layers,
                            LayerTemplates& templates, CommPlanner& planner, TaskGraph& g);

void fsdp_pass(const StepContext& ctx, const RankSet& ranks, const PipelineTasks& pipe,
               CommPlanner& planner, TaskGraph& g, GradientTasks& out);

// The bytes of one GPU's share of the all-reduce that sums the gradients of tied word
// embeddings between the first and the last pipeline stage (0: none; gradient_passes.cpp
// says when and in which dtype).
double tied_embedding_bytes(const StepContext& ctx);

// That all-reduce: per first-stage GPU, one over it and the last-stage GPU of the same
// tensor, context and data index, after both ranks' last compute; recorded in `out.tied`
// and `out.reductions`. Called twice: before grad_sync_pass (`after_reduction` false), where
// DeepSpeed's PipelineEngine runs it and its data-parallel reduction then waits for it, and
// after (true), where Megatron-LM runs it, waiting for both ranks' reductions.
void tied_embedding_pass(const StepContext& ctx, const RankSet& ranks, const PipelineTasks& pipe,
                         CommPlanner& planner, GradientTasks& out, bool after_reduction);

void grad_sync_pass(const StepContext& ctx, const RankSet& ranks, const StageLayers& layers,
                    const PipelineTasks& pipe, CommPlanner& planner, TaskGraph& g,
                    GradientTasks& out);

// Returns each rank's optimizer task.
// One rank's optimizer step over `params` parameters: on the GPU, or with
// training.optimizer_offload the GPU share beside the offloaded share's transfers and CPU
// step (docs/simulator.md, "Optimizer CPU offload"). `gpu`, when given, receives the part
// that is the GPU's own work (all of it without offload), which a slow GPU stretches; the
// copies and the CPU step keep their time.
Seconds optimizer_step_time(const Scenario& s, const ComputeModel& model, double params,
                            const std::vector<double>& tensors = {}, Seconds* gpu = nullptr);

std::vector<int> optimizer_pass(const StepContext& ctx, const RankSet& ranks,
                                const PipelineTasks& pipe, const GradientTasks& grads,
                                CommPlanner& planner, TaskGraph& g);

// The scenario's faults as engine changes on the simulated ranks (each rank's stage in
// `stage_of_rank`) and topology links. Stages, nodes and GPUs were range-checked with the
// scenario; throws InputError for a leaf the fabric lacks.
std::vector<EngineChange> fault_changes(const StepContext& ctx,
                                        const std::vector<int>& stage_of_rank);

}  // namespace orrery::detail
