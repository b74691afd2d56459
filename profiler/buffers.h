// Sizing rules shared by every backend: rotating buffers, collective sizes as
// nccl-tests rounds them, and nccl-tests' bus-bandwidth factors (for the summary
// table; the measurement file records times only).
#pragma once

#include <cstdint>

#include "profiler/device.h"

namespace orrery::profiler {

// Where repetition i finds its operands: at offset (i mod copies) * stride in one
// allocation of copies * stride bytes. The region spans at least twice the L2 cache
// (kL2Multiple), so the copy a repetition uses was evicted since the buffer was filled
// and a small case is not flattered by a warm cache. A case at least that large uses
// one copy.
struct Rotation {
  std::int64_t stride = 0;  // bytes between copies: the set's bytes rounded up to kAlign
  std::int64_t copies = 1;
  std::int64_t region() const { return stride * copies; }
};
inline constexpr std::int64_t kRotationAlign = 256;  // cudaMalloc's guaranteed alignment
inline constexpr int kL2Multiple = 2;
Rotation rotation_for(std::int64_t set_bytes, std::int64_t l2_bytes);

// nccl-tests' element count for a requested size: bytes / element size, rounded down
// to a multiple of the rank count for all-gather, reduce-scatter and all-to-all (each
// rank's share is whole). Returns the bytes actually moved, which the file records.
// Zero when the size is too small for the group.
std::int64_t collective_bytes(CollectiveOp op, int gpus, std::int64_t requested,
                              int element_bytes = 4);

// The bytes a memory-bound kernel really moves for a requested size: its fp32 arrays
// hold whole float4s (copy: 2 arrays, so multiples of 32 B; elementwise: 3 arrays,
// 48 B) and row_reduce whole rows of 4096 floats read and written (32 KiB). Rounded
// down; zero when the size is below one unit.
std::int64_t memory_bound_bytes(MemoryKernel k, std::int64_t requested);
inline constexpr int kRowReduceWidth = 4096;  // floats per row_reduce row

// Per-rank buffers of a collective of `bytes` (as collective_bytes() gives) over `gpus`
// ranks: all-gather sends bytes/gpus and receives bytes; reduce-scatter sends bytes and
// receives bytes/gpus; the others send and receive `bytes`.
struct CollectiveBuffers {
  std::int64_t send = 0, recv = 0;
};
CollectiveBuffers collective_buffers(CollectiveOp op, int gpus, std::int64_t bytes);

}  // namespace orrery::profiler
