// Maps a Kineto trace's GPU kernels to the op classes the simulation times
// (calibrate/profile.h, MeasuredKernel; docs/calibration-format.md, "Measured kernels").
// Offline half of calibrate/.
#pragma once

#include <string>
#include <vector>

#include "calibrate/kineto.h"
#include "calibrate/profile.h"

namespace orrery {

// The trace's kernels that can be classified and sized, grouped into measured entries
// (median over calls); kernels with no class or no size (no CPU op with Input Dims, no
// collective metadata) are left out. Ordered by class, then first appearance.
// `gpus_per_node` (0: not known) gives each NCCL entry the number of nodes its process group
// spans (group_nodes); without it, or without the group's ranks, `nodes` stays 0.
std::vector<MeasuredKernel> measured_kernels(const KinetoTrace& t, int gpus_per_node = 0);

// The nodes a process group of global `ranks` spans when every node runs `gpus_per_node`
// consecutive ranks (torchrun gives a node's workers base + local_rank, base the workers of
// the nodes before it: pytorch/pytorch torch/distributed/elastic/agent/server/api.py,
// SimpleElasticAgent._assign_worker_ranks, at 00a1abb4): the distinct rank / gpus_per_node.
// 0 when either is unknown (no ranks, gpus_per_node < 1).
int group_nodes(const std::vector<std::int64_t>& ranks, int gpus_per_node);

// The optimizer's kernels in a trace: Adam's multi-tensor kernels, named
// multi_tensor_apply_kernel<..., Functor> with an Adam functor (PyTorch's fused Adam/AdamW,
// FusedAdamMathFunctor, aten/src/ATen/native/cuda/fused_adam_utils.cuh at a11d775f; Apex's
// FusedAdam, AdamFunctor, csrc/multi_tensor_adam.cu at 598de6f1; Transformer Engine's
// FusedAdam, AdamFunctor / AdamFunctorMaster, transformer_engine/common/multi_tensor/adam.cu
// at c250752a), any kernel of the aten::_fused_adam_ / aten::_fused_adamw_ ops, and loss
// scaling's unscale pass (aten::_amp_foreach_non_finite_check_and_unscale_, which orrery's
// optimizer model counts). `time`: their summed durations; `first`, `op`: the first one's
// kernel and CPU op names.
struct OptimizerKernels {
  int kernels = 0;
  Seconds time;
  std::string first, op;
};
bool is_optimizer_kernel(const TraceKernel& k);
OptimizerKernels optimizer_kernels(const KinetoTrace& t);

}  // namespace orrery
