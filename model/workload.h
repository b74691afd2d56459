// The workload of one micro-batch on one rank: layers made of ops, each with its
// forward and backward FLOPs, the bytes it reads and writes, the parameters it holds
// and the activation bytes it keeps for the backward pass.
//
// Conventions (the same as Narayanan et al. 2021 and Korthikanti et al. 2022, so the
// totals can be checked against their closed forms):
// - FLOPs count matrix multiplies (and convolutions) only, 2 per multiply-add; the
//   backward pass of a GEMM costs twice its forward (input and weight gradients).
//   Attention scores count the full s x s product, not the causal half, whatever the
//   mask (the convention of Narayanan et al. 2021 eq. 3); a fused kernel's time follows
//   the tiles its mask leaves instead (Op::computed_share).
// - Element-wise ops (norms, activations, dropout, softmax, residual adds) have no FLOPs
//   in these totals; their cost is memory traffic, which `*_read`/`*_written` estimate
//   as one pass over inputs and outputs.
// - Activation bytes are those of Korthikanti et al. 2022 section 4: each op keeps the
//   inputs its backward needs, 16-bit tensors take 2 bytes an element, dropout masks 1.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "core/units.h"
#include "scenario/spec.h"

namespace orrery {

enum class OpKind {
  gemm,         // dense matrix multiply (a linear layer)
  attention,    // batched GEMMs of attention (scores, context) or a fused flash kernel
  norm,         // LayerNorm / RMSNorm
  elementwise,  // activation functions, residual adds, scaling
  softmax,
  dropout,
  embedding,    // table lookup
  loss,         // softmax cross-entropy over the vocabulary
  router,       // MoE gating GEMM and top-k
  conv,
  pool,
};
const char* to_string(OpKind k);

// Where an op exchanges data with other ranks: the boundaries of Megatron-LM's
// tensor-parallel regions (a column-parallel GEMM gathers its input under sequence
// parallelism; a row-parallel GEMM reduces its output) and MoE token routing.
// cp_kv marks core attention, whose keys and values come from every context-parallel
// rank.
enum class CommPoint : std::uint8_t { none, tp_gather, tp_reduce, ep_dispatch, ep_combine, cp_kv };

struct Op {
  std::string name;
  OpKind kind = OpKind::gemm;
  Flop fwd_flops;          // executed forward FLOPs (includes MoE capacity padding)
  Flop bwd_flops;          // executed backward FLOPs
  Flop fwd_flops_useful;   // forward FLOPs excluding padding; the model-FLOPs count
  Bytes fwd_read, fwd_written;
  Bytes bwd_read, bwd_written;
  double params = 0;        // parameters held on this rank
  // gemm: the weight matrix is weight_k x weight_n (input x output features) per copy;
  // params / (k * n) whole copies (MoE experts), the remainder biases.
  double weight_k = 0, weight_n = 0;
  bool expert = false;      // params are MoE expert weights (sharded over ep, not dp)
  // A grouped GEMM (MoE experts): the kernel runs this many GEMMs, one per local expert,
  // each an equal share of the FLOPs, so each sits where its own size puts it on the GEMM
  // efficiency ramp.
  int gemm_groups = 1;
  // A memory-bound op that the framework runs as this many kernels of its own, each way
  // (its bytes are the sum of theirs): what the host issues (the MoE router's fused top-k
  // and auxiliary loss; simulator/layer_templates.cpp, kernels_of).
  int launches = 1;
  // Moved by separate auxiliary kernels: FP8 casts; ring attention's merges and slice copies.
  Bytes aux_fwd_bytes, aux_bwd_bytes;
  // Under precision fp8, a GEMM the recipe keeps in 16 bits (training.fp8.gemms and
  // bf16_layers): timed at the 16-bit rate, no casts, 16-bit saved input.
  bool high_precision = false;
  // training.fp8 only (zero without the section), per GPU:
  double fp8_weight_elems = 0;  // weight elements this fp8 GEMM casts (all its copies)
  Bytes fp8_scaling_state;      // amax histories and scales (persistent)
  Bytes fp8_weight_cache;       // fp8 weight copies (and their scales) kept across micro-batches
  Bytes fp8_input_cast;         // of aux_fwd_bytes, the input's cast (amax pass, scales too)
  // Row-wise scaling (training.fp8.scaling rowwise, rowwise_gw_hp): the forward GEMM's
  // rate as a fraction of the fp8 plateau (PyTorch's row-wise scaled GEMM, fast
  // accumulation), and the weight-gradient GEMM run in 16 bits (rowwise_gw_hp).
  double fwd_rate_factor = 1.0;
  bool wgrad_high_precision = false;
  // MXFP8 (training.fp8.scaling mxfp8): the data- and weight-gradient GEMMs' rate as a
  // fraction of the fp8 plateau (kMxfp8GradRate; fwd_rate_factor takes kMxfp8FpropRate).
  double bwd_rate_factor = 1.0;
  // Activations kept for backward. Under selective recompute with modules M
  // (training.recompute_modules): `saved` goes when M meets saved_dropped_by (a checkpointed
  // module's inner tensors, or the output an output-discarding module rebuilds);
  // `saved_selective` (the op's own inner state: attention's s^2 tensors or log-sum-exp)
  // goes when M meets recompute_in. Full recompute keeps only the layer's input.
  Bytes saved;
  Bytes saved_selective;
  unsigned saved_dropped_by = 0;            // RecomputeModule bits
  unsigned recompute_in = 0;                // RecomputeModule bits whose recompute re-runs this op
  CommPoint comm_before = CommPoint::none;  // exchange before this op's forward
  CommPoint comm_after = CommPoint::none;   // exchange after this op's forward
  // A tp_gather GEMM whose input gather is an autograd function of its own (Megatron-Core's
  // gather before a duplicated linear, or before a linear with its tensor-parallel
  // communication turned off): the input gradient is reduced in that function's backward,
  // after both GEMMs, whatever training.stack.tp_dgrad_overlap says.
  bool dgrad_reduced_by_gather = false;
  double kv_elems = 0;  // cp_kv: key and value elements this rank holds (b*s/cp*2*kv*d/tp)
  // The share of fwd_flops and bwd_flops the kernels execute: a fused attention kernel
  // computes only the score tiles its mask leaves (model/attention_mask.h); the FLOP
  // counts keep the full product, the convention model and hardware FLOPs are reported in.
  double computed_share = 1.0;
  // Unfused attention's ops over the s x S score tensor (scores, softmax, its dropout,
  // context): their bytes stream at cluster.gpu.score_tensor_efficiency.
  bool score_tensor = false;
  // A PyTorch dtype-converting copy (an unfused chain's x.float() or type_as, and their
  // gradients): its bytes stream at cluster.gpu.cast_efficiency.
  bool dtype_cast = false;
  // A GEMM with an odd row length (k or n: GPT-2's 50,257-token vocabulary), whose
  // operands' rows cannot be read in 16-byte vectors: cuBLAS runs its alignment-1 kernels
  // (docs/model.md, "GEMMs with an odd dimension"), timed by unaligned_gemm_time
  // (calibrate/compute_model.h). Never set on a convolution or a grouped expert GEMM.
  // Unfused attention's batched GEMMs (attn.scores, attn.context) are one too where the
  // head dimension or the key length (their operands' row lengths) is odd.
  bool odd_dimension() const { return alignment == 1; }
  // The elements (1, 2, 4 or 8) every operand row of a GEMM starts on, from its row
  // lengths (gemm_alignment): 8 is 16 bytes of a 16-bit operand, the alignment cuBLAS's
  // fastest kernels take; 1 is odd_dimension. 2 and 4 (a head dimension of 150 or 108)
  // run cuBLAS's alignment-2 and -4 kernels, whose rate no measurement gives: timed as
  // aligned, named by `run --explain` and flagged outside the validated region
  // (docs/model.md, "GEMMs with an odd dimension"). 8 on a convolution and a grouped
  // expert GEMM.
  int alignment = 8;
  // The forward writes its input in place (Megatron's masked_fill_ on the scores): its
  // fwd_written bytes are timed, but the caching allocator's sequence
  // (model/memory.cpp, microbatch_sequence) takes no new block for them.
  bool in_place = false;
};

// Whether an op is the decoder op `base` ("attn.core", "moe.permute") or a copy of it in a
// multi-token-prediction layer, whose ops carry the prefix "mtp." or "mtpK."
// (model/transformer.cpp, add_mtp): what is decided by an op's name holds for both.
inline bool is_op(const std::string& name, std::string_view base) {
  if (name == base) return true;
  return name.size() > base.size() && name.ends_with(base) &&
         name[name.size() - base.size() - 1] == '.' && name.starts_with("mtp");
}

// The forward GEMM of the row-wise recipes (fast accumulation, PyTorch's CUTLASS row-wise
// scaled kernel) against cuBLAS's tensor-wise one on H100: "most shapes are within 90-100%
// of tensor-wise efficiency, but there's a long tail going down to 50%" (pytorch/pytorch
// issue 147971, 2025-02-26, all M, N, K powers of two); the middle of the range most shapes
// reach. No Blackwell measurement is known; the same figure is used there.
inline constexpr double kRowwiseGemmRate = 0.95;

// MXFP8 GEMMs against tensor-wise fp8 GEMMs of the same shapes on Blackwell, kernels
// alone (operands quantized before the timed loop): Transformer Engine's GEMM profiling
// guide (docs/examples/gemm_profiling/gemm_profiling.rst at NVIDIA/TransformerEngine
// d0067d0d, "Autocast vs Pre-quantized", B300, a 5B layer: h 4096, ffn 16384, 15,872
// tokens), per-layer ms FP8Current / MXFP8: Fprop 2.158 / 2.365, Dgrad 2.329 / 2.397,
// Wgrad 2.325 / 2.400. Forward 2.158 / 2.365 = 0.912; backward (2.329 + 2.325) /
// (2.397 + 2.400) = 0.970. The tensor cores' rate is the same for both (datasheets);
// what differs is the block-scale operands the kernel loads and applies. Measured on a
// B300; the B200 and GB200 run the same block-scaled MMA (assumed to hold there).
inline constexpr double kMxfp8FpropRate = 0.912;
inline constexpr double kMxfp8GradRate = 0.970;

enum class LayerKind { embedding, transformer, head, cnn, mtp };
const char* to_string(LayerKind k);

struct Layer {
  std::string name;
  LayerKind kind = LayerKind::transformer;
  bool moe = false;
  bool high_precision = false;  // a transformer layer training.fp8.bf16_layers keeps in bf16
  std::vector<Op> ops;
  Bytes input;  // the layer's input: all that full recompute keeps of it

  Flop fwd_flops() const;
  Flop bwd_flops() const;
  Flop fwd_flops_useful() const;
  double params() const;
  double expert_params() const;
  // The sizes of the parameter tensors of this rank's share of the layer, as a model
  // stores them: each whole weight matrix of an op (weight_k x weight_n, one per MoE
  // expert) a tensor, its biases one more; an op without a matrix (a norm's weight, an
  // embedding table) one tensor. Fused matrices count as one (QKV, SwiGLU's gate and up).
  std::vector<double> parameter_tensors() const;
  // Sums over the ops of the fp8 recipe's per-GPU figures (Op).
  double fp8_weight_elems() const;
  Bytes fp8_scaling_state() const;
  Bytes fp8_weight_cache() const;
  // Activation bytes kept for backward under `r` (and, under selective, the recompute
  // modules `modules`). Full recompute keeps only the input of transformer layers;
  // embedding and head layers are never recomputed.
  Bytes saved(Recompute r, unsigned modules = kRecomputeCoreAttn) const;
  // Forward FLOPs executed again during backward under `r`.
  Flop recompute_flops(Recompute r, unsigned modules = kRecomputeCoreAttn) const;
};

// How one rank's share of a micro-batch is cut.
struct Shard {
  int microbatch = 1;     // sequences (or images)
  int tp = 1;
  bool sequence_parallel = false;
  int cp = 1;
  // Context parallelism passes keys and values around a ring (parallelism.cp_comm: ring,
  // Transformer Engine's AttnFuncWithCPAndKVP2P) rather than all-gathering them first.
  bool cp_ring = true;
  int ep = 1;
  // The experts' tensor-parallel degree (parallelism.expert_tp): 0 or tp, or 1, where each
  // rank routes its own sequence-parallel share of the tokens.
  int etp = 0;
  // parallelism.ep_alltoall: hierarchical is Megatron-Core's flex dispatcher (DeepEP,
  // HybridEP), direct and automatic its all-to-all dispatcher (as model/moe_routing.h's
  // moe_host_sync reads it); the latter sorts the received tokens by local expert.
  ParallelismSpec::Alltoall ep_alltoall = ParallelismSpec::Alltoall::automatic;
  int microbatches = 1;   // per optimizer step (the fp8 weight cache casts once per step)
  // The multi-token-prediction layers have a pipeline stage of their own (a pipeline_layout
  // with Megatron-Core's mtp_standalone, model/pipeline.h): their ops form a layer of kind
  // mtp, and only their output layers and losses run on the loss stage.
  bool mtp_standalone = false;
};

// The share of one micro-batch that a GPU of this split works on.
Shard shard_of(const ParallelismSpec& p);

struct Workload {
  Shard shard;
  std::vector<Layer> layers;  // in forward order: embedding, blocks..., head (or CNN rows)

  double params() const;
  Flop fwd_flops() const;
  Flop bwd_flops() const;
  Flop fwd_flops_useful() const;
  Bytes saved(Recompute r, unsigned modules = kRecomputeCoreAttn) const;
  Flop recompute_flops(Recompute r, unsigned modules = kRecomputeCoreAttn) const;
};

// Whether selective recompute under `modules` re-runs `op` in the backward.
inline bool recomputed(const Op& op, unsigned modules) { return (op.recompute_in & modules) != 0; }

// ZeRO-3 / FSDP: whether `l` is in the unit that holds the output layer, the head and, with
// tied embeddings, the embedding (torchtitan's [tok_embeddings, norm, output] unit), whose
// reshard after its forward follows ParallelismSpec::reshard_output_after_forward.
inline bool in_output_unit(const Layer& l, bool tied_embeddings) {
  return l.kind == LayerKind::head || (l.kind == LayerKind::embedding && tied_embeddings);
}

// Bytes of one activation element in the given precision (fp32/tf32: 4, else 2).
double activation_bytes(Precision p);
// Bytes of one stored weight (fp32/tf32: 4; fp16/bf16: 2; fp8 keeps bf16 weights: 2).
double weight_bytes(Precision p);
// Bytes of one fp4 element with its block scale (training.fp4.format; model/workload.cpp).
double fp4_element_bytes(Fp4Spec::Format f);
// Bytes a weight element of an fp8 GEMM takes where the weights are kept in fp8
// (Fp8Spec::fp8_weights): 1 per-tensor, 2 (1 + 1/32) for MXFP8's two scaled copies.
double fp8_kept_weight_bytes(Fp8Spec::Scaling s);

// The alignment, in elements, of rows of these lengths: the largest power of two up to
// 8 that divides every one (a fractional share, which says nothing of the rows, counts as
// aligned).
int gemm_alignment(std::initializer_list<double> row_lengths);

// The elements of a GEMM operand row in 16 bytes, the alignment cuBLAS's fastest kernels
// take, under this precision: 8 of 2-byte operands (16-bit training, and fp8 training,
// whose misaligned GEMMs orrery times at 16-bit rates), 4 of fp32 and tf32's.
inline int aligned_elements(Precision p) { return static_cast<int>(16 / activation_bytes(p)); }

// A GEMM of a workload whose operand rows are aligned to fewer than 8 elements
// (Op::alignment < 8: not 16-byte aligned in 16 bits; compare aligned_elements).
struct MisalignedGemm {
  std::string name;
  int alignment = 8;
};
// Each such op once, by name, in forward order (a layer kind's ops as its first layer has
// them).
std::vector<MisalignedGemm> misaligned_gemms(const Workload& w);

// Builds the per-rank workload of one micro-batch.
Workload build_workload(const ModelSpec& m, const TrainingSpec& t, const Shard& shard);

}  // namespace orrery
