#include "scenario/spec.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <utility>

#include "scenario/names.h"

namespace orrery {

// Every enum's name comes from its table (scenario/names.h).
const char* to_string(InterNodeTopology v) { return name_of(v); }
const char* to_string(ModelFamily v) { return name_of(v); }
const char* to_string(EncoderHead v) { return name_of(v); }
const char* to_string(Activation v) { return name_of(v); }
const char* to_string(Norm v) { return name_of(v); }
const char* to_string(PositionEmbedding v) { return name_of(v); }
const char* to_string(AttentionMask v) { return name_of(v); }
const char* to_string(CnnOp v) { return name_of(v); }
const char* to_string(PipelineSchedule v) { return name_of(v); }
const char* to_string(PipelineEngine v) { return name_of(v); }
const char* to_string(ParallelismSpec::CpComm v) { return name_of(v); }
const char* to_string(ParallelismSpec::RankOrder v) { return name_of(v); }
const char* to_string(ParallelismSpec::Alltoall v) { return name_of(v); }
const char* to_string(ParallelismSpec::EpBackend v) { return name_of(v); }
const char* to_string(ParallelismSpec::Sharding v) { return name_of(v); }
const char* to_string(ParallelismSpec::FsdpImpl v) { return name_of(v); }
const char* to_string(ParallelismSpec::FsdpUnit v) { return name_of(v); }
const char* to_string(Precision v) { return name_of(v); }
const char* to_string(Recompute v) { return name_of(v); }
const char* to_string(Optimizer v) { return name_of(v); }

const char* recompute_module_name(RecomputeModule m) {
  switch (m) {
    case kRecomputeCoreAttn:
      return "core_attn";
    case kRecomputeMoeAct:
      return "moe_act";
    case kRecomputeLayernorm:
      return "layernorm";
    case kRecomputeMlaUpProj:
      return "mla_up_proj";
    case kRecomputeMlp:
      return "mlp";
    case kRecomputeMoe:
      return "moe";
    case kRecomputeSharedExperts:
      return "shared_experts";
  }
  return "?";
}

std::string describe_recompute_modules(unsigned modules) {
  std::string out;
  for (const RecomputeModule m : kRecomputeModuleOrder) {
    if ((modules & m) == 0) continue;
    out += (out.empty() ? "" : ", ") + std::string(recompute_module_name(m));
  }
  return out;
}
const char* to_string(StateDtype v) { return name_of(v); }
const char* to_string(MainParams v) { return name_of(v); }
const char* to_string(CompressionSpec::Scheme v) { return name_of(v); }
const char* to_string(LossScalingSpec::Kind v) { return name_of(v); }
const char* to_string(Fp8Spec::Format v) { return name_of(v); }
const char* to_string(Fp8Spec::Scaling v) { return name_of(v); }
const char* to_string(Fp4Spec::Format v) { return name_of(v); }
const char* to_string(StackSpec::Preset v) { return name_of(v); }
const char* to_string(StackSpec::Rope v) { return name_of(v); }
const char* to_string(StackSpec::OptimizerKernels v) { return name_of(v); }
const char* to_string(StackSpec::NormKernels v) { return name_of(v); }
const char* to_string(StackSpec::AttentionKernel v) { return name_of(v); }
const char* to_string(StackSpec::Projections v) { return name_of(v); }
const char* to_string(StackSpec::MaskedSoftmax v) { return name_of(v); }
const char* to_string(StackSpec::GradAccumulation v) { return name_of(v); }
const char* to_string(FaultSpec::Kind v) { return name_of(v); }
const char* to_string(FaultSpec::Link v) { return name_of(v); }
const char* to_string(Metric v) { return name_of(v); }
const char* to_string(MemoryPeak v) { return name_of(v); }

Dtype compute_dtype(Precision p) {
  switch (p) {
    case Precision::fp32: return Dtype::fp32;
    case Precision::tf32: return Dtype::tf32;
    case Precision::fp16: return Dtype::fp16;
    case Precision::bf16: return Dtype::bf16;
    case Precision::fp8: return Dtype::fp8;
    case Precision::fp4: return Dtype::fp4;
  }
  return Dtype::bf16;
}

std::string describe(const Fp4Spec& f) {
  std::string out =
      f.format == Fp4Spec::Format::nvfp4
          ? "nvfp4 (E2M1, an E4M3 scale per 16 elements and an fp32 scale per tensor, 16x16 "
            "weight blocks, Hadamard transform on the weight-gradient inputs, stochastic "
            "rounding on gradients)"
          : "mxfp4 (E2M1, an E8M0 scale per 32 elements)";
  out += ", Transformer Engine layers in fp4 (LM head, router and attention bf16)";
  if (f.bf16_first + f.bf16_last > 0) {
    out += fmt::format(" (first {} and last {} layers bf16)", f.bf16_first, f.bf16_last);
  }
  out += f.weight_cache ? ", fp4 weights cached per step" : ", weights cast every micro-batch";
  return out;
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
  if (f.rowwise()) {
    // torchao's row-wise recipes cast every operand to e4m3 (config.py), whatever `format`.
    if (f.gemms == kFp8TeLayers)
      gemms = "attention, MLP and expert linears in fp8 (LM head and router bf16)";
    return fmt::format(
        "e4m3 throughout (torchao), {} ({}), {}, 16-bit saved inputs, weight cache off, "
        "all-gathers bf16",
        scaling,
        f.scaling == Fp8Spec::Scaling::rowwise ? "all three GEMMs fp8"
                                               : "weight-gradient GEMM bf16",
        gemms);
  }
  return fmt::format(
      "{} ({}; 1 byte and one tensor-core rate either way), {}, {}, weight cache "
      "{}, TP all-gather {}, parameter all-gather {}",
      to_string(f.format),
      f.format == Fp8Spec::Format::hybrid ? "E4M3 forward, E5M2 gradients" : "E4M3 throughout",
      scaling, gemms,
      f.fp8_weights ? (f.scaling == Fp8Spec::Scaling::mxfp8
                           ? "off (weights kept in MXFP8, requantized once a step)"
                           : (f.fp8_transpose_kept
                                  ? "off (weights kept in fp8; any transpose made once a step)"
                                  : "off (weights kept in fp8; any transpose made in each pass)"))
                    : (f.weight_cache.value_or(true) ? "on" : "off"),
      f.tp_allgather_fp8 ? "fp8" : "bf16", f.param_allgather_fp8 ? "fp8" : "bf16");
}

int slow_node_machine_gpus(const ClusterSpec& c) {
  // A node smaller than a machine (a few GPUs of a tray) counts as one.
  const int m = c.slow_nodes.machine_gpus;
  return m > 0 ? std::min(m, c.gpus_per_node) : c.gpus_per_node;
}

int slow_node_machines(const ClusterSpec& c) { return c.gpus() / slow_node_machine_gpus(c); }

double slow_node_probability(const ClusterSpec& c) {
  const SlowNodesSpec& sn = c.slow_nodes;
  const int machines = slow_node_machines(c);
  if (machines <= 1 || sn.speed >= 1) return 0.0;
  return 1.0 - std::pow(1.0 - sn.fraction, machines);
}

std::vector<std::string> assumed_figures(const ClusterSpec& c) {
  std::vector<std::string> out;
  for (const auto& k : c.gpu.assumed) out.push_back("cluster.gpu." + k);
  // The inter-node figures matter only with several nodes.
  const auto used = [&](const std::string& k) {
    return c.nodes > 1 || k.rfind("inter_node.", 0) != 0;
  };
  for (const auto& k : c.assumed)
    if (used(k)) out.push_back("cluster." + k);
  for (const auto& k : c.nodes > 1 ? c.inter_node.assumed : std::vector<std::string>{}) {
    const std::string path = "cluster.inter_node." + k;
    if (std::find(out.begin(), out.end(), path) == out.end()) out.push_back(path);
  }
  return out;
}

}  // namespace orrery
