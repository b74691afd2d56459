// What `orrery run` prints: step time, its breakdown, throughput, MFU, memory, traffic;
// as a table, JSON or CSV (the trace: report/trace.h).
#pragma once

#include <string>

#include "scenario/spec.h"
#include "simulator/predict.h"

namespace orrery {

std::string render_run_table(const Scenario& s, const Prediction& prediction);
// `run --explain`'s training-stack section: each mechanism of training.stack as resolved,
// and whether the file or the preset set it (docs/model.md, "Training stacks").
std::string render_stack_explanation(const Scenario& s);
std::string render_run_json(const Scenario& s, const Prediction& prediction);
// A header line and one row; fields never contain commas.
std::string render_run_csv(const Scenario& s, const Prediction& prediction);

}  // namespace orrery
