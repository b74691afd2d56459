#include "profiler/cuda/collectives.h"

#include "profiler/cuda/check.h"

namespace orrery::profiler::cuda {

void launch_collective(const CollectiveCase& c, const char* send, char* recv, int rank,
                       ncclComm_t comm, cudaStream_t st) {
  const int n = c.gpus;
  const auto count = static_cast<std::size_t>(c.bytes / 4);      // floats
  const auto share = static_cast<std::size_t>(c.bytes / 4 / n);  // floats per rank
  switch (c.op) {
    case CollectiveOp::all_reduce:
      check(ncclAllReduce(send, recv, count, ncclFloat, ncclSum, comm, st), "ncclAllReduce");
      break;
    case CollectiveOp::all_gather:
      check(ncclAllGather(send, recv, share, ncclFloat, comm, st), "ncclAllGather");
      break;
    case CollectiveOp::reduce_scatter:
      check(ncclReduceScatter(send, recv, share, ncclFloat, ncclSum, comm, st),
            "ncclReduceScatter");
      break;
    case CollectiveOp::broadcast:
      check(ncclBroadcast(send, recv, count, ncclFloat, 0, comm, st), "ncclBroadcast");
      break;
    case CollectiveOp::all_to_all:
      // One chunk of `share` floats to and from every peer, self included, as
      // nccl-tests' alltoall does with grouped point-to-point calls.
      for (int peer = 0; peer < n; ++peer) {
        const std::size_t at = static_cast<std::size_t>(peer) * share * sizeof(float);
        check(ncclSend(send + at, share, ncclFloat, peer, comm, st), "ncclSend");
        check(ncclRecv(recv + at, share, ncclFloat, peer, comm, st), "ncclRecv");
      }
      break;
    case CollectiveOp::send_recv:
      // Every rank sends to the next and receives from the previous, at once.
      check(ncclSend(send, count, ncclFloat, (rank + 1) % n, comm, st), "ncclSend");
      check(ncclRecv(recv, count, ncclFloat, (rank + n - 1) % n, comm, st), "ncclRecv");
      break;
  }
}

}  // namespace orrery::profiler::cuda
