// What `orrery check` prints: the resolved scenario, parameter and FLOP counts, and
// memory per GPU with the verdict, as a text table or as JSON.
#pragma once

#include <string>

#include "model/analysis.h"
#include "scenario/spec.h"

namespace orrery {

std::string render_check_table(const Scenario& s, const StepFigures& f);
// Pretty-printed JSON (2-space indent, keys in a fixed order) ending with a newline.
std::string render_check_json(const Scenario& s, const StepFigures& f);
// The cluster's figures its presets assumed rather than measured (assumed_figures) and
// what that means, as one line; "" when there are none. Printed by check, run and sweep.
std::string assumed_line(const ClusterSpec& c);

}  // namespace orrery
