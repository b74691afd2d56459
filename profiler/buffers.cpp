#include "profiler/buffers.h"

#include "core/error.h"

namespace orrery::profiler {

Rotation rotation_for(std::int64_t set_bytes, std::int64_t l2_bytes) {
  ORRERY_CHECK(set_bytes > 0, "rotation of an empty buffer set");
  Rotation r;
  r.stride = (set_bytes + kRotationAlign - 1) / kRotationAlign * kRotationAlign;
  const std::int64_t span = kL2Multiple * (l2_bytes > 0 ? l2_bytes : 0);
  r.copies = span > r.stride ? (span + r.stride - 1) / r.stride : 1;
  return r;
}

std::int64_t collective_bytes(CollectiveOp op, int gpus, std::int64_t requested,
                              int element_bytes) {
  ORRERY_CHECK(gpus >= 1 && element_bytes >= 1, "bad collective group");
  std::int64_t count = requested / element_bytes;
  switch (op) {
    case CollectiveOp::all_gather:
    case CollectiveOp::reduce_scatter:
    case CollectiveOp::all_to_all:
      count = count / gpus * gpus;
      break;
    default:
      break;
  }
  return count * element_bytes;
}

std::int64_t memory_bound_bytes(MemoryKernel k, std::int64_t requested) {
  std::int64_t unit = 0;
  switch (k) {
    case MemoryKernel::copy: unit = 2 * 16; break;
    case MemoryKernel::elementwise: unit = 3 * 16; break;
    case MemoryKernel::row_reduce: unit = 2 * std::int64_t{kRowReduceWidth} * 4; break;
  }
  return requested / unit * unit;
}

CollectiveBuffers collective_buffers(CollectiveOp op, int gpus, std::int64_t bytes) {
  ORRERY_CHECK(gpus >= 1, "bad collective group");
  CollectiveBuffers b{bytes, bytes};
  if (op == CollectiveOp::all_gather) b.send = bytes / gpus;
  if (op == CollectiveOp::reduce_scatter) b.recv = bytes / gpus;
  return b;
}

}  // namespace orrery::profiler
