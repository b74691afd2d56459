// The caching allocator's waste as a sweep screens it (model/memory.cpp: split at the
// states, the micro-batches' part remembered across candidates and threads) against the
// whole simulation from the first request, on every candidate of a small sweep whose
// candidates differ in what the split leaves out (ZeRO stages change only the states'
// sizes) and in what it keeps (splits, micro-batches, recompute), with both allocators.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/error.h"
#include "model/memory.h"
#include "scenario/sweep_spec.h"
#include "sweep/sweep.h"

namespace orrery {
namespace {

// 16 A100s (two DGX A100 nodes), the 1.7B model of Narayanan et al. 2021 Table 1.
std::string sweep_yaml(const std::string& allocator) {
  return R"(name: allocator split
cluster: {preset: dgx-a100, nodes: 2}
model: {preset: narayanan-1.7b}
parallelism: {tp: 2, pp: 2, microbatch: 1, global_batch: 32}
training: {precision: bf16, memory: {allocator: )" +
         allocator + R"(}}
sweep:
  tp: auto
  pp: auto
  microbatch: auto
  zero_stage: [0, 1, 2, 3]
  recompute: [none, selective, full]
)";
}

struct Checked {
  int candidates = 0, stages = 0, nonzero = 0;
};

// Every valid candidate's per-stage allocator overhead, split and remembered (twice: the
// second takes what the first remembered) against the whole simulation.
Checked check(const std::string& allocator) {
  const SweepInput in = load_sweep_text(sweep_yaml(allocator), "t.yaml");
  Checked n;
  for (const Assignment& a : expand(in)) {
    Scenario s;
    try {
      s = candidate_scenario(in, a);
    } catch (const InputError&) {
      continue;
    }
    set_allocator_reference(true);
    const MemoryReport whole = estimate_memory(s);
    set_allocator_reference(false);
    for (int pass = 0; pass < 2; ++pass) {
      const MemoryReport split = estimate_memory(s);
      EXPECT_EQ(split.stages.size(), whole.stages.size());
      for (std::size_t i = 0; i < whole.stages.size() && i < split.stages.size(); ++i) {
        // Exactly equal: the same bytes, not merely close.
        EXPECT_EQ(split.stages[i].allocator_overhead.value(),
                  whole.stages[i].allocator_overhead.value())
            << "candidate tp " << a.tp << " pp " << a.pp << " microbatch " << a.microbatch
            << " zero " << a.zero_stage << " stage " << i;
      }
      EXPECT_EQ(split.fits, whole.fits);
    }
    ++n.candidates;
    n.stages += static_cast<int>(whole.stages.size());
    for (const StageMemory& st : whole.stages) n.nonzero += st.allocator_overhead.value() > 0;
  }
  return n;
}

TEST(AllocatorSplit, EveryCandidateOfASmallSweepGetsTheWholeSimulationsWaste) {
  const Checked n = check("caching");
  // Enough candidates and stages with a waste for the comparison to mean something.
  EXPECT_GT(n.candidates, 100);
  EXPECT_GT(n.nonzero, 100);
}

TEST(AllocatorSplit, ExpandableSegmentsRememberedWholeAreTheSame) {
  const Checked n = check("expandable_segments");
  EXPECT_GT(n.candidates, 100);
  EXPECT_GT(n.nonzero, 100);
}

}  // namespace
}  // namespace orrery
