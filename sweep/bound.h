// The lower bound on a candidate's step time that the sweep prunes with; its contract
// (what it counts and why it is never above the simulated step time) is in sweep.h.
#pragma once

#include "core/units.h"
#include "scenario/spec.h"

namespace orrery {

// A lower bound on the step time the simulator gives s (sweep.h, "Pruning").
Seconds step_time_bound(const Scenario& s);

}  // namespace orrery
