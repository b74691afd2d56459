#include "calibrate/run_parameters.h"

#include <fmt/format.h>

#include "calibrate/compute_model.h"
#include "core/error.h"

namespace orrery {

namespace {

constexpr const char* kGemm = "cluster.gpu.gemm_efficiency.";
constexpr const char* kAttention = "cluster.gpu.attention_efficiency";
constexpr const char* kCudnnAttention = "cluster.gpu.cudnn_attention_efficiency";
constexpr const char* kNic = "cluster.inter_node.efficiency";
constexpr const char* kSlowdown = "simulation.compute_slowdown";

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

std::optional<Dtype> gemm_dtype(const std::string& key) {
  if (!starts_with(key, kGemm)) return std::nullopt;
  const std::string name = key.substr(std::string(kGemm).size());
  for (Dtype d : {Dtype::fp32, Dtype::tf32, Dtype::fp16, Dtype::bf16, Dtype::fp8, Dtype::fp4})
    if (name == to_string(d)) return d;
  return std::nullopt;
}

}  // namespace

std::vector<std::string> run_parameter_keys(const Scenario& s) {
  std::vector<std::string> keys;
  const Dtype d = compute_dtype(s.training.precision);
  const Dtype a = attention_dtype(s.training.precision);
  keys.push_back(std::string(kGemm) + to_string(d));
  if (a != d) keys.push_back(std::string(kGemm) + to_string(a));
  // The fraction of the fused-attention kernel the run takes (training.stack.attention).
  if (s.training.flash_attention)
    keys.push_back(s.training.stack.attention == StackSpec::AttentionKernel::cudnn ? kCudnnAttention
                                                                                   : kAttention);
  if (s.cluster.nodes > 1) keys.push_back(kNic);
  keys.push_back(kSlowdown);
  return keys;
}

std::optional<ParameterRange> run_parameter_range(const std::string& key) {
  // Ceilings: a fraction of a datasheet peak or line rate is at most 1. Floors: half the
  // lowest fraction measured for any preset (scenario/presets/gpus.yaml: GEMM plateau
  // 0.690, FlashAttention-2 0.33, cuDNN's fused attention 0.556; fabrics.yaml: NIC bus
  // bandwidth 0.405 of line rate, NCCL over Omni-Path on Jean Zay).
  // Below the floor a fit explains something other than the figure (a configuration
  // the scenario misstates, a slow input pipeline): it stops there and says so.
  if (gemm_dtype(key)) return ParameterRange{0.345, 1.0};
  if (key == kAttention) return ParameterRange{0.165, 1.0};
  if (key == kCudnnAttention) return ParameterRange{0.278, 1.0};
  if (key == kNic) return ParameterRange{0.2025, 1.0};
  // 0: collectives take no SMs from compute. 0.5: one NCCL communicator runs at most
  // MAXCHANNELS = 64 channels, one thread block (SM) each (src/include/device.h,
  // NVIDIA/nccl 5067397c), 64 of an H100's 132 SMs = 0.48.
  if (key == kSlowdown) return ParameterRange{0.0, 0.5};
  return std::nullopt;
}

double run_parameter_value(const Scenario& s, const std::string& key) {
  if (const auto d = gemm_dtype(key)) {
    const auto it = s.cluster.gpu.gemm_efficiency.find(*d);
    return it == s.cluster.gpu.gemm_efficiency.end() ? 0.0 : it->second;
  }
  if (key == kAttention) return s.cluster.gpu.attention_efficiency.value_or(0.0);
  if (key == kCudnnAttention) return s.cluster.gpu.cudnn_attention_efficiency.value_or(0.0);
  if (key == kNic) return s.cluster.inter_node.efficiency;
  if (key == kSlowdown) return s.simulation.compute_slowdown;
  ORRERY_CHECK(false, "not a run parameter: " + key);
  return 0;
}

namespace {

// Sets `key` in the cluster `c`, or in `slowdown` for simulation.compute_slowdown.
void set_in(ClusterSpec& c, double& slowdown, const std::string& key, double value) {
  if (const auto d = gemm_dtype(key)) {
    c.gpu.gemm_efficiency[*d] = value;
  } else if (key == kAttention) {
    c.gpu.attention_efficiency = value;
  } else if (key == kCudnnAttention) {
    c.gpu.cudnn_attention_efficiency = value;
  } else if (key == kNic) {
    c.inter_node.efficiency = value;
  } else if (key == kSlowdown) {
    slowdown = value;
  } else {
    ORRERY_CHECK(false, "not a run parameter: " + key);
  }
}

}  // namespace

void set_run_parameter(Scenario& s, const std::string& key, double value) {
  set_in(s.cluster, s.simulation.compute_slowdown, key, value);
}

void apply_run_parameters(const std::vector<RunParameter>& ps, const std::string& file,
                          ClusterSpec& c, double& compute_slowdown) {
  for (const RunParameter& p : ps) {
    const auto range = run_parameter_range(p.key);
    if (!range) {
      throw InputError({file, std::nullopt}, "parameters.key", p.key,
                       "not a fitted parameter: cluster.gpu.gemm_efficiency.FORMAT, "
                       "cluster.gpu.attention_efficiency, "
                       "cluster.gpu.cudnn_attention_efficiency, cluster.inter_node.efficiency "
                       "or simulation.compute_slowdown");
    }
    if (!(p.value >= range->min && p.value <= range->max)) {
      throw InputError({file, std::nullopt}, "parameters." + p.key, fmt::format("{}", p.value),
                       fmt::format("outside its range [{}, {}]", range->min, range->max));
    }
    set_in(c, compute_slowdown, p.key, p.value);
  }
}

}  // namespace orrery
