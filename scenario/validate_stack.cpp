// resolve()'s training-stack section: each preset's mechanisms where the file leaves them,
// and the limits of torch's per-parameter optimizer.
#include "scenario/validate_parts.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "scenario/names.h"

namespace orrery::validate_detail {

// training.stack: the preset's mechanisms wherever the file does not set them, each
// default cited beside it (docs/model.md, "Training stacks").
void complete_stack(Scenario& s) {
  using P = StackSpec::Preset;
  StackSpec& k = s.training.stack;
  const bool torch_native = k.pytorch_native();
  if (k.compile && !torch_native) {
    reject(s, "training.stack.compile", "true",
           fmt::format("torch.compile applies to presets fsdp1 and fsdp2 only (preset is {}, "
                       "whose fusions are its own kernels)",
                       to_string(k.preset)));
  }
  if (is_set(s, "training.stack.rope") && s.model.is_transformer() &&
      s.model.position_embedding != PositionEmbedding::rope) {
    reject(s, "training.stack.rope", to_string(k.rope),
           fmt::format("applies to position_embedding: rope only (the model's is {})",
                       to_string(s.model.position_embedding)));
  }
  // Compiled, Inductor fuses each pointwise chain into one Triton kernel: the RoPE
  // upcast-multiply-cast, silu and the product, the loss's softmax passes (torchtitan
  // compiles "model" and "loss" by default: CompileConfig.components in
  // torchtitan/config/configs.py at pytorch/torchtitan b5bcd76c).
  const bool c = k.compile;
  if (!is_set(s, "training.stack.rope")) {
    switch (k.preset) {
      // Megatron-Core: --no-rope-fusion clears apply_rope_fusion, on by default
      // (megatron/training/arguments.py at NVIDIA/Megatron-LM d98e8a64); NeMo 24.07's
      // recipes set apply_rope_fusion: true (NVIDIA/NeMo-Framework-Launcher tag 24.07,
      // launcher_scripts/conf/training/llama/llama3_8b.yaml line 93).
      case P::megatron_core:
      case P::nemo: k.rope = StackSpec::Rope::fused; break;
      // Megatron-DeepSpeed and Hugging Face models (which Composer / LLM Foundry and
      // Accelerate train under FSDP1) apply q*cos + rotate_half(q)*sin in PyTorch ops
      // (megatron/model/positional_embeddings.py lines 38-49 at bigscience-workshop/
      // Megatron-DeepSpeed 8387ae17;
      // src/transformers/models/llama/modeling_llama.py rotate_half and
      // apply_rotary_pos_emb at huggingface/transformers 00227283).
      case P::deepspeed: k.rope = StackSpec::Rope::rotate_half; break;
      case P::fsdp1: k.rope = c ? StackSpec::Rope::fused : StackSpec::Rope::rotate_half; break;
      // torchtitan: query.float() viewed as complex, times the cache, type_as back
      // (torchtitan/models/common/rope.py lines 254-264 at pytorch/torchtitan b5bcd76c).
      case P::fsdp2: k.rope = c ? StackSpec::Rope::fused : StackSpec::Rope::complex; break;
    }
  }
  // DeepSpeed's own overlap defaults, under its stack or its pipeline engine, where the
  // file does not set orrery's (whose defaults are Megatron-LM's). Its ZeRO config turns
  // overlap_comm on only at stage 3
  // (DeepSpeedZeroConfig.overlap_comm_valid: stage == ZeroStageEnum.weights,
  // deepspeed/runtime/zero/config.py at microsoft/DeepSpeed 38327e07), so below it the
  // gradients are reduced after the backward; and stages 1 and 2 all-gather the updated
  // weights inside step(), "ready for next round forward" (all_gather_dp_groups in
  // DeepSpeedZeroOptimizer.step, deepspeed/runtime/zero/stage_1_and_2.py at the same
  // commit), not under the next forward; its pipeline engine reduces only in the
  // schedule's ReduceGrads step, after the last backward (PipelineEngine._exec_reduce_grads,
  // deepspeed/runtime/pipe/engine.py). (Runs before complete_zero_stage: fsdp: true is
  // stage 3 already.)
  if (k.preset == P::deepspeed || s.parallelism.pipeline_engine == PipelineEngine::deepspeed) {
    const bool stage3 = s.parallelism.zero_stage >= 3 || s.parallelism.fsdp;
    if (!is_set(s, "training.overlap_grad_reduce")) s.training.overlap_grad_reduce = stage3;
    if (!is_set(s, "training.overlap_param_gather")) s.training.overlap_param_gather = stage3;
  }
  if (!is_set(s, "training.stack.activation_fusion")) {
    // Megatron-Core fuses bias and SwiGLU / GeLU unless --no-bias-swiglu-fusion /
    // --no-bias-gelu-fusion (arguments.py at d98e8a64, store_false), NeMo 24.07 sets
    // bias_activation_fusion: true (llama3_8b.yaml line 110), Megatron-DeepSpeed keeps
    // Megatron-LM's --no-bias-gelu-fusion default; eager PyTorch models compute
    // F.silu(w1(x)) * w3(x) as two kernels (torchtitan; act_fn(gate_proj(x)) * up_proj(x) in
    // LlamaMLP.forward, modeling_llama.py at huggingface/transformers 00227283).
    k.activation_fusion = !torch_native || c;
  }
  // The loss: unfused in Megatron-Core unless --cross-entropy-loss-fusion (store_true,
  // arguments.py at d98e8a64) and in Megatron-DeepSpeed; NeMo 24.07 sets
  // cross_entropy_loss_fusion: true (llama3_8b.yaml line 94); eager PyTorch upcasts the
  // logits and runs F.cross_entropy's passes, compiled one fused kernel chain.
  const bool stack_ce = is_set(s, "training.stack.cross_entropy_fusion");
  const bool training_ce = is_set(s, "training.cross_entropy_fusion");
  if (stack_ce && training_ce && k.cross_entropy_fusion != s.training.cross_entropy_fusion) {
    reject(s, "training.stack.cross_entropy_fusion", k.cross_entropy_fusion ? "true" : "false",
           "contradicts training.cross_entropy_fusion; set one of them");
  }
  if (stack_ce) {
    s.training.cross_entropy_fusion = k.cross_entropy_fusion;
  } else if (!training_ce) {
    s.training.cross_entropy_fusion = k.preset == P::nemo || (torch_native && c);
  }
  k.cross_entropy_fusion = s.training.cross_entropy_fusion;
  // Megatron-Core's choice of fused cross-entropy (--cross-entropy-fusion-impl, native by
  // default: cross_entropy_fusion_impl in megatron/core/model_parallel_config.py at
  // NVIDIA/Megatron-LM d98e8a64; the te branch of compute_language_model_loss in
  // language_module.py calls Transformer Engine's parallel_cross_entropy).
  if (is_set(s, "training.cross_entropy_fusion_impl") &&
      s.training.cross_entropy_impl == TrainingSpec::CrossEntropyImpl::te &&
      (!s.training.cross_entropy_fusion || (k.preset != P::megatron_core && k.preset != P::nemo))) {
    reject(s, "training.cross_entropy_fusion_impl", "te",
           fmt::format("Megatron-Core's choice of fused cross-entropy: needs "
                       "cross_entropy_fusion true and the megatron-core or nemo stack "
                       "(cross_entropy_fusion is {}, preset {})",
                       s.training.cross_entropy_fusion ? "true" : "false", to_string(k.preset)));
  }
  // The optimizer step's kernels. Only Adam/AdamW's foreach sequence is counted, so the
  // other optimizers keep their one fused pass.
  // bitsandbytes' 8-bit state is its own kernel, not torch's foreach path.
  const bool adam = (s.training.optimizer == Optimizer::adam ||
                     s.training.optimizer == Optimizer::adamw) &&
                    s.training.optimizer_state_dtype != StateDtype::int8;
  if (is_set(s, "training.stack.optimizer")) {
    if (k.optimizer != StackSpec::OptimizerKernels::fused && !adam) {
      reject(s, "training.stack.optimizer", to_string(k.optimizer),
             fmt::format("torch's {} kernel sequence is counted for adam and adamw with "
                         "fp32 or bf16 state only (training.optimizer is {}, "
                         "optimizer_state_dtype {})",
                         to_string(k.optimizer), to_string(s.training.optimizer),
                         to_string(s.training.optimizer_state_dtype)));
    }
  } else {
    // Megatron-Core and NeMo step Transformer Engine's FusedAdam, else Apex's
    // (megatron/core/optimizer/__init__.py lines 14-20 at NVIDIA/Megatron-LM d98e8a64);
    // DeepSpeed builds its FusedAdam for an "Adam"/"AdamW" config unless torch_adam
    // (deepspeed/runtime/engine.py, _configure_basic_optimizer, lines 1416-1439 at
    // microsoft/DeepSpeed 38327e07); torchtitan's OptimizersContainer defaults to
    // implementation "fused" (torchtitan/components/optimizer/optimizer.py lines 110-111
    // at pytorch/torchtitan b5bcd76c). FSDP1 trainers construct torch.optim.AdamW without
    // `fused` or `foreach` (foundation-model-stack/fms-fsdp 5a296af,
    // main_training_llama.py lines 113-115), and torch then picks foreach for CUDA tensors
    // (`_default_to_fused_or_foreach(..., use_fused=False)`, torch/optim/adam.py at
    // pytorch/pytorch dc80ccde). torch.compile compiles the model and the loss, not the
    // optimizer step (CompileConfig.components, torchtitan/config/configs.py at b5bcd76c).
    k.optimizer = k.preset == P::fsdp1 && adam ? StackSpec::OptimizerKernels::foreach
                                       : StackSpec::OptimizerKernels::fused;
  }
  // The norm's kernels. Only an RMSNorm has an unfused chain here: a LayerNorm in PyTorch
  // models is nn.LayerNorm / F.layer_norm, one ATen kernel each way, like the fused ones.
  // Separate projections: eager autograd's sums of their input gradients. Compiled, the
  // sum is part of an Inductor kernel (not modelled), so the setting is eager only.
  if (k.projections == StackSpec::Projections::separate) {
    if (!s.model.is_transformer()) {
      reject(s, "training.stack.projections", "separate", "applies to transformer models only");
    } else if (k.compile) {
      reject(s, "training.stack.projections", "separate",
             "counts eager autograd's gradient sums; under torch.compile (stack.compile true) "
             "Inductor fuses them into its own kernels, which orrery does not model");
    }
  }
  const bool rms = s.model.is_transformer() && s.model.norm == Norm::rmsnorm;
  if (is_set(s, "training.stack.norm")) {
    if (k.norm == StackSpec::NormKernels::unfused && !rms) {
      reject(s, "training.stack.norm", "unfused",
             s.model.is_transformer()
                 ? fmt::format("the unfused chain is an RMSNorm's (model.norm is {}, which "
                               "PyTorch runs as one F.layer_norm kernel)",
                               to_string(s.model.norm))
                 : std::string("applies to transformer models only"));
    }
  } else {
    // Megatron-Core runs Transformer Engine's RMSNorm / LayerNorm kernels (TENorm,
    // megatron/core/extensions/transformer_engine.py, and TELayerNormColumnParallelLinear
    // in megatron/core/models/gpt/gpt_layer_specs.py at NVIDIA/Megatron-LM d98e8a64), NeMo
    // the same modules; Megatron-DeepSpeed Apex's fused kernel (MixedFusedLayerNorm,
    // megatron/model/fused_layer_norm.py at bigscience-workshop/Megatron-DeepSpeed
    // 8387ae17). FSDP1 trainers run the model's own Python RMSNorm: Hugging Face's
    // LlamaRMSNorm (src/transformers/models/llama/modeling_llama.py at huggingface/
    // transformers 00227283) and ibm-fms's LayerNormParameterized with
    // use_high_precision_pow (fms/modules/layernorm.py and fms/models/llama.py at
    // foundation-model-stack/foundation-model-stack d2e59c2d, the version fms-fsdp
    // 4ffb9bd trained), x.float(), pow, mean, + eps, rsqrt, product, cast, weight.
    // torchtitan's RMSNorm is nn.RMSNorm (torchtitan/models/common/nn_modules.py at
    // pytorch/torchtitan b5bcd76c), which PyTorch runs as one fused CUDA kernel each way
    // (aten::_fused_rms_norm with its own backward: pytorch/pytorch pull requests 153666
    // and 164289). Compiled, Inductor fuses the chain into one kernel.
    k.norm = k.preset == P::fsdp1 && !c && rms ? StackSpec::NormKernels::unfused
                                               : StackSpec::NormKernels::fused;
  }
  // The fused-attention kernel. Megatron-Core and NeMo run Transformer Engine's
  // DotProductAttention (TEDotProductAttention, megatron/core/extensions/
  // transformer_engine.py at NVIDIA/Megatron-LM d98e8a64), which takes cuDNN's fused
  // attention over flash-attn on Hopper since TE v1.2 (NVIDIA/TransformerEngine 32db3928,
  // transformer_engine/pytorch/attention.py) and on Hopper and newer since v2.0 (544dd14b),
  // FlashAttention-2 on Ampere: cudnn where the GPU preset gives its rate
  // (cudnn_attention_efficiency, measured on Hopper), else flash2 (docs/model.md, "cuDNN's
  // fused attention"). The other presets run FlashAttention-2: PyTorch models call
  // F.scaled_dot_product_attention (ibm-fms fms/modules/attention.py line 203 at
  // foundation-model-stack/foundation-model-stack d2e59c2d; torchtitan), whose flash
  // backend is FlashAttention-2 since PyTorch 2.2 (release notes, January 2024: "SDPA now
  // supports FlashAttention-2"). flash1 is for runs that name the older kernel (LLM
  // Foundry's attn_impl triton or flash with flash-attn 1.x).
  if (is_set(s, "training.stack.attention") && !s.training.flash_attention) {
    reject(s, "training.stack.attention", to_string(k.attention),
           "names the fused-attention kernel, but training.flash_attention is false (the "
           "unfused softmax path has no such kernel)");
  }
  if (is_set(s, "training.stack.attention") &&
      k.attention == StackSpec::AttentionKernel::cudnn &&
      !s.cluster.gpu.cudnn_attention_efficiency) {
    reject(s, "training.stack.attention", to_string(k.attention),
           "names cuDNN's fused attention, but cluster.gpu gives no cudnn_attention_efficiency "
           "(its rate on this GPU); set it, or choose flash2");
  }
  // Megatron's masked softmax: only where its FusedScaleMaskSoftmax runs, Megatron-
  // DeepSpeed's unfused attention (megatron/model/transformer.py, ParallelAttention). Its
  // PyTorch path is timed as that code runs it, with apply_query_key_layer_scaling on (the
  // default there, megatron/arguments.py at bigscience-workshop/Megatron-DeepSpeed ae6277f5),
  // which forces the softmax into fp32. Megatron-LM made the scaling opt-in in 94a3749f
  // (2023-11-02), and its PyTorch path is then a 16-bit mask and softmax: other bytes, so the
  // megatron-core and nemo presets keep the kernel. The swapped check never ran in NVIDIA's
  // tree (40becfc9 and its fix 0d350c8d landed together). Nor does the 2021-22 code have
  // context parallelism (Megatron-Core's unfused DotProductAttention asserts cp 1) or a
  // sliding window.
  if (is_set(s, "training.stack.masked_softmax") &&
      k.masked_softmax != StackSpec::MaskedSoftmax::fused) {
    if (!s.model.is_transformer()) {
      reject(s, "training.stack.masked_softmax", to_string(k.masked_softmax),
             "applies to transformer models only");
    } else if (s.training.flash_attention) {
      reject(s, "training.stack.masked_softmax", to_string(k.masked_softmax),
             "names how Megatron's unfused attention runs its softmax, but "
             "training.flash_attention is true (the fused-attention kernel has the softmax "
             "inside)");
    } else if (k.preset != P::deepspeed) {
      reject(s, "training.stack.masked_softmax", to_string(k.masked_softmax),
             fmt::format("the PyTorch path timed is Megatron-DeepSpeed's (fp32, scaled by the "
                         "layer number); preset {} {}: use fused, or preset deepspeed",
                         to_string(k.preset),
                         k.pytorch_native()
                             ? "runs the model's own PyTorch attention"
                             : "has a 16-bit PyTorch path since Megatron-LM 94a3749f, which "
                               "orrery does not time"));
    } else if (s.parallelism.cp > 1) {
      reject(s, "training.stack.masked_softmax", to_string(k.masked_softmax),
             fmt::format("Megatron-DeepSpeed's unfused attention has no context parallelism "
                         "(parallelism.cp is {})",
                         s.parallelism.cp));
    } else if (s.model.attention_mask == AttentionMask::sliding_window) {
      reject(s, "training.stack.masked_softmax", to_string(k.masked_softmax),
             "Megatron-DeepSpeed's unfused attention has no sliding-window mask");
    } else if (s.training.precision == Precision::fp32 ||
               s.training.precision == Precision::tf32) {
      // Its PyTorch path in 32 bits has no casts (input_in_float16 false); orrery times
      // the 16-bit path only.
      reject(s, "training.stack.masked_softmax", to_string(k.masked_softmax),
             fmt::format("the PyTorch path timed is that of a 16-bit input (fp32 casts in "
                         "and out); training.precision is {}",
                         to_string(s.training.precision)));
    }
  }
  // Transformer Engine (Megatron-Core, NeMo) runs cuDNN's fused attention where the GPU
  // preset measured its rate (above); elsewhere FlashAttention-2's rate.
  if (!is_set(s, "training.stack.attention"))
    k.attention = (k.preset == P::megatron_core || k.preset == P::nemo) &&
                          s.cluster.gpu.cudnn_attention_efficiency
                      ? StackSpec::AttentionKernel::cudnn
                      : StackSpec::AttentionKernel::flash2;
  // Host time per kernel issued. Every preset drives its kernels from Python, one op at a
  // time (Megatron-Core, NeMo and DeepSpeed too: their fused kernels are still launched
  // op by op; none captures CUDA graphs by default). The default is the system's own
  // figure, cluster.gpu.host_overhead (scenario/presets/gpus.yaml: a torch.nn.Linear
  // forward's host time measured on a DGX H100, 13.48 us, and on a GB200's Grace host,
  // 37.08 us, NVIDIA/TransformerEngine issue 2053), and a GPU that gives none takes the
  // DGX H100's. A forward op's figure: the same stands for the backward's kernels (issued
  // by autograd's C++ engine, no Python; likely less) and for Inductor's launcher of a
  // compiled graph's kernels; no measurement of either was found. A file sets 0 for a
  // CUDA-graphed step.
  if (!is_set(s, "training.stack.host_overhead"))
    k.host_overhead = s.cluster.gpu.host_overhead.value_or(Seconds(13.48e-6));
  // A column-parallel layer's input gradient under tensor parallelism. Transformer Engine's
  // Linear and LayerNormLinear backward issue its reduce-scatter (sequence parallelism) or
  // all-reduce with async_op=True after the data-gradient GEMM, run the weight-gradient
  // GEMM and wait for it after (transformer_engine/pytorch/module/linear.py lines 1122-1132
  // and 1350-1352 at NVIDIA/TransformerEngine d0067d0d; the same in module/linear.py and
  // layernorm_linear.py at v1.0, and in module.py since v0.1), and so does Megatron-LM's own
  // LinearWithGradAccumulationAndAsyncCommunication (megatron/core/tensor_parallel/layers.py
  // at NVIDIA/Megatron-LM 285068c8: "the reduce scatter is scheduled before the weight
  // gradient computation"; the all-reduce since cf7efd4f, 2021-08-30, "allreduce overlap
  // with wgrad gemm"). Megatron-DeepSpeed reduces it in the synchronous backward of
  // _CopyToModelParallelRegion (megatron/mpu/mappings.py, no async_op anywhere in
  // megatron/mpu at bigscience-workshop/Megatron-DeepSpeed 8387ae17), after both GEMMs; so
  // does the 2021 Megatron-LM that predates cf7efd4f, which a file of such a run sets.
  // PyTorch's tensor parallelism (DTensor) reduces it in the redistribution's own autograd
  // node, after the matmul's backward computed both gradients.
  if (!is_set(s, "training.stack.tp_dgrad_overlap"))
    k.tp_dgrad_overlap = k.preset == P::megatron_core || k.preset == P::nemo;
  // The unfused accumulations are those of Megatron-LM's data-parallel wrappers (its own
  // DDP's gradient-buffer hook, megatron/core/distributed/distributed_data_parallel.py at
  // NVIDIA/Megatron-LM d98e8a64; the 2021 wrappers' param.grad, megatron/model/
  // distributed.py at 6985e589): not DeepSpeed's or PyTorch FSDP's, and not the FSDP units'
  // path (zero_stage 3), which the simulator builds apart.
  // A PyTorch-native stack without sharding (Hugging Face's Trainer, a plain training loop,
  // DDP under no_sync) accumulates as autograd does: AccumulateGrad keeps the first
  // micro-batch's gradient in param.grad and adds each later one into it in place
  // (accumulateGrad in torch/csrc/autograd/functions/accumulate_grad.h, pytorch/pytorch
  // 00d40e7f: variable_grad += new_grad), the autograd mode's passes; that is its default
  // where param.grad is the gradient the optimizer reads (gradient_dtype in the parameters'
  // format, below).
  using G = StackSpec::GradAccumulation;
  // (Runs before complete_zero_stage: fsdp: true is stage 3 already.)
  const bool plain_torch = torch_native && s.parallelism.zero_stage == 0 && !s.parallelism.fsdp &&
                           s.parallelism.pipeline_engine == PipelineEngine::megatron;
  const bool megatron_wrappers = (k.preset == P::megatron_core || k.preset == P::nemo) &&
                                 s.parallelism.pipeline_engine == PipelineEngine::megatron &&
                                 s.parallelism.zero_stage < 3;
  if (k.gradient_accumulation != G::fused &&
      !(megatron_wrappers || (plain_torch && k.gradient_accumulation == G::autograd))) {
    reject(s, "training.stack.gradient_accumulation", to_string(k.gradient_accumulation),
           fmt::format("the unfused accumulations are modelled for Megatron's data-parallel "
                       "wrappers (presets megatron-core and nemo, pipeline_engine megatron, "
                       "zero_stage 0-2) and, autograd only, for the fsdp1 and fsdp2 stacks "
                       "without sharding (zero_stage 0) (preset is {}, pipeline_engine {}, "
                       "zero_stage {})",
                       to_string(k.preset), to_string(s.parallelism.pipeline_engine),
                       s.parallelism.zero_stage));
  }
  // autograd accumulates in param.grad, the parameters' own format: Megatron-LM asserts a
  // contiguous buffer (hook) for fp32 accumulation (--accumulate-allreduce-grads-in-fp32,
  // megatron/arguments.py at 6985e589).
  const Precision pr = s.training.precision;
  const double param_bytes = pr == Precision::fp32 || pr == Precision::tf32 ? 4.0 : 2.0;
  if (!is_set(s, "training.stack.gradient_accumulation") && plain_torch &&
      bytes_per_value(s.training.gradient_dtype) == param_bytes) {
    k.gradient_accumulation = G::autograd;
  }
  if (k.gradient_accumulation == G::autograd &&
      bytes_per_value(s.training.gradient_dtype) != param_bytes) {
    reject(s, "training.stack.gradient_accumulation", "autograd",
           fmt::format("accumulates in param.grad, in the parameters' format; gradient_dtype {} "
                       "needs Megatron's gradient buffer (hook)",
                       to_string(s.training.gradient_dtype)));
  }
}

// training.stack.optimizer per_parameter: the tensors torch's optimizer is handed are
// counted for plain data parallelism (the model's own parameters) and for ZeRO-3 under
// FSDP1 (one flat parameter a unit) or FSDP2 (each parameter's shard); a ZeRO-1/2 or
// DeepSpeed / Megatron sharded optimizer hands it flat buffers of its own, and the CPU
// share of an offloaded step is torch's CPU optimizer, neither counted.
void check_per_parameter_optimizer(const Scenario& s) {
  if (s.training.stack.optimizer != StackSpec::OptimizerKernels::per_parameter) return;
  using I = ParallelismSpec::FsdpImpl;
  const ParallelismSpec& p = s.parallelism;
  const bool counted =
      p.zero_stage == 0 ||
      (p.zero_stage >= 3 && (p.fsdp_impl == I::fsdp1 || p.fsdp_impl == I::fsdp2));
  if (!counted) {
    reject(s, "training.stack.optimizer", "per_parameter",
           fmt::format("the parameter tensors are counted without ZeRO (zero_stage 0) or "
                       "under FSDP1 / FSDP2 (zero_stage 3); this scenario has {}",
                       p.zero_stage >= 3
                           ? fmt::format("ZeRO-3 implementation {}", to_string(p.fsdp_impl))
                           : fmt::format("zero_stage {}, whose sharded optimizer steps flat "
                                         "buffers of its own",
                                         p.zero_stage)));
  }
  if (s.model.moe) {
    reject(s, "training.stack.optimizer", "per_parameter",
           "is not counted for MoE models (how each framework stores and shards the experts' "
           "weights, one tensor an expert or stacked, is not modelled)");
  }
  if (s.training.optimizer_offload) {
    reject(s, "training.stack.optimizer", "per_parameter",
           "is not counted with training.optimizer_offload (the offloaded share steps in "
           "torch's CPU optimizer)");
  }
}

// training.grad_buckets and training.overlap_param_gather_with_optimizer_step: the
// bucketing of a Megatron-engine data-parallel gradient buffer at ZeRO-0/1, defaulted to
// Megatron-Core's where that applies (simulator/step_passes.h, chunk_bucket_params), and the
// optimizer-step overlap under Megatron-LM's own conditions (megatron/training/arguments.py
// lines 1066-1072 at NVIDIA/Megatron-LM d98e8a64).
void complete_grad_buckets(Scenario& s) {
  using P = StackSpec::Preset;
  using B = TrainingSpec::GradBuckets;
  TrainingSpec& t = s.training;
  const ParallelismSpec& p = s.parallelism;
  const P preset = t.stack.preset;
  const bool megatron_buffer = p.pipeline_engine == PipelineEngine::megatron &&
                               p.zero_stage <= 1 && p.schedule != PipelineSchedule::dualpipe &&
                               (preset == P::megatron_core || preset == P::nemo);
  if (t.grad_buckets && !megatron_buffer) {
    reject(s, "training.grad_buckets", name_of(*t.grad_buckets),
           fmt::format("names how a Megatron-engine gradient buffer is bucketed at ZeRO stage 0 "
                       "or 1 under training.stack megatron-core or nemo, without DualPipe; this "
                       "scenario has stack {}, pipeline_engine {}, zero_stage {}{}",
                       to_string(preset), to_string(p.pipeline_engine), p.zero_stage,
                       p.schedule == PipelineSchedule::dualpipe ? ", schedule dualpipe" : ""));
  }
  if (t.grad_buckets == B::apex_distributed_adam && p.zero_stage != 1) {
    reject(s, "training.grad_buckets", name_of(*t.grad_buckets),
           fmt::format("is NeMo 1.x's Apex DistributedFusedAdam, which shards the optimizer "
                       "state: it needs zero_stage 1 (this scenario has {})",
                       p.zero_stage));
  }
  if (megatron_buffer && !t.grad_buckets) t.grad_buckets = B::megatron_core;
  if (!t.overlap_param_gather_with_optimizer_step) return;
  const std::string key = "training.overlap_param_gather_with_optimizer_step";
  if (t.grad_buckets != B::megatron_core) {
    reject(s, key, "true",
           "is Megatron-Core's (training.grad_buckets megatron-core, under stack megatron-core or "
           "nemo with the Megatron engine)");
  }
  if (p.zero_stage != 1) {
    reject(s, key, "true",
           fmt::format("needs the distributed optimizer (zero_stage 1; this scenario has {})",
                       p.zero_stage));
  }
  if (!t.overlap_param_gather) {
    reject(s, key, "true", "needs training.overlap_param_gather: true");
  }
  if (p.virtual_pipeline_stages < 2) {
    reject(s, key, "true",
           "needs the interleaved schedule (virtual_pipeline_stages of 2 or more), as "
           "Megatron-LM asserts");
  }
}

}  // namespace orrery::validate_detail
