#include "model/workload.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "core/error.h"
#include "model/op_builder.h"
#include "scenario/pipeline_layout.h"

namespace orrery {

Workload build_transformer_workload(const ModelSpec& m, const TrainingSpec& t, const Shard& s);
Workload build_cnn_workload(const ModelSpec& m, const TrainingSpec& t, const Shard& s);

const char* to_string(OpKind k) {
  switch (k) {
    case OpKind::gemm: return "gemm";
    case OpKind::attention: return "attention";
    case OpKind::norm: return "norm";
    case OpKind::elementwise: return "elementwise";
    case OpKind::softmax: return "softmax";
    case OpKind::dropout: return "dropout";
    case OpKind::embedding: return "embedding";
    case OpKind::loss: return "loss";
    case OpKind::router: return "router";
    case OpKind::conv: return "conv";
    case OpKind::pool: return "pool";
  }
  return "?";
}

const char* to_string(LayerKind k) {
  switch (k) {
    case LayerKind::embedding: return "embedding";
    case LayerKind::transformer: return "transformer";
    case LayerKind::head: return "head";
    case LayerKind::cnn: return "cnn";
    case LayerKind::mtp: return "mtp";
  }
  return "?";
}

double activation_bytes(Precision p) {
  return (p == Precision::fp32 || p == Precision::tf32) ? 4.0 : 2.0;
}

double weight_bytes(Precision p) {
  return (p == Precision::fp32 || p == Precision::tf32) ? 4.0 : 2.0;
}

// Bytes of one fp4 element with its share of the block scale: 0.5 + 1/16 (nvfp4: one E4M3
// byte per 16 elements, TE NVFP4BlockScaling) or 0.5 + 1/32 (mxfp4: one E8M0 byte per 32,
// OCP Microscaling Formats v1.0). nvfp4's 16x16 weight blocks are stored as 1x16 scales
// for the GEMM (TE nvfp4.rst: rowwise scales shape [A, B/16]), so the same per element.
double fp4_element_bytes(Fp4Spec::Format f) {
  return 0.5 + (f == Fp4Spec::Format::nvfp4 ? 1.0 / 16 : 1.0 / 32);
}

// Bytes an fp8 GEMM's weight element takes where the weights are kept in fp8
// (Fp8Spec::fp8_weights): a per-tensor Float8Tensor holds one byte (its transpose, where
// made, is counted with the op's cache); an MXFP8 tensor (TE MXFP8Tensor) holds row-wise
// data for the forward and column-wise data for the data-gradient GEMM, each with one E8M0
// scale per 32 elements (OCP Microscaling Formats v1.0).
double fp8_kept_weight_bytes(Fp8Spec::Scaling s) {
  return s == Fp8Spec::Scaling::mxfp8 ? 2.0 * (1.0 + 1.0 / 32) : 1.0;
}

namespace detail {

OpBuilder::OpBuilder(Precision p)
    : act(activation_bytes(p)),
      weight(weight_bytes(p)),
      // Transformer Engine keeps the FP8 cast of a linear layer's input for its
      // backward GEMM, so those inputs cost 1 byte an element under fp8.
      saved_gemm_input(p == Precision::fp8 ? 1.0 : activation_bytes(p)),
      fp8(p == Precision::fp8),
      fp8_training(p == Precision::fp8) {}

OpBuilder::OpBuilder(const TrainingSpec& t, const Shard& s, bool high_precision)
    : OpBuilder(t.precision) {
  if (t.fp8) {  // a recipe only ever comes with precision fp8 (TrainingSpec::fp8)
    recipe = &*t.fp8;
    microbatches = std::max(1, s.microbatches);
    if (high_precision) fp8 = false;
  }
  fp8_single_copy = t.fp8_single_copy;
  if (t.fp4) {  // a recipe always comes with precision fp4 (TrainingSpec::fp4)
    fp4 = &*t.fp4;
    fp8 = !high_precision;
    fp8_training = true;
    microbatches = std::max(1, s.microbatches);
    // The weight-gradient GEMM's column-wise fp4 copy of the input, with its scales.
    saved_gemm_input = fp4_element_bytes(t.fp4->format);
  }
  if (!fp8) saved_gemm_input = act;
}

// A per-tensor scale serves a tensor read along either axis, so where the GPU's fp8 GEMMs
// take any operand layout Transformer Engine keeps one fp8 copy (Float8Tensor's quantizer:
// "on non-TN-capable archs (Blackwell+) a single _data buffer backs both row- and
// column-wise usage", transformer_engine/pytorch/tensor/float8_tensor.py at
// NVIDIA/TransformerEngine d0067d0d, with utils.py is_non_tn_fp8_gemm_supported: compute
// capability 10.x, 11.x, >= 13). A block scale belongs to one axis: block and MXFP8 casts
// write a row-wise and a column-wise copy, each with its scales, on every GPU.
double OpBuilder::fp8_copies() const {
  const bool per_tensor = !recipe || recipe->per_tensor();
  return fp8_single_copy && per_tensor ? 1.0 : 2.0;
}

namespace {

// The training.fp8.gemms group of a linear layer, by its op name (model/transformer.cpp).
unsigned fp8_group(const std::string& name) {
  static const std::pair<const char*, unsigned> kGroups[] = {
      {"attn.qkv", kFp8Qkv},           {"attn.q_down", kFp8Qkv},
      {"attn.q_up", kFp8Qkv},          {"attn.q_proj", kFp8Qkv},
      {"attn.kv_down", kFp8Qkv},       {"attn.kv_up", kFp8Qkv},
      {"attn.proj", kFp8Proj},         {"mlp.fc1", kFp8Fc1},
      {"moe.shared.fc1", kFp8Fc1},     {"mlp.fc2", kFp8Fc2},
      {"moe.shared.fc2", kFp8Fc2},     {"moe.experts.fc1", kFp8Experts},
      {"moe.experts.fc2", kFp8Experts}, {"moe.router", kFp8Router},
      {"head.output", kFp8Head},       {"head.pooler", kFp8Head},
      {"head.transform", kFp8Head},    {"head.classifier", kFp8Head}};
  for (const auto& [n, g] : kGroups)
    if (name == n) return g;
  return kFp8Other;
}

// Scale bytes per element of a cast tensor, for block scaling (docs/model.md, "FP8
// recipe"): one fp32 scale per 1x128 activation tile and per 128x128 weight block
// (DeepSeek-V3 report, arXiv:2412.19437, section 3.3) or one E8M0 byte per 32 elements
// (OCP Microscaling Formats v1.0; TE MXFP8BlockScaling: block size 32). Per-tensor
// scaling keeps one scale per tensor: none per element.
double activation_scale_bytes(Fp8Spec::Scaling s) {
  switch (s) {
    case Fp8Spec::Scaling::block: return 4.0 / 128;
    case Fp8Spec::Scaling::mxfp8: return 1.0 / 32;
    default: return 0.0;
  }
}
double weight_scale_bytes(Fp8Spec::Scaling s) {
  switch (s) {
    case Fp8Spec::Scaling::block: return 4.0 / (128 * 128);
    case Fp8Spec::Scaling::mxfp8: return 1.0 / 32;
    default: return 0.0;
  }
}

}  // namespace

Op OpBuilder::gemm(const std::string& name, double m, double k, double n, double params,
                   double saved_elems) const {
  Op op;
  op.name = name;
  op.kind = OpKind::gemm;
  op.fwd_flops = Flop(2.0 * m * k * n);
  op.bwd_flops = Flop(4.0 * m * k * n);
  op.fwd_flops_useful = op.fwd_flops;
  op.fwd_read = Bytes(m * k * act + k * n * weight);
  op.fwd_written = Bytes(m * n * act);
  op.bwd_read = Bytes((m * n + m * k) * act + k * n * weight);
  op.bwd_written = Bytes(m * k * act + k * n * weight);
  op.params = params;
  op.weight_k = k;
  op.weight_n = n;
  // k and n only: they are the operands' row lengths (the leading dimensions cuBLAS checks
  // for 16-byte alignment: the input's and weight's k, the output's and its gradient's n,
  // in all three GEMMs); m, the tokens, only counts rows, so an odd token count (an
  // expert's share) leaves every row aligned.
  op.alignment = gemm_alignment({k, n});
  const bool in_fp8 = fp8 && ((recipe ? recipe->gemms : kFp8TeLayers) & fp8_group(name)) != 0;
  op.high_precision = fp8_training && !in_fp8;
  op.saved = Bytes(saved_elems * (in_fp8 ? saved_gemm_input : act));
  if (in_fp8) {
    // Transformer Engine casts a linear layer's input to FP8 and writes its transpose
    // for the weight-gradient GEMM (read 16-bit, write two 1-byte copies; one where the
    // GPU takes any layout, fp8_copies); backward does the same for the output gradient.
    const double c = fp8_copies();
    op.aux_fwd_bytes = Bytes(m * k * (act + c));
    op.aux_bwd_bytes = Bytes(m * n * (act + c));
    if (recipe) add_recipe(op, m, k, n);
    if (fp4) add_fp4_recipe(op, m, k, n);
  }
  return op;
}

// The FP4 recipe's costs on one fp4 GEMM (docs/model.md, "FP4 recipe"). X is m x k, W
// k x n (times `copies` for MoE experts), dY m x n; a the 16-bit activation bytes, w the
// weight bytes, q = 0.5 + s the bytes of an fp4 element with its block scale
// (fp4_element_bytes). Every operand is cast from 16 bits into two fp4 copies, the
// row-wise one and the column-wise (transposed) one, because Blackwell's fp4 GEMM takes
// both operands K-major (TE docs/features/low_precision_training/nvfp4/nvfp4.rst,
// "Handling transposes": NVFP4 GEMM supports the TN layout only).
//   nvfp4: a per-tensor fp32 scale needs the tensor's amax before the cast, so each cast
//          is an amax pass (read a) and the cast (read a, write 2q; the 16x16 Hadamard
//          transform of the column-wise copy and stochastic rounding run inside it):
//          X m k (2a + 2q), dY m n (2a + 2q), W (2w + 2q);
//   mxfp4: the E8M0 scale comes from each block's own amax inside the cast:
//          X m k (a + 2q), dY m n (a + 2q), W (w + 2q);
//   the GEMMs read the scales: forward m k s + W s, backward 2 m n s + m k s + W s;
//   the saved input is the column-wise copy, q bytes an element (saved_gemm_input);
//   the weight is cast once a step and both copies kept (weight cache, 2 W q bytes) unless
//   ZeRO-3/FSDP, then on every micro-batch; nvfp4 keeps an fp32 amax and scale for X, W
//   and dY: 3 x 8 bytes a GEMM copy.
void OpBuilder::add_fp4_recipe(Op& op, double m, double k, double n) const {
  const bool nv = fp4->format == Fp4Spec::Format::nvfp4;
  const double q = fp4_element_bytes(fp4->format), sc = q - 0.5;
  const double passes = nv ? 2.0 : 1.0;  // 16-bit reads of each tensor: amax pass and cast
  const double copies = k * n > 0 ? std::floor(op.params / (k * n) + 1e-9) : 0.0;
  const double w = std::max(1.0, copies) * k * n;  // a tied head casts the embedding
  op.fp8_input_cast = Bytes(m * k * (passes * act + 2.0 * q));
  op.aux_fwd_bytes = op.fp8_input_cast;
  op.aux_bwd_bytes = Bytes(m * n * (passes * act + 2.0 * q));
  op.fwd_read += Bytes(m * k * sc + w * sc);
  op.bwd_read += Bytes(2.0 * m * n * sc + m * k * sc + w * sc);
  const double cast = w * (passes * weight + 2.0 * q);
  op.aux_fwd_bytes += Bytes(fp4->weight_cache ? cast / microbatches : cast);
  op.fp8_weight_elems = copies * k * n;
  if (fp4->weight_cache) op.fp8_weight_cache = Bytes(w * 2.0 * q);
  if (nv) op.fp8_scaling_state = Bytes(std::max(1.0, copies) * 3.0 * 8.0);
}

// The FP8 recipe's costs on one fp8 GEMM (docs/model.md, "FP8 recipe"). X is m x k,
// W k x n (times `copies` for MoE experts), dY m x n; sa, sw the scale bytes per
// activation and weight element.
//   current scaling: an amax pass reads X (forward) and dY (backward) before the cast:
//                    + m k act and + m n act bytes;
//   block scaling:   each cast writes the scales of its two copies (the tensor and its
//                    transpose): + 2 m k sa, + 2 m n sa; the GEMMs read them: forward
//                    m k sa + W sw, backward 2 m n sa + m k sa + W sw; a saved input
//                    keeps its scales: sa a saved element;
//   weight cast:     read the 16-bit weight, write its fp8 copy and the transpose, with
//                    their scales: W (2 + 1 + 1 + 2 sw) bytes, + 2 W for current
//                    scaling's amax pass; once a step (1/microbatches of it on each
//                    micro-batch's forward) with the cache, every micro-batch without;
//   state:           delayed: X, W, dY each keep an fp32 amax history and an fp32 scale
//                    and inverse scale: 3 (4 H + 8) bytes a GEMM copy; current: 3 x 8;
//                    block: the scales travel with their tensors;
//   weight cache:    W (2 + 2 sw) bytes (fp8 copy and transpose, with scales);
//   fp8 weights:     (Fp8Spec::fp8_weights) MXFP8: the weight cast above once a step,
//                    its copies counted as the weights (no cache, no 16-bit weight);
//                    per-tensor: no cast and no cache; where the GPU needs
//                    the transpose (c = 2), it is made from the fp8 data, read 1, write
//                    1, in the forward and again in the backward: 2 W (c - 1) each; under
//                    the distributed optimizer (fp8_transpose_kept) once a step, and the
//                    transpose kept: W (c - 1) bytes.
void OpBuilder::add_recipe(Op& op, double m, double k, double n) const {
  const Fp8Spec& r = *recipe;
  if (r.rowwise()) {
    add_rowwise_recipe(op, m, k, n);
    return;
  }
  const double sa = activation_scale_bytes(r.scaling), sw = weight_scale_bytes(r.scaling);
  const bool current = r.scaling == Fp8Spec::Scaling::current;
  if (r.scaling == Fp8Spec::Scaling::mxfp8) {
    op.fwd_rate_factor = kMxfp8FpropRate;
    op.bwd_rate_factor = kMxfp8GradRate;
  }
  // Whole weight copies: params / (k n), the remainder biases; a tied head still runs one.
  const double copies = k * n > 0 ? std::floor(op.params / (k * n) + 1e-9) : 0.0;
  const double w = copies * k * n;
  const double cast_w = std::max(1.0, copies) * k * n;  // a tied head casts the embedding
  if (current) {
    op.aux_fwd_bytes += Bytes(m * k * act);
    op.aux_bwd_bytes += Bytes(m * n * act);
  }
  op.aux_fwd_bytes += Bytes(2.0 * m * k * sa);
  op.aux_bwd_bytes += Bytes(2.0 * m * n * sa);
  const double c = fp8_copies();  // 1 for a per-tensor scale on a GPU taking any layout
  op.fp8_input_cast = Bytes(m * k * (act + c + (current ? act : 0.0) + 2.0 * sa));
  op.fwd_read += Bytes(m * k * sa + cast_w * sw);
  op.bwd_read += Bytes(2.0 * m * n * sa + m * k * sa + cast_w * sw);
  op.saved += Bytes(op.saved.value() / saved_gemm_input * sa);
  op.fp8_weight_elems = w;
  if (r.fp8_weights && r.per_tensor()) {
    // TE's Float8Tensor weight (tex.fp8_transpose in _create_transpose, called by
    // update_usage from Linear's forward and backward, transformer_engine/pytorch at
    // NVIDIA/TransformerEngine v2.7 fedd9ddc); Megatron-FSDP drops the transpose after
    // each unit's forward unless keep_fp8_transpose_cache.
    const double transpose = cast_w * 2.0 * (c - 1.0);
    if (r.fp8_transpose_kept) {
      // Once a step (1/microbatches of it on each micro-batch's forward), kept in HBM: 1
      // byte an element where the GPU needs it.
      op.aux_fwd_bytes += Bytes(transpose / microbatches);
      op.fp8_weight_cache = Bytes(cast_w * (c - 1.0));
    } else {
      op.aux_fwd_bytes += Bytes(transpose);
      op.aux_bwd_bytes += Bytes(transpose);
    }
  } else {
    const double cast = cast_w * (weight + c + 2.0 * sw + (current ? weight : 0.0));
    const bool cache = r.weight_cache.value_or(true);
    op.aux_fwd_bytes += Bytes(cache ? cast / microbatches : cast);
    // MXFP8 weights kept in fp8 are these copies, requantized once a step from the bf16
    // gather (the same bytes as the cache's cast); memory counts them as the weights
    // (fp8_kept_weight_bytes), not as a cache beside 16-bit ones. A tied head's copies of
    // the embedding (cast_w beyond its own w = 0) stay a cache: the embedding is no fp8
    // tensor.
    if (cache) op.fp8_weight_cache = Bytes((r.fp8_weights ? cast_w - w : cast_w) * (c + 2.0 * sw));
  }
  const double gemms = std::max(1.0, copies);
  if (r.scaling == Fp8Spec::Scaling::delayed) {
    op.fp8_scaling_state = Bytes(gemms * 3.0 * (4.0 * r.amax_history + 8.0));
  } else if (current) {
    op.fp8_scaling_state = Bytes(gemms * 3.0 * 8.0);
  }
}

// torchao's row-wise recipes on one fp8 GEMM (docs/model.md, "Row-wise scaling"). The
// cast kernels and their bytes are torchao's own roofline of them
// (torchao/testing/training/roofline_utils.py, get_tensor_memory_traffic_ovhd_s, without
// fusion into the previous op; pytorch/ao 36027d82): a row-wise scale needs the whole row,
// so the amax is taken inside the cast kernel, but a tensor cast along its other axis
// needs a transposed 16-bit copy first (for X written by the forward cast, in place of X
// among the saved tensors: the same a bytes an element). X is m x k, W k x n (all
// copies), dY m x n, a the 16-bit activation bytes, fp32 scales (one per row) not counted.
//   rowwise, forward:  X: read a, write the e4m3 rows 1 and the transposed 16-bit copy a;
//                      W: read a, write 1                   m k (2a + 1) + W (a + 1)
//            backward: X's transposed copy cast: m k (a + 1); dY: as X forward then its
//                      transposed copy cast: m n (3a + 2); W: transposed 16-bit copy
//                      (read a, write a) then cast: W (3a + 1); the data- and
//                      weight-gradient GEMMs run without fast accumulation, which torchao
//                      runs as cuBLAS's tensor-wise GEMM followed by a separate rescale
//                      of the 16-bit output (float8_ops.py addmm_float8_unwrapped; one
//                      extra kernel per GEMM, pytorch/ao issue 2184): + 2a (m k + W).
//   rowwise_gw_hp, forward: X and W cast once: m k (a + 1) + W (a + 1);
//            backward: dY cast once, m n (a + 1); W cast tensor-wise for the data
//                      gradient, W (a + 1) (its amax from the row scales already taken);
//                      the weight gradient in 16 bits from the 16-bit X and dY.
// torchao saves the 16-bit input and weight for backward (float8_linear.py,
// matmul_with_hp_or_float8_args), so the saved input is a bytes an element, and nothing
// persists between steps: no weight cache, no scaling state.
void OpBuilder::add_rowwise_recipe(Op& op, double m, double k, double n) const {
  const bool gw_hp = recipe->scaling == Fp8Spec::Scaling::rowwise_gw_hp;
  const double copies = k * n > 0 ? std::floor(op.params / (k * n) + 1e-9) : 0.0;
  const double w = std::max(1.0, copies) * k * n;  // a tied head casts the embedding
  if (gw_hp) {
    op.aux_fwd_bytes = Bytes(m * k * (act + 1.0) + w * (act + 1.0));
    op.aux_bwd_bytes = Bytes(m * n * (act + 1.0) + w * (act + 1.0));
    op.fp8_input_cast = Bytes(m * k * (act + 1.0));
    op.wgrad_high_precision = true;
  } else {
    op.aux_fwd_bytes = Bytes(m * k * (2.0 * act + 1.0) + w * (act + 1.0));
    op.aux_bwd_bytes = Bytes(m * k * (act + 1.0) + m * n * (3.0 * act + 2.0) +
                             w * (3.0 * act + 1.0) + 2.0 * act * (m * k + w));
    op.fp8_input_cast = Bytes(m * k * (2.0 * act + 1.0));
  }
  op.saved = Bytes(op.saved.value() / saved_gemm_input * act);
  op.fp8_weight_elems = copies * k * n;
  op.fwd_rate_factor = kRowwiseGemmRate;
}

Op OpBuilder::memory_bound(const std::string& name, OpKind kind, double in_elems,
                           double out_elems, double saved, double params) const {
  Op op;
  op.name = name;
  op.kind = kind;
  op.fwd_read = Bytes(in_elems * act);
  op.fwd_written = Bytes(out_elems * act);
  op.bwd_read = Bytes(out_elems * act + saved);
  op.bwd_written = Bytes(in_elems * act);
  op.params = params;
  op.saved = Bytes(saved);
  return op;
}

}  // namespace detail

int gemm_alignment(std::initializer_list<double> row_lengths) {
  int a = 8;
  for (double x : row_lengths) {
    // Whole lengths only (a fractional share says nothing of the rows).
    if (x != std::floor(x) || x <= 0) continue;
    while (a > 1 && std::fmod(x, static_cast<double>(a)) != 0.0) a /= 2;
  }
  return a;
}

std::vector<MisalignedGemm> misaligned_gemms(const Workload& w) {
  std::vector<MisalignedGemm> out;
  for (const Layer& l : w.layers)
    for (const Op& op : l.ops)
      if (op.alignment < 8 &&
          std::none_of(out.begin(), out.end(),
                       [&](const MisalignedGemm& g) { return g.name == op.name; }))
        out.push_back({op.name, op.alignment});
  return out;
}

namespace {

// The sum of one field over a layer's ops.
template <class T>
T sum_of(const std::vector<Op>& ops, T Op::*field) {
  T total{};
  for (const Op& op : ops) total += op.*field;
  return total;
}

}  // namespace

Flop Layer::fwd_flops() const { return sum_of(ops, &Op::fwd_flops); }
Flop Layer::bwd_flops() const { return sum_of(ops, &Op::bwd_flops); }
Flop Layer::fwd_flops_useful() const { return sum_of(ops, &Op::fwd_flops_useful); }
double Layer::params() const { return sum_of(ops, &Op::params); }
double Layer::fp8_weight_elems() const { return sum_of(ops, &Op::fp8_weight_elems); }
Bytes Layer::fp8_scaling_state() const { return sum_of(ops, &Op::fp8_scaling_state); }
Bytes Layer::fp8_weight_cache() const { return sum_of(ops, &Op::fp8_weight_cache); }

double Layer::expert_params() const {
  double p = 0;
  for (const auto& op : ops)
    if (op.expert) p += op.params;
  return p;
}

std::vector<double> Layer::parameter_tensors() const {
  std::vector<double> t;
  for (const Op& op : ops) {
    if (op.params <= 0) continue;
    const double matrix = op.weight_k * op.weight_n;
    if (matrix <= 0) {
      t.push_back(op.params);
      continue;
    }
    const double copies = std::floor(op.params / matrix + 1e-9);
    for (double i = 0; i < copies; ++i) t.push_back(matrix);
    const double rest = op.params - copies * matrix;
    if (rest > 0.5) t.push_back(rest);
  }
  return t;
}

Bytes Layer::saved(Recompute r, unsigned modules) const {
  if (r == Recompute::full && kind == LayerKind::transformer) return input;
  const unsigned m = r == Recompute::selective ? modules : 0u;
  Bytes b;
  for (const auto& op : ops) {
    if ((op.saved_dropped_by & m) == 0) b += op.saved;
    if ((op.recompute_in & m) == 0) b += op.saved_selective;
  }
  return b;
}

Flop Layer::recompute_flops(Recompute r, unsigned modules) const {
  if (r == Recompute::none || kind != LayerKind::transformer) return Flop(0);
  Flop f;
  for (const auto& op : ops) {
    if (r == Recompute::full || recomputed(op, modules)) f += op.fwd_flops;
  }
  return f;
}

double Workload::params() const {
  double p = 0;
  for (const auto& l : layers) p += l.params();
  return p;
}

Flop Workload::fwd_flops() const {
  Flop f;
  for (const auto& l : layers) f += l.fwd_flops();
  return f;
}

Flop Workload::bwd_flops() const {
  Flop f;
  for (const auto& l : layers) f += l.bwd_flops();
  return f;
}

Flop Workload::fwd_flops_useful() const {
  Flop f;
  for (const auto& l : layers) f += l.fwd_flops_useful();
  return f;
}

Bytes Workload::saved(Recompute r, unsigned modules) const {
  Bytes b;
  for (const auto& l : layers) b += l.saved(r, modules);
  return b;
}

Flop Workload::recompute_flops(Recompute r, unsigned modules) const {
  Flop f;
  for (const auto& l : layers) f += l.recompute_flops(r, modules);
  return f;
}

Shard shard_of(const ParallelismSpec& p) {
  Shard s;
  s.microbatch = p.microbatch;
  s.tp = p.tp;
  s.sequence_parallel = p.sequence_parallel;
  s.cp = p.cp;
  s.cp_ring = p.cp_comm == ParallelismSpec::CpComm::ring;
  s.ep = p.ep;
  s.etp = p.etp();
  s.ep_alltoall = p.ep_alltoall;
  s.microbatches = std::max(1, p.microbatches());
  s.mtp_standalone = standalone_mtp_stage(p.pipeline_layout) >= 0;
  return s;
}

Workload build_workload(const ModelSpec& m, const TrainingSpec& t, const Shard& shard) {
  ORRERY_CHECK(shard.microbatch >= 1 && shard.tp >= 1 && shard.cp >= 1 && shard.ep >= 1,
               "shard degrees must be positive");
  if (m.family == ModelFamily::cnn) return build_cnn_workload(m, t, shard);
  return build_transformer_workload(m, t, shard);
}

}  // namespace orrery
