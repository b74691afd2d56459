// Memory per GPU for a parallel split: what each pipeline stage's GPUs hold at their
// peak, by category, and whether it fits in HBM.
//
// Model state per parameter (Megatron-LM docs/api-guide/dist_optimizer.md table;
// Rajbhandari et al. 2020, ZeRO, section 3.1):
//   weights   2 bytes (fp16/bf16/fp8 training) or 4 (fp32/tf32)
//   gradients training.gradient_dtype: 4 bytes fp32 main gradients (Megatron's default),
//             2 for fp16/bf16 gradients (DeepSpeed's)
//   optimizer Adam/AdamW/LAMB: fp32 master copy + two moments = 12 bytes (8 when the
//             weights are already fp32); SGD/LARS with momentum: 8 (4). Adam/AdamW
//             may keep the moments in bf16 (2 + 2) or 8 bits (1 + 4/256 each, the
//             block scales) and the master in fp16 (2) or not at all (0)
//             (training.optimizer_state_dtype, .main_params_dtype; docs/model.md)
// so bf16 + Adam = 18 bytes per parameter, and with the distributed optimizer
// (zero_stage 1) 6 + 12/d. ZeRO stage 2 also shards gradients, stage 3 (and FSDP) also
// weights, over the dp*cp ranks; MoE expert weights shard over dp*cp/ep instead.
//
// Activations follow Korthikanti et al. 2022 (see model/workload.h) times the
// micro-batches a stage holds at once: p - i for stage i of 1F1B, all m for GPipe,
// and (p - i - 1)*2 + (v - 1)*p + 1 model chunks for interleaved 1F1B (Megatron-LM's
// warm-up count plus the one in flight), which gives Korthikanti's
// L*(1 + (p-1)/(p*v)) layers on the first stage.
//
// The fp8 recipe (training.fp8, docs/model.md "FP8 recipe") adds to `other` the scaling
// state of every fp8 GEMM the GPU runs and, with the weight cache, their fp8 weight
// copies; with fp8 parameter all-gathers, ZeRO-3 gather buffers hold 1-byte fp8 weights.
#pragma once

#include <algorithm>
#include <string>
#include <vector>

#include "core/units.h"
#include "model/workload.h"
#include "scenario/spec.h"

namespace orrery {

struct MemoryBreakdown {
  Bytes weights;
  Bytes gradients;
  Bytes optimizer;
  Bytes activations;
  Bytes other;
  Bytes total() const { return weights + gradients + optimizer + activations + other; }
};

struct StageMemory {
  int stage = 0;
  int layers = 0;                  // transformer layers (or CNN rows) on this stage
  double params = 0;               // parameters held per GPU before ZeRO sharding
  double expert_params = 0;        // of which MoE expert weights
  double layers_in_flight = 0;     // layers' worth of one micro-batch's activations kept
  Bytes activations_per_layer;     // one micro-batch, one layer, under the recompute mode
  MemoryBreakdown memory;
  // Parts of `other`, for the explanation.
  // Outside the caching allocator: cuda_context + nccl_buffers, or training.runtime_reserve
  // where the file gives it (then the two are 0).
  Bytes runtime_reserve;
  Bytes cuda_context;  // training.memory.cuda_context
  Bytes nccl_buffers;  // every communicator's buffers (nccl_communicators)
  // Inside the allocator (a tensor of it, in the allocated peak): PyTorch's cuBLAS and
  // cuBLASLt workspaces, training.memory.cublas_workspace.
  Bytes cublas_workspace;
  // What the caching allocator reserves beyond what is allocated at the peak
  // (training.memory.allocator: the simulated fragmentation of this rank's allocation
  // sequence, allocator_sequence_waste), plus training.allocator_overhead x activations.
  Bytes allocator_overhead;
  Bytes gather_buffers;            // ZeRO-3/FSDP all-gathered weights of 1 + fsdp_prefetch layers
                                   // (Megatron-FSDP: transformer layers, and the embedding and head),
                                   // and DeepSpeed's reduce bucket
  // FSDP1 / FSDP2: one unit's unsharded gradient and reduce-scatter copies beyond the gather
  // buffers, at its post-backward hook (docs/model.md "Memory per GPU").
  Bytes reduce_buffers;
  // The loss's temporaries beyond the saved fp32 softmax, on the rank holding the head:
  // the 16-bit logits, their fp32 upcast, eager PyTorch's dense fp32 gradients.
  Bytes loss_buffers;
  // DeepSpeed's engine (pipeline_engine: deepspeed): the gradient casts and copies its
  // optimizer makes after the backward's peak (deepspeed_transients in model/memory.cpp).
  // step_buffers is what they hold at once beyond that peak (in the allocated peak);
  // step_segments is what the caching allocator reserves for them beyond that, because no
  // block freed by then is large enough (part of allocator_overhead: reserved only).
  Bytes step_buffers;
  Bytes step_segments;
  // Of those segments, what the device had no room for: a cudaMalloc that fails makes the
  // allocator release its free cached blocks and retry, so the rank fits only through that
  // release (check says so).
  Bytes step_segments_cut;
  Bytes compression_buffers;       // gradient compression's error feedback and factors
  Bytes fp8_scaling_state;         // training.fp8: amax histories and scales of fp8 GEMMs
  Bytes fp8_weight_cache;          // training.fp8: cached fp8 weight copies
  // training.optimizer_offload: host memory this GPU's offloaded optimizer share takes
  // (kOffloadedHostBytes a parameter), and the parameters it steps on the CPU.
  Bytes host;
  double offloaded_params = 0;
  // training.activation_offload: the saved activations of the first layers, in host memory
  // (also in `host`), not in `memory.activations`.
  Bytes offloaded_activations;

  // The three definitions of "memory per GPU" (docs/model.md "Memory"): the allocated peak
  // (torch.cuda.max_memory_allocated: tensors only), the reserved peak (torch.cuda.
  // max_memory_reserved: the allocator's segments, fragmentation included) and the device
  // total nvidia-smi shows (reserved + the runtime reserve: CUDA context, workspaces and
  // communicator buffers outside the allocator). memory.total() is the device total.
  Bytes allocated_peak() const { return memory.total() - runtime_reserve - allocator_overhead; }
  Bytes reserved_peak() const { return memory.total() - runtime_reserve; }
  Bytes device_total() const { return memory.total(); }
};

// Host bytes per offloaded parameter: Megatron-Core's hybrid device optimizer keeps an fp32
// copy of the parameter, torch's CPU AdamW two fp32 moments, and a pinned fp32 copy of the
// gradient (hybrid_optimizer.py at NVIDIA/Megatron-LM d98e8a64): 4 + 8 + 4.
inline constexpr double kOffloadedHostBytes = 16.0;

// NCCL's buffers per connection and channel: one set of each protocol's FIFO, Simple
// NCCL_BUFFSIZE 4 MiB (DEFAULT_BUFFSIZE), LL 8 lines x 512 threads x 8 steps x 16 bytes =
// 512 KiB, LL128 120 elements x 640 threads x 8 steps x 8 bytes = 4,687.5 KiB
// (src/init.cc lines 810-813 and src/include/device.h at NVIDIA/nccl 5067397c; the P2P
// transport splits the set between sender and receiver, src/transport/p2p.cc, so one
// incoming connection costs a GPU one set): 9,633,792 bytes, which NCCL's cuMem allocations
// round up to the 2 MiB granularity: 10 MiB (NVIDIA/nccl issue 1685's ALLOC log: buffers of
// 10485760 bytes, one per channel and peer).
inline constexpr double kNcclConnectionBytes = 10.0 * 1048576.0;

// One NCCL communicator a GPU belongs to and the buffers it holds for it.
struct NcclCommunicator {
  std::string group;  // tp, dp, cp, pp, ep
  int ranks = 0;
  bool spans_nodes = false;
  // Collectives: the ring's incoming connection, plus the tree's parent and child for an
  // all-reduce across nodes (3). Point-to-point: the peers it receives from.
  int connections = 0;
  int channels = 0;  // per connection (point-to-point: channels per peer)
  Bytes bytes;       // connections x channels x kNcclConnectionBytes
};
// The communicators of a rank of pipeline stage `stage` of the scenario's parallel layout
// (model/memory.cpp); -1: an interior stage.
std::vector<NcclCommunicator> nccl_communicators(const Scenario& s, int stage = -1);

struct MemoryReport {
  std::vector<StageMemory> stages;
  int worst_stage = 0;             // the stage with the largest total
  Bytes capacity;                  // HBM of one GPU
  Bytes host_capacity;             // host memory per GPU (the node's / gpus per node); 0: not given
  bool fits = false;               // HBM, and host memory where the optimizer is offloaded
  // training.memory.margin: fits, but the device total is above capacity x (1 - margin).
  double margin = 0;
  bool near_capacity = false;

  const StageMemory& worst() const { return stages.at(worst_stage); }
  // The most DeepSpeed's step segments found no room for on any stage
  // (StageMemory::step_segments_cut): above 0, a run that fits does so only through the
  // caching allocator's release.
  Bytes release_needed() const {
    Bytes most;
    for (const StageMemory& st : stages) most = std::max(most, st.step_segments_cut);
    return most;
  }
};

// Bytes per parameter of each model-state category before sharding; optimizer =
// master + moments.
struct StateBytes {
  double weight, gradient, optimizer;
  double master = 0;   // the separate master copy (0 under fp32/tf32 or main_params_dtype none)
  double moments = 0;  // per-element moments (Adam's m and v with their block scales)
};
// Whether the step runs DeepSpeed's BF16_Optimizer: DeepSpeed's engine (pipeline_engine:
// deepspeed) in bf16 without a ZeRO stage of its own (zero_stage 0-1 here). It keeps every
// gradient twice, the bf16 param.grad and an fp32 accumulation buffer of the whole model
// (docs/model.md, "DeepSpeed's gradient copies").
bool deepspeed_bf16_optimizer(const Scenario& s);

// One Adam moment's bytes per element in `d`, with its share of the block scales.
double moment_bytes(StateDtype d);
StateBytes state_bytes_per_param(const TrainingSpec& t);

// One layer's all-gathered weights in the allocation sequence (ZeRO-3 / FSDP), as the
// simulator takes them (simulator/pipeline_pass.cpp, fsdp_block).
//  - window: the layer's gather, taken before its forward and its backward and freed once
//    1 + prefetch later ones are taken;
//  - backward: `bytes` is a gather this layer holds, taken before its forward and its
//    backward when it is not live and freed after its backward (FSDP2's output unit kept
//    gathered; FSDP1's root flat parameter, a model chunk's embedding and head in one block
//    on the first of them, 0 on the other, whose post-forward frees nothing);
//  - step: a gather held from the first pass that takes it to the step's end
//    (Megatron-FSDP's embedding, head and multi-token-prediction layers, no units with its
//    default ones).
// take_forward / take_backward: the entry whose held gather this layer's forward /
// backward takes first when it is not live (FSDP1's root, which the chunk's first forward
// and, once a backward has freed it, its first backward gather before any unit's).
struct GatherRequest {
  enum class Hold { window, backward, step };
  Bytes bytes;
  Hold hold = Hold::window;
  int take_forward = -1;
  int take_backward = -1;
};

// The caching allocator's waste on the allocation sequence of one micro-batch schedule:
// persistent `states` (one contiguous buffer each, allocated first), then `microbatches`
// forwards through `layers` (each op's kept tensors stay, its output is freed after the
// next op's; under full recompute only each transformer layer's input stays and the rest
// is rebuilt before its backward), one backward freeing the oldest micro-batch and one
// more forward when `more` micro-batches follow, then every backward (each op's input
// gradient freed after the next op's). `gathered`, when given, is each layer's all-gathered
// weights (ZeRO-3 / FSDP, GatherRequest): in the window 1 + prefetch of them live. Returns the peak reserved minus the
// peak requested bytes (model/caching_allocator.h); 0 with allocator none.
Bytes allocator_sequence_waste(MemorySpec::Allocator allocator, const std::vector<Bytes>& states,
                               const std::vector<const Layer*>& layers,
                               const std::vector<GatherRequest>& gathered, int prefetch, int microbatches,
                               bool more, Recompute recompute, unsigned modules);

// The same simulated in one allocator from the states' first request on (no split at the
// states, as allocator_sequence_waste makes with the default allocator): the reference
// the split is tested against. Equal to allocator_sequence_waste for every input.
Bytes allocator_sequence_waste_whole(MemorySpec::Allocator allocator,
                                     const std::vector<Bytes>& states,
                                     const std::vector<const Layer*>& layers,
                                     const std::vector<GatherRequest>& gathered, int prefetch,
                                     int microbatches, bool more, Recompute recompute,
                                     unsigned modules);
// For tests, process-wide: with `on`, estimate_memory simulates each rank's sequence
// whole (allocator_sequence_waste_whole) and remembers nothing, the reference its split,
// remembered simulations are compared with.
void set_allocator_reference(bool on);

// Elements a DeepSpeed ZeRO-2 reduce bucket holds (its reduce_bucket_size):
// training.grad_bucket_params, else DeepSpeed's default 5e8 (zero/config.py at
// microsoft/DeepSpeed 38327e07). The simulator fills its buckets to it and the memory model
// holds one (two under overlap_grad_reduce).
double zero2_deepspeed_bucket(const TrainingSpec& t);

MemoryReport estimate_memory(const Scenario& s);
// The same from the scenario's workload on one rank (build_workload with shard_of), when
// the caller has it.
MemoryReport estimate_memory(const Scenario& s, const Workload& sharded);
// With `verdict_only`, a scenario whose fullest stage is over capacity before the caching
// allocator's waste is counted (the waste is never negative, so it cannot fit) skips the
// allocator simulation: `fits` is as above, but its figures leave the waste out. A sweep's
// decisions need only the verdict of a candidate that does not fit.
MemoryReport estimate_memory(const Scenario& s, const Workload& sharded, bool verdict_only);

}  // namespace orrery
