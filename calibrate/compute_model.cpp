#include "calibrate/compute_model.h"

#include <algorithm>
#include <cmath>
#include <vector>
#include <fmt/format.h>

#include "core/error.h"
#include "model/attention_mask.h"
#include "model/memory.h"

namespace orrery {
namespace {

// The FlashAttention-2 paper's H100 forward + backward rates, head dimension 128, in
// TFLOP/s at sequence 512 .. 16k (calibrate/compute_model.h, flash_shape_factor).
struct FlashCurve {
  double full[6];
  double causal[6];
};
constexpr double kCurveSeq[6] = {512, 1024, 2048, 4096, 8192, 16384};
constexpr FlashCurve kFlash2H100 = {{248, 294, 320, 326, 335, 338}, {163, 221, 265, 294, 308, 328}};
constexpr FlashCurve kFlash1H100 = {{127, 127, 128, 131, 137, 139}, {98, 109, 108, 126, 135, 137}};
// cuDNN's fused flash attention (PyTorch 2.11's SDPA CUDNN_ATTENTION backend, cuDNN 9.19.0),
// measured on one H200 on 2026-12-04 in the benchmark's own shape (16 heads x 128, 16k
// tokens a call, bf16; causal FLOPs at half the product), the mean of two runs of 20
// repetitions: calibrate/data/h200-20261204/kernel-rates-attention-{1,2}.yaml,
// profiler/kernel_rates.py. Used for its shape only; its level is the GPU's
// cudnn_attention_efficiency.
constexpr FlashCurve kCudnnH200 = {{335.8, 452.45, 538.8, 568.55, 550.35, 556.95},
                                   {203.0, 314.25, 411.8, 490.0, 509.4, 534.3}};

// Attention dropout inside the fused kernel (a Philox mask drawn per score tile, forward and
// backward): its forward + backward rate over the same kernel's without, measured on one
// H200 on 2026-12-04 (PyTorch 2.11 SDPA, cuDNN 9.19.0; 16 heads x 128, causal, dropout 0.1,
// sequence 2k / 4k / 8k at 16k tokens a call; the mean of two runs,
// calibrate/data/h200-20261204/kernel-rates-attention-{1,2}.yaml, attention_variants):
// FlashAttention-2 188.85 / 225.05, 228.8 / 260.3, 249.85 / 287.35 (mean 0.863); cuDNN
// 294.3 / 411.8, 337.9 / 490.0, 366.6 / 509.4 (mean 0.708). The first FlashAttention
// takes FlashAttention-2's (not measured).
constexpr double kFlashDropout = 0.863;
constexpr double kCudnnDropout = 0.708;

// A fused kernel's backward takes this many times its forward's time (FlashAttention-2
// runs 5 matmuls backward against 2 forward, Dao 2023, Algorithm 2; compute_model.h).
constexpr double kFlashBwdOverFwd = 2.5;

// The curve at `seq`, linear in log2(seq) between the measured lengths, held at the ends.
double curve_at(const double (&rate)[6], double seq) {
  if (seq <= kCurveSeq[0]) return rate[0];
  if (seq >= kCurveSeq[5]) return rate[5];
  int i = 0;
  while (seq > kCurveSeq[i + 1]) ++i;
  const double x = std::log2(seq / kCurveSeq[i]);  // kCurveSeq doubles at each step
  return rate[i] + x * (rate[i + 1] - rate[i]);
}

class RooflineModel final : public ComputeModel {
 public:
  // `optimizer_bandwidth` (> 0): the optimizer's passes stream at this measured rate
  // (a profile's optimizer entry) in place of HBM x memory_efficiency.
  explicit RooflineModel(const Scenario& s, double optimizer_bandwidth = 0) {
    const GpuSpec& g = s.cluster.gpu;
    auto missing = [&](const std::string& key, const std::string& what) {
      return InputError(s.where("cluster.gpu"), "cluster.gpu." + key, "",
                        "missing key: " + what +
                            " is needed to time ops; take it from a GPU preset or measure it");
    };
    const Dtype d = compute_dtype(s.training.precision);
    const Dtype a = attention_dtype(s.training.precision);
    for (Dtype x : {d, a}) {
      if (!g.gemm_efficiency.count(x)) {
        throw missing(std::string("gemm_efficiency.") + to_string(x),
                      std::string("the achievable GEMM fraction for ") + to_string(x));
      }
      if (!g.peak.count(x)) {
        throw InputError(s.where("cluster.gpu"), std::string("cluster.gpu.peak.") + to_string(x),
                         "", "missing key: needed for attention and GEMMs in this precision");
      }
    }
    if (g.gemm_ramp.empty()) throw missing("gemm_ramp", "the GEMM efficiency ramp by size");
    if (!g.attention_efficiency) throw missing("attention_efficiency", "the fused-attention fraction");
    const bool cudnn = s.training.stack.attention == StackSpec::AttentionKernel::cudnn;
    if (cudnn && !g.cudnn_attention_efficiency)
      throw missing("cudnn_attention_efficiency", "cuDNN's fused-attention fraction");
    if (!g.memory_efficiency) throw missing("memory_efficiency", "the achievable HBM fraction");
    if (!g.kernel_launch) throw missing("kernel_launch", "the shortest kernel time");
    gemm_rate_ = g.peak.at(d).value() * g.gemm_efficiency.at(d);
    attn_gemm_rate_ = g.peak.at(a).value() * g.gemm_efficiency.at(a);
    flash_rate_ = g.peak.at(a).value() * *fused_attention_efficiency(s, g);
    // The presets' attention_efficiency is FlashAttention-2's rate; the first
    // FlashAttention runs at kFlash1OverFlash2 of it (calibrate/compute_model.h).
    const bool flash1 = s.training.stack.attention == StackSpec::AttentionKernel::flash1;
    if (flash1) flash_rate_ *= kFlash1OverFlash2;
    // At the model's sequence length and mask (calibrate/compute_model.h).
    shape_factor_ = flash_shape_factor(s);
    flash_rate_ *= shape_factor_;
    const double dropout = cudnn ? kCudnnDropout : kFlashDropout;
    if (s.model.dropout) flash_rate_ *= dropout;
    // Split accumulation (docs/model.md, "Split accumulation of fp8 GEMMs"): the fp8
    // recipes run their gradient GEMMs, and block scaling its forward too, with
    // fp32-promoted accumulation, where the plateau was measured with fast accumulation.
    if (d == Dtype::fp8 && g.fp8_split_accumulation) {
      split_bwd_ = *g.fp8_split_accumulation;
      if (s.training.fp8 && s.training.fp8->scaling == Fp8Spec::Scaling::block)
        split_fwd_ = split_bwd_;
    }
    for (const auto& [t, f] : g.gemm_ramp) ramp_.emplace_back(std::log(t.value()), f);
    hbm_ = g.memory_bandwidth.value() * *g.memory_efficiency;
    // Unfused attention's score-tensor kernels at their own measured fraction of HBM
    // (cluster.gpu.score_tensor_efficiency), else at the STREAM fraction.
    scores_hbm_ =
        g.memory_bandwidth.value() * g.score_tensor_efficiency.value_or(*g.memory_efficiency);
    // PyTorch's dtype-converting copies at their own measured fraction of HBM
    // (cluster.gpu.cast_efficiency), else at the STREAM fraction.
    cast_hbm_ = g.memory_bandwidth.value() * g.cast_efficiency.value_or(*g.memory_efficiency);
    // A GEMM with an odd dimension at cuBLAS's alignment-1 kernels' measured rate
    // (cluster.gpu.unaligned_gemm_efficiency, a 16-bit figure).
    unaligned_rate_ = unaligned_gemm_rate(s);
    optimizer_hbm_ = optimizer_bandwidth > 0 ? optimizer_bandwidth : hbm_;
    launch_ = g.kernel_launch->value();
    // training.stack.host_overhead: the host's time to issue one optimizer pass (one
    // Python call each: the fused step, or each torch._foreach_* op), a floor beside the
    // kernel's (simulator/layer_templates.cpp applies it to the layers' kernels).
    step_floor_ = std::max(launch_, s.training.stack.host_overhead.value());
    // Adam: gradient read; the copy of the weights the update works on (the fp32 weights,
    // or under mixed precision the master copy) and the moments, in their stored formats
    // with their block scales (training.optimizer_state_dtype), read and written; under
    // mixed precision the 16-bit weights written too. Without a master copy
    // (main_params_dtype none) the update reads and writes the 16-bit weights alone.
    const StateBytes sb = state_bytes_per_param(s.training);
    const bool master = sb.master > 0;
    optimizer_bytes_ = sb.gradient + 2 * (master ? sb.master : sb.weight) + 2 * sb.moments +
                       (master ? sb.weight : 0.0);
    // Passes beyond one fused update: LAMB's trust ratio needs the norms of the weights
    // and of the update, which it stores and reads back (read w, write and read u);
    // LARS the norms of the weights and gradients; Adafactor the row and column means of
    // the squared gradient before the update.
    // Loss scaling unscales the gradients by 1/S and checks them for inf/NaN in one
    // multi-tensor pass before the update (read and write each gradient; PyTorch's
    // _amp_foreach_non_finite_check_and_unscale_, which Megatron-LM's optimizer calls).
    if (s.training.loss_scaling.effective(s.training.precision) != LossScalingSpec::Kind::none)
      optimizer_bytes_ += 2 * sb.gradient;
    switch (s.training.optimizer) {
      case Optimizer::lamb: optimizer_bytes_ += 3 * 4.0; break;
      case Optimizer::lars: optimizer_bytes_ += 4.0 + sb.gradient; break;
      case Optimizer::adafactor: optimizer_bytes_ += sb.gradient; break;
      default: break;
    }
    // training.stack.optimizer foreach (Adam/AdamW; validated): torch's _multi_tensor_adam
    // runs each step of the update as a torch._foreach_* op, a pass over every parameter
    // (torch/optim/adam.py at pytorch/pytorch dc80ccde, the non-capturable branch), per
    // element with G the gradient, P the weights updated (the master copy where there is
    // one), m and v one moment each, in their stored formats:
    //   AdamW only: _foreach_mul_(params, 1 - lr*wd)     2P     (adamw.py at c15fcf4e,
    //               weight_decay default 1e-2; torch Adam's default is 0: no pass)
    //   _foreach_lerp_(exp_avgs, grads)                  2m + G
    //   _foreach_mul_(exp_avg_sqs, beta2)                2v
    //   _foreach_addcmul_(exp_avg_sqs, grads, grads)     2v + G (the gradient read once)
    //   _foreach_sqrt(exp_avg_sqs) into a new list       2v
    //   _foreach_div_(that, bias_correction2_sqrt)       2v
    //   _foreach_add_(that, eps)                         2v
    //   _foreach_addcdiv_(params, exp_avgs, that)        2P + m + v
    // against the fused kernel's G + 2P + 2m + 2v. What the fused count adds beyond that
    // core (the 16-bit weights written, loss scaling's unscale) stays one pass more.
    // Each pass is timed max(bytes / HBM, kernel_launch): one multi-tensor launch a pass
    // (multi_tensor_apply's splitting of very many tensors into more launches is not
    // counted).
    // training.stack.optimizer per_parameter: _single_tensor_adam (torch/optim/adam.py at
    // pytorch/pytorch dc80ccde, the non-capturable branch) runs the same steps tensor by
    // tensor, each a kernel of its own: [AdamW: param.mul_(1 - lr*wd)], exp_avg.lerp_,
    // exp_avg_sq.mul_ then .addcmul_, exp_avg_sq.sqrt(), / bias_correction2_sqrt,
    // .add_(eps), param.addcdiv_: the foreach passes' bytes, per tensor; and one host
    // call more a tensor for `step_t += 1` on its CPU step counter (no GPU kernel).
    per_tensor_ = s.training.stack.optimizer == StackSpec::OptimizerKernels::per_parameter;
    host_ = s.training.stack.host_overhead.value();
    if (s.training.stack.optimizer != StackSpec::OptimizerKernels::fused) {
      const double G = sb.gradient, P = master ? sb.master : sb.weight, m = sb.moments / 2;
      const double v = m;
      if (s.training.optimizer == Optimizer::adamw) foreach_passes_.push_back(2 * P);
      for (double b : {2 * m + G, 2 * v, 2 * v + G, 2 * v, 2 * v, 2 * v, 2 * P + m + v})
        foreach_passes_.push_back(b);
      const double rest = optimizer_bytes_ - (G + 2 * P + 2 * m + 2 * v);
      if (per_tensor_) {
        rest_bytes_ = std::max(rest, 0.0);
      } else if (rest > 0) {
        foreach_passes_.push_back(rest);
      }
      optimizer_bytes_ = rest_bytes_;
      for (double b : foreach_passes_) optimizer_bytes_ += b;
    }
    const std::string gpu = g.preset.empty() ? "cluster.gpu" : "GPU preset " + g.preset;
    explanation_ = {
        {fmt::format("GEMM ({})", to_string(d)),
         fmt::format("roofline: F / ({:.1f} TFLOP/s = peak x gemm_efficiency {}) / ramp, "
                     "{}-point ramp; at least bytes / HBM ({})",
                     gemm_rate_ / 1e12, g.gemm_efficiency.at(d), ramp_.size(), gpu)},
        {fmt::format("attention GEMMs ({})", to_string(a)),
         fmt::format("roofline: F / {:.1f} TFLOP/s / ramp ({})", attn_gemm_rate_ / 1e12, gpu)},
        {"fused attention",
         fmt::format("roofline: F / {:.1f} TFLOP/s (peak x {}{} x {:.3f} "
                     "at this sequence length and mask{} over the preset's 8k unmasked shape, "
                     "{}){}, F the score tiles the mask leaves, "
                     "backward 2.5x forward ({})",
                     flash_rate_ / 1e12,
                     cudnn ? "cudnn_attention_efficiency" : "attention_efficiency",
                     flash1 ? fmt::format(" x {} for the first FlashAttention, "
                                          "training.stack.attention flash1",
                                          kFlash1OverFlash2)
                            : std::string(),
                     shape_factor_,
                     s.parallelism.cp > 1 && shape_factor_ != 1.0
                         ? fmt::format(" in context parallelism's per-chunk kernels (cp {})",
                                       s.parallelism.cp)
                         : std::string(),
                     cudnn ? "cuDNN 9.19's rates measured on an H200, calibrate/data/h200-20261204"
                           : "FlashAttention-2 paper Fig. 7",
                     s.model.dropout
                         ? fmt::format(" x {} for attention dropout in the kernel", dropout)
                         : std::string(),
                     gpu)},
        {"norm, softmax, other ops",
         fmt::format("roofline: bytes / {:.0f} GB/s (HBM x memory_efficiency) ({})", hbm_ / 1e9,
                     gpu)},
        {"kernel floor", fmt::format("roofline: kernel_launch {:.1f} us ({})", launch_ * 1e6, gpu)},
        {"optimizer",
         foreach_passes_.empty()
             ? fmt::format("roofline: {:.0f} bytes per parameter / {:.0f} GB/s (one fused kernel)",
                           optimizer_bytes_, optimizer_hbm_ / 1e9)
         : per_tensor_
             ? fmt::format("roofline: {:.0f} bytes per parameter / {:.0f} GB/s, tensor by "
                           "tensor: {} kernels a tensor, each at least kernel_launch, and a "
                           "tensor at least {} host calls x {:.1f} us",
                           optimizer_bytes_, optimizer_hbm_ / 1e9, foreach_passes_.size(),
                           foreach_passes_.size() + 1, host_ * 1e6)
             : fmt::format("roofline: {:.0f} bytes per parameter / {:.0f} GB/s in {} foreach "
                           "passes, each at least {:.1f} us (kernel_launch, or the stack's "
                           "host_overhead where longer)",
                           optimizer_bytes_, optimizer_hbm_ / 1e9, foreach_passes_.size(),
                           step_floor_ * 1e6)}};
    if (g.cast_efficiency) {
      explanation_.insert(
          explanation_.begin() + 4,
          {"dtype casts",
           fmt::format("roofline: PyTorch's dtype-converting copies (an unfused chain's "
                       "x.float() and type_as, FSDP1's and DeepSpeed's gradient casts) at least "
                       "bytes / {:.0f} GB/s (HBM x cast_efficiency {}: the dynamic-cast path, "
                       "not vectorized) ({})",
                       cast_hbm_ / 1e9, *g.cast_efficiency, gpu)});
    }
    if (!s.training.flash_attention) {
      explanation_.insert(
          explanation_.begin() + 4,
          {"unfused attention",
           g.score_tensor_efficiency
               ? fmt::format("roofline: score-tensor ops (scores, softmax, dropout, context) "
                             "at least bytes / {:.0f} GB/s (HBM x score_tensor_efficiency {}) "
                             "({})",
                             scores_hbm_ / 1e9, *g.score_tensor_efficiency, gpu)
               : fmt::format("roofline: score-tensor ops at least bytes / {:.0f} GB/s (HBM x "
                             "memory_efficiency; no score_tensor_efficiency measured) ({})",
                             scores_hbm_ / 1e9, gpu)});
    }
    if (split_bwd_ < 1.0) {
      explanation_.insert(
          explanation_.begin() + 1,
          {"fp8 split accumulation",
           fmt::format("{} GEMMs at {:.1f} TFLOP/s (fp8 plateau x fp8_split_accumulation {}, "
                       "fp32-promoted accumulation; the plateau is a fast-accumulation "
                       "measurement) ({})",
                       split_fwd_ < 1.0 ? "forward, data- and weight-gradient"
                                        : "data- and weight-gradient",
                       gemm_rate_ * split_bwd_ / 1e12, split_bwd_, gpu)});
    }
    if (s.training.fp8) {
      explanation_.insert(
          explanation_.begin() + 1,
          {"GEMM kept in bf16",
           fmt::format("roofline (training.fp8): F / {:.1f} TFLOP/s (bf16 peak x gemm_efficiency) / ramp ({}); "
                       "scaling: block keeps the fp8 rate (no measured figure says otherwise)",
                       attn_gemm_rate_ / 1e12, gpu)});
      if (s.training.fp8->scaling == Fp8Spec::Scaling::mxfp8) {
        explanation_.insert(
            explanation_.begin() + 2,
            {"MXFP8 GEMMs",
             fmt::format("forward at {:.1f} TFLOP/s (fp8 plateau x {}), data- and "
                         "weight-gradient at {:.1f} TFLOP/s (x {}): block-scaled kernels "
                         "against tensor-wise ones, Transformer Engine's GEMM profiling guide "
                         "(B300, pre-quantized)",
                         gemm_rate_ * kMxfp8FpropRate / 1e12, kMxfp8FpropRate,
                         gemm_rate_ * split_bwd_ * kMxfp8GradRate / 1e12, kMxfp8GradRate)});
      }
      if (s.training.fp8->rowwise()) {
        explanation_.insert(
            explanation_.begin() + 2,
            {"row-wise fp8 GEMMs",
             fmt::format("forward at {:.1f} TFLOP/s (fp8 plateau x {}, PyTorch's row-wise "
                         "scaled GEMM, pytorch/pytorch#147971); backward on cuBLAS's "
                         "tensor-wise GEMM with a separate output rescale{}",
                         gemm_rate_ * kRowwiseGemmRate / 1e12, kRowwiseGemmRate,
                         s.training.fp8->scaling == Fp8Spec::Scaling::rowwise_gw_hp
                             ? "; the weight-gradient GEMM at the bf16 rate"
                             : "")});
      }
    }
    description_ = fmt::format(
        "roofline: GEMM plateau {:.1f} TFLOP/s ({} x {}) with a {}-point size ramp, fused "
        "attention {:.1f} TFLOP/s, HBM {:.0f} GB/s, kernel floor {:.1f} us",
        gemm_rate_ / 1e12, to_string(d), g.gemm_efficiency.at(d), ramp_.size(), flash_rate_ / 1e12,
        hbm_ / 1e9, launch_ * 1e6);
  }

  // Fraction of the plateau a GEMM of this ideal duration reaches: the measured ramp,
  // interpolated linearly in log time, held flat beyond its ends.
  double ramp(double ideal) const {
    const double x = std::log(ideal);
    if (x <= ramp_.front().first) return ramp_.front().second;
    if (x >= ramp_.back().first) return ramp_.back().second;
    for (size_t i = 1; i < ramp_.size(); ++i) {
      if (x <= ramp_[i].first) {
        const auto& [x0, y0] = ramp_[i - 1];
        const auto& [x1, y1] = ramp_[i];
        return y0 + (y1 - y0) * (x - x0) / (x1 - x0);
      }
    }
    return ramp_.back().second;
  }

  double gemm_time(double flops, double plateau_rate) const {
    if (flops <= 0) return 0;
    const double ideal = flops / plateau_rate;
    return ideal / ramp(ideal);
  }

  Seconds op_time(const Op& op, Pass pass) const override {
    const bool fwd = pass == Pass::forward;
    const double bytes = fwd ? (op.fwd_read + op.fwd_written).value()
                             : (op.bwd_read + op.bwd_written).value();
    const double memory = bytes / (op.score_tensor ? scores_hbm_ : op.dtype_cast ? cast_hbm_ : hbm_);
    const double flops = (fwd ? op.fwd_flops : op.bwd_flops).value();
    double t = memory;
    switch (op.kind) {
      case OpKind::gemm:
      case OpKind::router:
      case OpKind::conv:
      {
        // Forward: one GEMM; backward: data- and weight-gradient GEMMs of half each. A GEMM
        // the fp8 recipe keeps in 16 bits runs at attention's (bf16) rate.
        const double rate = op.high_precision ? attn_gemm_rate_ : gemm_rate_;
        // A grouped GEMM: each expert's GEMM on the ramp at its own size.
        const double g = op.gemm_groups;
        // Row-wise fp8 (training.fp8.scaling rowwise*): the forward GEMM at a fraction of
        // the fp8 plateau; under rowwise_gw_hp the weight-gradient GEMM at the bf16 rate.
        // An fp8 GEMM with split accumulation at split_* of that rate (1 otherwise).
        // MXFP8: both at the block-scaled kernels' fraction of it (op.*_rate_factor).
        const double fwd_split = op.high_precision ? 1.0 : split_fwd_;
        const double bwd_split = op.high_precision ? 1.0 : split_bwd_ * op.bwd_rate_factor;
        const double wgrad_rate =
            op.wgrad_high_precision ? attn_gemm_rate_ : rate * bwd_split;
        t = std::max(memory,
                     fwd ? g * gemm_time(flops / g, rate * op.fwd_rate_factor * fwd_split)
                         : g * (gemm_time(flops / 2 / g, rate * bwd_split) +
                                gemm_time(flops / 2 / g, wgrad_rate)));
        // An odd dimension: cuBLAS's alignment-1 kernels, each pass's FLOPs at their rate.
        t = unaligned_gemm_time(op, flops, t, unaligned_rate_);
        break;
      }
      case OpKind::attention:
        if (is_op(op.name, "attn.core")) {
          // The rate is FLOPs of computed tiles per second (a non-causal benchmark,
          // scenario/presets/gpus.yaml); the mask leaves computed_share of the product.
          const double fwd_time = op.fwd_flops.value() * op.computed_share / flash_rate_;
          t = fwd ? fwd_time : kFlashBwdOverFwd * fwd_time;
        } else {
          t = std::max(memory, fwd ? gemm_time(flops, attn_gemm_rate_)
                                   : 2 * gemm_time(flops / 2, attn_gemm_rate_));
          // Unfused attention's batched GEMMs with an odd head dimension: cuBLAS's
          // alignment-1 kernels, as a linear layer's.
          t = unaligned_gemm_time(op, flops, t, unaligned_rate_);
        }
        break;
      default:
        break;
    }
    // Separate auxiliary kernels (FP8 casts and transposes) stream their bytes after.
    const double aux = (fwd ? op.aux_fwd_bytes : op.aux_bwd_bytes).value();
    if (aux > 0) t = std::max(t, launch_) + std::max(aux / hbm_, launch_);
    return Seconds(std::max(t, launch_));
  }

  // per_parameter: each tensor of p parameters takes max(its kernels' times, each
  // max(p x bytes / HBM, kernel_launch), and its host calls x host_overhead); what the
  // fused count adds beyond the update (the 16-bit weights written, loss scaling's
  // unscale) stays one pass over all of them (torch's unscale is one foreach op).
  Seconds optimizer_time_per_tensor(const std::vector<double>& tensors) const override {
    if (!per_tensor_) return ComputeModel::optimizer_time_per_tensor(tensors);
    const double calls = static_cast<double>(foreach_passes_.size()) + 1;
    double t = 0, all = 0;
    for (double p : tensors) {
      double gpu = 0;
      for (double b : foreach_passes_) gpu += std::max(p * b / optimizer_hbm_, launch_);
      t += std::max(gpu, calls * host_);
      all += p;
    }
    if (rest_bytes_ > 0) t += std::max(all * rest_bytes_ / optimizer_hbm_, step_floor_);
    return Seconds(t);
  }

  Seconds optimizer_time(double params) const override {
    if (foreach_passes_.empty())
      return Seconds(std::max(params * optimizer_bytes_ / optimizer_hbm_, step_floor_));
    double t = 0;
    for (double b : foreach_passes_) t += std::max(params * b / optimizer_hbm_, step_floor_);
    return Seconds(t);
  }
  double optimizer_bytes_per_param() const { return optimizer_bytes_; }

  std::string describe() const override { return description_; }
  std::vector<std::pair<std::string, std::string>> explain() const override {
    return explanation_;
  }

 private:
  std::vector<std::pair<std::string, std::string>> explanation_;
  double shape_factor_ = 1;
  double gemm_rate_ = 0, attn_gemm_rate_ = 0, flash_rate_ = 0, hbm_ = 0, launch_ = 0;
  double scores_hbm_ = 0;     // unfused attention's score-tensor kernels' bandwidth
  double cast_hbm_ = 0;       // PyTorch's dtype-converting copies' bandwidth
  double unaligned_rate_ = 0; // GEMMs with an odd dimension (0: timed as aligned)
  double optimizer_hbm_ = 0;  // the optimizer's bandwidth: hbm_, or a measured one
  double step_floor_ = 0;     // an optimizer pass's floor: max(kernel_launch, host_overhead)
  double split_fwd_ = 1.0, split_bwd_ = 1.0;  // fp8 split-accumulation rate factors
  std::vector<std::pair<double, double>> ramp_;  // (log ideal seconds, fraction)
  double optimizer_bytes_ = 0;
  std::vector<double> foreach_passes_;  // bytes a parameter of each foreach pass; empty: fused
  bool per_tensor_ = false;  // per_parameter: foreach_passes_ run tensor by tensor
  double rest_bytes_ = 0;    // per_parameter: bytes a parameter of the pass over all tensors
  double host_ = 0;          // training.stack.host_overhead, seconds
  std::string description_;
};

}  // namespace

std::unique_ptr<ComputeModel> make_roofline_model(const Scenario& s) {
  return std::make_unique<RooflineModel>(s);
}

std::unique_ptr<ComputeModel> make_roofline_model(const Scenario& s,
                                                  Bandwidth optimizer_bandwidth) {
  return std::make_unique<RooflineModel>(s, optimizer_bandwidth.value());
}

namespace {

// The curve's rate of computed tiles for one square kernel of `len` queries and keys,
// over the 8k unmasked rate (flash_shape_factor, calibrate/compute_model.h). Causal: the
// benchmark's causal figure (FLOPs at half the product) x 2 x the share of the len x len
// tiles the causal mask leaves at the benchmark's head dimension (128).
double unmasked_factor(const FlashCurve& c, double len) {
  return curve_at(c.full, len) / curve_at(c.full, 8192);
}
double causal_factor(const FlashCurve& c, std::int64_t len) {
  const AttentionTile t = flash_tile(128);
  const double grid = static_cast<double>((len + t.rows - 1) / t.rows) *
                      static_cast<double>((len + t.cols - 1) / t.cols);
  const double share = band_tiles(len, len, t) / grid;
  return curve_at(c.causal, static_cast<double>(len)) * 2.0 * share / curve_at(c.full, 8192);
}

// Time, in tiles over the 8k unmasked rate, of `tiles` unmasked tiles of a q x kv
// kernel. FlashAttention-2's forward gives each thread block a query tile looping over
// the key tiles, its backward a key tile looping over the query tiles (flash_fwd_kernel.h,
// flash_bwd_kernel.h compute_dq_dk_dv_seqk_parallel, Dao-AILab/flash-attention 0251105a);
// the benchmark holds the grid's size fixed (16k tokens) and grows that loop with the
// length, so each pass is read on the unmasked curve at its own loop length: forward at
// kv, backward at q, weighted 1 : kFlashBwdOverFwd as the roofline times them.
double unmasked_time(const FlashCurve& c, double tiles, double q, double kv) {
  return tiles * (1 / unmasked_factor(c, kv) + kFlashBwdOverFwd / unmasked_factor(c, q)) /
         (1 + kFlashBwdOverFwd);
}

// Context parallelism (cp > 1): the rate of each of Transformer Engine's per-chunk
// kernels at its own shape, as the rank's tiles over their time averaged over the cp
// ranks (one simulated GPU stands for its peers), in the units of flash_shape_factor.
// Each rank holds chunks r and 2cp-1-r of c = s / (2 cp) tokens. Tile counts are in 128 x
// 64 tiles; a causal square of len is at causal_factor(len), the benchmark's own shape.
//   ring (AttnFuncWithCPAndKVP2P, cp calls a layer): causal, step 0 a causal s/cp x s/cp
//     square ("diagonal"), the cp - 1 others unmasked q 2c x kv c ("lower-triangle",
//     steps 1..r) or q c x kv 2c ("upper-triangle", steps r+1..cp-1), (cp - 1)/2 of each
//     on average; full mask, cp unmasked s/cp squares ("all").
//   all-gather (AttnFuncWithCPAndKVAllGather, 2 calls a layer): chunk j's c queries
//     against the keys before its end, kv (j+1) c, bottom-right causal: an unmasked
//     q c x kv j c part and a causal c x c corner, each chunk id j = 0..2cp-1 once over
//     the ranks; full mask, q c x kv s unmasked.
// (transformer_engine/pytorch/attention/dot_product_attention/context_parallel.py at
// NVIDIA/TransformerEngine v2.9 70f53666; the ring's sections the same at v1.8 3ec998e9,
// attention.py, and at d0067d0d.)
double context_parallel_factor(const FlashCurve& c, const ModelSpec& m,
                               const ParallelismSpec& p) {
  const int cp = p.cp;
  const double s = static_cast<double>(m.seq_len);
  const std::int64_t local = m.seq_len / cp;  // a rank's two chunks
  const std::int64_t chunk = local / 2;       // c
  const AttentionTile t = flash_tile(128);
  const double c2 = static_cast<double>(chunk) * static_cast<double>(chunk) /
                    static_cast<double>(t.rows * t.cols);  // c x c in tiles
  const bool causal = m.attention_mask == AttentionMask::causal;
  const double cl = static_cast<double>(chunk);
  if (p.cp_comm == ParallelismSpec::CpComm::ring) {
    if (!causal) return unmasked_factor(c, static_cast<double>(local));
    const double diagonal = band_tiles(local, local, t);
    const double halves = (cp - 1) * 2 * c2;
    const double time = diagonal / causal_factor(c, local) +
                        (unmasked_time(c, halves / 2, 2 * cl, cl) +
                         unmasked_time(c, halves / 2, cl, 2 * cl));
    return (diagonal + halves) / time;
  }
  if (!causal) return 1 / unmasked_time(c, 1, cl, s);
  const double corner = band_tiles(chunk, chunk, t);
  double tiles = 0, time = 0;
  for (int j = 0; j < 2 * cp; ++j) {
    tiles += corner + j * c2;
    time += corner / causal_factor(c, chunk) + unmasked_time(c, j * c2, cl, (j + 1) * cl);
  }
  return tiles / time;
}

}  // namespace

const std::optional<double>& fused_attention_efficiency(const Scenario& s, const GpuSpec& g) {
  return s.training.stack.attention == StackSpec::AttentionKernel::cudnn
             ? g.cudnn_attention_efficiency
             : g.attention_efficiency;
}

double unaligned_gemm_rate(const Scenario& s) {
  const GpuSpec& g = s.cluster.gpu;
  const Dtype a = attention_dtype(s.training.precision);
  if (!g.unaligned_gemm_efficiency || (a != Dtype::bf16 && a != Dtype::fp16)) return 0.0;
  return g.peak.at(a).value() * *g.unaligned_gemm_efficiency;
}

double unaligned_gemm_time(const Op& op, double flops, double t, double rate) {
  return op.odd_dimension() && rate > 0 ? std::max(t, flops / rate) : t;
}

double flash_shape_factor(const Scenario& s) {
  const ModelSpec& m = s.model;
  if (!m.is_transformer() || m.seq_len <= 0) return 1.0;
  if (m.attention_mask == AttentionMask::sliding_window) return 1.0;
  const FlashCurve& c =
      s.training.stack.attention == StackSpec::AttentionKernel::flash1  ? kFlash1H100
      : s.training.stack.attention == StackSpec::AttentionKernel::cudnn ? kCudnnH200
                                                                        : kFlash2H100;
  const ParallelismSpec& p = s.parallelism;
  if (p.cp > 1) {
    // Each chunk kernel at its shape (context_parallel_factor); packed documents, split
    // per document over the ranks (TE's thd halves), are not on the curves.
    if (m.attention_mask == AttentionMask::document) return 1.0;
    return context_parallel_factor(c, m, p);
  }
  if (m.attention_mask == AttentionMask::full)
    return unmasked_factor(c, static_cast<double>(m.seq_len));
  // Causal, or packed documents each a causal sequence of document_length.
  const std::int64_t len = m.attention_mask == AttentionMask::document
                               ? std::clamp<std::int64_t>(m.document_length, 1, m.seq_len)
                               : m.seq_len;
  return causal_factor(c, len);
}

double optimizer_bytes_per_param(const Scenario& s) {
  return RooflineModel(s).optimizer_bytes_per_param();
}

Dtype attention_dtype(Precision p) {
  if (p == Precision::fp8 || p == Precision::fp4) return Dtype::bf16;
  return compute_dtype(p);
}

}  // namespace orrery
