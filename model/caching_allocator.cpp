#include "model/caching_allocator.h"

#include <algorithm>
#include <climits>
#include <iterator>

namespace orrery {

namespace detail {
namespace {

// Free lists by size in 16-byte steps up to kPooledBytes; larger requests go to
// operator new directly. Each block is its own operator new allocation, so a block given
// back on another thread than the one that took it is still freed correctly.
constexpr std::size_t kStep = 16, kPooledBytes = 256;
struct FreeLists {
  void* head[kPooledBytes / kStep + 1] = {};
  ~FreeLists() {
    for (void*& h : head) {
      while (h) {
        void* next = *static_cast<void**>(h);
        ::operator delete(h);
        h = next;
      }
    }
  }
};
FreeLists& free_lists() {
  thread_local FreeLists lists;
  return lists;
}

}  // namespace

void* pool_take(std::size_t bytes) {
  if (bytes == 0 || bytes > kPooledBytes) return ::operator new(bytes);
  const std::size_t k = (bytes + kStep - 1) / kStep;
  void*& h = free_lists().head[k];
  const std::size_t whole = k * kStep;
  if (!h) return ::operator new(whole);
  void* p = h;
  h = *static_cast<void**>(p);
  return p;
}

void pool_give(void* p, std::size_t bytes) noexcept {
  if (bytes == 0 || bytes > kPooledBytes) {
    ::operator delete(p);
    return;
  }
  void*& h = free_lists().head[(bytes + kStep - 1) / kStep];
  *static_cast<void**>(p) = h;
  h = p;
}

}  // namespace detail

std::uint64_t CachingAllocator::round_size(std::uint64_t bytes) {
  if (bytes < kMinBlockSize) return kMinBlockSize;
  return kMinBlockSize * ((bytes + kMinBlockSize - 1) / kMinBlockSize);
}

std::uint64_t CachingAllocator::allocation_size(std::uint64_t rounded) {
  if (rounded <= kSmallSize) return kSmallBuffer;
  if (rounded < kMinLargeAlloc) return kLargeBuffer;
  return kRoundLarge * ((rounded + kRoundLarge - 1) / kRoundLarge);
}

int CachingAllocator::new_segment(bool small, std::uint64_t size) {
  const int id = static_cast<int>(segments_.size());
  segment_pool_.push_back(small);
  segments_.emplace_back();
  if (size > 0) segments_.back()[0] = Block{size, 0, false};
  reserved_ += size;
  peak_reserved_ = std::max(peak_reserved_, reserved_);
  return id;
}

// The expandable pool's segment grown by whole pages so that its free tail holds `size`;
// returns the tail block (not in the free set).
CachingAllocator::Key CachingAllocator::grow_expandable(bool small, std::uint64_t size) {
  const std::uint64_t page = small ? kSmallBuffer : kLargeBuffer;
  int& seg = expandable_[small ? 1 : 0];
  if (seg < 0) seg = new_segment(small, 0);
  auto& blocks = segments_[static_cast<std::size_t>(seg)];
  std::uint64_t end = 0, tail_free = 0;
  if (!blocks.empty()) {
    const auto last = std::prev(blocks.end());
    end = last->first + last->second.size;
    if (!last->second.allocated) tail_free = last->second.size;
  }
  const std::uint64_t grow = (size - tail_free + page - 1) / page * page;
  reserved_ += grow;
  peak_reserved_ = std::max(peak_reserved_, reserved_);
  if (tail_free > 0) {
    const auto last = std::prev(blocks.end());
    free_[small ? 1 : 0].erase({last->second.size, seg, last->first});
    last->second.size += grow;
    return {seg, last->first};
  }
  blocks[end] = Block{grow, 0, false};
  return {seg, end};
}

int CachingAllocator::allocate(std::uint64_t bytes) {
  const int handle = static_cast<int>(handles_.size());
  if (bytes == 0) {
    handles_.push_back({-1, 0});
    return handle;
  }
  const std::uint64_t size = round_size(bytes);
  const bool small = size <= kSmallSize;
  auto& pool = free_[small ? 1 : 0];
  Key key;
  const auto it = pool.lower_bound({size, INT_MIN, 0});
  if (it != pool.end()) {
    key = {std::get<1>(*it), std::get<2>(*it)};
    pool.erase(it);
  } else if (mode_ == Mode::expandable) {
    key = grow_expandable(small, size);
  } else {
    key = {new_segment(small, allocation_size(size)), 0};
  }
  auto& blocks = segments_[static_cast<std::size_t>(key.first)];
  Block& b = blocks.at(key.second);
  const std::uint64_t rest = b.size - size;
  const bool split =
      (small || mode_ == Mode::expandable) ? rest >= kMinBlockSize : rest > kSmallSize;
  if (split) {
    b.size = size;
    blocks[key.second + size] = Block{rest, 0, false};
    pool.insert({rest, key.first, key.second + size});
  }
  Block& got = blocks.at(key.second);
  got.allocated = true;
  got.requested = bytes;
  requested_ += bytes;
  allocated_ += got.size;
  peak_requested_ = std::max(peak_requested_, requested_);
  peak_allocated_ = std::max(peak_allocated_, allocated_);
  handles_.push_back(key);
  return handle;
}

void CachingAllocator::release(int handle) {
  const Key key = handles_.at(static_cast<std::size_t>(handle));
  if (key.first < 0) return;
  handles_[static_cast<std::size_t>(handle)] = {-1, 0};
  auto& blocks = segments_[static_cast<std::size_t>(key.first)];
  auto& pool = free_[segment_pool_[static_cast<std::size_t>(key.first)] ? 1 : 0];
  auto it = blocks.find(key.second);
  requested_ -= it->second.requested;
  allocated_ -= it->second.size;
  it->second.allocated = false;
  it->second.requested = 0;
  // Merge with the free block after, then with the free block before.
  const auto next = std::next(it);
  if (next != blocks.end() && !next->second.allocated) {
    pool.erase({next->second.size, key.first, next->first});
    it->second.size += next->second.size;
    blocks.erase(next);
  }
  if (it != blocks.begin()) {
    const auto prev = std::prev(it);
    if (!prev->second.allocated) {
      pool.erase({prev->second.size, key.first, prev->first});
      prev->second.size += it->second.size;
      blocks.erase(it);
      it = prev;
    }
  }
  pool.insert({it->second.size, key.first, it->first});
}

// Why the remainder behaves as this allocator for the later requests (segments mode, no
// release so far):
//  - with only allocations, each segment holds at most one free block, at its end: a new
//    segment is taken at once from offset 0 and every split leaves its free rest just
//    after the block allocated, so the free block's left neighbour is allocated, and stays
//    so (the blocks allocated so far are never released);
//  - a free block smaller than every later request of its pool is never chosen (best fit
//    takes a block at least the request's size) and never merged (its left neighbour stays
//    allocated, nothing lies to its right), so leaving it out changes nothing;
//  - a block kept becomes a segment of its own whose offsets are the original ones less
//    the block's start: best fit orders blocks by (size, segment, offset) and merging looks
//    only at neighbours within a segment, and both orders are kept (the segments' relative
//    order, then the offsets shifted alike); the allocated block on its left never merges,
//    as the segment's start never does;
//  - new segments come after every segment kept, as after every segment here.
// So the same requests take the same blocks and reserve the same new segments: the
// remainder's reserved growth and requested peak are this allocator's for what follows.
CachingAllocator CachingAllocator::remainder(const std::uint64_t smallest[2]) const {
  CachingAllocator out(Mode::segments);
  for (std::size_t seg = 0; seg < segments_.size(); ++seg) {
    const bool small = segment_pool_[seg];
    for (const auto& [offset, b] : segments_[seg]) {
      (void)offset;
      if (!b.allocated && b.size >= smallest[small ? 1 : 0]) {
        const int id = out.new_segment(small, b.size);
        out.free_[small ? 1 : 0].insert({b.size, id, 0});
      }
    }
  }
  return out;
}

void CachingAllocator::describe(std::vector<double>& key) const {
  key.push_back(static_cast<double>(segments_.size()));
  for (std::size_t seg = 0; seg < segments_.size(); ++seg) {
    key.insert(key.end(),
               {segment_pool_[seg] ? 1.0 : 0.0, static_cast<double>(segments_[seg].size())});
    for (const auto& [offset, b] : segments_[seg]) {
      key.insert(key.end(), {static_cast<double>(offset), static_cast<double>(b.size),
                             b.allocated ? 1.0 : 0.0});
    }
  }
}

}  // namespace orrery
