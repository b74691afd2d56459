// The one table of names per scenario enum: how a scenario file spells each value. The
// YAML reader's choices (and their order in its "expected one of" errors), the sweep
// reader's values, to_string and the docs test all read these tables, so a value is
// named in exactly one place. (Dtype is named in its own to_string; the scenario reads
// only a subset of it, as training.gradient_dtype.)
#pragma once

#include <optional>
#include <span>
#include <string_view>

#include "scenario/spec.h"
#include "scenario/sweep_spec.h"

namespace orrery {

// One value of E and its spelling.
template <class E>
struct Named {
  E value;
  const char* name;
};

// Specialised per enum: `table` lists every value once, in the order error messages offer
// them (the enum's order).
template <class E>
struct EnumNames;

template <class E>
constexpr std::span<const Named<E>> names_of() {
  return EnumNames<E>::table;
}

// The spelling of `v`; "?" for a value outside the table (never one the reader made).
template <class E>
const char* name_of(E v) {
  for (const Named<E>& n : names_of<E>())
    if (n.value == v) return n.name;
  return "?";
}

// The value spelt `name`; none if no value is.
template <class E>
std::optional<E> value_of(std::string_view name) {
  for (const Named<E>& n : names_of<E>())
    if (name == n.name) return n.value;
  return std::nullopt;
}

#define ORRERY_ENUM_NAMES(E, ...)                      \
  template <>                                          \
  struct EnumNames<E> {                                \
    static constexpr Named<E> table[] = {__VA_ARGS__}; \
  }

// cluster.inter_node.topology
ORRERY_ENUM_NAMES(InterNodeTopology, {InterNodeTopology::fat_tree, "fat-tree"},
                  {InterNodeTopology::rail_optimized, "rail-optimized"});
// model.family, model.activation, model.norm, model.position_embedding
ORRERY_ENUM_NAMES(ModelFamily, {ModelFamily::decoder, "decoder"}, {ModelFamily::encoder, "encoder"},
                  {ModelFamily::cnn, "cnn"});
// model.head
ORRERY_ENUM_NAMES(EncoderHead, {EncoderHead::masked_lm, "masked_lm"},
                  {EncoderHead::classifier, "classifier"});
ORRERY_ENUM_NAMES(Activation, {Activation::gelu, "gelu"}, {Activation::swiglu, "swiglu"});
ORRERY_ENUM_NAMES(Norm, {Norm::layernorm, "layernorm"}, {Norm::rmsnorm, "rmsnorm"});
ORRERY_ENUM_NAMES(PositionEmbedding, {PositionEmbedding::learned, "learned"},
                  {PositionEmbedding::rope, "rope"}, {PositionEmbedding::alibi, "alibi"});
// model.attention_mask
ORRERY_ENUM_NAMES(AttentionMask, {AttentionMask::causal, "causal"}, {AttentionMask::full, "full"},
                  {AttentionMask::sliding_window, "sliding-window"},
                  {AttentionMask::document, "document"});
// model.layer_table[i].op
ORRERY_ENUM_NAMES(CnnOp, {CnnOp::conv, "conv"}, {CnnOp::bn, "bn"}, {CnnOp::relu, "relu"},
                  {CnnOp::maxpool, "maxpool"}, {CnnOp::avgpool, "avgpool"}, {CnnOp::add, "add"},
                  {CnnOp::fc, "fc"});
// parallelism.schedule, .pipeline_engine, .cp_comm, .ep_alltoall, .sharding
ORRERY_ENUM_NAMES(PipelineSchedule, {PipelineSchedule::gpipe, "gpipe"},
                  {PipelineSchedule::one_f_one_b, "1f1b"},
                  {PipelineSchedule::interleaved_1f1b, "interleaved-1f1b"},
                  {PipelineSchedule::zero_bubble_h1, "zb-h1"},
                  {PipelineSchedule::dualpipe, "dualpipe"});
ORRERY_ENUM_NAMES(PipelineEngine, {PipelineEngine::megatron, "megatron"},
                  {PipelineEngine::deepspeed, "deepspeed"});
ORRERY_ENUM_NAMES(ParallelismSpec::CpComm, {ParallelismSpec::CpComm::ring, "ring"},
                  {ParallelismSpec::CpComm::all_gather, "all-gather"});
ORRERY_ENUM_NAMES(ParallelismSpec::RankOrder,
                  {ParallelismSpec::RankOrder::tp_cp_dp_pp, "tp-cp-dp-pp"},
                  {ParallelismSpec::RankOrder::tp_cp_pp_dp, "tp-cp-pp-dp"});
ORRERY_ENUM_NAMES(ParallelismSpec::Alltoall, {ParallelismSpec::Alltoall::automatic, "auto"},
                  {ParallelismSpec::Alltoall::direct, "direct"},
                  {ParallelismSpec::Alltoall::hierarchical, "hierarchical"});
// parallelism.ep_backend
ORRERY_ENUM_NAMES(ParallelismSpec::EpBackend, {ParallelismSpec::EpBackend::deepep, "deepep"},
                  {ParallelismSpec::EpBackend::hybridep, "hybridep"});
ORRERY_ENUM_NAMES(ParallelismSpec::Sharding, {ParallelismSpec::Sharding::full, "full"},
                  {ParallelismSpec::Sharding::hybrid, "hybrid"});
// parallelism.fsdp.implementation, .unit
ORRERY_ENUM_NAMES(ParallelismSpec::FsdpImpl, {ParallelismSpec::FsdpImpl::deepspeed, "deepspeed"},
                  {ParallelismSpec::FsdpImpl::fsdp1, "fsdp1"},
                  {ParallelismSpec::FsdpImpl::fsdp2, "fsdp2"},
                  {ParallelismSpec::FsdpImpl::megatron_fsdp, "megatron_fsdp"});
ORRERY_ENUM_NAMES(ParallelismSpec::FsdpUnit, {ParallelismSpec::FsdpUnit::layer, "layer"},
                  {ParallelismSpec::FsdpUnit::module, "module"});
// training.stack (a preset name or .preset), training.stack.rope (and sweep.stack)
ORRERY_ENUM_NAMES(StackSpec::Preset, {StackSpec::Preset::megatron_core, "megatron-core"},
                  {StackSpec::Preset::nemo, "nemo"}, {StackSpec::Preset::deepspeed, "deepspeed"},
                  {StackSpec::Preset::fsdp1, "fsdp1"}, {StackSpec::Preset::fsdp2, "fsdp2"});
ORRERY_ENUM_NAMES(StackSpec::Rope, {StackSpec::Rope::fused, "fused"},
                  {StackSpec::Rope::rotate_half, "rotate_half"},
                  {StackSpec::Rope::complex, "complex"},
                  {StackSpec::Rope::rotation_matrix, "rotation_matrix"});
ORRERY_ENUM_NAMES(StackSpec::OptimizerKernels, {StackSpec::OptimizerKernels::fused, "fused"},
                  {StackSpec::OptimizerKernels::foreach, "foreach"},
                  {StackSpec::OptimizerKernels::per_parameter, "per_parameter"});
ORRERY_ENUM_NAMES(StackSpec::NormKernels, {StackSpec::NormKernels::fused, "fused"},
                  {StackSpec::NormKernels::unfused, "unfused"});
ORRERY_ENUM_NAMES(StackSpec::AttentionKernel, {StackSpec::AttentionKernel::flash2, "flash2"},
                  {StackSpec::AttentionKernel::flash1, "flash1"},
                  {StackSpec::AttentionKernel::cudnn, "cudnn"});
ORRERY_ENUM_NAMES(StackSpec::Projections, {StackSpec::Projections::fused, "fused"},
                  {StackSpec::Projections::separate, "separate"});
ORRERY_ENUM_NAMES(StackSpec::MaskedSoftmax, {StackSpec::MaskedSoftmax::fused, "fused"},
                  {StackSpec::MaskedSoftmax::torch, "torch"},
                  {StackSpec::MaskedSoftmax::swapped_check, "swapped_check"});
ORRERY_ENUM_NAMES(StackSpec::GradAccumulation, {StackSpec::GradAccumulation::fused, "fused"},
                  {StackSpec::GradAccumulation::hook, "hook"},
                  {StackSpec::GradAccumulation::autograd, "autograd"});
// model.moe.dispatch_dtype, model.moe.combine_dtype
ORRERY_ENUM_NAMES(MoeSpec::Wire, {MoeSpec::Wire::fp8, "fp8"}, {MoeSpec::Wire::bf16, "bf16"},
                  {MoeSpec::Wire::fp32, "fp32"});
// training.precision, .recompute, .optimizer (and sweep.precision, sweep.recompute)
ORRERY_ENUM_NAMES(Precision, {Precision::fp32, "fp32"}, {Precision::tf32, "tf32"},
                  {Precision::fp16, "fp16"}, {Precision::bf16, "bf16"}, {Precision::fp8, "fp8"},
                  {Precision::fp4, "fp4"});
ORRERY_ENUM_NAMES(Recompute, {Recompute::none, "none"}, {Recompute::selective, "selective"},
                  {Recompute::full, "full"});
ORRERY_ENUM_NAMES(Optimizer, {Optimizer::adam, "adam"}, {Optimizer::adamw, "adamw"},
                  {Optimizer::lamb, "lamb"}, {Optimizer::sgd, "sgd"}, {Optimizer::lars, "lars"},
                  {Optimizer::adafactor, "adafactor"});
// training.memory.allocator
ORRERY_ENUM_NAMES(MemorySpec::Allocator, {MemorySpec::Allocator::caching, "caching"},
                  {MemorySpec::Allocator::expandable_segments, "expandable_segments"},
                  {MemorySpec::Allocator::none, "none"});
// training.optimizer_state_dtype, training.main_params_dtype
ORRERY_ENUM_NAMES(StateDtype, {StateDtype::fp32, "fp32"}, {StateDtype::bf16, "bf16"},
                  {StateDtype::int8, "8bit"});
ORRERY_ENUM_NAMES(MainParams, {MainParams::fp32, "fp32"}, {MainParams::fp16, "fp16"},
                  {MainParams::none, "none"});
// training.gradient_compression.scheme (and sweep.compression)
ORRERY_ENUM_NAMES(CompressionSpec::Scheme, {CompressionSpec::Scheme::none, "none"},
                  {CompressionSpec::Scheme::fp16, "fp16"}, {CompressionSpec::Scheme::bf16, "bf16"},
                  {CompressionSpec::Scheme::int8, "int8"}, {CompressionSpec::Scheme::int4, "int4"},
                  {CompressionSpec::Scheme::onebit, "onebit"},
                  {CompressionSpec::Scheme::topk, "topk"},
                  {CompressionSpec::Scheme::powersgd, "powersgd"},
                  {CompressionSpec::Scheme::local_sgd, "local_sgd"});
// training.loss_scaling.kind (`fixed` is spelt `static`)
ORRERY_ENUM_NAMES(LossScalingSpec::Kind, {LossScalingSpec::Kind::none, "none"},
                  {LossScalingSpec::Kind::fixed, "static"},
                  {LossScalingSpec::Kind::dynamic, "dynamic"});
// training.fp8.format, training.fp8.scaling
ORRERY_ENUM_NAMES(Fp8Spec::Format, {Fp8Spec::Format::hybrid, "hybrid"},
                  {Fp8Spec::Format::e4m3, "e4m3"});
ORRERY_ENUM_NAMES(Fp8Spec::Scaling, {Fp8Spec::Scaling::delayed, "delayed"},
                  {Fp8Spec::Scaling::current, "current"}, {Fp8Spec::Scaling::block, "block"},
                  {Fp8Spec::Scaling::mxfp8, "mxfp8"}, {Fp8Spec::Scaling::rowwise, "rowwise"},
                  {Fp8Spec::Scaling::rowwise_gw_hp, "rowwise_gw_hp"});
// training.fp4.format
ORRERY_ENUM_NAMES(Fp4Spec::Format, {Fp4Spec::Format::nvfp4, "nvfp4"},
                  {Fp4Spec::Format::mxfp4, "mxfp4"});
// faults[i].kind, faults[i].link
ORRERY_ENUM_NAMES(FaultSpec::Kind, {FaultSpec::Kind::straggler, "straggler"},
                  {FaultSpec::Kind::slow_link, "slow_link"},
                  {FaultSpec::Kind::failed_link, "failed_link"},
                  {FaultSpec::Kind::failed_node, "failed_node"});
ORRERY_ENUM_NAMES(FaultSpec::Link, {FaultSpec::Link::nic, "nic"}, {FaultSpec::Link::spine, "spine"},
                  {FaultSpec::Link::nvlink, "nvlink"});
// measured.metric
ORRERY_ENUM_NAMES(Metric, {Metric::step_time_s, "step_time_s"},
                  {Metric::tokens_per_s, "tokens_per_s"},
                  {Metric::tokens_per_s_per_gpu, "tokens_per_s_per_gpu"},
                  {Metric::tflops_per_gpu_model, "tflops_per_gpu_model"},
                  {Metric::tflops_per_gpu_hardware, "tflops_per_gpu_hardware"},
                  {Metric::mfu, "mfu"}, {Metric::speedup, "speedup"});
// training.cross_entropy_fusion_impl
ORRERY_ENUM_NAMES(TrainingSpec::GradBuckets,
                  {TrainingSpec::GradBuckets::megatron_core, "megatron-core"},
                  {TrainingSpec::GradBuckets::apex_distributed_adam, "apex-distributed-adam"});
ORRERY_ENUM_NAMES(TrainingSpec::CrossEntropyImpl, {TrainingSpec::CrossEntropyImpl::native, "native"},
                  {TrainingSpec::CrossEntropyImpl::te, "te"});
// measured.memory.peak
ORRERY_ENUM_NAMES(MemoryPeak, {MemoryPeak::allocated, "allocated"},
                  {MemoryPeak::reserved, "reserved"}, {MemoryPeak::device, "device"});
// sweep.objectives
ORRERY_ENUM_NAMES(Objective, {Objective::step_time, "step_time"},
                  {Objective::time_to_train, "time_to_train"}, {Objective::cost, "cost"},
                  {Objective::energy, "energy"}, {Objective::tco, "tco"});
// sweep.rank_by
ORRERY_ENUM_NAMES(RankBy, {RankBy::predicted, "predicted"}, {RankBy::pessimistic, "pessimistic"});

#undef ORRERY_ENUM_NAMES

}  // namespace orrery
