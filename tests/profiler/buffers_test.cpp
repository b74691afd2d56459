#include "profiler/buffers.h"

#include <gtest/gtest.h>

namespace orrery::profiler {
namespace {

constexpr std::int64_t KiB = 1024, MiB = KiB * KiB, GiB = MiB * KiB;

TEST(Rotation, SmallSetsRotateOverTwiceTheL2) {
  // 1 KiB sets, 50 MiB L2: 2 * 50 MiB / 1 KiB = 102400 copies, 100 MiB in all.
  const Rotation r = rotation_for(KiB, 50 * MiB);
  EXPECT_EQ(r.stride, KiB);
  EXPECT_EQ(r.copies, 102400);
  EXPECT_EQ(r.region(), 100 * MiB);
}

TEST(Rotation, StrideIsRoundedUpToTheAlignment) {
  // 1000 B -> 1024 B stride (a multiple of 256); 2 * 1 MiB / 1024 = 2048 copies.
  const Rotation r = rotation_for(1000, MiB);
  EXPECT_EQ(r.stride, 1024);
  EXPECT_EQ(r.copies, 2048);
  // 3 MiB + 1 B does not divide 100 MiB: ceil(100 MiB / (3 MiB + 256 B)) = 34 copies.
  EXPECT_EQ(rotation_for(3 * MiB + 1, 50 * MiB).copies, 34);
}

TEST(Rotation, LargeSetsUseOneCopy) {
  EXPECT_EQ(rotation_for(GiB, 50 * MiB).copies, 1);
  EXPECT_EQ(rotation_for(100 * MiB, 50 * MiB).copies, 1);  // exactly 2x L2
  EXPECT_EQ(rotation_for(KiB, 0).copies, 1);                // L2 unknown
}

TEST(CollectiveBytes, RoundsDownToWholeSharesLikeNcclTests) {
  // 1 KiB = 256 floats. 3 ranks: all-gather 255 floats = 1020 B; all-reduce keeps 1024 B.
  EXPECT_EQ(collective_bytes(CollectiveOp::all_gather, 3, KiB), 1020);
  EXPECT_EQ(collective_bytes(CollectiveOp::reduce_scatter, 3, KiB), 1020);
  EXPECT_EQ(collective_bytes(CollectiveOp::all_to_all, 3, KiB), 1020);
  EXPECT_EQ(collective_bytes(CollectiveOp::all_reduce, 3, KiB), KiB);
  EXPECT_EQ(collective_bytes(CollectiveOp::all_gather, 8, KiB), KiB);
  EXPECT_EQ(collective_bytes(CollectiveOp::broadcast, 8, 1023), 1020);  // whole floats
}

TEST(BusBandwidth, NcclTestsFactors) {
  EXPECT_DOUBLE_EQ(busbw_factor(CollectiveOp::all_reduce, 8), 2.0 * 7 / 8);   // 1.75
  EXPECT_DOUBLE_EQ(busbw_factor(CollectiveOp::all_gather, 4), 3.0 / 4);
  EXPECT_DOUBLE_EQ(busbw_factor(CollectiveOp::reduce_scatter, 2), 0.5);
  EXPECT_DOUBLE_EQ(busbw_factor(CollectiveOp::all_to_all, 8), 7.0 / 8);
  EXPECT_DOUBLE_EQ(busbw_factor(CollectiveOp::broadcast, 8), 1.0);
  EXPECT_DOUBLE_EQ(busbw_factor(CollectiveOp::send_recv, 2), 1.0);
}

}  // namespace
}  // namespace orrery::profiler

namespace orrery::profiler {
namespace {

TEST(MemoryBoundBytes, WholeUnitsOfEachKernel) {
  // copy: 2 arrays of float4 -> 32 B units; 1 MiB divides.
  EXPECT_EQ(memory_bound_bytes(MemoryKernel::copy, 1 << 20), 1 << 20);
  // elementwise: 3 arrays -> 48 B units; 1 MiB = 21845 units + 16 B -> 1048560 B.
  EXPECT_EQ(memory_bound_bytes(MemoryKernel::elementwise, 1 << 20), 1048560);
  // row_reduce: rows of 4096 floats read and written = 32 KiB; 4 KiB is below one row.
  EXPECT_EQ(memory_bound_bytes(MemoryKernel::row_reduce, 1 << 20), 1 << 20);
  EXPECT_EQ(memory_bound_bytes(MemoryKernel::row_reduce, 4096), 0);
}

}  // namespace
}  // namespace orrery::profiler

namespace orrery::profiler {
namespace {

TEST(CollectiveBuffers, GatherAndScatterShareOneSide) {
  // 8 ranks, 64 MiB: all-gather sends 8 MiB and receives 64; reduce-scatter the reverse.
  const std::int64_t b = 64 << 20;
  EXPECT_EQ(collective_buffers(CollectiveOp::all_gather, 8, b).send, 8 << 20);
  EXPECT_EQ(collective_buffers(CollectiveOp::all_gather, 8, b).recv, b);
  EXPECT_EQ(collective_buffers(CollectiveOp::reduce_scatter, 8, b).send, b);
  EXPECT_EQ(collective_buffers(CollectiveOp::reduce_scatter, 8, b).recv, 8 << 20);
  EXPECT_EQ(collective_buffers(CollectiveOp::all_to_all, 8, b).send, b);
  EXPECT_EQ(collective_buffers(CollectiveOp::send_recv, 8, b).recv, b);
}

}  // namespace
}  // namespace orrery::profiler
