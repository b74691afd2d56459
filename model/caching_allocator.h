// PyTorch's CUDA caching allocator, as a small simulation: what an allocation sequence
// reserves from the device (segments) against what it has allocated, so the memory model
// can state both figures (model/memory.h: allocated peak, reserved estimate).
//
// The rules follow c10/cuda/CUDACachingAllocator.cpp at pytorch/pytorch 001074d2, with the
// default configuration (no max_split_size, no roundup_power2_divisions, one stream):
//  - every request is rounded up to a multiple of 512 bytes (kMinBlockSize);
//  - requests of at most 1 MiB (kSmallSize) come from the small pool, the rest from the
//    large pool;
//  - a request takes the smallest free block of its pool that holds it (best fit; ties by
//    address), and the block is split when the rest is >= 512 bytes in the small pool and
//    > 1 MiB in the large pool (should_split); an unsplit remainder stays with the
//    allocation;
//  - with no free block big enough, a new segment is reserved (cudaMalloc) of 2 MiB
//    (kSmallBuffer) for small requests, 20 MiB (kLargeBuffer) for requests under 10 MiB
//    (kMinLargeAlloc), otherwise the request rounded up to 2 MiB (kRoundLarge)
//    (get_allocation_size);
//  - a freed block merges with free neighbours of its segment; segments are never
//    returned (no empty_cache, and the simulation assumes no out-of-memory retry).
// With expandable segments (PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True) each pool is
// one segment that grows by mapping pages of 2 MiB (small pool) or 20 MiB (large pool) at
// its end ("Note [Expandable Segments]" in the same file): a request no free block holds
// extends the segment's free tail (or its end) by whole pages, and any block splits when
// the rest is >= 512 bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <set>
#include <tuple>
#include <vector>

namespace orrery {

namespace detail {
// Blocks of one size kept for reuse by the thread that frees them (freed at its exit), so
// that the simulation's tree nodes, made and dropped thousands of times per candidate in a
// sweep, cost no malloc/free after a thread's first simulation. Not a cache of results:
// only where node memory comes from changes.
void* pool_take(std::size_t bytes);
void pool_give(void* p, std::size_t bytes) noexcept;

template <class T>
struct PoolAllocator {
  using value_type = T;
  PoolAllocator() = default;
  template <class U>
  PoolAllocator(const PoolAllocator<U>&) {}  // NOLINT(google-explicit-constructor)
  T* allocate(std::size_t n) { return static_cast<T*>(pool_take(n * sizeof(T))); }
  void deallocate(T* p, std::size_t n) noexcept { pool_give(p, n * sizeof(T)); }
  template <class U>
  bool operator==(const PoolAllocator<U>&) const {
    return true;
  }
  template <class U>
  bool operator!=(const PoolAllocator<U>&) const {
    return false;
  }
};
}  // namespace detail

class CachingAllocator {
 public:
  enum class Mode { segments, expandable };

  static constexpr std::uint64_t kMinBlockSize = 512;
  static constexpr std::uint64_t kSmallSize = 1048576;
  static constexpr std::uint64_t kSmallBuffer = 2097152;
  static constexpr std::uint64_t kLargeBuffer = 20971520;
  static constexpr std::uint64_t kMinLargeAlloc = 10485760;
  static constexpr std::uint64_t kRoundLarge = 2097152;

  explicit CachingAllocator(Mode mode = Mode::segments) : mode_(mode) {}

  // Allocates `bytes` (0 is allowed and takes nothing); returns a handle for release().
  int allocate(std::uint64_t bytes);
  void release(int handle);

  // Bytes the program asked for (requested_bytes), bytes of the blocks it holds
  // (allocated_bytes: rounding and unsplit remainders included) and bytes of the
  // segments (reserved_bytes), now and at their peaks.
  std::uint64_t requested() const { return requested_; }
  std::uint64_t allocated() const { return allocated_; }
  std::uint64_t reserved() const { return reserved_; }
  std::uint64_t peak_requested() const { return peak_requested_; }
  std::uint64_t peak_allocated() const { return peak_allocated_; }
  std::uint64_t peak_reserved() const { return peak_reserved_; }
  int segments() const { return static_cast<int>(segment_pool_.size()); }

  // For the requests that follow when every block allocated so far stays allocated for
  // good and nothing has been released (a rank's model states, allocated first): an
  // allocator that ends with the same peaks of every later request's growth, given
  // `smallest[small]`, the smallest rounded later request of each pool (UINT64_MAX for
  // none). It holds, as segments of their own in this one's segment order, only this one's
  // free blocks that such a request fits; segments mode only (the reasons in the .cpp).
  // Its reserved bytes start at those blocks' sum and its requested bytes at 0.
  CachingAllocator remainder(const std::uint64_t smallest[2]) const;

  // What the later requests' outcome depends on, appended to `key`: each segment's pool
  // and blocks (offset, size, allocated) in order (for a remainder: its free blocks' sizes
  // in order).
  void describe(std::vector<double>& key) const;

  static std::uint64_t round_size(std::uint64_t bytes);
  static std::uint64_t allocation_size(std::uint64_t rounded);

 private:
  struct Block {
    std::uint64_t size = 0;
    std::uint64_t requested = 0;
    bool allocated = false;
  };
  // A block is named by (segment, offset); segments are numbered in reservation order,
  // which stands for address order.
  using Key = std::pair<int, std::uint64_t>;
  using FreeKey = std::tuple<std::uint64_t, int, std::uint64_t>;  // size, segment, offset

  int new_segment(bool small, std::uint64_t size);
  void split_into(Key at, std::uint64_t size);
  Key grow_expandable(bool small, std::uint64_t size);

  Mode mode_;
  std::vector<bool> segment_pool_;                        // segment -> small pool?
  using Blocks = std::map<std::uint64_t, Block, std::less<std::uint64_t>,
                          detail::PoolAllocator<std::pair<const std::uint64_t, Block>>>;
  using FreeSet = std::set<FreeKey, std::less<FreeKey>, detail::PoolAllocator<FreeKey>>;
  std::vector<Blocks> segments_;                          // segment -> offset -> block
  FreeSet free_[2];                                       // [small] free blocks, best fit
  int expandable_[2] = {-1, -1};                          // [small] the pool's one segment
  std::vector<Key> handles_;
  std::uint64_t requested_ = 0, allocated_ = 0, reserved_ = 0;
  std::uint64_t peak_requested_ = 0, peak_allocated_ = 0, peak_reserved_ = 0;
};

}  // namespace orrery
