// One rank's part of a collective, in fp32 with sum (as nccl-tests' defaults), out of
// place. The caller brackets every rank's call of one repetition in
// ncclGroupStart/ncclGroupEnd. Throws CallFailed.
#pragma once

#include <cuda_runtime_api.h>
#include <nccl.h>

#include "profiler/device.h"

namespace orrery::profiler::cuda {

// `send`/`recv` hold collective_buffers(c.op, c.gpus, c.bytes); `rank` of c.gpus ranks.
void launch_collective(const CollectiveCase& c, const char* send, char* recv, int rank,
                       ncclComm_t comm, cudaStream_t stream);

}  // namespace orrery::profiler::cuda
