// The caching-allocator simulation on a fixed allocation sequence, each figure derived by
// hand from the rules in model/caching_allocator.h (c10/cuda/CUDACachingAllocator.cpp at
// pytorch/pytorch 001074d2). MiB = 1048576 bytes.
#include "model/caching_allocator.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace orrery {
namespace {

constexpr std::uint64_t MiB = 1048576;

// The sequence: a 100 B, b 3 MiB, c 12 MiB + 1 B, d 6 MiB, free b, e 4 MiB, f 25 MiB.
struct Handles {
  int a, b, c, d, e, f;
};
Handles run_sequence(CachingAllocator& ca) {
  Handles h{};
  h.a = ca.allocate(100);
  h.b = ca.allocate(3 * MiB);
  h.c = ca.allocate(12 * MiB + 1);
  h.d = ca.allocate(6 * MiB);
  ca.release(h.b);
  h.e = ca.allocate(4 * MiB);
  h.f = ca.allocate(25 * MiB);
  return h;
}

TEST(CachingAllocator, RoundingAndSegmentSizes) {
  EXPECT_EQ(CachingAllocator::round_size(1), 512u);
  EXPECT_EQ(CachingAllocator::round_size(513), 1024u);
  EXPECT_EQ(CachingAllocator::allocation_size(MiB), 2 * MiB);         // small: 2 MiB
  EXPECT_EQ(CachingAllocator::allocation_size(MiB + 512), 20 * MiB);  // 1-10 MiB: 20 MiB
  EXPECT_EQ(CachingAllocator::allocation_size(10 * MiB), 10 * MiB);   // >= 10 MiB: to 2 MiB
  EXPECT_EQ(CachingAllocator::allocation_size(25 * MiB), 26 * MiB);
}

TEST(CachingAllocator, SegmentsOnAFixedSequence) {
  CachingAllocator ca(CachingAllocator::Mode::segments);
  run_sequence(ca);
  // a: 512 B block of a new 2 MiB small segment (split, rest >= 512).       reserved  2 MiB
  // b: 3 MiB < 10 MiB: a new 20 MiB segment, split (rest 17 MiB > 1 MiB).   reserved 22 MiB
  // c: rounded to 12 MiB + 512, best fit the 17 MiB rest, split (rest 5 MiB - 512).
  // d: 6 MiB: no free block holds it: a new 20 MiB segment, split.         reserved 42 MiB
  // free b: a 3 MiB free block (its neighbour c is allocated, no merge).
  // e: 4 MiB: best fit the 5 MiB - 512 block; the rest 1 MiB - 512 is not > 1 MiB, so the
  //    whole block is e's.
  // f: 25 MiB: free blocks 3 MiB and 14 MiB are too small: a new segment of 25 MiB rounded
  //    to 2 MiB, 26 MiB; the rest 1 MiB is not > 1 MiB: unsplit.             reserved 68 MiB
  EXPECT_EQ(ca.reserved(), 68 * MiB);
  EXPECT_EQ(ca.peak_reserved(), 68 * MiB);
  EXPECT_EQ(ca.segments(), 4);
  // Blocks held: a 512, c 12 MiB + 512, d 6 MiB, e 5 MiB - 512, f 26 MiB = 49 MiB + 512.
  EXPECT_EQ(ca.allocated(), 49 * MiB + 512);
  EXPECT_EQ(ca.peak_allocated(), 49 * MiB + 512);
  // Requested: 100 + (12 MiB + 1) + 6 MiB + 4 MiB + 25 MiB = 47 MiB + 101, the peak.
  EXPECT_EQ(ca.requested(), 47 * MiB + 101);
  EXPECT_EQ(ca.peak_requested(), 47 * MiB + 101);
}

TEST(CachingAllocator, FreedSegmentsDoNotJoinAcrossSegments) {
  CachingAllocator ca(CachingAllocator::Mode::segments);
  const Handles h = run_sequence(ca);
  for (int k : {h.a, h.c, h.d, h.e, h.f}) ca.release(k);
  EXPECT_EQ(ca.allocated(), 0u);
  // Free large blocks now: 20 MiB (b, c, e merged), 20 MiB (d's), 26 MiB (f's). None holds
  // 40 MiB: a new 40 MiB segment, 68 + 40 = 108 MiB reserved for 40 MiB allocated.
  ca.allocate(40 * MiB);
  EXPECT_EQ(ca.reserved(), 108 * MiB);
  EXPECT_EQ(ca.allocated(), 40 * MiB);
  // 24 MiB fits the 26 MiB block (best fit: 26 is the smallest that holds it; rest 2 MiB >
  // 1 MiB, split): nothing new reserved.
  ca.allocate(24 * MiB);
  EXPECT_EQ(ca.reserved(), 108 * MiB);
}

TEST(CachingAllocator, ExpandableSegmentsOnTheSameSequence) {
  CachingAllocator ca(CachingAllocator::Mode::expandable);
  const Handles h = run_sequence(ca);
  // a: the small pool's segment maps one 2 MiB page.                      reserved  2 MiB
  // b: the large pool's segment maps one 20 MiB page; split (rest 17 MiB). reserved 22 MiB
  // c: 12 MiB + 512 from the 17 MiB tail; free tail 5 MiB - 512.
  // d: 6 MiB: the tail lacks 1 MiB + 512: one more 20 MiB page, tail 25 MiB - 512, split
  //    (rest 19 MiB - 512).                                                 reserved 42 MiB
  // free b: 3 MiB free at the segment's start.
  // e: 4 MiB: best fit the 19 MiB - 512 tail (any rest >= 512 splits): tail 15 MiB - 512.
  // f: 25 MiB: the tail lacks 10 MiB + 512: one page.                       reserved 62 MiB
  EXPECT_EQ(ca.reserved(), 62 * MiB);
  // Blocks held: 512 + (12 MiB + 512) + 6 MiB + 4 MiB + 25 MiB = 47 MiB + 1024.
  EXPECT_EQ(ca.allocated(), 47 * MiB + 1024);
  for (int k : {h.a, h.c, h.d, h.e, h.f}) ca.release(k);
  // Every large block merges into one free 60 MiB block: 40 MiB fits, nothing new mapped
  // (against 108 MiB with plain segments).
  ca.allocate(40 * MiB);
  EXPECT_EQ(ca.reserved(), 62 * MiB);
}

}  // namespace
}  // namespace orrery
