#include "scenario/spec.h"

#include <fmt/format.h>

#include <utility>

namespace orrery {

const char* to_string(InterNodeTopology t) {
  return t == InterNodeTopology::fat_tree ? "fat-tree" : "rail-optimized";
}

const char* to_string(ModelFamily f) {
  switch (f) {
    case ModelFamily::decoder: return "decoder";
    case ModelFamily::encoder: return "encoder";
    case ModelFamily::cnn: return "cnn";
  }
  return "?";
}

const char* to_string(Activation a) { return a == Activation::gelu ? "gelu" : "swiglu"; }
const char* to_string(Norm n) { return n == Norm::layernorm ? "layernorm" : "rmsnorm"; }
const char* to_string(PositionEmbedding p) {
  return p == PositionEmbedding::learned ? "learned" : "rope";
}

const char* to_string(CnnOp op) {
  switch (op) {
    case CnnOp::conv: return "conv";
    case CnnOp::bn: return "bn";
    case CnnOp::relu: return "relu";
    case CnnOp::maxpool: return "maxpool";
    case CnnOp::avgpool: return "avgpool";
    case CnnOp::add: return "add";
    case CnnOp::fc: return "fc";
  }
  return "?";
}

const char* to_string(PipelineSchedule s) {
  switch (s) {
    case PipelineSchedule::gpipe: return "gpipe";
    case PipelineSchedule::one_f_one_b: return "1f1b";
    case PipelineSchedule::interleaved_1f1b: return "interleaved-1f1b";
    case PipelineSchedule::zero_bubble_h1: return "zb-h1";
    case PipelineSchedule::dualpipe: return "dualpipe";
  }
  return "?";
}

const char* to_string(PipelineEngine e) {
  return e == PipelineEngine::megatron ? "megatron" : "deepspeed";
}

const char* to_string(FaultSpec::Kind k) {
  switch (k) {
    case FaultSpec::Kind::straggler: return "straggler";
    case FaultSpec::Kind::slow_link: return "slow_link";
    case FaultSpec::Kind::failed_link: return "failed_link";
    case FaultSpec::Kind::failed_node: return "failed_node";
  }
  return "?";
}

const char* to_string(CompressionSpec::Scheme s) {
  using S = CompressionSpec::Scheme;
  switch (s) {
    case S::none: return "none";
    case S::fp16: return "fp16";
    case S::bf16: return "bf16";
    case S::int8: return "int8";
    case S::int4: return "int4";
    case S::onebit: return "onebit";
    case S::topk: return "topk";
    case S::powersgd: return "powersgd";
    case S::local_sgd: return "local_sgd";
  }
  return "none";
}

const char* to_string(Fp8Spec::Format f) {
  switch (f) {
    case Fp8Spec::Format::hybrid: return "hybrid";
    case Fp8Spec::Format::e4m3: return "e4m3";
  }
  return "?";
}

const char* to_string(Fp8Spec::Scaling s) {
  switch (s) {
    case Fp8Spec::Scaling::delayed: return "delayed";
    case Fp8Spec::Scaling::current: return "current";
    case Fp8Spec::Scaling::block: return "block";
    case Fp8Spec::Scaling::mxfp8: return "mxfp8";
  }
  return "?";
}

std::string describe(const Fp8Spec& f) {
  std::string gemms;
  if (f.gemms == ~0u) {
    gemms = "all GEMMs in fp8";
  } else if (f.gemms == kFp8TeLayers) {
    gemms = "Transformer Engine layers in fp8 (LM head and router bf16)";
  } else {
    const std::pair<unsigned, const char*> names[] = {
        {kFp8Qkv, "qkv"},         {kFp8Proj, "proj"},     {kFp8Fc1, "fc1"}, {kFp8Fc2, "fc2"},
        {kFp8Experts, "experts"}, {kFp8Router, "router"}, {kFp8Head, "head"}};
    for (const auto& [bit, name] : names)
      if (f.gemms & bit) gemms += (gemms.empty() ? "" : ", ") + std::string(name);
    gemms = "fp8 GEMMs " + (gemms.empty() ? std::string("none") : gemms) + ", others bf16";
  }
  if (f.bf16_first + f.bf16_last > 0) {
    gemms += fmt::format(" (first {} and last {} layers bf16)", f.bf16_first, f.bf16_last);
  }
  std::string scaling = fmt::format("{} scaling", to_string(f.scaling));
  if (f.scaling == Fp8Spec::Scaling::delayed) {
    scaling += fmt::format(" ({}-step amax history)", f.amax_history);
  }
  return fmt::format(
      "{} ({}; 1 byte and one tensor-core rate either way), {}, {}, weight cache "
      "{}, TP all-gather {}, parameter all-gather {}",
      to_string(f.format),
      f.format == Fp8Spec::Format::hybrid ? "E4M3 forward, E5M2 gradients" : "E4M3 throughout",
      scaling, gemms, f.weight_cache.value_or(true) ? "on" : "off",
      f.tp_allgather_fp8 ? "fp8" : "bf16", f.param_allgather_fp8 ? "fp8" : "bf16");
}

Dtype compute_dtype(Precision p) {
  switch (p) {
    case Precision::fp32: return Dtype::fp32;
    case Precision::tf32: return Dtype::tf32;
    case Precision::fp16: return Dtype::fp16;
    case Precision::bf16: return Dtype::bf16;
    case Precision::fp8: return Dtype::fp8;
  }
  return Dtype::bf16;
}

const char* to_string(Precision p) { return to_string(compute_dtype(p)); }

const char* to_string(Recompute r) {
  switch (r) {
    case Recompute::none: return "none";
    case Recompute::selective: return "selective";
    case Recompute::full: return "full";
  }
  return "?";
}

const char* to_string(Optimizer o) {
  switch (o) {
    case Optimizer::adam: return "adam";
    case Optimizer::adamw: return "adamw";
    case Optimizer::lamb: return "lamb";
    case Optimizer::sgd: return "sgd";
    case Optimizer::lars: return "lars";
    case Optimizer::adafactor: return "adafactor";
  }
  return "?";
}

const char* to_string(Metric m) {
  switch (m) {
    case Metric::step_time_s: return "step_time_s";
    case Metric::tokens_per_s: return "tokens_per_s";
    case Metric::tokens_per_s_per_gpu: return "tokens_per_s_per_gpu";
    case Metric::tflops_per_gpu_model: return "tflops_per_gpu_model";
    case Metric::tflops_per_gpu_hardware: return "tflops_per_gpu_hardware";
    case Metric::mfu: return "mfu";
  }
  return "?";
}

const char* to_string(LossScalingSpec::Kind k) {
  switch (k) {
    case LossScalingSpec::Kind::none: return "none";
    case LossScalingSpec::Kind::fixed: return "static";
    case LossScalingSpec::Kind::dynamic: return "dynamic";
  }
  return "?";
}

}  // namespace orrery
