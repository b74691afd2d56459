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

}  // namespace orrery
