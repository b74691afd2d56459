// Maps a Kineto trace's GPU kernels to the op classes the simulation times
// (calibrate/profile.h, MeasuredKernel; docs/calibration-format.md, "Measured kernels").
// Offline half of calibrate/.
#pragma once

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

}  // namespace orrery
