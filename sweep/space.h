// The candidate space walked lazily: the nested loops of the axes table (sweep.h gives
// the order) as an odometer, one candidate at a time, so nothing holds the whole list.
// A candidate is named by its index (its place in that order) and, compactly, by its
// position: the place of its value in each axis's list of values, from which `at`
// rebuilds it. Private to sweep/.
#pragma once

#include <cstdint>
#include <vector>

#include "sweep/sweep.h"

namespace orrery::detail {

struct Axis;

class CandidateSpace {
 public:
  explicit CandidateSpace(const SweepInput& in);
  // Whether there is a current candidate (false once the walk has passed the last).
  bool valid() const { return valid_; }
  const Assignment& current() const { return a_; }
  std::int64_t index() const { return index_; }
  // Each nested axis's place in its list of values, slowest first (levels() of them).
  void position(std::vector<std::uint16_t>& out) const;
  std::size_t levels() const { return order_.size(); }
  void next();
  // The candidate at `position` (levels() entries from `p`).
  Assignment at(const std::uint16_t* p) const;
  // The number of candidates, walked (no candidate is screened).
  static std::int64_t count(const SweepInput& in);

 private:
  bool fill(std::size_t level);
  const SweepInput& in_;
  std::vector<const Axis*> order_;
  std::vector<std::vector<int>> values_;
  std::vector<std::size_t> pos_;
  Assignment a_;
  std::int64_t index_ = 0;
  bool valid_ = false;
};

}  // namespace orrery::detail
