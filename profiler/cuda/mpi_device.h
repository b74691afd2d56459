// One rank of an MPI job, one GPU per rank (the rank's index among the ranks on its
// host picks the local GPU), as nccl-tests runs across nodes: NCCL is bootstrapped by
// broadcasting rank 0's ncclUniqueId over MPI, and only collectives over the whole job
// are measured. Built only where CMake finds MPI.
//
// Timing: every repetition starts after an MPI_Barrier; each rank takes its own span
// from CUPTI (first kernel start to last kernel end, its own clock), and the recorded
// duration is the longest span over all ranks (MPI_Allreduce, MAX). Hosts' clocks are
// not comparable, so this replaces the single-host rule "first start to last end over
// all ranks"; with the barrier the two differ by the ranks' start skew at most.
// Failures are agreed: if a rank fails a case, every rank reports it.
#pragma once

#include <memory>

#include "profiler/device.h"

namespace orrery::profiler::cuda {

// Initializes MPI (when the caller has not) and NCCL. Throws DeviceUnavailable.
std::unique_ptr<Device> open_mpi_device();

}  // namespace orrery::profiler::cuda
