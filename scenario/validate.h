// Cross-field rules of a scenario: derived defaults (kv_heads = heads, dp from the GPU
// count, the schedule from virtual stages, GPU power from TDP) and the splits that
// cannot work (tp not dividing heads, tp*pp*dp*cp != GPUs, ...). Throws InputError
// naming the key, its value and where it was set.
#pragma once

#include "scenario/spec.h"

namespace orrery {

void complete_and_validate(Scenario& s);

}  // namespace orrery
