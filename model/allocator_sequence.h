// The caching allocator's waste on a rank's allocation sequence, simulated
// (model/caching_allocator.h) and remembered across the stages and candidates a process
// analyses: the part of the memory model (model/memory.cpp) that turns a rank's layers,
// states and gathers into reserved-minus-requested bytes. The sequence's functions for
// tests and callers (allocator_sequence_waste, GatherRequest) are declared in
// model/memory.h.
#pragma once

#include <vector>

#include "model/memory.h"

namespace orrery::detail {

// allocator_sequence_waste for one rank, from the remembered simulations where one has
// run the same sequence (see allocator_sequence.cpp), else simulated and remembered; with
// set_allocator_reference(true), allocator_sequence_waste_whole and nothing remembered.
Bytes remembered_sequence_waste(MemorySpec::Allocator allocator, const std::vector<Bytes>& states,
                                const std::vector<const Layer*>& layers,
                                const std::vector<GatherRequest>& gathered, int prefetch,
                                int microbatches, bool more, Recompute recompute, unsigned modules);

}  // namespace orrery::detail
