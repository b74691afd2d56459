// How long an op takes on one GPU: the interface the simulator times ops through, and
// the default implementation from datasheet peaks and measured achievable fractions.
// A profile from `orrery calibrate` implements the same interface (profile_model.h).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/collective.h"
#include "core/units.h"
#include "model/workload.h"
#include "scenario/spec.h"

namespace orrery {

enum class Pass { forward, backward };

class ComputeModel {
 public:
  virtual ~ComputeModel() = default;
  // Time of the op's forward or backward kernels, alone on the GPU.
  virtual Seconds op_time(const Op& op, Pass pass) const = 0;
  // Time of the optimizer step over `params` parameters held (and updated) by this GPU.
  virtual Seconds optimizer_time(double params) const = 0;
  // The optimizer step over parameter tensors of these sizes (training.stack.optimizer
  // per_parameter: each tensor its own kernels); by default the step over their sum.
  virtual Seconds optimizer_time_per_tensor(const std::vector<double>& tensors) const {
    double params = 0;
    for (double t : tensors) params += t;
    return optimizer_time(params);
  }
  // One line naming the model and its constants, for reports.
  virtual std::string describe() const = 0;
  // Per op class, what times it: (class, source and formula with its constants), for
  // `orrery run --explain`.
  virtual std::vector<std::pair<std::string, std::string>> explain() const = 0;
  // What the model adds to the prediction band's half-width, as a fraction of step time,
  // and why (report/band.h): a profile projected from another GPU; 0 and empty otherwise.
  virtual double band_half_width() const { return 0; }
  virtual std::string band_basis() const { return ""; }
  // A measured time for a whole collective `op` of `bytes` (nccl-tests' size) over a group of
  // `ranks` GPUs on `nodes` nodes, in place of the simulator's plan; none: the plan times it
  // (a profile's measured NCCL entries, docs/model.md "Measured collectives").
  virtual std::optional<Seconds> collective_time(CollectiveOp op, int ranks, int nodes,
                                                 Bytes bytes) const {
    (void)op, (void)ranks, (void)nodes, (void)bytes;
    return std::nullopt;
  }
};

// training.stack.attention flash1: the first FlashAttention's forward + backward rate over
// FlashAttention-2's on the same GPU, head dimension 128, no causal mask, sequence 8k (the
// shape of the GPU presets' attention rows): A100 80GB SXM4 82 / 201 TFLOP/s = 0.408, H100
// 80GB SXM5 137 / 335 TFLOP/s = 0.409 (FlashAttention-2 paper, Dao 2023, Figures 4(b) and
// 7(b); assets/flash2_a100_fwd_bwd_benchmark.png and flash2_h100_fwd_bwd_benchmark.png at
// Dao-AILab/flash-attention 4f285b35). The 2022 Triton FlashAttention that LLM Foundry
// copies (llmfoundry/models/layers/flash_attn_triton.py at mosaicml/llm-foundry 061f2c7,
// from flash_attn/flash_attn_triton.py at eff9fe6b) is taken at the same rate: its
// author's note there puts its forward + backward "slightly slower" than the CUDA kernel
// of the time (flash-attn 1.x); no figure of that kernel on H100 was found.
inline constexpr double kFlash1OverFlash2 = 0.41;

// FlashAttention's rate at the model's sequence length and mask over its rate at the
// presets' measured shape (sequence 8k, no mask, scenario/presets/gpus.yaml), in FLOPs of
// computed score tiles per second (the convention of attention_efficiency); for
// training.stack.attention cudnn, cuDNN's rates measured on an H200 in the same benchmark
// shape (calibrate/data/h200-20261204) over its own 8k unmasked rate. Source: the
// FlashAttention-2 paper's H100 forward + backward benchmark, head dimension 128 (Dao
// 2023, Figures 7(b) and 7(d); assets/flash2_h100_fwd_bwd_benchmark.png at
// Dao-AILab/flash-attention 4f285b35), run by benchmarks/benchmark_flash_attention.py
// with batch x seqlen = 16k tokens at every length (bs_seqlen_vals) and FLOPs counted as
// 4 b s^2 heads d, halved for causal runs (flops(), b4b6e903), TFLOP/s:
//
//   seq                        512  1k   2k   4k   8k   16k
//   FlashAttention-2  no mask  248  294  320  326  335  338
//                     causal   163  221  265  294  308  328
//   FlashAttention    no mask  127  127  128  131  137  139   (flash1)
//                     causal    98  109  108  126  135  137
//
// A causal figure is turned into computed-tile FLOPs by x 2 x the causal tile share at
// that length (mask_tile_fraction, the 128-row tile: 0.516 at 4k), so the factor is
//   full:   R_full(s) / R_full(8k)
//   causal: R_causal(s) x 2 x share(s) / R_full(8k)      (FlashAttention-2 at 4k: 0.905)
// taken linearly in log2(s) between the measured lengths and held at the ends. Packed
// documents (mask document) run each document as a causal sequence of document_length
// (varlen), the benchmark's constant 16k tokens in batches of that length: the causal
// figure at document_length. Context parallelism (cp > 1): each of Transformer Engine's
// per-chunk kernels at its own shape (AttnFuncWithCPAndKVP2P, AttnFuncWithCPAndKVAllGather,
// attention/dot_product_attention/context_parallel.py at v2.9 70f53666; the ring's the
// same at v1.8 3ec998e9, attention.py, and d0067d0d), c = s / (2 cp) tokens a chunk: a
// causal square at its causal factor; an unmasked q x kv block with its forward read at
// kv and its backward at q (the lengths each pass's thread blocks loop over), weighted
// 1 : 2.5. Ring, causal: a causal s/cp square and cp - 1 halves, 2c x c or c x 2c;
// full: cp unmasked s/cp squares. All-gather: chunk j's c queries against (j+1) c keys,
// an unmasked c x jc part and a causal c x c corner (full: c x s). Averaged over the
// ranks, as the rank's tiles over their time (cp 2, s = 8192, causal ring: 0.9332,
// against 0.9338 for the same sequence without cp). Not measured, so 1: a sliding
// window, and packed documents under cp > 1. The A100 figures of the
// same paper (Figure 4) give ratios within 0.04 of these where printed (FlashAttention-2, head
// dimension 128, causal 4k: 173 x 1.031 / 201 = 0.888); the H100 ones are used for every
// GPU. Returns 1 for a model without a sequence (CNNs).
double flash_shape_factor(const Scenario& s);

// The fraction of the 16-bit peak of the fused-attention kernel `s` runs
// (training.stack.attention) on GPU `g`: cudnn_attention_efficiency for cuDNN's,
// attention_efficiency for FlashAttention's; unset where `g` does not give it.
const std::optional<double>& fused_attention_efficiency(const Scenario& s, const GpuSpec& g);

// The FLOP/s of a GEMM with an odd dimension (Op::odd_dimension) under `s`: the 16-bit
// peak x cluster.gpu.unaligned_gemm_efficiency under 16-bit and fp8 training, whose GEMMs
// with such a dimension run in 16 bits (fp8 GEMMs need every dimension a multiple of 16);
// 0 (timed as aligned) where the GPU gives no figure or under fp32 / tf32.
double unaligned_gemm_rate(const Scenario& s);
// A pass of `op` timed `t` seconds for `flops` FLOPs, at least at the alignment-1 `rate`
// (unaligned_gemm_rate) when the op has an odd dimension and the rate is known (> 0).
double unaligned_gemm_time(const Op& op, double flops, double t, double rate);

// Roofline with measured efficiencies (scenario/presets/gpus.yaml):
//   GEMM        ideal = F / (peak[d] * gemm_efficiency[d]);  t = ideal / ramp(ideal),
//               the measured fraction of the plateau that a GEMM of that length reaches;
//               at least bytes / (hbm * memory_efficiency). d = the training precision
//               (fp8 GEMMs for linear layers under fp8; attention's batched GEMMs in 16
//               bits); backward = two GEMMs (data and weight gradients) of half the
//               backward FLOPs each.
//   attention   fused: F * computed_share / (peak16 * attention_efficiency), F the full
//               s x S product and computed_share the tiles the mask leaves (causal about
//               1/2; model/attention_mask.h); backward 2.5x the forward time
//               (FlashAttention-2 runs 5 matmuls backward against 2 forward, Dao 2023,
//               Algorithm 2). training.stack.attention flash1: at kFlash1OverFlash2
//               of that rate; cudnn: at peak16 * cudnn_attention_efficiency instead, on
//               cuDNN's own measured curve (flash_shape_factor). With model.dropout, the
//               kernel's measured dropout factor (kFlashDropout, kCudnnDropout in
//               compute_model.cpp).
//   other ops   t = max(bytes / (hbm * memory_efficiency), kernel_launch)
//   auxiliary   kernels an op launches besides its main one (FP8 casts and transposes,
//               ring attention's merges and slice copies)
//               add their bytes / (hbm * memory_efficiency).
//   optimizer   fused update streaming its state: Adam/AdamW/LAMB read gradient, fp32
//               master, m, v and write master, m, v and the 16-bit weight (m, v and the
//               master in their stored formats, training.optimizer_state_dtype and
//               .main_params_dtype; without a master the 16-bit weight read and
//               written instead); SGD/LARS one
//               moment; Adafactor none; plus extra passes: LAMB's trust ratio 12 bytes
//               (read w, write and read u), LARS's norms 4 + gradient, Adafactor's row and
//               column means one more gradient read; t = bytes / (hbm * memory_efficiency).
// Throws InputError naming the missing key when the GPU lacks a measured fraction.
std::unique_ptr<ComputeModel> make_roofline_model(const Scenario& s);
// The same with the optimizer's passes streaming at `optimizer_bandwidth` in place of
// hbm x memory_efficiency: a bandwidth measured from a trace's optimizer kernels (a
// profile's optimizer entry, calibrate/profile_model.h).
std::unique_ptr<ComputeModel> make_roofline_model(const Scenario& s, Bandwidth optimizer_bandwidth);
// The bytes a parameter the roofline's optimizer step moves (every pass above, fused or
// foreach). Throws what make_roofline_model throws.
double optimizer_bytes_per_param(const Scenario& s);

// The format attention's GEMMs compute in: the training's (compute_dtype), except bf16
// under fp8, as Transformer Engine keeps attention in 16 bits.
Dtype attention_dtype(Precision p);

// The model a scenario asks for: the profile named by `cluster.calibration` (read and
// timed as make_profile_model says, calibrate/profile_model.h), else the roofline.
// Throws InputError for a profile that cannot be read, naming its file and line.
std::unique_ptr<ComputeModel> make_compute_model(const Scenario& s);

// The hardware a scenario runs on, its calibration resolved once: the cluster with the
// profile's intra-node curve and fabric efficiency (calibrated_cluster,
// profile_model.h) and the compute model (make_compute_model). The model depends on the
// GPU and on the training's precision, optimizer, gradient dtype and loss scaling, not on
// its compression or faults, so the step's variants (simulator/step.h) share it.
// A profile's fitted parameters (calibrate/run_parameters.h) are in place in both, and
// the compute slowdown the simulator uses is `compute_slowdown`.
struct Hardware {
  ClusterSpec cluster;
  std::shared_ptr<const ComputeModel> model;
  // simulation.compute_slowdown, or the profile's fitted value
  double compute_slowdown = SimulationSpec{}.compute_slowdown;
};
Hardware resolve_hardware(const Scenario& s);

}  // namespace orrery
