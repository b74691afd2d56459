// A scenario as read and the scenario resolved from it. Reading (scenario/load.h) gives
// a RawScenario: the values the file wrote or a preset supplied, every other field at
// its default, and where each set value came from. resolve() completes what follows from
// other fields (kv_heads = heads, dp from the GPU count, the schedule from virtual
// stages, GPU power from TDP), checks the splits that cannot work (tp not dividing
// heads, tp*pp*dp*cp != GPUs, ...) and normalises invariants (an fp8 recipe exists only
// under precision fp8): the Scenario every other module reads. Errors are InputErrors
// naming the key, its value and where it was set.
#pragma once

#include <string>

#include "scenario/spec.h"

namespace orrery {

class RawScenario {
 public:
  RawScenario() = default;
  explicit RawScenario(Scenario draft) : draft_(std::move(draft)) {}

  // The values as read; a caller that changes one says where it came from (`set_by`).
  Scenario& draft() { return draft_; }
  const Scenario& draft() const { return draft_; }
  // Whether `key` ("parallelism.tp") was set, by the file, a preset or set_by.
  bool is_set(const std::string& key) const { return draft_.origin.count(key) > 0; }
  // Records that `key` now holds a value placed at `where` (a sweep's value).
  void set_by(const std::string& key, InputLocation where) { draft_.origin[key] = where; }
  // Forgets that `key` was set, so that resolve() derives it again (a sweep that changes
  // the GPU count lets dp follow it).
  void unset(const std::string& key) { draft_.origin.erase(key); }

 private:
  Scenario draft_;
};

Scenario resolve(RawScenario raw);

}  // namespace orrery
