// Transformer workloads: decoder (GPT, Llama, Mixtral, DeepSeek) and encoder (BERT).
//
// Notation (Korthikanti et al. 2022): b micro-batch, s sequence length on this rank
// (seq_len / cp), S full sequence (the keys each query attends to), h hidden, a heads on
// this rank (heads / tp), t tensor-parallel degree. Tensors outside the tensor-parallel
// regions (norms, dropout, residuals) have b*s*h elements per rank, or b*s*h/t with
// sequence parallelism; `r` is that share (1 or 1/t). GEMMs always see all b*s tokens.
//
// For a GPT layer (multi-head attention, GeLU, ffn = 4h, dropout, unfused attention)
// the kept activations sum to Korthikanti et al. 2022 Table 2:
//   no SP:  s*b*h*(10 + 24/t + 5*a*s/(h*t)) bytes      (a = all heads)
//   SP:     s*b*h/t*(34 + 5*a*s/h)
// and selective recompute drops the 5*a*s/h term.
#include <cmath>
#include <optional>
#include <vector>
#include <fmt/format.h>

#include "model/attention_mask.h"
#include "model/moe_routing.h"
#include "model/op_builder.h"
#include "model/workload.h"

namespace orrery {
namespace {

using detail::OpBuilder;

struct Dims {
  double b, s, S, t, r, tok, h;
  int cp = 1;
  bool cp_ring = true;
  // training.stack: how RoPE and the MLP activation run (StackSpec).
  StackSpec::Rope rope = StackSpec::Rope::fused;
  bool rope_on = false;  // the model rotates queries and keys (position_embedding rope)
  bool fused_act = true;
  bool unfused_norm = false;  // training.stack.norm unfused (RMSNorm models only; validated)
  bool separate_proj = false;  // training.stack.projections separate (eager only; validated)
  // Eager PyTorch's unfused attention (a PyTorch-native stack, not compiled): the scores'
  // scaling and the mask as kernels of their own, not inside the softmax.
  bool eager_scores = false;
  // Megatron's masked softmax takes its PyTorch path at this shape (unfused attention,
  // training.stack.masked_softmax; masked_softmax_falls_back, model/attention_mask.h).
  bool softmax_fallback = false;
  // Megatron-Core's all-to-all token dispatcher runs the MoE layers
  // (megatron_alltoall_dispatcher, model/moe_routing.h).
  bool alltoall_dispatcher = false;
};

// One element-wise kernel of an unfused chain: it moves `fwd` bytes in the forward and
// `bwd` in the backward (split into reads `fwd_r`, `bwd_r` and the rest written).
Op kernel(const std::string& name, double fwd_r, double fwd_w, double bwd_r, double bwd_w) {
  Op op;
  op.name = name;
  op.kind = OpKind::elementwise;
  op.fwd_read = Bytes(fwd_r);
  op.fwd_written = Bytes(fwd_w);
  op.bwd_read = Bytes(bwd_r);
  op.bwd_written = Bytes(bwd_w);
  return op;
}

// A dtype-converting kernel of an unfused chain (x.float(), type_as, and the casts their
// gradients run): timed at cluster.gpu.cast_efficiency (PyTorch's TensorIterator runs
// these copies on its dynamic-cast path, without vectorized loads; docs/model.md,
// "Dtype casts in eager PyTorch").
Op cast_kernel(const std::string& name, double fwd_r, double fwd_w, double bwd_r, double bwd_w) {
  Op op = kernel(name, fwd_r, fwd_w, bwd_r, bwd_w);
  op.dtype_cast = true;
  return op;
}

// Rotary embeddings on a tensor of `n` elements (the queries or the keys of this rank),
// as training.stack.rope runs them, `e` bytes an element. Each kernel is its own op,
// timed max(bytes / HBM, kernel_launch); the cos/sin tables (s x head_dim, broadcast over
// the batch and heads) are left out. The backward runs the same passes on the gradients.
//  fused:        one kernel reads the tensor and writes it rotated (Transformer Engine's
//                fused_apply_rotary_pos_emb, Megatron-Core apply_rope_fusion): 2 e n.
//  rotate_half:  x*cos + rotate_half(x)*sin in PyTorch ops: neg of one half (e n/2 read,
//                e n/2 written), cat of the halves (e n, e n), x*cos (e n, e n),
//                rotated*sin (e n, e n), the sum (2 e n, e n): 10 e n in five kernels.
//                Backward: the two products' gradients, the neg's, the halves gathered
//                back (cat) and the two paths summed: the same five passes.
//  complex:      x.float() (e n read, 4 n written), the complex product with the cache
//                (4 n, 4 n), type_as back (4 n, e n): (16 + 2e) n in three kernels;
//                backward the cast, the product with the conjugate and the cast back.
//  rotation_matrix: ibm-fms's RotaryEmbedding.adjusted_qk (fms/modules/positions.py at
//                foundation-model-stack/foundation-model-stack d2e59c2d): x.float() viewed
//                as pairs (e n read, 4 n written); the cached 2x2 rotation of each pair
//                times the pair, a broadcast product of shape [..., d/2, 2, 2] (4 n read,
//                8 n written); its sum over the last axis (8 n, 4 n); type_as back (4 n,
//                e n): (32 + 2e) n in four kernels. Backward, autograd's nodes in reverse:
//                the cast up (e n, 4 n); the sum's backward, an expand (a view, no
//                kernel); the product's gradient at the broadcast shape (4 n, 8 n) and its
//                reduction to the pair's shape (8 n, 4 n); the cast down (4 n, e n): the
//                same (32 + 2e) n. The rotation table gathered by position each call (8/h
//                of n bytes, h the heads) is left out like the others' cos/sin tables.
void add_rope(const std::string& name, double n, double e, StackSpec::Rope how, Layer& L) {
  switch (how) {
    case StackSpec::Rope::fused:
      L.ops.push_back(kernel(name, e * n, e * n, e * n, e * n));
      break;
    case StackSpec::Rope::rotate_half:
      L.ops.push_back(kernel(name + ".neg", e * n / 2, e * n / 2, e * n / 2, e * n / 2));
      L.ops.push_back(kernel(name + ".cat", e * n, e * n, e * n, e * n));
      L.ops.push_back(kernel(name + ".mul_cos", e * n, e * n, e * n, e * n));
      L.ops.push_back(kernel(name + ".mul_sin", e * n, e * n, e * n, e * n));
      L.ops.push_back(kernel(name + ".add", 2 * e * n, e * n, 2 * e * n, e * n));
      break;
    case StackSpec::Rope::complex:
      L.ops.push_back(cast_kernel(name + ".upcast", e * n, 4 * n, 4 * n, e * n));
      L.ops.push_back(kernel(name + ".mul", 4 * n, 4 * n, 4 * n, 4 * n));
      L.ops.push_back(cast_kernel(name + ".downcast", 4 * n, e * n, e * n, 4 * n));
      break;
    case StackSpec::Rope::rotation_matrix:
      L.ops.push_back(cast_kernel(name + ".upcast", e * n, 4 * n, 4 * n, e * n));
      L.ops.push_back(kernel(name + ".mul", 4 * n, 8 * n, 4 * n, 8 * n));
      L.ops.push_back(kernel(name + ".sum", 8 * n, 4 * n, 8 * n, 4 * n));
      L.ops.push_back(cast_kernel(name + ".downcast", 4 * n, e * n, e * n, 4 * n));
      break;
  }
}

// A norm over `n` elements (b*s rows of the normalised width) with `params` weights, as
// training.stack.norm runs it, `e` = B.act bytes an element; `recompute` the
// RecomputeModule bits whose recompute re-runs it (and drops the chain's inner tensors).
//  fused:    one kernel each way (Transformer Engine, Apex, PyTorch's fused F.rms_norm,
//            Inductor): reads the input and writes the output (2 e n), backward reads
//            the gradient and the kept input and writes the input's gradient (3 e n).
//  unfused:  an RMSNorm written in PyTorch ops, as Hugging Face's LlamaRMSNorm and
//            ibm-fms's LayerNormParameterized(use_high_precision_pow) run it (citations in
//            scenario/validate_stack.cpp, complete_stack). One op per autograd node, its
//            backward the kernels of that node's formula (torch/csrc/autograd/
//            FunctionsManual.cpp at pytorch/pytorch 002ca671: pow_backward is
//            grad * (2 * x.pow(1)), mean_backward grad.expand / N, mul_tensor_backward
//            grad * other, a broadcast operand's gradient summed back to its shape):
//    x.float()        e n read, 4 n written;     backward the cast down (4 n, e n)
//    pow(2)           4 n, 4 n;                  x.pow(1), 2 *, grad * (16 n, 12 n)
//    mean(-1)         4 n, -;                    grad expanded / h (-, 4 n)
//    + eps, rsqrt     on the b*s row statistics: bytes left out, one kernel floor each way
//    xf * rstd        4 n, 4 n;                  grad * rstd, grad * xf and its row sum,
//                                                and the two gradients of xf summed (24 n, 12 n)
//    type_as(x)       4 n, e n;                  the cast up (e n, 4 n)
//    weight * y       e n, e n;                  grad * weight, grad * y and its sum over the
//                                                rows (4 e n, 2 e n)
//            (28 + 4e) n forward, (76 + 8e) n backward in 7 ops (36 n and 92 n in 16 bits,
//            against the fused 4 n and 6 n). Kept for backward: xf (4 n, pow's and the
//            product's input) and y (e n, the weight product's), instead of the fused
//            kernel's input (e n). Row statistics (n / h elements) are left out.
void add_norm(const OpBuilder& B, const std::string& name, double n, double params, bool unfused,
              unsigned recompute, Layer& L) {
  if (!unfused) {
    L.ops.push_back(B.memory_bound(name, OpKind::norm, n, n, B.act * n, params));
    L.ops.back().recompute_in = recompute;
    return;
  }
  const double e = B.act;
  const auto push = [&](Op op, double saved) {
    op.saved = Bytes(saved);
    op.saved_dropped_by = recompute;
    op.recompute_in = recompute;
    L.ops.push_back(std::move(op));
  };
  push(cast_kernel(name + ".upcast", e * n, 4 * n, 4 * n, e * n), 0);
  push(kernel(name + ".pow", 4 * n, 4 * n, 16 * n, 12 * n), 4 * n);
  push(kernel(name + ".mean", 4 * n, 0, 0, 4 * n), 0);
  push(kernel(name + ".rstd", 0, 0, 0, 0), 0);
  push(kernel(name + ".mul", 4 * n, 4 * n, 24 * n, 12 * n), 0);
  push(cast_kernel(name + ".downcast", 4 * n, e * n, e * n, 4 * n), 0);
  Op weight = kernel(name + ".weight", e * n, e * n, 4 * e * n, 2 * e * n);
  weight.params = params;
  push(std::move(weight), e * n);
}

// The attention block after its norm: projections, core attention, output projection.
void add_attention(const ModelSpec& m, const TrainingSpec& tr, const OpBuilder& B,
                   const Dims& d, Layer& L) {
  const double e = B.act;
  const double a = m.heads / d.t;
  const double bias = m.bias ? 1.0 : 0.0;
  double q_dim = 0, k_dim = 0, v_dim = 0, qk_head = 0, v_head = 0;
  if (!m.mla) {
    const double hd = static_cast<double>(m.head_dim());
    const double kv = m.kv_heads / d.t;
    const double out = (a + 2 * kv) * hd;
    L.ops.push_back(B.gemm("attn.qkv", d.tok, d.h, out, d.h * out + bias * out,
                           d.tok * d.h * d.r));
    L.ops.back().comm_before = CommPoint::tp_gather;
    L.ops.back().saved_dropped_by = kRecomputeLayernorm;  // the input norm's output
    // Separate query, key and value projections (training.stack.projections): each
    // GEMM's backward writes its own gradient of the shared input (b*s x h on this rank,
    // a partial sum under tensor parallelism), and autograd adds the three as they arrive
    // (InputBuffer::accumulate, torch/csrc/autograd/input_buffer.cpp at pytorch/pytorch
    // 00d40e7f: old_var + var, one out-of-place add): two add kernels,
    // each reading two and writing one, 3e bytes an input element each. Timed as the
    // GEMM's auxiliary kernel after its backward.
    if (d.separate_proj) L.ops.back().aux_bwd_bytes += Bytes(2 * 3 * e * d.tok * d.h);
    q_dim = a * hd;
    k_dim = v_dim = kv * hd;
    qk_head = v_head = hd;
    // model.qk_norm: a norm of model.norm's kind over each query and each key head,
    // after the projection and before RoPE (Qwen3Attention's q_norm and k_norm,
    // models/qwen3/modeling_qwen3.py in huggingface/transformers at 008e5743;
    // Megatron-Core's q_layernorm and k_layernorm, TENorm of hidden_size_per_attention_head
    // on this rank's heads, megatron/core/transformer/attention.py at NVIDIA/Megatron-LM
    // d98e8a64). Each is a norm over b*s rows of this rank's a (or kv) heads x head_dim
    // elements, run as training.stack.norm runs the layer's norms; its head_dim weights
    // (2 x head_dim for a LayerNorm) are whole on every tensor-parallel rank. Neither is in
    // a recompute module of Megatron-Core ("layernorm" is the input and pre-MLP norms).
    if (m.qk_norm) {
      const double w = m.norm == Norm::layernorm ? 2.0 * hd : hd;
      add_norm(B, "attn.q_norm", d.tok * q_dim, w, d.unfused_norm, 0, L);
      add_norm(B, "attn.k_norm", d.tok * k_dim, w, d.unfused_norm, 0, L);
    }
    // RoPE on this rank's queries and keys, one call each (MLA rotates its own
    // rope dimensions inside the projections and is left as it was).
    if (d.rope_on) {
      add_rope("attn.rope_q", d.tok * q_dim, e, d.rope, L);
      add_rope("attn.rope_k", d.tok * k_dim, e, d.rope, L);
    }
  } else {
    const MlaSpec& mla = *m.mla;
    qk_head = mla.qk_nope_head_dim + mla.qk_rope_head_dim;
    v_head = mla.v_head_dim;
    const double ql = mla.q_lora_rank, kvl = mla.kv_lora_rank;
    if (mla.q_lora_rank > 0) {
      // Down-projections are small and replicated on every tensor-parallel rank.
      L.ops.push_back(B.gemm("attn.q_down", d.tok, d.h, ql, d.h * ql, d.tok * d.h * d.r));
      L.ops.back().comm_before = CommPoint::tp_gather;
      // A TELinear with parallel_mode 'duplicated' (multi_latent_attention.py lines
      // 526-527 at NVIDIA/Megatron-LM d98e8a64): no communication of its own.
      L.ops.back().dgrad_reduced_by_gather = true;
      L.ops.back().saved_dropped_by = kRecomputeLayernorm;
      add_norm(B, "attn.q_norm", d.tok * ql, ql, d.unfused_norm, 0, L);
      L.ops.push_back(B.gemm("attn.q_up", d.tok, ql, a * qk_head, ql * a * qk_head, d.tok * ql));
      L.ops.back().recompute_in = kRecomputeMlaUpProj;
    } else {
      L.ops.push_back(B.gemm("attn.q_proj", d.tok, d.h, a * qk_head, d.h * a * qk_head,
                             d.tok * d.h * d.r));
      L.ops.back().comm_before = CommPoint::tp_gather;
      L.ops.back().saved_dropped_by = kRecomputeLayernorm;
    }
    const double kv_down = kvl + mla.qk_rope_head_dim;
    // Same input as the query path, which already keeps it.
    L.ops.push_back(B.gemm("attn.kv_down", d.tok, d.h, kv_down, d.h * kv_down, 0));
    add_norm(B, "attn.kv_norm", d.tok * kvl, kvl, d.unfused_norm, 0, L);
    const double kv_up = a * (mla.qk_nope_head_dim + v_head);
    L.ops.push_back(B.gemm("attn.kv_up", d.tok, kvl, kv_up, kvl * kv_up, d.tok * kvl));
    L.ops.back().recompute_in = kRecomputeMlaUpProj;
    q_dim = k_dim = a * qk_head;
    v_dim = a * v_head;
  }

  // MLA's queries, keys and values are the up-projections' outputs (with RoPE applied),
  // which mla_up_proj discards and rebuilds (multi_latent_attention.py, CheckpointWithoutOutput
  // around qkv_up_proj_and_rope_apply, at NVIDIA/Megatron-LM d98e8a64).
  const unsigned qkv_dropped_by = m.mla ? kRecomputeMlaUpProj : 0u;
  const double o_dim = a * v_head;  // attention output width (all query heads)
  const double scores = 2.0 * d.b * d.s * d.S * a * qk_head;   // Q K^T
  const double context = 2.0 * d.b * d.s * d.S * a * v_head;   // P V
  const double probs = d.b * a * d.s * d.S;                     // elements of P
  if (tr.flash_attention) {
    Op core;
    core.name = "attn.core";
    core.kind = OpKind::attention;
    core.fwd_flops = core.fwd_flops_useful = Flop(scores + context);
    core.bwd_flops = Flop(2.0 * (scores + context));
    core.fwd_read = Bytes(e * d.tok * (q_dim + k_dim + v_dim));
    core.fwd_written = Bytes(e * d.tok * o_dim);
    core.bwd_read = Bytes(e * d.tok * (q_dim + k_dim + v_dim + 2 * o_dim));
    core.bwd_written = Bytes(e * d.tok * (q_dim + k_dim + v_dim));
    // Q, K, V stay; the fp32 log-sum-exp per row goes with selective recompute, which
    // re-runs the fused forward. The output is kept by attn.proj as its input.
    core.saved = Bytes(e * d.tok * (q_dim + k_dim + v_dim));
    core.saved_selective = Bytes(4.0 * d.b * a * d.s);
    core.saved_dropped_by = qkv_dropped_by;
    core.recompute_in = kRecomputeCoreAttn;
    core.comm_before = CommPoint::cp_kv;
    core.kv_elems = d.tok * (k_dim + v_dim);
    // The kernel skips the score tiles the mask hides. The share is that of the whole
    // S x S grid: with context parallelism Transformer Engine gives each rank two chunks
    // of 2*cp (i and 2cp-1-i) so that every rank computes 1/cp of the causal tiles
    // (AttnFuncWithCPAndKVP2P, docs/model.md).
    core.computed_share = mask_tile_fraction(m, flash_tile(qk_head));
    // Ring attention's merges and slice copies (model/attention_mask.h) run as separate
    // element-wise kernels beside the fused ones.
    if (d.cp > 1 && d.cp_ring) {
      const CpMergeBytes merge =
          cp_ring_merge_bytes(d.cp, m.attention_mask != AttentionMask::full, d.tok * q_dim,
                              d.tok * o_dim, core.kv_elems, e);
      core.aux_fwd_bytes = Bytes(merge.fwd);
      core.aux_bwd_bytes = Bytes(merge.bwd);
    }
    L.ops.push_back(core);
  } else {
    Op qk;
    qk.name = "attn.scores";
    qk.kind = OpKind::attention;
    qk.fwd_flops = qk.fwd_flops_useful = Flop(scores);
    qk.bwd_flops = Flop(2.0 * scores);
    qk.fwd_read = Bytes(e * d.tok * (q_dim + k_dim));
    qk.fwd_written = Bytes(e * probs);
    // Two batched GEMMs, each reading the score gradient dS: dQ = dS K and dK = dS^T Q.
    qk.bwd_read = Bytes(e * (2.0 * probs + d.tok * (q_dim + k_dim)));
    qk.bwd_written = Bytes(e * d.tok * (q_dim + k_dim));
    qk.saved = Bytes(e * d.tok * (q_dim + k_dim));
    qk.saved_dropped_by = qkv_dropped_by;
    qk.recompute_in = kRecomputeCoreAttn;
    qk.comm_before = CommPoint::cp_kv;
    qk.kv_elems = d.tok * (k_dim + v_dim);
    qk.score_tensor = true;
    // The batched GEMMs' operand rows are a head's queries or keys (qk_head long) and the
    // scores (S long). Each head's Q, K and V start a multiple of the head dimension into
    // the projection's output (Megatron's [s, b, heads, 3 x head_dim] QKV layout, whose
    // batch stride is 3 x head_dim, or a per-projection [b, s, heads, head_dim] view), so
    // no stride or offset aligns them better than the head dimension does: cuBLAS picks
    // its alignment-1, -2 or -4 kernels for a head dimension of 225, 150 or 108
    // (docs/model.md, "GEMMs with an odd dimension").
    qk.alignment = gemm_alignment({qk_head, d.S});
    // ALiBi, unfused: the scores are torch.baddbmm(alibi, Q, K^T) with beta 1 (or
    // 1/layer, never 0) into the per-head bias ([b*a, 1, S], broadcast over the queries;
    // ParallelAttention.forward in megatron/model/transformer.py, bigscience-workshop/
    // Megatron-DeepSpeed 8387ae17, as Hugging Face's BloomAttention does). PyTorch expands the bias, copies it into the
    // s x S result before the batched GEMM when beta != 0, and cuBLAS then reads that
    // result as C (baddbmm_out_cuda and baddbmm_out_cuda_impl, aten/src/ATen/native/cuda/
    // Blas.cpp at pytorch/pytorch 002253ce): a copy kernel writing the score tensor once
    // (reading the b*a*S bias) and the GEMM reading it once more. Forward only: the bias
    // needs no gradient. Fused attention adds the bias inside the kernel.
    if (m.position_embedding == PositionEmbedding::alibi) {
      qk.fwd_read += Bytes(e * probs);
      qk.aux_fwd_bytes += Bytes(e * probs + e * d.b * a * d.S);
    }
    L.ops.push_back(qk);
    // Eager PyTorch scales the scores and applies the mask as kernels of their own, where
    // Megatron's FusedScaleMaskSoftmax does both inside the softmax: Hugging Face's
    // BertSelfAttention divides by sqrt(head_dim) and adds the extended attention mask
    // (modeling_bert.py at huggingface/transformers v4.21.0), GPT2Attention divides and
    // applies its causal mask with torch.where. Forward, two passes over the score tensor
    // (each reading and writing it); backward, the division's (the mask's add passes its
    // gradient through). Neither keeps anything. One op, 4e and 2e bytes a score, streamed
    // as the other score-tensor kernels (counted as one kernel each way for host time).
    if (d.eager_scores) {
      Op sc = kernel("attn.scale_mask", 2 * e * probs, 2 * e * probs, e * probs, e * probs);
      sc.recompute_in = kRecomputeCoreAttn;
      sc.score_tensor = true;
      L.ops.push_back(sc);
    }

    // The s^2 tensors are kept only without selective recompute; their backward reads
    // them either way (recomputed or kept).
    if (d.softmax_fallback) {
      // Megatron's FusedScaleMaskSoftmax.forward_torch_softmax (training.stack.
      // masked_softmax; megatron/model/fused_softmax.py at bigscience-workshop/
      // Megatron-DeepSpeed ae6277f5), with the fp32 softmax that apply_query_key_layer_
      // scaling (on by default, --no-query-key-layer-scaling clears it) forces and its
      // scale, the layer number: input.float(), input * scale, the mask's masked_fill_
      // (in place, -10000), Softmax(dim=-1) in fp32, .half() / .bfloat16(), five kernels
      // each way where the fused kernel reads and writes the 16-bit scores once (backward
      // reads the gradient and the kept output, writes one). Per score, forward: e in, 4
      // out; 4, 4; 4 and the mask, 4; 4, 4; 4, e: (32 + 2e) bytes. Backward, autograd's
      // nodes in reverse: the cast's gradient up (e, 4); the softmax's (the gradient and the
      // kept fp32 output, 8; 4); masked_fill's, the gradient with the masked scores zeroed
      // (4 and the mask; 4); the scale's (4; 4); the cast's down (4; e): (36 + 2e). The
      // softmax keeps its fp32 output (4 bytes a score, not e). The mask, one byte a
      // (query, key) pair, is read once a pass: one [1, 1, s, S] for the batch under the
      // causal mask (att_mask_batch = 1 in get_ltor_masks_and_position_ids, megatron/utils.py
      // at bigscience-workshop/Megatron-DeepSpeed ae6277f5), one a sequence, [b, 1, s, S],
      // for packed documents (--reset-attention-mask) and padding masks. masked_fill_ writes
      // the scaled scores in place: no new block (Op::in_place). Every kernel streams the
      // score tensor, at the score-tensor rate.
      const double mask =
          (m.attention_mask == AttentionMask::causal ? 1.0 : d.b) * d.s * d.S;
      const auto score_op = [&](Op op) {
        op.recompute_in = kRecomputeCoreAttn;
        op.score_tensor = true;
        L.ops.push_back(std::move(op));
      };
      score_op(kernel("attn.softmax.upcast", e * probs, 4 * probs, 4 * probs, e * probs));
      score_op(kernel("attn.softmax.scale", 4 * probs, 4 * probs, 4 * probs, 4 * probs));
      Op masked = kernel("attn.softmax.mask", 4 * probs + mask, 4 * probs, 4 * probs + mask,
                         4 * probs);
      masked.in_place = true;
      score_op(masked);
      Op sm = kernel("attn.softmax", 4 * probs, 4 * probs, 8 * probs, 4 * probs);
      sm.kind = OpKind::softmax;
      sm.saved_selective = Bytes(4 * probs);
      score_op(sm);
      score_op(kernel("attn.softmax.downcast", 4 * probs, e * probs, e * probs, 4 * probs));
    } else {
      Op sm = B.memory_bound("attn.softmax", OpKind::softmax, probs, probs, e * probs);
      sm.saved_selective = sm.saved;
      sm.saved = Bytes(0);
      sm.recompute_in = kRecomputeCoreAttn;
      sm.score_tensor = true;
      L.ops.push_back(sm);
    }
    if (m.dropout) {
      Op dr = B.memory_bound("attn.dropout", OpKind::dropout, probs, probs, 1.0 * probs);
      dr.fwd_written += Bytes(1.0 * probs);  // the mask
      dr.saved_selective = dr.saved;
      dr.saved = Bytes(0);
      dr.recompute_in = kRecomputeCoreAttn;
      dr.score_tensor = true;
      L.ops.push_back(dr);
    }

    Op pv;
    pv.name = "attn.context";
    pv.kind = OpKind::attention;
    pv.fwd_flops = pv.fwd_flops_useful = Flop(context);
    pv.bwd_flops = Flop(2.0 * context);
    pv.fwd_read = Bytes(e * (probs + d.tok * v_dim));
    pv.fwd_written = Bytes(e * d.tok * o_dim);
    // Two batched GEMMs, each reading the output gradient dO: dP = dO V^T and dV = P^T dO.
    pv.bwd_read = Bytes(e * (probs + d.tok * (v_dim + 2.0 * o_dim)));
    pv.bwd_written = Bytes(e * (probs + d.tok * v_dim));
    pv.saved = Bytes(e * d.tok * v_dim);
    // Without dropout, P V's backward uses the softmax output, already kept above; on
    // Megatron's PyTorch path that is the fp32 softmax, and P V keeps the 16-bit cast of it
    // besides.
    pv.saved_selective = Bytes(m.dropout || d.softmax_fallback ? e * probs : 0.0);
    pv.saved_dropped_by = qkv_dropped_by;
    pv.recompute_in = kRecomputeCoreAttn;
    pv.score_tensor = true;
    pv.alignment = gemm_alignment({d.S, v_head});  // rows of P (S) and of V and O (v_head)
    L.ops.push_back(pv);
  }
  // Row-parallel output projection; its bias is replicated on every rank.
  L.ops.push_back(B.gemm("attn.proj", d.tok, o_dim, d.h, o_dim * d.h + bias * d.h, d.tok * o_dim));
  L.ops.back().comm_after = CommPoint::tp_reduce;
}

// Dense feed-forward of width `ffn` (the whole layer's, split over t here).
void add_dense_mlp(const ModelSpec& m, const OpBuilder& B, const Dims& d, double ffn,
                   const std::string& prefix, double tokens, double saved_input_elems,
                   bool expert_params, double copies, Layer& L) {
  const double f = ffn / d.t;
  const double up = m.activation == Activation::swiglu ? 2 * f : f;
  const double bias = m.bias ? 1.0 : 0.0;
  Op fc1 = B.gemm(prefix + ".fc1", tokens, d.h, up, copies * (d.h * up + bias * up),
                  saved_input_elems);
  // GeLU keeps its input (f wide); SwiGLU keeps gate and up projections (2f wide).
  Op act = B.memory_bound(prefix + ".act", OpKind::elementwise, tokens * up, tokens * f,
                          B.act * tokens * up);
  // Unfused (training.stack.activation_fusion false), as eager PyTorch runs it, each
  // kernel its own op before `act`, which stays the last (the one writing fc2's input):
  //  - a bias: its own add over the up-projection (read and write e*T*up); backward the
  //    bias gradient, a reduction reading the output gradient (e*T*up);
  //  - SwiGLU: silu(gate) reads f and writes f, keeping the gate (e*T*f); the product
  //    silu(gate) * up reads 2f and writes f, keeping both factors (e*T*2f: one f more
  //    than the fused kernel keeps). Backward: silu's gradient reads the output
  //    gradient and the gate and writes f; the product's two gradients (grad*up,
  //    grad*silu) read 2f and write f each.
  //  GeLU without a bias is one kernel either way.
  std::vector<Op> pre_act;
  if (!d.fused_act) {
    const double e = B.act, T = tokens;
    if (m.bias)
      pre_act.push_back(kernel(prefix + ".act_bias", e * T * up, e * T * up, e * T * up, 0));
    if (m.activation == Activation::swiglu) {
      Op silu = B.memory_bound(prefix + ".act_silu", OpKind::elementwise, T * f, T * f, e * T * f);
      pre_act.push_back(silu);
      act.fwd_read = Bytes(e * T * 2 * f);
      act.fwd_written = Bytes(e * T * f);
      act.bwd_read = Bytes(e * T * 4 * f);
      act.bwd_written = Bytes(e * T * 2 * f);
    }
  }
  // A SwiGLU's gate and up projections as separate GEMMs (training.stack.projections;
  // the dense MLP, not the experts or shared experts): autograd adds their two input gradients, one add
  // kernel of 3e bytes an input element, timed as fc1's auxiliary kernel (as for QKV).
  if (d.separate_proj && m.activation == Activation::swiglu && prefix == "mlp")
    fc1.aux_bwd_bytes += Bytes(3 * B.act * tokens * d.h);
  Op fc2 = B.gemm(prefix + ".fc2", tokens, f, d.h, copies * (f * d.h + bias * d.h), tokens * f);
  fc1.expert = fc2.expert = expert_params;
  // The checkpointed module this MLP is (recompute_modules): its input stays (fc1's, or
  // the router's for the shared experts), the activation's and fc2's inputs go.
  unsigned module = kRecomputeMlp;
  if (expert_params) {
    fc1.comm_before = CommPoint::ep_dispatch;
    fc2.comm_after = CommPoint::ep_combine;
    module = kRecomputeMoe;
    fc1.saved_dropped_by = kRecomputeMoe;
    // moe_act discards the experts' activation output, fc2's input (experts.py at
    // d98e8a64: CheckpointWithoutOutput around bias_act_func).
    act.recompute_in = kRecomputeMoeAct;
    fc2.saved_dropped_by = kRecomputeMoeAct;
  } else if (prefix == "mlp") {
    fc1.comm_before = CommPoint::tp_gather;
    fc2.comm_after = CommPoint::tp_reduce;
    fc1.saved_dropped_by = kRecomputeLayernorm;  // the pre-MLP norm's output
  } else {
    module = kRecomputeMoe | kRecomputeSharedExperts;
  }
  for (Op* op : {&fc1, &act, &fc2}) op->recompute_in |= module;
  act.saved_dropped_by |= module;
  fc2.saved_dropped_by |= module;
  for (Op& op : pre_act) {
    op.recompute_in = act.recompute_in;
    op.saved_dropped_by = act.saved_dropped_by;
  }
  L.ops.push_back(fc1);
  for (const Op& op : pre_act) L.ops.push_back(op);
  L.ops.push_back(act);
  L.ops.push_back(fc2);
}

void add_moe(const ModelSpec& m, const OpBuilder& B, const Dims& d, const Shard& sh, Layer& L) {
  const MoeSpec& moe = *m.moe;
  const double E = moe.experts, k = moe.top_k, e = B.act;
  const double routed_tokens = d.tok * d.r;  // the router sees this rank's sequence share
  // Expert tensor parallelism 1 under tp > 1 (parallelism.expert_tp): the experts are
  // whole on each rank, and each rank dispatches its own sequence-parallel share of the
  // tokens over the expert-parallel group, which spans tensor-parallel ranks; nothing is
  // gathered over the tensor-parallel group (Megatron-Core's MoEAlltoAllTokenDispatcher
  // gathers over the experts' own tensor-parallel group, of size 1 here,
  // megatron/core/transformer/moe/token_dispatcher.py at NVIDIA/Megatron-LM d98e8a64).
  // With expert_tp = tp the layer's tokens are gathered over tp first and each rank runs
  // 1/tp of every local expert.
  const bool split_tokens = sh.etp > 0 && sh.etp < sh.tp;
  const double expert_tokens = split_tokens ? d.tok * d.r : d.tok;
  Op router = B.gemm("moe.router", routed_tokens, d.h, E, d.h * E, routed_tokens * d.h);
  router.kind = OpKind::router;
  router.saved_dropped_by = kRecomputeLayernorm;  // its input: the pre-MLP norm's output
  router.recompute_in = kRecomputeMoe;
  router.comm_before = split_tokens ? CommPoint::none : CommPoint::tp_gather;
  L.ops.push_back(router);

  // Scoring and top-k as Megatron-Core's TopKRouter runs them unfused
  // (megatron/core/transformer/moe/router.py and moe_utils.py
  // topk_routing_with_score_function, group_limited_topk at NVIDIA/Megatron-LM d98e8a64),
  // on T tokens and E experts: the score function (softmax, or sigmoid and its
  // normalisation: one pass either way) reads the logits and writes fp32 scores; with
  // router groups the group scores read them again and the masked copy is written; top-k
  // reads them and writes k fp32 values and int64 indices; the dense fp32 probabilities
  // and the bool routing map the dispatcher takes are written. Backward: the probability
  // gradients and the kept scores read, the logit gradients written.
  {
    const double TE = routed_tokens * E;
    const bool grouped = moe.router_groups > 0;
    Op topk;
    topk.name = "moe.router_topk";
    topk.kind = OpKind::softmax;
    topk.fwd_read = Bytes(e * TE + 4.0 * TE + (grouped ? 8.0 * TE : 0.0));
    topk.fwd_written = Bytes(4.0 * TE + 12.0 * routed_tokens * k + 5.0 * TE +
                             (grouped ? 4.0 * TE + 4.0 * routed_tokens * moe.router_groups : 0.0));
    topk.bwd_read = Bytes(8.0 * TE);
    topk.bwd_written = Bytes(e * TE);
    // The fp32 scores, which the moe module's checkpoint recomputes rather than keeps.
    topk.saved_selective = Bytes(4.0 * TE);
    topk.recompute_in = kRecomputeMoe;
    // Kernels the host issues (Megatron-Core with moe_router_fusion, the Megatron-Bridge
    // recipes' setting; the unfused path issues more): the fused top-k and the tokens per
    // expert (routing_map.sum), moe_utils.py lines 838 and 278 at NVIDIA/Megatron-LM
    // d98e8a64.
    topk.launches = 2;
    L.ops.push_back(topk);
    if (moe.aux_loss) {
      // The auxiliary loss (Megatron-Core's default, moe_utils.py
      // compute_routing_scores_for_aux_loss and switch_load_balancing_loss_func): the scores
      // and a top-k routing map computed again from the logits, then the per-expert sums
      // of probabilities and of assignments. Backward: the loss's gradient on the scores
      // read with them, the logit gradients written.
      Op aux;
      aux.name = "moe.aux_loss";
      aux.kind = OpKind::softmax;
      aux.fwd_read = Bytes(e * TE + 4.0 * TE + 4.0 * TE + 1.0 * TE);
      aux.fwd_written = Bytes(4.0 * TE + 12.0 * routed_tokens * k + 1.0 * TE);
      aux.bwd_read = Bytes(4.0 * TE);
      aux.bwd_written = Bytes(e * TE);
      aux.recompute_in = kRecomputeMoe;
      // Its kernels with moe_router_fusion: the fused scores for the loss (moe_utils.py line
      // 992 at d98e8a64), the fused loss's memset, kernel and conversion
      // (fused_moe_aux_loss.cu lines 108, 110, 115 at NVIDIA/TransformerEngine d0067d0d), and
      // the loss's logging (router.py line 599: a division and an accumulation).
      aux.launches = 6;
      L.ops.push_back(aux);
    }
  }

  // The expert batch of the mean rank (model/moe_routing.h): on average a token reaches
  // top_k experts, so the experts of one rank see T k rows whatever ep is; a capacity
  // factor drops the rows over it or pads every expert to it. The busiest rank's extra
  // rows are the simulator's (StepContext::expert_time_scale).
  const MoeLoad load = moe_load(moe);
  const double rows = expert_tokens * k * load.executed;
  const double useful_rows = expert_tokens * k * (1.0 - load.dropped);
  // Permutation (moe_utils.py permute, unfused): the token rows gathered into expert
  // order, one per assignment (read and write each row); backward scatters the gradients
  // back. Megatron-Core's all-to-all dispatcher permutes before the exchange; with DeepEP
  // (the flex dispatcher) the received tokens are permuted after it: the same rows.
  Op permute = B.memory_bound("moe.permute", OpKind::elementwise, rows * d.h, rows * d.h, 0);
  permute.recompute_in = kRecomputeMoe;
  L.ops.push_back(permute);

  const bool overlap = moe.shared_expert_overlap && moe.shared_experts > 0 && sh.ep > 1;
  auto add_shared = [&] {
    // Shared experts see every token; the input is the norm output kept by the router.
    const size_t at = L.ops.size();
    add_dense_mlp(m, B, d, static_cast<double>(moe.expert_ffn) * moe.shared_experts,
                  "moe.shared", d.tok, 0, false, 1.0, L);
    if (split_tokens) {
      // A dense tensor-parallel MLP of its own (Megatron-Core's SharedExpertMLP, a
      // column- and row-parallel pair over the layer's tensor-parallel group): it gathers
      // the sequence-parallel tokens and reduce-scatters its output itself.
      L.ops[at].comm_before = CommPoint::tp_gather;
      L.ops.back().comm_after = CommPoint::tp_reduce;
      // With --moe-shared-expert-overlap Megatron-Core turns the linears' own tensor-parallel
      // communication off (parallel_mode None, shared_experts.py lines 163-175 at
      // d98e8a64) and gathers and scatters around them in separate functions.
      L.ops[at].dgrad_reduced_by_gather = moe.shared_expert_overlap;
    }
  };
  if (overlap) {
    // Megatron-Core --moe-shared-expert-overlap: the dispatch leaves after the permutation
    // and the shared experts run while it is in flight, on a side stream (moe/
    // shared_experts.py at d98e8a64); backward, while the gradients return
    // (model/layer_pass.cpp).
    L.ops.back().comm_after = CommPoint::ep_dispatch;
    add_shared();
  }
  const size_t first = L.ops.size();
  const int local_experts = static_cast<int>(E / sh.ep);
  // Permutation 2 of Megatron-Core's all-to-all dispatcher (MoEAlltoAllTokenDispatcher,
  // megatron/core/transformer/moe/token_dispatcher.py at NVIDIA/Megatron-LM d98e8a64, the
  // same at 726bc3f9, 2025-09-01): the received rows arrive grouped by source rank, and
  // with more than one local expert dispatch_postprocess regroups them by expert
  // (sort_chunks_by_idxs, Transformer Engine's fused moe_sort_chunks_by_index under
  // moe_permute_fusion; padded to capacity, a view-transpose-contiguous copy), the
  // routing weights with them; combine_preprocess puts the experts' outputs back in rank
  // order. Each is a copy of every received row (read and written); backward copies the
  // gradients back the same way. They work on the received rows, so the busiest rank's
  // load scales them as it does the experts (op.expert; no parameters).
  const bool sort_local = d.alltoall_dispatcher && local_experts > 1;
  if (sort_local) {
    Op sort = B.memory_bound("moe.sort_by_expert", OpKind::elementwise, rows * d.h, rows * d.h, 0);
    // The fp32 routing weight of each row travels with it.
    for (Bytes* b : {&sort.fwd_read, &sort.fwd_written, &sort.bwd_read, &sort.bwd_written})
      *b += Bytes(4.0 * rows);
    sort.expert = true;
    sort.comm_before = CommPoint::ep_dispatch;
    sort.recompute_in = kRecomputeMoe;
    L.ops.push_back(sort);
  }
  const size_t fc1_at = L.ops.size();
  Dims de = d;  // the experts split over their own tensor-parallel degree
  if (sh.etp > 0) de.t = sh.etp;
  add_dense_mlp(m, B, de, static_cast<double>(moe.expert_ffn), "moe.experts", rows, rows * d.h,
                true, E / sh.ep, L);
  for (size_t i = first; i < L.ops.size(); ++i) {
    Op& op = L.ops[i];
    op.fwd_flops_useful = op.fwd_flops * (useful_rows / rows);
    // One GEMM per local expert, each of rows / (E/ep) tokens (a grouped GEMM). A grouped
    // GEMM is not marked odd: no alignment-1 rate of Transformer Engine's grouped path is
    // measured (cluster.gpu.unaligned_gemm_efficiency is cuBLAS's single GEMM).
    if (op.kind == OpKind::gemm) {
      op.gemm_groups = local_experts;
      if (local_experts > 1) op.alignment = 8;
    }
  }
  if (sort_local) {
    L.ops[fc1_at].comm_before = CommPoint::none;
    L.ops.back().comm_after = CommPoint::none;
    Op unsort =
        B.memory_bound("moe.unsort_by_expert", OpKind::elementwise, rows * d.h, rows * d.h, 0);
    unsort.expert = true;
    unsort.comm_after = CommPoint::ep_combine;
    unsort.recompute_in = kRecomputeMoe;
    L.ops.push_back(unsort);
  }
  if (overlap) L.ops[first].comm_before = CommPoint::none;
  if (!overlap && moe.shared_experts > 0) add_shared();
  // Unpermutation (moe_utils.py unpermute): the rows scattered back onto their tokens and
  // summed. Megatron-Core multiplies by the routing weights in the experts' activation
  // (TEGroupedMLP bias_act_func, megatron/core/transformer/moe/experts.py at
  // NVIDIA/Megatron-LM d98e8a64), so the sum keeps nothing for its backward and the
  // activation keeps each row's fp32 weight beside its input.
  L.ops.push_back(B.memory_bound("moe.unpermute", OpKind::elementwise, rows * d.h,
                                 d.tok * d.h * d.r, 0));
  L.ops.back().comm_after = split_tokens ? CommPoint::none : CommPoint::tp_reduce;
  L.ops.back().recompute_in = kRecomputeMoe;
  for (size_t i = first; i < L.ops.size(); ++i) {
    if (L.ops[i].name == "moe.experts.act") L.ops[i].saved += Bytes(4.0 * rows);
  }
}

void add_residual_tail(const ModelSpec& m, const OpBuilder& B, const Dims& d,
                       const std::string& prefix, Layer& L) {
  const double n = d.tok * d.h * d.r;
  if (m.dropout) {
    L.ops.push_back(B.memory_bound(prefix + ".dropout", OpKind::dropout, n, n, 1.0 * n));
  }
  L.ops.push_back(B.memory_bound(prefix + ".residual", OpKind::elementwise, 2 * n, n, 0));
}

double norm_params(const ModelSpec& m) {
  return m.norm == Norm::layernorm ? 2.0 * m.hidden : 1.0 * m.hidden;
}

Layer transformer_layer(const ModelSpec& m, const TrainingSpec& tr, const OpBuilder& B,
                        const Dims& d, const Shard& sh, int index) {
  Layer L;
  L.name = fmt::format("layer.{}", index);
  L.kind = LayerKind::transformer;
  L.moe = m.moe && index >= m.moe->first_dense_layers;
  const double n = d.tok * d.h * d.r;
  L.input = Bytes(B.act * n);
  add_norm(B, "attn.norm", n, norm_params(m), d.unfused_norm, kRecomputeLayernorm, L);
  add_attention(m, tr, B, d, L);
  add_residual_tail(m, B, d, "attn", L);
  add_norm(B, "mlp.norm", n, norm_params(m), d.unfused_norm, kRecomputeLayernorm, L);
  if (L.moe) {
    add_moe(m, B, d, sh, L);
  } else {
    add_dense_mlp(m, B, d, static_cast<double>(m.ffn), "mlp", d.tok, d.tok * d.h * d.r, false,
                  1.0, L);
  }
  add_residual_tail(m, B, d, "mlp", L);
  return L;
}

Layer embedding_layer(const ModelSpec& m, const OpBuilder& B, const Dims& d) {
  Layer L;
  L.name = "embedding";
  L.kind = LayerKind::embedding;
  const double n = d.tok * d.h * d.r;
  const double vocab_share = std::ceil(static_cast<double>(m.vocab) / d.t);
  // Vocabulary-parallel table; the lookup writes b*s*h per rank before the reduction.
  L.ops.push_back(B.memory_bound("embedding.word", OpKind::embedding, 0, n, 0,
                                 vocab_share * d.h));
  L.ops.back().comm_after = CommPoint::tp_reduce;  // vocabulary-parallel lookup
  // The lookup's backward writes a dense gradient of the whole table: PyTorch's CUDA
  // embedding backward starts from at::zeros({num_weights, dim}) in the gradient's dtype
  // and scatters the tokens' rows into it (embedding_backward_cuda_kernel,
  // aten/src/ATen/native/cuda/EmbeddingBackwardKernel.cu at pytorch/pytorch 01b9dc56;
  // Megatron's VocabParallelEmbedding calls F.embedding, megatron/core/tensor_parallel/
  // layers.py at NVIDIA/Megatron-LM d98e8a64): the table's bytes written once more.
  L.ops.back().bwd_written += Bytes(B.act * vocab_share * d.h);
  if (m.position_embedding == PositionEmbedding::learned) {
    L.ops.push_back(B.memory_bound("embedding.position", OpKind::embedding, 0, n, 0,
                                   static_cast<double>(m.seq_len) * d.h));
    L.ops.back().bwd_written += Bytes(B.act * static_cast<double>(m.seq_len) * d.h);
  }
  if (m.family == ModelFamily::encoder) {
    L.ops.push_back(B.memory_bound("embedding.token_type", OpKind::embedding, 0, n, 0, 2 * d.h));
    L.ops.back().bwd_written += Bytes(B.act * 2 * d.h);
    add_norm(B, "embedding.norm", n, norm_params(m), d.unfused_norm, 0, L);
  }
  if (m.dropout) {
    L.ops.push_back(B.memory_bound("embedding.dropout", OpKind::dropout, n, n, 1.0 * n));
  }
  return L;
}

Layer head_layer(const ModelSpec& m, const TrainingSpec& tr, const OpBuilder& B, const Dims& d) {
  Layer L;
  L.name = "head";
  L.kind = LayerKind::head;
  const double n = d.tok * d.h * d.r;
  const double vocab_share = std::ceil(static_cast<double>(m.vocab) / d.t);
  const double output_weights = m.tied_embeddings ? 0.0 : vocab_share * d.h;
  if (m.family == ModelFamily::decoder) {
    add_norm(B, "head.norm", n, norm_params(m), d.unfused_norm, 0, L);
    L.ops.push_back(B.gemm("head.output", d.tok, d.h, vocab_share, output_weights, n));
    L.ops.back().comm_before = CommPoint::tp_gather;
  } else if (m.head == EncoderHead::classifier) {
    // A sequence classifier (Hugging Face BertForSequenceClassification, modeling_bert.py
    // at huggingface/transformers v4.21.0): BertPooler's dense layer and tanh on each
    // sequence's first token, dropout, and a linear layer of `labels` outputs, whole on
    // every rank.
    const double labels = m.labels;
    L.ops.push_back(B.gemm("head.pooler", d.b, d.h, d.h, d.h * d.h + d.h, d.b * d.h));
    L.ops.push_back(B.memory_bound("head.tanh", OpKind::elementwise, d.b * d.h, d.b * d.h,
                                   B.act * d.b * d.h));
    if (m.dropout) {
      L.ops.push_back(
          B.memory_bound("head.dropout", OpKind::dropout, d.b * d.h, d.b * d.h, 1.0 * d.b * d.h));
    }
    L.ops.push_back(B.gemm("head.classifier", d.b, d.h, labels, d.h * labels + labels, d.b * d.h));
  } else {
    // BERT: pooler on the first token of each sequence, masked-LM transform (dense,
    // GeLU, LayerNorm) and the output projection with its own bias. Applied to every
    // position, as the reference implementation does.
    L.ops.push_back(B.gemm("head.pooler", d.b, d.h, d.h, d.h * d.h + d.h, d.b * d.h));
    L.ops.push_back(B.gemm("head.transform", d.tok, d.h, d.h, d.h * d.h + d.h, n));
    L.ops.push_back(B.memory_bound("head.act", OpKind::elementwise, d.tok * d.h, d.tok * d.h,
                                   B.act * d.tok * d.h));
    add_norm(B, "head.norm", d.tok * d.h, norm_params(m), d.unfused_norm, 0, L);
    L.ops.push_back(B.gemm("head.output", d.tok, d.h, vocab_share,
                           output_weights + vocab_share, d.tok * d.h));
  }
  // Cross-entropy over this rank's vocabulary shard, per logit, as Megatron-Core's
  // vocab_parallel_cross_entropy runs it (megatron/core/tensor_parallel/cross_entropy.py
  // and fusions/fused_cross_entropy.py at NVIDIA/Megatron-LM f2e5db40; the unfused passes
  // are those of the Megatron-LM of 2021 and of Megatron-DeepSpeed too). Unfused, the
  // default (--cross-entropy-loss-fusion off): cast to fp32 (read act, write 4 bytes;
  // nothing in fp32 training), max (read 4), subtract the max in place (read 4, write 4),
  // exp in place (read 4, write 4), sum (read 4), divide by the sum in place (read 4,
  // write 4); backward: multiply the kept softmax by the loss gradient in place (read 4,
  // write 4), then the cast's backward (read 4, write act). Fused (training.
  // cross_entropy_fusion), each of its four jit-fused functions one kernel: cast and max
  // (read act, write 4), subtract, exp and sum (read 4, write 4), divide (read 4, write
  // 4); backward (read 4, write act). Either way the fp32 softmax is kept for backward
  // (the 4*s*b*v/t of Korthikanti et al.).
  {
    // A classifier's logits are its labels for each sequence, and its loss is one value a
    // sequence (a vocabulary head's, one a token).
    const double rows = m.vocab_head() ? d.tok : d.b;
    const double logits = m.vocab_head() ? d.tok * vocab_share : d.b * static_cast<double>(m.labels);
    const double cast = B.act < 4.0 ? B.act : 0.0;  // the logits' bytes when cast
    const double fp32_copy = cast > 0 ? 4.0 : 0.0;  // the cast's fp32 output
    Op loss;
    loss.name = "head.loss";
    loss.kind = OpKind::loss;
    const double a = B.act;  // the logits' bytes an element
    if (tr.te_cross_entropy()) {
      // Transformer Engine's parallel_cross_entropy (Megatron-Core's
      // --cross-entropy-fusion-impl te; transformer_engine/pytorch/triton/cross_entropy.py
      // and common/triton/cross_entropy.py at NVIDIA/TransformerEngine v2.16): its
      // online_softmax_kernel reads the logits for each row's max and sum, and its
      // cross_entropy_kernel reads them again and writes the gradient over them in place
      // (read 2a, write a); the logits, now the gradient, are what it saves. Backward,
      // element_mul_kernel scales them by the per-token loss gradient in place (read a,
      // write a; skipped only when that gradient is the scalar 1, and Megatron-Core's loss is
      // per token). 10 bytes a logit in 16 bits. (Since v2.18, 01bbe3eea, the gradient is
      // written to a new fp32 tensor instead; no release of the validated stacks has it.)
      loss.fwd_read = Bytes(logits * 2.0 * a);
      loss.fwd_written = Bytes(logits * a + 4.0 * d.tok);
      loss.bwd_read = Bytes(logits * a + 4.0 * d.tok);
      loss.bwd_written = Bytes(logits * a);
    } else if (tr.cross_entropy_fusion) {
      loss.fwd_read = Bytes(logits * ((cast > 0 ? cast : 4.0) + 4.0 + 4.0));
      loss.fwd_written = Bytes(logits * ((cast > 0 ? 4.0 : 0.0) + 4.0 + 4.0) + 4.0 * rows);
      loss.bwd_read = Bytes(logits * 4.0 + 4.0 * rows);
      loss.bwd_written = Bytes(logits * (cast > 0 ? cast : 4.0));
    } else {
      loss.fwd_read = Bytes(logits * (cast + 4.0 * 5));
      loss.fwd_written = Bytes(logits * (fp32_copy + 4.0 * 3) + 4.0 * rows);
      loss.bwd_read = Bytes(logits * (4.0 + fp32_copy) + 4.0 * rows);
      loss.bwd_written = Bytes(logits * (4.0 + cast));
    }
    // Chunked (training.stack.cross_entropy_chunks k): one chunk's logits and softmax are
    // live at a time, so the kept fp32 softmax (and the loss temporaries that follow it,
    // model/memory.cpp) is a k-th; the kernels move the same bytes in k launches each.
    // Transformer Engine's keeps the logits themselves (as their gradient), a bytes each.
    const double saved_per_logit = tr.te_cross_entropy() ? a : 4.0;
    loss.saved = Bytes(saved_per_logit * logits / tr.stack.cross_entropy_chunks);
    L.ops.push_back(loss);
  }
  return L;
}

}  // namespace

// Megatron-Core's MultiTokenPredictionLayer (megatron/core/transformer/
// multi_token_prediction.py at NVIDIA/Megatron-LM d98e8a64; DeepSeek-V3 report section 2.2),
// each of model.mtp_layers in turn: the next tokens' embedding (the shared word embedding:
// a lookup, no weights of its own) and the hidden state each normalised (enorm, hnorm),
// concatenated and projected 2h -> h (eh_proj, column-parallel, no bias), one transformer
// layer of the decoder's last kind (`block`: its ops, weights and exchanges), a final norm,
// and the output head again (the shared output weights: its GEMM and loss, no weights).
// Appended to the head layer `head`, so they run on the loss stage after the main loss.
// The copy of the word embedding their pipeline rank keeps (mtp_embedding_copy_rank,
// model/pipeline.h) is counted where that rank's layers are placed
// (simulator/pipeline_pass.cpp, model/memory.cpp), not here.
// With `standalone` (Megatron-Core's mtp_standalone, Shard::mtp_standalone) everything up
// to and with each depth's final norm goes to that layer instead, which runs on a stage of
// its own (multi_token_prediction.py lines 1279-1439 at d98e8a64: the MTP stage computes
// no logits), and only the output layers and losses stay on `head` (process_mtp_loss,
// lines 932-1066).
void add_mtp(const ModelSpec& m, const OpBuilder& B, const Dims& d, const Layer& embedding,
             const Layer& block, Layer& head, Layer* standalone) {
  const double n = d.tok * d.h * d.r;
  std::vector<Op> head_ops = head.ops;
  for (int k = 0; k < m.mtp_layers; ++k) {
    const std::string pre = m.mtp_layers > 1 ? fmt::format("mtp{}.", k) : std::string("mtp.");
    Layer L;
    for (const Op& op : embedding.ops) {
      if (op.name != "embedding.word") continue;
      Op lookup = op;
      lookup.name = pre + "embedding";
      lookup.params = 0;
      L.ops.push_back(lookup);
    }
    add_norm(B, pre + "enorm", n, norm_params(m), d.unfused_norm, 0, L);
    add_norm(B, pre + "hnorm", n, norm_params(m), d.unfused_norm, 0, L);
    L.ops.push_back(B.memory_bound(pre + "concat", OpKind::elementwise, 2 * n, 2 * n, 0));
    Op proj = B.gemm(pre + "eh_proj", d.tok, 2 * d.h, d.h / d.t, 2 * d.h * d.h / d.t, 2 * d.tok * d.h);
    proj.comm_before = CommPoint::tp_gather;
    proj.comm_after = CommPoint::tp_reduce;
    L.ops.push_back(proj);
    for (Op op : block.ops) {
      op.name = pre + op.name;
      L.ops.push_back(op);
    }
    Layer output;
    for (Op op : head_ops) {
      op.name = pre + op.name;
      if (op.name == pre + "head.norm") op.name = pre + "final_norm";
      if (op.name != pre + "final_norm") op.params = 0;  // the shared output weights
      (standalone && op.name != pre + "final_norm" ? output : L).ops.push_back(op);
    }
    if (standalone) {
      standalone->ops.insert(standalone->ops.end(), L.ops.begin(), L.ops.end());
      head.ops.insert(head.ops.end(), output.ops.begin(), output.ops.end());
    } else {
      head.ops.insert(head.ops.end(), L.ops.begin(), L.ops.end());
    }
  }
}

Workload build_transformer_workload(const ModelSpec& m, const TrainingSpec& tr, const Shard& sh) {
  const OpBuilder B(tr, sh);
  // training.fp8.bf16_layers: the first and last transformer layers keep their GEMMs in
  // 16 bits (Megatron-Core num_layers_at_start_in_bf16 / num_layers_at_end_in_bf16).
  const OpBuilder B16(tr, sh, true);
  // training.fp4.bf16_layers likewise (NVFP4 paper, arXiv:2509.25149, section 4.1).
  const int bf16_first = tr.fp8 ? tr.fp8->bf16_first : tr.fp4 ? tr.fp4->bf16_first : 0;
  const int bf16_last = tr.fp8 ? tr.fp8->bf16_last : tr.fp4 ? tr.fp4->bf16_last : 0;
  Dims d;
  d.b = sh.microbatch;
  d.S = static_cast<double>(m.seq_len);
  d.s = d.S / sh.cp;
  d.t = sh.tp;
  d.r = sh.sequence_parallel ? 1.0 / sh.tp : 1.0;
  d.tok = d.b * d.s;
  d.h = static_cast<double>(m.hidden);
  d.cp = sh.cp;
  d.cp_ring = sh.cp_ring;
  d.rope = tr.stack.rope;
  d.rope_on = m.position_embedding == PositionEmbedding::rope;
  d.fused_act = tr.stack.activation_fusion;
  d.unfused_norm = tr.stack.norm == StackSpec::NormKernels::unfused;
  d.separate_proj = tr.stack.projections == StackSpec::Projections::separate;
  d.eager_scores = tr.stack.eager_pytorch();
  d.softmax_fallback = masked_softmax_falls_back(m, tr, sh.microbatch, sh.tp, sh.cp);
  d.alltoall_dispatcher = megatron_alltoall_dispatcher(tr.stack.preset, sh.ep_alltoall);

  Workload w;
  w.shard = sh;
  w.layers.reserve(m.layers + 2);
  w.layers.push_back(embedding_layer(m, B, d));
  // Layers of one kind are identical: build a dense and an MoE layer (each in fp8 and in
  // bf16) once and copy.
  std::optional<Layer> protos[2][2];
  for (int i = 0; i < m.layers; ++i) {
    const bool is_moe = m.moe && i >= m.moe->first_dense_layers;
    const bool bf16 = i < bf16_first || i >= m.layers - bf16_last;
    std::optional<Layer>& proto = protos[is_moe][bf16];
    if (!proto) {
      proto = transformer_layer(m, tr, bf16 ? B16 : B, d, sh, i);
      proto->high_precision = bf16;
    }
    w.layers.push_back(*proto);
    w.layers.back().name = fmt::format("layer.{}", i);
  }
  w.layers.push_back(head_layer(m, tr, B, d));
  if (m.mtp_layers > 0) {
    // Multi-token prediction (model.mtp_layers), after the output head on the loss stage,
    // or on a stage of its own before it.
    const Layer block = transformer_layer(m, tr, B, d, sh, m.layers);
    Layer mtp;
    mtp.name = "mtp";
    mtp.kind = LayerKind::mtp;
    mtp.moe = block.moe;
    add_mtp(m, B, d, w.layers.front(), block, w.layers.back(),
            sh.mtp_standalone ? &mtp : nullptr);
    // The layer holding the MTP block's MoE exchanges waits on the host for the expert
    // counts and runs the flex dispatcher's kernels as a decoder MoE layer does
    // (simulator/layer_templates.cpp reads Layer::moe).
    if (sh.mtp_standalone) {
      w.layers.insert(w.layers.end() - 1, std::move(mtp));
    } else {
      w.layers.back().moe = block.moe;
    }
  }
  // fp8 sequence-parallel all-gathers (training.fp8.communication.tp_allgather): TE casts
  // the local 1/t shard of a gathered input and gathers the fp8 copies, so that input's
  // cast streams 1/t of the bytes.
  if (tr.fp8 && tr.fp8->tp_allgather_fp8 && sh.sequence_parallel && sh.tp > 1) {
    for (Layer& l : w.layers) {
      for (Op& op : l.ops) {
        // The router already works on this rank's tokens.
        if (op.comm_before != CommPoint::tp_gather || op.kind != OpKind::gemm ||
            op.fp8_input_cast.value() <= 0)
          continue;
        op.aux_fwd_bytes -= op.fp8_input_cast * (1.0 - 1.0 / sh.tp);
        op.fp8_input_cast = op.fp8_input_cast * (1.0 / sh.tp);
      }
    }
  }
  return w;
}

}  // namespace orrery
